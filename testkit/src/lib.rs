//! Test support for pushsync: webhook fixtures and signatures, RabbitMQ helpers,
//! real git repositories served by `git daemon`, and a TCP proxy a test can
//! cut. Only ever a dev-dependency.

pub mod amqp;
pub mod git;
pub mod git_http;
pub mod procs;
pub mod proxy;
pub mod sign;

use std::path::PathBuf;

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// The bytes of a webhook fixture in `testdata/webhooks/` (payloads published
/// by the forges or long-lived webhook libraries, kept verbatim).
pub fn webhook_fixture(name: &str) -> Vec<u8> {
    let path = repo_root().join("testdata/webhooks").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("read fixture {}: {e}", path.display()))
}

/// The helm binary for tests: `helm` on `PATH` (the Makefile puts the pinned
/// one there), else the pinned install in `~/.cache/pushsync-tools/bin`.
pub fn helm_binary() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("helm"))
        .find(|candidate| candidate.is_file());
    let pinned = std::env::var_os("HOME")
        .map(|home| PathBuf::from(home).join(".cache/pushsync-tools/bin/helm"));
    on_path
        .or(pinned.filter(|p| p.is_file()))
        .unwrap_or_else(|| {
            panic!(
                "helm is required for this test: run `make deps` (installs the pinned helm 4.1.4)"
            )
        })
}

/// A push of `after` to branch `main` of `url` touching `paths`, as the
/// receiver normalises a forge's webhook (Gitea here).
pub fn push_event(url: &str, after: &str, paths: &[String]) -> pushsync_proto::PushEvent {
    use pushsync_proto::{ChangedPaths, GitRef, Provider, PushEvent, RepoId, Repository};
    PushEvent {
        provider: Provider::Gitea,
        delivery_id: format!("delivery-{after}"),
        repository: Repository {
            id: RepoId::parse(url).unwrap_or_else(|e| panic!("{url}: {e}")),
            full_name: "test/repo".into(),
            clone_urls: vec![url.to_owned()],
            web_url: None,
        },
        git_ref: GitRef::branch("main"),
        before: None,
        after: Some(after.to_owned()),
        created: false,
        deleted: false,
        forced: false,
        changed_paths: ChangedPaths::complete(paths.iter().map(String::as_str)),
        pusher: None,
        received_at: jiff::Timestamp::now(),
    }
}
