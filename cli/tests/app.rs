//! `pushsync app …` run as a process against the API sandbox (the real
//! `pushsync` binary, a kubeconfig as `kubectl` reads it). What a worker
//! does with a request is covered end to end in tests/e2e/cli.rs; here, what
//! the CLI shows, what it writes, its exit codes, and that bad input changes
//! nothing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed step fails the test"
)]

use std::process::Output;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use pushsync_api::Application;
use pushsync_proto::{ResourceSelector, SyncRequest};
use pushsync_sandbox::Sandbox;
use serde_json::{Value, json};

struct Fixture {
    sandbox: Sandbox,
    apps: Api<Application>,
}

impl Fixture {
    async fn start() -> Self {
        let sandbox = Sandbox::start().await.unwrap();
        let crds: Api<CustomResourceDefinition> = Api::all(sandbox.client());
        for (_, crd) in pushsync_api::crds() {
            crds.create(&PostParams::default(), &crd).await.unwrap();
        }
        let apps = Api::namespaced(sandbox.client(), "default");
        Self { sandbox, apps }
    }

    /// Create Application `name` with `labels`, then give it `status`.
    async fn app(&self, name: &str, labels: Value, status: Value) -> Application {
        let app: Application = serde_json::from_value(json!({
            "apiVersion": "pushsync.dev/v1alpha1",
            "kind": "Application",
            "metadata": {"name": name, "namespace": "default", "labels": labels},
            "spec": {
                "project": "default",
                "source": {"repoURL": "https://git.example.com/team/web.git", "targetRevision": "main", "path": "deploy"},
                "destination": {"namespace": "web"},
                "syncPolicy": {"automated": {"prune": true}},
            },
        }))
        .unwrap();
        self.apps
            .create(&PostParams::default(), &app)
            .await
            .unwrap();
        self.set_status(name, status).await
    }

    async fn set_status(&self, name: &str, status: Value) -> Application {
        self.apps
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": status})),
            )
            .await
            .unwrap()
    }

    /// Run `pushsync ARGS` against the sandbox.
    fn run(&self, args: &[&str]) -> Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_pushsync"))
            .arg("--kubeconfig")
            .arg(self.sandbox.kubeconfig())
            .args(args)
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    }

    async fn annotations(&self, name: &str) -> std::collections::BTreeMap<String, String> {
        self.apps
            .get(name)
            .await
            .unwrap()
            .metadata
            .annotations
            .unwrap_or_default()
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn healthy(revision: &str, generation: i64) -> Value {
    json!({
        "sync": {"status": "Synced", "revision": revision, "shortRevision": &revision[..7]},
        "health": {"status": "Healthy"},
        "observedGeneration": generation,
        "history": [
            {"revision": "1111111aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "deployedAt": "2026-12-01T10:00:00Z"},
            {"revision": revision, "deployedAt": "2026-12-01T11:00:00Z"},
        ],
        "conditions": [{"type": "Ready", "status": "True", "reason": "Synced", "message": "1 resources synced", "lastTransitionTime": "2026-12-01T11:00:00Z"}],
    })
}

const HEAD: &str = "2222222bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_and_get_show_sync_health_and_revision_in_every_format() {
    let fx = Fixture::start().await;
    fx.app("web", json!({"team": "a"}), healthy(HEAD, 1)).await;
    fx.app(
        "api",
        json!({"team": "b"}),
        json!({"sync": {"status": "OutOfSync"}, "health": {"status": "Degraded"}}),
    )
    .await;

    let table = fx.run(&["app", "list"]);
    assert!(table.status.success(), "{}", stderr(&table));
    let text = stdout(&table);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("SYNC") && lines[0].contains("HEALTH"),
        "{text}"
    );
    assert!(
        lines[1].starts_with("api")
            && lines[1].contains("OutOfSync")
            && lines[1].contains("Degraded"),
        "{text}"
    );
    assert!(
        lines[2].starts_with("web")
            && lines[2].contains("Synced")
            && lines[2].contains("Healthy")
            && lines[2].contains("2222222"),
        "{text}"
    );

    let wide = stdout(&fx.run(&["app", "list", "-o", "wide", "-A"]));
    assert!(wide.starts_with("NAMESPACE"), "{wide}");
    assert!(
        wide.contains("https://git.example.com/team/web.git")
            && wide.contains("1 resources synced"),
        "{wide}"
    );

    let selected = stdout(&fx.run(&["app", "list", "-l", "team=a", "-o", "name"]));
    assert_eq!(selected, "application.pushsync.dev/web\n");

    let json: Value =
        serde_json::from_str(&stdout(&fx.run(&["app", "list", "-o", "json"]))).unwrap();
    assert_eq!(json["kind"], "List");
    assert_eq!(json["items"].as_array().unwrap().len(), 2);

    let yaml = stdout(&fx.run(&["app", "get", "web", "-o", "yaml"]));
    let back: Application = serde_saphyr::from_str(&yaml).unwrap();
    assert_eq!(back.spec.source.path, "deploy");

    let get = stdout(&fx.run(&["app", "get", "web"]));
    for expected in [
        "default/web",
        "Synced to 2222222b",
        "Healthy",
        "Conditions:",
        "Ready",
        "1 resources synced",
    ] {
        assert!(get.contains(expected), "{expected:?} missing:\n{get}");
    }

    let history = stdout(&fx.run(&["app", "history", "web"]));
    let rows: Vec<&str> = history.lines().skip(1).collect();
    assert!(
        rows[0].contains("2222222") && rows[1].contains("1111111"),
        "newest first:\n{history}"
    );

    let empty = fx.run(&["app", "list", "-n", "nowhere"]);
    assert!(empty.status.success());
    assert!(
        stderr(&empty).contains("No applications found in namespace nowhere"),
        "{}",
        stderr(&empty)
    );

    let missing = fx.run(&["app", "get", "nope"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("application default/nope not found"),
        "{}",
        stderr(&missing)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_refresh_and_rollback_write_what_the_worker_reads_and_bad_input_changes_nothing() {
    let fx = Fixture::start().await;
    fx.app("web", json!({}), healthy(HEAD, 1)).await;

    let sync = fx.run(&[
        "app",
        "sync",
        "web",
        "--async",
        "--resource",
        "apps:Deployment:web",
        "--resource",
        ":ConfigMap:web/settings",
        "--revision",
        "v1.2",
    ]);
    assert!(sync.status.success(), "{}", stderr(&sync));
    let value = fx.annotations("web").await[pushsync_api::SYNC_ANNOTATION].clone();
    let asked = SyncRequest::parse(&value).unwrap();
    assert_eq!(
        asked.prune, None,
        "a sync of selected resources never prunes"
    );
    assert_eq!(asked.revision.as_deref(), Some("v1.2"));
    assert_eq!(
        asked.resources,
        [
            ResourceSelector::parse("apps:Deployment:web").unwrap(),
            ResourceSelector::parse(":ConfigMap:web/settings").unwrap()
        ]
    );

    let refresh = fx.run(&["app", "refresh", "web", "--async"]);
    assert!(refresh.status.success(), "{}", stderr(&refresh));
    assert!(
        fx.annotations("web")
            .await
            .contains_key(pushsync_api::REFRESH_ANNOTATION)
    );

    // Bad input: refused before anything is written.
    fx.apps
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {pushsync_api::SYNC_ANNOTATION: null, pushsync_api::REFRESH_ANNOTATION: null}}})),
        )
        .await
        .unwrap();
    let before = fx.apps.get("web").await.unwrap().metadata.resource_version;
    for (args, says) in [
        (
            &["app", "sync", "web", "--resource", "Deployment/web"][..],
            "--resource \"Deployment/web\"",
        ),
        (
            &["app", "rollback", "web", "9999999"],
            "is not a revision web deployed",
        ),
        (
            &["app", "rollback", "web", "111"],
            "is not a revision web deployed",
        ),
        (
            &["app", "sync", "nope", "--async"],
            "application default/nope not found",
        ),
        (
            &["app", "sync", "web", "--revision", "main,x"],
            "no spaces or commas",
        ),
    ] {
        let output = fx.run(args);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains(says),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    assert_eq!(
        fx.apps.get("web").await.unwrap().metadata.resource_version,
        before,
        "bad input changed the Application"
    );
    for usage in [
        &["app", "sync", "web", "--prune", "--no-prune"][..],
        &[
            "app",
            "sync",
            "web",
            "--prune",
            "--resource",
            "apps:Deployment:web",
        ],
    ] {
        let output = fx.run(usage);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{usage:?}: {}",
            stderr(&output)
        );
    }
    let pruning = fx.run(&["app", "sync", "web", "--async", "--no-prune"]);
    assert!(pruning.status.success(), "{}", stderr(&pruning));
    let value = fx.annotations("web").await[pushsync_api::SYNC_ANNOTATION].clone();
    assert_eq!(SyncRequest::parse(&value).unwrap().prune, Some(false));

    let rollback = fx.run(&["app", "rollback", "web", "1111111", "--async"]);
    assert!(rollback.status.success(), "{}", stderr(&rollback));
    assert_eq!(
        fx.annotations("web").await[pushsync_api::ROLLBACK_ANNOTATION],
        "1111111"
    );

    // Nobody acts on the request here: a wait for it times out (exit 3).
    let waited = fx.run(&["app", "sync", "web", "--timeout", "2s"]);
    assert_eq!(waited.status.code(), Some(3), "{}", stderr(&waited));
    assert!(
        stderr(&waited).contains("timed out after 2s"),
        "{}",
        stderr(&waited)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_succeeds_fails_or_times_out_with_the_reason() {
    let fx = Fixture::start().await;
    fx.app("web", json!({}), healthy(HEAD, 1)).await;

    let ok = fx.run(&["app", "wait", "web", "--timeout", "10s"]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(
        stderr(&ok).contains("Synced/Healthy at 2222222"),
        "{}",
        stderr(&ok)
    );

    // A spec edit makes the healthy status one of an older generation.
    fx.apps
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"source": {"path": "other"}}})),
        )
        .await
        .unwrap();
    let stale = fx.run(&["app", "wait", "web", "--timeout", "1s"]);
    assert_eq!(stale.status.code(), Some(3), "{}", stderr(&stale));
    assert!(
        stderr(&stale).contains("waiting for 2"),
        "{}",
        stderr(&stale)
    );

    fx.set_status(
        "web",
        json!({"observedGeneration": 2, "conditions": [{"type": "Stalled", "status": "True", "reason": "RenderFailed", "message": "kustomize build failed"}]}),
    )
    .await;
    let stalled = fx.run(&["app", "wait", "web", "--timeout", "10s"]);
    assert_eq!(stalled.status.code(), Some(4), "{}", stderr(&stalled));
    assert!(
        stderr(&stalled).contains("RenderFailed: kustomize build failed"),
        "{}",
        stderr(&stalled)
    );

    let missing = fx.run(&["app", "wait", "nope", "--timeout", "1s"]);
    assert_eq!(missing.status.code(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_resume_and_delete_with_each_cascade() {
    let fx = Fixture::start().await;
    for name in ["web", "kept", "bg"] {
        fx.app(name, json!({}), healthy(HEAD, 1)).await;
    }

    assert!(fx.run(&["app", "suspend", "web"]).status.success());
    assert!(fx.apps.get("web").await.unwrap().spec.suspend);
    assert!(fx.run(&["app", "resume", "web"]).status.success());
    assert!(!fx.apps.get("web").await.unwrap().spec.suspend);
    assert_eq!(fx.run(&["app", "suspend", "nope"]).status.code(), Some(1));

    // Orphan: no finalizer, so the Application goes at once.
    let orphan = fx.run(&[
        "app",
        "delete",
        "kept",
        "--cascade",
        "orphan",
        "--timeout",
        "10s",
    ]);
    assert!(orphan.status.success(), "{}", stderr(&orphan));
    assert!(fx.apps.get_opt("kept").await.unwrap().is_none());

    // Foreground and background: the finalizer the worker acts on is set
    // and deletion starts; without a worker here, the Application waits.
    for (name, cascade, finalizer) in [
        ("web", "foreground", pushsync_api::RESOURCES_FINALIZER),
        (
            "bg",
            "background",
            pushsync_api::RESOURCES_FINALIZER_BACKGROUND,
        ),
    ] {
        let deleted = fx.run(&["app", "delete", name, "--cascade", cascade, "--async"]);
        assert!(deleted.status.success(), "{}", stderr(&deleted));
        let app = fx.apps.get(name).await.unwrap();
        assert!(app.metadata.deletion_timestamp.is_some());
        assert_eq!(app.metadata.finalizers.unwrap_or_default(), [finalizer]);
    }
    let waiting = fx.run(&["app", "delete", "web", "--timeout", "1s"]);
    assert_eq!(waiting.status.code(), Some(3), "{}", stderr(&waiting));
    assert!(
        stderr(&waiting).contains(pushsync_api::RESOURCES_FINALIZER),
        "{}",
        stderr(&waiting)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_of_a_local_checkout_shows_what_a_sync_would_change_and_changes_nothing() {
    let fx = Fixture::start().await;
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(fx.sandbox.client());
    for namespace in ["web", "pushsync"] {
        namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": namespace}})).unwrap(),
            )
            .await
            .unwrap();
    }
    // The diff holds the render to the Application's Project, as a sync does.
    let projects: Api<pushsync_api::Project> = Api::namespaced(fx.sandbox.client(), "pushsync");
    projects
        .create(
            &PostParams::default(),
            &pushsync_api::Project::new("default", pushsync_api::ProjectSpec::unrestricted()),
        )
        .await
        .unwrap();
    fx.app("web", json!({}), json!({})).await;
    let checkout = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(checkout.path().join("deploy")).unwrap();
    std::fs::write(
        checkout.path().join("deploy/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {version: \"2\"}\n",
    )
    .unwrap();
    let local = checkout.path().display().to_string();

    let diff = fx.run(&["app", "diff", "web", "--local", &local]);
    assert_eq!(diff.status.code(), Some(5), "{}", stderr(&diff));
    let shown = stdout(&diff);
    assert!(
        shown.contains("===== ConfigMap web/settings (Missing)"),
        "{shown}"
    );
    assert!(shown.contains("version"), "{shown}");
    assert!(
        stderr(&diff).contains("1 of 1 resources differ from the local checkout"),
        "{}",
        stderr(&diff)
    );
    let config_maps: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(fx.sandbox.client(), "web");
    assert!(
        config_maps.get_opt("settings").await.unwrap().is_none(),
        "a diff wrote to the cluster"
    );

    // A change larger than the status keeps (4 KiB) is shown whole.
    let live: k8s_openapi::api::core::v1::ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "big", "namespace": "web"},
        "data": {"blob": "a".repeat(6000)},
    }))
    .unwrap();
    config_maps
        .create(&PostParams::default(), &live)
        .await
        .unwrap();
    std::fs::write(
        checkout.path().join("deploy/big.yaml"),
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: big}}\ndata: {{blob: {}}}\n",
            "b".repeat(6000)
        ),
    )
    .unwrap();
    let whole = fx.run(&["app", "diff", "web", "--local", &local]);
    assert_eq!(whole.status.code(), Some(5), "{}", stderr(&whole));
    let shown = stdout(&whole);
    assert!(
        shown.contains("===== ConfigMap web/big (OutOfSync)"),
        "{shown}"
    );
    assert!(shown.contains(&"b".repeat(6000)) && !shown.contains("(truncated)"));
    std::fs::remove_file(checkout.path().join("deploy/big.yaml")).unwrap();

    // A checkout whose file links outside it is refused, not read.
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("token"), "secret").unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("token"),
        checkout.path().join("deploy/leak.yaml"),
    )
    .unwrap();
    let refused = fx.run(&["app", "diff", "web", "--local", &local]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("points outside the repository"),
        "{}",
        stderr(&refused)
    );
    assert!(!stderr(&refused).contains("secret") && !stdout(&refused).contains("secret"));

    // A malformed manifest is the render's error, as the status would say.
    std::fs::remove_file(checkout.path().join("deploy/leak.yaml")).unwrap();
    std::fs::write(checkout.path().join("deploy/bad.yaml"), "kind: [unclosed\n").unwrap();
    let bad = fx.run(&["app", "diff", "web", "--local", &local]);
    assert_eq!(bad.status.code(), Some(1), "{}", stderr(&bad));
    assert!(stderr(&bad).contains("cannot compare"), "{}", stderr(&bad));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_watch_prints_each_change_as_it_happens() {
    use std::io::BufRead;
    let fx = Fixture::start().await;
    fx.app("web", json!({}), healthy(HEAD, 1)).await;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_pushsync"))
        .arg("--kubeconfig")
        .arg(fx.sandbox.kubeconfig())
        .args(["app", "list", "--watch"])
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (lines, seen) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let next = || {
        seen.recv_timeout(std::time::Duration::from_secs(10))
            .unwrap()
    };
    assert!(next().starts_with("NAME"));
    assert!(next().contains("Healthy"));
    fx.set_status("web", json!({"health": {"status": "Degraded"}}))
        .await;
    let mut changed = next();
    // The watch's initial listing may repeat the row once before the change.
    if changed.contains("Healthy") {
        changed = next();
    }
    assert!(
        changed.starts_with("web") && changed.contains("Degraded"),
        "{changed}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}
