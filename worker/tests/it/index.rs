//! The Application index over the sandbox's watch.

use std::time::Duration;

use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use pushsync_api::{Application, ApplicationSpec, Destination, Source};
use pushsync_proto::{AppRef, PushEvent};
use pushsync_worker::index::{Index, Namespaces};
use pushsync_worker::routing::{Decision, affected};
use tokio_util::sync::CancellationToken;

fn app(name: &str, path: &str) -> Application {
    let mut app = Application::new(
        name,
        ApplicationSpec {
            project: pushsync_api::DEFAULT_PROJECT.to_owned(),
            source: Source {
                repo_url: "git@github.com:org/manifests.git".into(),
                target_revision: "main".into(),
                path: path.into(),
                ..Source::default()
            },
            destination: Destination::default(),
            sync_policy: None,
            ignore_differences: Vec::new(),
            suspend: false,
        },
    );
    app.metadata.namespace = Some("default".into());
    app
}

fn push(paths: &[&str]) -> PushEvent {
    let paths: Vec<String> = paths.iter().map(|p| (*p).to_owned()).collect();
    pushsync_testkit::push_event("https://github.com/org/manifests", &"b".repeat(40), &paths)
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
    let sandbox = crate::support::sandbox_with_crds().await;
    let apps: Api<Application> = Api::namespaced(sandbox.client(), "default");
    apps.create(&PostParams::default(), &app("web", "apps/web"))
        .await
        .unwrap();
    apps.create(&PostParams::default(), &app("api", "apps/api"))
        .await
        .unwrap();

    let stop = CancellationToken::new();
    let index = Index::watch(sandbox.client(), &Namespaces::All, stop.clone());
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
