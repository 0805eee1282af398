use super::*;

#[test]
fn the_checked_in_crds_are_the_generated_ones() {
    for (file, crd) in crds() {
        let path = pushsync_testkit::repo_root().join("deploy/crds").join(file);
        let generated = crd_yaml(&crd).unwrap();
        if std::env::var_os("PUSHSYNC_UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            checked_in == generated,
            "deploy/crds/{file} is stale: run `cargo run -p pushsync-api --bin crdgen -- deploy/crds`"
        );
    }
}

#[test]
fn an_application_without_a_project_is_in_the_default_one() {
    let app: Application = serde_saphyr::from_str(
        "apiVersion: pushsync.dev/v1alpha1\nkind: Application\nmetadata: {name: a}\nspec: {source: {repoURL: x}, destination: {}}\n",
    )
    .unwrap();
    assert_eq!(app.spec.project, DEFAULT_PROJECT);
}

#[test]
fn a_project_spec_reads_as_argo_cd_users_write_it() {
    let project: Project = serde_saphyr::from_str(
        r#"
apiVersion: pushsync.dev/v1alpha1
kind: Project
metadata: { name: team-a, namespace: pushsync }
spec:
  sourceRepos: ["https://github.com/acme/*"]
  destinations:
    - { namespace: "team-a-*", serviceAccount: deployer }
  clusterResourceWhitelist: [{ group: "", kind: Namespace }]
  namespaceResourceBlacklist: [{ group: "", kind: ResourceQuota }]
"#,
    )
    .unwrap();
    assert_eq!(
        project.spec.destinations[0].service_account.as_deref(),
        Some("deployer")
    );
    assert_eq!(
        project.spec.cluster_resource_whitelist[0],
        GroupKind::new("", "Namespace")
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
