//! The worker's Prometheus metrics and a minimal `/metrics` + `/healthz` endpoint.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry, TextEncoder,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Push events by result (`dispatched`, `undecodable`, `publish_failed`).
pub const PUSH_EVENTS_TOTAL: &str = "pushsync_worker_push_events_total";
/// Sync jobs published.
pub const SYNC_JOBS_PUBLISHED_TOTAL: &str = "pushsync_worker_sync_jobs_published_total";
/// Syncs by outcome (`succeeded`, `failed`, `transient`).
pub const SYNCS_TOTAL: &str = "pushsync_worker_syncs_total";
/// Duration of a sync, start to outcome.
pub const SYNC_DURATION_SECONDS: &str = "pushsync_worker_sync_duration_seconds";
/// Time from the receiver accepting a push to the start of its sync.
pub const PUSH_TO_SYNC_START_SECONDS: &str = "pushsync_worker_push_to_sync_start_seconds";
/// Resources by result of a sync (`synced`, `pruned`, `prune_skipped`).
pub const RESOURCES_TOTAL: &str = "pushsync_worker_resources_total";
/// Messages sent to the dead-letter queue.
pub const DEAD_LETTERED_TOTAL: &str = "pushsync_worker_dead_lettered_total";

/// Handles to every metric, in a registry of their own.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// See [`PUSH_EVENTS_TOTAL`].
    pub push_events: IntCounterVec,
    /// See [`SYNC_JOBS_PUBLISHED_TOTAL`].
    pub sync_jobs_published: IntCounter,
    /// See [`SYNCS_TOTAL`].
    pub syncs: IntCounterVec,
    /// See [`SYNC_DURATION_SECONDS`].
    pub sync_duration: Histogram,
    /// See [`PUSH_TO_SYNC_START_SECONDS`].
    pub push_to_sync_start: Histogram,
    /// See [`RESOURCES_TOTAL`].
    pub resources: IntCounterVec,
    /// See [`DEAD_LETTERED_TOTAL`].
    pub dead_lettered: IntCounter,
}

impl Metrics {
    /// Create and register every metric.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let push_events = IntCounterVec::new(
            Opts::new(PUSH_EVENTS_TOTAL, "Push events consumed, by result."),
            &["result"],
        )?;
        let sync_jobs_published = IntCounter::new(
            SYNC_JOBS_PUBLISHED_TOTAL,
            "Sync jobs published for affected Applications.",
        )?;
        let syncs = IntCounterVec::new(Opts::new(SYNCS_TOTAL, "Syncs by outcome."), &["outcome"])?;
        let buckets = vec![
            0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
        ];
        let sync_duration = Histogram::with_opts(
            HistogramOpts::new(SYNC_DURATION_SECONDS, "Duration of a sync.")
                .buckets(buckets.clone()),
        )?;
        let push_to_sync_start = Histogram::with_opts(
            HistogramOpts::new(
                PUSH_TO_SYNC_START_SECONDS,
                "Time from the receiver accepting a push to the start of its sync.",
            )
            .buckets(buckets),
        )?;
        let resources = IntCounterVec::new(
            Opts::new(RESOURCES_TOTAL, "Resources handled by syncs, by result."),
            &["result"],
        )?;
        let dead_lettered = IntCounter::new(
            DEAD_LETTERED_TOTAL,
            "Messages sent to the dead-letter queue.",
        )?;
        registry.register(Box::new(push_events.clone()))?;
        registry.register(Box::new(sync_jobs_published.clone()))?;
        registry.register(Box::new(syncs.clone()))?;
        registry.register(Box::new(sync_duration.clone()))?;
        registry.register(Box::new(push_to_sync_start.clone()))?;
        registry.register(Box::new(resources.clone()))?;
        registry.register(Box::new(dead_lettered.clone()))?;
        Ok(Self {
            registry,
            push_events,
            sync_jobs_published,
            syncs,
            sync_duration,
            push_to_sync_start,
            resources,
            dead_lettered,
        })
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(buffer).unwrap_or_default()
    }

    /// Serve `GET /metrics` and `GET /healthz` on `listener` until `stop`.
    pub async fn serve(self, listener: TcpListener, stop: CancellationToken) {
        loop {
            let accepted = tokio::select! {
                () = stop.cancelled() => return,
                accepted = listener.accept() => accepted,
            };
            let Ok((mut stream, _)) = accepted else {
                continue;
            };
            let metrics = self.clone();
            tokio::spawn(async move {
                let mut request = [0u8; 1024];
                let Ok(read) = stream.read(&mut request).await else {
                    return;
                };
                let head = String::from_utf8_lossy(&request[..read]);
                let path = head.split_whitespace().nth(1).unwrap_or_default();
                let (status, content_type, body) = match path {
                    "/metrics" => (
                        "200 OK",
                        "text/plain; version=0.0.4; charset=utf-8",
                        metrics.render(),
                    ),
                    "/healthz" => ("200 OK", "text/plain", "ok".to_owned()),
                    _ => ("404 Not Found", "text/plain", "not found".to_owned()),
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    }
}
