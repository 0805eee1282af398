//! The receiver's Prometheus metrics, registered in a per-instance registry.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Requests by provider, event and outcome.
pub const REQUESTS_TOTAL: &str = "pushsync_receiver_requests_total";
/// Request handling time by provider.
pub const REQUEST_DURATION_SECONDS: &str = "pushsync_receiver_request_duration_seconds";
/// Request body sizes by provider.
pub const PAYLOAD_SIZE_BYTES: &str = "pushsync_receiver_payload_size_bytes";
/// Time from publish to broker confirm, by result.
pub const PUBLISH_DURATION_SECONDS: &str = "pushsync_receiver_publish_duration_seconds";
/// Push events published (one webhook may carry several).
pub const EVENTS_PUBLISHED_TOTAL: &str = "pushsync_receiver_events_published_total";
/// 1 while a confirmed channel to the broker is open.
pub const BROKER_CONNECTED: &str = "pushsync_receiver_broker_connected";
/// Successful broker connections, the first included.
pub const BROKER_CONNECTIONS_TOTAL: &str = "pushsync_receiver_broker_connections_total";
/// Secret file reloads by result.
pub const SECRET_RELOADS_TOTAL: &str = "pushsync_receiver_secret_reloads_total";
/// Request-body bytes held in memory right now, across all requests.
pub const IN_FLIGHT_BODY_BYTES: &str = "pushsync_receiver_in_flight_body_bytes";
/// The configured budget for [`IN_FLIGHT_BODY_BYTES`].
pub const IN_FLIGHT_BODY_LIMIT_BYTES: &str = "pushsync_receiver_in_flight_body_limit_bytes";
/// Requests refused with 503 because the in-flight body budget was full.
pub const BODY_BUDGET_REFUSALS_TOTAL: &str = "pushsync_receiver_body_budget_refusals_total";
/// Constant 1 labelled with the version.
pub const BUILD_INFO: &str = "pushsync_receiver_build_info";

/// Handles to every metric. Labels are bounded: providers and events are
/// fixed lists, outcomes are [`crate::Error::kind`] values or one of
/// `accepted`, `duplicate`, `ping`, `ignored`.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// See [`REQUESTS_TOTAL`].
    pub requests: IntCounterVec,
    /// See [`REQUEST_DURATION_SECONDS`].
    pub request_duration: HistogramVec,
    /// See [`PAYLOAD_SIZE_BYTES`].
    pub payload_size: HistogramVec,
    /// See [`PUBLISH_DURATION_SECONDS`].
    pub publish_duration: HistogramVec,
    /// See [`EVENTS_PUBLISHED_TOTAL`].
    pub events_published: IntCounterVec,
    /// See [`BROKER_CONNECTED`].
    pub broker_connected: IntGauge,
    /// See [`BROKER_CONNECTIONS_TOTAL`].
    pub broker_connections: IntCounter,
    /// See [`SECRET_RELOADS_TOTAL`].
    pub secret_reloads: IntCounterVec,
    /// See [`IN_FLIGHT_BODY_BYTES`].
    pub in_flight_body_bytes: IntGauge,
    /// See [`IN_FLIGHT_BODY_LIMIT_BYTES`].
    pub in_flight_body_limit_bytes: IntGauge,
    /// See [`BODY_BUDGET_REFUSALS_TOTAL`].
    pub body_budget_refusals: IntCounter,
}

impl Metrics {
    /// Create and register every metric in a fresh registry.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                REQUESTS_TOTAL,
                "Webhook requests by provider, event and outcome.",
            ),
            &["provider", "event", "outcome"],
        )?;
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                REQUEST_DURATION_SECONDS,
                "Time from receiving a webhook request to answering it.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["provider"],
        )?;
        let payload_size = HistogramVec::new(
            HistogramOpts::new(PAYLOAD_SIZE_BYTES, "Size of webhook request bodies.")
                .buckets(prometheus::exponential_buckets(512.0, 4.0, 9)?),
            &["provider"],
        )?;
        let publish_duration = HistogramVec::new(
            HistogramOpts::new(
                PUBLISH_DURATION_SECONDS,
                "Time from publishing a webhook's events to the broker's confirm.",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0,
                5.0,
            ]),
            &["result"],
        )?;
        let events_published = IntCounterVec::new(
            Opts::new(
                EVENTS_PUBLISHED_TOTAL,
                "Push events confirmed by the broker.",
            ),
            &["provider"],
        )?;
        let broker_connected = IntGauge::new(
            BROKER_CONNECTED,
            "1 while a confirmed channel to the message broker is open, else 0.",
        )?;
        let broker_connections = IntCounter::new(
            BROKER_CONNECTIONS_TOTAL,
            "Successful connections to the message broker, the first one included.",
        )?;
        let secret_reloads = IntCounterVec::new(
            Opts::new(
                SECRET_RELOADS_TOTAL,
                "Re-reads of webhook secret files by result.",
            ),
            &["result"],
        )?;
        let in_flight_body_bytes = IntGauge::new(
            IN_FLIGHT_BODY_BYTES,
            "Webhook request-body bytes held in memory right now, across all requests.",
        )?;
        let in_flight_body_limit_bytes = IntGauge::new(
            IN_FLIGHT_BODY_LIMIT_BYTES,
            "The budget of request-body bytes held in memory at once (PUSHSYNC_MAX_IN_FLIGHT_BYTES).",
        )?;
        let body_budget_refusals = IntCounter::new(
            BODY_BUDGET_REFUSALS_TOTAL,
            "Webhook requests refused with 503 because the in-flight body budget was full.",
        )?;
        let build_info = IntGaugeVec::new(
            Opts::new(
                BUILD_INFO,
                "Constant 1, labelled with the receiver's version.",
            ),
            &["version"],
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);

        // Bounded label values start at zero, so a rate or an alert sees
        // the first event and dashboards show the series before it.
        for route in ["github", "gitlab", "gitea", "bitbucket"] {
            requests.with_label_values(&[route, "push", "accepted"]);
            request_duration.with_label_values(&[route]);
            payload_size.with_label_values(&[route]);
        }
        for provider in pushsync_proto::Provider::ALL {
            events_published.with_label_values(&[provider.as_str()]);
        }
        publish_duration.with_label_values(&["ok"]);
        for result in ["ok", "error"] {
            secret_reloads.with_label_values(&[result]);
        }

        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(request_duration.clone()))?;
        registry.register(Box::new(payload_size.clone()))?;
        registry.register(Box::new(publish_duration.clone()))?;
        registry.register(Box::new(events_published.clone()))?;
        registry.register(Box::new(broker_connected.clone()))?;
        registry.register(Box::new(broker_connections.clone()))?;
        registry.register(Box::new(secret_reloads.clone()))?;
        registry.register(Box::new(in_flight_body_bytes.clone()))?;
        registry.register(Box::new(in_flight_body_limit_bytes.clone()))?;
        registry.register(Box::new(body_budget_refusals.clone()))?;
        registry.register(Box::new(build_info))?;
        Ok(Self {
            registry,
            requests,
            request_duration,
            payload_size,
            publish_duration,
            events_published,
            broker_connected,
            broker_connections,
            secret_reloads,
            in_flight_body_bytes,
            in_flight_body_limit_bytes,
            body_budget_refusals,
        })
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut buffer = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buffer)?;
        String::from_utf8(buffer).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }

    /// A histogram for one provider.
    pub fn observe_request(&self, provider: &str, event: &str, outcome: &str, seconds: f64) {
        self.requests
            .with_label_values(&[provider, event, outcome])
            .inc();
        self.request_duration
            .with_label_values(&[provider])
            .observe(seconds);
    }

    /// The publish-latency histogram for one result.
    pub fn publish_histogram(&self, result: &str) -> Histogram {
        self.publish_duration.with_label_values(&[result])
    }
}
