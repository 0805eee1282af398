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
