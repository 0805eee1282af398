//! The whole worker path in one process: a signed-push-shaped event on the
//! real RabbitMQ, dispatch, a sync job, a sync against the sandbox from a
//! repository served by `git daemon`, and the status written.

use std::time::Duration;

use kube::api::{Api, PostParams};
use pushsync_api::{Application, ApplicationSpec};
use pushsync_broker::{AmqpConfig, Broker, Outgoing};
use pushsync_proto::{Message, Topology};
use pushsync_testkit::amqp::{TestBroker, amqp_url, unique_topology};
use pushsync_testkit::git::{GitDaemon, GitRepo};
use pushsync_worker::git::GitCache;
use pushsync_worker::index::{Index, Namespaces};
use pushsync_worker::loops::sync::{SyncSettings, Syncer};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

use crate::support;

fn push(url: &str, after: &str, paths: &[&str]) -> Outgoing {
    let paths: Vec<String> = paths.iter().map(|p| (*p).to_owned()).collect();
    let message = Message::PushV1(pushsync_testkit::push_event(url, after, &paths));
    Outgoing {
        exchange: Topology::default().events_exchange(),
        routing_key: "push.gitea".into(),
        message_id: format!("delivery-{after}"),
        schema: message.schema(),
        body: message.encode().unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_on_the_queue_ends_applied_with_its_status_written() {
    let inspect = TestBroker::connect().await;
    let topology = unique_topology();
    let mut config = AmqpConfig::new(SecretString::from(amqp_url()), "pushsync-worker-test");
    config.topology = topology.clone();
    let broker = Broker::amqp(config);
    assert!(broker.wait_ready(Duration::from_secs(10)).await);

    let sandbox = support::sandbox_with_crds().await;

    let repo = GitRepo::init();
    repo.write(
        "apps/web/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\ndata: {version: \"1\"}\n",
    )
    .write(
        "apps/other/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: other}\n",
    );
    repo.commit("first");
    let daemon = GitDaemon::serve_repo(&repo);
    let url = daemon.url_of(&repo);

    let apps: Api<Application> = Api::namespaced(sandbox.client(), "default");
    for (name, path) in [("web", "apps/web"), ("other", "apps/other")] {
        let spec = ApplicationSpec::automated(&url, "main", path, name)
            .with_sync_option("CreateNamespace=true");
        apps.create(&PostParams::default(), &Application::new(name, spec))
            .await
            .unwrap();
    }

    let stop = CancellationToken::new();
    let index = Index::watch(sandbox.client(), &Namespaces::All, stop.clone());
    assert!(index.ready().await);
    let cache = tempfile::tempdir().unwrap();
    let git = GitCache::new(cache.path(), Duration::from_secs(20))
        .with_policy(pushsync_worker::git::RemotePolicy::permissive());
    let ctx = support::sync_context(&sandbox, git.clone());
    let shared = support::shared(
        &sandbox,
        broker.clone(),
        topology.clone(),
        index,
        git,
        "test-worker",
    );
    let metrics = shared.metrics.clone();
    let dispatcher = tokio::spawn(pushsync_worker::loops::dispatch::run(
        shared.clone(),
        8,
        stop.clone(),
    ));
    let syncer = tokio::spawn(Syncer::new(shared, ctx, SyncSettings::default()).run(stop.clone()));

    // A push touching only apps/web: only "web" syncs.
    repo.write(
        "apps/web/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\ndata: {version: \"2\"}\n",
    );
    let head = repo.commit("second");
    let mut event = push(&url, &head, &["apps/web/cm.yaml"]);
    event.exchange = topology.events_exchange();
    broker.publish_all(&[event]).await.unwrap();

    let configmaps: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(sandbox.client(), "web");
    let mut synced = None;
    for _ in 0..200 {
        if let Ok(cm) = configmaps.get("web").await {
            synced = Some(cm);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cm = synced.expect("the push was never applied");
    assert_eq!(cm.data.unwrap()["version"], "2");
    let mut status = None;
    for _ in 0..200 {
        status = apps.get("web").await.unwrap().status;
        if status.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = status.expect("no status written");
    assert_eq!(
        status.sync.unwrap().revision.as_deref(),
        Some(head.as_str())
    );
    // The other Application was not woken.
    assert!(apps.get("other").await.unwrap().status.is_none());
    let other: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(sandbox.client(), "other");
    assert!(other.get_opt("other").await.unwrap().is_none());

    let exposition = metrics.render();
    for line in [
        "pushsync_worker_push_events_total{result=\"dispatched\"} 1",
        "pushsync_worker_sync_jobs_published_total 1",
        "pushsync_worker_syncs_total{outcome=\"succeeded\"} 1",
        "pushsync_worker_push_to_sync_start_seconds_count 1",
    ] {
        assert!(exposition.contains(line), "{line} missing:\n{exposition}");
    }
    // Prometheus naming conventions (promtool from `make deps`).
    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool not found: run `make deps`");
    std::io::Write::write_all(&mut promtool.stdin.take().unwrap(), exposition.as_bytes()).unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    // The branch is deleted: a condition on both Applications, nothing applied.
    let mut deletion = push(&url, "0000000000000000000000000000000000000000", &[]);
    let Message::PushV1(mut event) = Message::decode(&deletion.body).unwrap() else {
        panic!("not a push");
    };
    event.deleted = true;
    event.after = None;
    event.delivery_id = "delivery-deleted".into();
    deletion.body = Message::PushV1(event).encode().unwrap();
    deletion.message_id = "delivery-deleted".into();
    deletion.exchange = topology.events_exchange();
    broker.publish_all(&[deletion]).await.unwrap();
    for name in ["web", "other"] {
        let mut condition = None;
        for _ in 0..200 {
            condition = apps
                .get(name)
                .await
                .unwrap()
                .status
                .and_then(|s| s.conditions.into_iter().find(|c| c.kind == "RefDeleted"));
            if condition.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let condition = condition.unwrap_or_else(|| panic!("{name}: no RefDeleted condition"));
        assert!(
            condition
                .message
                .unwrap()
                .contains("refs/heads/main was deleted"),
            "{name}"
        );
    }
    assert_eq!(
        configmaps.get("web").await.unwrap().data.unwrap()["version"],
        "2",
        "nothing was applied or pruned"
    );

    stop.cancel();
    let _ = tokio::join!(dispatcher, syncer);
    // Everything was acknowledged.
    for queue in [topology.push_events_queue(), topology.sync_jobs_queue()] {
        assert!(
            inspect
                .drain(&queue, Duration::from_millis(200))
                .await
                .is_empty(),
            "{queue} not empty"
        );
    }
    broker.close().await;
    inspect.delete_topology(&topology).await;
}
