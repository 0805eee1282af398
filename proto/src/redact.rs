//! The one URL redaction for logs, errors and status messages: whatever
//! might be a credential in a URL is masked, the rest kept readable.

/// `url` fit to show: the password of `scheme://user:password@host/…`
/// masked (`user:***@`), a lone user name masked too (`***@`, since tokens
/// are often passed as the user name), and the query dropped (it may carry
/// secrets). A string without `scheme://` that names a user (`git@host:org/repo`)
/// gets that user masked; one without is returned as it is.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return match url.rsplit_once('@') {
            Some((_, host)) => format!("***@{host}"),
            None => url.to_owned(),
        };
    };
    let rest = rest.split_once('?').map_or(rest, |(before, _)| before);
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => format!("***@{host}"),
        },
        None => authority.to_owned(),
    };
    format!("{scheme}://{authority}/{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_survive_redaction() {
        for (url, expected) in [
            (
                "amqp://guest:guest@127.0.0.1:5672/%2f",
                "amqp://guest:***@127.0.0.1:5672/%2f",
            ),
            (
                "amqps://u:p%40ss@mq.example.com/vh?heartbeat=10",
                "amqps://u:***@mq.example.com/vh",
            ),
            ("amqp://127.0.0.1:5672", "amqp://127.0.0.1:5672/"),
            ("amqp://user@host/", "amqp://***@host/"),
            (
                "https://ghp_token@github.com/org/repo.git",
                "https://***@github.com/org/repo.git",
            ),
            (
                "https://x-access-token:ghs_abc@github.com/org/repo?x=1",
                "https://x-access-token:***@github.com/org/repo",
            ),
            ("git@github.com:org/repo.git", "***@github.com:org/repo.git"),
            ("amqp:/guest:pw@host", "***@host"),
            ("not a url", "not a url"),
            ("https://github.com/org/repo", "https://github.com/org/repo"),
        ] {
            assert_eq!(redact_url(url), expected, "{url}");
        }
    }
}
