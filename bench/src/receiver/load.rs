//! What drives the receiver benchmark: signed pushes over HTTP/1.1
//! connections of our own, and the ceiling — a plain lapin publisher of the
//! same message with the same number of confirms in flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueuePurgeOptions};
use lapin::{BasicProperties, Confirmation, Connection, ConnectionProperties};
use pushsync_proto::Topology;
use pushsync_testkit::amqp::amqp_url;

/// Signed pushes to the receiver, over a minimal keep-alive HTTP/1.1 client:
/// the load generator shares the machine with the receiver and the broker, so
/// it must cost as little CPU as possible (a general-purpose client costs
/// several times more per request and would be measured as receiver slowness).
#[derive(Clone)]
pub(super) struct Push {
    pub(super) addr: std::net::SocketAddr,
    /// Request head up to the delivery id header value.
    pub(super) head: Arc<Vec<u8>>,
    /// Rest of the head and the body, after the delivery id.
    pub(super) tail: Arc<Vec<u8>>,
}

impl Push {
    pub(super) fn new(addr: std::net::SocketAddr, body: &[u8], signature: &str) -> Self {
        let head = format!(
            "POST /hooks/github HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nX-GitHub-Event: push\r\nX-Hub-Signature-256: {signature}\r\nContent-Length: {}\r\nX-GitHub-Delivery: ",
            body.len()
        );
        let mut tail = b"\r\n\r\n".to_vec();
        tail.extend_from_slice(body);
        Self {
            addr,
            head: Arc::new(head.into_bytes()),
            tail: Arc::new(tail),
        }
    }

    pub(super) async fn connect(&self) -> anyhow::Result<Connection1> {
        let stream = tokio::net::TcpStream::connect(self.addr).await?;
        stream.set_nodelay(true)?;
        Ok(Connection1 {
            stream: tokio::io::BufReader::new(stream),
            push: self.clone(),
            request: Vec::with_capacity(self.head.len() + self.tail.len() + 64),
            line: String::new(),
        })
    }

    /// `concurrency` connections, each sending the next request when the
    /// last one is answered, for `window`.
    pub(super) async fn closed_loop(&self, concurrency: usize, window: Duration) -> Run {
        let deadline = Instant::now() + window;
        let started = Instant::now();
        let tasks: Vec<_> = (0..concurrency)
            .map(|_| {
                let push = self.clone();
                tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    let mut failures = 0u64;
                    let Ok(mut connection) = push.connect().await else {
                        return (latencies, 1);
                    };
                    while Instant::now() < deadline {
                        let sent = Instant::now();
                        match connection.send(&uuid::Uuid::new_v4().to_string()).await {
                            Ok(202) => latencies.push(sent.elapsed()),
                            Ok(_) => failures += 1,
                            Err(_) => {
                                failures += 1;
                                match push.connect().await {
                                    Ok(fresh) => connection = fresh,
                                    Err(_) => break,
                                }
                            }
                        }
                    }
                    (latencies, failures)
                })
            })
            .collect();
        let mut run = Run::default();
        for task in tasks {
            if let Ok((latencies, failures)) = task.await {
                run.latencies.extend(latencies);
                run.failures += failures;
            }
        }
        run.elapsed = started.elapsed();
        run
    }

    /// Requests started at a fixed `rate` whatever the answers' latency, on a
    /// pool of connections large enough that none waits for a free one.
    pub(super) async fn open_loop(&self, rate: u64, window: Duration) -> Run {
        let total = rate * window.as_secs();
        let period = Duration::from_secs_f64(1.0 / rate as f64);
        let (idle_tx, idle_rx) = tokio::sync::mpsc::unbounded_channel();
        let idle_rx = Arc::new(tokio::sync::Mutex::new(idle_rx));
        for _ in 0..64 {
            if let Ok(connection) = self.connect().await {
                let _ = idle_tx.send(connection);
            }
        }
        let started = Instant::now();
        let mut handles = Vec::with_capacity(total as usize);
        let mut next = tokio::time::Instant::now();
        for _ in 0..total {
            tokio::time::sleep_until(next).await;
            next += period;
            let scheduled = Instant::now();
            let (idle_tx, idle_rx, push) = (idle_tx.clone(), idle_rx.clone(), self.clone());
            handles.push(tokio::spawn(async move {
                let connection = idle_rx.lock().await.try_recv().ok();
                let mut connection = match connection {
                    Some(connection) => connection,
                    None => push.connect().await?,
                };
                let status = connection.send(&uuid::Uuid::new_v4().to_string()).await?;
                // Latency counts from the scheduled start, so a slow answer
                // cannot hide behind a delayed send (no coordinated omission).
                let latency = scheduled.elapsed();
                let _ = idle_tx.send(connection);
                anyhow::Ok((status, latency))
            }));
        }
        let mut run = Run::default();
        for handle in handles {
            match handle.await {
                Ok(Ok((202, latency))) => run.latencies.push(latency),
                _ => run.failures += 1,
            }
        }
        run.elapsed = started.elapsed();
        run
    }
}

/// One keep-alive connection to the receiver.
pub(super) struct Connection1 {
    pub(super) stream: tokio::io::BufReader<tokio::net::TcpStream>,
    pub(super) push: Push,
    pub(super) request: Vec<u8>,
    pub(super) line: String,
}

impl Connection1 {
    /// Send one push with `delivery_id`; return the status code.
    pub(super) async fn send(&mut self, delivery_id: &str) -> anyhow::Result<u16> {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
        self.request.clear();
        self.request.extend_from_slice(&self.push.head);
        self.request.extend_from_slice(delivery_id.as_bytes());
        self.request.extend_from_slice(&self.push.tail);
        self.stream.get_mut().write_all(&self.request).await?;
        self.line.clear();
        self.stream.read_line(&mut self.line).await?;
        let status: u16 = self
            .line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .context("no status line")?;
        let mut length = 0usize;
        loop {
            self.line.clear();
            if self.stream.read_line(&mut self.line).await? == 0 {
                bail!("connection closed");
            }
            let header = self.line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse()?;
            }
        }
        let mut body = vec![0u8; length];
        self.stream.read_exact(&mut body).await?;
        Ok(status)
    }
}

#[derive(Default)]
pub(super) struct Run {
    pub(super) latencies: Vec<Duration>,
    pub(super) failures: u64,
    pub(super) elapsed: Duration,
}

impl Run {
    pub(super) fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    pub(super) fn percentile(&self, q: f64) -> f64 {
        let mut sorted: Vec<Duration> = self.latencies.clone();
        sorted.sort_unstable();
        if sorted.is_empty() {
            return f64::NAN;
        }
        let index = ((sorted.len() - 1) as f64 * q).round() as usize;
        sorted[index].as_secs_f64() * 1000.0
    }

    pub(super) fn failures_note(&self) -> String {
        if self.failures == 0 {
            String::new()
        } else {
            format!("  ({} failed)", self.failures)
        }
    }
}

/// The broker's own confirmed-publish rate, for the same message.
pub(super) struct Ceiling {
    pub(super) connection: Connection,
    pub(super) channel: lapin::Channel,
    pub(super) topology: Topology,
}

impl Ceiling {
    pub(super) async fn connect(topology: &Topology) -> anyhow::Result<Self> {
        let connection = Connection::connect(&amqp_url(), ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        pushsync_broker::declare_topology(&connection, topology, &Default::default()).await?;
        Ok(Self {
            connection,
            channel,
            topology: topology.clone(),
        })
    }

    /// `concurrency` publishers on one channel, each publishing the next
    /// message when the last one is confirmed (as the receiver does per
    /// request), for `window`.
    pub(super) async fn measure(
        &self,
        message: &[u8],
        concurrency: usize,
        window: Duration,
    ) -> anyhow::Result<f64> {
        let confirmed = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicBool::new(false));
        let deadline = Instant::now() + window;
        let started = Instant::now();
        let tasks: Vec<_> = (0..concurrency)
            .map(|_| {
                let (channel, confirmed, failed) =
                    (self.channel.clone(), confirmed.clone(), failed.clone());
                let (exchange, message) = (self.topology.events_exchange(), message.to_vec());
                tokio::spawn(async move {
                    while Instant::now() < deadline {
                        let properties = BasicProperties::default()
                            .with_delivery_mode(2)
                            .with_content_type("application/json".into())
                            .with_message_id(uuid::Uuid::new_v4().to_string().into())
                            .with_type("push/v1".into());
                        let options = BasicPublishOptions {
                            mandatory: true,
                            ..BasicPublishOptions::default()
                        };
                        let confirm = match channel
                            .basic_publish(
                                exchange.as_str().into(),
                                "push.github".into(),
                                options,
                                &message,
                                properties,
                            )
                            .await
                        {
                            Ok(confirm) => confirm.await,
                            Err(error) => Err(error),
                        };
                        match confirm {
                            Ok(Confirmation::Ack(None)) => {
                                confirmed.fetch_add(1, Ordering::Relaxed);
                            }
                            _ => {
                                failed.store(true, Ordering::Relaxed);
                                return;
                            }
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await?;
        }
        if failed.load(Ordering::Relaxed) {
            bail!("the baseline publisher saw a failed confirm");
        }
        Ok(confirmed.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
    }

    pub(super) async fn purge(&self) -> anyhow::Result<()> {
        self.channel
            .queue_purge(
                self.topology.push_events_queue().as_str().into(),
                QueuePurgeOptions::default(),
            )
            .await?;
        Ok(())
    }

    pub(super) async fn close(&self) {
        let _ = self.channel.close(200, "done".into()).await;
        let _ = self.connection.close(200, "done".into()).await;
    }
}
