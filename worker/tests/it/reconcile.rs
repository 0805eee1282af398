//! New and changed Applications sync at once, not at the next push or poll:
//! the worker's loops in this process, the in-memory queue, the sandbox and
//! a repository served by `git daemon`, with the fallback poll an hour away.

use std::time::{Duration, Instant};

use kube::api::{Api, Patch, PatchParams, PostParams};
use pushsync_api::{Application, ApplicationSpec, SyncStatusCode};
use pushsync_broker::{Broker, MemoryQueue};
use pushsync_proto::Topology;
use pushsync_testkit::git::{GitDaemon, GitRepo};
use pushsync_worker::git::GitCache;
use pushsync_worker::index::{Index, Namespaces};
use pushsync_worker::loops::Settings;
use pushsync_worker::loops::poll::PollSettings;
use pushsync_worker::loops::sync::SyncSettings;
use pushsync_worker::sync::SyncContext;
use pushsync_worker::tenancy::Projects;
use tokio_util::sync::CancellationToken;

use crate::support;

const CM: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\ndata: {version: \"{V}\"}\n";

/// Wait until `done` holds for the Application `web`; how long it took.
async fn until(
    apps: &Api<Application>,
    what: &str,
    done: impl Fn(&Application) -> bool,
) -> Duration {
    let started = Instant::now();
    loop {
        let app = apps.get_opt("web").await.unwrap();
        if let Some(app) = &app
            && done(app)
        {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{what}: never happened; last seen: {:?}",
            app.and_then(|a| a.status)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn git_cache() -> GitCache {
    let cache = tempfile::tempdir().unwrap().keep();
    GitCache::new(cache, Duration::from_secs(20))
        .with_policy(pushsync_worker::git::RemotePolicy::permissive())
}

/// The worker's loops over `sandbox` with `ctx`, the fallback poll an hour
/// away: returns once the poller leads and has run its first cycle.
async fn start_loops(
    sandbox: &pushsync_sandbox::Sandbox,
    ctx: SyncContext,
    stop: &CancellationToken,
) -> pushsync_worker::metrics::Metrics {
    let index = Index::watch(sandbox.client(), &Namespaces::All, stop.clone());
    assert!(index.ready().await);
    let shared = support::shared(
        sandbox,
        Broker::memory(MemoryQueue::new(1000)),
        Topology::default(),
        index,
        ctx.git.clone(),
        "reconciler",
    );
    let metrics = shared.metrics.clone();
    pushsync_worker::loops::spawn(
        &shared,
        ctx,
        Settings {
            dispatch_prefetch: 8,
            sync: SyncSettings {
                lock_poll: Duration::from_millis(50),
                ..SyncSettings::default()
            },
            poll: Some(PollSettings {
                interval: Duration::from_secs(3600),
                tick: Duration::from_millis(100),
                ..PollSettings::default()
            }),
        },
        stop,
    );
    let started = Instant::now();
    while !metrics
        .render()
        .contains("pushsync_worker_polls_total{result=\"ran\"} 1")
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no poll leader"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    metrics
}

fn synced_at(app: &Application, revision: &str) -> bool {
    app.status
        .as_ref()
        .and_then(|s| s.sync.as_ref())
        .is_some_and(|s| {
            s.status == SyncStatusCode::Synced && s.revision.as_deref() == Some(revision)
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_created_or_edited_application_syncs_at_once_with_the_poll_an_hour_away() {
    let sandbox = support::sandbox_with_crds().await;
    let repo = GitRepo::init();
    repo.write("apps/web/cm.yaml", &CM.replace("{V}", "main"));
    repo.write("apps/other/cm.yaml", &CM.replace("{V}", "other-path"));
    let main = repo.commit("main");
    repo.git(&["checkout", "-q", "-b", "release"]);
    repo.write("apps/web/cm.yaml", &CM.replace("{V}", "release"));
    let release = repo.commit("release");
    repo.git(&["checkout", "-q", "main"]);
    let daemon = GitDaemon::serve_repo(&repo);
    let url = daemon.url_of(&repo);

    let stop = CancellationToken::new();
    let metrics = start_loops(
        &sandbox,
        support::sync_context(&sandbox, git_cache()),
        &stop,
    )
    .await;

    let apps: Api<Application> = Api::namespaced(sandbox.client(), "default");
    let spec = ApplicationSpec::automated(&url, "main", "apps/web", "web")
        .with_sync_option("CreateNamespace=true");
    apps.create(
        &PostParams::default(),
        &Application::namespaced("default", "web", spec),
    )
    .await
    .unwrap();
    let took = until(&apps, "the new Application synced", |app| {
        synced_at(app, &main)
    })
    .await;
    eprintln!("created → synced in {took:?}");
    assert!(
        took < Duration::from_secs(5),
        "created → synced took {took:?}"
    );
    let maps: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(sandbox.client(), "web");
    let version = || {
        let maps = maps.clone();
        async move { maps.get("web").await.unwrap().data.unwrap()["version"].clone() }
    };
    assert_eq!(version().await, "main");
    let generation = |app: &Application| {
        (
            app.metadata.generation,
            app.status.as_ref().and_then(|s| s.observed_generation),
        )
    };
    let (current, observed) = generation(&apps.get("web").await.unwrap());
    assert_eq!(
        observed, current,
        "the sync records the generation it worked from"
    );

    // Another branch: its commit applies.
    let edit = |patch: serde_json::Value| {
        let apps = apps.clone();
        async move {
            apps.patch("web", &PatchParams::default(), &Patch::Merge(patch))
                .await
                .unwrap()
        }
    };
    edit(serde_json::json!({"spec": {"source": {"targetRevision": "release"}}})).await;
    let took = until(&apps, "the edited revision synced", |app| {
        synced_at(app, &release)
    })
    .await;
    eprintln!("targetRevision edited → synced in {took:?}");
    assert_eq!(version().await, "release");

    // Back to main, then another path at that same commit: the desired
    // state changed though the revision did not, so it applies (without
    // selfHeal), and the generation is observed.
    edit(serde_json::json!({"spec": {"source": {"targetRevision": "main"}}})).await;
    until(&apps, "main synced again", |app| synced_at(app, &main)).await;
    let before = apps.get("web").await.unwrap().metadata.generation;
    edit(serde_json::json!({"spec": {"source": {"path": "apps/other"}}})).await;
    until(&apps, "the edited path synced", |app| {
        synced_at(app, &main) && {
            let (current, observed) = generation(app);
            current == observed && current != before
        }
    })
    .await;
    assert_eq!(version().await, "other-path");
    assert!(
        !metrics
            .render()
            .contains("pushsync_worker_polls_total{result=\"ran\"} 2"),
        "the poll did not run again: the reconcile loop did this"
    );
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_project_re_syncs_its_applications_at_once() {
    let sandbox = support::sandbox_with_crds().await;
    let repo = GitRepo::init();
    repo.write("apps/web/cm.yaml", &CM.replace("{V}", "main"));
    let main = repo.commit("main");
    let daemon = GitDaemon::serve_repo(&repo);
    let projects: Api<pushsync_api::Project> = Api::namespaced(sandbox.client(), support::PROJECTS);
    let destinations = |namespace: &str| serde_json::json!({"spec": {"sourceNamespaces": ["*"], "sourceRepos": ["*"], "destinations": [{"namespace": namespace}], "clusterResourceWhitelist": [{"group": "", "kind": "Namespace"}]}});
    projects
        .patch(
            "team",
            &PatchParams::apply("test"),
            &Patch::Apply(serde_json::json!({"apiVersion": "pushsync.dev/v1alpha1", "kind": "Project", "metadata": {"name": "team"}, "spec": destinations("elsewhere")["spec"]})),
        )
        .await
        .unwrap();

    let stop = CancellationToken::new();
    let ctx = SyncContext {
        projects: Projects::watch(sandbox.client(), support::PROJECTS, stop.clone()),
        ..support::sync_context(&sandbox, git_cache())
    };
    let metrics = start_loops(&sandbox, ctx, &stop).await;

    // The project does not allow the destination: refused, and the
    // Application's generation is observed (nothing more is due for it).
    let apps: Api<Application> = Api::namespaced(sandbox.client(), "default");
    let mut spec = ApplicationSpec::automated(&daemon.url_of(&repo), "main", "apps/web", "web")
        .with_sync_option("CreateNamespace=true");
    spec.project = "team".to_owned();
    apps.create(
        &PostParams::default(),
        &Application::namespaced("default", "web", spec),
    )
    .await
    .unwrap();
    until(&apps, "the violation reported", |app| {
        app.status.as_ref().is_some_and(|s| {
            s.observed_generation == app.metadata.generation
                && s.conditions.iter().any(|c| c.kind == "ProjectViolation")
        })
    })
    .await;

    // The platform team widens the project: the Application syncs at once,
    // though neither it nor Git changed and the poll is an hour away.
    projects
        .patch(
            "team",
            &PatchParams::default(),
            &Patch::Merge(destinations("web")),
        )
        .await
        .unwrap();
    let took = until(&apps, "the project change synced", |app| {
        synced_at(app, &main)
    })
    .await;
    eprintln!("project widened → synced in {took:?}");
    assert!(
        !metrics
            .render()
            .contains("pushsync_worker_polls_total{result=\"ran\"} 2"),
        "the poll did not run again: the reconcile loop did this"
    );
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_application_with_the_resources_finalizer_deletes_its_objects_and_runs_its_delete_hooks()
 {
    let sandbox = support::sandbox_with_crds().await;
    let repo = GitRepo::init();
    repo.write("apps/web/cm.yaml", &CM.replace("{V}", "1"));
    repo.write(
        "apps/web/second.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: second}\n",
    );
    // Argo CD's Delete=false: it outlives the Application.
    repo.write(
        "apps/web/keep.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: keep-me, annotations: {argocd.argoproj.io/sync-options: Delete=false}}\n",
    );
    // Delete hooks, one in Argo CD's spelling: never applied by a sync.
    repo.write(
        "apps/web/pre.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: pre-delete-ran, annotations: {argocd.argoproj.io/hook: PreDelete}}\n",
    );
    repo.write(
        "apps/web/post.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: post-delete-ran, annotations: {pushsync.dev/hook: PostDelete}}\n",
    );
    repo.write(
        "apps/kept/cm.yaml",
        &CM.replace("{V}", "kept").replace("name: web", "name: kept"),
    );
    let head = repo.commit("apps");
    let daemon = GitDaemon::serve_repo(&repo);
    let url = daemon.url_of(&repo);
    let stop = CancellationToken::new();
    start_loops(
        &sandbox,
        support::sync_context(&sandbox, git_cache()),
        &stop,
    )
    .await;

    let apps: Api<Application> = Api::namespaced(sandbox.client(), "default");
    let maps: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(sandbox.client(), "web");
    let spec = ApplicationSpec::automated(&url, "main", "apps/web", "web")
        .with_sync_option("CreateNamespace=true");
    let mut app = Application::namespaced("default", "web", spec);
    app.metadata.finalizers = Some(vec![pushsync_api::RESOURCES_FINALIZER.to_owned()]);
    apps.create(&PostParams::default(), &app).await.unwrap();
    until(&apps, "synced", |app| synced_at(app, &head)).await;
    assert!(maps.get_opt("second").await.unwrap().is_some());
    assert!(
        maps.get_opt("pre-delete-ran").await.unwrap().is_none(),
        "a delete hook is not applied by a sync"
    );
    // Someone else's object in the same namespace.
    maps.create(
        &PostParams::default(),
        &serde_json::from_value(serde_json::json!({"metadata": {"name": "bystander"}})).unwrap(),
    )
    .await
    .unwrap();

    apps.delete("web", &Default::default()).await.unwrap();
    let started = Instant::now();
    while apps.get_opt("web").await.unwrap().is_some() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the Application was never let go: {:?}",
            apps.get_opt("web").await.unwrap().and_then(|a| a.status)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for gone in ["web", "second"] {
        assert!(
            maps.get_opt(gone).await.unwrap().is_none(),
            "{gone} was left"
        );
    }
    for ran in ["pre-delete-ran", "post-delete-ran", "bystander", "keep-me"] {
        assert!(maps.get_opt(ran).await.unwrap().is_some(), "{ran} missing");
    }

    // Without the finalizer: the Application goes, its objects stay.
    let spec = ApplicationSpec::automated(&url, "main", "apps/kept", "web");
    let kept = Application::namespaced("default", "kept", spec);
    apps.create(&PostParams::default(), &kept).await.unwrap();
    let started = Instant::now();
    while maps.get_opt("kept").await.unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "kept never synced"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    apps.delete("kept", &Default::default()).await.unwrap();
    assert!(apps.get_opt("kept").await.unwrap().is_none());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        maps.get_opt("kept").await.unwrap().is_some(),
        "orphaned, as documented"
    );
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_describe_shows_what_the_worker_did() {
    let sandbox = support::sandbox_with_crds().await;
    let repo = GitRepo::init();
    repo.write("apps/web/cm.yaml", &CM.replace("{V}", "1"));
    repo.write("apps/broken/cm.yaml", "kind: [unclosed\n");
    let head = repo.commit("web and a broken path");
    let daemon = GitDaemon::serve_repo(&repo);
    let stop = CancellationToken::new();
    start_loops(
        &sandbox,
        support::sync_context(&sandbox, git_cache()),
        &stop,
    )
    .await;
    let apps: Api<Application> = Api::namespaced(sandbox.client(), "default");
    let spec = ApplicationSpec::automated(&daemon.url_of(&repo), "main", "apps/web", "web")
        .with_sync_option("CreateNamespace=true");
    apps.create(
        &PostParams::default(),
        &Application::namespaced("default", "web", spec),
    )
    .await
    .unwrap();
    until(&apps, "synced", |app| synced_at(app, &head)).await;
    apps.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": {"source": {"path": "apps/broken"}}})),
    )
    .await
    .unwrap();
    until(&apps, "the render failure reported", |app| {
        app.status
            .as_ref()
            .is_some_and(|s| s.conditions.iter().any(|c| c.kind == "RenderFailed"))
    })
    .await;
    let short = &head[..7];
    let started = Instant::now();
    let described = loop {
        let mut command = std::process::Command::new("kubectl");
        command
            .arg("--kubeconfig")
            .arg(sandbox.kubeconfig())
            .args(["describe", "psapp", "web", "-n", "default"]);
        let output = tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout).to_string();
        if text.contains("RenderFailed") || started.elapsed() > Duration::from_secs(20) {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!("{described}");
    let events = described
        .split("Events:")
        .nth(1)
        .unwrap_or_else(|| panic!("no Events section:\n{described}"));
    let line = |reason: &str| {
        events
            .lines()
            .find(|l| l.contains(reason))
            .map(str::to_owned)
    };
    let synced = line("Synced").unwrap_or_else(|| panic!("{events}"));
    assert!(
        synced.contains("Normal") && synced.contains(short),
        "{synced}"
    );
    let failed = line("RenderFailed").unwrap_or_else(|| panic!("{events}"));
    assert!(
        failed.contains("Warning") && failed.contains("pushsync-worker"),
        "{failed}"
    );
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_deploys_an_earlier_revision_and_turns_automated_sync_off_until_resumed() {
    let sandbox = support::sandbox_with_crds().await;
    let repo = GitRepo::init();
    repo.write("apps/web/cm.yaml", &CM.replace("{V}", "1"));
    let v1 = repo.commit("v1");
    let daemon = GitDaemon::serve_repo(&repo);
    let stop = CancellationToken::new();
    start_loops(
        &sandbox,
        support::sync_context(&sandbox, git_cache()),
        &stop,
    )
    .await;
    let apps: Api<Application> = Api::namespaced(sandbox.client(), "default");
    let maps: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(sandbox.client(), "web");
    let version = || {
        let maps = maps.clone();
        async move { maps.get("web").await.unwrap().data.unwrap()["version"].clone() }
    };
    let annotate = |key: &'static str, value: String| {
        let apps = apps.clone();
        async move {
            apps.patch(
                "web",
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"metadata": {"annotations": {key: value}}})),
            )
            .await
            .unwrap();
        }
    };
    let spec = ApplicationSpec::automated(&daemon.url_of(&repo), "main", "apps/web", "web")
        .with_sync_option("CreateNamespace=true");
    apps.create(
        &PostParams::default(),
        &Application::namespaced("default", "web", spec),
    )
    .await
    .unwrap();
    until(&apps, "v1 synced", |app| synced_at(app, &v1)).await;
    repo.write("apps/web/cm.yaml", &CM.replace("{V}", "2"));
    let v2 = repo.commit("v2");
    annotate("pushsync.dev/sync", "now".into()).await;
    until(&apps, "v2 synced", |app| synced_at(app, &v2)).await;

    // Back to v1, by its short id. Deployed, while compared with the
    // branch it is out of sync (as in Argo CD): the last operation says it.
    annotate("pushsync.dev/rollback", v1[..7].to_owned()).await;
    let app = until_app(&apps, "rolled back", |app| {
        app.status
            .as_ref()
            .and_then(|s| s.operation_state.as_ref())
            .is_some_and(|o| {
                o.revision.as_deref() == Some(v1.as_str())
                    && o.phase == pushsync_api::OperationPhase::Succeeded
            })
    })
    .await;
    assert_eq!(version().await, "1");
    assert!(app.spec.suspend, "automated sync is off");
    let condition = app
        .status
        .as_ref()
        .and_then(|s| {
            s.conditions
                .iter()
                .find(|c| c.kind == "AutoSyncDisabled")
                .cloned()
        })
        .expect("a condition says why");
    assert_eq!(condition.reason.as_deref(), Some("RolledBack"));
    assert!(condition.message.unwrap().contains(&v1[..7]));

    // A new commit is seen but not applied while suspended.
    repo.write("apps/web/cm.yaml", &CM.replace("{V}", "3"));
    let v3 = repo.commit("v3");
    annotate("pushsync.dev/refresh", "now".into()).await;
    until(&apps, "v3 compared", |app| {
        app.status
            .as_ref()
            .and_then(|s| s.sync.as_ref())
            .is_some_and(|s| {
                s.revision.as_deref() == Some(v3.as_str()) && s.status == SyncStatusCode::OutOfSync
            })
    })
    .await;
    assert_eq!(version().await, "1");

    // A revision it never deployed: refused, nothing changes.
    annotate("pushsync.dev/rollback", "deadbeefdeadbeef".into()).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(version().await, "1");
    let app = apps.get("web").await.unwrap();
    assert!(app.spec.suspend);
    assert_eq!(
        app.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("pushsync.dev/rolled-back-to"))
            .map(String::as_str),
        Some(v1.as_str())
    );

    // Resumed: automated sync brings the branch head back.
    apps.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": {"suspend": false}})),
    )
    .await
    .unwrap();
    let app = until_app(&apps, "v3 synced after resume", |app| synced_at(app, &v3)).await;
    assert_eq!(version().await, "3");
    assert!(
        !app.status
            .unwrap()
            .conditions
            .iter()
            .any(|c| c.kind == "AutoSyncDisabled")
    );
    stop.cancel();
}

/// [`until`], returning the Application that satisfied `done`.
async fn until_app(
    apps: &Api<Application>,
    what: &str,
    done: impl Fn(&Application) -> bool,
) -> Application {
    until(apps, what, &done).await;
    apps.get("web").await.unwrap()
}
