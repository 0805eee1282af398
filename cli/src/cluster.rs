//! Connecting as `kubectl` does: `--kubeconfig` (else `KUBECONFIG`, else
//! `~/.kube/config`, else the in-cluster ServiceAccount), `--context`, and
//! the namespace from `-n` or the context.

use std::path::PathBuf;

use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::CliError;

/// Where the cluster is.
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterArgs {
    /// The kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then the in-cluster account).
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: its current context).
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// The namespace (default: the context's, else `default`).
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// How long a request to the API server may take, e.g. 30s.
    #[arg(long, global = true, default_value = "30s", value_parser = pushsync_service::parse_duration)]
    pub request_timeout: std::time::Duration,
}

/// A connected client and the namespace commands act in.
#[derive(Clone)]
pub struct Cluster {
    /// The client.
    pub client: kube::Client,
    /// `-n`, else the context's namespace.
    pub namespace: String,
}

impl ClusterArgs {
    /// Connect.
    pub async fn connect(&self) -> Result<Cluster, CliError> {
        self.connect_for(false).await
    }

    /// Connect; a client that watches has no read timeout (a quiet watch
    /// reads nothing for minutes).
    pub async fn connect_for(&self, watching: bool) -> Result<Cluster, CliError> {
        let options = KubeConfigOptions {
            context: self.context.clone(),
            ..KubeConfigOptions::default()
        };
        let mut config = match (&self.kubeconfig, &self.context) {
            (Some(path), _) => {
                let kubeconfig = Kubeconfig::read_from(path)
                    .map_err(|e| CliError::Config(format!("{}: {e}", path.display())))?;
                kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .map_err(|e| CliError::Config(e.to_string()))?
            }
            (None, Some(_)) => kube::Config::from_kubeconfig(&options)
                .await
                .map_err(|e| CliError::Config(e.to_string()))?,
            (None, None) => kube::Config::infer()
                .await
                .map_err(|e| CliError::Config(e.to_string()))?,
        };
        config.read_timeout = (!watching).then_some(self.request_timeout);
        config.connect_timeout = Some(self.request_timeout);
        let namespace = self
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        let client = kube::Client::try_from(config).map_err(|e| CliError::Config(e.to_string()))?;
        Ok(Cluster { client, namespace })
    }
}
