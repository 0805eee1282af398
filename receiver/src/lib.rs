//! The pushsync webhook receiver.
//!
//! Verifies push webhooks from GitHub, GitLab, Gitea/Forgejo/Gogs and
//! Bitbucket, normalises them into [`pushsync_proto::PushEvent`]s and publishes
//! them durably; see [`run`].
//!
//! Invariants:
//! - A webhook is answered 2xx only after the queue confirmed every event it
//!   carries (see [`pushsync_broker::Broker::publish_all`]); otherwise 503 with
//!   `Retry-After`, so the forge redelivers.
//! - Nothing is parsed, logged from the body or published before the signature
//!   or token checked out.
//! - What an unauthenticated client can make the receiver hold is bounded:
//!   request heads by a timeout, each body by a size limit and a deadline,
//!   all bodies together by a byte budget (503 when full), and connections
//!   by a limit (see [`config::HttpConfig`]).
//! - The receiver holds webhook secrets and publish rights only: no cluster
//!   credentials, no Kubernetes client.

mod budget;
pub mod config;
mod dedup;
mod error;
pub mod metrics;
pub mod providers;
mod routes;
pub mod secrets;

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::http::KeepAlive;
use actix_web::{App, HttpServer, web};
use pushsync_broker::{Broker, ConnectionState};
use tokio_util::sync::CancellationToken;

pub use config::{Config, QueueConfig};
pub use error::{Error, StartError};

use crate::metrics::Metrics;
use crate::routes::State;
use crate::secrets::SecretStore;

/// Serve webhooks on `listener` until `shutdown` is cancelled, then stop
/// accepting, let in-flight requests finish (up to the configured grace),
/// and close the broker connection.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), StartError> {
    let metrics = Metrics::new()?;
    let secrets = SecretStore::load(config.secrets.clone())?;
    let topology = config.queue.topology();
    let broker = match config.queue {
        QueueConfig::Amqp(amqp) => Broker::amqp(amqp),
        QueueConfig::Memory(queue) => Broker::memory(queue),
    };
    let background = CancellationToken::new();
    tokio::spawn(follow_broker_state(
        broker.clone(),
        metrics.clone(),
        background.clone(),
    ));
    if let Some(interval) = config
        .secret_reload_interval
        .filter(|_| secrets.has_files())
    {
        tokio::spawn(reload_secrets(
            secrets.clone(),
            interval,
            metrics.clone(),
            background.clone(),
        ));
    }

    let body_budget = budget::BodyBudget::new(
        config.http.max_in_flight_bytes,
        metrics.in_flight_body_bytes.clone(),
        &metrics.in_flight_body_limit_bytes,
        metrics.body_budget_refusals.clone(),
    );
    let state = web::Data::new(State {
        broker: broker.clone(),
        secrets,
        dedup: dedup::Dedup::new(config.dedup_window, config.dedup_capacity),
        metrics,
        topology,
        max_body_bytes: config.http.max_body_bytes,
        body_budget,
        request_deadline: config.http.request_deadline,
        retry_after: config.http.retry_after,
        timestamp_tolerance: config.gitlab_timestamp_tolerance,
        shutting_down: AtomicBool::new(false),
    });
    let app_state = state.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(app_state.clone())
            .configure(routes::configure)
    })
    .workers(config.http.workers)
    // actix-web counts connections per worker.
    .max_connections(config.http.max_connections_per_worker())
    .client_request_timeout(config.http.header_timeout)
    .client_disconnect_timeout(config.http.disconnect_timeout)
    // One request per connection. actix-web times out only the *first*
    // request head of a connection: on a kept-alive one, a client can trickle
    // the next head forever, holding the connection (and, with the limit
    // above, eventually every connection). Webhooks are single requests, so
    // keep-alive saves nothing worth that; an ingress reconnects per request
    // (and no longer races our idle timeout when reusing a connection).
    .keep_alive(KeepAlive::Disabled)
    // Answers are small and latency matters: do not wait to coalesce them.
    .tcp_nodelay(true)
    .disable_signals()
    .shutdown_timeout(config.http.shutdown_grace.as_secs())
    .listen(listener)
    .map_err(StartError::Http)?
    .run();
    let handle = server.handle();
    let stopper = tokio::spawn({
        let state = state.clone();
        let shutdown = shutdown.clone();
        async move {
            shutdown.cancelled().await;
            tracing::info!("shutting down: no new connections, finishing in-flight requests");
            state.shutting_down.store(true, Ordering::Relaxed);
            handle.stop(true).await;
        }
    });
    let served = server.await;
    stopper.abort();
    background.cancel();
    broker.close().await;
    tracing::info!("receiver stopped");
    served.map_err(StartError::Http)
}

async fn follow_broker_state(broker: Broker, metrics: Metrics, stop: CancellationToken) {
    let mut state = broker.state();
    let mut counted = 0;
    loop {
        let connected = *state.borrow_and_update() == ConnectionState::Connected;
        metrics.broker_connected.set(i64::from(connected));
        // Count from the broker's own tally: state changes can coalesce.
        let connects = broker.connects();
        metrics
            .broker_connections
            .inc_by(connects.saturating_sub(counted));
        counted = counted.max(connects);
        tokio::select! {
            () = stop.cancelled() => break,
            changed = state.changed() => if changed.is_err() { break },
        }
    }
    metrics.broker_connected.set(0);
}

async fn reload_secrets(
    secrets: SecretStore,
    interval: Duration,
    metrics: Metrics,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.tick().await;
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = ticker.tick() => {}
        }
        match secrets.reload() {
            Ok(()) => metrics.secret_reloads.with_label_values(&["ok"]).inc(),
            Err(errors) => {
                metrics.secret_reloads.with_label_values(&["error"]).inc();
                for error in errors {
                    tracing::warn!(error = %pushsync_service::error_chain(&error), "re-reading a webhook secret file failed; that forge keeps its previous secrets");
                }
            }
        }
    }
}
