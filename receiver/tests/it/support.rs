//! Starting a receiver for a test and talking to it.

use std::net::TcpListener;
use std::time::Duration;

use pushsync_broker::{AmqpConfig, MemoryQueue};
use pushsync_proto::Topology;
use pushsync_receiver::secrets::{SecretSource, SecretSources};
use pushsync_receiver::{Config, QueueConfig, StartError};
use pushsync_testkit::{sign, webhook_fixture};
use secrecy::SecretString;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const SECRET: &str = "integration-secret";

/// Secrets for every provider.
pub fn all_secrets() -> SecretSources {
    SecretSources {
        github: SecretSource::inline("PUSHSYNC_GITHUB_SECRET", SECRET),
        gitlab_token: SecretSource::inline("PUSHSYNC_GITLAB_TOKEN", SECRET),
        gitea: SecretSource::inline("PUSHSYNC_GITEA_SECRET", SECRET),
        bitbucket: SecretSource::inline("PUSHSYNC_BITBUCKET_SECRET", SECRET),
        ..SecretSources::default()
    }
}

/// A RabbitMQ queue config for `topology`, reaching the broker at `uri`.
pub fn amqp(uri: &str, topology: &Topology) -> QueueConfig {
    let mut config = AmqpConfig::new(SecretString::from(uri.to_owned()), "pushsync-receiver-test");
    config.topology = topology.clone();
    config.confirm_timeout = Duration::from_secs(2);
    config.max_backoff = Duration::from_millis(200);
    QueueConfig::Amqp(config)
}

/// An in-memory queue config.
pub fn memory() -> (QueueConfig, MemoryQueue) {
    let queue = MemoryQueue::new(1000);
    (QueueConfig::Memory(queue.clone()), queue)
}

/// A receiver running in this test's runtime.
pub struct Running {
    pub base: String,
    pub client: reqwest::Client,
    pub shutdown: CancellationToken,
    pub handle: JoinHandle<Result<(), StartError>>,
}

pub async fn start(
    queue: QueueConfig,
    secrets: SecretSources,
    tweak: impl FnOnce(&mut Config),
) -> Running {
    let mut config = Config::new(queue, secrets);
    config.http.workers = 1;
    config.http.shutdown_grace = Duration::from_secs(5);
    config.http.retry_after = Duration::from_secs(7);
    tweak(&mut config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(pushsync_receiver::run(config, listener, shutdown.clone()));
    let client = reqwest::Client::new();
    // Wait until the server answers.
    for _ in 0..100 {
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Running {
        base,
        client,
        shutdown,
        handle,
    }
}

impl Running {
    pub async fn post(
        &self,
        path: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> reqwest::Response {
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .body(body.to_vec());
        for (name, value) in headers {
            request = request.header(name.as_str(), value.as_str());
        }
        request.send().await.unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    /// Wait until `/readyz` answers `status`.
    pub async fn wait_ready(&self, status: u16, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while tokio::time::Instant::now() < deadline {
            if self.get("/readyz").await.status().as_u16() == status {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        false
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        let result = tokio::time::timeout(Duration::from_secs(10), self.handle).await;
        assert!(
            matches!(result, Ok(Ok(Ok(())))),
            "receiver did not stop cleanly: {result:?}"
        );
    }
}

/// A webhook as a forge would send it: path, headers (signed with [`SECRET`]), body.
pub struct Delivery {
    pub path: &'static str,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A GitHub push of `body`, signed, with delivery id `id`.
pub fn github(event: &str, id: &str, body: Vec<u8>) -> Delivery {
    Delivery {
        path: "/hooks/github",
        headers: pairs(&[
            ("content-type", "application/json"),
            ("x-github-event", event),
            ("x-github-delivery", id),
            ("x-hub-signature-256", &sign::hub_signature(SECRET, &body)),
        ]),
        body,
    }
}

/// Every forge fixture, with the headers its README says to send, and the
/// number of events it must publish.
pub fn every_fixture() -> Vec<(&'static str, Delivery, usize)> {
    let mut out = Vec::new();
    let json = ("content-type", "application/json");
    for (name, events) in [
        ("github-push-commits.json", 1),
        ("github-push-new-branch.json", 1),
        ("github-push-no-username-committer.json", 1),
        ("github-push-tag-deleted.json", 1),
        ("github-push-tag-deleted-org.json", 1),
    ] {
        out.push((
            name,
            github("push", &format!("gh-{name}"), webhook_fixture(name)),
            events,
        ));
    }
    for name in ["github-ping.json", "github-ping-org-hook.json"] {
        out.push((
            name,
            github("ping", &format!("gh-{name}"), webhook_fixture(name)),
            0,
        ));
    }
    for (name, event) in [
        ("gitlab-push-docs.json", "Push Hook"),
        ("gitlab-push.json", "Push Hook"),
        ("gitlab-push-go-gitlab.json", "Push Hook"),
        ("gitlab-system-hook-push.json", "System Hook"),
        ("gitlab-tag-push-docs.json", "Tag Push Hook"),
        ("gitlab-tag-push.json", "Tag Push Hook"),
        ("gitlab-tag-push-go-gitlab.json", "Tag Push Hook"),
    ] {
        let headers = pairs(&[
            json,
            ("x-gitlab-event", event),
            ("x-gitlab-token", SECRET),
            ("idempotency-key", &format!("gl-{name}")),
        ]);
        out.push((
            name,
            Delivery {
                path: "/hooks/gitlab",
                headers,
                body: webhook_fixture(name),
            },
            1,
        ));
    }
    for (name, prefix) in [("gitea-push.json", "gitea"), ("gogs-push.json", "gogs")] {
        let body = webhook_fixture(name);
        let headers = pairs(&[
            json,
            (&format!("x-{prefix}-event"), "push"),
            (&format!("x-{prefix}-delivery"), &format!("{prefix}-{name}")),
            (
                &format!("x-{prefix}-signature"),
                &sign::gitea_signature(SECRET, &body),
            ),
        ]);
        out.push((
            name,
            Delivery {
                path: "/hooks/gitea",
                headers,
                body,
            },
            1,
        ));
    }
    for (name, event, id_header) in [
        ("bitbucket-cloud-push.json", "repo:push", "x-request-uuid"),
        (
            "bitbucket-server-refs-changed.json",
            "repo:refs_changed",
            "x-request-id",
        ),
    ] {
        let body = webhook_fixture(name);
        let headers = pairs(&[
            json,
            ("x-event-key", event),
            (id_header, &format!("bb-{name}")),
            ("x-hub-signature", &sign::hub_signature(SECRET, &body)),
        ]);
        out.push((
            name,
            Delivery {
                path: "/hooks/bitbucket",
                headers,
                body,
            },
            1,
        ));
    }
    out
}
