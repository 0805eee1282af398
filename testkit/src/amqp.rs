//! RabbitMQ for tests: the local broker, unique names per test, and inspection.

use std::time::Duration;

use lapin::options::{BasicAckOptions, BasicGetOptions, ExchangeDeleteOptions, QueueDeleteOptions};
use lapin::{Channel, Connection, ConnectionProperties};
use pushsync_proto::Topology;

/// The broker tests use: `PUSHSYNC_TEST_AMQP_URL`, or the local RabbitMQ.
pub fn amqp_url() -> String {
    std::env::var("PUSHSYNC_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// A topology no other test uses.
pub fn unique_topology() -> Topology {
    Topology::new(format!("test-{}", uuid::Uuid::new_v4().simple()))
}

/// A direct connection to the test broker, for looking at what was published.
///
/// A broker that cannot be reached fails the test (it is never skipped):
/// `.ci/run` starts RabbitMQ, and locally `rabbitmq-server -detached` does.
pub struct TestBroker {
    /// The connection.
    pub connection: Connection,
    /// A channel for inspection.
    pub channel: Channel,
}

impl TestBroker {
    /// Connect to [`amqp_url`] or fail with a message that says how to fix it.
    pub async fn connect() -> Self {
        let url = amqp_url();
        let connection = match Connection::connect(&url, ConnectionProperties::default()).await {
            Ok(connection) => connection,
            Err(error) => panic!(
                "RabbitMQ is required for this test and is not reachable ({error}); start it with `rabbitmq-server -detached` or set PUSHSYNC_TEST_AMQP_URL"
            ),
        };
        let channel = match connection.create_channel().await {
            Ok(channel) => channel,
            Err(error) => panic!("cannot open a channel to RabbitMQ: {error}"),
        };
        Self {
            connection,
            channel,
        }
    }

    /// Take every message now in `queue` (acknowledging them), waiting up to
    /// `settle` for stragglers after the last one.
    pub async fn drain(&self, queue: &str, settle: Duration) -> Vec<lapin::message::Delivery> {
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + settle;
        loop {
            match self
                .channel
                .basic_get(queue.into(), BasicGetOptions::default())
                .await
            {
                Ok(Some(message)) => {
                    let delivery = message.delivery;
                    let _ = delivery.acker.ack(BasicAckOptions::default()).await;
                    out.push(delivery);
                }
                Ok(None) => {
                    if tokio::time::Instant::now() >= deadline {
                        return out;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(error) => panic!("basic.get on {queue} failed: {error}"),
            }
        }
    }

    /// Wait until `queue` holds at least `count` messages, then take them all.
    pub async fn take(
        &self,
        queue: &str,
        count: usize,
        timeout: Duration,
    ) -> Vec<lapin::message::Delivery> {
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + timeout;
        while out.len() < count && tokio::time::Instant::now() < deadline {
            out.extend(self.drain(queue, Duration::ZERO).await);
            if out.len() < count {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        out
    }

    /// Delete everything `topology` declared.
    pub async fn delete_topology(&self, topology: &Topology) {
        let retry_queues = Topology::RETRY_DELAYS_SECONDS.map(|s| topology.retry_queue(s));
        for queue in [
            topology.push_events_queue(),
            topology.sync_jobs_queue(),
            topology.dead_letter(),
        ]
        .into_iter()
        .chain(retry_queues)
        {
            let _ = self
                .channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
        for exchange in [
            topology.events_exchange(),
            topology.jobs_exchange(),
            topology.dead_letter(),
        ] {
            let _ = self
                .channel
                .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
                .await;
        }
    }
}

/// A RabbitMQ user of the local broker with the given permissions on the
/// default vhost (regular expressions, as `rabbitmqctl set_permissions`
/// takes them), deleted when dropped. Made with `rabbitmqctl`, so it needs
/// the broker on this machine (it is, for tests and CI).
pub struct BrokerUser {
    /// The user name.
    pub name: String,
    /// Its password.
    pub password: String,
}

impl BrokerUser {
    /// Create the user; `configure`, `write` and `read` are the permission
    /// patterns (`^$` for none).
    pub fn create(configure: &str, write: &str, read: &str) -> Self {
        let name = format!("test-{}", uuid::Uuid::new_v4().simple());
        let password = uuid::Uuid::new_v4().simple().to_string();
        rabbitmqctl(&["add_user", &name, &password]);
        rabbitmqctl(&["set_permissions", "-p", "/", &name, configure, write, read]);
        Self { name, password }
    }

    /// The broker URL as this user.
    pub fn url(&self) -> String {
        format!("amqp://{}:{}@127.0.0.1:5672/%2f", self.name, self.password)
    }
}

impl Drop for BrokerUser {
    fn drop(&mut self) {
        let _ = std::process::Command::new("rabbitmqctl")
            .args(["-q", "delete_user", &self.name])
            .output();
    }
}

fn rabbitmqctl(args: &[&str]) {
    let output = match std::process::Command::new("rabbitmqctl")
        .arg("-q")
        .args(args)
        .output()
    {
        Ok(output) => output,
        Err(error) => panic!("rabbitmqctl is required for this test: {error}"),
    };
    assert!(
        output.status.success(),
        "rabbitmqctl {} failed: {}",
        args.first().copied().unwrap_or_default(),
        String::from_utf8_lossy(&output.stderr)
    );
}
