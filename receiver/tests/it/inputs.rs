//! Bad input: each gets its status and stable error code, and nothing reaches the queue.

use std::io::{Read, Write};
use std::time::Duration;

use pushsync_receiver::secrets::SecretSources;
use pushsync_testkit::amqp::{TestBroker, amqp_url, unique_topology};
use pushsync_testkit::{sign, webhook_fixture};

use crate::support::{Delivery, SECRET, all_secrets, amqp, github, memory, start};

fn with(mut delivery: Delivery, name: &str, value: &str) -> Delivery {
    delivery.headers.retain(|(k, _)| k != name);
    delivery.headers.push((name.to_owned(), value.to_owned()));
    delivery
}

fn without(mut delivery: Delivery, name: &str) -> Delivery {
    delivery.headers.retain(|(k, _)| k != name);
    delivery
}

fn signed_github(body: &[u8]) -> Delivery {
    github("push", "bad-input", body.to_vec())
}

#[tokio::test]
async fn bad_input_gets_its_status_and_publishes_nothing() {
    let broker = TestBroker::connect().await;
    let topology = unique_topology();
    let secrets = SecretSources {
        bitbucket: Default::default(),
        ..all_secrets()
    };
    let receiver = start(amqp(&amqp_url(), &topology), secrets, |c| {
        c.http.max_body_bytes = 64 * 1024
    })
    .await;
    assert!(receiver.wait_ready(200, Duration::from_secs(10)).await);

    let push = webhook_fixture("github-push-commits.json");
    let gitea_body = webhook_fixture("gitea-push.json");
    let full_signature = sign::hub_signature(SECRET, &push);
    let big = {
        let mut value: serde_json::Value = serde_json::from_slice(&push).unwrap();
        value["padding"] = serde_json::Value::String("x".repeat(100 * 1024));
        serde_json::to_vec(&value).unwrap()
    };
    let cases: Vec<(&str, Delivery, u16, &str)> = vec![
        (
            "unsigned",
            without(github("push", "a", push.clone()), "x-hub-signature-256"),
            401,
            "missing_signature",
        ),
        (
            "wrong secret",
            with(
                github("push", "a", push.clone()),
                "x-hub-signature-256",
                &sign::hub_signature("wrong", &push),
            ),
            401,
            "invalid_signature",
        ),
        (
            "truncated signature",
            with(
                github("push", "a", push.clone()),
                "x-hub-signature-256",
                &full_signature[..40],
            ),
            401,
            "invalid_signature",
        ),
        (
            "signature of another body",
            with(
                github("push", "a", push.clone()),
                "x-hub-signature-256",
                &sign::hub_signature(SECRET, b"{}"),
            ),
            401,
            "invalid_signature",
        ),
        (
            "sha1 signature",
            with(
                github("push", "a", push.clone()),
                "x-hub-signature-256",
                "sha1=0123",
            ),
            401,
            "invalid_signature",
        ),
        (
            "gitlab wrong token",
            Delivery {
                path: "/hooks/gitlab",
                headers: vec![
                    ("x-gitlab-event".into(), "Push Hook".into()),
                    ("x-gitlab-token".into(), "nope".into()),
                ],
                body: webhook_fixture("gitlab-push-docs.json"),
            },
            401,
            "invalid_signature",
        ),
        (
            "gitea bad signature",
            Delivery {
                path: "/hooks/gitea",
                headers: vec![
                    ("x-gitea-event".into(), "push".into()),
                    (
                        "x-gitea-signature".into(),
                        sign::gitea_signature("wrong", &gitea_body),
                    ),
                ],
                body: gitea_body.clone(),
            },
            401,
            "invalid_signature",
        ),
        (
            "provider without a secret",
            Delivery {
                path: "/hooks/bitbucket",
                headers: vec![
                    ("x-event-key".into(), "repo:push".into()),
                    ("x-hub-signature".into(), sign::hub_signature(SECRET, b"{}")),
                ],
                body: b"{}".to_vec(),
            },
            401,
            "provider_not_configured",
        ),
        (
            "malformed JSON",
            signed_github(b"{\"ref\": "),
            400,
            "malformed_payload",
        ),
        (
            "missing fields",
            signed_github(br#"{"ref":"refs/heads/main"}"#),
            400,
            "malformed_payload",
        ),
        (
            "not an object",
            signed_github(b"[1,2,3]"),
            400,
            "malformed_payload",
        ),
        (
            "missing event header",
            without(github("push", "a", push.clone()), "x-github-event"),
            400,
            "missing_event",
        ),
        ("oversized", signed_github(&big), 413, "payload_too_large"),
        (
            "unsupported content type",
            with(
                github("push", "a", push.clone()),
                "content-type",
                "text/plain",
            ),
            415,
            "unsupported_media_type",
        ),
    ];
    for (name, delivery, status, code) in cases {
        let response = receiver
            .post(delivery.path, &delivery.headers, &delivery.body)
            .await;
        assert_eq!(response.status().as_u16(), status, "{name}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"], code, "{name}: {body}");
        let text = body.to_string();
        assert!(!text.contains(SECRET), "{name}: secret in response");
    }

    let published = broker
        .drain(&topology.push_events_queue(), Duration::from_millis(300))
        .await;
    assert!(
        published.is_empty(),
        "bad input was published: {} messages",
        published.len()
    );

    let metrics = receiver.get("/metrics").await.text().await.unwrap();
    for line in [
        r#"pushsync_receiver_requests_total{event="push",outcome="invalid_signature",provider="github"} 4"#,
        r#"pushsync_receiver_requests_total{event="push",outcome="payload_too_large",provider="github"} 1"#,
        r#"pushsync_receiver_requests_total{event="none",outcome="missing_event",provider="github"} 1"#,
    ] {
        assert!(metrics.contains(line), "missing {line}");
    }
    assert!(!metrics.contains(SECRET));

    receiver.stop().await;
    broker.delete_topology(&topology).await;
}

#[tokio::test]
async fn an_oversized_chunked_body_is_refused_without_content_length() {
    let (queue, memory) = memory();
    let receiver = start(queue, all_secrets(), |c| c.http.max_body_bytes = 1024).await;
    let addr = receiver.base.trim_start_matches("http://").to_owned();
    let response = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let head = "POST /hooks/github HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nX-GitHub-Event: push\r\nX-Hub-Signature-256: sha256=00\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
        stream.write_all(head.as_bytes()).unwrap();
        let chunk = "a".repeat(600);
        for _ in 0..3 {
            // The server may close as soon as the limit is crossed.
            if stream.write_all(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes()).is_err() {
                break;
            }
        }
        let _ = stream.write_all(b"0\r\n\r\n");
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        response
    })
    .await
    .unwrap();
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(memory.is_empty());
    receiver.stop().await;
}

#[tokio::test]
async fn metrics_follow_prometheus_conventions() {
    let (queue, _memory) = memory();
    let receiver = start(queue, all_secrets(), |_| {}).await;
    // Exercise every metric family at least once.
    let delivery = github("push", "m-1", webhook_fixture("github-push-commits.json"));
    assert_eq!(
        receiver
            .post(delivery.path, &delivery.headers, &delivery.body)
            .await
            .status(),
        202
    );
    let bad = without(github("push", "m-2", b"{}".to_vec()), "x-hub-signature-256");
    assert_eq!(
        receiver
            .post(bad.path, &bad.headers, &bad.body)
            .await
            .status(),
        401
    );
    let metrics = receiver.get("/metrics").await;
    assert!(
        metrics
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/plain"))
    );
    let text = metrics.text().await.unwrap();
    for name in [
        "pushsync_receiver_requests_total",
        "pushsync_receiver_request_duration_seconds_bucket",
        "pushsync_receiver_payload_size_bytes_bucket",
        "pushsync_receiver_publish_duration_seconds_bucket",
        "pushsync_receiver_events_published_total",
        "pushsync_receiver_broker_connected 1",
        "pushsync_receiver_in_flight_body_bytes 0",
        "pushsync_receiver_in_flight_body_limit_bytes 67108864",
        "pushsync_receiver_body_budget_refusals_total 0",
        "pushsync_receiver_build_info",
    ] {
        assert!(text.contains(name), "{name} missing");
    }

    // `promtool` comes with Debian's prometheus package, installed by `make deps`.
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool not found: run `make deps` (installs Debian's prometheus package)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    receiver.stop().await;
}

#[tokio::test]
async fn shutdown_finishes_in_flight_requests_and_refuses_new_ones() {
    let (queue, memory) = memory();
    let receiver = start(queue, all_secrets(), |_| {}).await;
    let body = webhook_fixture("github-push-commits.json");
    let signature = sign::hub_signature(SECRET, &body);
    let addr = receiver.base.trim_start_matches("http://").to_owned();

    // Send the headers and half the body, then shut down, then the rest.
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let head = format!(
        "POST /hooks/github HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nX-GitHub-Event: push\r\nX-GitHub-Delivery: in-flight\r\nX-Hub-Signature-256: {signature}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&body[..body.len() / 2]).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    receiver.shutdown.cancel();
    // The listener closes promptly; poll rather than guess how promptly.
    let mut refused = false;
    for _ in 0..100 {
        if std::net::TcpStream::connect(&addr).is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused, "listener still accepting after shutdown");

    let rest = body[body.len() / 2..].to_vec();
    let response = tokio::task::spawn_blocking(move || {
        stream.write_all(&rest).unwrap();
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        response
    })
    .await
    .unwrap();
    assert!(response.starts_with("HTTP/1.1 202"), "{response}");
    assert_eq!(memory.len(), 1);
    let result = tokio::time::timeout(Duration::from_secs(10), receiver.handle).await;
    assert!(matches!(result, Ok(Ok(Ok(())))), "{result:?}");
}
