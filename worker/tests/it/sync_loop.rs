//! The sync side against the real RabbitMQ, `git daemon` and the sandbox:
//! coalescing across two syncers, exclusivity, retries, giving up, and a
//! newer commit superseding a wait for health.

use std::time::{Duration, Instant};

use kube::api::{Api, PostParams};
use pushsync_api::{Application, ApplicationSpec, Backoff, OperationPhase, Retry, SyncStatusCode};
use pushsync_broker::{AmqpConfig, Broker};
use pushsync_proto::{AppRef, SyncTrigger, Topology};
use pushsync_sandbox::{Fault, Sandbox};
use pushsync_testkit::amqp::{TestBroker, amqp_url, unique_topology};
use pushsync_testkit::git::{GitDaemon, GitRepo};
use pushsync_worker::context::job;
use pushsync_worker::git::GitCache;
use pushsync_worker::index::{Index, Namespaces};
use pushsync_worker::lease::Leases;
use pushsync_worker::loops::sync::{SyncSettings, Syncer};
use pushsync_worker::metrics::Metrics;
use pushsync_worker::retry::RetryPolicy;
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

use crate::support;

struct Fixture {
    sandbox: Sandbox,
    repo: GitRepo,
    _daemon: GitDaemon,
    url: String,
    topology: Topology,
    inspect: TestBroker,
    publisher: Broker,
    stop: CancellationToken,
    metrics: Vec<Metrics>,
    _cache: tempfile::TempDir,
}

const CM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\ndata: {version: \"0\"}\n";

impl Fixture {
    async fn new(files: &[(&str, &str)]) -> Self {
        let sandbox = support::sandbox_with_crds().await;
        let repo = GitRepo::init();
        for (path, text) in files {
            repo.write(path, text);
        }
        repo.commit("first");
        let daemon = GitDaemon::serve_repo(&repo);
        let url = daemon.url_of(&repo);
        let topology = unique_topology();
        let inspect = TestBroker::connect().await;
        let publisher = broker(&topology).await;
        Self {
            sandbox,
            repo,
            _daemon: daemon,
            url,
            topology,
            inspect,
            publisher,
            stop: CancellationToken::new(),
            metrics: Vec::new(),
            _cache: tempfile::tempdir().unwrap(),
        }
    }

    async fn application(&self, retry: Option<Retry>) {
        let mut spec = ApplicationSpec::automated(&self.url, "main", "apps/web", "web")
            .with_sync_option("CreateNamespace=true");
        if let Some(policy) = spec.sync_policy.as_mut() {
            policy.retry = retry;
        }
        self.apps()
            .create(&PostParams::default(), &Application::new("web", spec))
            .await
            .unwrap();
    }

    fn apps(&self) -> Api<Application> {
        Api::namespaced(self.sandbox.client(), "default")
    }

    /// Start a syncer with its own broker connection and identity.
    async fn syncer(&mut self, identity: &str, health_timeout: Duration) {
        self.syncer_with(
            identity,
            health_timeout,
            Duration::from_secs(3),
            Duration::from_millis(50),
        )
        .await;
    }

    /// A syncer whose Leases last `lease` and whose waiting jobs look every `lock_poll`.
    async fn syncer_with(
        &mut self,
        identity: &str,
        health_timeout: Duration,
        lease: Duration,
        lock_poll: Duration,
    ) {
        let git = GitCache::new(self._cache.path().join(identity), Duration::from_secs(20))
            .with_policy(pushsync_worker::git::RemotePolicy::permissive());
        let ctx = pushsync_worker::sync::SyncContext {
            health_timeout,
            ..support::sync_context(&self.sandbox, git.clone())
        };
        let index = Index::watch(self.sandbox.client(), &Namespaces::All, self.stop.clone());
        assert!(index.ready().await);
        let shared = pushsync_worker::context::Shared {
            leases: Leases::new(self.sandbox.client(), "default", identity, lease),
            ..support::shared(
                &self.sandbox,
                broker(&self.topology).await,
                self.topology.clone(),
                index,
                git,
                identity,
            )
        };
        self.metrics.push(shared.metrics.clone());
        let syncer = Syncer::new(
            shared,
            ctx,
            SyncSettings {
                lock_poll,
                retry: RetryPolicy {
                    limit: 5,
                    first: Duration::from_millis(100),
                    factor: 2,
                    max: Duration::from_secs(1),
                },
                ..SyncSettings::default()
            },
        );
        tokio::spawn(syncer.run(self.stop.clone()));
    }

    async fn request(&self, revision: &str) {
        let app = AppRef {
            namespace: "default".into(),
            name: "web".into(),
        };
        let trigger = SyncTrigger::Push {
            delivery_id: format!("d-{revision}"),
            revision: Some(revision.to_owned()),
            received_at: jiff::Timestamp::now(),
        };
        let outgoing = job(app, trigger, &format!("d-{revision}"), &self.topology).unwrap();
        self.publisher.publish_all(&[outgoing]).await.unwrap();
    }

    /// Wait until the Application's status satisfies `done`.
    async fn until(&self, what: &str, done: impl Fn(&Application) -> bool) -> Application {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // Listed, not read by name: the overlap check counts reads by name.
            let app = self
                .apps()
                .list(&Default::default())
                .await
                .unwrap()
                .items
                .into_iter()
                .find(|a| a.metadata.name.as_deref() == Some("web"))
                .unwrap();
            if done(&app) {
                return app;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: never happened; status {:?}",
                app.status
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn counter(&self, line: &str) -> u64 {
        self.metrics
            .iter()
            .map(|m| {
                m.render()
                    .lines()
                    .find_map(|l| l.strip_prefix(line)?.trim().parse::<u64>().ok())
                    .unwrap_or(0)
            })
            .sum()
    }

    async fn finish(self) {
        self.stop.cancel();
        self.inspect.delete_topology(&self.topology).await;
    }
}

async fn broker(topology: &Topology) -> Broker {
    let mut config = AmqpConfig::new(SecretString::from(amqp_url()), "pushsync-syncer-test");
    config.topology = topology.clone();
    let broker = Broker::amqp(config);
    assert!(broker.wait_ready(Duration::from_secs(10)).await);
    broker
}

fn revision_of(app: &Application) -> Option<String> {
    app.status.as_ref()?.sync.as_ref()?.revision.clone()
}

fn synced_at(app: &Application, revision: &str) -> bool {
    app.status.as_ref().is_some_and(|s| {
        s.sync
            .as_ref()
            .is_some_and(|s| s.status == SyncStatusCode::Synced)
            && revision_of(app).as_deref() == Some(revision)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_for_one_application_coalesces_without_overlap_and_ends_at_the_newest_commit() {
    let mut fx = Fixture::new(&[("apps/web/cm.yaml", CM)]).await;
    fx.application(None).await;
    fx.syncer("worker-a", Duration::from_secs(30)).await;
    fx.syncer("worker-b", Duration::from_secs(30)).await;

    // Thirty commits, then their pushes back to back: they arrive faster
    // than syncs finish (the figure depends on that, not on the machine).
    let pushes = 30;
    let mut commits = Vec::new();
    for n in 1..=pushes {
        fx.repo.write(
            "apps/web/cm.yaml",
            &CM.replace("\"0\"", &format!("\"{n}\"")),
        );
        commits.push(fx.repo.commit(&format!("push {n}")));
    }
    for commit in &commits {
        fx.request(commit).await;
    }
    let newest = commits.last().cloned().unwrap_or_default();
    fx.until("the newest commit synced", |app| synced_at(app, &newest))
        .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let handled = |fx: &Fixture| {
        fx.counter("pushsync_worker_sync_jobs_total{result=\"synced\"}")
            + fx.counter("pushsync_worker_sync_jobs_total{result=\"coalesced\"}")
            + fx.counter("pushsync_worker_sync_jobs_total{result=\"stale\"}")
    };
    while handled(&fx) < pushes {
        assert!(Instant::now() < deadline, "jobs never all handled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let maps: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(fx.sandbox.client(), "web");
    assert_eq!(
        maps.get("web").await.unwrap().data.unwrap()["version"],
        pushes.to_string()
    );
    let syncs = fx.counter("pushsync_worker_syncs_total{outcome=\"succeeded\"}")
        + fx.counter("pushsync_worker_syncs_total{outcome=\"refreshed\"}");
    assert!(
        syncs < pushes / 2,
        "{syncs} syncs for {pushes} pushes: not coalesced"
    );
    assert!(
        fx.counter("pushsync_worker_sync_jobs_total{result=\"coalesced\"}") > 0,
        "no job was covered by another's sync"
    );

    // No two syncs overlapped: every sync reads the Application first and
    // writes its status last, so reads and status writes must alternate.
    let mut events: Vec<(f64, f64, bool)> = fx
        .sandbox
        .audit()
        .into_iter()
        .filter_map(|e| {
            let read = e.verb == "get" && e.path.ends_with("/applications/web");
            let write = e.verb == "patch" && e.path.ends_with("/applications/web/status");
            (read || write).then_some((e.start_ms, e.end_ms, read))
        })
        .collect();
    events.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut open: Option<f64> = None;
    for (_, end, read) in &events {
        if *read {
            assert!(open.is_none(), "two syncs overlapped: {events:?}");
            open = Some(*end);
        } else {
            open = None;
        }
    }
    eprintln!("{pushes} pushes → {syncs} syncs");
    fx.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_of_a_commit_already_synced_is_dropped_without_a_sync() {
    let mut fx = Fixture::new(&[("apps/web/cm.yaml", CM)]).await;
    fx.application(None).await;
    fx.syncer("worker-a", Duration::from_secs(30)).await;
    let head = fx.repo.head();
    fx.request(&head).await;
    fx.until("synced", |app| synced_at(app, &head)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while fx.counter("pushsync_worker_sync_jobs_total{result=\"synced\"}") < 1 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let syncs = fx.counter("pushsync_worker_syncs_total{outcome=\"succeeded\"}");
    // The same commit again (a redelivered webhook, a second forge hook).
    let deadline = Instant::now() + Duration::from_secs(10);
    fx.request(&head).await;
    while fx.counter("pushsync_worker_sync_jobs_total{result=\"stale\"}") < 1 {
        assert!(Instant::now() < deadline, "the duplicate was never dropped");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        fx.counter("pushsync_worker_syncs_total{outcome=\"succeeded\"}")
            + fx.counter("pushsync_worker_syncs_total{outcome=\"refreshed\"}"),
        syncs,
        "no sync ran for it"
    );
    fx.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors_are_retried_with_backoff_and_the_sync_converges() {
    let mut fx = Fixture::new(&[("apps/web/cm.yaml", CM)]).await;
    fx.application(Some(Retry {
        limit: Some(10),
        backoff: Some(Backoff {
            duration: Some("50ms".into()),
            factor: Some(2),
            max_duration: Some("500ms".into()),
        }),
    }))
    .await;
    // Three server errors and two "too many requests" on the ConfigMap,
    // then it works (the kube client retries 429 itself, we retry the 500s).
    fx.sandbox.inject(Fault {
        path: "/configmaps/web".into(),
        verb: Some("patch".into()),
        count: 3,
        status: 500,
        delay_ms: 0,
    });
    fx.sandbox.inject(Fault {
        path: "/configmaps/web".into(),
        verb: Some("patch".into()),
        count: 2,
        status: 429,
        delay_ms: 0,
    });
    fx.syncer("worker-a", Duration::from_secs(30)).await;
    let head = fx.repo.head();
    fx.request(&head).await;
    fx.until("synced after retries", |app| synced_at(app, &head))
        .await;
    let failed: Vec<u16> = fx
        .sandbox
        .audit()
        .iter()
        .filter(|e| e.path.ends_with("/configmaps/web") && e.verb == "patch" && e.status >= 400)
        .map(|e| e.status)
        .collect();
    assert_eq!(failed.len(), 5, "every injected fault was met: {failed:?}");
    assert!(fx.counter("pushsync_worker_syncs_total{outcome=\"transient\"}") >= 1);
    assert_eq!(fx.counter("pushsync_worker_dead_lettered_total"), 0);
    fx.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_keeps_failing_is_dead_lettered_and_the_application_says_why() {
    let mut fx = Fixture::new(&[("apps/web/cm.yaml", CM)]).await;
    fx.application(Some(Retry {
        limit: Some(3),
        backoff: Some(Backoff {
            duration: Some("20ms".into()),
            factor: Some(2),
            max_duration: None,
        }),
    }))
    .await;
    fx.sandbox.inject(Fault {
        path: "/configmaps/web".into(),
        verb: Some("patch".into()),
        count: 1000,
        // 500, not 503: the kube client retries 429/503/504 by itself.
        status: 500,
        delay_ms: 0,
    });
    fx.syncer("worker-a", Duration::from_secs(30)).await;
    fx.request(&fx.repo.head()).await;
    let app = fx
        .until("the give-up recorded", |app| {
            app.status
                .as_ref()
                .is_some_and(|s| s.conditions.iter().any(|c| c.kind == "SyncError"))
        })
        .await;
    let status = app.status.unwrap();
    let condition = &status.conditions[0];
    assert_eq!(condition.reason.as_deref(), Some("RetriesExhausted"));
    let message = condition.message.clone().unwrap();
    assert!(message.contains("3 attempts"), "{message}");
    assert!(message.contains("ConfigMap"), "{message}");
    assert_eq!(
        status.operation_state.unwrap().phase,
        OperationPhase::Failed
    );
    let dead = fx
        .inspect
        .drain(&fx.topology.dead_letter(), Duration::from_secs(2))
        .await;
    assert_eq!(dead.len(), 1, "the job is in the dead-letter queue");
    assert_eq!(fx.counter("pushsync_worker_dead_lettered_total"), 1);
    fx.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_commit_supersedes_a_wait_for_health_that_would_never_end() {
    let stuck = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  annotations: {sandbox.pushsync.dev/health: progressing}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: app, image: nginx:1}]}\n";
    let mut fx = Fixture::new(&[("apps/web/deploy.yaml", stuck)]).await;
    fx.application(None).await;
    // A health timeout far longer than the test may take.
    fx.syncer("worker-a", Duration::from_secs(600)).await;
    let broken = fx.repo.head();
    fx.request(&broken).await;
    // The first sync applied the Deployment and now waits for it.
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(fx.sandbox.client(), "web");
    let deadline = Instant::now() + Duration::from_secs(30);
    while deployments.get_opt("web").await.unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the first commit was never applied"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let started = Instant::now();
    fx.repo.write(
        "apps/web/deploy.yaml",
        &stuck
            .replace(
                "  annotations: {sandbox.pushsync.dev/health: progressing}\n",
                "",
            )
            .replace("nginx:1", "nginx:2"),
    );
    let fix = fx.repo.commit("fix");
    fx.request(&fix).await;
    let app = fx
        .until("the fix synced and healthy", |app| {
            synced_at(app, &fix)
                && app
                    .status
                    .as_ref()
                    .and_then(|s| s.health.as_ref())
                    .is_some_and(|h| h.status == pushsync_api::HealthStatusCode::Healthy)
        })
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the fix waited for the first sync's health timeout"
    );
    assert_eq!(
        app.status.unwrap().operation_state.unwrap().phase,
        OperationPhase::Succeeded
    );
    assert_eq!(
        fx.counter("pushsync_worker_syncs_total{outcome=\"superseded\"}"),
        1
    );
    fx.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_during_a_rollout_supersedes_it_at_once_in_the_same_worker() {
    let stuck = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  annotations: {sandbox.pushsync.dev/health: progressing}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: app, image: nginx:1}]}\n";
    let mut fx = Fixture::new(&[("apps/web/deploy.yaml", stuck)]).await;
    fx.application(None).await;
    // Renewals every 5 s and lock checks every 5 s: neither would notice the
    // newer push quickly; only the in-process announcement can.
    fx.syncer_with(
        "worker-a",
        Duration::from_secs(600),
        Duration::from_secs(15),
        Duration::from_secs(5),
    )
    .await;
    fx.request(&fx.repo.head()).await;
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(fx.sandbox.client(), "web");
    let deadline = Instant::now() + Duration::from_secs(30);
    while deployments.get_opt("web").await.unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the first commit was never applied"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    fx.repo.write(
        "apps/web/deploy.yaml",
        &stuck
            .replace(
                "  annotations: {sandbox.pushsync.dev/health: progressing}\n",
                "",
            )
            .replace("nginx:1", "nginx:2"),
    );
    let fix = fx.repo.commit("fix");
    let started = Instant::now();
    fx.request(&fix).await;
    while deployments
        .get("web")
        .await
        .unwrap()
        .spec
        .and_then(|s| s.template.spec)
        .is_none_or(|s| s.containers[0].image.as_deref() != Some("nginx:2"))
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the fix was never applied"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let took = started.elapsed();
    eprintln!("push during a rollout → applied in {took:?}");
    assert!(
        took < Duration::from_millis(2500),
        "the fix waited {took:?}: for a renewal or a lock check, not announced at once"
    );
    fx.finish().await;
}
