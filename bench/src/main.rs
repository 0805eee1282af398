//! `make bench`: each part measured beside a baseline taken in the same run
//! ([`receiver`], [`sandbox`], [`worker`], [`scale`]; [`soak`] is `make
//! soak`). Every figure is printed with the machine's core count; compare
//! figures only within one run.

#![allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::time::Duration;

use clap::Parser;

/// pushsync's benchmarks, each beside a baseline measured in the same run.
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

mod cpu;
mod receiver;
mod sandbox;
mod scale;
mod soak;
mod worker;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if matches!(args.only, Part::All | Part::Receiver) {
        receiver::run(&args).await?;
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
