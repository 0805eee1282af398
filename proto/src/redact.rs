//! The one URL redaction for logs, errors and status messages: whatever
//! might be a credential in a URL is masked, the rest kept readable.

/// `url` fit to show: everything before the last `@` (the user
/// information: user names are often tokens, passwords may hold `?` or `/`)
/// becomes `***`, and the query is dropped (it may carry secrets). A string
/// without `scheme://` that names a user (`git@host:org/repo`) gets it
/// masked too; one without `@` is returned as it is.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return match url.rsplit_once('@') {
            Some((_, host)) => format!("***@{host}"),
            None => url.to_owned(),
        };
    };
    let (masked, rest) = match rest.rsplit_once('@') {
        Some((_, after)) => ("***@", after),
        None => ("", rest),
    };
    let rest = rest.split_once('?').map_or(rest, |(before, _)| before);
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    format!("{scheme}://{masked}{host}/{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_survive_redaction() {
        for (url, expected) in [
            (
                "amqp://guest:guest@127.0.0.1:5672/%2f",
                "amqp://***@127.0.0.1:5672/%2f",
            ),
            (
                "amqps://u:p%40ss@mq.example.com/vh?heartbeat=10",
                "amqps://***@mq.example.com/vh",
            ),
            ("amqp://127.0.0.1:5672", "amqp://127.0.0.1:5672/"),
            ("amqp://user@host/", "amqp://***@host/"),
            (
                "https://ghp_token@github.com/org/repo.git",
                "https://***@github.com/org/repo.git",
            ),
            (
                "https://x-access-token:ghs_abc@github.com/org/repo?x=1",
                "https://***@github.com/org/repo",
            ),
            (
                "https://ghp_token:x-oauth-basic@github.com/org/repo",
                "https://***@github.com/org/repo",
            ),
            ("https://u:p?x@h/r", "https://***@h/r"),
            ("https://u:p/w@h/r", "https://***@h/r"),
            ("git@github.com:org/repo.git", "***@github.com:org/repo.git"),
            ("amqp:/guest:pw@host", "***@host"),
            ("not a url", "not a url"),
            ("https://github.com/org/repo", "https://github.com/org/repo"),
        ] {
            assert_eq!(redact_url(url), expected, "{url}");
        }
    }
}
