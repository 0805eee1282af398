//! `deploy/` under RBAC: the worker's ServiceAccount holds only the rights
//! `deploy/rbac.yaml` lists (printed with `kubectl auth can-i --list`), and
//! with exactly those a worker process syncs an Application of the
//! `default` project, every write made as the destination namespace's
//! `pushsync-deployer`. Needs the sandbox's RBAC; on a real cluster (where
//! a test never installs pushsync) it says so and checks nothing.

use std::process::Command;
use std::time::{Duration, Instant};

use kube::api::{Api, PostParams};
use pushsync_api::{Application, ApplicationSpec, SyncStatusCode};
use pushsync_sandbox::{Sandbox, SandboxConfig};
use pushsync_testkit::amqp::{TestBroker, amqp_url, unique_topology};
use pushsync_testkit::git::{GitDaemon, GitRepo};

use crate::process::{Service, repo_root};

const WORKER: &str = "system:serviceaccount:pushsync:pushsync-worker";
const DEPLOYER: &str = "system:serviceaccount:team-a:pushsync-deployer";

fn kubectl(kubeconfig: &std::path::Path, args: &[&str]) -> (bool, String) {
    let output = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn can_i(kubeconfig: &std::path::Path, args: &[&str]) -> String {
    let mut all = vec!["auth", "can-i"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--as", WORKER]);
    // The answer is the first line (kubectl may add a warning after it).
    let (_, out) = kubectl(kubeconfig, &all);
    out.lines().next().unwrap_or_default().trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_works_with_only_the_rights_deploy_grants_it() {
    if std::env::var_os("PUSHSYNC_TEST_KUBECONFIG").is_some() {
        eprintln!("a test never installs pushsync into a real cluster: the RBAC check is skipped");
        return;
    }
    let sandbox = Sandbox::start_with(SandboxConfig {
        rbac: true,
        controller_delay: Duration::from_millis(50),
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let admin = sandbox.kubeconfig().to_path_buf();
    // As a cluster is installed: the CRDs first (the default Project needs
    // its kind served), then everything.
    let deploy = repo_root().join("deploy");
    let crds = deploy.join("crds");
    for (flag, path) in [("-f", &crds), ("-k", &deploy)] {
        let path = path.to_str().unwrap();
        let (ok, out) = kubectl(
            &admin,
            &[
                "apply",
                "--server-side",
                "--field-manager=pushsync-e2e",
                flag,
                path,
            ],
        );
        assert!(ok, "{out}");
    }

    let (ok, rights) = kubectl(
        &admin,
        &["auth", "can-i", "--list", "-n", "team-a", "--as", WORKER],
    );
    assert!(ok, "{rights}");
    eprintln!("kubectl auth can-i --list -n team-a --as={WORKER}:\n{rights}");
    for (args, expected) in [
        (&["create", "deployments", "-n", "team-a"][..], "no"),
        (&["create", "clusterrolebindings"], "no"),
        (&["get", "secrets", "-n", "team-a"], "no"),
        (
            &[
                "patch",
                "applications.pushsync.dev",
                "--subresource=status",
                "-n",
                "team-a",
            ],
            "yes",
        ),
        (
            &[
                "impersonate",
                "serviceaccounts/pushsync-deployer",
                "-n",
                "team-a",
            ],
            "yes",
        ),
        (
            &["impersonate", "serviceaccounts/default", "-n", "team-a"],
            "no",
        ),
        (&["create", "leases", "-n", "pushsync"], "yes"),
        // Sync locks of deleted Applications are collected (lease.rs).
        (&["delete", "leases", "-n", "pushsync"], "yes"),
        (&["create", "events", "-n", "team-a"], "yes"),
        (&["delete", "events", "-n", "team-a"], "no"),
        (&["list", "projects.pushsync.dev", "-n", "pushsync"], "yes"),
    ] {
        assert_eq!(can_i(&admin, args), expected, "can-i {args:?}");
    }

    // Team A's namespace grants its pushsync-deployer `edit`.
    let (ok, out) = kubectl(&admin, &["create", "namespace", "team-a"]);
    assert!(ok, "{out}");
    let (ok, out) = kubectl(
        &admin,
        &[
            "create",
            "serviceaccount",
            "pushsync-deployer",
            "-n",
            "team-a",
        ],
    );
    assert!(ok, "{out}");
    let (ok, out) = kubectl(
        &admin,
        &[
            "create",
            "rolebinding",
            "pushsync-deployer",
            "-n",
            "team-a",
            "--clusterrole=edit",
            "--serviceaccount=team-a:pushsync-deployer",
        ],
    );
    assert!(ok, "{out}");

    // A worker process with only its ServiceAccount's rights.
    let repo = GitRepo::init();
    repo.write(
        "web.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\ndata: {colour: blue}\n",
    );
    repo.commit("web");
    let daemon = GitDaemon::serve_repo(&repo);
    let broker = TestBroker::connect().await;
    let topology = unique_topology();
    let cache = tempfile::tempdir().unwrap();
    let kubeconfig = sandbox.kubeconfig_as(WORKER, &[]).unwrap();
    let worker = Service::start(
        "pushsync-worker",
        &[],
        &[
            ("PUSHSYNC_AMQP_URL", amqp_url()),
            ("PUSHSYNC_QUEUE_PREFIX", topology.prefix().to_owned()),
            ("KUBECONFIG", kubeconfig.display().to_string()),
            ("PUSHSYNC_GIT_CACHE", cache.path().display().to_string()),
            ("PUSHSYNC_METRICS_LISTEN", "127.0.0.1:0".to_owned()),
            ("PUSHSYNC_LEASE_DURATION", "3s".to_owned()),
            // The test's git daemon listens on loopback.
            ("PUSHSYNC_GIT_ALLOW_LOCAL_ADDRESSES", "true".to_owned()),
            ("PUSHSYNC_HEALTH_TIMEOUT", "20s".to_owned()),
        ],
    );
    let apps: Api<Application> = Api::namespaced(sandbox.client(), "pushsync");
    let app = Application::namespaced(
        "pushsync",
        "web",
        ApplicationSpec::automated(&daemon.url_of(&repo), "main", "", "team-a"),
    );
    apps.create(&PostParams::default(), &app).await.unwrap();

    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        let status = apps.get("web").await.unwrap().status.unwrap_or_default();
        let synced = status
            .sync
            .as_ref()
            .is_some_and(|s| s.status == SyncStatusCode::Synced);
        if synced || Instant::now() > deadline {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        status.sync.as_ref().map(|s| s.status),
        Some(SyncStatusCode::Synced),
        "{status:?}\nworker logs: {:?}",
        worker.logs()
    );
    let writers: std::collections::BTreeSet<String> = sandbox
        .audit()
        .into_iter()
        .filter(|e| e.path.contains("/namespaces/team-a/configmaps") && e.is_write())
        .map(|e| e.user)
        .collect();
    assert_eq!(
        writers,
        std::collections::BTreeSet::from([DEPLOYER.to_owned()])
    );
    // The Application's objects are found by label, as the CLI will.
    let (ok, found) = kubectl(
        &admin,
        &[
            "get",
            "configmaps",
            "-A",
            "-l",
            "pushsync.dev/app-name=web,pushsync.dev/app-namespace=pushsync",
            "-o",
            "name",
        ],
    );
    assert!(ok, "{found}");
    assert_eq!(found.trim(), "configmap/web");
    assert!(worker.terminate(), "the worker stops cleanly");
    broker.delete_topology(&topology).await;
}
