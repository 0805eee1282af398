//! Argo CD's per-resource sync and compare options, as annotations in a
//! repository written for Argo CD, honoured on the sandbox.

use std::time::Duration;

use pushsync_api::{
    Application, ApplicationSpec, OperationPhase, ResourceSyncCode, ResultCode, SyncStatusCode,
};
use pushsync_sandbox::Sandbox;
use pushsync_testkit::git::{GitDaemon, GitRepo};
use pushsync_worker::git::{GitCache, RemotePolicy};
use pushsync_worker::render::Manifest;
use pushsync_worker::status::status_patch;
use pushsync_worker::sync::{Outcome, SyncContext, sync};
use serde_json::json;

use crate::support;

fn context(sandbox: &Sandbox, cache: &std::path::Path) -> SyncContext {
    support::sync_context(
        sandbox,
        GitCache::new(cache, Duration::from_secs(20)).with_policy(RemotePolicy::permissive()),
    )
}

fn application(url: &str, prune: bool) -> Application {
    let mut spec = ApplicationSpec::automated(url, "main", "app", "web")
        .with_sync_option("CreateNamespace=true");
    if let Some(automated) = spec.sync_policy.as_mut().and_then(|p| p.automated.as_mut()) {
        automated.prune = prune;
    }
    Application::namespaced("pushsync", "web", spec)
}

/// Carry the outcome into the Application, as the status write would.
fn remember(app: &mut Application, outcome: &Outcome) {
    let mut status = serde_json::to_value(app.status.clone().unwrap_or_default()).unwrap();
    let patch = status_patch(app, outcome);
    for (field, value) in patch["status"].as_object().unwrap() {
        status[field] = value.clone();
    }
    app.status = Some(serde_json::from_value(status).unwrap());
}

fn configmap(name: &str, annotations: serde_json::Value) -> String {
    serde_json::to_string(&json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "annotations": annotations},
        "data": {"k": "v"},
    }))
    .unwrap()
}

fn named(kind: &str, api_version: &str, name: &str) -> Manifest {
    Manifest {
        object: json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name}}),
        source: "test".into(),
    }
}

struct Fixture {
    sandbox: Sandbox,
    ctx: SyncContext,
    repo: GitRepo,
    _daemon: GitDaemon,
    url: String,
    _cache: tempfile::TempDir,
}

impl Fixture {
    async fn new() -> Self {
        let sandbox = Sandbox::start().await.unwrap();
        let cache = tempfile::tempdir().unwrap();
        let ctx = context(&sandbox, cache.path());
        let repo = GitRepo::init();
        repo.write("app/.keep.txt", "");
        repo.commit("empty");
        let daemon = GitDaemon::serve_repo(&repo);
        let url = daemon.url_of(&repo);
        Self {
            sandbox,
            ctx,
            repo,
            _daemon: daemon,
            url,
            _cache: cache,
        }
    }

    async fn exists(&self, manifest: &Manifest) -> bool {
        self.ctx
            .cluster
            .get(manifest, "web")
            .await
            .unwrap()
            .is_some()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argo_cd_prune_false_keeps_an_object_that_left_git_and_the_application_in_sync() {
    let fx = Fixture::new().await;
    fx.repo
        .write(
            "app/kept.json",
            &configmap(
                "kept",
                // With options pushsync accepts as given (it always applies server-side).
                json!({"argocd.argoproj.io/sync-options": "Prune=false,ServerSideApply=true"}),
            ),
        )
        .write("app/pruned.json", &configmap("pruned", json!({})));
    fx.repo.commit("two");
    let mut app = application(&fx.url, true);
    let outcome = sync(&fx.ctx, &app).await.unwrap();
    assert_eq!(
        outcome.phase,
        OperationPhase::Succeeded,
        "{}",
        outcome.message
    );
    remember(&mut app, &outcome);

    fx.repo.remove("app/kept.json").remove("app/pruned.json");
    fx.repo.commit("both gone from Git");
    let outcome = sync(&fx.ctx, &app).await.unwrap();
    assert_eq!(
        outcome.phase,
        OperationPhase::Succeeded,
        "{}",
        outcome.message
    );
    assert_eq!(outcome.sync_status, SyncStatusCode::Synced);
    let result = |name: &str| {
        outcome
            .resources
            .iter()
            .find(|r| r.resource.name == name)
            .map(|r| r.status)
    };
    assert_eq!(result("kept"), Some(ResultCode::PruneSkipped));
    assert_eq!(result("pruned"), Some(ResultCode::Pruned));
    assert!(fx.exists(&named("ConfigMap", "v1", "kept")).await);
    assert!(!fx.exists(&named("ConfigMap", "v1", "pruned")).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argo_cd_ignore_extraneous_leaves_the_application_in_sync_without_pruning() {
    let fx = Fixture::new().await;
    fx.repo
        .write(
            "app/extra.json",
            &configmap(
                "extra",
                json!({"argocd.argoproj.io/compare-options": "IgnoreExtraneous"}),
            ),
        )
        .write("app/plain.json", &configmap("plain", json!({})));
    fx.repo.commit("two");
    // Automated without prune: what leaves Git stays.
    let mut app = application(&fx.url, false);
    let outcome = sync(&fx.ctx, &app).await.unwrap();
    remember(&mut app, &outcome);

    fx.repo.remove("app/extra.json");
    fx.repo.commit("extra gone from Git");
    let outcome = sync(&fx.ctx, &app).await.unwrap();
    assert_eq!(
        outcome.sync_status,
        SyncStatusCode::Synced,
        "{}",
        outcome.message
    );
    assert!(fx.exists(&named("ConfigMap", "v1", "extra")).await);
    remember(&mut app, &outcome);

    // The same without the option is out of sync.
    fx.repo.remove("app/plain.json");
    fx.repo.commit("plain gone from Git");
    let outcome = sync(&fx.ctx, &app).await.unwrap();
    assert_eq!(outcome.sync_status, SyncStatusCode::OutOfSync);
    let plain = outcome.live.iter().find(|r| r.resource.name == "plain");
    assert_eq!(
        plain.map(|r| r.status),
        Some(ResourceSyncCode::RequiresPruning)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argo_cd_replace_true_recreates_an_object_whose_immutable_field_changed() {
    let fx = Fixture::new().await;
    let deployment = |selector: &str, annotations: serde_json::Value| {
        serde_json::to_string(&json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "annotations": annotations},
            "spec": {
                "selector": {"matchLabels": {"app": selector}},
                "template": {
                    "metadata": {"labels": {"app": selector}},
                    "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
                },
            },
        }))
        .unwrap()
    };
    fx.repo
        .write("app/deploy.json", &deployment("v1", json!({})));
    fx.repo.commit("v1");
    let mut app = application(&fx.url, true);
    let outcome = sync(&fx.ctx, &app).await.unwrap();
    assert_eq!(
        outcome.phase,
        OperationPhase::Succeeded,
        "{}",
        outcome.message
    );
    remember(&mut app, &outcome);

    // A new selector without the option: refused, as the API server says.
    fx.repo
        .write("app/deploy.json", &deployment("v2", json!({})));
    fx.repo.commit("v2");
    let outcome = sync(&fx.ctx, &app).await.unwrap();
    assert_eq!(outcome.phase, OperationPhase::Failed);
    assert!(outcome.message.contains("immutable"), "{}", outcome.message);
    remember(&mut app, &outcome);

    // With it: deleted and created again.
    fx.repo.write(
        "app/deploy.json",
        &deployment(
            "v2",
            json!({"argocd.argoproj.io/sync-options": "Replace=true"}),
        ),
    );
    fx.repo.commit("v2, replace");
    let outcome = sync(&fx.ctx, &app).await.unwrap();
    assert_eq!(
        outcome.phase,
        OperationPhase::Succeeded,
        "{}",
        outcome.message
    );
    let live = fx
        .ctx
        .cluster
        .get(&named("Deployment", "apps/v1", "web"), "web")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        live.pointer("/spec/selector/matchLabels/app"),
        Some(&json!("v2"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argo_cd_skip_dry_run_on_missing_resource_waits_for_a_crd_another_application_brings() {
    let fx = Fixture::new().await;
    let widget = |annotations: serde_json::Value| {
        serde_json::to_string(&json!({
            "apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w", "annotations": annotations},
            "spec": {"size": 1},
        }))
        .unwrap()
    };
    fx.repo.write("app/widget.json", &widget(json!({})));
    fx.repo.commit("a widget, no CRD");
    let app = application(&fx.url, true);
    // Without the option an unknown kind fails the render.
    let outcome = sync(&fx.ctx, &app).await.unwrap();
    let condition = outcome.condition.clone().unwrap();
    assert_eq!(
        (condition.kind.as_str(), condition.reason.as_deref()),
        ("RenderFailed", Some("UnknownKind"))
    );

    fx.repo.write(
        "app/widget.json",
        &widget(json!({"argocd.argoproj.io/sync-options": "SkipDryRunOnMissingResource=true"})),
    );
    fx.repo.commit("skip the dry run");
    // Still no CRD: compared as missing, the apply says why.
    let outcome = sync(&fx.ctx, &app).await.unwrap();
    assert_ne!(
        outcome.condition.as_ref().and_then(|c| c.reason.as_deref()),
        Some("UnknownKind"),
        "{:?}",
        outcome.condition
    );
    // Another Application installs the CRD: now it applies.
    let crds: kube::Api<
        k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    > = kube::Api::all(fx.sandbox.client());
    crds.create(
        &Default::default(),
        &serde_json::from_value(json!({
            "metadata": {"name": "widgets.example.com"},
            "spec": {
                "group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}],
            },
        }))
        .unwrap(),
    )
    .await
    .unwrap();
    fx.ctx.cluster.forget_kinds().await;
    let outcome = sync(&fx.ctx, &app).await.unwrap();
    assert_eq!(
        outcome.phase,
        OperationPhase::Succeeded,
        "{}",
        outcome.message
    );
    assert!(fx.exists(&named("Widget", "example.com/v1", "w")).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_of_selected_resources_applies_those_only_runs_no_hook_and_prunes_nothing() {
    let fx = Fixture::new().await;
    let version = |name: &str, v: &str| {
        serde_json::to_string(&json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name}, "data": {"v": v},
        }))
        .unwrap()
    };
    fx.repo
        .write("app/a.json", &version("a", "1"))
        .write("app/b.json", &version("b", "1"))
        .write("app/gone.json", &version("gone", "1"));
    fx.repo.commit("v1");
    let mut app = application(&fx.url, true);
    let outcome = sync(&fx.ctx, &app).await.unwrap();
    remember(&mut app, &outcome);

    fx.repo
        .write("app/a.json", &version("a", "2"))
        .write("app/b.json", &version("b", "2"))
        .remove("app/gone.json")
        .write(
            "app/hook.json",
            &serde_json::to_string(&json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "hook-ran", "annotations": {"argocd.argoproj.io/hook": "PreSync"}},
            }))
            .unwrap(),
        );
    fx.repo.commit("v2");
    let request = pushsync_worker::sync::Request {
        manual: true,
        resources: vec![pushsync_proto::ResourceSelector::parse(":ConfigMap:a").unwrap()],
        ..Default::default()
    };
    let outcome = pushsync_worker::sync::sync_with(&fx.ctx, &app, &request)
        .await
        .unwrap();
    assert_eq!(
        outcome.phase,
        OperationPhase::Succeeded,
        "{}",
        outcome.message
    );
    let data = |name: &'static str| {
        let cluster = fx.ctx.cluster.clone();
        async move {
            cluster
                .get(&named("ConfigMap", "v1", name), "web")
                .await
                .unwrap()
                .and_then(|cm| cm.pointer("/data/v").cloned())
        }
    };
    assert_eq!(data("a").await, Some(json!("2")), "selected: applied");
    assert_eq!(
        data("b").await,
        Some(json!("1")),
        "not selected: left alone"
    );
    assert_eq!(data("gone").await, Some(json!("1")), "nothing pruned");
    assert!(
        !fx.exists(&named("ConfigMap", "v1", "hook-ran")).await,
        "no hook ran"
    );
    assert_eq!(
        outcome.sync_status,
        SyncStatusCode::OutOfSync,
        "b still differs"
    );
    let b = outcome
        .live
        .iter()
        .find(|r| r.resource.name == "b")
        .unwrap();
    assert_eq!(b.status, ResourceSyncCode::OutOfSync);
    assert!(
        outcome.inventory.iter().any(|r| r.name == "gone"),
        "what was not pruned stays in the inventory"
    );
    assert_eq!(
        outcome
            .resources
            .iter()
            .map(|r| r.resource.name.as_str())
            .collect::<Vec<_>>(),
        ["a", "gone"],
        "only the selected one applied; the leftover reported, not pruned"
    );
}
