//! The worker tier as a system: a burst of 200 pushes to one Application
//! (how many syncs), sync throughput with 1, 2 and 3 worker processes, and
//! the cost of one fallback-poll cycle over 2,000 Applications on 20
//! repositories when nothing changed (against `git ls-remote` of the same
//! repositories).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use kube::api::{Api, PostParams};
use pushsync_api::{Application, ApplicationSpec, ApplicationStatus, OperationState, SyncStatus};
use pushsync_broker::{AmqpConfig, Broker, MemoryQueue, Outgoing};
use pushsync_proto::{Message, Provider, Topology};
use pushsync_sandbox::Sandbox;
use pushsync_testkit::amqp::{TestBroker, amqp_url, unique_topology};
use pushsync_testkit::git::{GitDaemon, GitRepo};
use pushsync_worker::context::{Leadership, Shared};
use pushsync_worker::git::GitCache;
use pushsync_worker::index::Index;
use pushsync_worker::lease::Leases;
use pushsync_worker::loops::poll::{PollSettings, Poller};
use pushsync_worker::metrics::Metrics;

pub fn configmaps(name: &str, count: usize, version: usize) -> String {
    (0..count)
        .map(|i| {
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}-{i}\ndata:\n  version: \"{version}\"\n")
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

pub fn application(name: &str, namespace: &str, url: &str, path: &str) -> Application {
    Application::namespaced(
        namespace,
        name,
        ApplicationSpec::automated(url, "main", path, namespace),
    )
}

pub fn push(
    topology: &Topology,
    url: &str,
    after: &str,
    paths: &[String],
) -> anyhow::Result<Outgoing> {
    let message = Message::PushV1(pushsync_testkit::push_event(url, after, paths));
    Ok(Outgoing {
        exchange: topology.events_exchange(),
        routing_key: Topology::push_routing_key(Provider::Gitea),
        message_id: format!("bench-{after}"),
        schema: message.schema(),
        body: message.encode()?,
    })
}

/// A worker process of the release build.
pub struct WorkerProcess {
    child: Child,
    metrics_port: u16,
}

impl WorkerProcess {
    pub fn start(
        binary: &Path,
        kubeconfig: &Path,
        topology: &Topology,
        namespace: &str,
        cache: &Path,
        identity: &str,
    ) -> anyhow::Result<Self> {
        Self::start_with(
            binary,
            kubeconfig,
            topology,
            namespace,
            cache,
            identity,
            &amqp_url(),
            "10m",
        )
    }

    /// Like `start`, through the broker at `amqp`, polling every `poll`.
    #[allow(
        clippy::too_many_arguments,
        reason = "a bench helper mirroring the worker's settings"
    )]
    pub fn start_with(
        binary: &Path,
        kubeconfig: &Path,
        topology: &Topology,
        namespace: &str,
        cache: &Path,
        identity: &str,
        amqp: &str,
        poll: &str,
    ) -> anyhow::Result<Self> {
        let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new(binary)
            .env("PUSHSYNC_AMQP_URL", amqp)
            .env("PUSHSYNC_QUEUE_PREFIX", topology.prefix())
            .env("KUBECONFIG", kubeconfig)
            .env("PUSHSYNC_NAMESPACE", namespace)
            .env("PUSHSYNC_LEASE_DURATION", "3s")
            .env("PUSHSYNC_GIT_ALLOW_LOCAL_ADDRESSES", "true")
            .env("PUSHSYNC_LOCK_POLL", "100ms")
            .env("PUSHSYNC_RETRY_BACKOFF", "200ms")
            .env("PUSHSYNC_POLL_INTERVAL", poll)
            .env(
                "PUSHSYNC_METRICS_LISTEN",
                format!("127.0.0.1:{metrics_port}"),
            )
            .env("PUSHSYNC_GIT_CACHE", cache.join(identity))
            .env("PUSHSYNC_IDENTITY", identity)
            .env("PUSHSYNC_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        Ok(Self {
            child,
            metrics_port,
        })
    }

    pub async fn metric(&self, prefix: &str) -> f64 {
        let Ok(response) =
            reqwest::get(format!("http://127.0.0.1:{}/metrics", self.metrics_port)).await
        else {
            return 0.0;
        };
        response
            .text()
            .await
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    pub async fn ready(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while reqwest::get(format!("http://127.0.0.1:{}/healthz", self.metrics_port))
            .await
            .is_err()
        {
            anyhow::ensure!(Instant::now() < deadline, "a worker never came up");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }
}

impl WorkerProcess {
    /// SIGKILL: no cleanup at all.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// pushsync's CRDs, and an unrestricted `default` project in `default`
/// (the in-process worker's install namespace).
pub async fn install(sandbox: &Sandbox) -> anyhow::Result<()> {
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> = Api::all(sandbox.client());
    for (_, crd) in pushsync_api::crds() {
        crds.create(&PostParams::default(), &crd).await?;
    }
    pushsync_worker::tenancy::ensure_project(
        sandbox.client(),
        "default",
        pushsync_api::DEFAULT_PROJECT,
        pushsync_api::ProjectSpec::unrestricted(),
    )
    .await?;
    Ok(())
}

/// Namespace `name`, with an unrestricted `default` project in it (the
/// worker processes' install namespace).
pub async fn namespace(sandbox: &Sandbox, name: &str) -> anyhow::Result<()> {
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(sandbox.client());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": name}}))?,
        )
        .await?;
    pushsync_worker::tenancy::ensure_project(
        sandbox.client(),
        name,
        pushsync_api::DEFAULT_PROJECT,
        pushsync_api::ProjectSpec::unrestricted(),
    )
    .await?;
    Ok(())
}

pub async fn wait_synced(
    sandbox: &Sandbox,
    namespace: &str,
    revision_of: impl Fn(&str) -> String,
    timeout: Duration,
) -> anyhow::Result<()> {
    let api: Api<Application> = Api::namespaced(sandbox.client(), namespace);
    let deadline = Instant::now() + timeout;
    loop {
        let apps = api.list(&Default::default()).await?.items;
        let done = apps.iter().all(|app| {
            let name = app.metadata.name.clone().unwrap_or_default();
            app.status.as_ref().is_some_and(|s| {
                s.sync.as_ref().is_some_and(|s| {
                    s.status == pushsync_api::SyncStatusCode::Synced
                        && s.revision.as_deref() == Some(revision_of(&name).as_str())
                })
            })
        });
        if done {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "Applications in {namespace} never synced"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn run(worker_bin: &Path) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    println!();
    println!("pushsync bench: scale — {cores} cores (worker processes: release build)");
    let sandbox = Sandbox::start_with(pushsync_sandbox::SandboxConfig {
        controller_delay: Duration::from_millis(20),
        ..Default::default()
    })
    .await?;
    crate::scale::install(&sandbox).await?;
    let inspect = TestBroker::connect().await;
    let caches = tempfile::tempdir()?;
    let kubeconfig: PathBuf = sandbox.kubeconfig().to_path_buf();

    // 1. A burst of 200 pushes to one Application within a second, two workers.
    {
        let topology = unique_topology();
        let mut amqp = AmqpConfig::new(secrecy::SecretString::from(amqp_url()), "pushsync-bench");
        amqp.topology = topology.clone();
        let publisher = Broker::amqp(amqp);
        publisher.wait_ready(Duration::from_secs(10)).await;
        namespace(&sandbox, "burst").await?;
        let repo = GitRepo::init();
        repo.write("apps/web/cms.yaml", &configmaps("web", 10, 0));
        repo.commit("initial");
        let daemon = GitDaemon::serve_repo(&repo);
        let url = daemon.url_of(&repo);
        let apps: Api<Application> = Api::namespaced(sandbox.client(), "burst");
        apps.create(
            &PostParams::default(),
            &application("web", "burst", &url, "apps/web"),
        )
        .await?;
        let workers = (1..=2)
            .map(|i| {
                WorkerProcess::start(
                    worker_bin,
                    &kubeconfig,
                    &topology,
                    "burst",
                    caches.path(),
                    &format!("burst-{i}"),
                )
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        for worker in &workers {
            worker.ready().await?;
        }
        let head = repo.head();
        wait_synced(&sandbox, "burst", |_| head.clone(), Duration::from_secs(60)).await?;
        let mut syncs_before = 0.0;
        for worker in &workers {
            syncs_before += worker.metric("pushsync_worker_syncs_total").await;
        }
        let mut pushes = Vec::new();
        for version in 1..=200 {
            repo.write("apps/web/cms.yaml", &configmaps("web", 10, version));
            let after = repo.commit(&format!("v{version}"));
            pushes.push(push(
                &topology,
                &url,
                &after,
                &["apps/web/cms.yaml".to_owned()],
            )?);
        }
        let newest = repo.head();
        let started = Instant::now();
        for outgoing in &pushes {
            publisher
                .publish_all(std::slice::from_ref(outgoing))
                .await?;
        }
        let published_in = started.elapsed();
        wait_synced(
            &sandbox,
            "burst",
            |_| newest.clone(),
            Duration::from_secs(120),
        )
        .await?;
        let converged = started.elapsed();
        // Let covered jobs settle, then count.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut handled = 0.0;
            for worker in &workers {
                handled += worker.metric("pushsync_worker_sync_jobs_total").await;
            }
            if handled >= 201.0 || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut syncs = -syncs_before;
        for worker in &workers {
            syncs += worker.metric("pushsync_worker_syncs_total").await;
        }
        println!(
            "  burst: 200 pushes to one Application published in {:.0} ms → {syncs} syncs; newest commit applied {:.0} ms after the first push",
            published_in.as_secs_f64() * 1000.0,
            converged.as_secs_f64() * 1000.0
        );
        drop(workers);
        publisher.close().await;
        inspect.delete_topology(&topology).await;
    }

    // 2. Throughput: 60 Applications of 10 resources on 6 repositories, one
    //    push per repository, with 1, 2 and 3 worker processes.
    for count in 1..=3 {
        let topology = unique_topology();
        let mut amqp = AmqpConfig::new(secrecy::SecretString::from(amqp_url()), "pushsync-bench");
        amqp.topology = topology.clone();
        let publisher = Broker::amqp(amqp);
        publisher.wait_ready(Duration::from_secs(10)).await;
        let ns = format!("throughput-{count}");
        namespace(&sandbox, &ns).await?;
        let workers = (1..=count)
            .map(|i| {
                WorkerProcess::start(
                    worker_bin,
                    &kubeconfig,
                    &topology,
                    &ns,
                    caches.path(),
                    &format!("{ns}-{i}"),
                )
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        for worker in &workers {
            worker.ready().await?;
        }
        let mut repos = Vec::new();
        let apps: Api<Application> = Api::namespaced(sandbox.client(), &ns);
        for r in 0..6 {
            let repo = GitRepo::init();
            for a in 0..10 {
                repo.write(
                    &format!("apps/a{a}/cms.yaml"),
                    &configmaps(&format!("r{r}-a{a}"), 10, 0),
                );
            }
            repo.commit("initial");
            let daemon = GitDaemon::serve_repo(&repo);
            let url = daemon.url_of(&repo);
            for a in 0..10 {
                apps.create(
                    &PostParams::default(),
                    &application(&format!("r{r}-a{a}"), &ns, &url, &format!("apps/a{a}")),
                )
                .await?;
            }
            repos.push((repo, daemon, url));
        }
        // Let every worker's index see the Applications.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut outgoing = Vec::new();
        for (repo, _, url) in &repos {
            let paths: Vec<String> = (0..10).map(|a| format!("apps/a{a}/cms.yaml")).collect();
            outgoing.push(push(&topology, url, &repo.head(), &paths)?);
        }
        let heads: Vec<String> = repos.iter().map(|(repo, _, _)| repo.head()).collect();
        let started = Instant::now();
        publisher.publish_all(&outgoing).await?;
        wait_synced(
            &sandbox,
            &ns,
            |name| heads[name[1..2].parse::<usize>().unwrap_or(0)].clone(),
            Duration::from_secs(300),
        )
        .await?;
        let took = started.elapsed();
        println!(
            "  throughput with {count} worker(s): 60 Applications (600 resources) synced in {:.0} ms = {:.0} Applications/minute",
            took.as_secs_f64() * 1000.0,
            60.0 / took.as_secs_f64() * 60.0
        );
        drop(workers);
        publisher.close().await;
        inspect.delete_topology(&topology).await;
    }

    // 3. One poll cycle over 2,000 Applications on 20 repositories, nothing changed.
    {
        let mut repos = Vec::new();
        for r in 0..20 {
            let repo = GitRepo::init();
            repo.write("apps/cms.yaml", &configmaps(&format!("r{r}"), 1, 0));
            repo.commit("initial");
            let daemon = GitDaemon::serve_repo(&repo);
            let url = daemon.url_of(&repo);
            repos.push((repo, daemon, url));
        }
        let now = jiff::Timestamp::now().to_string();
        let applications: Vec<Application> = (0..2000)
            .map(|i| {
                let (repo, _, url) = &repos[i % 20];
                let mut app = application(&format!("app-{i}"), "poll", url, "apps");
                app.status = Some(ApplicationStatus {
                    sync: Some(SyncStatus {
                        status: pushsync_api::SyncStatusCode::Synced,
                        revision: Some(repo.head()),
                        desired_digest: None,
                        short_revision: None,
                    }),
                    operation_state: Some(OperationState {
                        phase: pushsync_api::OperationPhase::Succeeded,
                        ..OperationState::default()
                    }),
                    reconciled_at: Some(now.clone()),
                    ..ApplicationStatus::default()
                });
                app
            })
            .collect();
        let queue = MemoryQueue::new(100_000);
        let git = GitCache::new(caches.path().join("poll"), Duration::from_secs(30))
            .with_policy(pushsync_worker::git::RemotePolicy::permissive());
        let shared = Shared {
            broker: Broker::memory(queue.clone()),
            topology: Topology::default(),
            client: sandbox.client(),
            index: Index::fixed(applications),
            git: git.clone(),
            leases: Leases::new(
                sandbox.client(),
                "default",
                "bench",
                Duration::from_secs(15),
            ),
            metrics: Metrics::new()?,
            leadership: Leadership::default(),
        };
        let poller = Poller::new(shared, PollSettings::default());
        // Warm the cache directories once, then measure.
        poller.cycle().await;
        let mut cpu = Vec::new();
        let mut wall = Vec::new();
        for _ in 0..5 {
            let (cpu_before, started) = (crate::cpu::own_seconds(), Instant::now());
            let cycle = poller.cycle().await;
            wall.push(started.elapsed().as_secs_f64() * 1000.0);
            cpu.push((crate::cpu::own_seconds() - cpu_before) * 1000.0);
            anyhow::ensure!(cycle.enqueued == 0 && cycle.repositories == 20, "{cycle:?}");
        }
        cpu.sort_by(f64::total_cmp);
        wall.sort_by(f64::total_cmp);
        let started = Instant::now();
        for (_, _, url) in &repos {
            let status = Command::new("git")
                .args(["ls-remote", url])
                .stdout(Stdio::null())
                .status()?;
            anyhow::ensure!(status.success(), "git ls-remote {url} failed");
        }
        let baseline = started.elapsed().as_secs_f64() * 1000.0;
        println!(
            "  poll cycle, 2,000 Applications on 20 repositories, nothing changed: {:.0} ms wall, {:.1} ms CPU (median of 5; 20 remote calls, 0 jobs); `git ls-remote` of the 20 repositories one after another: {baseline:.0} ms",
            wall[2], cpu[2]
        );
        anyhow::ensure!(queue.is_empty(), "the idle poll enqueued jobs");
    }
    Ok(())
}
