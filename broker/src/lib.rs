//! One queue abstraction for pushsync, with a RabbitMQ backend and an in-memory one.
//!
//! The receiver publishes through [`Broker::publish_all`] and answers a webhook
//! 2xx only when that returns `Ok`: for RabbitMQ that means the broker
//! confirmed a persistent, routed publish of every message (publisher
//! confirms, `mandatory`, delivery mode 2). The in-memory backend exists for
//! `make run` and unit tests on machines without a broker.
//!
//! Invariants:
//! - `publish_all` returns `Ok` only after every message is stored by the
//!   backend; any doubt (no channel, Nack, unroutable, timeout) is an error, so
//!   callers never acknowledge something that may be lost.
//! - The AMQP backend reconnects by itself; callers never restart it. While it
//!   is disconnected, publishing fails fast with [`PublishError::Unavailable`].
//! - The AMQP URI (which carries a password) is never logged; only
//!   [`pushsync_proto::redact_url`]'s form is.

mod amqp;
mod consume;
mod memory;

use std::time::Duration;

use futures_util::future::try_join_all;
use tokio::sync::watch;

pub use amqp::{AmqpConfig, Declare, QueueBounds, check_events_topology, declare_topology};
pub use consume::{AckError, Consumer, Delivery};
pub use memory::MemoryQueue;

/// A message ready to publish.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Exchange to publish to.
    pub exchange: String,
    /// Routing key.
    pub routing_key: String,
    /// Stable id (delivery id plus index), set as the AMQP `message-id` so
    /// consumers can spot duplicates.
    pub message_id: String,
    /// Schema tag of the body (`push/v1`, …), set as the AMQP `type`.
    pub schema: &'static str,
    /// JSON body.
    pub body: Vec<u8>,
}

/// Why a publish was not confirmed. Every variant means "not stored": the
/// caller must report failure so the sender retries.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// No open channel to the broker right now (connecting, reconnecting or
    /// shut down).
    #[error("no open channel to the message broker")]
    Unavailable,
    /// The broker refused to take responsibility for the message (Nack).
    #[error("the message broker rejected the message (nack)")]
    Nacked,
    /// The message matched no queue, so it would have been dropped.
    #[error("the message broker could not route the message to any queue")]
    Unroutable,
    /// No confirm arrived within the configured bound.
    #[error("no publisher confirm within {0:?}")]
    ConfirmTimeout(Duration),
    /// The channel or connection failed while publishing.
    #[error("publishing to the message broker failed")]
    Channel(#[source] lapin::Error),
    /// The in-memory queue is at capacity.
    #[error("the in-memory queue is full")]
    QueueFull,
}

impl PublishError {
    /// A bounded label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unavailable => "unavailable",
            Self::Nacked => "nacked",
            Self::Unroutable => "unroutable",
            Self::ConfirmTimeout(_) => "confirm_timeout",
            Self::Channel(_) => "channel_error",
            Self::QueueFull => "queue_full",
        }
    }
}

/// Whether the backend can take messages right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionState {
    /// Connecting for the first time, or again after a loss.
    Connecting,
    /// A channel is open and in confirm mode.
    Connected,
    /// Shut down on request.
    Closed,
}

/// A handle to the queue backend. Cheap to clone; all clones share one
/// connection.
#[derive(Debug, Clone)]
pub struct Broker {
    backend: Backend,
    state: watch::Receiver<ConnectionState>,
    /// Keeps the in-memory backend's state channel open (it never changes).
    _memory_state: Option<std::sync::Arc<watch::Sender<ConnectionState>>>,
}

#[derive(Debug, Clone)]
enum Backend {
    Amqp(amqp::AmqpBroker),
    Memory(MemoryQueue),
}

impl Broker {
    /// Start a RabbitMQ backend. Returns at once; a background task connects,
    /// declares the topology, and reconnects whenever the connection is lost,
    /// until [`Broker::close`] is called.
    pub fn amqp(config: AmqpConfig) -> Self {
        let (broker, state) = amqp::AmqpBroker::start(config);
        Self {
            backend: Backend::Amqp(broker),
            state,
            _memory_state: None,
        }
    }

    /// An in-process queue (see [`MemoryQueue`]).
    pub fn memory(queue: MemoryQueue) -> Self {
        let (sender, state) = watch::channel(ConnectionState::Connected);
        Self {
            backend: Backend::Memory(queue),
            state,
            _memory_state: Some(std::sync::Arc::new(sender)),
        }
    }

    /// Publish every message and wait until the backend has stored them all.
    /// The messages are pipelined; the first failure is returned.
    pub async fn publish_all(&self, messages: &[Outgoing]) -> Result<(), PublishError> {
        match &self.backend {
            Backend::Amqp(broker) => {
                try_join_all(messages.iter().map(|m| broker.publish(m))).await?;
                Ok(())
            }
            Backend::Memory(queue) => queue.push_all(messages),
        }
    }

    /// Publish a sync job to come back to the jobs exchange after about
    /// `delay` (rounded up to one of [`Topology::RETRY_DELAYS_SECONDS`] on
    /// RabbitMQ, where it waits in a retry queue; a timer on the in-memory
    /// backend). `Ok` once the backend holds it; returns the delay used.
    ///
    /// [`Topology::RETRY_DELAYS_SECONDS`]: pushsync_proto::Topology::RETRY_DELAYS_SECONDS
    pub async fn publish_later(
        &self,
        message: &Outgoing,
        delay: Duration,
    ) -> Result<Duration, PublishError> {
        match &self.backend {
            Backend::Amqp(broker) => broker.publish_later(message, delay).await,
            Backend::Memory(queue) => {
                let (queue, message) = (queue.clone(), message.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    if let Err(error) = queue.push_all(std::slice::from_ref(&message)) {
                        tracing::warn!(error = %error, message_id = %message.message_id, "a delayed message was dropped: the in-memory queue is full");
                    }
                });
                Ok(delay)
            }
        }
    }

    /// Consume `queue` (on the in-memory backend: the messages published to
    /// the exchange feeding it, `exchange`), with at most `prefetch`
    /// unacknowledged deliveries at once. The consumer resubscribes by itself
    /// after a reconnect.
    pub fn consume(&self, queue: &str, exchange: &str, prefetch: u16) -> Consumer {
        match &self.backend {
            Backend::Amqp(broker) => {
                Consumer::amqp(broker.shared.clone(), queue.to_owned(), prefetch.max(1))
            }
            Backend::Memory(memory) => Consumer::memory(memory.clone(), exchange.to_owned()),
        }
    }

    /// Whether a publish could succeed right now (for `/readyz`).
    pub fn is_ready(&self) -> bool {
        *self.state.borrow() == ConnectionState::Connected
    }

    /// Follow connection state changes (for metrics).
    pub fn state(&self) -> watch::Receiver<ConnectionState> {
        self.state.clone()
    }

    /// Wait until the backend is connected, or `timeout` passes.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let mut state = self.state.clone();
        tokio::time::timeout(
            timeout,
            state.wait_for(|s| *s == ConnectionState::Connected),
        )
        .await
        .is_ok_and(|r| r.is_ok())
    }

    /// How many times the backend has (re)connected since it started.
    pub fn connects(&self) -> u64 {
        match &self.backend {
            Backend::Amqp(broker) => broker.connects(),
            Backend::Memory(_) => 1,
        }
    }

    /// Close the channel and connection cleanly and stop reconnecting. Call
    /// after in-flight publishes have finished.
    pub async fn close(&self) {
        if let Backend::Amqp(broker) = &self.backend {
            broker.close().await;
        }
    }
}
