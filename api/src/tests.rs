use super::*;

#[test]
fn the_checked_in_crd_is_the_generated_one() {
    let path = pushsync_testkit::repo_root().join("deploy/crds/application.yaml");
    let generated = crd_yaml().unwrap();
    if std::env::var_os("PUSHSYNC_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "deploy/crds/application.yaml is stale: run `cargo run -p pushsync-api --bin crdgen > deploy/crds/application.yaml`"
    );
}

#[test]
fn the_designs_example_application_parses() {
    let yaml = r#"
apiVersion: pushsync.dev/v1alpha1
kind: Application
metadata: { name: guestbook, namespace: pushsync }
spec:
  source:
    repoURL: https://github.com/example/manifests.git
    targetRevision: main
    path: apps/guestbook
  destination: { namespace: guestbook }
  syncPolicy:
    automated: { prune: true, selfHeal: true }
    syncOptions: [CreateNamespace=true]
    retry: { limit: 5, backoff: { duration: 5s, factor: 2, maxDuration: 3m } }
  ignoreDifferences:
    - { group: apps, kind: Deployment, jsonPointers: [/spec/replicas] }
"#;
    let app: Application = serde_saphyr::from_str(yaml).unwrap();
    assert_eq!(
        app.spec.source.repo_url,
        "https://github.com/example/manifests.git"
    );
    let policy = app.spec.sync_policy.as_ref().unwrap();
    assert!(policy.option("CreateNamespace"));
    assert!(!policy.option("Replace"));
    assert!(policy.automated.as_ref().unwrap().self_heal);
    assert_eq!(
        app.spec.ignore_differences[0].json_pointers,
        ["/spec/replicas"]
    );

    let minimal: Application = serde_saphyr::from_str(
        "apiVersion: pushsync.dev/v1alpha1\nkind: Application\nmetadata: {name: a}\nspec: {source: {repoURL: x}, destination: {}}\n",
    )
    .unwrap();
    assert_eq!(minimal.spec.source.target_revision, "HEAD");
}

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
        },
    );
    apps.create(&PostParams::default(), &app).await.unwrap();
    let status = serde_json::json!({"status": {"sync": {"status": "Synced", "revision": "abc"}}});
    apps.patch_status("guestbook", &PatchParams::default(), &Patch::Merge(status))
        .await
        .unwrap();
    let read = apps.get("guestbook").await.unwrap();
    assert_eq!(read.spec.source.target_revision, "main");
    assert_eq!(read.status.unwrap().sync.unwrap().status, "Synced");
}
