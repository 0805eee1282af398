//! Resource exhaustion by unauthenticated clients: each test performs one
//! attack on a real receiver over raw TCP (where reqwest cannot misbehave
//! enough) and checks that it is cut off while a signed push still gets in.
//!
//! Timing: these machines are small and shared, so nothing asserts a tight
//! bound. Deadlines under test are 1 s and the assertions allow several
//! seconds more; "not served" checks wait a fixed while and then check that
//! the request is served once the attack stops.

use std::time::Duration;

use pushsync_receiver::config::DEFAULT_MAX_BODY_BYTES;
use pushsync_testkit::webhook_fixture;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::support::{Running, all_secrets, github, memory, start};

fn address(receiver: &Running) -> String {
    receiver.base.trim_start_matches("http://").to_owned()
}

/// What the server sent on a connection, and whether (and when) it closed
/// it within the time allowed.
#[derive(Debug)]
struct Received {
    text: String,
    closed_after: Option<Duration>,
}

/// Read until the server closes (EOF or reset) or `within` passes, starting
/// the clock at `since`.
fn read_until_closed(
    mut reader: tokio::net::tcp::OwnedReadHalf,
    since: Instant,
    within: Duration,
) -> JoinHandle<Received> {
    tokio::spawn(async move {
        let mut bytes = Vec::new();
        let mut buffer = [0u8; 4096];
        let deadline = since + within;
        let closed_after = loop {
            match tokio::time::timeout_at(deadline, reader.read(&mut buffer)).await {
                Err(_elapsed) => break None,
                Ok(Ok(0) | Err(_)) => break Some(since.elapsed()),
                Ok(Ok(n)) => bytes.extend_from_slice(&buffer[..n]),
            }
        };
        Received {
            text: String::from_utf8_lossy(&bytes).into_owned(),
            closed_after,
        }
    })
}

/// Write `piece` every `every` until the server stops taking it (or a
/// minute passes), then keep the connection half-open until dropped.
fn trickle(mut writer: OwnedWriteHalf, piece: &'static [u8], every: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        for _ in 0..(60_000 / every.as_millis().max(1)) {
            if writer.write_all(piece).await.is_err() {
                break;
            }
            tokio::time::sleep(every).await;
        }
    })
}

/// The value of a metric without labels.
async fn metric(receiver: &Running, name: &str) -> Option<f64> {
    let text = receiver.get("/metrics").await.text().await.unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// Wait until the in-flight body gauge is back to 0.
async fn budget_returns_to_zero(receiver: &Running) -> bool {
    for _ in 0..100 {
        if metric(receiver, "pushsync_receiver_in_flight_body_bytes").await == Some(0.0) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

async fn legit_push_is_accepted(receiver: &Running, id: &str) {
    let delivery = github("push", id, webhook_fixture("github-push-commits.json"));
    let response = receiver
        .post(delivery.path, &delivery.headers, &delivery.body)
        .await;
    assert_eq!(response.status(), 202, "legit push {id}");
}

#[tokio::test]
async fn slow_loris_headers_are_cut_off_at_the_header_timeout() {
    let (queue, memory) = memory();
    let receiver = start(queue, all_secrets(), |c| {
        c.http.header_timeout = Duration::from_secs(1);
    })
    .await;
    let addr = address(&receiver);

    // 1. The first head of a connection, one header line every 100 ms.
    let started = Instant::now();
    let (reader, mut writer) = TcpStream::connect(&addr).await.unwrap().into_split();
    writer
        .write_all(b"POST /hooks/github HTTP/1.1\r\nHost: test\r\nX-Slow: ")
        .await
        .unwrap();
    let first = read_until_closed(reader, started, Duration::from_secs(20));
    // One byte of one header value at a time: never near a size or count limit.
    let first_writer = trickle(writer, b"a", Duration::from_millis(100));

    // 2. The same after a complete request on the same connection: actix-web
    //    times out only the first head of a connection, so a kept-alive
    //    connection could be held this way forever.
    let started = Instant::now();
    let (reader, mut writer) = TcpStream::connect(&addr).await.unwrap().into_split();
    writer
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\nPOST /hooks/github HTTP/1.1\r\nHost: test\r\nX-Slow: ")
        .await
        .unwrap();
    let second = read_until_closed(reader, started, Duration::from_secs(20));
    let second_writer = trickle(writer, b"a", Duration::from_millis(100));

    // Meanwhile a signed push gets in.
    legit_push_is_accepted(&receiver, "during-slow-headers").await;

    let first = first.await.unwrap();
    assert!(first.text.starts_with("HTTP/1.1 408"), "{first:?}");
    // The configured 1 s, not actix-web's default 5 s (wide margin for a
    // busy machine).
    assert!(
        first
            .closed_after
            .is_some_and(|t| t < Duration::from_secs(4)),
        "first head not cut off at the configured timeout: {first:?}"
    );
    let second = second.await.unwrap();
    assert!(second.text.starts_with("HTTP/1.1 200"), "{second:?}");
    assert!(
        second.closed_after.is_some(),
        "a trickled head on a kept-alive connection held it open: {second:?}"
    );
    first_writer.abort();
    second_writer.abort();

    assert_eq!(memory.len(), 1);
    receiver.stop().await;
}

#[tokio::test]
async fn slow_body_gets_408_at_the_deadline_and_the_connection_closes() {
    let (queue, memory) = memory();
    let receiver = start(queue, all_secrets(), |c| {
        c.http.request_deadline = Duration::from_secs(1);
    })
    .await;
    let addr = address(&receiver);

    // A 1 MiB body at 10 KiB/s would take 100 s.
    let started = Instant::now();
    let (reader, mut writer) = TcpStream::connect(&addr).await.unwrap().into_split();
    writer
        .write_all(
            b"POST /hooks/github HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
              X-GitHub-Event: push\r\nX-Hub-Signature-256: sha256=00\r\nContent-Length: 1048576\r\n\r\n",
        )
        .await
        .unwrap();
    let received = read_until_closed(reader, started, Duration::from_secs(20));
    let writer = trickle(writer, &[b'x'; 1024], Duration::from_millis(100));

    // The head is fine; only the body is slow. Others get in meanwhile.
    legit_push_is_accepted(&receiver, "during-slow-body").await;

    let received = received.await.unwrap();
    writer.abort();
    assert!(received.text.starts_with("HTTP/1.1 408"), "{received:?}");
    assert!(received.text.contains("request_timeout"), "{received:?}");
    assert!(
        received.closed_after.is_some(),
        "connection left open after 408: {received:?}"
    );
    assert!(
        budget_returns_to_zero(&receiver).await,
        "the slow body's memory was not given back"
    );
    let metrics = receiver.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(
            r#"pushsync_receiver_requests_total{event="push",outcome="request_timeout",provider="github"} 1"#
        ),
        "{metrics}"
    );
    assert_eq!(memory.len(), 1);
    receiver.stop().await;
}

#[tokio::test]
async fn many_concurrent_large_bodies_beyond_the_budget_get_503() {
    const BUDGET: usize = 1024 * 1024;
    const UPLOAD: usize = 600 * 1024;
    let (queue, memory) = memory();
    let receiver = start(queue, all_secrets(), |c| {
        c.http.max_in_flight_bytes = BUDGET;
        c.http.max_body_bytes = BUDGET;
        // Long enough that no upload is cut off by the deadline meanwhile.
        c.http.request_deadline = Duration::from_secs(120);
    })
    .await;
    let addr = address(&receiver);

    // Three uploads of 600 KiB, all but the last 10 KiB sent, held open:
    // they cannot all fit in a 1 MiB budget at once.
    let mut writers = Vec::new();
    let mut readers = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let (reader, mut writer) = TcpStream::connect(&addr).await.unwrap().into_split();
        readers.push(read_until_closed(reader, started, Duration::from_secs(10)));
        let head = format!(
            "POST /hooks/github HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
             X-GitHub-Event: push\r\nX-Hub-Signature-256: sha256=00\r\nContent-Length: {UPLOAD}\r\n\r\n"
        );
        // A refused upload's connection closes while we write: ignore that.
        let _ = writer.write_all(head.as_bytes()).await;
        let _ = writer.write_all(&vec![b'x'; UPLOAD - 10 * 1024]).await;
        writers.push(writer);
    }

    // While they are held, the budget is in use but never overdrawn.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let in_use = metric(&receiver, "pushsync_receiver_in_flight_body_bytes")
        .await
        .unwrap();
    assert!(in_use > 0.0 && in_use <= BUDGET as f64, "{in_use}");

    let mut refused = 0;
    for reader in readers {
        let received = reader.await.unwrap();
        if received.text.starts_with("HTTP/1.1 503") {
            refused += 1;
            let head = received.text.to_ascii_lowercase();
            assert!(head.contains("retry-after: 7"), "{received:?}");
            assert!(head.contains("receiver_busy"), "{received:?}");
            assert!(
                received.closed_after.is_some(),
                "refused upload's connection left open: {received:?}"
            );
        } else {
            // Still being read: no answer yet.
            assert!(received.text.is_empty(), "{received:?}");
        }
    }
    assert!(refused >= 1, "every upload was buffered");
    assert!(
        metric(&receiver, "pushsync_receiver_body_budget_refusals_total")
            .await
            .is_some_and(|n| n >= 1.0)
    );

    // Once they go away, so does their memory, and a push gets in.
    drop(writers);
    assert!(
        budget_returns_to_zero(&receiver).await,
        "the uploads' memory was not given back"
    );
    legit_push_is_accepted(&receiver, "after-the-flood").await;
    assert_eq!(memory.len(), 1);
    receiver.stop().await;
}

#[tokio::test]
async fn connection_flood_beyond_max_connections_waits_for_a_free_slot() {
    let (queue, memory) = memory();
    let receiver = start(queue, all_secrets(), |c| {
        c.http.workers = 1;
        c.http.max_connections = 4;
        // Idle connections are not cut off by the head timeout meanwhile.
        c.http.header_timeout = Duration::from_secs(60);
    })
    .await;
    let addr = address(&receiver);
    // Let the start-up probe's connection close.
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Four connections that never finish their head take every slot.
    let mut idle = Vec::new();
    for _ in 0..4 {
        let mut stream = TcpStream::connect(&addr).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\n")
            .await
            .unwrap();
        idle.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // A fifth connects (the kernel's backlog accepts it) but is not served…
    let delivery = github(
        "push",
        "beyond-the-limit",
        webhook_fixture("github-push-commits.json"),
    );
    // A fresh client: no pooled connection to reuse.
    let client = reqwest::Client::new();
    let url = format!("{}{}", receiver.base, delivery.path);
    let push = tokio::spawn(async move {
        let mut request = client.post(url).body(delivery.body);
        for (name, value) in &delivery.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        request.send().await.map(|r| r.status().as_u16())
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    if push.is_finished() {
        panic!("served beyond max_connections: {:?}", push.await);
    }
    assert!(memory.is_empty());

    // …until one of them goes away.
    drop(idle.pop());
    let status = tokio::time::timeout(Duration::from_secs(30), push)
        .await
        .expect("not served after a slot was freed")
        .unwrap()
        .unwrap();
    assert_eq!(status, 202);
    assert_eq!(memory.len(), 1);
    drop(idle);
    receiver.stop().await;
}

#[tokio::test]
async fn default_body_limit_fits_pushes_and_refuses_one_byte_more() {
    // The documented default (README, `PUSHSYNC_MAX_BODY_BYTES`): about
    // 1000 times the largest fixture.
    const DOCUMENTED: usize = 8 * 1024 * 1024;
    assert_eq!(DEFAULT_MAX_BODY_BYTES, DOCUMENTED);
    let (queue, memory) = memory();
    let receiver = start(queue, all_secrets(), |_| {}).await;
    let addr = address(&receiver);

    // Every fixture-sized push fits with room to spare…
    let largest = webhook_fixture("github-push-new-branch.json");
    assert!(largest.len() * 900 < DOCUMENTED, "{}", largest.len());
    let delivery = github("push", "fixture-sized", largest.clone());
    let response = receiver
        .post(delivery.path, &delivery.headers, &delivery.body)
        .await;
    assert_eq!(response.status(), 202);

    // …and so does a signed push padded to exactly the limit.
    let mut padded: serde_json::Value = serde_json::from_slice(&largest).unwrap();
    padded["padding"] = serde_json::Value::String(String::new());
    let unpadded = serde_json::to_vec(&padded).unwrap().len();
    padded["padding"] = serde_json::Value::String("x".repeat(DOCUMENTED - unpadded));
    let at_limit = serde_json::to_vec(&padded).unwrap();
    assert_eq!(at_limit.len(), DOCUMENTED);
    let delivery = github("push", "at-the-limit", at_limit);
    let response = receiver
        .post(delivery.path, &delivery.headers, &delivery.body)
        .await;
    assert_eq!(response.status(), 202);

    // One byte more is refused from its Content-Length, before any of it is read.
    let (reader, mut writer) = TcpStream::connect(&addr).await.unwrap().into_split();
    let head = format!(
        "POST /hooks/github HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
         X-GitHub-Event: push\r\nX-Hub-Signature-256: sha256=00\r\nContent-Length: {}\r\n\r\n",
        DOCUMENTED + 1
    );
    writer.write_all(head.as_bytes()).await.unwrap();
    let received = read_until_closed(reader, Instant::now(), Duration::from_secs(10))
        .await
        .unwrap();
    assert!(received.text.starts_with("HTTP/1.1 413"), "{received:?}");
    assert!(received.text.contains("payload_too_large"), "{received:?}");
    drop(writer);

    assert_eq!(memory.len(), 2);
    assert!(budget_returns_to_zero(&receiver).await);
    receiver.stop().await;
}
