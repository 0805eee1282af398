//! A Kubernetes API server in a process, for pushsync's tests and `make run`.
//!
//! It speaks the real REST API over HTTP on loopback, closely enough that the
//! real `kubectl` and the `kube` crate work against it unchanged: discovery,
//! CRUD with resourceVersion concurrency, merge/JSON/strategic patches,
//! server-side apply with managedFields and conflicts, watch, dry-run,
//! finalizers, owner-reference garbage collection, CRDs, validation with
//! Kubernetes-shaped errors, and simulated workload controllers. Requests
//! authenticate with bearer tokens and may impersonate; with `rbac` on they
//! are authorized by the RBAC objects in the store, with escalation
//! prevention and the self-review APIs. Tests can read an audit log of every
//! request (with who sent it) and inject faults.
//!
//! It is test and local-development support: never linked into the shipped
//! receiver or worker (checked by `scripts/check-deps.sh`).

pub mod api;
pub mod auth;
pub mod controllers;
pub mod discovery;
pub mod jsonpath;
pub mod managed;
pub mod openapi_v2;
pub mod patch;
pub mod protobuf;
pub mod rbac;
pub mod registry;
pub mod schema;
pub mod selector;
pub mod status;
pub mod store;
pub mod tls;
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
    /// Authorize with RBAC (`--authorization-mode=RBAC`) and seed the
    /// bootstrap roles; when off, every request is allowed and requests
    /// without a known token run as `system:anonymous`.
    pub rbac: bool,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            port: 0,
            controller_delay: Duration::from_millis(200),
            kubeconfig_out: None,
            rbac: false,
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
    /// Seeding the bootstrap RBAC policy failed.
    #[error("cannot seed the bootstrap RBAC policy")]
    Bootstrap(#[source] status::ApiError),
    /// Setting up the TLS listener for kubectl failed.
    #[error("cannot serve TLS for kubectl")]
    Tls(#[source] tls::TlsError),
}

/// Why a kubeconfig for another identity could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the kubeconfig {path}")]
pub struct KubeconfigError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

/// A running sandbox. Stops when dropped.
pub struct Sandbox {
    url: String,
    kubectl_url: String,
    cluster_url: http::Uri,
    admin_token: String,
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
        let port = config.port;
        let bind_error = |source| StartError::Bind { port, source };
        let listener = TcpListener::bind(("127.0.0.1", port)).map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        let url = format!("http://{addr}");
        let (shared, admin_token) = shared_state(config.rbac)?;
        let shared = web::Data::new(shared);
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
        .map_err(bind_error)?
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        let stop = CancellationToken::new();
        tokio::spawn(controllers::run(
            shared.store.clone(),
            config.controller_delay,
            stop.clone(),
        ));
        // kubectl sends credentials only over TLS, which matters only with RBAC.
        let kubectl_url = if config.rbac {
            let tls = TcpListener::bind(("127.0.0.1", 0)).map_err(bind_error)?;
            let tls_addr = tls.local_addr().map_err(bind_error)?;
            tls::relay(tls, addr, stop.clone()).map_err(StartError::Tls)?;
            format!("https://{tls_addr}")
        } else {
            url.clone()
        };
        let (kubeconfig, dir) = kubeconfig_path(config.kubeconfig_out)?;
        std::fs::write(&kubeconfig, kubeconfig_yaml(&kubectl_url, &admin_token)).map_err(
            |source| StartError::Kubeconfig {
                path: kubeconfig.clone(),
                source,
            },
        )?;
        let cluster_url: http::Uri = url
            .parse()
            .map_err(|_| bind_error(std::io::Error::other("the listener address is not a URI")))?;
        let client = kube::Client::try_from(config_for(&cluster_url, &admin_token))
            .map_err(StartError::Client)?;
        Ok(Self {
            url,
            kubectl_url,
            cluster_url,
            admin_token,
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

    /// The URL the kubeconfigs point at: an `https` one relaying to
    /// [`Sandbox::url`] when RBAC is on (kubectl sends credentials only over
    /// TLS), else [`Sandbox::url`] itself.
    pub fn kubectl_url(&self) -> &str {
        &self.kubectl_url
    }

    /// A kubeconfig file pointing at the sandbox (for `kubectl --kubeconfig`).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// A `kube` client for the sandbox, authenticated as `sandbox-admin`
    /// (in `system:masters`).
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// The `kube` client configuration of `sandbox-admin`; set
    /// `auth_info.impersonate` (and `impersonate_groups`) on it to build an
    /// impersonating client.
    pub fn config(&self) -> kube::Config {
        config_for(&self.cluster_url, &self.admin_token)
    }

    /// Register a new bearer token for `user` in `groups` (plus the
    /// ServiceAccount groups of a `system:serviceaccount:NS:NAME` user, and
    /// `system:authenticated`) and return it.
    pub fn add_user(&self, user: &str, groups: &[&str]) -> String {
        self.shared
            .tokens
            .issue(auth::UserInfo::authenticated(user, groups))
    }

    /// A `kube` client configuration authenticating as `user` in `groups`
    /// (with a new token, see [`Sandbox::add_user`]).
    pub fn config_as(&self, user: &str, groups: &[&str]) -> kube::Config {
        config_for(&self.cluster_url, &self.add_user(user, groups))
    }

    /// A kubeconfig file authenticating as `user` in `groups` (with a new
    /// token, see [`Sandbox::add_user`]), written next to [`Sandbox::kubeconfig`].
    pub fn kubeconfig_as(&self, user: &str, groups: &[&str]) -> Result<PathBuf, KubeconfigError> {
        let token = self.add_user(user, groups);
        let slug: String = user
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        // A random suffix: the file name says nothing about the token.
        let suffix: String = uuid::Uuid::new_v4()
            .simple()
            .to_string()
            .chars()
            .take(8)
            .collect();
        let file = format!("kubeconfig-{slug}-{suffix}");
        let path = self
            .kubeconfig
            .parent()
            .map_or_else(|| PathBuf::from(&file), |dir| dir.join(&file));
        std::fs::write(&path, kubeconfig_yaml(&self.kubectl_url, &token)).map_err(|source| {
            KubeconfigError {
                path: path.clone(),
                source,
            }
        })?;
        Ok(path)
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

/// A kubeconfig for `url` with one context, `sandbox`, and namespace
/// `default`, authenticating with the bearer `token`; an `https` URL is
/// trusted through the sandbox's test CA.
pub fn kubeconfig_yaml(url: &str, token: &str) -> String {
    use base64::Engine as _;
    let ca = if url.starts_with("https://") {
        let data = base64::engine::general_purpose::STANDARD.encode(tls::CA_PEM);
        format!("\n    certificate-authority-data: {data}")
    } else {
        String::new()
    };
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: sandbox\n  cluster:\n    server: {url}{ca}\ncontexts:\n- name: sandbox\n  context:\n    cluster: sandbox\n    user: sandbox\n    namespace: default\ncurrent-context: sandbox\nusers:\n- name: sandbox\n  user:\n    token: \"{token}\"\n"
    )
}

/// The shared state of a new sandbox, and the admin's token.
fn shared_state(rbac: bool) -> Result<(api::Shared, String), StartError> {
    let store = Arc::new(store::Store::new());
    if rbac {
        rbac::bootstrap::seed(&store).map_err(StartError::Bootstrap)?;
    }
    let tokens = auth::Tokens::default();
    let admin = auth::UserInfo::authenticated(auth::ADMIN, &[auth::MASTERS]);
    let admin_token = tokens.issue(admin);
    let shared = api::Shared {
        store,
        audit: Mutex::new(Vec::new()),
        faults: Mutex::new(Vec::new()),
        started: Instant::now(),
        tokens,
        authorization: if rbac {
            rbac::Mode::Rbac
        } else {
            rbac::Mode::AlwaysAllow
        },
    };
    Ok((shared, admin_token))
}

/// Where to write the kubeconfig: `out`, or a new temporary directory.
fn kubeconfig_path(
    out: Option<PathBuf>,
) -> Result<(PathBuf, Option<tempfile::TempDir>), StartError> {
    match out {
        Some(path) => Ok((path, None)),
        None => {
            let dir = tempfile::tempdir().map_err(|source| StartError::Kubeconfig {
                path: PathBuf::from("<tempdir>"),
                source,
            })?;
            Ok((dir.path().join("kubeconfig"), Some(dir)))
        }
    }
}

/// A `kube` client configuration for `cluster_url` with the bearer `token`.
fn config_for(cluster_url: &http::Uri, token: &str) -> kube::Config {
    let mut config = kube::Config::new(cluster_url.clone());
    config.auth_info.token = Some(token.to_owned().into());
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printing_the_shared_state_never_prints_a_token() {
        let (shared, admin_token) = shared_state(false).unwrap();
        let user_token = shared
            .tokens
            .issue(auth::UserInfo::authenticated("alice", &[]));
        let printed = format!("{shared:?}");
        assert!(
            !printed.contains(&admin_token),
            "the admin's token is printed"
        );
        assert!(!printed.contains(&user_token), "alice's token is printed");
        assert!(printed.contains("issued: 2"), "{printed}");
    }
}
