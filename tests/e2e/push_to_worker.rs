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
    ]
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
    let body = webhook_fixture("github-push-commits.json");
    reqwest::Client::new()
        .post(format!("{base}/hooks/github"))
        .header("content-type", "application/json")
        .header("x-github-event", "push")
        .header("x-github-delivery", delivery_id)
        .header("x-hub-signature-256", sign::hub_signature(SECRET, &body))
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

#[tokio::test]
async fn a_signed_push_reaches_a_worker_through_rabbitmq() {
    let broker = TestBroker::connect().await;
    let topology = unique_topology();
    let worker = Service::start("pushsync-worker", &[], &env(topology.prefix()));
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

#[tokio::test]
async fn pushes_accepted_while_no_worker_runs_wait_in_the_queue() {
    let broker = TestBroker::connect().await;
    let topology = unique_topology();
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

    let worker = Service::start("pushsync-worker", &[], &env(topology.prefix()));
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
