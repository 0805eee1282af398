//! `make bench`: the receiver's throughput and latency, side by side with the
//! broker's own confirmed-publish rate measured in the same run.
//!
//! The receiver runs as its own process (so its RSS is its own); the load
//! generator and the baseline publisher run here. Every figure is printed
//! with the machine's core count; compare figures only within one run.

#![allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueuePurgeOptions};
use lapin::{BasicProperties, Confirmation, Connection, ConnectionProperties};
use pushsync_proto::Topology;
use pushsync_testkit::amqp::{TestBroker, amqp_url, unique_topology};
use pushsync_testkit::{sign, webhook_fixture};

/// Benchmark the receiver against the broker's own confirmed-publish rate.
#[derive(Debug, Parser)]
struct Args {
    /// The release `pushsync-receiver` binary to measure.
    #[arg(long, default_value = "target/release/pushsync-receiver")]
    receiver_bin: std::path::PathBuf,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 3)]
    seconds: u64,
    /// Concurrency levels (in-flight requests / in-flight confirms).
    #[arg(long, value_delimiter = ',', default_value = "1,8,32,128")]
    concurrency: Vec<usize>,
    /// Alternating ceiling/receiver rounds per concurrency level; the medians
    /// are reported, so a burst of noise from other tenants moves one round,
    /// not the figure.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// The API sandbox binary (release build), run as its own process to
    /// measure the worker's CPU alone.
    #[arg(long, default_value = "target/release/pushsync-sandbox")]
    sandbox_bin: std::path::PathBuf,
    /// The worker binary (release build) for the scale part.
    #[arg(long, default_value = "target/release/pushsync-worker")]
    worker_bin: std::path::PathBuf,
    /// How long `--only soak` pushes and kills.
    #[arg(long, default_value_t = 120)]
    soak_seconds: u64,
    /// Which part to measure.
    #[arg(long, value_enum, default_value = "all")]
    only: Part,
    /// Request rate of the fixed-rate latency measurement.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
}

/// A part of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Part {
    /// Everything.
    All,
    /// The webhook receiver against RabbitMQ.
    Receiver,
    /// The Kubernetes API sandbox.
    Sandbox,
    /// The worker: push → applied, 100-resource sync against kubectl, no-op re-sync.
    Worker,
    /// Several workers: burst coalescing, throughput with 1–3 workers, poll cost.
    Scale,
    /// `make soak` (not part of `all`): minutes of pushes with workers killed
    /// and the broker cut, then a count of lost pushes.
    Soak,
}

mod sandbox;
mod scale;
mod soak;
mod worker;

const SECRET: &str = "bench-secret";
const FIXTURE: &str = "github-push-commits.json";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if matches!(args.only, Part::All | Part::Receiver) {
        receiver(&args).await?;
    }
    if matches!(args.only, Part::All | Part::Sandbox) {
        sandbox::run(Duration::from_secs(args.seconds)).await?;
    }
    if matches!(args.only, Part::All | Part::Worker) {
        worker::run(&args.sandbox_bin).await?;
    }
    if matches!(args.only, Part::All | Part::Scale) {
        scale::run(&args.worker_bin).await?;
    }
    if args.only == Part::Soak {
        soak::run(&args.worker_bin, Duration::from_secs(args.soak_seconds)).await?;
    }
    Ok(())
}

async fn receiver(args: &Args) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let body = webhook_fixture(FIXTURE);
    let signature = sign::hub_signature(SECRET, &body);
    let broker = TestBroker::connect().await;
    let topology = unique_topology();

    let mut receiver = Receiver::start(&args.receiver_bin, &topology).await?;
    let push = Push::new(receiver.addr, &body, &signature);

    // The exact message the receiver publishes for this push: the ceiling
    // publishes the same bytes.
    let status = push
        .connect()
        .await?
        .send(&format!("warmup-{}", uuid::Uuid::new_v4()))
        .await?;
    if status != 202 {
        bail!("the warm-up push got {status}");
    }
    let sample = broker
        .take(&topology.push_events_queue(), 1, Duration::from_secs(10))
        .await;
    let Some(message) = sample.first() else {
        bail!("the receiver published nothing for the warm-up push");
    };
    let message = message.data.clone();

    println!("pushsync bench: receiver — {cores} cores");
    println!(
        "  input: signed GitHub push {FIXTURE} ({} bytes) → confirmed, persistent publish of a {}-byte push/v1 event to a quorum queue",
        body.len(),
        message.len()
    );
    println!(
        "  ceiling: a plain lapin publisher, same message, same number of confirms in flight, same run"
    );
    println!(
        "  each level: {} alternating rounds of {} s per side, median rates; latency over all receiver rounds",
        args.rounds.max(1),
        args.seconds
    );
    println!();
    // Latency at a fixed rate first, on a quiet broker (after the heavy
    // closed-loop levels RabbitMQ keeps compacting purged queues for a while).
    let fixed_window = Duration::from_secs(args.seconds.max(5));
    let fixed = push.open_loop(args.rate, fixed_window).await;
    purge(&broker, &topology).await;
    println!(
        "  fixed rate {}/s for {} s: achieved {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms{}",
        args.rate,
        fixed_window.as_secs(),
        fixed.rate(),
        fixed.percentile(0.50),
        fixed.percentile(0.99),
        fixed.percentile(1.0),
        fixed.failures_note(),
    );
    println!();
    println!(
        "  {:>11}  {:>14}  {:>14}  {:>6}  {:>8}  {:>8}  {:>13}  {:>13}",
        "concurrency",
        "ceiling msg/s",
        "receiver req/s",
        "ratio",
        "p50 ms",
        "p99 ms",
        "server avg ms",
        "confirm avg ms"
    );
    let window = Duration::from_secs(args.seconds);
    let ceiling_queue = unique_topology();
    let ceiling = Ceiling::connect(&ceiling_queue).await?;
    let mut cpu_notes = Vec::new();
    for &concurrency in &args.concurrency {
        let mut ceiling_rates = Vec::new();
        let mut receiver_rates = Vec::new();
        let mut all = Run::default();
        let before = receiver.averages().await;
        let (mut receiver_cpu, mut own_cpu) = (0.0, 0.0);
        for _ in 0..args.rounds.max(1) {
            ceiling_rates.push(ceiling.measure(&message, concurrency, window).await?);
            ceiling.purge().await?;
            let (cpu_before, own_before) = (receiver.cpu_seconds(), own_cpu_seconds());
            let run = push.closed_loop(concurrency, window).await;
            receiver_cpu += receiver.cpu_seconds() - cpu_before;
            own_cpu += own_cpu_seconds() - own_before;
            purge(&broker, &topology).await;
            receiver_rates.push(run.rate());
            all.latencies.extend(run.latencies);
            all.failures += run.failures;
        }
        let after = receiver.averages().await;
        let requests = all.latencies.len().max(1) as f64;
        cpu_notes.push(format!(
            "c={concurrency}: receiver {:.0} µs, load generator {:.0} µs",
            1e6 * receiver_cpu / requests,
            1e6 * own_cpu / requests
        ));
        let (ceiling_rate, receiver_rate) =
            (median(&mut ceiling_rates), median(&mut receiver_rates));
        println!(
            "  {:>11}  {:>14.0}  {:>14.0}  {:>5.0}%  {:>8.2}  {:>8.2}  {:>13.2}  {:>13.2}{}",
            concurrency,
            ceiling_rate,
            receiver_rate,
            100.0 * receiver_rate / ceiling_rate,
            all.percentile(0.50),
            all.percentile(0.99),
            after.request_ms_since(&before),
            after.confirm_ms_since(&before),
            all.failures_note(),
        );
    }
    println!("  CPU per request: {}", cpu_notes.join("; "));

    println!("  receiver peak RSS: {:.1} MiB", receiver.peak_rss_mib()?);

    receiver.stop();
    ceiling.close().await;
    broker.delete_topology(&topology).await;
    broker.delete_topology(&ceiling_queue).await;
    Ok(())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

async fn purge(broker: &TestBroker, topology: &Topology) {
    let _ = broker
        .channel
        .queue_purge(
            topology.push_events_queue().as_str().into(),
            QueuePurgeOptions::default(),
        )
        .await;
}

/// The receiver as a child process.
struct Receiver {
    child: Child,
    base: String,
    addr: std::net::SocketAddr,
}

impl Receiver {
    async fn start(binary: &std::path::Path, topology: &Topology) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new(binary)
            .env("PUSHSYNC_LISTEN", format!("127.0.0.1:{port}"))
            .env("PUSHSYNC_AMQP_URL", amqp_url())
            .env("PUSHSYNC_QUEUE_PREFIX", topology.prefix())
            .env("PUSHSYNC_GITHUB_SECRET", SECRET)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        // Owned from here: dropping it (a failed start included) ends the process.
        let receiver = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            addr: ([127, 0, 0, 1], port).into(),
        };
        let client = reqwest::Client::new();
        for _ in 0..500 {
            if let Ok(response) = client.get(format!("{}/readyz", receiver.base)).send().await
                && response.status() == 200
            {
                return Ok(receiver);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bail!("the receiver did not become ready")
    }

    /// Sums and counts of the receiver's own latency histograms.
    async fn averages(&self) -> Averages {
        let text = match reqwest::get(format!("{}/metrics", self.base)).await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let value = |name: &str| -> f64 {
            text.lines()
                .filter(|l| l.starts_with(name))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        };
        Averages {
            request: (
                value("pushsync_receiver_request_duration_seconds_sum"),
                value("pushsync_receiver_request_duration_seconds_count"),
            ),
            confirm: (
                value("pushsync_receiver_publish_duration_seconds_sum"),
                value("pushsync_receiver_publish_duration_seconds_count"),
            ),
        }
    }

    /// User plus system CPU seconds the receiver has used.
    fn cpu_seconds(&self) -> f64 {
        cpu_seconds_of(&format!("/proc/{}/stat", self.child.id()))
    }

    fn peak_rss_mib(&self) -> anyhow::Result<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .context("no VmHWM in /proc status")?;
        Ok(kib / 1024.0)
    }

    fn stop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

/// User plus system CPU seconds this process has used.
fn own_cpu_seconds() -> f64 {
    cpu_seconds_of("/proc/self/stat")
}

fn cpu_seconds_of(stat_path: &str) -> f64 {
    // Fields 14 and 15 (utime, stime) in clock ticks; the command name in
    // field 2 may contain spaces, so count from its closing parenthesis.
    let Ok(stat) = std::fs::read_to_string(stat_path) else {
        return f64::NAN;
    };
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    // After ")" the state is index 0, so utime (field 14) is index 11.
    (ticks(11) + ticks(12)) / 100.0
}

/// (sum in seconds, count) of two histograms, scraped from `/metrics`.
struct Averages {
    request: (f64, f64),
    confirm: (f64, f64),
}

impl Averages {
    fn mean_ms(after: (f64, f64), before: (f64, f64)) -> f64 {
        let count = after.1 - before.1;
        if count <= 0.0 {
            return f64::NAN;
        }
        1000.0 * (after.0 - before.0) / count
    }

    fn request_ms_since(&self, before: &Self) -> f64 {
        Self::mean_ms(self.request, before.request)
    }

    fn confirm_ms_since(&self, before: &Self) -> f64 {
        Self::mean_ms(self.confirm, before.confirm)
    }
}

/// Signed pushes to the receiver, over a minimal keep-alive HTTP/1.1 client:
/// the load generator shares the machine with the receiver and the broker, so
/// it must cost as little CPU as possible (a general-purpose client costs
/// several times more per request and would be measured as receiver slowness).
#[derive(Clone)]
struct Push {
    addr: std::net::SocketAddr,
    /// Request head up to the delivery id header value.
    head: Arc<Vec<u8>>,
    /// Rest of the head and the body, after the delivery id.
    tail: Arc<Vec<u8>>,
}

impl Push {
    fn new(addr: std::net::SocketAddr, body: &[u8], signature: &str) -> Self {
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

    async fn connect(&self) -> anyhow::Result<Connection1> {
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
    async fn closed_loop(&self, concurrency: usize, window: Duration) -> Run {
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
    async fn open_loop(&self, rate: u64, window: Duration) -> Run {
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
struct Connection1 {
    stream: tokio::io::BufReader<tokio::net::TcpStream>,
    push: Push,
    request: Vec<u8>,
    line: String,
}

impl Connection1 {
    /// Send one push with `delivery_id`; return the status code.
    async fn send(&mut self, delivery_id: &str) -> anyhow::Result<u16> {
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
struct Run {
    latencies: Vec<Duration>,
    failures: u64,
    elapsed: Duration,
}

impl Run {
    fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, q: f64) -> f64 {
        let mut sorted: Vec<Duration> = self.latencies.clone();
        sorted.sort_unstable();
        if sorted.is_empty() {
            return f64::NAN;
        }
        let index = ((sorted.len() - 1) as f64 * q).round() as usize;
        sorted[index].as_secs_f64() * 1000.0
    }

    fn failures_note(&self) -> String {
        if self.failures == 0 {
            String::new()
        } else {
            format!("  ({} failed)", self.failures)
        }
    }
}

/// The broker's own confirmed-publish rate, for the same message.
struct Ceiling {
    connection: Connection,
    channel: lapin::Channel,
    topology: Topology,
}

impl Ceiling {
    async fn connect(topology: &Topology) -> anyhow::Result<Self> {
        let connection = Connection::connect(&amqp_url(), ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        pushsync_broker::declare_topology(&channel, topology).await?;
        Ok(Self {
            connection,
            channel,
            topology: topology.clone(),
        })
    }

    /// `concurrency` publishers on one channel, each publishing the next
    /// message when the last one is confirmed (as the receiver does per
    /// request), for `window`.
    async fn measure(
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

    async fn purge(&self) -> anyhow::Result<()> {
        self.channel
            .queue_purge(
                self.topology.push_events_queue().as_str().into(),
                QueuePurgeOptions::default(),
            )
            .await?;
        Ok(())
    }

    async fn close(&self) {
        let _ = self.channel.close(200, "done".into()).await;
        let _ = self.connection.close(200, "done".into()).await;
    }
}
