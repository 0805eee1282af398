//! Unit tests of the pure parts: URL joining, targets, pagination headers,
//! error messages, redaction, and the ensure diff.

use hyper::StatusCode;
use secrecy::SecretString;

use crate::ensure::{Change, diff, same_url};
use crate::http::{error_message, join, link_next, redact};
use crate::{Forge, ForgeError, ForgeKind, Hook, Target, parse_base};

fn url(base: &str, target: &Target, kind: ForgeKind) -> String {
    let base = parse_base(base).unwrap();
    join(&base, &target.hooks_segments(kind).unwrap()).to_string()
}

#[test]
fn joining_keeps_the_base_path_prefix() {
    let repo = Target::Repo("o/r".into());
    for (base, kind, expected) in [
        (
            "https://api.github.com",
            ForgeKind::Github,
            "https://api.github.com/repos/o/r/hooks",
        ),
        (
            "https://api.github.com/",
            ForgeKind::Github,
            "https://api.github.com/repos/o/r/hooks",
        ),
        (
            "https://ghe.example.com/api/v3",
            ForgeKind::Github,
            "https://ghe.example.com/api/v3/repos/o/r/hooks",
        ),
        (
            "https://ghe.example.com/api/v3/",
            ForgeKind::Github,
            "https://ghe.example.com/api/v3/repos/o/r/hooks",
        ),
        (
            "https://gitea.example.com/api/v1",
            ForgeKind::Gitea,
            "https://gitea.example.com/api/v1/repos/o/r/hooks",
        ),
        (
            "https://example.com/git/api/v4",
            ForgeKind::Gitlab,
            "https://example.com/git/api/v4/projects/o%2Fr/hooks",
        ),
    ] {
        assert_eq!(url(base, &repo, kind), expected, "{base}");
    }
}

#[test]
fn gitlab_paths_are_one_encoded_segment() {
    let project = Target::Repo("group/sub/project".into());
    let group = Target::Org("group/sub".into());
    let base = "https://gitlab.com/api/v4";
    assert_eq!(
        url(base, &project, ForgeKind::Gitlab),
        "https://gitlab.com/api/v4/projects/group%2Fsub%2Fproject/hooks"
    );
    assert_eq!(
        url(base, &group, ForgeKind::Gitlab),
        "https://gitlab.com/api/v4/groups/group%2Fsub/hooks"
    );
}

#[test]
fn names_that_could_escape_the_path_are_refused() {
    for (kind, target) in [
        (ForgeKind::Github, Target::Repo("o/r/x".into())),
        (ForgeKind::Github, Target::Repo("o/..".into())),
        (ForgeKind::Github, Target::Org("a/b".into())),
        (ForgeKind::Gitea, Target::Repo("noslash".into())),
        (ForgeKind::Gitlab, Target::Repo("g//p".into())),
        (ForgeKind::Gitlab, Target::Org("".into())),
    ] {
        let result = target.hooks_segments(kind);
        assert!(
            matches!(result, Err(ForgeError::InvalidTarget { .. })),
            "{kind} {target}"
        );
    }
}

#[test]
fn targets_parse_from_their_prefixed_forms() {
    for (input, expected) in [
        ("o/r", Some(Target::Repo("o/r".into()))),
        ("repo:o/r", Some(Target::Repo("o/r".into()))),
        ("project:g/s/p", Some(Target::Repo("g/s/p".into()))),
        ("org:acme", Some(Target::Org("acme".into()))),
        ("group:g/s", Some(Target::Org("g/s".into()))),
        ("acme", None),
        ("team:acme", None),
        ("org:", None),
    ] {
        assert_eq!(input.parse::<Target>().ok(), expected, "{input}");
    }
    let target = Target::Org("acme".into());
    assert_eq!(target.to_string().parse::<Target>().unwrap(), target);
}

#[test]
fn kinds_parse_and_print() {
    for kind in ForgeKind::ALL {
        assert_eq!(kind.as_str().parse::<ForgeKind>().unwrap(), kind);
    }
    assert_eq!("Forgejo".parse::<ForgeKind>().unwrap(), ForgeKind::Gitea);
    assert!("bitbucket".parse::<ForgeKind>().is_err());
}

#[test]
fn api_bases_are_checked() {
    let token = || SecretString::from("t");
    assert!(matches!(
        Forge::new(ForgeKind::Gitea, None, token()),
        Err(ForgeError::MissingApiBase { .. })
    ));
    for bad in [
        "ftp://x",
        "not a url",
        "https://u:p@x/api",
        "https://x/api?a=1",
    ] {
        assert!(
            matches!(
                Forge::new(ForgeKind::Github, Some(bad), token()),
                Err(ForgeError::InvalidApiBase { .. })
            ),
            "{bad}"
        );
    }
    // A base carrying credentials is refused without repeating them.
    let error =
        Forge::new(ForgeKind::Github, Some("https://u:hunter2@x/api"), token()).unwrap_err();
    assert!(!format!("{error} {error:?}").contains("hunter2"), "{error}");
    let forge = Forge::new(ForgeKind::Gitlab, None, token()).unwrap();
    assert_eq!(forge.api_base().as_str(), "https://gitlab.com/api/v4");
}

#[test]
fn debug_never_shows_the_token() {
    let forge = Forge::new(
        ForgeKind::Github,
        None,
        SecretString::from("ghp_supersecret"),
    )
    .unwrap();
    let debug = format!("{forge:?}");
    assert!(!debug.contains("ghp_supersecret"), "{debug}");
    assert!(debug.contains("api.github.com"), "{debug}");
    let wanted = crate::WantedHook {
        url: "https://x/hooks".into(),
        secret: SecretString::from("hooksecret"),
        rewrite_secret: false,
    };
    assert!(!format!("{wanted:?}").contains("hooksecret"));
}

#[test]
fn the_next_link_is_found() {
    for (header, expected) in [
        (
            r#"<https://api.github.com/repositories/1/hooks?page=2>; rel="next", <https://api.github.com/repositories/1/hooks?page=3>; rel="last""#,
            Some("https://api.github.com/repositories/1/hooks?page=2"),
        ),
        (
            r#"<https://x/?page=1>; rel="prev", <https://x/?page=3>; rel="next""#,
            Some("https://x/?page=3"),
        ),
        (
            r#"<https://x/?page=1>; rel="first", <https://x/?page=1>; rel="prev""#,
            None,
        ),
        (
            r#"<https://x/?page=4>; rel="last next""#,
            Some("https://x/?page=4"),
        ),
        ("", None),
    ] {
        assert_eq!(link_next(header), expected, "{header}");
    }
}

#[test]
fn error_messages_are_taken_from_each_forges_body() {
    for (body, expected) in [
        (
            r#"{"message":"Not Found","documentation_url":"https://docs.github.com"}"#,
            "Not Found",
        ),
        (
            r#"{"message":"Validation Failed","errors":[{"resource":"Hook","code":"custom","message":"Hook already exists on this repository"}]}"#,
            "Validation Failed (Hook already exists on this repository)",
        ),
        (r#"{"message":"401 Unauthorized"}"#, "401 Unauthorized"),
        (r#"{"error":"url is missing"}"#, "url is missing"),
        (
            r#"{"message":{"url":["is blocked"]}}"#,
            r#"{"url":["is blocked"]}"#,
        ),
        (
            r#"{"errors":null,"message":"The target couldn't be found.","url":"x"}"#,
            "The target couldn't be found.",
        ),
        ("<html>bad gateway</html>", "<html>bad gateway</html>"),
        (
            r#"{"type":"https://stoplight.io/prism/errors#VIOLATIONS","title":"Request/Response not valid","status":500}"#,
            "Request/Response not valid",
        ),
        ("", "Not Found"),
    ] {
        assert_eq!(
            error_message(StatusCode::NOT_FOUND, body.as_bytes()),
            expected,
            "{body}"
        );
    }
}

#[test]
fn secrets_are_redacted_from_messages() {
    let token = SecretString::from("tok123");
    let secret = SecretString::from("s3cr3t");
    let empty = SecretString::from("");
    let text = redact(
        "bad token tok123 and s3cr3t",
        &[Some(&token), Some(&secret), Some(&empty), None],
    );
    assert_eq!(text, "bad token [REDACTED] and [REDACTED]");
}

fn hook(events: &[&str], content_type: Option<&str>, has_secret: Option<bool>) -> Hook {
    Hook {
        id: 1,
        url: "https://x/hooks".into(),
        events: events.iter().map(|e| e.to_string()).collect(),
        active: true,
        content_type: content_type.map(str::to_owned),
        insecure_ssl: false,
        has_secret,
    }
}

#[test]
fn the_diff_names_only_what_differs() {
    let json = Some("json");
    let gitlab_events = &["push", "tag_push"];
    for (kind, hook, rewrite, expected) in [
        (
            ForgeKind::Github,
            hook(&["push"], json, Some(true)),
            false,
            vec![],
        ),
        (
            ForgeKind::Github,
            hook(&["push"], json, Some(true)),
            true,
            vec!["secret"],
        ),
        (
            ForgeKind::Github,
            hook(&["push"], json, Some(false)),
            false,
            vec!["secret"],
        ),
        (
            ForgeKind::Github,
            hook(&["push", "issues"], Some("form"), Some(true)),
            false,
            vec!["events", "content_type"],
        ),
        (ForgeKind::Gitea, hook(&["push"], json, None), false, vec![]),
        (
            ForgeKind::Gitea,
            hook(&["create", "push"], json, None),
            false,
            vec!["events"],
        ),
        (
            ForgeKind::Gitlab,
            hook(gitlab_events, None, None),
            false,
            vec![],
        ),
        (
            ForgeKind::Gitlab,
            hook(&["push"], None, None),
            false,
            vec!["events"],
        ),
    ] {
        assert_eq!(
            diff(kind, &hook, rewrite).names(),
            expected,
            "{kind} {hook:?}"
        );
    }
    let mut off = hook(&["push"], json, Some(true));
    off.active = false;
    off.insecure_ssl = true;
    assert_eq!(
        diff(ForgeKind::Github, &off, false).names(),
        ["active", "insecure_ssl"]
    );
    assert!(Change::default().is_empty());
}

#[test]
fn urls_match_despite_a_trailing_slash() {
    assert!(same_url(
        "https://x/hooks/github",
        "https://x/hooks/github/"
    ));
    assert!(!same_url(
        "https://x/hooks/github",
        "https://x/hooks/gitlab"
    ));
}

#[test]
fn the_https_connector_builds_without_a_process_wide_rustls_provider() {
    use rustls::crypto::CryptoProvider;
    use std::sync::Arc;
    use std::time::Duration;

    use crate::http::{https_connector, native_roots, tls_config};

    // Nothing in this crate installs a default provider, and nothing needs
    // one: ring is given to each client's configuration.
    assert!(CryptoProvider::get_default().is_none());
    let config = tls_config(rustls::RootCertStore::empty()).unwrap();
    assert!(config.alpn_protocols.is_empty());
    let proxies = Arc::new(hyper_util::client::proxy::matcher::Matcher::builder().build());
    let _connector = https_connector(config, proxies, Duration::from_secs(1));
    let _native = tls_config(native_roots()).unwrap();
    // The whole client, on an https base, builds outside any runtime.
    let forge = Forge::new(ForgeKind::Github, None, SecretString::from("t")).unwrap();
    assert_eq!(forge.api_base().scheme(), "https");
    assert!(CryptoProvider::get_default().is_none());
}

/// A one-connection HTTP server on 127.0.0.1 that reads a request head and
/// writes `answer` (nothing when `None`, holding the connection open).
async fn serve_once(answer: Option<Vec<u8>>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/api/v1", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        match answer {
            Some(answer) => {
                let _ = socket.write_all(&answer).await;
            }
            None => tokio::time::sleep(std::time::Duration::from_secs(30)).await,
        }
    });
    base
}

#[tokio::test]
async fn a_silent_forge_times_out() {
    let base = serve_once(None).await;
    let forge = Forge::with_timeout(
        ForgeKind::Gitea,
        Some(&base),
        SecretString::from("t"),
        std::time::Duration::from_millis(200),
    )
    .unwrap();
    let err = forge.hooks(&Target::Repo("o/r".into())).await.unwrap_err();
    assert_eq!(err.kind(), "transport", "{err:?}");
    let source = std::error::Error::source(&err).unwrap().to_string();
    assert!(source.contains("within"), "{source}");
}

#[tokio::test]
async fn a_redirect_is_an_error_not_followed() {
    let answer =
        b"HTTP/1.1 302 Found\r\nLocation: http://elsewhere.invalid/\r\nContent-Length: 0\r\n\r\n";
    let base = serve_once(Some(answer.to_vec())).await;
    let forge = Forge::new(ForgeKind::Gitlab, Some(&base), SecretString::from("t")).unwrap();
    let err = forge.hooks(&Target::Repo("o/r".into())).await.unwrap_err();
    assert_eq!(err.status(), Some(302), "{err:?}");
}

#[tokio::test]
async fn a_huge_error_body_is_cut_short_and_redacted() {
    let body = format!("tok-secret {}", "x".repeat(1024 * 1024));
    let mut answer = format!(
        "HTTP/1.1 500 Internal Server Error\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    answer.extend_from_slice(body.as_bytes());
    let base = serve_once(Some(answer)).await;
    let forge = Forge::new(
        ForgeKind::Github,
        Some(&base),
        SecretString::from("tok-secret"),
    )
    .unwrap();
    let err = forge.hooks(&Target::Repo("o/r".into())).await.unwrap_err();
    let ForgeError::Status {
        status: 500,
        message,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert!(message.starts_with("[REDACTED] xxx"), "{message}");
    assert!(message.chars().count() <= 300);
}
