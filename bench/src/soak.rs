//! `make soak`: minutes of mixed pushes to 20 Applications on 4 repositories
//! while a worker is SIGKILLed every few seconds (and replaced) and the
//! workers' broker connection is cut twice; then every Application must be at
//! its repository's newest commit, with nothing dead-lettered or left in the
//! queues. The fallback poll is off, so only pushes can get there: a lost
//! push would leave an Application behind.

use std::path::Path;
use std::time::{Duration, Instant};

use kube::api::{Api, PostParams};
use pushsync_api::Application;
use pushsync_broker::{AmqpConfig, Broker};
use pushsync_sandbox::Sandbox;
use pushsync_testkit::amqp::{TestBroker, amqp_url, unique_topology};
use pushsync_testkit::git::{GitDaemon, GitRepo};
use pushsync_testkit::proxy::TcpProxy;

use crate::scale::{WorkerProcess, application, configmaps, namespace, push};

/// A small xorshift: reproducible from its seed, printed at start.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}

pub async fn run(worker_bin: &Path, duration: Duration) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64 | 1);
    let mut rng = Rng(seed);
    println!();
    println!(
        "pushsync soak — {cores} cores, {} s, seed {seed}: 3 workers, 20 Applications on 4 repositories, a worker killed every 3 s, the broker connection cut twice",
        duration.as_secs()
    );
    let sandbox = Sandbox::start_with(pushsync_sandbox::SandboxConfig {
        controller_delay: Duration::from_millis(100),
        ..Default::default()
    })
    .await?;
    crate::scale::install(&sandbox).await?;
    namespace(&sandbox, "soak").await?;
    let inspect = TestBroker::connect().await;
    let topology = unique_topology();
    let mut amqp = AmqpConfig::new(secrecy::SecretString::from(amqp_url()), "pushsync-soak");
    amqp.topology = topology.clone();
    let publisher = Broker::amqp(amqp);
    publisher.wait_ready(Duration::from_secs(10)).await;
    let proxy = TcpProxy::start("127.0.0.1:5672".parse()?).await?;
    let through_proxy = format!("amqp://guest:guest@{}/%2f", proxy.addr());
    let caches = tempfile::tempdir()?;
    let kubeconfig = sandbox.kubeconfig().to_path_buf();

    let apps: Api<Application> = Api::namespaced(sandbox.client(), "soak");
    let mut repos = Vec::new();
    for r in 0..4 {
        let repo = GitRepo::init();
        for a in 0..5 {
            repo.write(
                &format!("apps/a{a}/cms.yaml"),
                &configmaps(&format!("r{r}-a{a}"), 5, 0),
            );
        }
        repo.commit("initial");
        let daemon = GitDaemon::serve_repo(&repo);
        let url = daemon.url_of(&repo);
        for a in 0..5 {
            apps.create(
                &PostParams::default(),
                &application(&format!("r{r}-a{a}"), "soak", &url, &format!("apps/a{a}")),
            )
            .await?;
        }
        repos.push((repo, daemon, url));
    }
    let mut spawned = 0;
    let start = |spawned: &mut usize| {
        *spawned += 1;
        WorkerProcess::start_with(
            worker_bin,
            &kubeconfig,
            &topology,
            "soak",
            caches.path(),
            &format!("soak-{spawned}"),
            &through_proxy,
            // Off: only pushes may bring an Application to its newest commit.
            "0s",
        )
    };
    let mut workers = Vec::new();
    for _ in 0..3 {
        workers.push(start(&mut spawned)?);
    }
    for worker in &workers {
        worker.ready().await?;
    }
    // Initial state: one push per repository.
    for (repo, _, url) in &repos {
        let paths: Vec<String> = (0..5).map(|a| format!("apps/a{a}/cms.yaml")).collect();
        publisher
            .publish_all(&[push(&topology, url, &repo.head(), &paths)?])
            .await?;
    }

    let started = Instant::now();
    let (mut pushes, mut kills, mut cuts) = (0_u64, 0_u64, 0_u64);
    let mut version = 0;
    // The newest version written for each Application (repository, path).
    let mut expected = [[0_usize; 5]; 4];
    let mut next_kill = started + Duration::from_secs(3);
    let cut_at = [duration / 3, duration * 2 / 3];
    while started.elapsed() < duration {
        // A push touching one to three Applications of one repository.
        let r = rng.below(repos.len());
        let (repo, _, url) = &repos[r];
        version += 1;
        let mut paths = Vec::new();
        for _ in 0..=rng.below(3) {
            let a = rng.below(5);
            let path = format!("apps/a{a}/cms.yaml");
            repo.write(&path, &configmaps(&format!("r{r}-a{a}"), 5, version));
            expected[r][a] = version;
            paths.push(path);
        }
        let after = repo.commit(&format!("v{version}"));
        publisher
            .publish_all(&[push(&topology, url, &after, &paths)?])
            .await?;
        pushes += 1;

        if Instant::now() >= next_kill {
            let victim = rng.below(workers.len());
            workers.remove(victim).kill();
            workers.push(start(&mut spawned)?);
            kills += 1;
            next_kill = Instant::now() + Duration::from_secs(3);
        }
        if cuts < 2 && started.elapsed() >= cut_at[cuts as usize] {
            proxy.cut();
            tokio::time::sleep(Duration::from_secs(3)).await;
            proxy.restore();
            cuts += 1;
        }
        tokio::time::sleep(Duration::from_millis(100 + rng.below(200) as u64)).await;
    }
    // Only pushes can bring each Application to the newest version written
    // for it (the poll is off): one still behind means a lost push.
    let converge = Instant::now();
    let maps: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(sandbox.client(), "soak");
    let mut behind = usize::MAX;
    while converge.elapsed() < Duration::from_secs(180) {
        behind = 0;
        for (r, versions) in expected.iter().enumerate() {
            for (a, version) in versions.iter().enumerate() {
                let live = maps
                    .get_opt(&format!("r{r}-a{a}-0"))
                    .await?
                    .and_then(|cm| cm.data)
                    .and_then(|d| d.get("version").cloned());
                if live.as_deref() != Some(version.to_string().as_str()) {
                    behind += 1;
                }
            }
        }
        if behind == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let dead = inspect
        .drain(&topology.dead_letter(), Duration::from_millis(500))
        .await
        .len();
    println!(
        "  {pushes} pushes, {kills} workers killed, {cuts} broker cuts; converged {:.1} s after the last push",
        converge.elapsed().as_secs_f64()
    );
    println!(
        "  Applications behind their newest commit: {behind}; dead-lettered: {dead}; lost pushes: {}",
        behind + dead
    );
    drop(workers);
    publisher.close().await;
    inspect.delete_topology(&topology).await;
    anyhow::ensure!(behind + dead == 0, "the soak lost pushes");
    Ok(())
}
