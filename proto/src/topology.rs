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

    /// The delays, in seconds, of the queues where sync jobs wait out their
    /// retry backoff: one queue per delay, each with that message TTL and
    /// dead-lettering back to the jobs exchange. One TTL per queue keeps
    /// expiry in FIFO order (RabbitMQ expires messages only at a queue's
    /// head). Argo CD's default backoff (5 s doubling to 3 min) lands on
    /// them exactly but for 160 s.
    pub const RETRY_DELAYS_SECONDS: [u64; 10] = [1, 2, 5, 10, 20, 40, 80, 180, 300, 600];

    /// The queue where sync jobs wait `seconds` (one of
    /// [`Topology::RETRY_DELAYS_SECONDS`]) before returning to the jobs exchange.
    pub fn retry_queue(&self, seconds: u64) -> String {
        format!("{}.sync-retry.{seconds}s", self.prefix)
    }

    /// The shortest retry delay, in seconds, that is at least `delay` (the
    /// longest one for anything longer).
    pub fn retry_delay_seconds(delay: std::time::Duration) -> u64 {
        let wanted = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
        Self::RETRY_DELAYS_SECONDS
            .into_iter()
            .find(|&seconds| seconds >= wanted)
            .unwrap_or(Self::RETRY_DELAYS_SECONDS[Self::RETRY_DELAYS_SECONDS.len() - 1])
    }
}
