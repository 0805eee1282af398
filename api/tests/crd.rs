//! The generated CRD served by the Kubernetes API sandbox.

use pushsync_api::{Application, ApplicationSpec, Destination, Source, SyncStatusCode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_crd_serves_applications_with_a_status_subresource() {
    use kube::CustomResourceExt;
    use kube::api::{Api, Patch, PatchParams, PostParams};

    let sandbox = pushsync_sandbox::Sandbox::start().await.unwrap();
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(sandbox.client());
    crds.create(&PostParams::default(), &Application::crd())
        .await
        .unwrap();
    let apps: Api<Application> = Api::namespaced(sandbox.client(), "default");
    let app = Application::new(
        "guestbook",
        ApplicationSpec {
            project: pushsync_api::DEFAULT_PROJECT.to_owned(),
            source: Source {
                repo_url: "https://github.com/example/manifests.git".into(),
                target_revision: "main".into(),
                ..Source::default()
            },
            destination: Destination {
                namespace: Some("guestbook".into()),
            },
            sync_policy: None,
            ignore_differences: Vec::new(),
            suspend: false,
        },
    );
    apps.create(&PostParams::default(), &app).await.unwrap();
    let status = serde_json::json!({"status": {"sync": {"status": "Synced", "revision": "abc"}}});
    apps.patch_status("guestbook", &PatchParams::default(), &Patch::Merge(status))
        .await
        .unwrap();
    let read = apps.get("guestbook").await.unwrap();
    assert_eq!(read.spec.source.target_revision, "main");
    assert_eq!(
        read.status.unwrap().sync.unwrap().status,
        SyncStatusCode::Synced
    );
}
