//! A push travels from a forge's webhook through the receiver and RabbitMQ to a worker.

use std::time::Duration;

use pushsync_testkit::amqp::{TestBroker, amqp_url, unique_topology};
use pushsync_testkit::{sign, webhook_fixture};

use crate::process::{Service, free_port, wait_status};

const SECRET: &str = "e2e-secret";
const WAIT: Duration = Duration::from_secs(15);

fn env(prefix: &str) -> Vec<(&'static str, String)> {
    vec![
        ("PUSHSYNC_AMQP_URL", amqp_url()),
        ("PUSHSYNC_QUEUE_PREFIX", prefix.to_owned()),
        ("PUSHSYNC_GITHUB_SECRET", SECRET.to_owned()),
        ("PUSHSYNC_GITEA_SECRET", SECRET.to_owned()),
    ]
}

/// A cluster for the worker: the sandbox with the Application CRD installed.
async fn cluster() -> pushsync_sandbox::Sandbox {
    let sandbox = pushsync_sandbox::Sandbox::start().await.unwrap();
    crate::cluster::install_crds(&sandbox.client()).await;
    // Where the workers keep their Leases, as deploy/ creates it.
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> =
        kube::Api::all(sandbox.client());
    namespaces
        .create(
            &Default::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": "pushsync"}})).unwrap(),
        )
        .await
        .unwrap();
    crate::cluster::ensure_default_project(&sandbox.client(), "pushsync").await;
    sandbox
}

/// The worker as its own process, against `sandbox`.
fn worker(prefix: &str, sandbox: &pushsync_sandbox::Sandbox, cache: &std::path::Path) -> Service {
    let mut env = env(prefix);
    env.push(("KUBECONFIG", sandbox.kubeconfig().display().to_string()));
    env.push(("PUSHSYNC_GIT_CACHE", cache.display().to_string()));
    // The test's git daemon listens on loopback.
    env.push(("PUSHSYNC_GIT_ALLOW_LOCAL_ADDRESSES", "true".to_owned()));
    env.push((
        "PUSHSYNC_HELM",
        pushsync_testkit::helm_binary().display().to_string(),
    ));
    env.push(("PUSHSYNC_HEALTH_TIMEOUT", "20s".to_owned()));
    env.push(("PUSHSYNC_METRICS_LISTEN", "127.0.0.1:0".to_owned()));
    // The Applications live in `default`; the install namespace is `pushsync`.
    env.push(("PUSHSYNC_APPLICATION_NAMESPACES", "*".to_owned()));
    Service::start("pushsync-worker", &[], &env)
}

fn receiver(prefix: &str) -> (Service, String) {
    let port = free_port();
    let mut env = env(prefix);
    env.push(("PUSHSYNC_LISTEN", format!("127.0.0.1:{port}")));
    (
        Service::start("pushsync-receiver", &[], &env),
        format!("http://127.0.0.1:{port}"),
    )
}

async fn push(base: &str, delivery_id: &str) -> u16 {
    push_signed(base, SECRET, delivery_id).await
}

/// GitHub's push fixture to `base`'s GitHub endpoint, signed with `secret`:
/// the HTTP status answered.
pub(crate) async fn push_signed(base: &str, secret: &str, delivery_id: &str) -> u16 {
    let body = webhook_fixture("github-push-commits.json");
    reqwest::Client::new()
        .post(format!("{base}/hooks/github"))
        .header("content-type", "application/json")
        .header("x-github-event", "push")
        .header("x-github-delivery", delivery_id)
        .header("x-hub-signature-256", sign::hub_signature(secret, &body))
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn received(delivery_id: &str) -> impl Fn(&serde_json::Value) -> bool + '_ {
    move |line| line["message"] == "push event received" && line["delivery_id"] == delivery_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_push_reaches_a_worker_through_rabbitmq() {
    let broker = TestBroker::connect().await;
    let topology = unique_topology();
    let sandbox = cluster().await;
    let cache = tempfile::tempdir().unwrap();
    let worker = worker(topology.prefix(), &sandbox, cache.path());
    let (receiver, base) = receiver(topology.prefix());
    assert!(
        wait_status(&format!("{base}/readyz"), 200, WAIT).await,
        "receiver not ready"
    );

    assert_eq!(push(&base, "e2e-1").await, 202);
    let lines = worker.wait_for_logs(1, WAIT, received("e2e-1")).await;
    assert_eq!(lines.len(), 1, "worker did not log the event");
    let line = &lines[0];
    assert_eq!(line["repository"], "github.com/binkkatal/sample_app");
    assert_eq!(line["git_ref"], "refs/heads/master");
    assert_eq!(line["after"], "fd489864e7642b48eaad6e3f155c10e46810ec72");

    assert!(
        receiver.terminate(),
        "receiver did not exit cleanly on SIGTERM"
    );
    assert!(worker.terminate(), "worker did not exit cleanly on SIGTERM");
    broker.delete_topology(&topology).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_accepted_while_no_worker_runs_wait_in_the_queue() {
    let broker = TestBroker::connect().await;
    let topology = unique_topology();
    // The install's init step: the receiver only checks for the topology.
    pushsync_broker::declare_topology(&broker.connection, &topology, &Default::default())
        .await
        .unwrap();
    let (receiver, base) = receiver(topology.prefix());
    assert!(
        wait_status(&format!("{base}/readyz"), 200, WAIT).await,
        "receiver not ready"
    );
    let ids: Vec<String> = (0..5).map(|i| format!("offline-{i}")).collect();
    for id in &ids {
        assert_eq!(push(&base, id).await, 202);
    }
    // The receiver dies without any cleanup: what it acknowledged is already
    // the broker's.
    receiver.kill();

    let sandbox = cluster().await;
    let cache = tempfile::tempdir().unwrap();
    let worker = worker(topology.prefix(), &sandbox, cache.path());
    for id in &ids {
        let lines = worker.wait_for_logs(1, WAIT, received(id)).await;
        assert_eq!(lines.len(), 1, "{id} was lost");
    }
    assert!(worker.terminate());
    // Everything was acknowledged by the worker.
    let left = broker
        .drain(&topology.push_events_queue(), Duration::from_millis(200))
        .await;
    assert!(
        left.is_empty(),
        "{} messages left unacknowledged",
        left.len()
    );
    broker.delete_topology(&topology).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_push_through_the_receiver_is_applied_by_the_worker() {
    use k8s_openapi::api::core::v1::ConfigMap;
    use pushsync_api::{Application, ApplicationSpec, Automated, Destination, Source, SyncPolicy};
    use pushsync_testkit::git::{GitDaemon, GitRepo};

    let broker = TestBroker::connect().await;
    let topology = unique_topology();
    let sandbox = cluster().await;
    let repo = GitRepo::init();
    repo.write(
        "apps/web/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\ndata: {version: \"1\"}\n",
    );
    let first = repo.commit("first");
    let daemon = GitDaemon::serve_repo(&repo);
    let url = daemon.url_of(&repo);
    let apps: kube::Api<Application> = kube::Api::namespaced(sandbox.client(), "default");
    let spec = ApplicationSpec {
        project: pushsync_api::DEFAULT_PROJECT.to_owned(),
        source: Source {
            repo_url: url.clone(),
            target_revision: "main".into(),
            path: "apps/web".into(),
            ..Source::default()
        },
        destination: Destination {
            namespace: Some("web".into()),
        },
        sync_policy: Some(SyncPolicy {
            automated: Some(Automated {
                prune: true,
                self_heal: false,
            }),
            sync_options: vec!["CreateNamespace=true".into()],
            retry: None,
        }),
        ignore_differences: Vec::new(),
        suspend: false,
    };
    apps.create(&Default::default(), &Application::new("web", spec))
        .await
        .unwrap();

    let cache = tempfile::tempdir().unwrap();
    let worker = worker(topology.prefix(), &sandbox, cache.path());
    let (receiver, base) = receiver(topology.prefix());
    assert!(
        wait_status(&format!("{base}/readyz"), 200, WAIT).await,
        "receiver not ready"
    );
    assert!(
        !worker
            .wait_for_logs(1, WAIT, |l| l["message"] == "worker running")
            .await
            .is_empty(),
        "worker not running"
    );

    repo.write(
        "apps/web/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\ndata: {version: \"2\"}\n",
    );
    let head = repo.commit("second");
    // A Gitea push webhook, as Gitea sends it for this repository.
    let body = serde_json::to_vec(&serde_json::json!({
        "ref": "refs/heads/main", "before": first, "after": head,
        "commits": [{"id": head, "added": [], "removed": [], "modified": ["apps/web/cm.yaml"]}],
        "repository": {"full_name": "test/repo", "clone_url": url, "html_url": url},
        "pusher": {"login": "tester"},
    }))
    .unwrap();
    let status = reqwest::Client::new()
        .post(format!("{base}/hooks/gitea"))
        .header("content-type", "application/json")
        .header("x-gitea-event", "push")
        .header("x-gitea-delivery", "e2e-apply")
        .header(
            "x-gitea-signature",
            pushsync_testkit::sign::gitea_signature(SECRET, &body),
        )
        .body(body)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 202);

    let configmaps: kube::Api<ConfigMap> = kube::Api::namespaced(sandbox.client(), "web");
    let mut applied = None;
    for _ in 0..300 {
        if let Ok(Some(cm)) = configmaps.get_opt("web").await
            && cm.data.as_ref().is_some_and(|d| d["version"] == "2")
        {
            applied = Some(cm);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        applied.is_some(),
        "the pushed commit was never applied; worker logs: {:?}",
        worker.logs()
    );
    let mut revision = None;
    for _ in 0..100 {
        revision = apps
            .get("web")
            .await
            .unwrap()
            .status
            .and_then(|s| s.sync)
            .and_then(|s| s.revision);
        if revision.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(revision.as_deref(), Some(head.as_str()));

    assert!(receiver.terminate());
    assert!(worker.terminate());
    broker.delete_topology(&topology).await;
}
