//! `pushsync webhook register` and `rotate` end to end: against a fake
//! GitHub behind prism validating every request and response against
//! GitHub's own API description, with the webhook secret kept in the
//! receiver's Kubernetes Secret and a running receiver reading that Secret
//! as a mounted file (a stand-in for the kubelet copies it). Registering
//! alone makes signed pushes verify; a second registration writes nothing;
//! a rotation switches the hook and the receiver without a refused delivery.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use pushsync_testkit::amqp::{TestBroker, amqp_url, unique_topology};

use crate::cluster::TestCluster;
use crate::fake::{Fake, Flavor, TOKEN};
use crate::prism::{Prism, octokit_dir};
use crate::process::{Service, binary, free_port, wait_status};

const REPO_SCOPE: &str = "repos/acme/web";

fn pushsync(cluster: &TestCluster, args: &[&str]) -> Output {
    let output = std::process::Command::new(binary("pushsync"))
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig())
        .args(args)
        .env("GITHUB_TOKEN", TOKEN)
        .output()
        .unwrap();
    eprintln!(
        "pushsync {args:?} → {:?}\n{}{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The receiver Secret's `github` lines.
async fn stored(secrets: &Api<Secret>) -> Vec<String> {
    let secret = secrets.get("pushsync-webhook-secrets").await.unwrap();
    let bytes = secret.data.unwrap().remove("github").unwrap().0;
    String::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The secret the forge would sign with.
fn hook_secret(fake: &Fake) -> String {
    let hooks = fake.hooks(REPO_SCOPE);
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    hooks[0].secret.clone().unwrap()
}

async fn push(base: &str, secret: &str, delivery: &str) -> u16 {
    crate::push_to_worker::push_signed(base, secret, delivery).await
}

/// What the kubelet does for a mounted Secret: copy its key to the file.
fn mirror(secrets: Api<Secret>, file: &Path) -> tokio::task::JoinHandle<()> {
    let file = file.to_path_buf();
    tokio::spawn(async move {
        loop {
            if let Ok(Some(secret)) = secrets.get_opt("pushsync-webhook-secrets").await
                && let Some(value) = secret.data.and_then(|mut d| d.remove("github"))
            {
                let _ = std::fs::write(&file, value.0);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registering_a_webhook_makes_signed_pushes_verify_and_rotation_refuses_none() {
    let cluster = TestCluster::start(Duration::from_millis(100)).await;
    let fake = Fake::start(Flavor::Github);
    let prism = Prism::spawn(&octokit_dir().join("api.github.com.json"), fake.port);
    prism.wait_ready();
    let api = format!("http://127.0.0.1:{}", prism.port);
    let receiver_port = free_port();
    let hook_url = format!("http://127.0.0.1:{receiver_port}/hooks/github");
    let register = [
        "webhook",
        "register",
        "--forge",
        "github",
        "--api-url",
        &api,
        "--repo",
        "acme/web",
        "--url",
        &hook_url,
        "--secret-namespace",
        cluster.namespace(),
        // The receiver below re-reads the mounted Secret every second.
        "--reload-wait",
        "2s",
    ];

    let first = pushsync(&cluster, &register);
    assert!(first.status.success());
    assert!(String::from_utf8_lossy(&first.stdout).contains("created"));
    let secrets: Api<Secret> = Api::namespaced(cluster.client(), cluster.namespace());
    let lines = stored(&secrets).await;
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].len(), 64, "32 random bytes, hex");
    assert_eq!(
        hook_secret(&fake),
        lines[0],
        "the hook signs with the stored secret"
    );
    let writes = fake.writes(REPO_SCOPE).len();

    // Idempotent: nothing written the second time.
    let second = pushsync(&cluster, &register);
    assert!(second.status.success());
    assert!(String::from_utf8_lossy(&second.stdout).contains("unchanged"));
    assert_eq!(
        fake.writes(REPO_SCOPE).len(),
        writes,
        "a second register wrote to the forge"
    );
    assert_eq!(stored(&secrets).await, lines);
    for output in [&first, &second] {
        let shown = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            !shown.contains(&lines[0]) && !shown.contains(TOKEN),
            "a secret was printed"
        );
    }

    // A receiver reading the Secret as a mounted file verifies the forge's pushes.
    let mounted = tempfile::tempdir().unwrap();
    let file = mounted.path().join("github");
    std::fs::write(&file, format!("{}\n", lines[0])).unwrap();
    let kubelet = mirror(secrets.clone(), &file);
    let topology = unique_topology();
    let broker = TestBroker::connect().await;
    pushsync_broker::declare_topology(&broker.connection, &topology, &Default::default())
        .await
        .unwrap();
    let receiver = Service::start(
        "pushsync-receiver",
        &[],
        &[
            ("PUSHSYNC_AMQP_URL", amqp_url()),
            ("PUSHSYNC_QUEUE_PREFIX", topology.prefix().to_owned()),
            ("PUSHSYNC_LISTEN", format!("127.0.0.1:{receiver_port}")),
            ("PUSHSYNC_GITHUB_SECRET_FILE", file.display().to_string()),
            ("PUSHSYNC_SECRET_RELOAD_INTERVAL", "1s".to_owned()),
        ],
    );
    let base = format!("http://127.0.0.1:{receiver_port}");
    assert!(wait_status(&format!("{base}/readyz"), 200, Duration::from_secs(20)).await);
    let old = hook_secret(&fake);
    assert_eq!(push(&base, &old, "before-rotation").await, 202);

    // Rotation: the receiver learns the new secret before the hook uses it,
    // and forgets the old one after.
    // Pushes keep coming during the whole rotation, each signed with the
    // secret the hook has at that moment: none may be refused.
    let pushing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let pusher = {
        let (pushing, fake, base) = (pushing.clone(), fake.clone(), base.clone());
        tokio::spawn(async move {
            let mut answers = Vec::new();
            let mut n = 0;
            while pushing.load(std::sync::atomic::Ordering::SeqCst) {
                n += 1;
                answers.push(push(&base, &hook_secret(&fake), &format!("during-{n}")).await);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            answers
        })
    };
    // `--all`: every repository an Application on this forge's host uses.
    let apps: Api<pushsync_api::Application> =
        Api::namespaced(cluster.client(), cluster.namespace());
    let spec = pushsync_api::ApplicationSpec::automated(
        "https://127.0.0.1/acme/web.git",
        "main",
        ".",
        cluster.namespace(),
    );
    apps.create(
        &Default::default(),
        &pushsync_api::Application::new("web", spec),
    )
    .await
    .unwrap();
    let mut rotate: Vec<&str> = register.to_vec();
    rotate[1] = "rotate";
    rotate.push("--all");
    rotate.retain(|a| *a != "--repo" && *a != "acme/web");
    let rotated = pushsync(&cluster, &rotate);
    assert!(rotated.status.success());
    tokio::time::sleep(Duration::from_secs(2)).await;
    pushing.store(false, std::sync::atomic::Ordering::SeqCst);
    let answers = pusher.await.unwrap();
    assert!(answers.len() > 10, "{answers:?}");
    assert!(
        answers.iter().all(|a| *a == 202),
        "a push was refused during the rotation: {answers:?}"
    );
    let new = hook_secret(&fake);
    assert_ne!(new, old);
    let shown = String::from_utf8_lossy(&rotated.stdout).into_owned()
        + &String::from_utf8_lossy(&rotated.stderr);
    assert!(
        !shown.contains(&new) && !shown.contains(&old),
        "a secret was printed"
    );
    assert_eq!(stored(&secrets).await, std::slice::from_ref(&new));
    // The file follows within 200 ms, the receiver re-reads it every second.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(push(&base, &new, "after-rotation").await, 202);
    assert_eq!(
        push(&base, &old, "old-secret").await,
        401,
        "the old secret still verifies"
    );

    // Rotating some hooks only keeps the old secret: other hooks of this
    // forge may still sign with it.
    let mut some: Vec<&str> = register.to_vec();
    some[1] = "rotate";
    let partial = pushsync(&cluster, &some);
    assert!(partial.status.success());
    assert!(String::from_utf8_lossy(&partial.stderr).contains("stay valid"));
    let newest = hook_secret(&fake);
    assert_eq!(stored(&secrets).await, [new.clone(), newest]);

    // list shows it, ping asks for the forge's test delivery, delete removes it.
    let forge = ["--forge", "github", "--api-url", &api, "--repo", "acme/web"];
    let listed = pushsync(&cluster, &[&["webhook", "list"][..], &forge].concat());
    assert!(listed.status.success());
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&hook_url));
    let with_url = [&forge[..], &["--url", &hook_url]].concat();
    let pinged = pushsync(&cluster, &[&["webhook", "ping"][..], &with_url].concat());
    assert!(pinged.status.success());
    assert!(String::from_utf8_lossy(&pinged.stdout).contains("pinged"));
    assert!(
        fake.requests(REPO_SCOPE)
            .iter()
            .any(|r| r.path.ends_with("/pings")),
        "no ping reached the forge"
    );
    let deleted = pushsync(&cluster, &[&["webhook", "delete"][..], &with_url].concat());
    assert!(deleted.status.success());
    assert!(fake.hooks(REPO_SCOPE).is_empty());
    let gone = pushsync(&cluster, &[&["webhook", "ping"][..], &with_url].concat());
    assert_eq!(gone.status.code(), Some(4), "pinging a deleted hook");

    let problems = prism.problems();
    assert!(
        problems.is_empty(),
        "prism found violations:\n{}",
        problems.join("\n")
    );
    kubelet.abort();
    assert!(receiver.terminate(), "the receiver did not stop cleanly");
    broker.delete_topology(&topology).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_commands_refuse_bad_input_and_change_nothing() {
    let cluster = TestCluster::start(Duration::from_millis(100)).await;
    // No token: refused before anything is read or written.
    let no_token = std::process::Command::new(binary("pushsync"))
        .args([
            "webhook",
            "register",
            "--forge",
            "github",
            "--repo",
            "a/b",
            "--url",
            "https://h/hooks/github",
        ])
        .env_remove("GITHUB_TOKEN")
        .env("KUBECONFIG", cluster.kubeconfig())
        .output()
        .unwrap();
    assert_eq!(no_token.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&no_token.stderr).contains("set GITHUB_TOKEN or pass --token-file")
    );
    for (args, says) in [
        (
            &[
                "webhook",
                "list",
                "--forge",
                "github",
                "--repo",
                "justaname",
            ][..],
            "write OWNER/NAME",
        ),
        (
            &["webhook", "list", "--forge", "bitbucket", "--repo", "a/b"],
            "one of github, gitlab, gitea",
        ),
    ] {
        let output = pushsync(&cluster, args);
        assert_ne!(output.status.code(), Some(0), "{args:?}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains(says),
            "{args:?}"
        );
    }
    let secrets: Api<Secret> = Api::namespaced(cluster.client(), cluster.namespace());
    assert!(
        secrets
            .get_opt("pushsync-webhook-secrets")
            .await
            .unwrap()
            .is_none()
    );
}
