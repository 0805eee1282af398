//! The RabbitMQ backend: one supervised connection, confirmed persistent publishes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, Event, ExchangeKind,
};
use pushsync_proto::{CONTENT_TYPE, Topology};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{ConnectionState, Outgoing, PublishError};

/// How to reach RabbitMQ and what to declare there.
#[derive(Debug, Clone)]
pub struct AmqpConfig {
    /// `amqp://user:password@host:port/vhost`; secret because of the password.
    pub uri: SecretString,
    /// Shown in the RabbitMQ management UI (e.g. `pushsync-receiver@pod-1`).
    pub connection_name: String,
    /// Names of exchanges and queues.
    pub topology: Topology,
    /// What to declare on connecting.
    pub declare: Declare,
    /// How long a publish may wait for its confirm before it counts as failed.
    pub confirm_timeout: Duration,
    /// First delay before reconnecting; doubled per failure up to `max_backoff`.
    pub min_backoff: Duration,
    /// Longest delay between reconnection attempts.
    pub max_backoff: Duration,
}

impl AmqpConfig {
    /// Defaults for everything but the URI and connection name.
    pub fn new(uri: SecretString, connection_name: impl Into<String>) -> Self {
        Self {
            uri,
            connection_name: connection_name.into(),
            topology: Topology::default(),
            declare: Declare::default(),
            confirm_timeout: Duration::from_secs(5),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct AmqpBroker {
    pub(crate) shared: Arc<Shared>,
}

#[derive(Debug)]
pub(crate) struct Shared {
    config: AmqpConfig,
    channel: RwLock<Option<Channel>>,
    /// The open connection, for consumers that open their own channels.
    connection: RwLock<Option<Arc<Connection>>>,
    pub(crate) state: watch::Sender<ConnectionState>,
    connects: AtomicU64,
    stop: CancellationToken,
    supervisor: tokio::sync::Mutex<Option<JoinHandle<()>>>,
}

impl AmqpBroker {
    pub(crate) fn start(config: AmqpConfig) -> (Self, watch::Receiver<ConnectionState>) {
        let (state, state_rx) = watch::channel(ConnectionState::Connecting);
        let shared = Arc::new(Shared {
            config,
            channel: RwLock::new(None),
            connection: RwLock::new(None),
            state,
            connects: AtomicU64::new(0),
            stop: CancellationToken::new(),
            supervisor: tokio::sync::Mutex::new(None),
        });
        let handle = tokio::spawn(supervise(shared.clone()));
        if let Ok(mut slot) = shared.supervisor.try_lock() {
            *slot = Some(handle);
        }
        (Self { shared }, state_rx)
    }

    /// Publish `message` to the retry queue that holds it about `delay`
    /// (declared first: idempotent, one round trip); returns the delay used.
    pub(crate) async fn publish_later(
        &self,
        message: &Outgoing,
        delay: Duration,
    ) -> Result<Duration, PublishError> {
        let topology = &self.shared.config.topology;
        let seconds = Topology::retry_delay_seconds(delay);
        // Declared on a channel of its own: a refusal (406) closes that
        // one, not the shared publish channel.
        let connection = self
            .shared
            .current_connection()
            .ok_or(PublishError::Unavailable)?;
        let channel = connection
            .create_channel()
            .await
            .map_err(PublishError::Channel)?;
        let declared = declare_retry_queue(&channel, topology, seconds).await;
        let _ = channel.close(200, ShortString::from("declared")).await;
        declared.map_err(PublishError::Channel)?;
        let waiting = Outgoing {
            // The default exchange routes by queue name.
            exchange: String::new(),
            routing_key: topology.retry_queue(seconds),
            ..message.clone()
        };
        self.publish(&waiting).await?;
        Ok(Duration::from_secs(seconds))
    }

    pub(crate) fn connects(&self) -> u64 {
        self.shared.connects.load(Ordering::Relaxed)
    }

    pub(crate) async fn publish(&self, message: &Outgoing) -> Result<(), PublishError> {
        let channel = self
            .shared
            .current_channel()
            .ok_or(PublishError::Unavailable)?;
        let timeout = self.shared.config.confirm_timeout;
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type(ShortString::from(CONTENT_TYPE))
            .with_message_id(ShortString::from(message.message_id.as_str()))
            .with_type(ShortString::from(message.schema));
        let publish = async {
            let confirm = channel
                .basic_publish(
                    ShortString::from(message.exchange.as_str()),
                    ShortString::from(message.routing_key.as_str()),
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    &message.body,
                    properties,
                )
                .await
                .map_err(PublishError::Channel)?;
            match confirm.await.map_err(PublishError::Channel)? {
                Confirmation::Ack(None) => Ok(()),
                Confirmation::Ack(Some(_returned)) => Err(PublishError::Unroutable),
                Confirmation::Nack(_) => Err(PublishError::Nacked),
                // confirm_select is enabled on every channel we open, so this
                // would mean the broker silently dropped confirm mode.
                Confirmation::NotRequested => Err(PublishError::Nacked),
            }
        };
        match tokio::time::timeout(timeout, publish).await {
            Ok(result) => result,
            Err(_) => Err(PublishError::ConfirmTimeout(timeout)),
        }
    }

    pub(crate) async fn close(&self) {
        self.shared.stop.cancel();
        let handle = self.shared.supervisor.lock().await.take();
        if let Some(handle) = handle {
            let _ = handle.await;
        }
    }
}

impl Shared {
    fn current_channel(&self) -> Option<Channel> {
        self.channel
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn current_connection(&self) -> Option<Arc<Connection>> {
        self.connection
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn set_channel(&self, channel: Option<Channel>) {
        *self
            .channel
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = channel;
    }
}

/// Connect, serve, and reconnect with capped exponential backoff until stopped.
async fn supervise(shared: Arc<Shared>) {
    let config = &shared.config;
    let target = pushsync_proto::redact_url(config.uri.expose_secret());
    let mut backoff = config.min_backoff;
    loop {
        if shared.stop.is_cancelled() {
            break;
        }
        match open(config).await {
            Ok((connection, channel)) => {
                backoff = config.min_backoff;
                let mut events = connection.events_listener();
                let connection = Arc::new(connection);
                shared.set_channel(Some(channel.clone()));
                *shared
                    .connection
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(connection.clone());
                shared.connects.fetch_add(1, Ordering::Relaxed);
                shared.state.send_replace(ConnectionState::Connected);
                tracing::info!(broker = %target, "connected to the message broker");

                let mut check = tokio::time::interval(Duration::from_millis(500));
                let lost = loop {
                    tokio::select! {
                        () = shared.stop.cancelled() => break None,
                        event = events.next() => match event {
                            Some(Event::Error(error)) => break Some(error.to_string()),
                            Some(_) => {}
                            None => break Some("connection event stream ended".to_owned()),
                        },
                        _ = check.tick() => {
                            if !connection.status().connected() || !channel.status().connected() {
                                break Some("channel or connection is no longer open".to_owned());
                            }
                        }
                    }
                };
                shared.set_channel(None);
                shared
                    .connection
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .take();
                match lost {
                    None => {
                        let _ = channel.close(200, ShortString::from("shutting down")).await;
                        let _ = connection
                            .close(200, ShortString::from("shutting down"))
                            .await;
                        break;
                    }
                    Some(reason) => {
                        shared.state.send_replace(ConnectionState::Connecting);
                        tracing::warn!(broker = %target, error = %reason, "lost the message broker connection; reconnecting");
                        let _ = connection
                            .close(320, ShortString::from("reconnecting"))
                            .await;
                    }
                }
            }
            Err(error) => {
                shared.state.send_replace(ConnectionState::Connecting);
                tracing::warn!(
                    broker = %target,
                    error = %error,
                    retry_in_ms = backoff.as_millis() as u64,
                    "cannot connect to the message broker"
                );
            }
        }
        tokio::select! {
            () = shared.stop.cancelled() => break,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(config.max_backoff);
    }
    shared.set_channel(None);
    shared.state.send_replace(ConnectionState::Closed);
    tracing::info!(broker = %target, "closed the message broker connection");
}

async fn open(config: &AmqpConfig) -> Result<(Connection, Channel), lapin::Error> {
    let properties =
        ConnectionProperties::default().with_connection_name(config.connection_name.clone().into());
    let connection = Connection::connect(config.uri.expose_secret(), properties).await?;
    let channel = connection.create_channel().await?;
    match config.declare {
        Declare::Topology(bounds) => {
            declare_topology(&connection, &config.topology, &bounds).await?;
        }
        Declare::CheckEvents => check_events_topology(&connection, &config.topology).await?,
    }
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok((connection, channel))
}

/// What a connection declares on RabbitMQ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Declare {
    /// Every exchange and queue, with these bounds (the worker: its broker
    /// user may configure `<prefix>.*`).
    Topology(QueueBounds),
    /// Nothing: only check, passively, that the events exchange and the
    /// push-events queue exist, and stay not ready until they do (the
    /// receiver, whose broker user may only publish to the events exchange).
    CheckEvents,
}

impl Default for Declare {
    fn default() -> Self {
        Self::Topology(QueueBounds::default())
    }
}

/// How long the queues may grow. At the bound the push-events and sync-jobs
/// queues refuse publishes (`reject-publish`: the receiver answers 503 and
/// the forge retries; the dispatcher retries the push event), never drop
/// what they hold; the dead-letter queue keeps the newest messages
/// (`drop-head`: it is for inspection, and every dead-lettering is counted
/// in `pushsync_worker_dead_lettered_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueBounds {
    /// Most messages in the push-events and in the sync-jobs queue.
    pub max_length: u64,
    /// Most bytes of message bodies in each of them.
    pub max_bytes: u64,
    /// Most messages kept in the dead-letter queue.
    pub dead_letter_max_length: u64,
}

impl Default for QueueBounds {
    fn default() -> Self {
        Self {
            max_length: 100_000,
            max_bytes: 512 * 1024 * 1024,
            dead_letter_max_length: 10_000,
        }
    }
}

/// Check that the receiver's exchange and queue exist, declaring nothing
/// (passive declares need no permission on RabbitMQ).
pub async fn check_events_topology(
    connection: &Connection,
    topology: &Topology,
) -> Result<(), lapin::Error> {
    let channel = connection.create_channel().await?;
    channel
        .exchange_declare(
            topology.events_exchange().as_str().into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                passive: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_declare(
            topology.push_events_queue().as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    let _ = channel.close(200, ShortString::from("checked")).await;
    Ok(())
}

/// Declare the exchanges and queues of `topology` (idempotent), on a
/// channel of their own.
///
/// Queues are quorum queues: replicated, persistent, bounded by `bounds`,
/// and with a delivery limit after which a message that keeps failing is
/// dead-lettered instead of looping forever. A queue an older release
/// declared with other arguments is used as it is, with a warning (RabbitMQ
/// refuses to change a queue's arguments; see deploy/README.md).
pub async fn declare_topology(
    connection: &Connection,
    topology: &Topology,
    bounds: &QueueBounds,
) -> Result<(), lapin::Error> {
    let mut declarer = Declarer {
        connection,
        channel: connection.create_channel().await?,
    };
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    let dead_letter = topology.dead_letter();
    declarer
        .channel
        .exchange_declare(
            dead_letter.as_str().into(),
            ExchangeKind::Fanout,
            durable,
            FieldTable::default(),
        )
        .await?;
    let dead_letter_bound = [
        (
            "x-max-length",
            AMQPValue::LongLongInt(as_i64(bounds.dead_letter_max_length)),
        ),
        ("x-overflow", AMQPValue::LongString("drop-head".into())),
    ];
    declarer.queue(&dead_letter, dead_letter_bound).await?;
    bind(&declarer.channel, &dead_letter, &dead_letter, "").await?;

    for (exchange, kind, queue, key) in [
        (
            topology.events_exchange(),
            ExchangeKind::Topic,
            topology.push_events_queue(),
            Topology::PUSH_BINDING,
        ),
        (
            topology.jobs_exchange(),
            ExchangeKind::Direct,
            topology.sync_jobs_queue(),
            Topology::SYNC_ROUTING_KEY,
        ),
    ] {
        declarer
            .channel
            .exchange_declare(
                exchange.as_str().into(),
                kind,
                durable,
                FieldTable::default(),
            )
            .await?;
        let arguments = [
            (
                "x-dead-letter-exchange",
                AMQPValue::LongString(dead_letter.as_str().into()),
            ),
            ("x-delivery-limit", AMQPValue::LongLongInt(DELIVERY_LIMIT)),
            (
                "x-max-length",
                AMQPValue::LongLongInt(as_i64(bounds.max_length)),
            ),
            (
                "x-max-length-bytes",
                AMQPValue::LongLongInt(as_i64(bounds.max_bytes)),
            ),
            ("x-overflow", AMQPValue::LongString("reject-publish".into())),
        ];
        declarer.queue(&queue, arguments).await?;
        bind(&declarer.channel, &queue, &exchange, key).await?;
    }
    let _ = declarer
        .channel
        .close(200, ShortString::from("declared"))
        .await;
    Ok(())
}

fn as_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Declares on a channel it replaces when RabbitMQ closes it for a queue
/// that exists with other arguments.
struct Declarer<'a> {
    connection: &'a Connection,
    channel: Channel,
}

impl Declarer<'_> {
    async fn queue(
        &mut self,
        name: &str,
        arguments: impl IntoIterator<Item = (&'static str, AMQPValue)>,
    ) -> Result<(), lapin::Error> {
        match declare_quorum_queue(&self.channel, name, arguments).await {
            Err(error) if precondition_failed(&error) => {
                tracing::warn!(
                    queue = name,
                    "the queue exists with other arguments (an older release declared it); using it as it is, without the bounds this release sets (deploy/README.md: upgrading)"
                );
                self.channel = self.connection.create_channel().await?;
                self.channel
                    .queue_declare(
                        name.into(),
                        QueueDeclareOptions {
                            passive: true,
                            ..QueueDeclareOptions::default()
                        },
                        FieldTable::default(),
                    )
                    .await?;
                Ok(())
            }
            other => other,
        }
    }
}

/// RabbitMQ's 406: a redeclare with arguments other than the queue's.
fn precondition_failed(error: &lapin::Error) -> bool {
    matches!(error.kind(), lapin::ErrorKind::ProtocolError(amqp) if amqp.get_id() == 406)
}

/// A queue where sync jobs wait `seconds`, then go back to the jobs
/// exchange (dead-lettered at least once: a job is never dropped on the
/// way back). Published to through the default exchange, by name; declared
/// when first used, so installs that never retry hold no such queue.
pub(crate) async fn declare_retry_queue(
    channel: &Channel,
    topology: &Topology,
    seconds: u64,
) -> Result<(), lapin::Error> {
    let ttl = i64::try_from(seconds.saturating_mul(1000)).unwrap_or(i64::MAX);
    declare_quorum_queue(
        channel,
        &topology.retry_queue(seconds),
        [
            ("x-message-ttl", AMQPValue::LongLongInt(ttl)),
            (
                "x-dead-letter-exchange",
                AMQPValue::LongString(topology.jobs_exchange().into()),
            ),
            (
                "x-dead-letter-routing-key",
                AMQPValue::LongString(Topology::SYNC_ROUTING_KEY.into()),
            ),
            (
                "x-dead-letter-strategy",
                AMQPValue::LongString("at-least-once".into()),
            ),
            // At-least-once dead-lettering requires it; a full retry queue
            // refuses the publish, and the worker then waits in place instead.
            ("x-overflow", AMQPValue::LongString("reject-publish".into())),
        ],
    )
    .await
}

/// How often a message may be redelivered before it is dead-lettered.
const DELIVERY_LIMIT: i64 = 20;

/// Declare a durable quorum queue with `arguments` besides its type.
async fn declare_quorum_queue(
    channel: &Channel,
    name: &str,
    arguments: impl IntoIterator<Item = (&'static str, AMQPValue)>,
) -> Result<(), lapin::Error> {
    let mut table = FieldTable::default();
    table.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    for (key, value) in arguments {
        table.insert(key.into(), value);
    }
    channel
        .queue_declare(
            name.into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            table,
        )
        .await?;
    Ok(())
}

async fn bind(
    channel: &Channel,
    queue: &str,
    exchange: &str,
    key: &str,
) -> Result<(), lapin::Error> {
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
}
