//! `pushsync-receiver`: config → listener → serve → drain on SIGTERM.

use std::net::TcpListener;
use std::process::ExitCode;

use clap::Parser;
use pushsync_receiver::config::{Args, LogFormat};
use pushsync_receiver::{QueueConfig, run};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// `EX_USAGE`: the configuration is unusable.
const EXIT_USAGE: u8 = 64;

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging(args.log_format);
    let listen = args.listen;
    let config = match args.into_config() {
        Ok(config) => config,
        Err(error) => {
            eprintln!(
                "pushsync-receiver: invalid configuration: {}",
                error_chain(&error)
            );
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("pushsync-receiver: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config, listen)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %error_chain(error.as_ref()), "receiver failed");
            ExitCode::FAILURE
        }
    }
}

async fn serve(
    config: pushsync_receiver::Config,
    listen: std::net::SocketAddr,
) -> anyhow::Result<()> {
    let listener =
        TcpListener::bind(listen).map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let local = listener.local_addr()?;
    match &config.queue {
        QueueConfig::Amqp(amqp) => tracing::info!(
            listen = %local,
            broker = %pushsync_broker::redact_uri(secrecy::ExposeSecret::expose_secret(&amqp.uri)),
            "receiver starting"
        ),
        QueueConfig::Memory(queue) => {
            tracing::warn!(
                listen = %local,
                "receiver starting with an in-memory queue: accepted events are lost when this process exits"
            );
            tokio::spawn(log_queued_events(queue.clone()));
        }
    }
    let shutdown = CancellationToken::new();
    tokio::spawn(wait_for_signal(shutdown.clone()));
    run(config, listener, shutdown).await?;
    Ok(())
}

/// With the in-memory queue no worker is attached: show each accepted event
/// so a local trial can see what a worker would receive.
async fn log_queued_events(queue: pushsync_broker::MemoryQueue) {
    loop {
        let message = queue.pop().await;
        match pushsync_proto::Message::decode(&message.body) {
            Ok(pushsync_proto::Message::PushV1(event)) => tracing::info!(
                delivery_id = %event.delivery_id,
                repository = %event.repository.id,
                git_ref = %event.git_ref.full,
                after = event.after.as_deref().unwrap_or("-"),
                changed_paths = ?event.changed_paths.paths,
                paths_incomplete = event.changed_paths.incomplete,
                "event queued (in-memory queue: no worker attached)"
            ),
            Ok(other) => tracing::info!(schema = other.schema(), "message queued"),
            Err(error) => tracing::warn!(error = %error, "undecodable message queued"),
        }
    }
}

async fn wait_for_signal(shutdown: CancellationToken) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(error = %error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
    shutdown.cancel();
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("PUSHSYNC_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
        LogFormat::Text => builder.init(),
    }
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
