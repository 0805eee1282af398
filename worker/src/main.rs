//! `pushsync-worker`: config → broker, cluster, Application index → dispatch
//! and sync loops → drain on SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use pushsync_broker::{AmqpConfig, Broker};
use pushsync_proto::Topology;
use pushsync_worker::apply::Cluster;
use pushsync_worker::assemble::Parts;
use pushsync_worker::git::{Credentials, GitCache};
use pushsync_worker::index::ClusterIndex;
use pushsync_worker::lease::Leases;
use pushsync_worker::metrics::Metrics;
use pushsync_worker::poll::PollSettings;
use pushsync_worker::sync::SyncContext;
use pushsync_worker::syncer::{RetryPolicy, SyncSettings};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// `EX_USAGE`: the configuration is unusable.
const EXIT_USAGE: u8 = 64;

/// Command line and environment of `pushsync-worker`. The cluster is the one
/// of `KUBECONFIG` (or the in-cluster service account).
#[derive(Debug, Parser)]
#[command(name = "pushsync-worker", version, about, long_about = None)]
struct Args {
    /// RabbitMQ URI, e.g. amqp://user:pass@rabbitmq:5672/%2f.
    #[arg(long, env = "PUSHSYNC_AMQP_URL", hide_env_values = true)]
    amqp_url: Option<String>,
    /// File holding the RabbitMQ URI (alternative to --amqp-url).
    #[arg(long, env = "PUSHSYNC_AMQP_URL_FILE")]
    amqp_url_file: Option<PathBuf>,
    /// Prefix of exchange and queue names; every part of one deployment must agree.
    #[arg(long, env = "PUSHSYNC_QUEUE_PREFIX", default_value = Topology::DEFAULT_PREFIX)]
    queue_prefix: String,
    /// Push events handled at once (broker prefetch of the dispatcher).
    #[arg(long, env = "PUSHSYNC_PREFETCH", default_value_t = 32)]
    prefetch: u16,
    /// Syncs running at once in this worker.
    #[arg(long, env = "PUSHSYNC_MAX_SYNCS", default_value_t = 4)]
    max_syncs: u16,
    /// Sync jobs held at once: running, waiting for another worker's sync of
    /// the same Application, or waiting to retry (broker prefetch; default
    /// eight per sync slot).
    #[arg(long, env = "PUSHSYNC_SYNC_PREFETCH")]
    sync_prefetch: Option<u16>,
    /// Git remote operations (ls-remote, fetch) at once in this worker.
    #[arg(long, env = "PUSHSYNC_MAX_GIT_FETCHES", default_value_t = 4)]
    max_git_fetches: u16,
    /// Namespace of the Leases that keep one sync per Application and one poller.
    #[arg(long, env = "PUSHSYNC_LEASE_NAMESPACE", default_value = "pushsync")]
    lease_namespace: String,
    /// How long a Lease holds without renewal (a dead worker's syncs resume
    /// elsewhere after this).
    #[arg(long, env = "PUSHSYNC_LEASE_DURATION", default_value = "15s", value_parser = duration)]
    lease_duration: Duration,
    /// How often a job waiting for another worker's sync of its Application checks.
    #[arg(long, env = "PUSHSYNC_LOCK_POLL", default_value = "1s", value_parser = duration)]
    lock_poll: Duration,
    /// This worker's name in Leases (default: host name and process id).
    #[arg(long, env = "PUSHSYNC_IDENTITY")]
    identity: Option<String>,
    /// On SIGTERM, how long running syncs may take to finish before they are
    /// handed back to the queue.
    #[arg(long, env = "PUSHSYNC_SHUTDOWN_GRACE", default_value = "30s", value_parser = duration)]
    shutdown_grace: Duration,
    /// Attempts per sync job when an Application names no `syncPolicy.retry`.
    #[arg(long, env = "PUSHSYNC_RETRY_LIMIT", default_value_t = 5)]
    retry_limit: u32,
    /// First retry delay when an Application names none (doubling each time).
    #[arg(long, env = "PUSHSYNC_RETRY_BACKOFF", default_value = "5s", value_parser = duration)]
    retry_backoff: Duration,
    /// Longest retry delay when an Application names none.
    #[arg(long, env = "PUSHSYNC_RETRY_MAX_BACKOFF", default_value = "3m", value_parser = duration)]
    retry_max_backoff: Duration,
    /// Only watch Applications in this namespace (default: all namespaces).
    #[arg(long, env = "PUSHSYNC_WATCH_NAMESPACE")]
    watch_namespace: Option<String>,
    /// Directory of the git cache.
    #[arg(
        long,
        env = "PUSHSYNC_GIT_CACHE",
        default_value = "/tmp/pushsync-git-cache"
    )]
    git_cache: PathBuf,
    /// YAML list of git credentials (`url` prefix, `username`,
    /// `passwordFile` or `sshPrivateKeyFile`; the files are mounted Secrets).
    #[arg(long, env = "PUSHSYNC_GIT_CREDENTIALS")]
    git_credentials: Option<PathBuf>,
    /// Seconds a git fetch may take.
    #[arg(long, env = "PUSHSYNC_GIT_TIMEOUT_SECONDS", default_value_t = 120)]
    git_timeout_seconds: u64,
    /// Seconds a wave or hook may take to become healthy.
    #[arg(long, env = "PUSHSYNC_HEALTH_TIMEOUT_SECONDS", default_value_t = 300)]
    health_timeout_seconds: u64,
    /// The kubectl binary (Kustomize sources).
    #[arg(long, env = "PUSHSYNC_KUBECTL", default_value = "kubectl")]
    kubectl: PathBuf,
    /// The helm 3 binary (Helm sources).
    #[arg(long, env = "PUSHSYNC_HELM", default_value = "helm")]
    helm: PathBuf,
    /// Address of `/metrics` and `/healthz`.
    #[arg(long, env = "PUSHSYNC_METRICS_LISTEN", default_value = "0.0.0.0:9090")]
    metrics_listen: String,
    /// Time between fallback polls of every repository (one worker polls at
    /// a time); `0s` turns polling off.
    #[arg(long, env = "PUSHSYNC_POLL_INTERVAL", default_value = "10m", value_parser = duration)]
    poll_interval: Duration,
    /// Applications not compared with the cluster for this long are
    /// refreshed by the poll, so drift is reported even without selfHeal.
    #[arg(long, env = "PUSHSYNC_DRIFT_INTERVAL", default_value = "30m", value_parser = duration)]
    drift_interval: Duration,
    /// Name of the poller's leader-election Lease.
    #[arg(long, env = "PUSHSYNC_POLL_LEASE", default_value = "pushsync-poller")]
    poll_lease: String,
    /// Log as JSON lines (`json`) or human-readable text (`text`).
    #[arg(long, env = "PUSHSYNC_LOG_FORMAT", default_value = "json")]
    log_format: String,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Ask for a sync of one Application now, through the queue, and exit.
    Request {
        /// The Application, as NAMESPACE/NAME.
        application: String,
        /// Only compare with Git and apply as the sync policy says, instead
        /// of a sync that applies even without automated sync.
        #[arg(long)]
        refresh: bool,
    },
}

fn duration(text: &str) -> Result<Duration, String> {
    pushsync_worker::syncer::parse_duration(text)
        .ok_or_else(|| format!("{text:?} is not a duration (e.g. 500ms, 15s, 10m, 1h30m)"))
}

/// `host-pid`: unique among live workers, readable in Leases.
fn default_identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".to_owned());
    format!("{host}-{}", std::process::id())
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging(&args.log_format);
    let uri = match (&args.amqp_url, &args.amqp_url_file) {
        (Some(uri), None) => uri.clone(),
        (None, Some(path)) => match std::fs::read_to_string(path) {
            Ok(uri) => uri.trim().to_owned(),
            Err(error) => {
                eprintln!(
                    "pushsync-worker: invalid configuration: cannot read PUSHSYNC_AMQP_URL_FILE {}: {error}",
                    path.display()
                );
                return ExitCode::from(EXIT_USAGE);
            }
        },
        _ => {
            eprintln!(
                "pushsync-worker: invalid configuration: set exactly one of PUSHSYNC_AMQP_URL and PUSHSYNC_AMQP_URL_FILE"
            );
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if args.prefetch == 0
        || args.sync_prefetch == Some(0)
        || args.max_syncs == 0
        || args.max_git_fetches == 0
    {
        eprintln!(
            "pushsync-worker: invalid configuration: PUSHSYNC_PREFETCH, PUSHSYNC_SYNC_PREFETCH, PUSHSYNC_MAX_SYNCS and PUSHSYNC_MAX_GIT_FETCHES must be greater than zero"
        );
        return ExitCode::from(EXIT_USAGE);
    }
    if let Some(Command::Request {
        application,
        refresh,
    }) = &args.command
    {
        let Some((namespace, name)) = application
            .split_once('/')
            .filter(|(n, a)| !n.is_empty() && !a.is_empty() && !a.contains('/'))
        else {
            eprintln!("pushsync-worker request: {application:?} is not NAMESPACE/NAME");
            return ExitCode::from(EXIT_USAGE);
        };
        let app = pushsync_proto::AppRef {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        };
        return match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime.block_on(request(&args, uri, app, *refresh)),
            Err(error) => {
                eprintln!("pushsync-worker: cannot start the async runtime: {error}");
                ExitCode::FAILURE
            }
        };
    }
    let credentials = match &args.git_credentials {
        None => Credentials::default(),
        Some(path) => match Credentials::load(path) {
            Ok(credentials) => credentials,
            Err(error) => {
                eprintln!("pushsync-worker: invalid configuration: {error}");
                return ExitCode::from(EXIT_USAGE);
            }
        },
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("pushsync-worker: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(args, uri, credentials))
}

/// `pushsync-worker request`: one manual job, confirmed by the broker.
async fn request(args: &Args, uri: String, app: pushsync_proto::AppRef, refresh: bool) -> ExitCode {
    let topology = Topology::new(args.queue_prefix.clone());
    let mut amqp = AmqpConfig::new(SecretString::from(uri), "pushsync-worker-request");
    amqp.topology = topology.clone();
    let broker = Broker::amqp(amqp);
    if !broker.wait_ready(Duration::from_secs(15)).await {
        eprintln!("pushsync-worker request: the message broker is not reachable");
        return ExitCode::FAILURE;
    }
    let trigger = pushsync_proto::SyncTrigger::Manual {
        requested_by: Some(format!("cli@{}", default_identity())),
        refresh_only: refresh,
    };
    let id = format!("manual-{}", jiff::Timestamp::now().as_millisecond());
    let Some(job) = pushsync_worker::pipeline::job(app.clone(), trigger, &id, &topology) else {
        eprintln!("pushsync-worker request: the job could not be encoded");
        return ExitCode::FAILURE;
    };
    let published = broker.publish_all(&[job]).await;
    broker.close().await;
    match published {
        Ok(()) => {
            println!(
                "queued a {} of {app}",
                if refresh { "refresh" } else { "sync" }
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("pushsync-worker request: publishing failed: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args, uri: String, credentials: Credentials) -> ExitCode {
    let client = match kube::Client::try_default().await {
        Ok(client) => client,
        Err(error) => {
            eprintln!(
                "pushsync-worker: invalid configuration: no Kubernetes cluster (KUBECONFIG or in-cluster): {error}"
            );
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let topology = Topology::new(args.queue_prefix.clone());
    let mut amqp = AmqpConfig::new(SecretString::from(uri), "pushsync-worker");
    amqp.topology = topology.clone();
    let broker = Broker::amqp(amqp);

    let stop = CancellationToken::new();
    tokio::spawn(wait_for_signal(stop.clone()));
    let metrics = match Metrics::new() {
        Ok(metrics) => metrics,
        Err(error) => {
            eprintln!("pushsync-worker: registering metrics failed: {error}");
            return ExitCode::FAILURE;
        }
    };
    match tokio::net::TcpListener::bind(&args.metrics_listen).await {
        Ok(listener) => {
            tokio::spawn(metrics.clone().serve(listener, stop.clone()));
        }
        Err(error) => {
            eprintln!(
                "pushsync-worker: invalid configuration: cannot listen on PUSHSYNC_METRICS_LISTEN {}: {error}",
                args.metrics_listen
            );
            return ExitCode::from(EXIT_USAGE);
        }
    }
    // Leases are how workers agree; without their namespace nothing syncs.
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> =
        kube::Api::all(client.clone());
    match namespaces.get_opt(&args.lease_namespace).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            eprintln!(
                "pushsync-worker: invalid configuration: PUSHSYNC_LEASE_NAMESPACE {:?} does not exist (create it, or point the variable at the worker's own namespace)",
                args.lease_namespace
            );
            return ExitCode::from(EXIT_USAGE);
        }
        // Not allowed to read namespaces, or the API is briefly down: the
        // Lease writes will say more if it is really missing.
        Err(error) => {
            tracing::warn!(namespace = %args.lease_namespace, error = %error, "could not check the lease namespace")
        }
    }
    let index = ClusterIndex::start(
        client.clone(),
        args.watch_namespace.as_deref(),
        stop.clone(),
    );
    tokio::select! {
        () = stop.cancelled() => return ExitCode::SUCCESS,
        ready = index.ready() => if !ready { return ExitCode::FAILURE },
    }
    tracing::info!(
        applications = index.applications().len(),
        "Application index ready"
    );

    let ctx = SyncContext {
        kubectl: args.kubectl.clone(),
        helm: args.helm.clone(),
        health_timeout: Duration::from_secs(args.health_timeout_seconds),
        ..SyncContext::new(
            GitCache::new(
                &args.git_cache,
                Duration::from_secs(args.git_timeout_seconds),
            ),
            Cluster::new(client.clone()),
        )
    };
    let ctx = SyncContext {
        git: ctx
            .git
            .clone()
            .observe_fetches(metrics.fetch_observer())
            .with_remote_slots(usize::from(args.max_git_fetches))
            .with_credentials(credentials),
        ..ctx
    };
    let identity = args.identity.clone().unwrap_or_else(default_identity);
    let leases = Leases::new(
        client.clone(),
        &args.lease_namespace,
        identity.clone(),
        args.lease_duration,
    );
    let settings = SyncSettings {
        max_syncs: usize::from(args.max_syncs),
        prefetch: args
            .sync_prefetch
            .unwrap_or_else(|| args.max_syncs.saturating_mul(8)),
        lock_poll: args.lock_poll,
        retry: RetryPolicy {
            limit: args.retry_limit.max(1),
            first: args.retry_backoff,
            factor: 2,
            max: args.retry_max_backoff,
        },
        drain: args.shutdown_grace,
    };
    let handles = Parts {
        broker: broker.clone(),
        topology,
        client,
        ctx,
        index,
        leases,
        metrics,
        dispatch_prefetch: args.prefetch,
        sync: settings,
        poll: Some(PollSettings {
            interval: args.poll_interval,
            lease: args.poll_lease.clone(),
            drift_interval: args.drift_interval,
            tick: (args.lease_duration / 3)
                .clamp(Duration::from_millis(200), Duration::from_secs(5)),
            ..PollSettings::default()
        }),
    }
    .spawn(&stop);
    tracing::info!("worker running");
    stop.cancelled().await;
    // In-flight work stops at its next await; unacknowledged messages are redelivered.
    futures_util::future::join_all(handles).await;
    broker.close().await;
    tracing::info!("worker stopped");
    ExitCode::SUCCESS
}

async fn wait_for_signal(shutdown: CancellationToken) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
    shutdown.cancel();
}

fn init_logging(format: &str) {
    let filter = EnvFilter::try_from_env("PUSHSYNC_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "text" {
        builder.init();
    } else {
        builder.json().flatten_event(true).init();
    }
}
