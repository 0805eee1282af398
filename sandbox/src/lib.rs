//! A Kubernetes API server in a process, for pushsync's tests and `make run`.
//!
//! It speaks the real REST API over HTTP on loopback, closely enough that the
//! real `kubectl` and the `kube` crate work against it unchanged: discovery,
//! CRUD with resourceVersion concurrency, merge/JSON/strategic patches,
//! server-side apply with managedFields and conflicts, watch, dry-run,
//! finalizers, owner-reference garbage collection, CRDs, validation with
//! Kubernetes-shaped errors, and simulated workload controllers. Tests can
//! read an audit log of every request and inject faults.
//!
//! It is test and local-development support: never linked into the shipped
//! receiver or worker (checked by `scripts/check-deps.sh`).

pub mod api;
pub mod controllers;
pub mod discovery;
pub mod managed;
pub mod patch;
pub mod protobuf;
pub mod registry;
pub mod selector;
pub mod status;
pub mod store;
pub mod validate;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpServer, web};
use tokio_util::sync::CancellationToken;

pub use api::{AuditEntry, Fault};
pub use controllers::HEALTH_ANNOTATION;

/// How to start a sandbox.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Port on 127.0.0.1 (0: any free port).
    pub port: u16,
    /// How long simulated controllers take to make a workload available.
    pub controller_delay: Duration,
    /// Where to write the kubeconfig (a temporary file when `None`).
    pub kubeconfig_out: Option<PathBuf>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            port: 0,
            controller_delay: Duration::from_millis(200),
            kubeconfig_out: None,
        }
    }
}

/// Why a sandbox did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Binding the port failed.
    #[error("cannot listen on 127.0.0.1:{port}")]
    Bind {
        /// The port asked for.
        port: u16,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Writing the kubeconfig failed.
    #[error("cannot write the kubeconfig {path}")]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Building the kube client failed.
    #[error("cannot build a kube client for the sandbox")]
    Client(#[source] kube::Error),
}

/// A running sandbox. Stops when dropped.
pub struct Sandbox {
    url: String,
    kubeconfig: PathBuf,
    client: kube::Client,
    shared: web::Data<api::Shared>,
    stop: CancellationToken,
    server: actix_web::dev::ServerHandle,
    _dir: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("url", &self.url)
            .field("kubeconfig", &self.kubeconfig)
            .finish()
    }
}

impl Sandbox {
    /// Start on a free loopback port with default settings.
    pub async fn start() -> Result<Self, StartError> {
        Self::start_with(SandboxConfig::default()).await
    }

    /// Start with `config`.
    pub async fn start_with(config: SandboxConfig) -> Result<Self, StartError> {
        let listener =
            TcpListener::bind(("127.0.0.1", config.port)).map_err(|source| StartError::Bind {
                port: config.port,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            port: config.port,
            source,
        })?;
        let url = format!("http://{addr}");
        let shared = web::Data::new(api::Shared {
            store: Arc::new(store::Store::new()),
            audit: Mutex::new(Vec::new()),
            faults: Mutex::new(Vec::new()),
            started: Instant::now(),
        });
        let app_shared = shared.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(app_shared.clone())
                .configure(api::configure)
        })
        .workers(2)
        .disable_signals()
        .shutdown_timeout(1)
        .listen(listener)
        .map_err(|source| StartError::Bind {
            port: config.port,
            source,
        })?
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        let stop = CancellationToken::new();
        tokio::spawn(controllers::run(
            shared.store.clone(),
            config.controller_delay,
            stop.clone(),
        ));

        let (kubeconfig, dir) = match config.kubeconfig_out {
            Some(path) => (path, None),
            None => {
                let dir = tempfile::tempdir().map_err(|source| StartError::Kubeconfig {
                    path: PathBuf::from("<tempdir>"),
                    source,
                })?;
                (dir.path().join("kubeconfig"), Some(dir))
            }
        };
        std::fs::write(&kubeconfig, kubeconfig_yaml(&url)).map_err(|source| {
            StartError::Kubeconfig {
                path: kubeconfig.clone(),
                source,
            }
        })?;
        let cluster_url: http::Uri = url.parse().map_err(|_| StartError::Bind {
            port: config.port,
            source: std::io::Error::other("the listener address is not a URI"),
        })?;
        let client =
            kube::Client::try_from(kube::Config::new(cluster_url)).map_err(StartError::Client)?;
        Ok(Self {
            url,
            kubeconfig,
            client,
            shared,
            stop,
            server: handle,
            _dir: dir,
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A kubeconfig file pointing at the sandbox (for `kubectl --kubeconfig`).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// A `kube` client for the sandbox.
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// Every request so far.
    pub fn audit(&self) -> Vec<AuditEntry> {
        self.shared
            .audit
            .lock()
            .map(|a| a.clone())
            .unwrap_or_default()
    }

    /// Make matching requests fail or slow down.
    pub fn inject(&self, fault: Fault) {
        if let Ok(mut faults) = self.shared.faults.lock() {
            faults.push(fault);
        }
    }

    /// Remove every injected fault that has not fired yet.
    pub fn clear_faults(&self) {
        if let Ok(mut faults) = self.shared.faults.lock() {
            faults.clear();
        }
    }

    /// Stop serving.
    pub async fn stop(self) {
        self.stop.cancel();
        self.server.stop(false).await;
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.stop.cancel();
        let server = self.server.clone();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move { server.stop(false).await });
        }
    }
}

/// A kubeconfig for `url` with one context, `sandbox`, and namespace `default`.
pub fn kubeconfig_yaml(url: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: sandbox\n  cluster:\n    server: {url}\ncontexts:\n- name: sandbox\n  context:\n    cluster: sandbox\n    user: sandbox\n    namespace: default\ncurrent-context: sandbox\nusers:\n- name: sandbox\n  user: {{}}\n"
    )
}
