//! `make run`: the all-in-one local binary starts on a fresh state directory,
//! syncs its sample Applications, applies a signed push sent by
//! `scripts/local-push.sh`, and on Ctrl-C ends everything it started.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::{binary, free_port};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_default_syncs_and_applies_a_local_push() {
    let state = tempfile::tempdir().unwrap();
    let (listen, api_port) = (format!("127.0.0.1:{}", free_port()), free_port());
    let ui_listen = format!("127.0.0.1:{}", free_port());
    let tools = std::env::var("HOME")
        .map(|h| format!("{h}/.cache/pushsync-tools/bin"))
        .unwrap_or_default();
    // Everything the binary starts inherits this mark, so what survives it is found.
    let mark = format!("local-{}-{}", std::process::id(), free_port());
    let mut child = Command::new(binary("pushsync-local"))
        .args([
            "--listen",
            &listen,
            "--api-port",
            &api_port.to_string(),
            "--ui-listen",
            &ui_listen,
            "--state-dir",
        ])
        .arg(state.path())
        .env(
            "PATH",
            format!("{tools}:{}", std::env::var("PATH").unwrap_or_default()),
        )
        .env("PUSHSYNC_TEST_MARK", &mark)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // The banner comes after the initial sync; its last command line is the push helper.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut push_command = None;
    let mut ui_password = None;
    while Instant::now() < deadline && push_command.is_none() {
        if let Ok(line) = rx.recv_timeout(Duration::from_secs(1)) {
            if line.trim_start().starts_with("scripts/local-push.sh") {
                push_command = Some(line.trim().to_owned());
            }
            if let Some(password) = line.split("password: ").nth(1) {
                ui_password = Some(password.trim_end_matches(')').to_owned());
            }
        }
    }
    let push_command = push_command.expect("pushsync-local never printed its banner");

    // The banner's UI user logs in and sees both sample Applications.
    let ui_password = ui_password.expect("the banner names the UI's password");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = http
        .post(format!("http://{ui_listen}/auth/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("username=admin&password={ui_password}&next=%2F"))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 303);
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let apps: serde_json::Value = http
        .get(format!("http://{ui_listen}/api/v1/applications"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = apps["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert_eq!(names, ["guestbook", "podinfo"], "{apps}");
    let kubeconfig = state.path().join("kubeconfig");
    let kubectl = |args: &[&str]| {
        let output = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    assert_eq!(
        kubectl(&[
            "get",
            "deploy",
            "guestbook-ui",
            "-n",
            "guestbook",
            "-o",
            "jsonpath={.metadata.name}"
        ]),
        "guestbook-ui"
    );

    // The push is sent from a real browser session watching guestbook's
    // page: the page follows the sync it triggers without a reload.
    let script = crate::process::repo_root().join("scripts/local-push.sh");
    let mut push: Vec<String> = vec![script.display().to_string()];
    push.extend(push_command.split_whitespace().skip(1).map(str::to_owned));
    let browser = Command::new("node")
        .arg(crate::process::repo_root().join("server/tests/browser/push.mjs"))
        .env("PUSHSYNC_UI_TOOLS", crate::process::ui_tools())
        .env("BASE", format!("http://{ui_listen}"))
        .env("UI_USER", "admin")
        .env("UI_PASSWORD", &ui_password)
        .env("APP", "default/guestbook")
        .env("PUSH", serde_json::to_string(&push).unwrap())
        .output()
        .unwrap();
    let watched = String::from_utf8_lossy(&browser.stdout);
    assert!(
        browser.status.success(),
        "the browser did not see the pushed sync: {watched}{}",
        String::from_utf8_lossy(&browser.stderr)
    );
    eprintln!("the guestbook page went through: {watched}");
    let watched: serde_json::Value = serde_json::from_str(watched.lines().last().unwrap()).unwrap();
    assert_ne!(watched["before"], watched["after"]);
    let mut applied = String::new();
    for _ in 0..200 {
        applied = kubectl(&[
            "get",
            "deploy",
            "guestbook-ui",
            "-n",
            "guestbook",
            "-o",
            "jsonpath={.metadata.annotations}",
        ]);
        if applied.contains("pushsync.dev/local-push") {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        applied.contains("pushsync.dev/local-push"),
        "the local push was not applied: {applied}"
    );
    assert!(
        pushsync_testkit::procs::with_env("PUSHSYNC_TEST_MARK", &mark).len() > 1,
        "the git daemon should run beside pushsync-local"
    );

    // Ctrl-C: the process exits cleanly and leaves nothing behind.
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("pushsync-local did not exit on Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "pushsync-local exited with {status}");
    // A git-daemon child serving a connection the exit just closed may take
    // a moment to notice; nothing may stay.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = pushsync_testkit::procs::with_env("PUSHSYNC_TEST_MARK", &mark);
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "pushsync-local left processes behind: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
