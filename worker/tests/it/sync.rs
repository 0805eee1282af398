//! One Application synced for real: a repository served by `git daemon`, the
//! sandbox as the cluster.

use std::time::Duration;

use pushsync_api::{
    Application, ApplicationSpec, ApplicationStatus, Automated, Destination, HealthStatusCode,
    OperationPhase, ResourceSyncCode, ResultCode, Source, SyncPolicy, SyncStatusCode,
};
use pushsync_sandbox::Sandbox;
use pushsync_testkit::git::{GitDaemon, GitRepo};
use pushsync_worker::git::GitCache;
use pushsync_worker::render::Manifest;
use pushsync_worker::status::status_patch;
use pushsync_worker::sync::{Outcome, Request, SyncContext, sync, sync_with};
use serde_json::json;

use crate::support;

fn context(sandbox: &Sandbox, cache: &std::path::Path) -> SyncContext {
    support::sync_context(
        sandbox,
        GitCache::new(cache, Duration::from_secs(20))
            .with_policy(pushsync_worker::git::RemotePolicy::permissive()),
    )
}

fn application(url: &str, prune: bool) -> Application {
    let mut app = Application::new(
        "guestbook",
        ApplicationSpec {
            project: pushsync_api::DEFAULT_PROJECT.to_owned(),
            source: Source {
                repo_url: url.to_owned(),
                target_revision: "main".into(),
                path: "apps/guestbook".into(),
                ..Source::default()
            },
            destination: Destination {
                namespace: Some("guestbook".into()),
            },
            sync_policy: Some(SyncPolicy {
                automated: Some(Automated {
                    prune,
                    self_heal: false,
                }),
                sync_options: vec!["CreateNamespace=true".into()],
                retry: None,
            }),
            ignore_differences: Vec::new(),
            suspend: false,
        },
    );
    app.metadata.namespace = Some("pushsync".into());
    app
}

/// Carry the outcome into the Application, as the status write would.
fn remember(app: &mut Application, outcome: &Outcome) {
    let mut status = serde_json::to_value(app.status.clone().unwrap_or_default()).unwrap();
    let patch = status_patch(app, outcome);
    for (field, value) in patch["status"].as_object().unwrap() {
        status[field] = value.clone();
    }
    app.status = Some(serde_json::from_value::<ApplicationStatus>(status).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_is_reverted_with_self_heal_and_only_reported_without() {
    use kube::api::{Api, Patch, PatchParams};

    let sandbox = Sandbox::start().await.unwrap();
    let cache = tempfile::tempdir().unwrap();
    let ctx = context(&sandbox, cache.path());
    let repo = GitRepo::init();
    repo.write(
        "apps/guestbook/settings.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {colour: blue}\n",
    );
    repo.commit("settings");
    let daemon = GitDaemon::serve_repo(&repo);
    let mut app = application(&daemon.url_of(&repo), true);
    let outcome = sync(&ctx, &app).await.unwrap();
    assert_eq!(
        outcome.phase,
        OperationPhase::Succeeded,
        "{}",
        outcome.message
    );
    remember(&mut app, &outcome);

    // Nothing changed: a re-sync only compares, and applies nothing.
    let writes = |sandbox: &Sandbox| sandbox.audit().iter().filter(|e| e.is_write()).count();
    let before = writes(&sandbox);
    let outcome = sync(&ctx, &app).await.unwrap();
    assert_eq!(
        (outcome.phase, outcome.sync_status),
        (OperationPhase::Refreshed, SyncStatusCode::Synced)
    );
    assert_eq!(
        writes(&sandbox),
        before,
        "an in-sync re-sync writes nothing"
    );
    remember(&mut app, &outcome);

    // Compared once in sync: the next re-sync only lists the live objects
    // and finds them at the same resourceVersion — no dry runs at all.
    let dry_runs = |sandbox: &Sandbox| sandbox.audit().iter().filter(|e| e.is_dry_run()).count();
    let before = dry_runs(&sandbox);
    let outcome = sync(&ctx, &app).await.unwrap();
    assert_eq!(
        (outcome.phase, outcome.sync_status),
        (OperationPhase::Refreshed, SyncStatusCode::Synced)
    );
    assert!(
        outcome.message.contains("no live object changed"),
        "{}",
        outcome.message
    );
    assert_eq!(dry_runs(&sandbox), before);
    remember(&mut app, &outcome);

    let maps: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(sandbox.client(), "guestbook");
    let colour = || {
        let maps = maps.clone();
        async move { maps.get("settings").await.unwrap().data.unwrap()["colour"].clone() }
    };
    let edit = PatchParams {
        field_manager: Some("kubectl-edit".into()),
        ..PatchParams::default()
    };
    maps.patch(
        "settings",
        &edit,
        &Patch::Merge(json!({"data": {"colour": "red"}})),
    )
    .await
    .unwrap();

    // selfHeal off: reported with a diff, left alone.
    let outcome = sync(&ctx, &app).await.unwrap();
    assert_eq!(
        (outcome.phase, outcome.sync_status),
        (OperationPhase::Refreshed, SyncStatusCode::OutOfSync),
        "{}",
        outcome.message
    );
    let diff = outcome.live[0].diff.clone().unwrap();
    assert!(
        diff.contains("-  colour: red") && diff.contains("+  colour: blue"),
        "{diff}"
    );
    assert_eq!(colour().await, "red");
    remember(&mut app, &outcome);

    // selfHeal on: reverted.
    app.spec
        .sync_policy
        .as_mut()
        .unwrap()
        .automated
        .as_mut()
        .unwrap()
        .self_heal = true;
    let outcome = sync(&ctx, &app).await.unwrap();
    assert_eq!(
        (outcome.phase, outcome.sync_status),
        (OperationPhase::Succeeded, SyncStatusCode::Synced)
    );
    assert_eq!(colour().await, "blue");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_application_syncs_updates_prunes_and_refuses_broken_revisions() {
    let sandbox = Sandbox::start().await.unwrap();
    let cache = tempfile::tempdir().unwrap();
    let ctx = context(&sandbox, cache.path());
    let repo = GitRepo::init();
    std::fs::create_dir_all(repo.path().join("apps")).unwrap();
    repo.copy_dir(
        &pushsync_testkit::repo_root().join("testdata/manifests/argocd-example-apps/guestbook"),
        "apps/guestbook",
    );
    let first = repo.commit("guestbook");
    let daemon = GitDaemon::serve_repo(&repo);
    let mut app = application(&daemon.url_of(&repo), true);
    let deployment = Manifest {
        object: json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "guestbook-ui", "namespace": "guestbook"}}),
        source: "test".into(),
    };
    let service = Manifest {
        object: json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "guestbook-ui", "namespace": "guestbook"}}),
        source: "test".into(),
    };

    // First sync: namespace created, both objects applied, healthy.
    let outcome = sync(&ctx, &app).await.unwrap();
    assert_eq!(
        outcome.phase,
        OperationPhase::Succeeded,
        "{}",
        outcome.message
    );
    assert_eq!(outcome.revision.as_deref(), Some(first.as_str()));
    assert_eq!(outcome.inventory.len(), 2);
    assert_eq!(
        outcome.health.health,
        HealthStatusCode::Healthy,
        "{}",
        outcome.health.message
    );
    let live = ctx
        .cluster
        .get(&deployment, "guestbook")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        live.pointer("/metadata/managedFields/0/manager"),
        Some(&json!("pushsync"))
    );
    remember(&mut app, &outcome);

    // A changed field is updated.
    let file = repo
        .path()
        .join("apps/guestbook/guestbook-ui-deployment.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text.replace(
            "gcr.io/google-samples/gb-frontend:v5",
            "gcr.io/google-samples/gb-frontend:v6",
        ),
    )
    .unwrap();
    let second = repo.commit("bump");
    let outcome = sync(&ctx, &app).await.unwrap();
    assert_eq!(outcome.revision.as_deref(), Some(second.as_str()));
    let live = ctx
        .cluster
        .get(&deployment, "guestbook")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        live.pointer("/spec/template/spec/containers/0/image"),
        Some(&json!("gcr.io/google-samples/gb-frontend:v6"))
    );
    remember(&mut app, &outcome);

    // A removed file is pruned.
    repo.remove("apps/guestbook/guestbook-ui-svc.yaml");
    repo.commit("drop the service");
    let outcome = sync(&ctx, &app).await.unwrap();
    assert!(
        outcome
            .resources
            .iter()
            .any(|r| r.status == ResultCode::Pruned && r.resource.kind == "Service"),
        "{:?}",
        outcome.resources
    );
    assert_eq!(ctx.cluster.get(&service, "guestbook").await.unwrap(), None);
    remember(&mut app, &outcome);

    // Broken YAML: a readable condition, nothing of the revision applied.
    std::fs::write(
        &file,
        std::fs::read_to_string(&file)
            .unwrap()
            .replace("gb-frontend:v6", "gb-frontend:v7"),
    )
    .unwrap();
    repo.write(
        "apps/guestbook/broken.yaml",
        "apiVersion: v1\nkind: [oops\n",
    );
    repo.commit("broken");
    let outcome = sync(&ctx, &app).await.unwrap();
    assert_eq!(outcome.phase, OperationPhase::Failed);
    let condition = outcome.condition.clone().unwrap();
    assert_eq!(condition.kind, "RenderFailed");
    assert!(condition.message.unwrap().contains("broken.yaml"));
    let live = ctx
        .cluster
        .get(&deployment, "guestbook")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        live.pointer("/spec/template/spec/containers/0/image"),
        Some(&json!("gcr.io/google-samples/gb-frontend:v6"))
    );

    // An Application path that climbs out of the repository fails the same way.
    let mut escaping = app.clone();
    escaping.spec.source.path = "apps/../../../etc".into();
    let outcome = sync(&ctx, &escaping).await.unwrap();
    assert_eq!(outcome.phase, OperationPhase::Failed);
    let condition = outcome.condition.unwrap();
    assert_eq!(condition.kind, "SourceFailed");
    assert!(condition.message.unwrap().contains("escapes"));

    // A symlink out of the repository fails the same way.
    repo.remove("apps/guestbook/broken.yaml")
        .symlink("apps/guestbook/passwd.yaml", "/etc/passwd");
    repo.commit("escape");
    let outcome = sync(&ctx, &app).await.unwrap();
    assert_eq!(outcome.condition.unwrap().kind, "SourceFailed");
    let live = ctx
        .cluster
        .get(&deployment, "guestbook")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        live.pointer("/spec/template/spec/containers/0/image"),
        Some(&json!("gcr.io/google-samples/gb-frontend:v6"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_prune_off_removed_objects_stay_and_are_reported() {
    let sandbox = Sandbox::start().await.unwrap();
    let cache = tempfile::tempdir().unwrap();
    let ctx = context(&sandbox, cache.path());
    let repo = GitRepo::init();
    repo.write(
        "apps/guestbook/a.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n",
    )
    .write(
        "apps/guestbook/b.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n",
    );
    repo.commit("two");
    let daemon = GitDaemon::serve_repo(&repo);
    let mut app = application(&daemon.url_of(&repo), false);
    let outcome = sync(&ctx, &app).await.unwrap();
    remember(&mut app, &outcome);
    repo.remove("apps/guestbook/b.yaml");
    repo.commit("one");
    let outcome = sync(&ctx, &app).await.unwrap();
    // Nothing else changed, so no operation runs: the leftover is reported.
    assert_eq!(
        outcome.phase,
        OperationPhase::Refreshed,
        "{}",
        outcome.message
    );
    assert!(
        outcome
            .live
            .iter()
            .any(|r| r.status == ResourceSyncCode::RequiresPruning && r.resource.name == "b"),
        "{:?}",
        outcome.live
    );
    let b = Manifest {
        object: json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"}}),
        source: "t".into(),
    };
    assert!(ctx.cluster.get(&b, "guestbook").await.unwrap().is_some());
    let patch = status_patch(&app, &outcome);
    assert_eq!(patch["status"]["sync"]["status"], "OutOfSync");

    // A manual sync that says no-prune keeps it; one that says prune
    // (`argocd app sync --prune`) deletes it although automated.prune is off.
    for (prune, kept) in [(false, true), (true, false)] {
        let request = Request {
            manual: true,
            prune: Some(prune),
            ..Request::default()
        };
        let outcome = sync_with(&ctx, &app, &request).await.unwrap();
        assert_eq!(
            ctx.cluster.get(&b, "guestbook").await.unwrap().is_some(),
            kept,
            "prune {prune}: {}",
            outcome.message
        );
        remember(&mut app, &outcome);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_and_waves_run_in_order() {
    let sandbox = Sandbox::start().await.unwrap();
    let cache = tempfile::tempdir().unwrap();
    let ctx = context(&sandbox, cache.path());
    let repo = GitRepo::init();
    let job = |name: &str, annotations: &str| {
        format!(
            "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\n  annotations: {annotations}\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{{name: c, image: busybox}}]\n"
        )
    };
    repo.write("apps/guestbook/pre.yaml", &job("pre", "{pushsync.dev/hook: PreSync}"))
        .write("apps/guestbook/post.yaml", &job("post", "{argocd.argoproj.io/hook: PostSync}"))
        .write("apps/guestbook/late.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: late, annotations: {pushsync.dev/sync-wave: \"2\"}}\n")
        .write("apps/guestbook/early.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: early}\n");
    repo.commit("hooks");
    let daemon = GitDaemon::serve_repo(&repo);
    let app = application(&daemon.url_of(&repo), true);
    let outcome = sync(&ctx, &app).await.unwrap();
    assert_eq!(
        outcome.phase,
        OperationPhase::Succeeded,
        "{}",
        outcome.message
    );
    let writes: Vec<String> = sandbox
        .audit()
        .into_iter()
        .filter(|e| {
            e.is_write() && e.verb == "patch" && e.field_manager.as_deref() == Some("pushsync")
        })
        .map(|e| e.path.rsplit('/').next().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        writes,
        ["guestbook", "pre", "early", "late", "post"],
        "apply order"
    );
    assert_eq!(outcome.inventory.len(), 2, "hooks are not inventory");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kustomize_and_helm_sources_sync() {
    let sandbox = Sandbox::start().await.unwrap();
    let cache = tempfile::tempdir().unwrap();
    let ctx = context(&sandbox, cache.path());
    let repo = GitRepo::init();
    let fixtures = pushsync_testkit::repo_root().join("testdata/manifests");
    repo.copy_dir(&fixtures.join("podinfo/deploy"), "deploy");
    repo.copy_dir(
        &fixtures.join("argocd-example-apps/helm-guestbook"),
        "chart",
    );
    repo.commit("kustomize and helm");
    let daemon = GitDaemon::serve_repo(&repo);

    // podinfo's dev overlay (auto-detected Kustomize; reaches ../../bases).
    let mut podinfo = application(&daemon.url_of(&repo), true);
    podinfo.spec.source.path = "deploy/overlays/dev".into();
    let outcome = sync(&ctx, &podinfo).await.unwrap();
    assert_eq!(
        outcome.phase,
        OperationPhase::Succeeded,
        "{}",
        outcome.message
    );
    assert!(
        outcome
            .inventory
            .iter()
            .any(|r| r.kind == "StatefulSet" && r.namespace == "dev"),
        "{:?}",
        outcome.inventory
    );

    // The Argo CD Helm example, with a values file.
    let mut guestbook = application(&daemon.url_of(&repo), true);
    guestbook.spec.source.path = "chart".into();
    guestbook.spec.source.helm = Some(pushsync_api::HelmSource {
        value_files: vec!["values-production.yaml".into()],
        ..Default::default()
    });
    let outcome = sync(&ctx, &guestbook).await.unwrap();
    assert_eq!(
        outcome.phase,
        OperationPhase::Succeeded,
        "{}",
        outcome.message
    );
    let service = outcome
        .inventory
        .iter()
        .find(|r| r.kind == "Service")
        .expect("a service");
    assert_eq!(service.namespace, "guestbook");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_owned_by_an_autoscaler_are_not_reverted_when_ignored() {
    use kube::api::{Api, Patch, PatchParams};

    let sandbox = Sandbox::start().await.unwrap();
    let cache = tempfile::tempdir().unwrap();
    let ctx = context(&sandbox, cache.path());
    let repo = GitRepo::init();
    repo.write(
        "apps/guestbook/web.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: app, image: nginx}]}\n",
    );
    repo.commit("web");
    let daemon = GitDaemon::serve_repo(&repo);
    let mut app = application(&daemon.url_of(&repo), true);
    sync(&ctx, &app).await.unwrap();

    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(sandbox.client(), "guestbook");
    let scale = |replicas: i32| {
        let deployments = deployments.clone();
        async move {
            let params = PatchParams {
                field_manager: Some("horizontal-pod-autoscaler".into()),
                ..PatchParams::default()
            };
            deployments
                .patch(
                    "web",
                    &params,
                    &Patch::Merge(json!({"spec": {"replicas": replicas}})),
                )
                .await
                .unwrap();
        }
    };
    let replicas = || {
        let deployments = deployments.clone();
        async move { deployments.get("web").await.unwrap().spec.unwrap().replicas }
    };

    // Ignored by manager: the autoscaler's value stays.
    app.spec.ignore_differences = vec![pushsync_api::IgnoreDifference {
        group: Some("apps".into()),
        kind: "Deployment".into(),
        managed_fields_managers: vec!["horizontal-pod-autoscaler".into()],
        ..Default::default()
    }];
    scale(4).await;
    let outcome = sync(&ctx, &app).await.unwrap();
    assert_eq!(
        outcome.sync_status,
        SyncStatusCode::Synced,
        "{}",
        outcome.message
    );
    // Even a sync someone asks for leaves the autoscaler's value alone.
    let manual = Request {
        manual: true,
        ..Request::default()
    };
    let outcome = sync_with(&ctx, &app, &manual).await.unwrap();
    assert_eq!(
        outcome.phase,
        OperationPhase::Succeeded,
        "{}",
        outcome.message
    );
    assert_eq!(replicas().await, Some(4));

    // Without the rule, Git wins.
    app.spec.ignore_differences.clear();
    sync(&ctx, &app).await.unwrap();
    assert_eq!(replicas().await, Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_argo_cd_helm_hooks_example_runs_as_written() {
    let sandbox = Sandbox::start().await.unwrap();
    let cache = tempfile::tempdir().unwrap();
    let ctx = context(&sandbox, cache.path());
    let repo = GitRepo::init();
    std::fs::create_dir_all(repo.path().join("apps")).unwrap();
    repo.copy_dir(
        &pushsync_testkit::repo_root().join("testdata/manifests/argocd-example-apps/helm-hooks"),
        "apps/guestbook",
    );
    repo.commit("helm hooks");
    let daemon = GitDaemon::serve_repo(&repo);
    let app = application(&daemon.url_of(&repo), true);

    // A sync asked for by hand runs the hooks again even when nothing changed.
    let manual = Request {
        manual: true,
        ..Request::default()
    };
    for round in 0..2 {
        let outcome = sync_with(&ctx, &app, &manual).await.unwrap();
        assert_eq!(
            outcome.phase,
            OperationPhase::Succeeded,
            "round {round}: {}",
            outcome.message
        );
        // Hooks are not inventory: the ReplicaSet and the Service are.
        let mut kinds: Vec<&str> = outcome.inventory.iter().map(|r| r.kind.as_str()).collect();
        kinds.sort_unstable();
        assert_eq!(kinds, ["ReplicaSet", "Service"]);
    }
    let writes: Vec<String> = sandbox
        .audit()
        .into_iter()
        .filter(|e| {
            matches!(e.verb.as_str(), "patch" | "create")
                && !e.is_dry_run()
                && e.path.contains("/namespaces/guestbook/")
        })
        .map(|e| e.path.rsplit('/').next().unwrap_or_default().to_owned())
        .take(5)
        .collect();
    // generateName hooks are created (POST to the collection), weight -2 before -1,
    // then the resources, then the post-install hook.
    assert_eq!(
        writes,
        [
            "jobs",
            "maint-page-up",
            "frontend",
            "frontend",
            "maint-page-down"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_pre_sync_hook_stops_the_sync_and_runs_sync_fail() {
    let sandbox = Sandbox::start().await.unwrap();
    let cache = tempfile::tempdir().unwrap();
    let ctx = context(&sandbox, cache.path());
    let repo = GitRepo::init();
    // The migration Job fails (the sandbox's Job controller marks it failed).
    repo.write(
        "apps/guestbook/migrate.yaml",
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\n  annotations:\n    pushsync.dev/hook: PreSync\n    sandbox.pushsync.dev/health: degraded\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: m, image: busybox}]\n",
    )
    .write(
        "apps/guestbook/app.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\ndata: {v: \"1\"}\n",
    )
    .write(
        "apps/guestbook/alert.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: sync-failed\n  annotations: {argocd.argoproj.io/hook: SyncFail}\n",
    );
    repo.commit("failing migration");
    let daemon = GitDaemon::serve_repo(&repo);
    let app = application(&daemon.url_of(&repo), true);
    let outcome = sync(&ctx, &app).await.unwrap();
    assert_eq!(outcome.phase, OperationPhase::Failed, "{}", outcome.message);
    let condition = outcome.condition.clone().unwrap();
    assert_eq!(condition.kind, "SyncFailed");
    assert!(
        condition.message.unwrap_or_default().contains("migrate"),
        "the condition names the failed hook"
    );
    let configmap = |name: &str| Manifest {
        object: json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}),
        source: "t".into(),
    };
    // The Sync phase never ran; the SyncFail hook did.
    assert_eq!(
        ctx.cluster
            .get(&configmap("app"), "guestbook")
            .await
            .unwrap(),
        None
    );
    assert!(
        ctx.cluster
            .get(&configmap("sync-failed"), "guestbook")
            .await
            .unwrap()
            .is_some()
    );
    let writes: Vec<(String, String)> = sandbox
        .audit()
        .into_iter()
        .filter(|e| e.is_write() && e.path.contains("/namespaces/guestbook/"))
        .map(|e| {
            let name = e.path.rsplit('/').next().unwrap_or_default().to_owned();
            (e.verb, name)
        })
        .collect();
    // Hooks are deleted before they are created again (BeforeHookCreation,
    // the default) when they exist and carry this Application's mark; here
    // none exists yet: PreSync, then SyncFail, nothing else.
    let expected = [("patch", "migrate"), ("patch", "sync-failed")]
        .map(|(verb, name)| (verb.to_owned(), name.to_owned()));
    assert_eq!(writes, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_values_written_in_the_cluster_never_reach_the_status() {
    use kube::api::{Api, Patch, PatchParams};

    let sandbox = Sandbox::start().await.unwrap();
    let cache = tempfile::tempdir().unwrap();
    let ctx = context(&sandbox, cache.path());
    let repo = GitRepo::init();
    repo.write(
        "apps/guestbook/secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData: {password: from-git-value}\n",
    );
    repo.commit("a secret");
    let daemon = GitDaemon::serve_repo(&repo);
    let mut app = application(&daemon.url_of(&repo), true);
    let outcome = sync(&ctx, &app).await.unwrap();
    assert_eq!(
        outcome.phase,
        OperationPhase::Succeeded,
        "{}",
        outcome.message
    );
    remember(&mut app, &outcome);

    // Another controller (or a person) writes a real credential into it.
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(sandbox.client(), "guestbook");
    let edit = PatchParams {
        field_manager: Some("credential-rotator".into()),
        ..PatchParams::default()
    };
    secrets
        .patch(
            "db",
            &edit,
            &Patch::Merge(json!({"stringData": {"password": "rotated-live-credential"}})),
        )
        .await
        .unwrap();

    // selfHeal is off: the drift is reported with a diff — without values.
    let outcome = sync(&ctx, &app).await.unwrap();
    assert_eq!(
        outcome.sync_status,
        SyncStatusCode::OutOfSync,
        "{}",
        outcome.message
    );
    let status = serde_json::to_string(&status_patch(&app, &outcome)).unwrap();
    let diff = outcome
        .live
        .iter()
        .find_map(|r| r.diff.clone())
        .expect("the drift is reported with a diff");
    assert!(diff.contains("password: ++++"), "{diff}");
    for leaked in [
        "rotated-live-credential",
        "from-git-value",
        "cm90YXRlZC1saXZlLWNyZWRlbnRpYWw=",
        "ZnJvbS1naXQtdmFsdWU=",
    ] {
        assert!(!status.contains(leaked), "{leaked} leaked into the status");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repo_urls_aimed_at_metadata_loopback_or_local_files_fail_with_nothing_fetched() {
    let sandbox = Sandbox::start().await.unwrap();
    let cache = tempfile::tempdir().unwrap();
    // The remote policy a cluster install runs with.
    let ctx = support::sync_context(
        &sandbox,
        GitCache::new(cache.path(), Duration::from_secs(5)),
    );
    let repo = GitRepo::init();
    repo.write(
        "apps/guestbook/settings.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {colour: blue}\n",
    );
    repo.commit("settings");
    // A real repository on loopback, and the same one as a local path.
    let daemon = GitDaemon::serve_repo(&repo);
    for url in [
        daemon.url_of(&repo),
        format!("file://{}", repo.path().display()),
        repo.path().display().to_string(),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "https://metadata.google.internal/computeMetadata/v1/".to_owned(),
    ] {
        let outcome = sync(&ctx, &application(&url, true)).await.unwrap();
        assert_eq!(outcome.phase, OperationPhase::Failed, "{url}");
        let condition = outcome.condition.unwrap();
        assert_eq!(condition.kind, "SourceFailed", "{url}");
        assert_eq!(
            condition.reason.as_deref(),
            Some("RepositoryNotAllowed"),
            "{url}"
        );
        assert!(outcome.resources.is_empty(), "{url}: nothing applied");
    }
    assert!(
        std::fs::read_dir(cache.path()).unwrap().next().is_none(),
        "nothing fetched"
    );
    let settings = Manifest {
        object: json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}}),
        source: "test".into(),
    };
    assert_eq!(ctx.cluster.get(&settings, "guestbook").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_application_reports_drift_but_only_a_manual_sync_applies() {
    let sandbox = Sandbox::start().await.unwrap();
    let cache = tempfile::tempdir().unwrap();
    let ctx = context(&sandbox, cache.path());
    let repo = GitRepo::init();
    repo.write(
        "apps/guestbook/settings.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {colour: blue}\n",
    );
    repo.commit("settings");
    let daemon = GitDaemon::serve_repo(&repo);
    let mut app = application(&daemon.url_of(&repo), true);
    app.spec
        .sync_policy
        .as_mut()
        .unwrap()
        .automated
        .as_mut()
        .unwrap()
        .self_heal = true;
    app.spec.suspend = true;
    let settings = Manifest {
        object: json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}}),
        source: "test".into(),
    };

    // Automated and self-healing, but suspended: compared, not applied.
    let outcome = sync(&ctx, &app).await.unwrap();
    assert_eq!(outcome.phase, OperationPhase::Refreshed);
    assert_eq!(outcome.sync_status, SyncStatusCode::OutOfSync);
    assert!(outcome.message.contains("suspended"), "{}", outcome.message);
    assert_eq!(ctx.cluster.get(&settings, "guestbook").await.unwrap(), None);

    // A manual sync still runs.
    let manual = Request {
        manual: true,
        ..Request::default()
    };
    let outcome = sync_with(&ctx, &app, &manual).await.unwrap();
    assert_eq!(
        outcome.phase,
        OperationPhase::Succeeded,
        "{}",
        outcome.message
    );
    assert!(
        ctx.cluster
            .get(&settings, "guestbook")
            .await
            .unwrap()
            .is_some()
    );
}
