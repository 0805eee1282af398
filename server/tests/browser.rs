//! The web UI in a real browser with single sign-on through a real OpenID
//! Provider: `oidc-provider` (npm) with two users in two groups, Debian's
//! Chromium driven by `playwright-core` (tests/browser/ui.mjs), the server
//! against the Kubernetes API sandbox. `make deps` installs the three
//! (scripts/install-ui-test-tools.sh). Screenshots of every page are kept in
//! the target directory (the path is printed).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed step fails the test"
)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use actix_web::cookie::Key;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use pushsync_api::Application;
use pushsync_sandbox::Sandbox;
use pushsync_server::auth::{LocalUsers, Tokens};
use pushsync_server::policy::Policy;
use pushsync_server::{Config, oidc, run};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// Where `make deps` put oidc-provider and playwright-core.
fn tools() -> PathBuf {
    let dir = std::env::var_os("PUSHSYNC_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/pushsync-tools")
        })
        .join("ui");
    assert!(
        dir.join("node_modules/oidc-provider").is_dir()
            && dir.join("node_modules/playwright-core").is_dir(),
        "the browser tests need oidc-provider and playwright-core in {}: run `make deps` (scripts/install-ui-test-tools.sh)",
        dir.display()
    );
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "the browser tests need Debian's chromium: run `make deps`"
    );
    dir
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed and reaped when the test ends, however it ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn create_app(apps: &Api<Application>, name: &str, project: &str) {
    let app: Application = serde_json::from_value(json!({
        "apiVersion": "pushsync.dev/v1alpha1", "kind": "Application",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "project": project,
            "source": {"repoURL": format!("https://git.example.com/{project}/{name}.git"), "targetRevision": "main", "path": "deploy"},
            "destination": {"namespace": "default"},
        },
    }))
    .unwrap();
    apps.create(&PostParams::default(), &app).await.unwrap();
    apps.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {
            "sync": {"status": "Synced", "revision": "0123456789abcdef0123456789abcdef01234567", "shortRevision": "0123456"},
            "health": {"status": "Healthy"},
            "history": [
                {"revision": "fedcba9876543210fedcba9876543210fedcba98", "deployedAt": "2026-12-01T10:00:00Z"},
                {"revision": "0123456789abcdef0123456789abcdef01234567", "deployedAt": "2026-12-01T11:00:00Z"},
            ],
            "resources": [
                {"group": "apps", "version": "v1", "kind": "Deployment", "namespace": "default", "name": name, "status": "Synced", "health": "Healthy"},
                {"group": "", "version": "v1", "kind": "Service", "namespace": "default", "name": name, "status": "Synced", "health": "Healthy"},
            ],
        }})),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_sign_on_live_updates_actions_and_isolation_in_a_real_browser() {
    let tools = tools();
    let sandbox = Sandbox::start().await.unwrap();
    let client = sandbox.client();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for (_, crd) in pushsync_api::crds() {
        crds.create(&PostParams::default(), &crd).await.unwrap();
    }
    let apps: Api<Application> = Api::namespaced(client.clone(), "default");
    create_app(&apps, "web-a", "team-a").await;
    create_app(&apps, "web-b", "team-b").await;

    // The identity provider, told where this server will be.
    let (idp_port, listener) = (free_port(), TcpListener::bind("127.0.0.1:0").unwrap());
    let base = format!("http://{}", listener.local_addr().unwrap());
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let mut idp = Child(
        Command::new("node")
            .arg(script.join("idp.mjs"))
            .env("PUSHSYNC_UI_TOOLS", &tools)
            .env("IDP_PORT", idp_port.to_string())
            .env("IDP_CLIENT_SECRET", "browser-test-client-secret")
            .env("IDP_REDIRECT_URI", format!("{base}/auth/callback"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node (Debian package nodejs) runs the identity provider"),
    );
    // Its first line says it listens; the rest is drained (a closed pipe
    // would end it at its next log line).
    let mut lines = BufReader::new(idp.0.stdout.take().unwrap()).lines();
    let ready = tokio::task::spawn_blocking(move || {
        let first = lines.next();
        std::thread::spawn(move || lines.for_each(drop));
        first
    })
    .await
    .unwrap();
    assert_eq!(
        ready.map(Result::unwrap).as_deref(),
        Some("ready"),
        "the identity provider did not start"
    );

    let config = Config {
        namespaces: vec!["default".to_owned()],
        policy: Policy::parse(
            "projects:\n  team-a: {rollback: [team-a]}\n  team-b: {sync: [team-b]}\n",
        )
        .unwrap(),
        tokens: Tokens::default(),
        local_users: LocalUsers::default(),
        session_key: Key::generate(),
        secure_cookies: true,
        session_ttl: Duration::from_secs(3600),
        oidc: Some(oidc::Settings {
            issuer: format!("http://127.0.0.1:{idp_port}"),
            client_id: "pushsync".to_owned(),
            client_secret: Some("browser-test-client-secret".to_owned()),
            redirect_url: format!("{base}/auth/callback"),
            groups_claim: "groups".to_owned(),
            scopes: vec![
                "openid".to_owned(),
                "profile".to_owned(),
                "groups".to_owned(),
            ],
        }),
    };
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(run(config, client.clone(), listener, shutdown.clone()));
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Many of alice's Applications, to time the list page in the browser.
    const MANY: usize = 1000;
    for i in 0..MANY {
        let app: Application = serde_json::from_value(json!({
            "apiVersion": "pushsync.dev/v1alpha1", "kind": "Application",
            "metadata": {"name": format!("bulk-{i:04}"), "namespace": "default"},
            "spec": {"project": "team-a", "source": {"repoURL": "https://git.example.com/team-a/bulk.git", "targetRevision": "main", "path": format!("apps/{i}")}, "destination": {"namespace": "default"}},
        }))
        .unwrap();
        apps.create(&PostParams::default(), &app).await.unwrap();
    }

    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let output = tokio::task::spawn_blocking({
        let (tools, shots, kubeconfig) = (
            tools.clone(),
            shots.clone(),
            sandbox.kubeconfig().to_owned(),
        );
        let base = base.clone();
        move || {
            Command::new("node")
                .arg(script.join("ui.mjs"))
                .env("PUSHSYNC_UI_TOOLS", tools)
                .env("BASE", &base)
                .env("SHOTS", shots)
                .env("KUBECONFIG", kubeconfig)
                .env("MANY", MANY.to_string())
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    eprintln!("screenshots: {}", shots.display());
    assert!(
        output.status.success(),
        "the browser scenario failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap();
    eprintln!("browser results: {results}");
    assert_eq!(results["live"], "updated in place");
    let many = &results["many"];
    eprintln!(
        "list page with {} rows: DOMContentLoaded {} ms, load {} ms (navigation {} ms)",
        many["rows"], many["domContentLoaded"], many["load"], many["loadMs"]
    );

    // What the clicks wrote: alice's sync and rollback on web-a, nothing on web-b.
    let annotations = apps
        .get("web-a")
        .await
        .unwrap()
        .metadata
        .annotations
        .unwrap_or_default();
    assert!(
        annotations.contains_key(pushsync_api::SYNC_ANNOTATION),
        "{annotations:?}"
    );
    assert_eq!(
        annotations[pushsync_api::ROLLBACK_ANNOTATION],
        "fedcba9876543210fedcba9876543210fedcba98"
    );
    let untouched = apps
        .get("web-b")
        .await
        .unwrap()
        .metadata
        .annotations
        .unwrap_or_default();
    assert!(
        !untouched.keys().any(|k| k.starts_with("pushsync.dev/")),
        "{untouched:?}"
    );
    for page in [
        "login",
        "idp-login-alice",
        "list-alice",
        "app",
        "app-sync-running",
        "app-sync-done",
        "list-bob",
        "not-found-bob",
        "list-many",
    ] {
        assert!(
            shots.join(format!("{page}.png")).is_file(),
            "screenshot {page}"
        );
    }

    // A forged answer from "the provider": a login started here, answered
    // with another state (what a CSRF'd callback carries), logs nobody in.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let started = http
        .get(format!("{base}/auth/sso?next=/"))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 303);
    let to_provider = started.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        to_provider.contains("code_challenge_method=S256") && to_provider.contains("nonce="),
        "{to_provider}"
    );
    let pending = started.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    for query in [
        "code=stolen&state=forged",
        "code=stolen&state=",
        "error=access_denied",
    ] {
        let answer = http
            .get(format!("{base}/auth/callback?{query}"))
            .header("cookie", &pending)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 303, "{query}");
        assert!(
            answer.headers()["location"]
                .to_str()
                .unwrap()
                .starts_with("/login?failed=sso"),
            "{query}"
        );
        let cookie = answer
            .headers()
            .get("set-cookie")
            .map_or(pending.clone(), |c| {
                c.to_str().unwrap().split(';').next().unwrap().to_owned()
            });
        let me = http
            .get(format!("{base}/api/v1/me"))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(me.status(), 401, "{query} logged someone in");
    }

    shutdown.cancel();
    let _ = server.await;
}
