//! Consuming from the real RabbitMQ: acknowledgement, redelivery,
//! dead-lettering, and resubscribing after the connection is cut.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed step fails the test"
)]

use std::time::Duration;

use pushsync_broker::{AmqpConfig, Broker, MemoryQueue, Outgoing};
use pushsync_proto::Topology;
use pushsync_testkit::amqp::{TestBroker, amqp_url, unique_topology};
use pushsync_testkit::proxy::TcpProxy;
use secrecy::SecretString;

const WAIT: Duration = Duration::from_secs(10);

fn broker(uri: &str, topology: &Topology) -> Broker {
    let mut config = AmqpConfig::new(SecretString::from(uri.to_owned()), "pushsync-broker-test");
    config.topology = topology.clone();
    config.max_backoff = Duration::from_millis(200);
    Broker::amqp(config)
}

fn job(topology: &Topology, id: &str) -> Outgoing {
    Outgoing {
        exchange: topology.jobs_exchange(),
        routing_key: Topology::SYNC_ROUTING_KEY.to_owned(),
        message_id: id.to_owned(),
        schema: "sync-job/v1",
        body: id.as_bytes().to_vec(),
    }
}

async fn next(consumer: &mut pushsync_broker::Consumer) -> pushsync_broker::Delivery {
    tokio::time::timeout(WAIT, consumer.next())
        .await
        .expect("no delivery in time")
        .expect("consumer ended")
}

#[tokio::test]
async fn deliveries_are_acked_retried_and_dead_lettered() {
    let inspect = TestBroker::connect().await;
    let topology = unique_topology();
    let broker = broker(&amqp_url(), &topology);
    assert!(broker.wait_ready(WAIT).await);
    broker
        .publish_all(&[
            job(&topology, "a"),
            job(&topology, "b"),
            job(&topology, "c"),
        ])
        .await
        .unwrap();

    let mut consumer = broker.consume(&topology.sync_jobs_queue(), &topology.jobs_exchange(), 8);
    let a = next(&mut consumer).await;
    assert_eq!((a.message_id.as_deref(), a.redelivered), (Some("a"), false));
    a.ack().await.unwrap();
    let b = next(&mut consumer).await;
    b.retry().await.unwrap();
    let c = next(&mut consumer).await;
    assert_eq!(c.body, b"c");
    c.dead_letter().await.unwrap();
    let again = next(&mut consumer).await;
    assert_eq!(
        (again.message_id.as_deref(), again.redelivered),
        (Some("b"), true)
    );
    again.ack().await.unwrap();

    let dead = inspect.take(&topology.dead_letter(), 1, WAIT).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].data, b"c");
    let left = inspect
        .drain(&topology.sync_jobs_queue(), Duration::from_millis(200))
        .await;
    assert!(left.is_empty(), "{} messages left", left.len());
    broker.close().await;
    assert!(
        consumer.next().await.is_none(),
        "a closed broker ends its consumers"
    );
    inspect.delete_topology(&topology).await;
}

#[tokio::test]
async fn a_consumer_resubscribes_after_the_connection_is_cut() {
    let inspect = TestBroker::connect().await;
    let topology = unique_topology();
    let proxy = TcpProxy::start("127.0.0.1:5672".parse().unwrap())
        .await
        .unwrap();
    let uri = amqp_url().replacen("127.0.0.1:5672", &proxy.addr().to_string(), 1);
    let broker = broker(&uri, &topology);
    assert!(broker.wait_ready(WAIT).await);
    let mut consumer = broker.consume(&topology.sync_jobs_queue(), &topology.jobs_exchange(), 1);
    broker
        .publish_all(&[job(&topology, "before")])
        .await
        .unwrap();
    // Taken but not acknowledged when the connection dies: it comes back.
    let held = next(&mut consumer).await;
    assert_eq!(held.message_id.as_deref(), Some("before"));

    proxy.cut();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // lapin may report this ack as sent although its channel is gone; the
    // broker never got it, so the message is redelivered either way.
    let _ = held.ack().await;
    proxy.restore();
    assert!(broker.wait_ready(WAIT).await);
    broker
        .publish_all(&[job(&topology, "after")])
        .await
        .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let delivery = next(&mut consumer).await;
        seen.push(delivery.message_id.clone().unwrap());
        delivery.ack().await.unwrap();
    }
    seen.sort();
    assert_eq!(seen, ["after", "before"]);
    broker.close().await;
    inspect.delete_topology(&topology).await;
}

#[tokio::test]
async fn the_in_memory_backend_keeps_exchanges_apart_and_requeues() {
    let queue = MemoryQueue::new(10);
    let broker = Broker::memory(queue.clone());
    let topology = Topology::default();
    let push = Outgoing {
        exchange: topology.events_exchange(),
        ..job(&topology, "push")
    };
    broker
        .publish_all(&[push, job(&topology, "job")])
        .await
        .unwrap();
    let mut jobs = broker.consume(&topology.sync_jobs_queue(), &topology.jobs_exchange(), 1);
    let delivery = next(&mut jobs).await;
    assert_eq!(delivery.message_id.as_deref(), Some("job"));
    delivery.retry().await.unwrap();
    next(&mut jobs).await.ack().await.unwrap();
    assert_eq!(queue.len(), 1, "the push event is still there");
}

#[tokio::test]
async fn a_job_published_for_later_waits_in_a_retry_queue_and_comes_back() {
    let inspect = TestBroker::connect().await;
    let topology = unique_topology();
    let broker = broker(&amqp_url(), &topology);
    assert!(broker.wait_ready(WAIT).await);
    let mut consumer = broker.consume(&topology.sync_jobs_queue(), &topology.jobs_exchange(), 8);
    let started = std::time::Instant::now();
    // 1.2 s rounds up to the 2 s queue.
    let waits = broker
        .publish_later(&job(&topology, "later"), Duration::from_millis(1200))
        .await
        .unwrap();
    assert_eq!(waits, Duration::from_secs(2));
    // Held by the broker, not by any consumer: nothing unacknowledged.
    let early = tokio::time::timeout(Duration::from_millis(1500), consumer.next()).await;
    assert!(early.is_err(), "it came back before its delay");
    let back = next(&mut consumer).await;
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert_eq!(
        (back.message_id.as_deref(), back.body.as_slice()),
        (Some("later"), b"later".as_slice())
    );
    back.ack().await.unwrap();
    broker.close().await;
    inspect.delete_topology(&topology).await;

    // The in-memory backend keeps the same promise with a timer.
    let queue = MemoryQueue::new(4);
    let memory = Broker::memory(queue.clone());
    let topology = Topology::default();
    memory
        .publish_later(&job(&topology, "m"), Duration::from_millis(300))
        .await
        .unwrap();
    assert!(queue.is_empty());
    let back = tokio::time::timeout(WAIT, queue.pop()).await.unwrap();
    assert_eq!(back.message_id, "m");
}
