//! The server's Prometheus metrics (`/metrics`).

use prometheus::{Encoder, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

/// Every metric the server exports.
pub struct Metrics {
    registry: Registry,
    /// `pushsync_server_http_requests_total{route, status}`.
    pub requests: IntCounterVec,
    /// `pushsync_server_actions_total{action, outcome}`.
    pub actions: IntCounterVec,
    /// `pushsync_server_live_streams`: open Server-Sent Event streams.
    pub streams: IntGauge,
}

impl Metrics {
    /// Create and register every metric, each bounded label value at zero.
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "pushsync_server_http_requests_total",
                "HTTP requests answered, by route pattern and status code.",
            ),
            &["route", "status"],
        )?;
        let actions = IntCounterVec::new(
            Opts::new(
                "pushsync_server_actions_total",
                "Actions users asked for, by action and outcome (done, forbidden, invalid, failed).",
            ),
            &["action", "outcome"],
        )?;
        let streams = IntGauge::new(
            "pushsync_server_live_streams",
            "Open live-update streams (Server-Sent Events).",
        )?;
        let build_info = IntGaugeVec::new(
            Opts::new(
                "pushsync_server_build_info",
                "1, labelled with the server's version.",
            ),
            &["version"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(actions.clone()))?;
        registry.register(Box::new(streams.clone()))?;
        registry.register(Box::new(build_info.clone()))?;
        for action in ["sync", "refresh", "rollback", "suspend", "resume"] {
            for outcome in ["done", "forbidden", "invalid", "failed"] {
                actions.with_label_values(&[action, outcome]);
            }
        }
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        Ok(Metrics {
            registry,
            requests,
            actions,
            streams,
        })
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buffer);
        String::from_utf8(buffer).unwrap_or_default()
    }
}
