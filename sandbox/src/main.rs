//! `pushsync-sandbox`: run the Kubernetes API sandbox by hand and point kubectl at it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use pushsync_sandbox::{Sandbox, SandboxConfig};

/// An in-memory Kubernetes API server on loopback, for trying things by hand.
#[derive(Debug, Parser)]
#[command(name = "pushsync-sandbox", version, about)]
struct Args {
    /// Port on 127.0.0.1.
    #[arg(long, default_value_t = 6443)]
    port: u16,
    /// Where to write a kubeconfig for kubectl.
    #[arg(long, default_value = "sandbox.kubeconfig")]
    kubeconfig_out: PathBuf,
    /// Milliseconds the simulated controllers take to make workloads available.
    #[arg(long, default_value_t = 1000)]
    controller_delay_ms: u64,
    /// Authorize requests with RBAC (the kubeconfig's user is in
    /// `system:masters`); without it every request is allowed.
    #[arg(long)]
    rbac: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let config = SandboxConfig {
        port: args.port,
        controller_delay: Duration::from_millis(args.controller_delay_ms),
        kubeconfig_out: Some(args.kubeconfig_out.clone()),
        rbac: args.rbac,
    };
    let sandbox = match Sandbox::start_with(config).await {
        Ok(sandbox) => sandbox,
        Err(error) => {
            eprintln!("pushsync-sandbox: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mode = if args.rbac { "RBAC" } else { "AlwaysAllow" };
    println!(
        "Kubernetes API sandbox on {} (authorization: {mode})",
        sandbox.url()
    );
    if args.rbac {
        println!("  TLS for kubectl on {}", sandbox.kubectl_url());
    }
    println!(
        "  kubectl --kubeconfig {} get namespaces",
        args.kubeconfig_out.display()
    );
    let _ = tokio::signal::ctrl_c().await;
    sandbox.stop().await;
    ExitCode::SUCCESS
}
