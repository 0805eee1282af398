//! The forge clients against stateful fakes of GitHub, GitLab and Gitea,
//! each behind prism validating every request and response against the
//! forge's API description: GitHub's official one (@octokit/openapi
//! 23.0.2: api.github.com, and GHES 3.19 for a prefixed base), Gitea's as
//! served by 1.22, and for GitLab a hand-written description of the hook
//! endpoints (GitLab's own could not be obtained; see tests/openapi/NOTICE).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed step fails the test"
)]

#[path = "../fake/mod.rs"]
mod fake;
mod prism;

use pushsync_forge::{Ensured, Forge, ForgeError, ForgeKind, Target, WantedHook};
use secrecy::SecretString;

use fake::{StoredHook, TOKEN};
use prism::{Stack, stacks};

const SECRET: &str = "hook-secret-9f8e7d";
const ROTATED: &str = "hook-secret-rotated-1a2b";

/// Every forge with its stack, for tests that hold for all three.
fn all() -> [(ForgeKind, &'static Stack); 3] {
    let s = stacks();
    [
        (ForgeKind::Github, &s.github),
        (ForgeKind::Gitlab, &s.gitlab),
        (ForgeKind::Gitea, &s.gitea),
    ]
}

fn client(kind: ForgeKind, stack: &Stack) -> Forge {
    Forge::new(kind, Some(&stack.base), SecretString::from(TOKEN)).unwrap()
}

fn wanted(url: &str, secret: &str, rewrite_secret: bool) -> WantedHook {
    WantedHook {
        url: url.to_owned(),
        secret: SecretString::from(secret),
        rewrite_secret,
    }
}

/// A repository target unique to a test and forge (GitLab: nested).
fn repo(kind: ForgeKind, test: &str) -> Target {
    match kind {
        ForgeKind::Gitlab => Target::Repo(format!("platform/apps/{test}")),
        _ => Target::Repo(format!("acme/{test}")),
    }
}

/// The fake's key for a target.
fn scope(kind: ForgeKind, target: &Target) -> String {
    match (kind, target) {
        (ForgeKind::Gitlab, Target::Repo(p)) => format!("projects/{p}"),
        (ForgeKind::Gitlab, Target::Org(p)) => format!("groups/{p}"),
        (_, Target::Repo(p)) => format!("repos/{p}"),
        (_, Target::Org(p)) => format!("orgs/{p}"),
    }
}

fn hook_url(test: &str) -> String {
    format!("https://pushsync.example.com/hooks/{test}")
}

/// The stored hook is exactly what pushsync wants on `kind`.
fn assert_wanted(kind: ForgeKind, hook: &StoredHook, secret: &str) {
    let mut events = hook.events.clone();
    events.sort();
    assert_eq!(events, kind.wanted_events(), "{kind}: {hook:?}");
    assert!(hook.active, "{kind}: {hook:?}");
    assert!(!hook.insecure_ssl, "{kind}: {hook:?}");
    assert_eq!(hook.secret.as_deref(), Some(secret), "{kind}");
    if kind != ForgeKind::Gitlab {
        assert_eq!(hook.content_type.as_deref(), Some("json"), "{kind}");
    }
}

#[tokio::test]
async fn register_creates_one_hook_and_a_second_ensure_writes_nothing() {
    for (kind, stack) in all() {
        let (forge, target) = (client(kind, stack), repo(kind, "register"));
        let url = hook_url("register");
        let created = forge
            .ensure(&target, &wanted(&url, SECRET, false))
            .await
            .unwrap();
        let Ensured::Created { id } = created else {
            panic!("{kind}: {created:?}")
        };
        let hooks = stack.fake.hooks(&scope(kind, &target));
        assert_eq!(hooks.len(), 1, "{kind}");
        assert_eq!((hooks[0].id, hooks[0].url.as_str()), (id, url.as_str()));
        assert_wanted(kind, &hooks[0], SECRET);

        let writes = stack.fake.writes(&scope(kind, &target)).len();
        let again = forge
            .ensure(&target, &wanted(&format!("{url}/"), SECRET, false))
            .await
            .unwrap();
        assert_eq!(
            again,
            Ensured::Unchanged {
                id,
                duplicates: vec![]
            },
            "{kind}"
        );
        assert_eq!(
            stack.fake.writes(&scope(kind, &target)).len(),
            writes,
            "{kind}: a write on an unchanged hook"
        );
        assert_eq!(stack.fake.hooks(&scope(kind, &target)).len(), 1);

        let listed = forge.hooks(&target).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(
            listed[0].has_secret,
            (kind == ForgeKind::Github).then_some(true)
        );
        stack.assert_valid();
    }
}

#[tokio::test]
async fn a_hand_edit_of_the_events_is_put_back_and_the_secret_kept() {
    for (kind, stack) in all() {
        let (forge, target) = (client(kind, stack), repo(kind, "edited"));
        let url = hook_url("edited");
        let id = forge
            .ensure(&target, &wanted(&url, SECRET, false))
            .await
            .unwrap()
            .id();
        let extra = match kind {
            ForgeKind::Github => "issues",
            ForgeKind::Gitlab => "merge_requests",
            ForgeKind::Gitea => "create",
        };
        stack
            .fake
            .edit(&scope(kind, &target), id, |h| h.events.push(extra.into()));
        let result = forge
            .ensure(&target, &wanted(&url, SECRET, false))
            .await
            .unwrap();
        assert_eq!(
            result,
            Ensured::Updated {
                id,
                changed: vec!["events"],
                duplicates: vec![]
            },
            "{kind}"
        );
        assert_wanted(kind, &stack.fake.hooks(&scope(kind, &target))[0], SECRET);
        stack.assert_valid();
    }
}

#[tokio::test]
async fn rewrite_secret_writes_the_secret_and_nothing_else() {
    for (kind, stack) in all() {
        let (forge, target) = (client(kind, stack), repo(kind, "rewrite"));
        let url = hook_url("rewrite");
        let id = forge
            .ensure(&target, &wanted(&url, SECRET, false))
            .await
            .unwrap()
            .id();
        let result = forge
            .ensure(&target, &wanted(&url, ROTATED, true))
            .await
            .unwrap();
        assert_eq!(
            result,
            Ensured::Updated {
                id,
                changed: vec!["secret"],
                duplicates: vec![]
            },
            "{kind}"
        );
        assert_wanted(kind, &stack.fake.hooks(&scope(kind, &target))[0], ROTATED);
        stack.assert_valid();
    }
}

#[tokio::test]
async fn a_github_hook_without_a_secret_gets_one() {
    let stack = &stacks().github;
    let (forge, target) = (
        client(ForgeKind::Github, stack),
        repo(ForgeKind::Github, "nosecret"),
    );
    let url = hook_url("nosecret");
    let id = stack.fake.insert(
        &scope(ForgeKind::Github, &target),
        StoredHook::new(&url, &["push"], None),
    );
    assert_eq!(
        forge.hooks(&target).await.unwrap()[0].has_secret,
        Some(false)
    );
    let result = forge
        .ensure(&target, &wanted(&url, SECRET, false))
        .await
        .unwrap();
    assert_eq!(
        result,
        Ensured::Updated {
            id,
            changed: vec!["secret"],
            duplicates: vec![]
        }
    );
    assert_wanted(
        ForgeKind::Github,
        &stack.fake.hooks(&scope(ForgeKind::Github, &target))[0],
        SECRET,
    );
    stack.assert_valid();
}

#[tokio::test]
async fn our_hook_on_page_three_is_found_and_not_duplicated() {
    for (kind, stack) in all() {
        let (forge, target) = (client(kind, stack), repo(kind, "paged"));
        let key = scope(kind, &target);
        for n in 0..4 {
            let mut other =
                StoredHook::new(&format!("https://ci.example.com/{n}"), &["push"], Some("x"));
            other.content_type = (kind != ForgeKind::Gitlab).then(|| "json".into());
            stack.fake.insert(&key, other);
        }
        let url = hook_url("paged");
        let mut ours = StoredHook::new(&url, kind.wanted_events(), Some(SECRET));
        ours.content_type = (kind != ForgeKind::Gitlab).then(|| "json".into());
        let id = stack.fake.insert(&key, ours);

        assert_eq!(forge.hooks(&target).await.unwrap().len(), 5, "{kind}");
        let result = forge
            .ensure(&target, &wanted(&url, SECRET, false))
            .await
            .unwrap();
        assert_eq!(
            result,
            Ensured::Unchanged {
                id,
                duplicates: vec![]
            },
            "{kind}"
        );
        assert_eq!(stack.fake.hooks(&key).len(), 5, "{kind}");
        assert!(stack.fake.writes(&key).is_empty(), "{kind}");
        let pages: Vec<String> = stack
            .fake
            .requests(&key)
            .iter()
            .filter_map(|r| fake::query_param(&r.query, "page"))
            .collect();
        assert!(pages.contains(&"3".to_owned()), "{kind}: {pages:?}");
        stack.assert_valid();
    }
}

#[tokio::test]
async fn several_hooks_on_our_url_are_reported_not_deleted() {
    let stack = &stacks().github;
    let (forge, target) = (
        client(ForgeKind::Github, stack),
        repo(ForgeKind::Github, "dupes"),
    );
    let key = scope(ForgeKind::Github, &target);
    let url = hook_url("dupes");
    let first = stack
        .fake
        .insert(&key, StoredHook::new(&url, &["push"], Some(SECRET)));
    let second = stack.fake.insert(
        &key,
        StoredHook::new(&format!("{url}/"), &["pull_request"], Some(SECRET)),
    );
    let result = forge
        .ensure(&target, &wanted(&url, SECRET, false))
        .await
        .unwrap();
    assert_eq!(
        result,
        Ensured::Unchanged {
            id: first,
            duplicates: vec![second]
        }
    );
    assert_eq!(stack.fake.hooks(&key).len(), 2);
    stack.assert_valid();
}

#[tokio::test]
async fn organisation_and_group_hooks_are_managed() {
    for (kind, stack) in all() {
        let forge = client(kind, stack);
        let target = match kind {
            ForgeKind::Gitlab => Target::Org("platform/teams".into()),
            _ => Target::Org("acme-org".into()),
        };
        let key = scope(kind, &target);
        let url = hook_url("org");
        let id = forge
            .ensure(&target, &wanted(&url, SECRET, false))
            .await
            .unwrap()
            .id();
        assert_wanted(kind, &stack.fake.hooks(&key)[0], SECRET);
        let again = forge
            .ensure(&target, &wanted(&url, SECRET, false))
            .await
            .unwrap();
        assert_eq!(
            again,
            Ensured::Unchanged {
                id,
                duplicates: vec![]
            },
            "{kind}"
        );
        let ping = forge.ping(&target, id).await;
        match kind {
            ForgeKind::Gitea => assert!(
                matches!(ping, Err(ForgeError::Unsupported { .. })),
                "{ping:?}"
            ),
            _ => ping.unwrap(),
        }
        forge
            .set_secret(&target, id, &SecretString::from(ROTATED))
            .await
            .unwrap();
        assert_wanted(kind, &stack.fake.hooks(&key)[0], ROTATED);
        forge.delete(&target, id).await.unwrap();
        assert!(stack.fake.hooks(&key).is_empty(), "{kind}");
        stack.assert_valid();
    }
}

#[tokio::test]
async fn ping_rotate_and_delete_a_repository_hook() {
    for (kind, stack) in all() {
        let (forge, target) = (client(kind, stack), repo(kind, "lifecycle"));
        let key = scope(kind, &target);
        let id = forge
            .ensure(&target, &wanted(&hook_url("lifecycle"), SECRET, false))
            .await
            .unwrap()
            .id();
        forge.ping(&target, id).await.unwrap();
        let pinged = stack.fake.requests(&key).last().unwrap().path.clone();
        let expected = match kind {
            ForgeKind::Github => format!("/hooks/{id}/pings"),
            ForgeKind::Gitlab => format!("/hooks/{id}/test/push_events"),
            ForgeKind::Gitea => format!("/hooks/{id}/tests"),
        };
        assert!(pinged.ends_with(&expected), "{kind}: {pinged}");

        forge
            .set_secret(&target, id, &SecretString::from(ROTATED))
            .await
            .unwrap();
        assert_wanted(kind, &stack.fake.hooks(&key)[0], ROTATED);

        forge.delete(&target, id).await.unwrap();
        assert!(stack.fake.hooks(&key).is_empty());
        let again = forge.delete(&target, id).await.unwrap_err();
        assert_eq!(again.status(), Some(404), "{kind}: {again}");
        stack.assert_valid();
    }
}

#[tokio::test]
async fn forge_errors_carry_the_forges_message_and_no_credentials() {
    let expected = [
        (ForgeKind::Github, "Not Found"),
        (ForgeKind::Gitlab, "404 Project Not Found"),
        (ForgeKind::Gitea, "The target couldn't be found."),
    ];
    for ((kind, stack), (_, message)) in all().into_iter().zip(expected) {
        let forge = client(kind, stack);
        let err = forge
            .ensure(
                &repo(kind, "missing"),
                &wanted(&hook_url("missing"), SECRET, true),
            )
            .await
            .unwrap_err();
        let ForgeError::Status {
            status: 404,
            message: got,
            ..
        } = &err
        else {
            panic!("{kind}: {err:?}")
        };
        assert_eq!(got, message);
        for shown in [err.to_string(), format!("{err:?}"), format!("{forge:?}")] {
            assert!(
                !shown.contains(TOKEN) && !shown.contains(SECRET),
                "{kind}: {shown}"
            );
        }
        stack.assert_valid();
    }
    // A wrong token: GitLab's 401 (documented in its description).
    let stack = &stacks().gitlab;
    let forge = Forge::new(
        ForgeKind::Gitlab,
        Some(&stack.base),
        SecretString::from("wrong-token-xyz"),
    )
    .unwrap();
    let err = forge
        .hooks(&repo(ForgeKind::Gitlab, "unauthorised"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(401), "{err}");
    assert!(err.to_string().contains("401 Unauthorized"), "{err}");
    assert!(!format!("{err:?} {err}").contains("wrong-token-xyz"));
    stack.assert_valid();
}

#[tokio::test]
async fn requests_carry_each_forges_authentication_and_headers() {
    for (kind, stack) in all() {
        let (forge, target) = (client(kind, stack), repo(kind, "headers"));
        forge.hooks(&target).await.unwrap();
        let request = stack.fake.requests(&scope(kind, &target)).pop().unwrap();
        let header = |name: &str| request.headers.get(name).cloned().unwrap_or_default();
        assert!(header("user-agent").starts_with("pushsync/"), "{kind}");
        match kind {
            ForgeKind::Github => {
                assert_eq!(header("authorization"), format!("Bearer {TOKEN}"));
                assert_eq!(header("accept"), "application/vnd.github+json");
                assert_eq!(header("x-github-api-version"), "2022-11-28");
            }
            ForgeKind::Gitlab => {
                assert_eq!(header("private-token"), TOKEN);
                assert!(
                    request
                        .path
                        .contains("/projects/platform%2Fapps%2Fheaders/hooks"),
                    "{}",
                    request.path
                );
            }
            ForgeKind::Gitea => assert_eq!(header("authorization"), format!("token {TOKEN}")),
        }
        stack.assert_valid();
    }
}

#[tokio::test]
async fn an_enterprise_base_with_a_path_prefix_is_kept() {
    let stack = &stacks().ghes;
    assert!(stack.base.ends_with("/api/v3"));
    let (forge, target) = (
        client(ForgeKind::Github, stack),
        repo(ForgeKind::Github, "ghes"),
    );
    let url = hook_url("ghes");
    let id = forge
        .ensure(&target, &wanted(&url, SECRET, false))
        .await
        .unwrap()
        .id();
    assert_eq!(
        forge
            .ensure(&target, &wanted(&url, SECRET, false))
            .await
            .unwrap(),
        Ensured::Unchanged {
            id,
            duplicates: vec![]
        }
    );
    let requests = stack.fake.requests(&scope(ForgeKind::Github, &target));
    assert!(
        requests
            .iter()
            .all(|r| r.path.starts_with("/api/v3/repos/acme/ghes/hooks")),
        "{requests:?}"
    );
    forge.ping(&target, id).await.unwrap();
    stack.assert_valid();
}

#[test]
fn the_prism_guard_ends_its_child_when_the_test_process_lets_go() {
    let marker = format!("{}.{}", 600, std::process::id());
    let log = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("guard.log");
    let (mut guard, stdin) = prism::guarded(std::path::Path::new("sleep"), &[&marker], &log);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while pushsync_testkit::procs::with_argument(&marker).len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the guarded child did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    drop(stdin);
    guard.wait().unwrap();
    assert!(
        pushsync_testkit::procs::with_argument(&marker).is_empty(),
        "the guarded child outlived its guard"
    );
}
