//! Against the real RabbitMQ: exactly-once publish, durability properties,
//! deduplication, and surviving a broker outage in the same process.

use std::time::Duration;

use pushsync_proto::Topology;
use pushsync_proto::{Message, Provider, RefKind};
use pushsync_testkit::amqp::{BrokerUser, TestBroker, amqp_url, unique_topology};
use pushsync_testkit::proxy::TcpProxy;
use pushsync_testkit::webhook_fixture;

use crate::support::{all_secrets, amqp, every_fixture, github, start};

const SETTLE: Duration = Duration::from_millis(300);
const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_signed_push_is_published_once_persistently_with_the_normalised_event() {
    let broker = TestBroker::connect().await;
    let topology = unique_topology();
    let receiver = start(amqp(&amqp_url(), &topology), all_secrets(), |_| {}).await;
    assert!(
        receiver.wait_ready(200, WAIT).await,
        "receiver never became ready"
    );

    let delivery = github(
        "push",
        "delivery-42",
        webhook_fixture("github-push-commits.json"),
    );
    let response = receiver
        .post(delivery.path, &delivery.headers, &delivery.body)
        .await;
    assert_eq!(response.status(), 202);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "accepted");
    assert_eq!(body["delivery_id"], "delivery-42");

    let messages = broker.take(&topology.push_events_queue(), 1, WAIT).await;
    let extra = broker.drain(&topology.push_events_queue(), SETTLE).await;
    assert_eq!(messages.len() + extra.len(), 1, "exactly one message");
    let message = &messages[0];
    assert_eq!(message.properties.delivery_mode(), &Some(2), "persistent");
    assert_eq!(
        message.properties.message_id().as_ref().map(|s| s.as_str()),
        Some("delivery-42")
    );
    assert_eq!(
        message.properties.kind().as_ref().map(|s| s.as_str()),
        Some("push/v1")
    );
    assert_eq!(message.routing_key.as_str(), "push.github");
    let Message::PushV1(event) = Message::decode(&message.data).unwrap() else {
        panic!("not a push event");
    };
    assert_eq!(event.provider, Provider::Github);
    assert_eq!(event.delivery_id, "delivery-42");
    assert_eq!(
        event.repository.id.as_str(),
        "github.com/binkkatal/sample_app"
    );
    assert_eq!(
        (event.git_ref.kind, event.git_ref.name.as_str()),
        (RefKind::Branch, "master")
    );
    assert_eq!(
        event.after.as_deref(),
        Some("fd489864e7642b48eaad6e3f155c10e46810ec72")
    );
    assert_eq!(
        event.changed_paths.paths,
        [
            ".razorops.yaml",
            "app/controllers/application_controller.rb"
        ]
    );
    assert!(!event.changed_paths.incomplete);

    receiver.stop().await;
    broker.delete_topology(&topology).await;
}

#[tokio::test]
async fn every_forge_fixture_is_accepted_and_published() {
    let broker = TestBroker::connect().await;
    let topology = unique_topology();
    let receiver = start(amqp(&amqp_url(), &topology), all_secrets(), |_| {}).await;
    assert!(receiver.wait_ready(200, WAIT).await);

    let mut expected = 0;
    for (name, delivery, events) in every_fixture() {
        let response = receiver
            .post(delivery.path, &delivery.headers, &delivery.body)
            .await;
        let want = if events == 0 { 200 } else { 202 };
        assert_eq!(
            response.status(),
            want,
            "{name}: {}",
            response.text().await.unwrap_or_default()
        );
        expected += events;
    }
    let messages = broker
        .take(&topology.push_events_queue(), expected, WAIT)
        .await;
    let extra = broker.drain(&topology.push_events_queue(), SETTLE).await;
    assert_eq!(messages.len() + extra.len(), expected);
    let mut providers: Vec<Provider> = messages
        .iter()
        .map(|m| match Message::decode(&m.data) {
            Ok(Message::PushV1(event)) => event.provider,
            other => panic!("{other:?}"),
        })
        .collect();
    providers.dedup();
    for provider in [
        Provider::Github,
        Provider::Gitlab,
        Provider::Gitea,
        Provider::Gogs,
        Provider::BitbucketCloud,
        Provider::BitbucketServer,
    ] {
        assert!(providers.contains(&provider), "{provider} missing");
    }

    receiver.stop().await;
    broker.delete_topology(&topology).await;
}

#[tokio::test]
async fn a_replayed_signed_gitlab_delivery_with_a_new_idempotency_key_is_a_duplicate() {
    use pushsync_receiver::secrets::{SecretSource, SecretSources};
    use pushsync_testkit::sign;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
    let (queue, memory) = crate::support::memory();
    let secrets = SecretSources {
        gitlab_signing: SecretSource::inline(
            "PUSHSYNC_GITLAB_SIGNING_TOKEN",
            &sign::gitlab_signing_token(KEY),
        ),
        ..SecretSources::default()
    };
    let receiver = start(queue, secrets, |_| {}).await;
    assert!(receiver.wait_ready(200, WAIT).await);
    let body = webhook_fixture("gitlab-push-docs.json");
    let now = jiff::Timestamp::now().as_second();
    let signature = sign::standard_webhook_signature(KEY, "msg_signed", now, &body);
    let now = now.to_string();
    let delivery = |idempotency_key: &str| -> Vec<(String, String)> {
        [
            ("x-gitlab-event", "Push Hook"),
            ("webhook-id", "msg_signed"),
            ("webhook-timestamp", now.as_str()),
            ("webhook-signature", signature.as_str()),
            ("idempotency-key", idempotency_key),
            ("content-type", "application/json"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    };
    let original = receiver
        .post("/hooks/gitlab", &delivery("original"), &body)
        .await;
    assert_eq!(original.status(), 202);
    // The attacker replays the captured request within the timestamp
    // window, changing only the unsigned Idempotency-Key.
    let replay = receiver
        .post("/hooks/gitlab", &delivery("attacker-chosen"), &body)
        .await;
    assert_eq!(replay.status(), 200);
    assert_eq!(
        replay.json::<serde_json::Value>().await.unwrap()["status"],
        "duplicate"
    );
    let mut published = 0;
    while memory.try_pop().is_some() {
        published += 1;
    }
    assert_eq!(published, 1, "the replay was published again");
    receiver.stop().await;
}

#[tokio::test]
async fn a_push_listing_a_flood_of_paths_is_published_small_and_marked_incomplete() {
    let (queue, memory) = crate::support::memory();
    let receiver = start(queue, all_secrets(), |_| {}).await;
    assert!(receiver.wait_ready(200, WAIT).await);
    let mut payload: serde_json::Value =
        serde_json::from_slice(&webhook_fixture("github-push-commits.json")).unwrap();
    let flood: Vec<String> = (0..50_000)
        .map(|n| format!("very/deep/directory/{n:08}/manifest.yaml"))
        .collect();
    payload["commits"][0]["modified"] = serde_json::json!(flood);
    let delivery = github("push", "flood", serde_json::to_vec(&payload).unwrap());
    let answer = receiver
        .post(delivery.path, &delivery.headers, &delivery.body)
        .await;
    assert_eq!(answer.status(), 202);
    let message = memory.try_pop().expect("published");
    assert!(
        message.body.len() < 64 * 1024,
        "{} bytes",
        message.body.len()
    );
    let Ok(Message::PushV1(event)) = Message::decode(&message.body) else {
        panic!("not a push event");
    };
    assert!(event.changed_paths.incomplete && event.changed_paths.paths.is_empty());
    receiver.stop().await;
}

#[tokio::test]
async fn a_redelivery_is_answered_duplicate_and_not_published_twice() {
    let broker = TestBroker::connect().await;
    let topology = unique_topology();
    let receiver = start(amqp(&amqp_url(), &topology), all_secrets(), |_| {}).await;
    assert!(receiver.wait_ready(200, WAIT).await);

    let delivery = github(
        "push",
        "same-id",
        webhook_fixture("github-push-commits.json"),
    );
    let first = receiver
        .post(delivery.path, &delivery.headers, &delivery.body)
        .await;
    assert_eq!(first.status(), 202);
    let second = receiver
        .post(delivery.path, &delivery.headers, &delivery.body)
        .await;
    assert_eq!(second.status(), 200);
    assert_eq!(
        second.json::<serde_json::Value>().await.unwrap()["status"],
        "duplicate"
    );
    // Another delivery id is another push.
    let other = github(
        "push",
        "other-id",
        webhook_fixture("github-push-commits.json"),
    );
    assert_eq!(
        receiver
            .post(other.path, &other.headers, &other.body)
            .await
            .status(),
        202
    );

    let messages = broker.take(&topology.push_events_queue(), 2, WAIT).await;
    let extra = broker.drain(&topology.push_events_queue(), SETTLE).await;
    assert_eq!(messages.len() + extra.len(), 2);

    receiver.stop().await;
    broker.delete_topology(&topology).await;
}

#[tokio::test]
async fn a_broker_outage_gives_503_and_the_same_process_recovers() {
    let broker = TestBroker::connect().await;
    let topology = unique_topology();
    let target = "127.0.0.1:5672".parse().unwrap();
    let proxy = TcpProxy::start(target).await.unwrap();
    let uri = amqp_url().replacen("127.0.0.1:5672", &proxy.addr().to_string(), 1);
    let receiver = start(amqp(&uri, &topology), all_secrets(), |_| {}).await;
    assert!(receiver.wait_ready(200, WAIT).await);

    let before = github(
        "push",
        "before-outage",
        webhook_fixture("github-push-commits.json"),
    );
    assert_eq!(
        receiver
            .post(before.path, &before.headers, &before.body)
            .await
            .status(),
        202
    );

    proxy.cut();
    assert!(
        receiver.wait_ready(503, WAIT).await,
        "readyz still 200 with the broker gone"
    );
    let during = github(
        "push",
        "during-outage",
        webhook_fixture("github-push-commits.json"),
    );
    let response = receiver
        .post(during.path, &during.headers, &during.body)
        .await;
    assert_eq!(response.status(), 503);
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("7")
    );
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap()["error"],
        "broker_unavailable"
    );

    proxy.restore();
    assert!(
        receiver.wait_ready(200, WAIT).await,
        "receiver did not reconnect"
    );
    // The forge redelivers the failed delivery: it was not remembered, so it is published now.
    let response = receiver
        .post(during.path, &during.headers, &during.body)
        .await;
    assert_eq!(response.status(), 202);

    let messages = broker.take(&topology.push_events_queue(), 2, WAIT).await;
    let extra = broker.drain(&topology.push_events_queue(), SETTLE).await;
    let ids: Vec<String> = messages
        .iter()
        .chain(&extra)
        .filter_map(|m| m.properties.message_id().as_ref().map(|s| s.to_string()))
        .collect();
    assert_eq!(ids, ["before-outage", "during-outage"]);

    let metrics = receiver.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("pushsync_receiver_broker_connections_total 2"),
        "{metrics}"
    );

    receiver.stop().await;
    broker.delete_topology(&topology).await;
}

#[tokio::test]
async fn with_no_broker_reachable_pushes_get_503_but_health_is_fine() {
    let topology = unique_topology();
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let uri = format!("amqp://guest:guest@{}/%2f", closed.local_addr().unwrap());
    drop(closed);
    let receiver = start(amqp(&uri, &topology), all_secrets(), |_| {}).await;

    assert_eq!(receiver.get("/healthz").await.status(), 200);
    assert_eq!(receiver.get("/readyz").await.status(), 503);
    let delivery = github(
        "push",
        "no-broker",
        webhook_fixture("github-push-commits.json"),
    );
    let response = receiver
        .post(delivery.path, &delivery.headers, &delivery.body)
        .await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    receiver.stop().await;
}

#[tokio::test]
async fn the_receivers_broker_user_can_publish_push_events_and_nothing_else() {
    let broker = TestBroker::connect().await;
    let topology = unique_topology();
    // The receiver's user, as README's RabbitMQ permissions give it.
    let events = regex_escape(&topology.events_exchange());
    let user = BrokerUser::create("^$", &format!("^{events}$"), "^$");
    let mut config = pushsync_broker::AmqpConfig::new(
        secrecy::SecretString::from(user.url()),
        "pushsync-receiver-test",
    );
    config.topology = topology.clone();
    config.declare = pushsync_broker::Declare::CheckEvents;
    config.max_backoff = Duration::from_millis(200);
    let receiver = start(
        pushsync_receiver::QueueConfig::Amqp(config),
        all_secrets(),
        |_| {},
    )
    .await;
    // Nothing declared yet: the receiver waits for the workers, not ready.
    assert!(!receiver.wait_ready(200, Duration::from_secs(2)).await);
    pushsync_broker::declare_topology(&broker.connection, &topology, &Default::default())
        .await
        .unwrap();
    assert!(receiver.wait_ready(200, WAIT).await, "ready once declared");
    let delivery = github(
        "push",
        "least-privilege",
        webhook_fixture("github-push-commits.json"),
    );
    let response = receiver
        .post(delivery.path, &delivery.headers, &delivery.body)
        .await;
    assert_eq!(response.status(), 202);
    assert_eq!(
        broker
            .take(&topology.push_events_queue(), 1, WAIT)
            .await
            .len(),
        1
    );

    // The same credentials in an attacker's hands (a compromised receiver).
    let connection = lapin::Connection::connect(&user.url(), Default::default())
        .await
        .unwrap();
    let refused = |error: lapin::Error| matches!(error.kind(), lapin::ErrorKind::ProtocolError(e) if e.get_id() == 403);
    // A sync job straight onto the jobs exchange (one that applies with automation off).
    let channel = connection.create_channel().await.unwrap();
    channel.confirm_select(Default::default()).await.unwrap();
    let job = br#"{"schema":"sync-job/v1"}"#;
    let published = match channel
        .basic_publish(
            topology.jobs_exchange().as_str().into(),
            Topology::SYNC_ROUTING_KEY.into(),
            Default::default(),
            job,
            Default::default(),
        )
        .await
    {
        Ok(confirm) => confirm.await.map(|_| ()),
        Err(error) => Err(error),
    };
    assert!(
        published.is_err_and(refused),
        "publishing a sync job was not refused"
    );
    // Deleting or redeclaring queues, reading the jobs.
    let channel = connection.create_channel().await.unwrap();
    let deleted = channel
        .queue_delete(
            topology.push_events_queue().as_str().into(),
            Default::default(),
        )
        .await;
    assert!(
        deleted.is_err_and(refused),
        "deleting a queue was not refused"
    );
    let channel = connection.create_channel().await.unwrap();
    let read = channel
        .basic_get(
            topology.sync_jobs_queue().as_str().into(),
            Default::default(),
        )
        .await;
    assert!(read.is_err_and(refused), "reading the jobs was not refused");
    let left = broker.drain(&topology.sync_jobs_queue(), SETTLE).await;
    assert!(left.is_empty(), "no job reached the queue");
    receiver.stop().await;
    broker.delete_topology(&topology).await;
}

#[tokio::test]
async fn a_full_events_queue_makes_the_receiver_answer_503_and_loses_nothing() {
    let broker = TestBroker::connect().await;
    let topology = unique_topology();
    let bounds = pushsync_broker::QueueBounds {
        max_length: 2,
        ..Default::default()
    };
    pushsync_broker::declare_topology(&broker.connection, &topology, &bounds)
        .await
        .unwrap();
    let mut config = pushsync_broker::AmqpConfig::new(
        secrecy::SecretString::from(amqp_url()),
        "pushsync-receiver-test",
    );
    config.topology = topology.clone();
    config.declare = pushsync_broker::Declare::CheckEvents;
    let receiver = start(
        pushsync_receiver::QueueConfig::Amqp(config),
        all_secrets(),
        |_| {},
    )
    .await;
    assert!(receiver.wait_ready(200, WAIT).await);
    // Quorum queues enforce the bound when a publish finds the queue over
    // it, so one more than the bound may be taken; then publishes are refused.
    let mut accepted = Vec::new();
    let refused = loop {
        let id = format!("full-{}", accepted.len() + 1);
        let delivery = github("push", &id, webhook_fixture("github-push-commits.json"));
        let response = receiver
            .post(delivery.path, &delivery.headers, &delivery.body)
            .await;
        match response.status().as_u16() {
            202 => accepted.push(Some(id)),
            503 => {
                assert!(response.headers().contains_key("retry-after"));
                break id;
            }
            other => panic!("{id}: {other}"),
        }
        assert!(accepted.len() <= 3, "the bound of 2 is not enforced");
    };
    let held = broker.drain(&topology.push_events_queue(), SETTLE).await;
    let ids: Vec<_> = held
        .iter()
        .map(|m| m.properties.message_id().as_ref().map(|s| s.to_string()))
        .collect();
    assert_eq!(ids, accepted, "everything accepted is held, in order");
    // Room again: the forge's retry of the refused delivery goes through.
    let delivery = github(
        "push",
        &refused,
        webhook_fixture("github-push-commits.json"),
    );
    let response = receiver
        .post(delivery.path, &delivery.headers, &delivery.body)
        .await;
    assert_eq!(response.status(), 202);
    receiver.stop().await;
    broker.delete_topology(&topology).await;
}

/// `text` as a regular expression matching itself (names have dots).
fn regex_escape(text: &str) -> String {
    text.replace('.', r"\.")
}
