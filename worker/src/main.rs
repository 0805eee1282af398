//! `pushsync-worker`: for now, consumes push events and logs them.
//!
//! This is the skeleton the worker issue builds on: it connects to RabbitMQ,
//! declares the shared topology, consumes the push-events queue with a bounded
//! prefetch, logs each event as structured JSON, acknowledges it, reconnects
//! with backoff when the broker goes away, and drains on SIGTERM. Dispatch,
//! git, rendering and apply come with the worker issue.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use pushsync_proto::{Message, Topology};
use secrecy::{ExposeSecret, SecretString};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// `EX_USAGE`: the configuration is unusable.
const EXIT_USAGE: u8 = 64;

/// Command line and environment of `pushsync-worker`.
#[derive(Debug, Parser)]
#[command(name = "pushsync-worker", version, about, long_about = None)]
struct Args {
    /// RabbitMQ URI, e.g. amqp://user:pass@rabbitmq:5672/%2f.
    #[arg(long, env = "PUSHSYNC_AMQP_URL", hide_env_values = true)]
    amqp_url: Option<String>,
    /// File holding the RabbitMQ URI (alternative to --amqp-url).
    #[arg(long, env = "PUSHSYNC_AMQP_URL_FILE")]
    amqp_url_file: Option<std::path::PathBuf>,
    /// Prefix of exchange and queue names; every part of one deployment must agree.
    #[arg(long, env = "PUSHSYNC_QUEUE_PREFIX", default_value = Topology::DEFAULT_PREFIX)]
    queue_prefix: String,
    /// Unacknowledged messages the broker may hand this worker at once.
    #[arg(long, env = "PUSHSYNC_PREFETCH", default_value_t = 32)]
    prefetch: u16,
    /// Log as JSON lines (`json`) or human-readable text (`text`).
    #[arg(long, env = "PUSHSYNC_LOG_FORMAT", default_value = "json")]
    log_format: String,
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
    if args.prefetch == 0 {
        eprintln!(
            "pushsync-worker: invalid configuration: PUSHSYNC_PREFETCH must be greater than zero"
        );
        return ExitCode::from(EXIT_USAGE);
    }
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
    let shutdown = CancellationToken::new();
    runtime.spawn(wait_for_signal(shutdown.clone()));
    runtime.block_on(consume(
        SecretString::from(uri),
        Topology::new(args.queue_prefix),
        args.prefetch,
        shutdown,
    ));
    ExitCode::SUCCESS
}

/// Consume push events until shut down, reconnecting with capped backoff.
async fn consume(
    uri: SecretString,
    topology: Topology,
    prefetch: u16,
    shutdown: CancellationToken,
) {
    let target = pushsync_broker::redact_uri(uri.expose_secret());
    let mut backoff = Duration::from_millis(100);
    while !shutdown.is_cancelled() {
        match consume_once(&uri, &topology, prefetch, &shutdown).await {
            Ok(()) => break,
            Err(error) => {
                tracing::warn!(broker = %target, error = %error, retry_in_ms = backoff.as_millis() as u64, "message broker connection failed")
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
    tracing::info!("worker stopped");
}

async fn consume_once(
    uri: &SecretString,
    topology: &Topology,
    prefetch: u16,
    shutdown: &CancellationToken,
) -> Result<(), lapin::Error> {
    let connection = Connection::connect(
        uri.expose_secret(),
        ConnectionProperties::default().with_connection_name("pushsync-worker".into()),
    )
    .await?;
    let channel = connection.create_channel().await?;
    pushsync_broker::declare_topology(&channel, topology).await?;
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    let queue = topology.push_events_queue();
    let mut deliveries = channel
        .basic_consume(
            queue.as_str().into(),
            "pushsync-worker".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    tracing::info!(queue = %queue, prefetch, "worker consuming push events");
    loop {
        let delivery = tokio::select! {
            () = shutdown.cancelled() => {
                let _ = channel.close(200, "shutting down".into()).await;
                let _ = connection.close(200, "shutting down".into()).await;
                return Ok(());
            }
            delivery = deliveries.next() => delivery,
        };
        let Some(delivery) = delivery else {
            return Err(lapin::ErrorKind::InvalidChannelState(
                lapin::ChannelState::Closed,
                "consumer stream ended",
            )
            .into());
        };
        let delivery = delivery?;
        match Message::decode(&delivery.data) {
            Ok(Message::PushV1(event)) => {
                tracing::info!(
                    delivery_id = %event.delivery_id,
                    provider = %event.provider,
                    repository = %event.repository.id,
                    git_ref = %event.git_ref.full,
                    after = event.after.as_deref().unwrap_or("-"),
                    changed_paths = event.changed_paths.paths.len(),
                    paths_incomplete = event.changed_paths.incomplete,
                    "push event received"
                );
                delivery.ack(BasicAckOptions::default()).await?;
            }
            Ok(other) => {
                tracing::warn!(
                    schema = other.schema(),
                    "unexpected message on the push-events queue; dead-lettering it"
                );
                delivery
                    .nack(BasicNackOptions {
                        requeue: false,
                        ..BasicNackOptions::default()
                    })
                    .await?;
            }
            Err(error) => {
                // Unknown schema (a newer producer) or garbage: never loop on it.
                tracing::warn!(error = %error, "undecodable message on the push-events queue; dead-lettering it");
                delivery
                    .nack(BasicNackOptions {
                        requeue: false,
                        ..BasicNackOptions::default()
                    })
                    .await?;
            }
        }
    }
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
