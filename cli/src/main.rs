//! `pushsync`: the operator's command line. It talks to Kubernetes as
//! `kubectl` does (kubeconfig, `--context`, `-n`) and acts on Applications
//! through the same annotations and fields the workers read, so every sync
//! still goes through the queue and one worker at a time.
//!
//! Exit codes: 0 done; 1 an error (the cluster refused or could not be
//! reached, a bad argument value); 2 usage; 3 a wait timed out; 4 what was
//! waited for failed (the sync failed, the Application is degraded or
//! stalled, the request was refused); 5 `diff` found differences.

mod app;
mod cluster;
mod diff;
mod output;
mod secrets;
mod show;
mod wait;
mod webhook;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "pushsync",
    version,
    about = "Operate pushsync: Applications (inspect, diff, sync, roll back, wait) and repository webhooks",
    after_help = "Exit codes: 0 done, 1 error, 2 usage, 3 timed out, 4 failed (sync failed, stalled, refused), 5 diff found differences."
)]
struct Cli {
    #[command(flatten)]
    cluster: cluster::ClusterArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Applications: list, inspect, sync, roll back, wait, suspend, delete.
    #[command(subcommand, visible_alias = "apps")]
    App(app::AppCommand),
    /// Repository push webhooks: register (idempotent), list, ping, delete, rotate the secret.
    #[command(subcommand, visible_alias = "webhooks")]
    Webhook(webhook::WebhookCommand),
}

/// How a command ended, as an exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Done.
    Ok,
    /// A wait ran out of time.
    TimedOut,
    /// What was waited for failed.
    Failed,
    /// `diff` found differences.
    Differs,
}

/// An error that ends the command with exit code 1.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The kubeconfig could not be read or used.
    #[error("kubeconfig: {0}")]
    Config(String),
    /// The API server refused or could not be reached.
    #[error("{what}: {source}")]
    Kube {
        /// What was being done.
        what: String,
        /// Why it failed.
        #[source]
        source: kube::Error,
    },
    /// The Application does not exist.
    #[error("application {namespace}/{name} not found")]
    NotFound {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// An argument value that cannot be used.
    #[error("{0}")]
    Invalid(String),
    /// Writing the output failed.
    #[error("writing the output: {0}")]
    Output(String),
}

impl CliError {
    /// A Kubernetes error while doing `what`.
    pub fn kube(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Self {
        let what = what.into();
        move |source| Self::Kube { what, source }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("pushsync: cannot start: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::App(command) => app::run(&cli.cluster, command).await,
            Command::Webhook(command) => webhook::run(&cli.cluster, command).await,
        }
    });
    match result {
        Ok(Status::Ok) => ExitCode::SUCCESS,
        Ok(Status::TimedOut) => ExitCode::from(3),
        Ok(Status::Failed) => ExitCode::from(4),
        Ok(Status::Differs) => ExitCode::from(5),
        Err(error) => {
            eprintln!("pushsync: {}", output::clean(&error.to_string()));
            ExitCode::FAILURE
        }
    }
}
