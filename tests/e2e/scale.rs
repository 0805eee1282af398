//! Several worker processes as one system: shared load, one sync per
//! Application, coalesced bursts, a worker killed mid-sync, a broker
//! connection cut, the fallback poll and its leader, self-heal.
//!
//! Pushes are published to RabbitMQ as the receiver publishes them (the
//! receiver's own path is tested in `push_to_worker`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kube::api::{Api, Patch, PatchParams, PostParams};
use pushsync_api::{Application, ApplicationSpec};
use pushsync_broker::{AmqpConfig, Broker, Outgoing};
use pushsync_proto::{Message, Provider, Topology};
use pushsync_testkit::amqp::{TestBroker, amqp_url, unique_topology};
use pushsync_testkit::git::{GitDaemon, GitRepo};
use pushsync_testkit::proxy::TcpProxy;
use secrecy::SecretString;

use crate::cluster::TestCluster;
use crate::process::{Service, free_port};

/// A pushsync deployment for one test: its queues, its cluster namespace,
/// its workers.
struct Fleet {
    cluster: TestCluster,
    topology: Topology,
    inspect: TestBroker,
    publisher: Broker,
    workers: Vec<Worker>,
    poll_interval: &'static str,
    caches: tempfile::TempDir,
}

struct Worker {
    service: Service,
    metrics_port: u16,
    identity: String,
}

impl Fleet {
    async fn new(controller_delay: Duration, poll_interval: &'static str) -> Self {
        let cluster = TestCluster::start(controller_delay).await;
        let topology = unique_topology();
        let inspect = TestBroker::connect().await;
        let mut config = AmqpConfig::new(SecretString::from(amqp_url()), "pushsync-e2e-pusher");
        config.topology = topology.clone();
        let publisher = Broker::amqp(config);
        assert!(publisher.wait_ready(Duration::from_secs(10)).await);
        Self {
            cluster,
            topology,
            inspect,
            publisher,
            workers: Vec::new(),
            poll_interval,
            caches: tempfile::tempdir().unwrap(),
        }
    }

    /// Start a worker process talking to RabbitMQ at `amqp`.
    fn worker(&mut self, amqp: String) {
        let identity = format!("w{}", self.workers.len() + 1);
        let metrics_port = free_port();
        let env = vec![
            ("PUSHSYNC_AMQP_URL", amqp),
            ("PUSHSYNC_QUEUE_PREFIX", self.topology.prefix().to_owned()),
            (
                "KUBECONFIG",
                self.cluster.kubeconfig().display().to_string(),
            ),
            ("PUSHSYNC_NAMESPACE", self.cluster.namespace().to_owned()),
            ("PUSHSYNC_LEASE_DURATION", "3s".to_owned()),
            // The test's git daemon listens on loopback.
            ("PUSHSYNC_GIT_ALLOW_LOCAL_ADDRESSES", "true".to_owned()),
            ("PUSHSYNC_LOCK_POLL", "100ms".to_owned()),
            ("PUSHSYNC_RETRY_BACKOFF", "200ms".to_owned()),
            ("PUSHSYNC_POLL_INTERVAL", self.poll_interval.to_owned()),
            ("PUSHSYNC_DRIFT_INTERVAL", self.poll_interval.to_owned()),
            ("PUSHSYNC_HEALTH_TIMEOUT", "2m".to_owned()),
            (
                "PUSHSYNC_METRICS_LISTEN",
                format!("127.0.0.1:{metrics_port}"),
            ),
            (
                "PUSHSYNC_GIT_CACHE",
                self.caches.path().join(&identity).display().to_string(),
            ),
            ("PUSHSYNC_IDENTITY", identity.clone()),
            ("PUSHSYNC_SHUTDOWN_GRACE", "5s".to_owned()),
            ("PUSHSYNC_LOG", "info".to_owned()),
        ];
        self.workers.push(Worker {
            service: Service::start("pushsync-worker", &[], &env),
            metrics_port,
            identity,
        });
    }

    fn apps(&self) -> Api<Application> {
        Api::namespaced(self.cluster.client(), self.cluster.namespace())
    }

    async fn application(&self, name: &str, url: &str, path: &str, self_heal: bool) {
        let mut spec = ApplicationSpec::automated(url, "main", path, self.cluster.namespace());
        if let Some(automated) = spec.sync_policy.as_mut().and_then(|p| p.automated.as_mut()) {
            automated.self_heal = self_heal;
        }
        self.apps()
            .create(&PostParams::default(), &Application::new(name, spec))
            .await
            .unwrap();
    }

    /// Publish a push of `after` to `url`'s main branch touching `paths`.
    async fn push(&self, url: &str, after: &str, paths: &[String]) {
        let event = pushsync_testkit::push_event(url, after, paths);
        let message = Message::PushV1(event);
        let outgoing = Outgoing {
            exchange: self.topology.events_exchange(),
            routing_key: Topology::push_routing_key(Provider::Gitea),
            message_id: format!("e2e-{after}"),
            schema: message.schema(),
            body: message.encode().unwrap(),
        };
        self.publisher.publish_all(&[outgoing]).await.unwrap();
    }

    /// Wait until every Application satisfies `done` (listing them: reads
    /// by name are what the overlap check counts).
    async fn until(&self, what: &str, timeout: Duration, done: impl Fn(&Application) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            let apps = self.apps().list(&Default::default()).await.unwrap().items;
            let pending: Vec<String> = apps
                .iter()
                .filter(|a| !done(a))
                .map(|a| a.metadata.name.clone().unwrap_or_default())
                .collect();
            if !apps.is_empty() && pending.is_empty() {
                return;
            }
            if Instant::now() >= deadline {
                let logs: Vec<String> = self
                    .workers
                    .iter()
                    .flat_map(|w| w.service.logs())
                    .filter(|l| l["level"] != "INFO" && l["level"] != "DEBUG")
                    .map(|l| l.to_string())
                    .collect();
                panic!("{what}: still pending {pending:?}; worker warnings: {logs:#?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A metric summed over the workers still running.
    async fn metric(&self, prefix: &str) -> f64 {
        let mut total = 0.0;
        for worker in &self.workers {
            let Ok(response) =
                reqwest::get(format!("http://127.0.0.1:{}/metrics", worker.metrics_port)).await
            else {
                continue;
            };
            let text = response.text().await.unwrap_or_default();
            total += text
                .lines()
                .filter(|l| l.starts_with(prefix))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>();
        }
        total
    }

    async fn finish(mut self) {
        for worker in self.workers.drain(..) {
            assert!(
                worker.service.terminate(),
                "{} did not stop cleanly",
                worker.identity
            );
        }
        self.publisher.close().await;
        self.inspect.delete_topology(&self.topology).await;
    }
}

fn configmap(name: &str, version: usize) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{version: \"{version}\"}}\n"
    )
}

fn synced_at(app: &Application, revision: &str) -> bool {
    app.status.as_ref().is_some_and(|s| {
        s.sync.as_ref().is_some_and(|s| {
            s.status == pushsync_api::SyncStatusCode::Synced
                && s.revision.as_deref() == Some(revision)
        })
    })
}

fn healthy(app: &Application) -> bool {
    app.status
        .as_ref()
        .and_then(|s| s.health.as_ref())
        .is_some_and(|h| h.status == pushsync_api::HealthStatusCode::Healthy)
}

/// Every sync reads its Application by name first and writes its status last:
/// per Application, reads and status writes must alternate.
fn assert_no_overlap(cluster: &TestCluster, namespace: &str) {
    let Some(audit) = cluster.audit() else {
        return;
    };
    let prefix = format!("/namespaces/{namespace}/applications/");
    let mut per_app: BTreeMap<String, Vec<(f64, f64, bool)>> = BTreeMap::new();
    for entry in audit {
        let Some(rest) = entry.path.split_once(&prefix).map(|(_, r)| r.to_owned()) else {
            continue;
        };
        match (entry.verb.as_str(), rest.split_once('/')) {
            ("get", None) => {
                per_app
                    .entry(rest)
                    .or_default()
                    .push((entry.start_ms, entry.end_ms, true))
            }
            ("patch", Some((name, "status"))) => per_app
                .entry(name.to_owned())
                .or_default()
                .push((entry.start_ms, entry.end_ms, false)),
            _ => {}
        }
    }
    for (app, mut events) in per_app {
        events.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut open = false;
        for (_, _, read) in &events {
            assert!(
                !(*read && open),
                "two syncs of {app} overlapped: {events:?}"
            );
            open = *read;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_fifty_applications_bursts_of_pushes() {
    let mut fleet = Fleet::new(Duration::from_millis(50), "10m").await;
    let namespace = fleet.cluster.namespace().to_owned();
    let mut repos = Vec::new();
    for r in 0..5 {
        let repo = GitRepo::init();
        for a in 0..10 {
            repo.write(
                &format!("apps/a{a}/cm.yaml"),
                &configmap(&format!("r{r}-a{a}"), 0),
            );
        }
        repo.commit("initial");
        let daemon = GitDaemon::serve_repo(&repo);
        let url = daemon.url_of(&repo);
        for a in 0..10 {
            fleet
                .application(&format!("r{r}-a{a}"), &url, &format!("apps/a{a}"), false)
                .await;
        }
        repos.push((repo, daemon, url));
    }
    for _ in 0..3 {
        fleet.worker(amqp_url());
    }
    // The poller's first cycle syncs every Application once.
    let heads: Vec<String> = repos.iter().map(|(repo, _, _)| repo.head()).collect();
    fleet
        .until("initial syncs", Duration::from_secs(120), |app| {
            let r: usize = app.metadata.name.as_deref().unwrap_or_default()[1..2]
                .parse()
                .unwrap();
            synced_at(app, &heads[r])
        })
        .await;

    let mut version = 0;
    for burst in 1..=3 {
        let syncs_before = fleet.metric("pushsync_worker_syncs_total").await;
        let mut newest = Vec::new();
        // Four commits per repository, then their pushes back to back: a
        // burst arrives faster than syncs finish.
        let mut burst_pushes = Vec::new();
        for _ in 0..4 {
            version += 1;
            for (r, (repo, _, url)) in repos.iter().enumerate() {
                let mut paths = Vec::new();
                for a in 0..10 {
                    let path = format!("apps/a{a}/cm.yaml");
                    repo.write(&path, &configmap(&format!("r{r}-a{a}"), version));
                    paths.push(path);
                }
                let head = repo.commit(&format!("burst {burst} v{version}"));
                burst_pushes.push((url.clone(), head, paths));
            }
        }
        let pushes = u32::try_from(burst_pushes.len()).unwrap();
        for (url, head, paths) in &burst_pushes {
            fleet.push(url, head, paths).await;
        }
        for (repo, _, _) in &repos {
            newest.push(repo.head());
        }
        fleet
            .until(
                "every Application at its newest commit",
                Duration::from_secs(180),
                |app| {
                    let r: usize = app.metadata.name.as_deref().unwrap_or_default()[1..2]
                        .parse()
                        .unwrap();
                    synced_at(app, &newest[r])
                },
            )
            .await;
        // Let the last covered jobs settle before counting.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let syncs = fleet.metric("pushsync_worker_syncs_total").await - syncs_before;
        let jobs = f64::from(pushes * 10);
        eprintln!("burst {burst}: {pushes} pushes → {jobs} sync jobs → {syncs} syncs");
        // A push's jobs reach an Application over about one sync duration
        // here, so about two in three become syncs; one per job would mean no
        // coalescing at all (the sharper figure is `make bench`'s burst).
        assert!(
            syncs <= 0.85 * jobs,
            "burst {burst}: {syncs} syncs for {jobs} jobs: not coalesced"
        );
    }
    assert!(
        fleet
            .metric("pushsync_worker_sync_jobs_total{result=\"coalesced\"}")
            .await
            > 0.0,
        "no job was ever covered by another's sync"
    );
    let maps: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(fleet.cluster.client(), &namespace);
    for r in 0..5 {
        for a in 0..10 {
            let data = maps.get(&format!("r{r}-a{a}")).await.unwrap().data.unwrap();
            assert_eq!(data["version"], version.to_string());
        }
    }
    // Every worker took part.
    for worker in &fleet.workers {
        let text = reqwest::get(format!("http://127.0.0.1:{}/metrics", worker.metrics_port))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            text.lines()
                .any(|l| l.starts_with("pushsync_worker_syncs_total")),
            "{} never synced",
            worker.identity
        );
    }
    assert_no_overlap(&fleet.cluster, &namespace);
    for queue in [
        fleet.topology.push_events_queue(),
        fleet.topology.sync_jobs_queue(),
    ] {
        let left = fleet
            .inspect
            .drain(&queue, Duration::from_millis(300))
            .await;
        assert!(left.is_empty(), "{} messages left in {queue}", left.len());
    }
    fleet.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_sync_leaves_the_application_to_another() {
    // Workloads take 1.5 s to become available: syncs wait on health.
    let mut fleet = Fleet::new(Duration::from_millis(1500), "10m").await;
    let repo = GitRepo::init();
    std::fs::create_dir_all(repo.path().join("apps")).unwrap();
    repo.copy_dir(
        &pushsync_testkit::repo_root().join("testdata/manifests/argocd-example-apps/guestbook"),
        "apps/guestbook",
    );
    repo.commit("guestbook");
    let daemon = GitDaemon::serve_repo(&repo);
    let url = daemon.url_of(&repo);
    fleet
        .application("guestbook", &url, "apps/guestbook", false)
        .await;
    fleet.worker(amqp_url());
    fleet.worker(amqp_url());
    let first = repo.head();
    fleet
        .until("initial sync", Duration::from_secs(60), |app| {
            synced_at(app, &first) && healthy(app)
        })
        .await;

    let file = repo
        .path()
        .join("apps/guestbook/guestbook-ui-deployment.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("gb-frontend:v5", "gb-frontend:v6")).unwrap();
    let second = repo.commit("v6");
    fleet
        .push(
            &url,
            &second,
            &["apps/guestbook/guestbook-ui-deployment.yaml".into()],
        )
        .await;
    // Find the worker holding the Application's lock while it waits on the rollout.
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(fleet.cluster.client(), fleet.cluster.namespace());
    let lock = format!("sync.{}.guestbook", fleet.cluster.namespace());
    let deadline = Instant::now() + Duration::from_secs(30);
    let holder = loop {
        let holder = leases
            .get_opt(&lock)
            .await
            .unwrap()
            .and_then(|l| l.spec?.holder_identity)
            .filter(|h| !h.is_empty());
        if let Some(holder) = holder {
            break holder;
        }
        assert!(
            Instant::now() < deadline,
            "no sync of the new commit started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let index = fleet
        .workers
        .iter()
        .position(|w| w.identity == holder)
        .unwrap();
    fleet.workers.remove(index).service.kill();

    fleet
        .until("converged after the kill", Duration::from_secs(60), |app| {
            synced_at(app, &second) && healthy(app)
        })
        .await;
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(fleet.cluster.client(), fleet.cluster.namespace());
    let live = deployments.get("guestbook-ui").await.unwrap();
    assert_eq!(
        live.spec.unwrap().template.spec.unwrap().containers[0]
            .image
            .as_deref(),
        Some("gcr.io/google-samples/gb-frontend:v6")
    );
    fleet.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_ride_out_a_cut_broker_connection() {
    let mut fleet = Fleet::new(Duration::from_millis(50), "10m").await;
    let proxy = TcpProxy::start("127.0.0.1:5672".parse().unwrap())
        .await
        .unwrap();
    let through_proxy = format!("amqp://guest:guest@{}/%2f", proxy.addr());
    let repo = GitRepo::init();
    repo.write("apps/web/cm.yaml", &configmap("web", 0));
    repo.commit("first");
    let daemon = GitDaemon::serve_repo(&repo);
    let url = daemon.url_of(&repo);
    fleet.application("web", &url, "apps/web", false).await;
    fleet.worker(through_proxy.clone());
    fleet.worker(through_proxy);
    let first = repo.head();
    fleet
        .until("initial sync", Duration::from_secs(60), |app| {
            synced_at(app, &first)
        })
        .await;
    // No job in flight when the connection goes: one still running (or
    // waiting for the Lease) would resolve the branch after the next commit
    // and rightly sync it, which is not what this test is about.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let published = fleet
            .metric("pushsync_worker_sync_jobs_published_total")
            .await;
        let ended = fleet.metric("pushsync_worker_sync_jobs_total").await;
        let running = fleet.metric("pushsync_worker_syncs_running").await;
        if published > 0.0 && ended >= published && running == 0.0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "jobs never settled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    proxy.cut();
    repo.write("apps/web/cm.yaml", &configmap("web", 1));
    let second = repo.commit("while cut");
    // Accepted while the workers are cut off: it waits in the queue.
    fleet
        .push(&url, &second, &["apps/web/cm.yaml".into()])
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let app = fleet.apps().get("web").await.unwrap();
    assert!(!synced_at(&app, &second), "synced without a broker?");
    proxy.restore();
    fleet
        .until(
            "synced after the connection came back",
            Duration::from_secs(60),
            |app| synced_at(app, &second),
        )
        .await;
    for worker in &mut fleet.workers {
        assert!(worker.service.is_running(), "{} restarted", worker.identity);
    }
    fleet.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_poll_catches_a_lost_webhook_and_a_standby_takes_over_a_dead_leader() {
    let mut fleet = Fleet::new(Duration::from_millis(50), "2s").await;
    let repo = GitRepo::init();
    repo.write("apps/web/cm.yaml", &configmap("web", 0));
    repo.commit("first");
    let daemon = GitDaemon::serve_repo(&repo);
    let url = daemon.url_of(&repo);
    fleet.application("web", &url, "apps/web", false).await;
    fleet.worker(amqp_url());
    fleet.worker(amqp_url());

    // A commit whose webhook never arrives.
    repo.write("apps/web/cm.yaml", &configmap("web", 1));
    let lost = repo.commit("no webhook");
    fleet
        .until("the poll deployed it", Duration::from_secs(30), |app| {
            synced_at(app, &lost)
        })
        .await;

    // Kill the poller; the standby takes over and polls.
    let deadline = Instant::now() + Duration::from_secs(20);
    let leader = loop {
        let mut found = None;
        for (i, worker) in fleet.workers.iter().enumerate() {
            let text = reqwest::get(format!("http://127.0.0.1:{}/metrics", worker.metrics_port))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            if text.lines().any(|l| l == "pushsync_worker_poll_leader 1") {
                found = Some(i);
            }
        }
        if let Some(i) = found {
            break i;
        }
        assert!(Instant::now() < deadline, "no poller elected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    fleet.workers.remove(leader).service.kill();
    let killed_at = Instant::now();
    let standby = fleet.workers[0].metrics_port;
    loop {
        let text = reqwest::get(format!("http://127.0.0.1:{standby}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.lines().any(|l| l == "pushsync_worker_poll_leader 1") {
            break;
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(20),
            "the standby never took over"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("standby took over {:?} after the kill", killed_at.elapsed());
    repo.write("apps/web/cm.yaml", &configmap("web", 2));
    let later = repo.commit("another lost webhook");
    fleet
        .until(
            "the new poller deployed it",
            Duration::from_secs(30),
            |app| synced_at(app, &later),
        )
        .await;
    fleet.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_edits_are_reverted_with_self_heal_and_reported_without() {
    let mut fleet = Fleet::new(Duration::from_millis(50), "2s").await;
    let repo = GitRepo::init();
    repo.write("apps/heal/cm.yaml", &configmap("heal", 0))
        .write("apps/keep/cm.yaml", &configmap("keep", 0));
    repo.commit("first");
    let daemon = GitDaemon::serve_repo(&repo);
    let url = daemon.url_of(&repo);
    fleet.application("heal", &url, "apps/heal", true).await;
    fleet.application("keep", &url, "apps/keep", false).await;
    fleet.worker(amqp_url());
    let head = repo.head();
    fleet
        .until("initial sync", Duration::from_secs(60), |app| {
            synced_at(app, &head)
        })
        .await;

    let maps: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(fleet.cluster.client(), fleet.cluster.namespace());
    let by_hand = PatchParams {
        field_manager: Some("kubectl-edit".into()),
        ..PatchParams::default()
    };
    for name in ["heal", "keep"] {
        maps.patch(
            name,
            &by_hand,
            &Patch::Merge(serde_json::json!({"data": {"version": "edited"}})),
        )
        .await
        .unwrap();
    }
    let version = |name: &'static str| {
        let maps = maps.clone();
        async move { maps.get(name).await.unwrap().data.unwrap()["version"].clone() }
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while version("heal").await != "0" {
        assert!(
            Instant::now() < deadline,
            "the hand edit was never reverted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Without selfHeal: reported as out of sync, with the diff, and left alone.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let app = fleet.apps().get("keep").await.unwrap();
        let status = app.status.unwrap();
        if status
            .sync
            .as_ref()
            .is_some_and(|s| s.status == pushsync_api::SyncStatusCode::OutOfSync)
        {
            let resource = &status.resources[0];
            assert_eq!(resource.status, pushsync_api::ResourceSyncCode::OutOfSync);
            let diff = resource.diff.as_deref().unwrap_or_default();
            assert!(diff.contains("edited"), "{diff}");
            break;
        }
        assert!(Instant::now() < deadline, "the drift was never reported");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(version("keep").await, "edited");
    fleet.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixing_commit_does_not_wait_for_a_rollout_that_never_finishes() {
    let mut fleet = Fleet::new(Duration::from_millis(50), "10m").await;
    // Never healthy: an image that cannot be pulled (a real cluster), and the
    // sandbox's marker for a rollout that never progresses.
    let stuck = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  annotations: {sandbox.pushsync.dev/health: progressing}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: app, image: pushsync.invalid/never:1}]}\n";
    let repo = GitRepo::init();
    repo.write("apps/web/deploy.yaml", stuck);
    repo.commit("stuck");
    let daemon = GitDaemon::serve_repo(&repo);
    let url = daemon.url_of(&repo);
    fleet.application("web", &url, "apps/web", false).await;
    // PUSHSYNC_HEALTH_TIMEOUT is 2m for these workers.
    fleet.worker(amqp_url());
    fleet.worker(amqp_url());
    // The first sync applies the Deployment and waits for it.
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(fleet.cluster.client(), fleet.cluster.namespace());
    let deadline = Instant::now() + Duration::from_secs(30);
    while deployments.get_opt("web").await.unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the stuck commit was never applied"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let fixed_at = Instant::now();
    repo.write(
        "apps/web/deploy.yaml",
        &stuck
            .replace(
                "  annotations: {sandbox.pushsync.dev/health: progressing}\n",
                "",
            )
            .replace("pushsync.invalid/never:1", "nginx:1.27"),
    );
    let fix = repo.commit("fix");
    fleet
        .push(&url, &fix, &["apps/web/deploy.yaml".into()])
        .await;
    fleet
        .until(
            "the fix synced and healthy",
            Duration::from_secs(60),
            |app| synced_at(app, &fix) && healthy(app),
        )
        .await;
    assert!(
        fixed_at.elapsed() < Duration::from_secs(60),
        "the fix waited for the stuck rollout's health timeout"
    );
    eprintln!("fix healthy {:?} after its push", fixed_at.elapsed());
    assert!(
        fleet
            .metric("pushsync_worker_syncs_total{outcome=\"superseded\"}")
            .await
            >= 1.0,
        "the stuck sync was not superseded"
    );
    fleet.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_heal_reacts_to_a_hand_edit_without_waiting_for_the_poll() {
    // The poll runs once at election, then not for ten minutes: only the
    // drift watch can revert what follows within the test.
    let mut fleet = Fleet::new(Duration::from_millis(50), "10m").await;
    let repo = GitRepo::init();
    repo.write("apps/heal/cm.yaml", &configmap("heal", 0));
    repo.commit("first");
    let daemon = GitDaemon::serve_repo(&repo);
    let url = daemon.url_of(&repo);
    fleet.application("heal", &url, "apps/heal", true).await;
    fleet.worker(amqp_url());
    let head = repo.head();
    fleet
        .until("initial sync", Duration::from_secs(60), |app| {
            synced_at(app, &head)
        })
        .await;
    let maps: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(fleet.cluster.client(), fleet.cluster.namespace());
    let by_hand = PatchParams {
        field_manager: Some("kubectl-edit".into()),
        ..PatchParams::default()
    };
    // The watch starts with the leader's next look at the inventories.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let edited_at = Instant::now();
    maps.patch(
        "heal",
        &by_hand,
        &Patch::Merge(serde_json::json!({"data": {"version": "edited"}})),
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let version = maps.get("heal").await.unwrap().data.unwrap()["version"].clone();
        if version == "0" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the hand edit was never reverted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "hand edit reverted {:?} after it was made",
        edited_at.elapsed()
    );
    // A deleted managed object comes back too.
    maps.delete("heal", &Default::default()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while maps.get_opt("heal").await.unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the deleted object was never recreated"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    fleet.finish().await;
}
