//! The shipped binary: configuration errors, JSON logs without secrets, SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use pushsync_testkit::{sign, webhook_fixture};

const BINARY: &str = env!("CARGO_BIN_EXE_pushsync-receiver");

#[test]
fn invalid_configuration_exits_64_naming_the_variable() {
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case<'_>] = &[
        (&["--github-secret", "x"], &[], "PUSHSYNC_AMQP_URL"),
        (&["--in-memory-queue"], &[], "no webhook secret configured"),
        // An unreadable secret file (a directory here) names its variable;
        // an absent one only turns its forge off, so none is left at all.
        (
            &["--in-memory-queue"],
            &[("PUSHSYNC_GITHUB_SECRET_FILE", "/")],
            "PUSHSYNC_GITHUB_SECRET_FILE",
        ),
        (
            &["--in-memory-queue"],
            &[("PUSHSYNC_GITHUB_SECRET_FILE", "/nonexistent/file")],
            "no webhook secret configured",
        ),
        (
            &["--in-memory-queue", "--github-secret", "x"],
            &[("PUSHSYNC_GITLAB_SIGNING_TOKEN", "not-whsec")],
            "PUSHSYNC_GITLAB_SIGNING_TOKEN",
        ),
    ];
    for (args, env, expected) in cases {
        let output = Command::new(BINARY)
            .args(*args)
            .envs(env.iter().copied())
            .env_remove("PUSHSYNC_AMQP_URL")
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(64), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("not-whsec"), "secret echoed: {stderr}");
    }
}

#[test]
fn help_lists_every_setting_with_its_variable() {
    let output = Command::new(BINARY).arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for variable in [
        "PUSHSYNC_LISTEN",
        "PUSHSYNC_AMQP_URL",
        "PUSHSYNC_GITHUB_SECRET_FILE",
        "PUSHSYNC_MAX_BODY_BYTES",
        "PUSHSYNC_MAX_IN_FLIGHT_BYTES",
        "PUSHSYNC_REQUEST_DEADLINE",
        "PUSHSYNC_HEADER_TIMEOUT",
        "PUSHSYNC_MAX_CONNECTIONS",
        "PUSHSYNC_DEDUP_WINDOW",
    ] {
        assert!(help.contains(variable), "{variable} missing from --help");
    }
}

#[test]
fn the_binary_logs_json_without_secrets_and_drains_on_sigterm() {
    let secret = "binary-test-secret-value";
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut child = Command::new(BINARY)
        .args([
            "--in-memory-queue",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .env("PUSHSYNC_GITHUB_SECRET", secret)
        .env("PUSHSYNC_LOG", "debug")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let lines = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });

    let client = reqwest::blocking_client();
    let base = format!("http://127.0.0.1:{port}");
    let mut up = false;
    for _ in 0..200 {
        if client(&format!("{base}/healthz"), None).is_some_and(|s| s == 200) {
            up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(up, "binary did not start");
    let body = webhook_fixture("github-push-commits.json");
    let good = [
        ("x-github-event", "push".to_owned()),
        ("x-github-delivery", "bin-1".to_owned()),
        ("x-hub-signature-256", sign::hub_signature(secret, &body)),
    ];
    assert_eq!(
        client(&format!("{base}/hooks/github"), Some((&good, &body))),
        Some(202)
    );
    let bad = [
        ("x-github-event", "push".to_owned()),
        ("x-hub-signature-256", sign::hub_signature("nope", &body)),
    ];
    assert_eq!(
        client(&format!("{base}/hooks/github"), Some((&bad, &body))),
        Some(401)
    );

    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    assert!(status.success(), "exit after SIGTERM: {status:?}");
    let lines = lines.join().unwrap();
    assert!(!lines.is_empty());
    for line in &lines {
        assert!(!line.contains(secret), "secret in log: {line}");
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(value.get("level").is_some(), "{line}");
    }
    let handled = lines
        .iter()
        .find(|l| {
            l.contains("\"delivery_id\":\"bin-1\"") && l.contains("\"message\":\"webhook handled\"")
        })
        .expect("no log line for the delivery");
    for field in [
        "\"provider\":\"github\"",
        "\"repository\":\"github.com/binkkatal/sample_app\"",
        "\"git_ref\":\"refs/heads/master\"",
        "\"outcome\":\"accepted\"",
    ] {
        assert!(handled.contains(field), "{field} missing from {handled}");
    }
    assert!(lines.iter().any(|l| l.contains("receiver stopped")));
}

/// A tiny blocking HTTP client over std, so this test needs no runtime.
mod reqwest {
    use std::io::{Read, Write};

    type Request<'a> = Option<(&'a [(&'a str, String)], &'a [u8])>;

    pub fn blocking_client() -> impl Fn(&str, Request<'_>) -> Option<u16> {
        |url: &str, request: Request<'_>| {
            let rest = url.strip_prefix("http://")?;
            let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}")))?;
            let mut stream = std::net::TcpStream::connect(host).ok()?;
            let text = match request {
                None => format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
                Some((headers, body)) => {
                    let mut head = format!(
                        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
                        body.len()
                    );
                    for (name, value) in headers {
                        head.push_str(&format!("{name}: {value}\r\n"));
                    }
                    head.push_str("\r\n");
                    head
                }
            };
            stream.write_all(text.as_bytes()).ok()?;
            if let Some((_, body)) = request {
                stream.write_all(body).ok()?;
            }
            let mut response = String::new();
            stream.read_to_string(&mut response).ok()?;
            response.split_whitespace().nth(1)?.parse().ok()
        }
    }
}
