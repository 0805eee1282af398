//! The `pushsync` CLI against a running worker (RabbitMQ, a `git daemon`,
//! the sandbox or `PUSHSYNC_TEST_KUBECONFIG`'s cluster): a sync asked for
//! on the command line is applied and waited for, a refresh sees a new
//! commit, a rollback deploys an earlier one with automated sync off until
//! `resume`, and `delete` removes the Application with what it applied.

use std::process::Output;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use pushsync_api::{Application, ApplicationSpec};
use pushsync_testkit::amqp::{TestBroker, amqp_url, unique_topology};
use pushsync_testkit::git::{GitDaemon, GitRepo};

use crate::cluster::TestCluster;
use crate::process::{Service, binary};

fn pushsync(cluster: &TestCluster, args: &[&str]) -> Output {
    let output = std::process::Command::new(binary("pushsync"))
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig())
        .args(["-n", cluster.namespace()])
        .args(args)
        // This test's install namespace (Projects, Leases) is its own.
        .env("PUSHSYNC_NAMESPACE", cluster.namespace())
        .output()
        .unwrap();
    eprintln!(
        "pushsync {args:?} → {:?}\n{}{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn config_map(version: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: web}}\ndata: {{version: \"{version}\"}}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_syncs_refreshes_rolls_back_and_deletes_through_a_worker() {
    let cluster = TestCluster::start(Duration::from_millis(100)).await;
    let topology = unique_topology();
    let cache = tempfile::tempdir().unwrap();
    let worker = Service::start(
        "pushsync-worker",
        &[],
        &[
            ("PUSHSYNC_AMQP_URL", amqp_url()),
            ("PUSHSYNC_QUEUE_PREFIX", topology.prefix().to_owned()),
            ("KUBECONFIG", cluster.kubeconfig().display().to_string()),
            ("PUSHSYNC_NAMESPACE", cluster.namespace().to_owned()),
            ("PUSHSYNC_GIT_ALLOW_LOCAL_ADDRESSES", "true".to_owned()),
            ("PUSHSYNC_GIT_CACHE", cache.path().display().to_string()),
            ("PUSHSYNC_METRICS_LISTEN", "127.0.0.1:0".to_owned()),
            ("PUSHSYNC_LEASE_DURATION", "3s".to_owned()),
        ],
    );
    let repo = GitRepo::init();
    repo.write("apps/web/cm.yaml", &config_map("1"));
    let first = repo.commit("v1");
    let daemon = GitDaemon::serve_repo(&repo);
    let url = daemon.url_of(&repo);

    // Manual sync only: nothing applies until asked.
    let mut spec = ApplicationSpec::automated(&url, "main", "apps/web", cluster.namespace());
    spec.sync_policy = None;
    let apps: Api<Application> = Api::namespaced(cluster.client(), cluster.namespace());
    apps.create(&PostParams::default(), &Application::new("web", spec))
        .await
        .unwrap();
    let config_maps: Api<ConfigMap> = Api::namespaced(cluster.client(), cluster.namespace());
    let version = || async {
        config_maps
            .get_opt("web")
            .await
            .unwrap()
            .and_then(|c| c.data)
            .and_then(|d| d.get("version").cloned())
    };

    let synced = pushsync(&cluster, &["app", "sync", "web", "--timeout", "60s"]);
    assert!(synced.status.success());
    assert_eq!(version().await.as_deref(), Some("1"));
    let waited = pushsync(
        &cluster,
        &[
            "app",
            "wait",
            "web",
            "--for",
            "synced,healthy",
            "--timeout",
            "60s",
        ],
    );
    assert!(waited.status.success());
    // In sync: the diff against targetRevision (fetched from the remote by
    // the CLI itself) shows nothing.
    let same = pushsync(&cluster, &["app", "diff", "web"]);
    assert_eq!(same.status.code(), Some(0));

    // A new commit: the diff shows it, a refresh sees it (OutOfSync,
    // nothing applied without automated sync); a sync applies it.
    repo.write("apps/web/cm.yaml", &config_map("2"));
    let second = repo.commit("v2");
    let differs = pushsync(&cluster, &["app", "diff", "web"]);
    assert_eq!(differs.status.code(), Some(5));
    let shown = String::from_utf8_lossy(&differs.stdout).into_owned();
    assert!(
        shown.contains("ConfigMap") && shown.contains("+  version: \"2\""),
        "{shown}"
    );
    let refreshed = pushsync(&cluster, &["app", "refresh", "web", "--timeout", "60s"]);
    assert!(refreshed.status.success());
    assert!(String::from_utf8_lossy(&refreshed.stderr).contains("OutOfSync"));
    assert_eq!(version().await.as_deref(), Some("1"));
    assert!(
        pushsync(&cluster, &["app", "sync", "web", "--timeout", "60s"])
            .status
            .success()
    );
    assert_eq!(version().await.as_deref(), Some("2"));

    let history = pushsync(&cluster, &["app", "history", "web"]);
    let history = String::from_utf8_lossy(&history.stdout).into_owned();
    assert!(
        history.contains(&second[..7]) && history.contains(&first[..7]),
        "{history}"
    );

    // Roll back to v1 by its short id: applied, and automated sync is off.
    let rolled = pushsync(
        &cluster,
        &["app", "rollback", "web", &first[..7], "--timeout", "60s"],
    );
    assert!(rolled.status.success());
    assert_eq!(version().await.as_deref(), Some("1"));
    assert!(apps.get("web").await.unwrap().spec.suspend);
    assert!(
        pushsync(&cluster, &["app", "resume", "web"])
            .status
            .success()
    );
    assert!(!apps.get("web").await.unwrap().spec.suspend);

    // A sync the worker refuses fails the command with its reason: a
    // revision automated sync would undo.
    // Automated sync on (a merge patch: the worker writes the object too).
    let policy =
        ApplicationSpec::automated(&url, "main", "apps/web", cluster.namespace()).sync_policy;
    apps.patch(
        "web",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(serde_json::json!({"spec": {"syncPolicy": policy}})),
    )
    .await
    .unwrap();
    // Automated sync takes the head first (the spec changed).
    let settled = pushsync(&cluster, &["app", "wait", "web", "--timeout", "60s"]);
    assert!(settled.status.success());
    let refused = pushsync(
        &cluster,
        &[
            "app",
            "sync",
            "web",
            "--revision",
            &first,
            "--timeout",
            "60s",
        ],
    );
    assert_eq!(refused.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("automated sync follows"));

    // Delete with its objects (foreground): both gone when it returns.
    let deleted = pushsync(&cluster, &["app", "delete", "web", "--timeout", "60s"]);
    assert!(deleted.status.success());
    assert!(apps.get_opt("web").await.unwrap().is_none());
    assert_eq!(
        version().await,
        None,
        "the Application's ConfigMap was left behind"
    );

    assert!(worker.terminate(), "the worker did not stop cleanly");
    TestBroker::connect().await.delete_topology(&topology).await;
}
