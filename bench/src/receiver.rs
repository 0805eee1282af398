//! The receiver's throughput and latency, side by side with the broker's own
//! confirmed-publish rate measured in the same run. The receiver runs as its
//! own process (so its RSS is its own); the load generator and the baseline
//! publisher run here.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use lapin::options::QueuePurgeOptions;
use pushsync_proto::Topology;
use pushsync_testkit::amqp::{TestBroker, amqp_url, unique_topology};
use pushsync_testkit::{sign, webhook_fixture};

use crate::Args;

mod load;

use load::{Ceiling, Push, Run};

const SECRET: &str = "bench-secret";
const FIXTURE: &str = "github-push-commits.json";

/// Measure the receiver.
pub async fn run(args: &Args) -> anyhow::Result<()> {
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
            let (cpu_before, own_before) = (receiver.cpu_seconds(), crate::cpu::own_seconds());
            let run = push.closed_loop(concurrency, window).await;
            receiver_cpu += receiver.cpu_seconds() - cpu_before;
            own_cpu += crate::cpu::own_seconds() - own_before;
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
            // The bench has no worker to declare the queues.
            .env("PUSHSYNC_DECLARE_TOPOLOGY", "true")
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
        crate::cpu::seconds_of(&format!("/proc/{}/stat", self.child.id()))
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
