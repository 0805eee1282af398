//! The API server against the Kubernetes API sandbox, over real HTTP: who
//! sees what, who may do what (enforced by the API, not only the pages),
//! sessions and CSRF, what actions write, live updates, and that Secret
//! values never leave the server.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed step fails the test"
)]

use std::net::TcpListener;
use std::time::Duration;

use actix_web::cookie::Key;
use futures_util::StreamExt;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use pushsync_api::Application;
use pushsync_proto::SyncRequest;
use pushsync_sandbox::Sandbox;
use pushsync_server::auth::{LocalUsers, Tokens};
use pushsync_server::policy::{Policy, User};
use pushsync_server::{Config, run};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const POLICY: &str = r#"
projects:
  team-a: {read: [auditors], sync: [team-a], rollback: [team-a-leads]}
  team-b: {sync: [team-b]}
admins: [platform]
"#;

const REVISION: &str = "0123456789abcdef0123456789abcdef01234567";

struct Server {
    _sandbox: Sandbox,
    apps: Api<Application>,
    client: kube::Client,
    url: String,
    http: reqwest::Client,
    shutdown: CancellationToken,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn token(name: &str) -> String {
    format!("token-of-{name}")
}

impl Server {
    async fn start() -> Server {
        Server::start_with(Duration::from_secs(3600)).await
    }

    async fn start_with(session_ttl: Duration) -> Server {
        let sandbox = Sandbox::start().await.unwrap();
        let client = sandbox.client();
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        for (_, crd) in pushsync_api::crds() {
            crds.create(&PostParams::default(), &crd).await.unwrap();
        }
        let apps: Api<Application> = Api::namespaced(client.clone(), "default");
        for (name, project) in [("web-a", "team-a"), ("web-b", "team-b")] {
            create_app(&apps, name, project).await;
        }
        let lines: Vec<String> = [
            ("alice", "team-a"),
            ("bob", "team-b"),
            ("lead", "team-a-leads"),
            ("auditor", "auditors"),
            ("nobody", "strangers"),
        ]
        .iter()
        .map(|(name, group)| Tokens::line(name, &[(*group).to_owned()], &token(name)))
        .collect();
        let mut local_users = LocalUsers::default();
        local_users.add(
            User {
                name: "admin".to_owned(),
                groups: vec!["platform".to_owned()],
            },
            "admin-password",
        );
        let config = Config {
            namespaces: vec!["default".to_owned()],
            policy: Policy::parse(POLICY).unwrap(),
            tokens: Tokens::parse(&lines.join("\n")).unwrap(),
            local_users,
            session_key: Key::generate(),
            secure_cookies: true,
            session_ttl,
            oidc: None,
        };
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        tokio::spawn(run(config, client.clone(), listener, shutdown.clone()));
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let server = Server {
            _sandbox: sandbox,
            apps,
            client,
            url,
            http,
            shutdown,
        };
        for _ in 0..100 {
            if let Ok(response) = server
                .http
                .get(format!("{}/readyz", server.url))
                .send()
                .await
                && response.status() == StatusCode::OK
            {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the server did not become ready");
    }

    async fn get(&self, who: &str, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.url))
            .bearer_auth(token(who))
            .send()
            .await
            .unwrap()
    }

    async fn post(&self, who: &str, path: &str, body: Value) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.url))
            .bearer_auth(token(who))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn annotations(&self, name: &str) -> std::collections::BTreeMap<String, String> {
        self.apps
            .get(name)
            .await
            .unwrap()
            .metadata
            .annotations
            .unwrap_or_default()
    }
}

async fn create_app(apps: &Api<Application>, name: &str, project: &str) {
    let app: Application = serde_json::from_value(json!({
        "apiVersion": "pushsync.dev/v1alpha1", "kind": "Application",
        "metadata": {"name": name, "namespace": "default", "labels": {"team": project}},
        "spec": {
            "project": project,
            "source": {"repoURL": format!("https://git.example.com/{project}/web.git"), "targetRevision": "main", "path": "deploy"},
            "destination": {"namespace": "default"},
        },
    }))
    .unwrap();
    apps.create(&PostParams::default(), &app).await.unwrap();
    apps.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {
            "sync": {"status": "Synced", "revision": REVISION, "shortRevision": "0123456"},
            "health": {"status": "Healthy"},
            "history": [{"revision": REVISION, "deployedAt": "2026-12-01T10:00:00Z"}, {"revision": "fedcba9876543210fedcba9876543210fedcba98", "deployedAt": "2026-12-01T11:00:00Z"}],
            "resources": [
                {"group": "", "version": "v1", "kind": "Secret", "namespace": "default", "name": format!("{name}-secret"), "status": "Synced", "health": "Healthy"},
                {"group": "apps", "version": "v1", "kind": "Deployment", "namespace": "default", "name": name, "status": "OutOfSync", "health": "Healthy", "diff": "--- live\n+++ git\n-image: a\n+image: b"},
            ],
        }})),
    )
    .await
    .unwrap();
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_group_sees_and_acts_on_its_own_projects_only() {
    let server = Server::start().await;
    // Nobody unauthenticated; a wrong token is not a session either.
    let anonymous = server
        .http
        .get(format!("{}/api/v1/applications", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        server.get("mallory", "/api/v1/applications").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let page = server
        .http
        .get(format!("{}/", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    assert_eq!(page.headers()["location"], "/login?next=/");

    // Visibility.
    let alice: Value = server
        .get("alice", "/api/v1/applications")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(names(&alice), ["web-a"]);
    let bob: Value = server
        .get("bob", "/api/v1/applications")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(names(&bob), ["web-b"]);
    let nobody: Value = server
        .get("nobody", "/api/v1/applications")
        .await
        .json()
        .await
        .unwrap();
    assert!(names(&nobody).is_empty());
    let filtered: Value = server
        .get(
            "lead",
            "/api/v1/applications?q=TEAM-A&sync=Synced&label=team%3Dteam-a",
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(names(&filtered), ["web-a"]);
    // Another project's Application is not found, for reading and acting alike.
    for path in [
        "/api/v1/applications/default/web-a",
        "/api/v1/applications/default/web-a/tree",
        "/api/v1/applications/default/web-a/events",
    ] {
        assert_eq!(
            server.get("bob", path).await.status(),
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    let response = server
        .post("bob", "/api/v1/applications/default/web-a/sync", json!({}))
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(
        !server
            .annotations("web-a")
            .await
            .contains_key(pushsync_api::SYNC_ANNOTATION)
    );
    let page = server.get("bob", "/applications/default/web-a").await;
    assert_eq!(page.status(), StatusCode::NOT_FOUND);

    // Roles: read may not act; sync may sync, not roll back; rollback may.
    let response = server
        .post(
            "auditor",
            "/api/v1/applications/default/web-a/refresh",
            json!({}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = server
        .post(
            "alice",
            "/api/v1/applications/default/web-a/sync",
            json!({"resources": ["apps:Deployment:default/web-a"], "prune": false}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let annotations = server.annotations("web-a").await;
    let request = SyncRequest::parse(&annotations[pushsync_api::SYNC_ANNOTATION]).unwrap();
    assert_eq!(request.prune, Some(false));
    assert_eq!(request.resources.len(), 1);
    let response = server
        .post(
            "alice",
            "/api/v1/applications/default/web-a/rollback",
            json!({"revision": "fedcba9"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"], "forbidden");
    let response = server
        .post(
            "lead",
            "/api/v1/applications/default/web-a/rollback",
            json!({"revision": "fedcba9"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(
        server.annotations("web-a").await[pushsync_api::ROLLBACK_ANNOTATION],
        "fedcba9"
    );
    // Bad input: a clear 400, nothing written.
    let before = server.annotations("web-a").await;
    for (action, body) in [
        ("rollback", json!({"revision": "not-deployed"})),
        ("rollback", json!({"revision": "abc"})),
        ("sync", json!({"resources": ["Deployment"]})),
        ("sync", json!({"resource": []})),
    ] {
        let response = server
            .post(
                "lead",
                &format!("/api/v1/applications/default/web-a/{action}"),
                body,
            )
            .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{action}");
    }
    assert_eq!(
        server
            .post(
                "lead",
                "/api/v1/applications/default/web-a/explode",
                json!({})
            )
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(server.annotations("web-a").await, before);
    // Suspend needs admin.
    assert_eq!(
        server
            .post(
                "bob",
                "/api/v1/applications/default/web-b/suspend",
                json!({})
            )
            .await
            .status(),
        StatusCode::FORBIDDEN
    );

    let metrics = server
        .http
        .get(format!("{}/metrics", server.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .contains(r#"pushsync_server_actions_total{action="rollback",outcome="forbidden"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("pushsync_server_build_info"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_session_needs_its_csrf_token_to_act() {
    let server = Server::start().await;
    let login = |password: &str| {
        server
            .http
            .post(format!("{}/auth/login", server.url))
            .form(&[
                ("username", "admin"),
                ("password", password),
                ("next", "https://evil.example/"),
            ])
            .send()
    };
    let refused = login("wrong").await.unwrap();
    assert_eq!(refused.status(), StatusCode::SEE_OTHER);
    assert!(
        refused.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/login?failed=1")
    );
    assert!(refused.headers().get("set-cookie").is_none());
    let response = login("admin-password").await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    // An open redirect to another site is not followed.
    assert_eq!(response.headers()["location"], "/");
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    for attribute in ["pushsync_session=", "HttpOnly", "Secure", "SameSite=Lax"] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    let session = cookie.split(';').next().unwrap().to_owned();
    let page = server
        .http
        .get(format!("{}/applications/default/web-b", server.url))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("web-b") && page.contains(r#"data-action="suspend""#),
        "{page}"
    );
    let csrf = page
        .split(r#"<meta name="csrf-token" content=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    assert_eq!(csrf.len(), 64);
    let act = |csrf: Option<&str>, site: &str| {
        let mut request = server
            .http
            .post(format!(
                "{}/api/v1/applications/default/web-b/suspend",
                server.url
            ))
            .header("cookie", &session)
            .header("sec-fetch-site", site);
        if let Some(csrf) = csrf {
            request = request.header("x-csrf-token", csrf);
        }
        request.send()
    };
    assert_eq!(
        act(None, "same-origin").await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        act(Some("0".repeat(64).as_str()), "same-origin")
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        act(Some(&csrf), "cross-site").await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert!(!server.apps.get("web-b").await.unwrap().spec.suspend);
    assert_eq!(
        act(Some(&csrf), "same-origin").await.unwrap().status(),
        StatusCode::ACCEPTED
    );
    assert!(server.apps.get("web-b").await.unwrap().spec.suspend);
    // Logging out ends the session.
    let out = server
        .http
        .post(format!("{}/auth/logout", server.url))
        .header("cookie", &session)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    let cleared = out.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let me = server
        .http
        .get(format!("{}/api/v1/me", server.url))
        .header("cookie", &cleared)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_updates_reach_only_those_who_may_see_them() {
    let server = Server::start().await;
    let stream = server.get("alice", "/api/v1/stream").await;
    assert_eq!(stream.status(), StatusCode::OK);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let mut body = stream.bytes_stream();
    // A change alice may not see, then one she may.
    server
        .apps
        .patch_status(
            "web-b",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"health": {"status": "Degraded"}}})),
        )
        .await
        .unwrap();
    server
        .apps
        .patch_status(
            "web-a",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"health": {"status": "Progressing"}}})),
        )
        .await
        .unwrap();
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !seen.contains("Progressing") {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .expect("an event in time")
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        seen.contains("event: application") && seen.contains(r#""name":"web-a""#),
        "{seen}"
    );
    assert!(!seen.contains("web-b"), "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tree_and_manifests_show_live_objects_without_secret_values() {
    let server = Server::start().await;
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(server.client.clone(), "default");
    secrets
        .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "web-a-secret"}, "stringData": {"password": "hunter2-hunter2"}})).unwrap())
        .await
        .unwrap();
    let tree: Value = server
        .get("alice", "/api/v1/applications/default/web-a/tree")
        .await
        .json()
        .await
        .unwrap();
    let kinds: Vec<&str> = tree["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["Secret", "Deployment"]);
    assert_eq!(tree["nodes"][1]["sync"], "OutOfSync");
    let manifest = server
        .get("alice", "/api/v1/applications/default/web-a/manifest?group=&kind=Secret&namespace=default&name=web-a-secret")
        .await;
    assert_eq!(manifest.status(), StatusCode::OK);
    let text = manifest.text().await.unwrap();
    assert!(
        !text.contains("hunter2") && !text.contains("aHVudGVy"),
        "{text}"
    );
    assert!(text.contains("<hidden: 20 bytes>"), "{text}");
    // Only what the Application manages: not any Secret of the namespace.
    let other = server
        .get("alice", "/api/v1/applications/default/web-a/manifest?group=&kind=Secret&namespace=default&name=web-b-secret")
        .await;
    assert_eq!(other.status(), StatusCode::NOT_FOUND);
    // What the cluster made for a managed Deployment hangs under it, by
    // owner references (the sandbox has no ReplicaSet controller: made here).
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(server.client.clone(), "default");
    let deployment = deployments
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "web-a"},
                "spec": {"selector": {"matchLabels": {"app": "web-a"}}, "template": {"metadata": {"labels": {"app": "web-a"}}, "spec": {"containers": [{"name": "app", "image": "nginx"}]}}},
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let owner = |kind: &str, name: &str, uid: &str| json!([{"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": uid, "controller": true}]);
    let replica_sets: Api<k8s_openapi::api::apps::v1::ReplicaSet> =
        Api::namespaced(server.client.clone(), "default");
    let replica_set = replica_sets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "web-a-5d4f", "ownerReferences": owner("Deployment", "web-a", deployment.metadata.uid.as_deref().unwrap())},
                "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web-a"}}, "template": {"metadata": {"labels": {"app": "web-a"}}, "spec": {"containers": [{"name": "app", "image": "nginx"}]}}},
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let pods: Api<k8s_openapi::api::core::v1::Pod> =
        Api::namespaced(server.client.clone(), "default");
    for (name, owned) in [("web-a-5d4f-x1", true), ("someone-else", false)] {
        let mut pod = json!({"metadata": {"name": name}, "spec": {"containers": [{"name": "app", "image": "nginx", "env": [{"name": "TOKEN", "value": "inline-secret"}]}]}});
        if owned {
            pod["metadata"]["ownerReferences"] = owner(
                "ReplicaSet",
                "web-a-5d4f",
                replica_set.metadata.uid.as_deref().unwrap(),
            );
        }
        pods.create(
            &PostParams::default(),
            &serde_json::from_value(pod).unwrap(),
        )
        .await
        .unwrap();
    }
    let tree: Value = server
        .get("alice", "/api/v1/applications/default/web-a/tree")
        .await
        .json()
        .await
        .unwrap();
    let nodes = tree["nodes"].as_array().unwrap();
    let node = |kind: &str| {
        nodes
            .iter()
            .find(|n| n["kind"] == kind)
            .unwrap_or_else(|| panic!("{kind} in {tree}"))
    };
    assert_eq!(node("ReplicaSet")["parent"], node("Deployment")["uid"]);
    assert_eq!(node("Pod")["parent"], node("ReplicaSet")["uid"]);
    assert_eq!(node("Pod")["name"], "web-a-5d4f-x1");
    assert_eq!(nodes.len(), 4, "{tree}");
    // A child in the tree can be read; a Pod of the namespace outside it cannot.
    let child = server.get("alice", "/api/v1/applications/default/web-a/manifest?group=&kind=Pod&namespace=default&name=web-a-5d4f-x1").await;
    assert_eq!(child.status(), StatusCode::OK);
    let stranger = server.get("alice", "/api/v1/applications/default/web-a/manifest?group=&kind=Pod&namespace=default&name=someone-else").await;
    assert_eq!(stranger.status(), StatusCode::NOT_FOUND);
    // The page renders the tree and the diff, escaped.
    let page = server
        .get("alice", "/applications/default/web-a")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("<svg")
            && page.contains("+image: b")
            && page.contains(r#"data-action="sync""#),
        "{page}"
    );
    assert!(
        !page.contains(r#"data-action="suspend""#),
        "alice is not admin: {page}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ends_on_the_servers_clock_and_its_live_stream_with_it() {
    let server = Server::start_with(Duration::from_secs(2)).await;
    let login = server
        .http
        .post(format!("{}/auth/login", server.url))
        .form(&[
            ("username", "admin"),
            ("password", "admin-password"),
            ("next", "/"),
        ])
        .send()
        .await
        .unwrap();
    let session = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let me = |cookie: String| {
        server
            .http
            .get(format!("{}/api/v1/me", server.url))
            .header("cookie", cookie)
            .send()
    };
    assert_eq!(me(session.clone()).await.unwrap().status(), StatusCode::OK);
    let stream = server
        .http
        .get(format!("{}/api/v1/stream", server.url))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    // The stream ends by itself when the login does…
    let mut body = stream.bytes_stream();
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(chunk) = body.next().await {
            chunk.unwrap();
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream outlived its session");
    // …and the same cookie, replayed, is no longer a login.
    assert_eq!(
        me(session).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
}
