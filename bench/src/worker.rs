//! The worker: push → applied latency through the receiver, RabbitMQ, the
//! worker loops and the sandbox; a 100-resource sync against `kubectl apply
//! --server-side` of the same files; the CPU of a no-op re-sync.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use anyhow::Context;
use kube::api::{Api, PostParams};
use pushsync_api::{Application, ApplicationSpec};
use pushsync_broker::{AmqpConfig, Broker};
use pushsync_receiver::secrets::{SecretSource, SecretSources};
use pushsync_receiver::{Config, QueueConfig};
use pushsync_sandbox::Sandbox;
use pushsync_testkit::amqp::{TestBroker, amqp_url, unique_topology};
use pushsync_testkit::git::{GitDaemon, GitRepo};
use pushsync_worker::apply::Cluster;
use pushsync_worker::context::{Leadership, Shared};
use pushsync_worker::git::GitCache;
use pushsync_worker::index::Index;
use pushsync_worker::lease::Leases;
use pushsync_worker::loops::Settings;
use pushsync_worker::loops::sync::SyncSettings;
use pushsync_worker::metrics::Metrics;
use pushsync_worker::sync::{SyncContext, sync};
use tokio_util::sync::CancellationToken;

const SECRET: &str = "bench-secret";

fn configmaps(count: usize, version: usize) -> String {
    (0..count)
        .map(|i| format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i}\ndata:\n  version: \"{}\"\n", if i == 0 { version } else { 0 }))
        .collect::<Vec<_>>()
        .join("---\n")
}

fn application(name: &str, url: &str, path: &str) -> Application {
    let spec = ApplicationSpec::automated(url, "main", path, name)
        .with_sync_option("CreateNamespace=true");
    Application::namespaced("default", name, spec)
}

/// The "rollout" app at `version`: ten ConfigMaps and a Deployment the
/// sandbox never makes available (a rollout that lasts until superseded).
fn rollout(version: usize) -> String {
    format!(
        "{}---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: slow\n  annotations: {{sandbox.pushsync.dev/health: progressing}}\nspec:\n  selector: {{matchLabels: {{app: slow}}}}\n  template:\n    metadata: {{labels: {{app: slow}}, annotations: {{version: \"{version}\"}}}}\n    spec: {{containers: [{{name: slow, image: \"nginx:1.27\"}}]}}\n",
        configmaps(10, version)
    )
}

/// Signed Gitea pushes to the receiver, and the wait for what they apply.
struct Pushes {
    client: reqwest::Client,
    base: String,
    url: String,
}

impl Pushes {
    /// Push `before..after` touching `path`, and wait until `cm-0` in
    /// `maps` holds `version`; how long that took.
    async fn applied(
        &self,
        before: &str,
        after: &str,
        path: &str,
        version: usize,
        maps: &Api<k8s_openapi::api::core::v1::ConfigMap>,
    ) -> anyhow::Result<Duration> {
        let url = &self.url;
        let body = serde_json::to_vec(&serde_json::json!({
            "ref": "refs/heads/main", "before": before, "after": after,
            "commits": [{"id": after, "added": [], "removed": [], "modified": [path]}],
            "repository": {"full_name": "bench/repo", "clone_url": url, "html_url": url},
        }))?;
        let sent = Instant::now();
        let status = self
            .client
            .post(format!("{}/hooks/gitea", self.base))
            .header("content-type", "application/json")
            .header("x-gitea-event", "push")
            .header("x-gitea-delivery", format!("bench-{after}"))
            .header(
                "x-gitea-signature",
                pushsync_testkit::sign::gitea_signature(SECRET, &body),
            )
            .body(body)
            .send()
            .await
            .context("posting the push")?
            .status();
        anyhow::ensure!(status == 202, "the receiver answered {status}");
        let want = version.to_string();
        loop {
            if let Ok(cm) = maps.get("cm-0").await
                && cm
                    .data
                    .as_ref()
                    .is_some_and(|d| d.get("version") == Some(&want))
            {
                return Ok(sent.elapsed());
            }
            anyhow::ensure!(
                sent.elapsed() < Duration::from_secs(30),
                "push {version} of {path} was not applied within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    sorted
        .get(((sorted.len().saturating_sub(1)) as f64 * q).round() as usize)
        .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
}

pub async fn run(sandbox_bin: &std::path::Path) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    println!();
    println!("pushsync bench: worker — {cores} cores");
    let inspect = TestBroker::connect().await;
    let topology = unique_topology();
    let mut amqp = AmqpConfig::new(secrecy::SecretString::from(amqp_url()), "pushsync-bench");
    amqp.topology = topology.clone();
    let broker = Broker::amqp(amqp.clone());
    broker.wait_ready(Duration::from_secs(10)).await;

    let sandbox = Sandbox::start_with(pushsync_sandbox::SandboxConfig {
        controller_delay: Duration::from_millis(50),
        ..Default::default()
    })
    .await?;
    crate::scale::install(&sandbox).await?;
    let repo = GitRepo::init();
    repo.write("apps/small/cms.yaml", &configmaps(10, 0));
    repo.write("apps/large/cms.yaml", &configmaps(100, 0));
    repo.commit("initial");
    let daemon = GitDaemon::serve_repo(&repo);
    let url = daemon.url_of(&repo);
    let apps: Api<Application> = Api::namespaced(sandbox.client(), "default");
    apps.create(
        &PostParams::default(),
        &application("small", &url, "apps/small"),
    )
    .await?;

    let stop = CancellationToken::new();
    let index = Index::watch(
        sandbox.client(),
        &pushsync_worker::index::Namespaces::All,
        stop.clone(),
    );
    index.ready().await;
    let cache = tempfile::tempdir()?;
    let git = GitCache::new(cache.path(), Duration::from_secs(30))
        .with_policy(pushsync_worker::git::RemotePolicy::permissive());
    let ctx = SyncContext {
        health_timeout: Duration::from_secs(30),
        health_poll: Duration::from_millis(10),
        ..SyncContext::new(
            git.clone(),
            Cluster::new(sandbox.client()),
            // As a worker reads them: from memory (its watch), not per sync.
            pushsync_worker::tenancy::Projects::fixed(
                "default",
                vec![pushsync_api::Project::namespaced(
                    "default",
                    pushsync_api::DEFAULT_PROJECT,
                    pushsync_api::ProjectSpec::unrestricted(),
                )],
            ),
        )
    };
    let shared = Shared {
        broker: broker.clone(),
        topology: topology.clone(),
        client: sandbox.client(),
        index: index.clone(),
        git,
        leases: Leases::new(
            sandbox.client(),
            "default",
            "bench",
            Duration::from_secs(15),
        ),
        metrics: Metrics::new()?,
        leadership: Leadership::default(),
    };
    pushsync_worker::loops::spawn(
        &shared,
        ctx.clone(),
        Settings {
            dispatch_prefetch: 32,
            sync: SyncSettings {
                lock_poll: Duration::from_millis(100),
                ..SyncSettings::default()
            },
            poll: None,
        },
        &stop,
    );

    let listener = TcpListener::bind("127.0.0.1:0")?;
    let base = format!("http://{}", listener.local_addr()?);
    let secrets = SecretSources {
        gitea: SecretSource::inline("PUSHSYNC_GITEA_SECRET", SECRET),
        ..SecretSources::default()
    };
    let mut config = Config::new(QueueConfig::Amqp(amqp), secrets);
    config.http.workers = 1;
    tokio::spawn(pushsync_receiver::run(config, listener, stop.clone()));

    // Push → applied, 20 times, once the receiver has its broker channel.
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
    {
        anyhow::ensure!(Instant::now() < deadline, "the receiver never became ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pushes = Pushes {
        client,
        base,
        url: url.clone(),
    };
    let small: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(sandbox.client(), "small");
    let mut before = repo.head();
    let mut latencies = Vec::new();
    for version in 1..=20 {
        repo.write("apps/small/cms.yaml", &configmaps(10, version));
        let after = repo.commit(&format!("v{version}"));
        let took = pushes
            .applied(&before, &after, "apps/small/cms.yaml", version, &small)
            .await?;
        latencies.push(took);
        before = after;
    }
    latencies.sort();
    println!(
        "  push → applied (10 resources, signed webhook → receiver → RabbitMQ → worker → API): p50 {:.1} ms, p99 {:.1} ms over {} pushes",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.len()
    );

    // The same while the previous push's rollout is still waited for: a
    // Deployment that never becomes available beside the ConfigMaps, so
    // every sync waits for health (30 s) until the next push supersedes it.
    apps.create(
        &PostParams::default(),
        &application("rollout", &url, "apps/rollout"),
    )
    .await?;
    let rolling: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(sandbox.client(), "rollout");
    let mut latencies = Vec::new();
    for version in 1..=21 {
        repo.write("apps/rollout/all.yaml", &rollout(version));
        let after = repo.commit(&format!("rollout v{version}"));
        let took = pushes
            .applied(&before, &after, "apps/rollout/all.yaml", version, &rolling)
            .await?;
        // The first push finds nothing rolling out: not counted.
        if version > 1 {
            latencies.push(took);
        }
        before = after;
    }
    latencies.sort();
    println!(
        "  push → applied while the previous push's rollout is waited for (superseded at once): p50 {:.1} ms, p99 {:.1} ms over {} pushes (beside the idle figure above)",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.len()
    );

    // 100 resources: one sync against kubectl apply --server-side of the same file.
    let large = application("large", &url, "apps/large");
    let started = Instant::now();
    let outcome = sync(&ctx, &large)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let sync_time = started.elapsed();
    anyhow::ensure!(
        outcome.phase == pushsync_api::OperationPhase::Succeeded,
        "{}",
        outcome.message
    );
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("cms.yaml");
    std::fs::write(&file, configmaps(100, 0))?;
    let _ = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(sandbox.kubeconfig())
        .args(["create", "namespace", "kubectl"])
        .output()
        .await;
    let started = Instant::now();
    let output = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(sandbox.kubeconfig())
        .args(["apply", "--server-side", "-n", "kubectl", "-f"])
        .arg(&file)
        .output()
        .await?;
    let kubectl_time = started.elapsed();
    anyhow::ensure!(
        output.status.success(),
        "kubectl: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    println!(
        "  100-resource sync: {:.0} ms; kubectl apply --server-side of the same file: {:.0} ms (ratio {:.2}, target ≤ 1.0)",
        sync_time.as_secs_f64() * 1000.0,
        kubectl_time.as_secs_f64() * 1000.0,
        sync_time.as_secs_f64() / kubectl_time.as_secs_f64()
    );

    // A no-op re-sync of the same 100 resources.
    // The Application as its status write left it.
    let mut large_synced = large.clone();
    let patch = pushsync_worker::status::status_patch(&large, &outcome);
    large_synced.status = Some(serde_json::from_value(patch["status"].clone())?);
    let mut cpu = Vec::new();
    let mut wall = Vec::new();
    for _ in 0..5 {
        let (cpu_before, started) = (crate::cpu::own_seconds(), Instant::now());
        sync(&ctx, &large_synced)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        wall.push(started.elapsed());
        cpu.push(Duration::from_secs_f64(
            crate::cpu::own_seconds() - cpu_before,
        ));
    }
    cpu.sort();
    wall.sort();
    println!(
        "  no-op re-sync of 100 resources (compare only: 100 reads + 100 dry-run applies, nothing written): {:.0} ms wall, {:.0} ms CPU (median of 5; CPU includes the in-process API sandbox serving it)",
        percentile(&wall, 0.5),
        percentile(&cpu, 0.5)
    );

    // The same, with the API server in its own process: the CPU is the worker's alone.
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig");
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    // Reaped on every path, an early `?` included.
    let server = pushsync_testkit::procs::Reaped(
        std::process::Command::new(sandbox_bin)
            .args([
                "--port",
                &port.to_string(),
                "--controller-delay-ms",
                "20",
                "--kubeconfig-out",
            ])
            .arg(&kubeconfig)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", sandbox_bin.display()))?,
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !kubeconfig.exists() || std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the sandbox process never came up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&kubeconfig)?,
        &Default::default(),
    )
    .await?;
    let client = kube::Client::try_from(config)?;
    let remote = SyncContext {
        cluster: Cluster::new(client),
        ..ctx.clone()
    };
    let outcome = sync(&remote, &large)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    anyhow::ensure!(
        outcome.phase == pushsync_api::OperationPhase::Succeeded,
        "{}",
        outcome.message
    );
    let mut synced = large.clone();
    let patch = pushsync_worker::status::status_patch(&large, &outcome);
    synced.status = Some(serde_json::from_value(patch["status"].clone())?);
    // /proc counts CPU in 10 ms ticks: measure 40 re-syncs and divide.
    let runs = 40;
    let measure = |app: Application| {
        let remote = remote.clone();
        async move {
            let mut wall = Vec::new();
            let cpu_before = crate::cpu::own_seconds();
            let mut last = None;
            for _ in 0..runs {
                let started = Instant::now();
                let outcome = sync(&remote, &app)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                anyhow::ensure!(
                    outcome.phase == pushsync_api::OperationPhase::Refreshed,
                    "{}",
                    outcome.message
                );
                wall.push(started.elapsed());
                last = Some(outcome);
            }
            let cpu_ms = (crate::cpu::own_seconds() - cpu_before) * 1000.0 / f64::from(runs);
            wall.sort();
            anyhow::Ok((percentile(&wall, 0.5), cpu_ms, last))
        }
    };
    // Right after a sync applied: every resource compared (read + dry run).
    let (compare_wall, compare_cpu, last) = measure(synced.clone()).await?;
    // Steady state: compared in sync before, nothing changed since — one
    // list per kind and namespace, no dry runs.
    let mut steady = synced.clone();
    if let Some(outcome) = last {
        let patch = pushsync_worker::status::status_patch(&synced, &outcome);
        steady.status = Some(serde_json::from_value(patch["status"].clone())?);
    }
    let (steady_wall, steady_cpu, _) = measure(steady).await?;
    drop(server);
    println!(
        "  no-op re-sync, API server in its own process (worker CPU, mean of {runs}): after an apply (100 reads + 100 dry runs) {compare_wall:.1} ms wall, {compare_cpu:.1} ms CPU; steady state (1 list, resourceVersions unchanged) {steady_wall:.1} ms wall, {steady_cpu:.1} ms CPU"
    );

    stop.cancel();
    broker.close().await;
    inspect.delete_topology(&topology).await;
    Ok(())
}
