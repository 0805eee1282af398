//! Names of the exchanges and queues pushsync uses on the broker.

/// Exchange, queue and routing-key names, derived from one prefix.
///
/// Every part of a deployment must use the same prefix; tests use a unique
/// prefix each so they never see each other's messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    prefix: String,
}

impl Default for Topology {
    fn default() -> Self {
        Self::new(Self::DEFAULT_PREFIX)
    }
}

impl Topology {
    /// The prefix used unless configured otherwise.
    pub const DEFAULT_PREFIX: &'static str = "pushsync";

    /// Names under `prefix` (e.g. `pushsync` → `pushsync.events`).
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// The prefix all names start with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Durable topic exchange the receiver publishes push events to.
    pub fn events_exchange(&self) -> String {
        format!("{}.events", self.prefix)
    }

    /// Durable queue of push events, consumed by the workers' dispatchers.
    pub fn push_events_queue(&self) -> String {
        format!("{}.push-events", self.prefix)
    }

    /// Durable exchange sync jobs are published to.
    pub fn jobs_exchange(&self) -> String {
        format!("{}.jobs", self.prefix)
    }

    /// Durable queue of sync jobs, consumed by the workers' syncers.
    pub fn sync_jobs_queue(&self) -> String {
        format!("{}.sync-jobs", self.prefix)
    }

    /// Exchange and queue that collect messages rejected too often to retry.
    pub fn dead_letter(&self) -> String {
        format!("{}.dead-letter", self.prefix)
    }

    /// Routing key of a push event from `provider` (`push.github`, …). The
    /// push-events queue is bound with `push.#`.
    pub fn push_routing_key(provider: crate::Provider) -> String {
        format!("push.{}", provider.as_str())
    }

    /// Binding pattern of the push-events queue.
    pub const PUSH_BINDING: &'static str = "push.#";

    /// Routing key of sync jobs.
    pub const SYNC_ROUTING_KEY: &'static str = "sync";
}
