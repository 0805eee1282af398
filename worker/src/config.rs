//! The worker's configuration: flags mirrored by `PUSHSYNC_*` variables,
//! parsed once in `main` and validated into a [`Config`]; an unusable value
//! is a [`ConfigError`] naming the variable (the binary exits 64).

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use pushsync_proto::{AppRef, Topology};
use pushsync_service::{LogFormat, parse_duration};
use secrecy::SecretString;

use crate::git::{Credentials, CredentialsError, RemotePolicy, SocketTimeouts};
use crate::index::Namespaces;
use crate::loops::Settings;
use crate::loops::poll::PollSettings;
use crate::loops::sync::SyncSettings;
use crate::render::programs::which;
use crate::retry::RetryPolicy;

/// Command line and environment of `pushsync-worker`. The cluster is the one
/// of `KUBECONFIG` (or the in-cluster service account).
#[derive(Debug, Parser)]
#[command(name = "pushsync-worker", version, about, long_about = None)]
pub struct Args {
    /// RabbitMQ URI, e.g. amqp://user:pass@rabbitmq:5672/%2f.
    #[arg(long, env = "PUSHSYNC_AMQP_URL", hide_env_values = true)]
    pub amqp_url: Option<String>,
    /// File holding the RabbitMQ URI (alternative to --amqp-url).
    #[arg(long, env = "PUSHSYNC_AMQP_URL_FILE")]
    pub amqp_url_file: Option<PathBuf>,
    /// Prefix of exchange and queue names; every part of one deployment must agree.
    #[arg(long, env = "PUSHSYNC_QUEUE_PREFIX", default_value = Topology::DEFAULT_PREFIX)]
    pub queue_prefix: String,
    /// Push events handled at once (broker prefetch of the dispatcher).
    #[arg(long, env = "PUSHSYNC_PREFETCH", default_value_t = 32)]
    pub prefetch: u16,
    /// Syncs running at once in this worker.
    #[arg(long, env = "PUSHSYNC_MAX_SYNCS", default_value_t = 4)]
    pub max_syncs: u16,
    /// Sync jobs held at once: running, waiting for another worker's sync of
    /// the same Application, or waiting to retry (broker prefetch; default
    /// eight per sync slot).
    #[arg(long, env = "PUSHSYNC_SYNC_PREFETCH")]
    pub sync_prefetch: Option<u16>,
    /// Git remote operations (ls-remote, fetch) at once in this worker.
    #[arg(long, env = "PUSHSYNC_MAX_GIT_FETCHES", default_value_t = 4)]
    pub max_git_fetches: u16,
    /// The install namespace: Projects are read here, and Leases kept here
    /// unless PUSHSYNC_LEASE_NAMESPACE says otherwise.
    #[arg(long, env = "PUSHSYNC_NAMESPACE", default_value = "pushsync")]
    pub namespace: String,
    /// Whose Applications are honoured: `*`, or a comma-separated list of
    /// namespaces [default: the install namespace].
    #[arg(long, env = "PUSHSYNC_APPLICATION_NAMESPACES")]
    pub application_namespaces: Option<String>,
    /// Namespace of the Leases that keep one sync per Application and one
    /// poller [default: the install namespace].
    #[arg(long, env = "PUSHSYNC_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// How long a Lease holds without renewal (a dead worker's syncs resume
    /// elsewhere after this).
    #[arg(long, env = "PUSHSYNC_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,
    /// How often a job waiting for another worker's sync of its Application checks.
    #[arg(long, env = "PUSHSYNC_LOCK_POLL", default_value = "1s", value_parser = parse_duration)]
    pub lock_poll: Duration,
    /// This worker's name in Leases (default: host name and process id).
    #[arg(long, env = "PUSHSYNC_IDENTITY")]
    pub identity: Option<String>,
    /// On SIGTERM, how long running syncs may take to finish before they are
    /// handed back to the queue.
    #[arg(long, env = "PUSHSYNC_SHUTDOWN_GRACE", default_value = "30s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
    /// Attempts per sync job when an Application names no `syncPolicy.retry`.
    #[arg(long, env = "PUSHSYNC_RETRY_LIMIT", default_value_t = 5)]
    pub retry_limit: u32,
    /// First retry delay when an Application names none (doubling each time).
    #[arg(long, env = "PUSHSYNC_RETRY_BACKOFF", default_value = "5s", value_parser = parse_duration)]
    pub retry_backoff: Duration,
    /// Longest retry delay when an Application names none.
    #[arg(long, env = "PUSHSYNC_RETRY_MAX_BACKOFF", default_value = "3m", value_parser = parse_duration)]
    pub retry_max_backoff: Duration,
    /// Most messages in the push-events and in the sync-jobs queue (more are refused, never dropped).
    #[arg(long, env = "PUSHSYNC_QUEUE_MAX_LENGTH", default_value_t = 100_000)]
    pub queue_max_length: u64,
    /// Most bytes of messages in each of those queues (e.g. 512Mi).
    #[arg(long, env = "PUSHSYNC_QUEUE_MAX_BYTES", default_value = "512Mi", value_parser = pushsync_service::parse_bytes)]
    pub queue_max_bytes: u64,
    /// Most messages kept in the dead-letter queue (the oldest go first).
    #[arg(
        long,
        env = "PUSHSYNC_DEAD_LETTER_MAX_LENGTH",
        default_value_t = 10_000
    )]
    pub dead_letter_max_length: u64,
    /// Longest a sync job waits for its Application's lock (another sync) before it is re-queued.
    #[arg(long, env = "PUSHSYNC_MAX_LOCK_WAIT", default_value = "10m", value_parser = parse_duration)]
    pub max_lock_wait: Duration,
    /// Deprecated: PUSHSYNC_APPLICATION_NAMESPACES with one namespace.
    #[arg(long, env = "PUSHSYNC_WATCH_NAMESPACE", hide = true)]
    pub watch_namespace: Option<String>,
    /// Directory of the git cache.
    #[arg(
        long,
        env = "PUSHSYNC_GIT_CACHE",
        default_value = "/tmp/pushsync-git-cache"
    )]
    pub git_cache: PathBuf,
    /// YAML list of git credentials (`url` prefix, `username`,
    /// `passwordFile` or `sshPrivateKeyFile`; the files are mounted Secrets).
    #[arg(long, env = "PUSHSYNC_GIT_CREDENTIALS")]
    pub git_credentials: Option<PathBuf>,
    /// How long a git fetch may take [default: 2m].
    #[arg(long, env = "PUSHSYNC_GIT_TIMEOUT", value_parser = parse_duration)]
    pub git_timeout: Option<Duration>,
    /// Schemes a repoURL may use (comma-separated; `file` allows local paths).
    #[arg(
        long,
        env = "PUSHSYNC_GIT_ALLOWED_SCHEMES",
        default_value = "https,ssh,git",
        value_delimiter = ','
    )]
    pub git_allowed_schemes: Vec<String>,
    /// Allow remotes on loopback, link-local (cloud metadata) and unspecified addresses.
    #[arg(long, env = "PUSHSYNC_GIT_ALLOW_LOCAL_ADDRESSES")]
    pub git_allow_local_addresses: bool,
    /// Most bytes one fetch may receive (e.g. 1Gi).
    #[arg(long, env = "PUSHSYNC_GIT_MAX_FETCH_BYTES", default_value = "1Gi", value_parser = pushsync_service::parse_bytes)]
    pub git_max_fetch_bytes: u64,
    /// Disk budget of the git cache (e.g. 4Gi; 0: unbounded); least recently used repositories are evicted.
    #[arg(long, env = "PUSHSYNC_GIT_CACHE_MAX_BYTES", default_value = "4Gi", value_parser = pushsync_service::parse_bytes)]
    pub git_cache_max_bytes: u64,
    /// Longest TCP connect to a git remote.
    #[arg(long, env = "PUSHSYNC_GIT_CONNECT_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub git_connect_timeout: Duration,
    /// Longest wait for a git remote to send or take data on an open connection.
    #[arg(long, env = "PUSHSYNC_GIT_IO_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub git_io_timeout: Duration,
    /// Deprecated: PUSHSYNC_GIT_TIMEOUT in seconds.
    #[arg(long, env = "PUSHSYNC_GIT_TIMEOUT_SECONDS", hide = true)]
    pub git_timeout_seconds: Option<u64>,
    /// How long a wave or hook may take to become healthy [default: 5m].
    #[arg(long, env = "PUSHSYNC_HEALTH_TIMEOUT", value_parser = parse_duration)]
    pub health_timeout: Option<Duration>,
    /// Deprecated: PUSHSYNC_HEALTH_TIMEOUT in seconds.
    #[arg(long, env = "PUSHSYNC_HEALTH_TIMEOUT_SECONDS", hide = true)]
    pub health_timeout_seconds: Option<u64>,
    /// The kubectl binary for Kustomize sources: a path, or a name looked up
    /// on PATH at start [default: kubectl].
    #[arg(long, env = "PUSHSYNC_KUBECTL")]
    pub kubectl: Option<PathBuf>,
    /// The helm binary (4.x; 3.x works too) for Helm sources: a path, or a name looked up on
    /// PATH at start [default: helm].
    #[arg(long, env = "PUSHSYNC_HELM")]
    pub helm: Option<PathBuf>,
    /// Address of `/metrics`, `/healthz` and `/readyz`.
    #[arg(long, env = "PUSHSYNC_METRICS_LISTEN", default_value = "0.0.0.0:9090")]
    pub metrics_listen: String,
    /// Time between fallback polls of every repository (one worker polls at
    /// a time); `0s` turns polling off.
    #[arg(long, env = "PUSHSYNC_POLL_INTERVAL", default_value = "10m", value_parser = parse_duration)]
    pub poll_interval: Duration,
    /// Applications not compared with the cluster for this long are
    /// refreshed by the poll, so drift is reported even without selfHeal.
    #[arg(long, env = "PUSHSYNC_DRIFT_INTERVAL", default_value = "30m", value_parser = parse_duration)]
    pub drift_interval: Duration,
    /// Name of the poller's leader-election Lease.
    #[arg(long, env = "PUSHSYNC_POLL_LEASE", default_value = "pushsync-poller")]
    pub poll_lease: String,
    /// Log format.
    #[arg(long, env = "PUSHSYNC_LOG_FORMAT", value_enum, default_value = "json")]
    pub log_format: LogFormat,
    /// What to do (default: run the worker).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What the binary does besides running the worker.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Ask for a sync of one Application now, through the queue, and exit.
    Request {
        /// The Application, as NAMESPACE/NAME.
        application: String,
        /// Only compare with Git and apply as the sync policy says, instead
        /// of a sync that applies even without automated sync.
        #[arg(long, conflicts_with_all = ["revision", "rollback"])]
        refresh: bool,
        /// Sync this revision (commit, branch or tag) instead of the one targetRevision names.
        #[arg(long, conflicts_with = "rollback")]
        revision: Option<String>,
        /// Roll back to this revision of the Application's history; automated sync is turned off (spec.suspend) until resumed.
        #[arg(long, value_name = "REVISION")]
        rollback: Option<String>,
        /// Apply only this resource (repeatable): `[GROUP]:KIND:[NAMESPACE/]NAME`, as `argocd app sync --resource`; hooks do not run and nothing is pruned.
        #[arg(long = "resource", value_name = "[GROUP]:KIND:[NAMESPACE/]NAME", conflicts_with_all = ["refresh", "rollback"])]
        resources: Vec<String>,
        /// Delete what the previous sync applied and Git no longer has, even when `automated.prune` is off.
        #[arg(long, conflicts_with_all = ["refresh", "no_prune"])]
        prune: bool,
        /// Delete nothing, even when `automated.prune` is on.
        #[arg(long, conflicts_with = "refresh")]
        no_prune: bool,
    },
}

/// The validated configuration.
#[derive(Debug)]
pub struct Config {
    /// The broker URI.
    pub amqp_uri: SecretString,
    /// Exchange and queue names.
    pub topology: Topology,
    /// How long the queues this worker declares may grow.
    pub queue_bounds: pushsync_broker::QueueBounds,
    /// What to do.
    pub mode: Mode,
    /// Warnings about the settings (deprecated names, missing renderers),
    /// logged once logging runs.
    pub warnings: Vec<&'static str>,
}

/// What the binary was asked to do.
#[derive(Debug)]
pub enum Mode {
    /// Run the worker.
    Run(Box<RunConfig>),
    /// Publish one manual job and exit.
    Request {
        /// The Application.
        application: AppRef,
        /// What to ask for (a `SyncTrigger::Manual`).
        trigger: pushsync_proto::SyncTrigger,
    },
}

/// Everything a running worker needs beyond the broker.
#[derive(Debug)]
pub struct RunConfig {
    /// How the loops run.
    pub loops: Settings,
    /// The install namespace (Projects).
    pub namespace: String,
    /// Whose Applications are honoured.
    pub application_namespaces: Namespaces,
    /// Namespace of the Leases.
    pub lease_namespace: String,
    /// How long a Lease holds without renewal.
    pub lease_duration: Duration,
    /// This worker's name in Leases.
    pub identity: String,
    /// Directory of the git cache.
    pub git_cache: PathBuf,
    /// Git credentials.
    pub credentials: Credentials,
    /// Longest git fetch.
    pub git_timeout: Duration,
    /// Git remote operations at once.
    pub max_git_fetches: usize,
    /// Which remotes may be contacted.
    pub git_policy: RemotePolicy,
    /// Most bytes one fetch may receive.
    pub git_max_fetch_bytes: u64,
    /// Disk budget of the git cache (`None`: unbounded).
    pub git_cache_max_bytes: Option<u64>,
    /// libgit2's socket timeouts.
    pub git_socket: SocketTimeouts,
    /// Longest wait for a wave or hook to become healthy.
    pub health_timeout: Duration,
    /// The kubectl binary, resolved (`None`: not installed; Kustomize
    /// sources then fail with a condition saying so).
    pub kubectl: Option<PathBuf>,
    /// The helm binary, resolved (`None`: not installed).
    pub helm: Option<PathBuf>,
    /// Address of the metrics and health endpoint.
    pub metrics_listen: String,
}

/// A configuration value is unusable. The message names the variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The broker URI (or its file) is unusable.
    #[error(transparent)]
    AmqpUri(#[from] pushsync_service::AmqpUriError),
    /// No broker URI was given.
    #[error("set PUSHSYNC_AMQP_URL (--amqp-url) or PUSHSYNC_AMQP_URL_FILE")]
    NoAmqpUri,
    /// A count must be positive.
    #[error("{name} must be greater than zero")]
    Zero {
        /// The variable at fault.
        name: &'static str,
    },
    /// The git credentials file is unusable.
    #[error("PUSHSYNC_GIT_CREDENTIALS")]
    Credentials(#[source] CredentialsError),
    /// A `--resource` is not `[GROUP]:KIND:[NAMESPACE/]NAME`.
    #[error(
        "--resource {0:?} is not [GROUP]:KIND:[NAMESPACE/]NAME (e.g. apps:Deployment:web, :ConfigMap:team/settings)"
    )]
    NotAResource(String),
    /// `request`'s argument is not `NAMESPACE/NAME`.
    #[error("{0:?} is not NAMESPACE/NAME")]
    NotAnApplication(String),
    /// The namespace list is not `*` nor namespace names.
    #[error(
        "PUSHSYNC_APPLICATION_NAMESPACES: {0:?} is neither `*` nor a comma-separated list of namespaces"
    )]
    Namespaces(String),
    /// A scheme git cannot use, or a typo.
    #[error("PUSHSYNC_GIT_ALLOWED_SCHEMES: {0:?} is not one of https, http, ssh, git, file")]
    Scheme(String),
    /// A configured renderer is not an executable file (nor found on PATH).
    #[error("{name}: {program} is not an executable file, nor found on PATH")]
    MissingProgram {
        /// The variable at fault.
        name: &'static str,
        /// What it names.
        program: String,
    },
}

impl ConfigError {
    /// A bounded label for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::AmqpUri(error) => error.kind(),
            Self::NoAmqpUri => "no_amqp_uri",
            Self::Zero { .. } => "zero",
            Self::Scheme(_) => "scheme",
            Self::Credentials(_) => "credentials",
            Self::NotAnApplication(_) => "not_an_application",
            Self::NotAResource(_) => "not_a_resource",
            Self::MissingProgram { .. } => "missing_program",
            Self::Namespaces(_) => "namespaces",
        }
    }
}

impl Args {
    /// Validate and turn the arguments into a [`Config`]. The credentials
    /// file is read once here, so a typo fails at start.
    pub fn into_config(self) -> Result<Config, ConfigError> {
        let amqp_uri = pushsync_service::amqp_uri(self.amqp_url, self.amqp_url_file.as_deref())?
            .ok_or(ConfigError::NoAmqpUri)?;
        for (name, value) in [
            ("PUSHSYNC_PREFETCH", self.prefetch),
            ("PUSHSYNC_SYNC_PREFETCH", self.sync_prefetch.unwrap_or(1)),
            ("PUSHSYNC_MAX_SYNCS", self.max_syncs),
            ("PUSHSYNC_MAX_GIT_FETCHES", self.max_git_fetches),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero { name });
            }
        }
        for (name, value) in [
            ("PUSHSYNC_GIT_MAX_FETCH_BYTES", self.git_max_fetch_bytes),
            ("PUSHSYNC_QUEUE_MAX_LENGTH", self.queue_max_length),
            ("PUSHSYNC_QUEUE_MAX_BYTES", self.queue_max_bytes),
            (
                "PUSHSYNC_DEAD_LETTER_MAX_LENGTH",
                self.dead_letter_max_length,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero { name });
            }
        }
        for (name, value) in [
            ("PUSHSYNC_GIT_CONNECT_TIMEOUT", self.git_connect_timeout),
            ("PUSHSYNC_GIT_IO_TIMEOUT", self.git_io_timeout),
        ] {
            if value.is_zero() {
                return Err(ConfigError::Zero { name });
            }
        }
        if let Some(unknown) = self.git_allowed_schemes.iter().find(|s| {
            !["https", "http", "ssh", "git", "file"].contains(&s.to_ascii_lowercase().as_str())
        }) {
            return Err(ConfigError::Scheme(unknown.clone()));
        }
        let topology = Topology::new(self.queue_prefix);
        let mut warnings = Vec::new();
        let queue_bounds = pushsync_broker::QueueBounds {
            max_length: self.queue_max_length,
            max_bytes: self.queue_max_bytes,
            dead_letter_max_length: self.dead_letter_max_length,
        };
        if let Some(Command::Request {
            application,
            refresh,
            revision,
            rollback,
            resources,
            prune,
            no_prune,
        }) = self.command
        {
            let resources = resources
                .iter()
                .map(|r| {
                    pushsync_proto::ResourceSelector::parse(r)
                        .ok_or_else(|| ConfigError::NotAResource(r.clone()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let trigger = pushsync_proto::SyncTrigger::Manual {
                requested_by: Some(format!("cli@{}", default_identity())),
                refresh_only: refresh,
                rollback: rollback.is_some(),
                resources,
                revision: rollback.or(revision),
                prune: (prune || no_prune).then_some(prune),
            };
            return Ok(Config {
                amqp_uri,
                topology,
                queue_bounds,
                mode: request(application, trigger)?,
                warnings,
            });
        }
        let mut seconds = |new: Option<Duration>, old: Option<u64>, name, default| match (new, old)
        {
            (Some(duration), _) => duration,
            (None, Some(seconds)) => {
                warnings.push(name);
                Duration::from_secs(seconds)
            }
            (None, None) => default,
        };
        let git_timeout = seconds(
            self.git_timeout,
            self.git_timeout_seconds,
            "PUSHSYNC_GIT_TIMEOUT_SECONDS is deprecated: use PUSHSYNC_GIT_TIMEOUT (e.g. 2m)",
            Duration::from_secs(120),
        );
        let health_timeout = seconds(
            self.health_timeout,
            self.health_timeout_seconds,
            "PUSHSYNC_HEALTH_TIMEOUT_SECONDS is deprecated: use PUSHSYNC_HEALTH_TIMEOUT (e.g. 5m)",
            Duration::from_secs(300),
        );
        let search = std::env::var_os("PATH");
        let kubectl = renderer(
            self.kubectl,
            "PUSHSYNC_KUBECTL",
            "kubectl",
            &search,
            &mut warnings,
        )?;
        let helm = renderer(self.helm, "PUSHSYNC_HELM", "helm", &search, &mut warnings)?;
        let credentials = match &self.git_credentials {
            None => Credentials::default(),
            Some(path) => Credentials::load(path).map_err(ConfigError::Credentials)?,
        };
        let sync = SyncSettings {
            max_syncs: usize::from(self.max_syncs),
            prefetch: self
                .sync_prefetch
                .unwrap_or_else(|| self.max_syncs.saturating_mul(8)),
            lock_poll: self.lock_poll,
            retry: RetryPolicy {
                limit: self.retry_limit.max(1),
                first: self.retry_backoff,
                factor: 2,
                max: self.retry_max_backoff,
            },
            drain: self.shutdown_grace,
            max_wait: self.max_lock_wait,
        };
        let poll = PollSettings {
            interval: self.poll_interval,
            lease: self.poll_lease,
            drift_interval: self.drift_interval,
            tick: (self.lease_duration / 3)
                .clamp(Duration::from_millis(200), Duration::from_secs(5)),
            ..PollSettings::default()
        };
        let application_namespaces = match (self.application_namespaces, self.watch_namespace) {
            (Some(list), _) => Namespaces::parse(&list).ok_or(ConfigError::Namespaces(list))?,
            (None, Some(one)) => {
                warnings.push(
                    "PUSHSYNC_WATCH_NAMESPACE is deprecated: use PUSHSYNC_APPLICATION_NAMESPACES",
                );
                Namespaces::parse(&one).ok_or(ConfigError::Namespaces(one))?
            }
            (None, None) => Namespaces::one(&self.namespace),
        };
        let run = RunConfig {
            loops: Settings {
                dispatch_prefetch: self.prefetch,
                sync,
                poll: Some(poll),
            },
            lease_namespace: self
                .lease_namespace
                .unwrap_or_else(|| self.namespace.clone()),
            namespace: self.namespace,
            application_namespaces,
            lease_duration: self.lease_duration,
            identity: self.identity.unwrap_or_else(default_identity),
            git_cache: self.git_cache,
            credentials,
            git_timeout,
            max_git_fetches: usize::from(self.max_git_fetches),
            git_policy: RemotePolicy::new(
                &self.git_allowed_schemes,
                self.git_allow_local_addresses,
            ),
            git_max_fetch_bytes: self.git_max_fetch_bytes,
            git_cache_max_bytes: (self.git_cache_max_bytes > 0).then_some(self.git_cache_max_bytes),
            git_socket: SocketTimeouts {
                connect: self.git_connect_timeout,
                io: self.git_io_timeout,
            },
            health_timeout,
            kubectl,
            helm,
            metrics_listen: self.metrics_listen,
        };
        Ok(Config {
            amqp_uri,
            topology,
            queue_bounds,
            mode: Mode::Run(Box::new(run)),
            warnings,
        })
    }
}

/// `request NAMESPACE/NAME [--refresh]`.
fn request(application: String, trigger: pushsync_proto::SyncTrigger) -> Result<Mode, ConfigError> {
    let application = application
        .split_once('/')
        .filter(|(n, a)| !n.is_empty() && !a.is_empty() && !a.contains('/'))
        .map(|(namespace, name)| AppRef {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
        .ok_or(ConfigError::NotAnApplication(application))?;
    Ok(Mode::Request {
        application,
        trigger,
    })
}

/// A renderer resolved against `search` (the worker's PATH): renderers run
/// with a minimal PATH, so they are found here, once. One that was asked
/// for (`configured`) must exist; a default that is missing is a warning,
/// and only the sources that need it fail.
fn renderer(
    configured: Option<PathBuf>,
    name: &'static str,
    default: &str,
    search: &Option<std::ffi::OsString>,
    warnings: &mut Vec<&'static str>,
) -> Result<Option<PathBuf>, ConfigError> {
    let wanted = configured.clone().unwrap_or_else(|| default.into());
    match (which(&wanted, search.as_deref()), configured) {
        (Some(found), _) => Ok(Some(found)),
        (None, Some(_)) => Err(ConfigError::MissingProgram {
            name,
            program: wanted.display().to_string(),
        }),
        (None, None) => {
            warnings.push(match name {
                "PUSHSYNC_HELM" => {
                    "helm is not on PATH: Helm sources will fail (set PUSHSYNC_HELM)"
                }
                _ => "kubectl is not on PATH: Kustomize sources will fail (set PUSHSYNC_KUBECTL)",
            });
            Ok(None)
        }
    }
}

/// `host-pid`: unique among live workers, readable in Leases.
pub fn default_identity() -> String {
    format!("{}-{}", pushsync_service::hostname(), std::process::id())
}

#[cfg(test)]
mod tests;
