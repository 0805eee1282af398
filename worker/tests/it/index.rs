//! The Application index over the sandbox's watch.

use std::time::Duration;

use kube::CustomResourceExt;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use pushsync_api::{ApplicationSpec, Destination, Source};
use pushsync_proto::{ChangedPaths, GitRef, Provider, PushEvent, Repository};
use pushsync_sandbox::Sandbox;

use kube::api::Api;
use pushsync_api::Application;
use pushsync_proto::{AppRef, RepoId};
use pushsync_worker::index::Index;
use pushsync_worker::routing::{Decision, affected};
use tokio_util::sync::CancellationToken;

fn app(name: &str, path: &str) -> Application {
    let mut app = Application::new(
        name,
        ApplicationSpec {
            source: Source {
                repo_url: "git@github.com:org/manifests.git".into(),
                target_revision: "main".into(),
                path: path.into(),
                ..Source::default()
            },
            destination: Destination::default(),
            sync_policy: None,
            ignore_differences: Vec::new(),
        },
    );
    app.metadata.namespace = Some("default".into());
    app
}

fn push(paths: &[&str]) -> PushEvent {
    PushEvent {
        provider: Provider::Github,
        delivery_id: "d".into(),
        repository: Repository {
            id: RepoId::parse("https://github.com/org/manifests").unwrap(),
            full_name: "org/manifests".into(),
            clone_urls: Vec::new(),
            web_url: None,
        },
        git_ref: GitRef::branch("main"),
        before: Some("a".repeat(40)),
        after: Some("b".repeat(40)),
        created: false,
        deleted: false,
        forced: false,
        changed_paths: ChangedPaths::complete(paths.iter().copied()),
        pusher: None,
        received_at: "2026-11-23T00:00:00Z".parse().unwrap(),
    }
}

async fn eventually(index: &Index, check: impl Fn(&Index) -> bool) -> bool {
    for _ in 0..200 {
        if check(index) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_follows_applications_in_the_cluster() {
    let sandbox = Sandbox::start().await.unwrap();
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(sandbox.client());
    crds.create(&PostParams::default(), &Application::crd())
        .await
        .unwrap();
    let apps: Api<Application> = Api::namespaced(sandbox.client(), "default");
    apps.create(&PostParams::default(), &app("web", "apps/web"))
        .await
        .unwrap();
    apps.create(&PostParams::default(), &app("api", "apps/api"))
        .await
        .unwrap();

    let stop = CancellationToken::new();
    let index = Index::watch(sandbox.client(), None, stop.clone());
    assert!(index.ready().await);
    assert!(eventually(&index, |i| i.applications().len() == 2).await);
    let names = |decisions: Vec<Decision>| {
        decisions
            .into_iter()
            .map(|d| match d {
                Decision::Sync(a) | Decision::RefDeleted(a) => a.name,
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(affected(&push(&["apps/web/x.yaml"]), &index.sources())),
        ["web"]
    );

    // A changed path and a deletion are followed.
    apps.patch(
        "api",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": {"source": {"path": "apps/web"}}})),
    )
    .await
    .unwrap();
    assert!(
        eventually(&index, |i| i
            .get(&AppRef {
                namespace: "default".into(),
                name: "api".into()
            })
            .is_some_and(|a| a.spec.source.path == "apps/web"))
        .await
    );
    apps.delete("web", &DeleteParams::default()).await.unwrap();
    assert!(eventually(&index, |i| i.applications().len() == 1).await);
    assert_eq!(
        names(affected(&push(&["apps/web/x.yaml"]), &index.sources())),
        ["api"]
    );
    stop.cancel();
}
