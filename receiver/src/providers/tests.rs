//! Every forge's published example payloads, verified and normalised through
//! one data-driven `check` helper.

use std::time::Duration;

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use jiff::Timestamp;
use pushsync_proto::{Provider, PushEvent, RefKind};
use pushsync_testkit::{sign, webhook_fixture};

use super::*;
use crate::secrets::{SecretSource, SecretSources};

const SECRET: &str = "fixture-secret";

fn secrets() -> Secrets {
    SecretSources {
        github: SecretSource::inline("PUSHSYNC_GITHUB_SECRET", SECRET),
        gitlab_token: SecretSource::inline("PUSHSYNC_GITLAB_TOKEN", SECRET),
        gitea: SecretSource::inline("PUSHSYNC_GITEA_SECRET", SECRET),
        bitbucket: SecretSource::inline("PUSHSYNC_BITBUCKET_SECRET", SECRET),
        ..SecretSources::default()
    }
    .load()
    .unwrap()
}

fn options() -> VerifyOptions {
    VerifyOptions {
        timestamp_tolerance: Duration::from_secs(300),
        now: Timestamp::now(),
    }
}

pub(crate) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

/// Headers a forge sends with `body`, signed with [`SECRET`].
fn signed(route: Route, event: &str, body: &[u8]) -> HeaderMap {
    let content_type = ("content-type", "application/json");
    match route {
        Route::Github => headers(&[
            content_type,
            ("x-github-event", event),
            ("x-github-delivery", "d-1"),
            ("x-hub-signature-256", &sign::hub_signature(SECRET, body)),
        ]),
        Route::Gitlab => headers(&[
            content_type,
            ("x-gitlab-event", event),
            ("x-gitlab-token", SECRET),
        ]),
        Route::Gitea => {
            let (event_header, signature_header) = match event {
                "gogs" => ("x-gogs-event", "x-gogs-signature"),
                "forgejo" => ("x-forgejo-event", "x-forgejo-signature"),
                _ => ("x-gitea-event", "x-gitea-signature"),
            };
            headers(&[
                content_type,
                (event_header, "push"),
                (signature_header, &sign::gitea_signature(SECRET, body)),
            ])
        }
        Route::Bitbucket => headers(&[
            content_type,
            ("x-event-key", event),
            ("x-hub-signature", &sign::hub_signature(SECRET, body)),
        ]),
    }
}

/// What one normalised event must look like.
#[derive(Debug, Clone, Copy)]
struct Expect {
    provider: Provider,
    repo: &'static str,
    full_name: &'static str,
    git_ref: &'static str,
    kind: RefKind,
    before: Option<&'static str>,
    after: Option<&'static str>,
    created: bool,
    deleted: bool,
    paths: &'static [&'static str],
    incomplete: bool,
    pusher: Option<&'static str>,
}

fn run(route: Route, event: &str, fixture: &str) -> Result<Action, Error> {
    let body = webhook_fixture(fixture);
    let headers = signed(route, event, &body);
    let envelope = route.describe(&headers);
    route.verify(&headers, &body, &secrets(), options())?;
    route.parse(&envelope, &headers, &body, "d-1", Timestamp::now())
}

#[track_caller]
fn check(route: Route, event: &str, fixture: &str, expected: &[Expect]) {
    let events = match run(route, event, fixture) {
        Ok(Action::Publish(events)) => events,
        other => panic!("{fixture}: expected events, got {other:?}"),
    };
    assert_eq!(events.len(), expected.len(), "{fixture}: number of events");
    for (got, want) in events.iter().zip(expected) {
        check_event(fixture, got, want);
    }
}

#[track_caller]
fn check_event(fixture: &str, got: &PushEvent, want: &Expect) {
    let short = |c: &Option<String>| c.as_ref().map(|c| c[..8].to_owned());
    assert_eq!(got.provider, want.provider, "{fixture}: provider");
    assert_eq!(
        got.repository.id.as_str(),
        want.repo,
        "{fixture}: repository id"
    );
    assert_eq!(
        got.repository.full_name, want.full_name,
        "{fixture}: full name"
    );
    assert!(
        !got.repository.clone_urls.is_empty(),
        "{fixture}: clone urls"
    );
    assert_eq!(got.git_ref.full, want.git_ref, "{fixture}: ref");
    assert_eq!(got.git_ref.kind, want.kind, "{fixture}: ref kind");
    assert_eq!(
        short(&got.before).as_deref(),
        want.before,
        "{fixture}: before"
    );
    assert_eq!(short(&got.after).as_deref(), want.after, "{fixture}: after");
    assert_eq!(
        (got.created, got.deleted),
        (want.created, want.deleted),
        "{fixture}: created/deleted"
    );
    assert_eq!(got.changed_paths.paths, want.paths, "{fixture}: paths");
    assert_eq!(
        got.changed_paths.incomplete, want.incomplete,
        "{fixture}: incomplete"
    );
    assert_eq!(got.pusher.as_deref(), want.pusher, "{fixture}: pusher");
    assert_eq!(got.delivery_id, "d-1");
}

const GITHUB_HELLO: Expect = Expect {
    provider: Provider::Github,
    repo: "github.com/codertocat/hello-world",
    full_name: "Codertocat/Hello-World",
    git_ref: "refs/heads/master",
    kind: RefKind::Branch,
    before: None,
    after: Some("6113728f"),
    created: true,
    deleted: false,
    paths: &["README.md"],
    // A new branch: its commits are not a diff against anything deployed.
    incomplete: true,
    pusher: Some("Codertocat"),
};

#[test]
fn github_fixtures_normalise() {
    check(
        Route::Github,
        "push",
        "github-push-commits.json",
        &[Expect {
            repo: "github.com/binkkatal/sample_app",
            full_name: "binkkatal/sample_app",
            before: Some("737d38c5"),
            after: Some("fd489864"),
            created: false,
            paths: &[
                ".razorops.yaml",
                "app/controllers/application_controller.rb",
            ],
            incomplete: false,
            pusher: Some("binkkatal"),
            ..GITHUB_HELLO
        }],
    );
    check(
        Route::Github,
        "push",
        "github-push-new-branch.json",
        &[GITHUB_HELLO],
    );
    check(
        Route::Github,
        "push",
        "github-push-no-username-committer.json",
        &[GITHUB_HELLO],
    );
    let tag_deleted = Expect {
        git_ref: "refs/tags/simple-tag",
        kind: RefKind::Tag,
        before: Some("6113728f"),
        after: None,
        created: false,
        deleted: true,
        paths: &[],
        incomplete: false,
        ..GITHUB_HELLO
    };
    check(
        Route::Github,
        "push",
        "github-push-tag-deleted.json",
        &[tag_deleted],
    );
    check(
        Route::Github,
        "push",
        "github-push-tag-deleted-org.json",
        &[tag_deleted],
    );
}

#[test]
fn github_pings_answer_and_other_events_are_ignored() {
    assert!(matches!(
        run(Route::Github, "ping", "github-ping.json"),
        Ok(Action::Ping)
    ));
    assert!(matches!(
        run(Route::Github, "ping", "github-ping-org-hook.json"),
        Ok(Action::Ping)
    ));
    assert!(matches!(
        run(Route::Github, "issues", "github-ping.json"),
        Ok(Action::Ignore)
    ));
}

const GITLAB_DIASPORA: Expect = Expect {
    provider: Provider::Gitlab,
    repo: "example.com/mike/diaspora",
    full_name: "mike/diaspora",
    git_ref: "refs/heads/master",
    kind: RefKind::Branch,
    before: Some("95790bf8"),
    after: Some("da156088"),
    created: false,
    deleted: false,
    paths: &["CHANGELOG", "app/controller/application.rb"],
    // total_commits_count (4) is larger than the two commits listed.
    incomplete: true,
    pusher: Some("jsmith"),
};

#[test]
fn gitlab_fixtures_normalise() {
    check(
        Route::Gitlab,
        "Push Hook",
        "gitlab-push-docs.json",
        &[GITLAB_DIASPORA],
    );
    check(
        Route::Gitlab,
        "Push Hook",
        "gitlab-push-go-gitlab.json",
        &[GITLAB_DIASPORA],
    );
    check(
        Route::Gitlab,
        "Push Hook",
        "gitlab-push.json",
        &[Expect {
            pusher: Some("John Smith"),
            ..GITLAB_DIASPORA
        }],
    );
    check(
        Route::Gitlab,
        "System Hook",
        "gitlab-system-hook-push.json",
        &[Expect {
            // The system hook's commit carries no file lists.
            paths: &[],
            incomplete: true,
            pusher: Some("John Smith"),
            ..GITLAB_DIASPORA
        }],
    );
    let tag = Expect {
        repo: "example.com/jsmith/example",
        full_name: "jsmith/example",
        git_ref: "refs/tags/v1.0.0",
        kind: RefKind::Tag,
        before: None,
        after: Some("82b3d5ae"),
        created: true,
        paths: &[],
        incomplete: true,
        pusher: Some("John Smith"),
        ..GITLAB_DIASPORA
    };
    check(
        Route::Gitlab,
        "Tag Push Hook",
        "gitlab-tag-push-docs.json",
        &[tag],
    );
    check(
        Route::Gitlab,
        "Tag Push Hook",
        "gitlab-tag-push.json",
        &[tag],
    );
    check(
        Route::Gitlab,
        "Tag Push Hook",
        "gitlab-tag-push-go-gitlab.json",
        &[Expect {
            paths: &["CHANGELOG", "UPGRADE.md"],
            pusher: Some("jsmith"),
            ..tag
        }],
    );
}

#[test]
fn gitlab_system_hooks_other_than_pushes_are_ignored() {
    let body = br#"{"event_name":"project_create","name":"x"}"#;
    let headers = signed(Route::Gitlab, "System Hook", body);
    let envelope = Route::Gitlab.describe(&headers);
    let action = Route::Gitlab.parse(&envelope, &headers, body, "d-1", Timestamp::now());
    assert!(matches!(action, Ok(Action::Ignore)), "{action:?}");
}

#[test]
fn gitea_gogs_and_forgejo_fixtures_normalise() {
    let gitea = Expect {
        provider: Provider::Gitea,
        repo: "localhost/example/example",
        full_name: "example/example",
        git_ref: "refs/heads/master",
        kind: RefKind::Branch,
        before: None,
        after: Some("67b56589"),
        created: true,
        deleted: false,
        paths: &["example"],
        incomplete: true,
        pusher: Some("example"),
    };
    check(Route::Gitea, "gitea", "gitea-push.json", &[gitea]);
    check(
        Route::Gitea,
        "forgejo",
        "gitea-push.json",
        &[Expect {
            provider: Provider::Forgejo,
            ..gitea
        }],
    );
    check(
        Route::Gitea,
        "gogs",
        "gogs-push.json",
        &[Expect {
            provider: Provider::Gogs,
            repo: "localhost/unknwon/webhooks",
            full_name: "unknwon/webhooks",
            git_ref: "refs/heads/develop",
            before: Some("28e1879d"),
            after: Some("bffeb742"),
            created: false,
            // Gogs commits carry no file lists.
            paths: &[],
            incomplete: true,
            pusher: Some("unknwon"),
            ..gitea
        }],
    );
}

#[test]
fn bitbucket_fixtures_normalise() {
    check(
        Route::Bitbucket,
        "repo:push",
        "bitbucket-cloud-push.json",
        &[Expect {
            provider: Provider::BitbucketCloud,
            repo: "bitbucket.org/team_name/repo_name",
            full_name: "team_name/repo_name",
            git_ref: "refs/heads/name-of-branch",
            kind: RefKind::Branch,
            before: Some("1e65c05c"),
            after: Some("709d658d"),
            created: false,
            deleted: false,
            paths: &[],
            incomplete: true,
            pusher: Some("emmap1"),
        }],
    );
    check(
        Route::Bitbucket,
        "repo:refs_changed",
        "bitbucket-server-refs-changed.json",
        &[Expect {
            provider: Provider::BitbucketServer,
            repo: "server.bitbucket.local/scm/~gopher/webhook-test",
            full_name: "~gopher/webhook-test",
            git_ref: "refs/heads/feature/wip",
            kind: RefKind::Branch,
            before: Some("32a0b8a7"),
            after: None,
            created: false,
            deleted: true,
            paths: &[],
            incomplete: false,
            pusher: Some("gopher"),
        }],
    );
    let body = br#"{"test": true}"#;
    let headers = signed(Route::Bitbucket, "diagnostics:ping", body);
    let envelope = Route::Bitbucket.describe(&headers);
    assert!(matches!(
        Route::Bitbucket.parse(&envelope, &headers, body, "d", Timestamp::now()),
        Ok(Action::Ping)
    ));
}

#[test]
fn bitbucket_server_repository_matches_both_clone_urls() {
    let Ok(Action::Publish(events)) = run(
        Route::Bitbucket,
        "repo:refs_changed",
        "bitbucket-server-refs-changed.json",
    ) else {
        panic!("expected events");
    };
    let ssh = pushsync_proto::RepoId::parse(
        "ssh://git@server.bitbucket.local:7999/~gopher/webhook-test.git",
    )
    .unwrap();
    assert!(events[0].repository.is(&ssh));
}

#[test]
fn every_fixture_fails_verification_when_tampered_or_unsigned() {
    let cases = [
        (Route::Github, "push", "github-push-commits.json"),
        (Route::Gitlab, "Push Hook", "gitlab-push-docs.json"),
        (Route::Gitea, "gitea", "gitea-push.json"),
        (Route::Gitea, "gogs", "gogs-push.json"),
        (Route::Bitbucket, "repo:push", "bitbucket-cloud-push.json"),
    ];
    for (route, event, fixture) in cases {
        let body = webhook_fixture(fixture);
        let good = signed(route, event, &body);
        let mut tampered = body.clone();
        tampered[10] ^= 1;
        let result = route.verify(&good, &tampered, &secrets(), options());
        // GitLab's plain token does not cover the body; everyone else's HMAC does.
        if route == Route::Gitlab {
            assert!(result.is_ok(), "{fixture}");
        } else {
            assert!(
                matches!(result, Err(Error::InvalidSignature)),
                "{fixture}: {result:?}"
            );
        }
        let unsigned = headers(&[("content-type", "application/json")]);
        let result = route.verify(&unsigned, &body, &secrets(), options());
        assert!(
            matches!(result, Err(Error::MissingSignature)),
            "{fixture}: {result:?}"
        );
        let result = route.verify(&good, &body, &Secrets::default(), options());
        assert!(
            matches!(result, Err(Error::ProviderNotConfigured)),
            "{fixture}: {result:?}"
        );
    }
}

#[test]
fn malformed_signatures_are_invalid_not_errors() {
    let body = webhook_fixture("github-push-commits.json");
    for signature in ["sha256=", "sha256=zz", "sha1=abcd", "abcdef", "sha256=abc"] {
        let headers = headers(&[("x-hub-signature-256", signature)]);
        let result = Route::Github.verify(&headers, &body, &secrets(), options());
        assert!(
            matches!(result, Err(Error::InvalidSignature)),
            "{signature}: {result:?}"
        );
    }
    // A valid signature cut short is still invalid.
    let full = sign::hub_signature(SECRET, &body);
    let headers = headers(&[("x-hub-signature-256", &full[..full.len() - 2])]);
    assert!(matches!(
        Route::Github.verify(&headers, &body, &secrets(), options()),
        Err(Error::InvalidSignature)
    ));
}

mod gitlab_signing {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn signing_secrets(with_token: bool) -> Secrets {
        SecretSources {
            gitlab_signing: SecretSource::inline(
                "PUSHSYNC_GITLAB_SIGNING_TOKEN",
                &sign::gitlab_signing_token(KEY),
            ),
            gitlab_token: if with_token {
                SecretSource::inline("PUSHSYNC_GITLAB_TOKEN", SECRET)
            } else {
                SecretSource::default()
            },
            ..SecretSources::default()
        }
        .load()
        .unwrap()
    }

    fn signed_headers(id: &str, timestamp: i64, signature: &str) -> HeaderMap {
        headers(&[
            ("webhook-id", id),
            ("webhook-timestamp", &timestamp.to_string()),
            ("webhook-signature", signature),
            ("x-gitlab-token", SECRET),
        ])
    }

    #[test]
    fn a_valid_standard_webhooks_signature_is_accepted() {
        let body = webhook_fixture("gitlab-push-docs.json");
        let now = options().now.as_second();
        let signature = sign::standard_webhook_signature(KEY, "msg_1", now, &body);
        let headers = signed_headers("msg_1", now, &format!("v1,bm90LWl0 {signature}"));
        for with_token in [false, true] {
            let result =
                Route::Gitlab.verify(&headers, &body, &signing_secrets(with_token), options());
            assert!(result.is_ok(), "{result:?}");
        }
    }

    #[test]
    fn wrong_stale_or_missing_signatures_are_rejected() {
        let body = webhook_fixture("gitlab-push-docs.json");
        let now = options().now.as_second();
        let secrets = signing_secrets(false);
        let check = |headers: HeaderMap, body: &[u8]| {
            Route::Gitlab.verify(&headers, body, &secrets, options())
        };

        let good = sign::standard_webhook_signature(KEY, "msg_1", now, &body);
        assert!(matches!(
            check(signed_headers("msg_2", now, &good), &body),
            Err(Error::InvalidSignature)
        ));
        assert!(matches!(
            check(signed_headers("msg_1", now, &good), b"{}"),
            Err(Error::InvalidSignature)
        ));
        let old = now - 600;
        let stale = sign::standard_webhook_signature(KEY, "msg_1", old, &body);
        assert!(matches!(
            check(signed_headers("msg_1", old, &stale), &body),
            Err(Error::StaleTimestamp)
        ));
        let wrong_key = sign::standard_webhook_signature(b"another key", "msg_1", now, &body);
        assert!(matches!(
            check(signed_headers("msg_1", now, &wrong_key), &body),
            Err(Error::InvalidSignature)
        ));
        assert!(matches!(
            check(headers(&[("x-gitlab-token", SECRET)]), &body),
            Err(Error::MissingSignature)
        ));
    }

    #[test]
    fn the_plain_token_is_still_required_when_configured() {
        let body = webhook_fixture("gitlab-push-docs.json");
        let now = options().now.as_second();
        let signature = sign::standard_webhook_signature(KEY, "msg_1", now, &body);
        let mut headers = signed_headers("msg_1", now, &signature);
        headers.insert(
            HeaderName::from_static("x-gitlab-token"),
            HeaderValue::from_static("wrong"),
        );
        let result = Route::Gitlab.verify(&headers, &body, &signing_secrets(true), options());
        assert!(matches!(result, Err(Error::InvalidSignature)), "{result:?}");
    }
}

#[test]
fn malformed_bodies_say_what_is_wrong() {
    let cases: &[(&[u8], &str)] = &[
        (b"not json", "expected ident"),
        (b"{}", "missing field `ref`"),
        (br#"{"ref":"refs/heads/main","before":"xyz","after":"0000000000000000000000000000000000000000","repository":{"full_name":"a/b","html_url":"https://github.com/a/b"}}"#, "before is not a commit id"),
        (br#"{"ref":"refs/heads/main","before":"0000000000000000000000000000000000000000","after":"6113728f27ae82c7b1a177c8d03f9e96e0adf246","repository":{"full_name":"a/b"}}"#, "repository has no usable URL"),
        (br#"{"ref":"","before":"0000000000000000000000000000000000000000","after":"6113728f27ae82c7b1a177c8d03f9e96e0adf246","repository":{"full_name":"a/b","html_url":"https://github.com/a/b"}}"#, "ref is empty"),
    ];
    for (body, detail) in cases {
        let headers = signed(Route::Github, "push", body);
        let envelope = Route::Github.describe(&headers);
        match Route::Github.parse(&envelope, &headers, body, "d", Timestamp::now()) {
            Err(Error::MalformedPayload { detail: got }) => {
                assert!(got.contains(detail), "{got:?} lacks {detail:?}")
            }
            other => panic!("{}: {other:?}", String::from_utf8_lossy(body)),
        }
    }
}

#[test]
fn form_encoded_github_and_gitea_bodies_are_read() {
    let json = webhook_fixture("github-push-commits.json");
    let form =
        serde_urlencoded::to_string([("payload", String::from_utf8(json).unwrap())]).unwrap();
    let mut headers = signed(Route::Github, "push", form.as_bytes());
    headers.insert(
        HeaderName::from_static("content-type"),
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    let envelope = Route::Github.describe(&headers);
    assert!(
        Route::Github
            .verify(&headers, form.as_bytes(), &secrets(), options())
            .is_ok()
    );
    let action = Route::Github.parse(&envelope, &headers, form.as_bytes(), "d", Timestamp::now());
    assert!(
        matches!(action, Ok(Action::Publish(ref events)) if events.len() == 1),
        "{action:?}"
    );

    // GitLab sends JSON only.
    let action = Route::Gitlab.parse(
        &Route::Gitlab.describe(&headers),
        &headers,
        form.as_bytes(),
        "d",
        Timestamp::now(),
    );
    assert!(
        matches!(action, Err(Error::UnsupportedMediaType)),
        "{action:?}"
    );
}

#[test]
fn unsupported_content_types_are_refused() {
    let body = webhook_fixture("github-push-commits.json");
    let mut headers = signed(Route::Github, "push", &body);
    headers.insert(
        HeaderName::from_static("content-type"),
        HeaderValue::from_static("text/plain"),
    );
    let envelope = Route::Github.describe(&headers);
    let action = Route::Github.parse(&envelope, &headers, &body, "d", Timestamp::now());
    assert!(
        matches!(action, Err(Error::UnsupportedMediaType)),
        "{action:?}"
    );
}

#[test]
fn a_missing_event_header_is_a_bad_request() {
    let body = webhook_fixture("github-push-commits.json");
    let headers = headers(&[("content-type", "application/json")]);
    for route in [Route::Github, Route::Gitlab, Route::Gitea, Route::Bitbucket] {
        let envelope = route.describe(&headers);
        assert_eq!(envelope.event_label, "none");
        let action = route.parse(&envelope, &headers, &body, "d", Timestamp::now());
        assert!(
            matches!(action, Err(Error::MissingEvent { .. })),
            "{route:?}: {action:?}"
        );
    }
}

#[test]
fn delivery_ids_are_bounded_and_printable() {
    let long = "x".repeat(500);
    let headers = headers(&[("x-github-delivery", &format!("a b\t{long}"))]);
    let id = Route::Github.describe(&headers).delivery_id.unwrap();
    assert!(id.starts_with("abx"));
    assert_eq!(id.len(), 128);
}
