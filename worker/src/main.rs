//! `pushsync-worker`: config → broker, cluster, Application index → the
//! loops → drain on SIGTERM. `pushsync-worker request NS/NAME` publishes a
//! manual sync job and exits.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use pushsync_broker::{AmqpConfig, Broker, Declare, QueueBounds};
use pushsync_proto::{AppRef, SyncTrigger, Topology};
use pushsync_service::{EXIT_USAGE, error_chain, init_logging};
use pushsync_worker::apply::Cluster;
use pushsync_worker::config::{Args, Config, Mode, RunConfig};
use pushsync_worker::context::{Leadership, Shared, job};
use pushsync_worker::git::GitCache;
use pushsync_worker::http::Readiness;
use pushsync_worker::index::Index;
use pushsync_worker::lease::Leases;
use pushsync_worker::metrics::Metrics;
use pushsync_worker::render::Tools;
use pushsync_worker::sync::SyncContext;
use pushsync_worker::tenancy::Projects;
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging(args.log_format);
    let config = match args.into_config() {
        Ok(config) => config,
        Err(error) => {
            eprintln!(
                "pushsync-worker: invalid configuration: {}",
                error_chain(&error)
            );
            return ExitCode::from(EXIT_USAGE);
        }
    };
    for deprecation in &config.warnings {
        tracing::warn!("{deprecation}");
    }
    let runtime = match pushsync_service::runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("pushsync-worker: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let Config {
        amqp_uri,
        topology,
        queue_bounds,
        mode,
        ..
    } = config;
    match mode {
        Mode::Request {
            application,
            trigger,
        } => runtime.block_on(request(
            broker(amqp_uri, &topology, queue_bounds, "pushsync-worker-request"),
            topology,
            application,
            trigger,
        )),
        Mode::Run(run) => runtime.block_on(serve(amqp_uri, topology, queue_bounds, *run)),
    }
}

fn broker(uri: SecretString, topology: &Topology, bounds: QueueBounds, name: &str) -> Broker {
    let mut amqp = AmqpConfig::new(uri, name);
    amqp.topology = topology.clone();
    amqp.declare = Declare::Topology(bounds);
    Broker::amqp(amqp)
}

/// `pushsync-worker request`: one manual job, confirmed by the broker.
async fn request(
    broker: Broker,
    topology: Topology,
    app: AppRef,
    trigger: SyncTrigger,
) -> ExitCode {
    if !broker.wait_ready(Duration::from_secs(15)).await {
        eprintln!("pushsync-worker request: the message broker is not reachable");
        return ExitCode::FAILURE;
    }
    let what = match &trigger {
        SyncTrigger::Manual {
            rollback: true,
            revision: Some(revision),
            ..
        } => format!("rollback to {revision}"),
        SyncTrigger::Manual {
            revision: Some(revision),
            ..
        } => format!("sync of {revision}"),
        SyncTrigger::Manual {
            refresh_only: true, ..
        } => "refresh".to_owned(),
        _ => "sync".to_owned(),
    };
    let id = format!("manual-{}", jiff::Timestamp::now().as_millisecond());
    let Some(job) = job(app.clone(), trigger, &id, &topology) else {
        eprintln!("pushsync-worker request: the job could not be encoded");
        return ExitCode::FAILURE;
    };
    let published = broker.publish_all(&[job]).await;
    broker.close().await;
    match published {
        Ok(()) => {
            println!("queued a {what} of {app}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!(
                "pushsync-worker request: publishing failed: {}",
                error_chain(&error)
            );
            ExitCode::FAILURE
        }
    }
}

/// Run the worker until SIGTERM.
async fn serve(
    uri: SecretString,
    topology: Topology,
    bounds: QueueBounds,
    config: RunConfig,
) -> ExitCode {
    let kube_config = match kube::Config::infer().await {
        Ok(kube_config) => kube_config,
        Err(error) => {
            eprintln!(
                "pushsync-worker: invalid configuration: no Kubernetes cluster (KUBECONFIG or in-cluster): {}",
                error_chain(&error)
            );
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let cluster = match Cluster::from_config(kube_config) {
        Ok(cluster) => cluster,
        Err(error) => {
            eprintln!(
                "pushsync-worker: invalid configuration: cannot build a Kubernetes client: {}",
                error_chain(&error)
            );
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let client = cluster.client();
    let stop = CancellationToken::new();
    tokio::spawn(pushsync_service::cancel_on_signal(stop.clone()));
    let metrics = match Metrics::new() {
        Ok(metrics) => metrics,
        Err(error) => {
            eprintln!("pushsync-worker: registering metrics failed: {error}");
            return ExitCode::FAILURE;
        }
    };
    let ready = Readiness::default();
    match std::net::TcpListener::bind(&config.metrics_listen) {
        Ok(listener) => {
            let server = pushsync_worker::http::serve(
                listener,
                metrics.clone(),
                ready.clone(),
                stop.clone(),
            );
            tokio::spawn(async move {
                if let Err(error) = server.await {
                    tracing::error!(error = %error, "the metrics endpoint failed");
                }
            });
        }
        Err(error) => {
            eprintln!(
                "pushsync-worker: invalid configuration: cannot listen on PUSHSYNC_METRICS_LISTEN {}: {error}",
                config.metrics_listen
            );
            return ExitCode::from(EXIT_USAGE);
        }
    }
    if let Err(code) = check_lease_namespace(&client, &config.lease_namespace).await {
        return code;
    }
    let index = Index::watch(client.clone(), &config.application_namespaces, stop.clone());
    let projects = Projects::watch(client.clone(), &config.namespace, stop.clone());
    tokio::select! {
        () = stop.cancelled() => return ExitCode::SUCCESS,
        ready = index.ready() => if !ready { return ExitCode::FAILURE },
    }
    tracing::info!(
        applications = index.applications().len(),
        namespaces = %config.application_namespaces,
        projects_namespace = %config.namespace,
        "Application index ready"
    );
    // Before the first GitCache, whose constructor would set the defaults.
    pushsync_worker::git::socket_timeouts(config.git_socket);
    let mut git = GitCache::new(&config.git_cache, config.git_timeout)
        .observe_fetches(metrics.fetch_observer())
        .observe_cache(metrics.cache_observer())
        .with_remote_slots(config.max_git_fetches)
        .with_credentials(config.credentials)
        .with_policy(config.git_policy)
        .with_max_fetch_bytes(config.git_max_fetch_bytes);
    if let Some(budget) = config.git_cache_max_bytes {
        git = git.with_budget(budget);
    }
    let tools = Tools {
        kubectl: config.kubectl.unwrap_or_else(|| "kubectl".into()),
        helm: config.helm.unwrap_or_else(|| "helm".into()),
        ..Tools::default()
    };
    report_programs(&tools, &metrics).await;
    let ctx = SyncContext {
        tools,
        health_timeout: config.health_timeout,
        ..SyncContext::new(git.clone(), cluster, projects)
    };
    let broker = broker(uri, &topology, bounds, "pushsync-worker");
    let shared = Shared {
        broker: broker.clone(),
        topology,
        leases: Leases::new(
            client.clone(),
            &config.lease_namespace,
            config.identity,
            config.lease_duration,
        ),
        client,
        index,
        git,
        metrics,
        leadership: Leadership::default(),
    };
    let handles = pushsync_worker::loops::spawn(&shared, ctx, config.loops, &stop);
    ready.set(true);
    tracing::info!("worker running");
    stop.cancelled().await;
    ready.set(false);
    // In-flight work stops at its next await; unacknowledged messages are redelivered.
    futures_util::future::join_all(handles).await;
    broker.close().await;
    tracing::info!("worker stopped");
    ExitCode::SUCCESS
}

/// Log the renderers' versions and expose them as `pushsync_worker_tool_info`.
async fn report_programs(tools: &Tools, metrics: &Metrics) {
    use pushsync_worker::render::programs::version;
    for (tool, path, args) in [
        ("kubectl", &tools.kubectl, &["version", "--client"][..]),
        ("helm", &tools.helm, &["version", "--short"][..]),
    ] {
        match version(path, args).await {
            Some(version) => {
                tracing::info!(tool, path = %path.display(), version = %version, "renderer found");
                metrics
                    .tool_info
                    .with_label_values(&[tool, &version])
                    .set(1);
            }
            None => {
                tracing::warn!(tool, path = %path.display(), "renderer did not report a version; its sources will fail")
            }
        }
    }
}

/// Leases are how workers agree: without their namespace nothing syncs.
async fn check_lease_namespace(client: &kube::Client, namespace: &str) -> Result<(), ExitCode> {
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> =
        kube::Api::all(client.clone());
    match namespaces.get_opt(namespace).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => {
            eprintln!(
                "pushsync-worker: invalid configuration: PUSHSYNC_LEASE_NAMESPACE {namespace:?} does not exist (create it, or point the variable at the worker's own namespace)"
            );
            Err(ExitCode::from(EXIT_USAGE))
        }
        // Not allowed to read namespaces, or the API is briefly down: the
        // Lease writes will say more if it is really missing.
        Err(error) => {
            tracing::warn!(namespace, error = %error, "could not check the lease namespace");
            Ok(())
        }
    }
}
