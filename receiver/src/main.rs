//! `pushsync-receiver`: config → listener → serve → drain on SIGTERM.

use std::net::TcpListener;
use std::process::ExitCode;

use clap::Parser;
use pushsync_receiver::config::Args;
use pushsync_receiver::{QueueConfig, run};
use pushsync_service::{EXIT_USAGE, error_chain, init_logging};
use tokio_util::sync::CancellationToken;

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
    let runtime = match pushsync_service::runtime() {
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
            broker = %pushsync_proto::redact_url(secrecy::ExposeSecret::expose_secret(&amqp.uri)),
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
    tokio::spawn(pushsync_service::cancel_on_signal(shutdown.clone()));
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
