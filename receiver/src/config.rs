//! Receiver configuration: parsed once from flags and `PUSHSYNC_*` variables, validated, passed down.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use pushsync_broker::{AmqpConfig, MemoryQueue};
use pushsync_proto::Topology;

use crate::secrets::{SecretSource, SecretSources};

/// Everything the receiver needs to run. Tests build it in code.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the queue lives.
    pub queue: QueueConfig,
    /// Where webhook secrets come from.
    pub secrets: SecretSources,
    /// How often secret files are re-read, so a rotated Kubernetes Secret takes
    /// effect without a restart. `None` reads them once at start.
    pub secret_reload_interval: Option<Duration>,
    /// HTTP limits and behaviour.
    pub http: HttpConfig,
    /// How long a delivery id is remembered to drop redeliveries.
    pub dedup_window: Duration,
    /// How many delivery ids are remembered at most (memory bound).
    pub dedup_capacity: usize,
    /// Largest accepted clock skew of GitLab's signed `webhook-timestamp`.
    pub gitlab_timestamp_tolerance: Duration,
}

/// The queue backend.
#[derive(Debug, Clone)]
pub enum QueueConfig {
    /// RabbitMQ with publisher confirms.
    Amqp(AmqpConfig),
    /// An in-process queue: for `make run` and tests only; nothing survives a
    /// restart.
    Memory(MemoryQueue),
}

impl QueueConfig {
    /// The exchange/queue names in use.
    pub fn topology(&self) -> Topology {
        match self {
            Self::Amqp(amqp) => amqp.topology.clone(),
            Self::Memory(_) => Topology::default(),
        }
    }
}

/// HTTP server settings.
///
/// Together these bound what an unauthenticated client can hold: request
/// heads must arrive within `header_timeout`, bodies within
/// `request_deadline`, at most `max_body_bytes` each and `max_in_flight_bytes`
/// across every request, on at most `max_connections` connections. Nothing is
/// verified before the whole body is in, so these are the only limits an
/// attacker without a secret meets.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Largest accepted request body in bytes; larger ones get 413.
    pub max_body_bytes: usize,
    /// Request-body bytes held in memory at once across all requests and
    /// workers; a request that would exceed it gets 503 with `Retry-After`.
    /// Must be at least `max_body_bytes`.
    pub max_in_flight_bytes: usize,
    /// How long a client may take to send a request's whole body, counted
    /// from the end of its head; later ones get 408 and the connection is
    /// closed. (Verification and publishing come after and are bounded by
    /// the body size and the broker's confirm timeout.)
    pub request_deadline: Duration,
    /// How long a client may take to send a request head (actix-web's
    /// `client_request_timeout`); later ones get 408.
    pub header_timeout: Duration,
    /// How long a closing connection may linger (actix-web's
    /// `client_disconnect_timeout`).
    pub disconnect_timeout: Duration,
    /// Open connections across all workers; beyond it new connections wait in
    /// the listen backlog until one closes.
    pub max_connections: usize,
    /// Number of HTTP worker threads.
    pub workers: usize,
    /// How long in-flight requests may take to finish after SIGTERM.
    pub shutdown_grace: Duration,
    /// `Retry-After` seconds sent with 503 answers.
    pub retry_after: Duration,
}

impl HttpConfig {
    /// `max_connections` as actix-web takes it: per worker, rounded up so the
    /// total is never below the configured one (and never zero).
    pub fn max_connections_per_worker(&self) -> usize {
        self.max_connections.div_ceil(self.workers.max(1)).max(1)
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_in_flight_bytes: DEFAULT_MAX_IN_FLIGHT_BYTES,
            request_deadline: DEFAULT_REQUEST_DEADLINE,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            disconnect_timeout: Duration::from_secs(1),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            workers: std::thread::available_parallelism().map_or(2, usize::from),
            shutdown_grace: Duration::from_secs(30),
            retry_after: Duration::from_secs(10),
        }
    }
}

/// The default body limit: 8 MiB.
///
/// Push payloads are small: the forge fixtures in `testdata/webhooks` are
/// 1.4–8.6 KiB, a few KiB per commit listed. GitLab lists at most 20 commits;
/// GitHub up to 2048 (with their file lists) and caps payloads at 25 MB, so
/// only pushes of a thousand commits or more (imports, history rewrites) come
/// near this limit, about 1000 times the largest fixture. A push over it gets
/// 413 and is not delivered; the workers' fallback poll
/// (`PUSHSYNC_POLL_INTERVAL`, 10 minutes by default) picks the change up
/// instead: later, not lost. Raise `PUSHSYNC_MAX_BODY_BYTES` (and
/// `PUSHSYNC_MAX_IN_FLIGHT_BYTES` with it) if `payload_too_large` shows up in
/// `pushsync_receiver_requests_total`.
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// The default in-flight body budget: 64 MiB, eight bodies at the default
/// limit, or thousands of real pushes at once.
pub const DEFAULT_MAX_IN_FLIGHT_BYTES: usize = 64 * 1024 * 1024;

/// The default whole-body deadline. Forges give up on a delivery after about
/// 10 s (GitHub, GitLab's default, Gitea's 5 s); 30 s leaves room for
/// self-hosted forges with raised timeouts.
pub const DEFAULT_REQUEST_DEADLINE: Duration = Duration::from_secs(30);

/// The default deadline for a request head (actix-web's own default).
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// The default connection limit across all workers.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

impl Config {
    /// A configuration with defaults around the given queue and secrets.
    pub fn new(queue: QueueConfig, secrets: SecretSources) -> Self {
        Self {
            queue,
            secrets,
            secret_reload_interval: Some(Duration::from_secs(30)),
            http: HttpConfig::default(),
            dedup_window: Duration::from_secs(3600),
            dedup_capacity: 100_000,
            gitlab_timestamp_tolerance: Duration::from_secs(300),
        }
    }
}

/// Command line and environment of `pushsync-receiver`.
///
/// Every flag has a `PUSHSYNC_*` variable. Secrets are best given as files
/// (mounted Kubernetes Secrets, one or more secrets per file, one per line,
/// all valid at once so a secret can be rotated without dropping deliveries).
#[derive(Debug, Parser)]
#[command(name = "pushsync-receiver", version, about, long_about = None)]
pub struct Args {
    /// Address to listen on for webhooks, health and metrics.
    #[arg(long, env = "PUSHSYNC_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,

    /// RabbitMQ URI, e.g. amqp://user:pass@rabbitmq:5672/%2f (required unless --in-memory-queue).
    #[arg(long, env = "PUSHSYNC_AMQP_URL", hide_env_values = true)]
    pub amqp_url: Option<String>,

    /// File holding the RabbitMQ URI (alternative to --amqp-url).
    #[arg(long, env = "PUSHSYNC_AMQP_URL_FILE")]
    pub amqp_url_file: Option<PathBuf>,

    /// Keep events in process memory instead of RabbitMQ (local trials only: events are lost on exit).
    #[arg(long, env = "PUSHSYNC_IN_MEMORY_QUEUE", conflicts_with_all = ["amqp_url", "amqp_url_file"])]
    pub in_memory_queue: bool,

    /// Prefix of exchange and queue names; every part of one deployment must agree.
    #[arg(long, env = "PUSHSYNC_QUEUE_PREFIX", default_value = Topology::DEFAULT_PREFIX)]
    pub queue_prefix: String,

    /// Declare the whole queue topology (needs a broker user that may configure it); by default the receiver only checks that the workers declared it, and stays not ready until they have.
    #[arg(long, env = "PUSHSYNC_DECLARE_TOPOLOGY")]
    pub declare_topology: bool,

    /// How long a publish may wait for RabbitMQ's confirm before answering 503.
    #[arg(long, env = "PUSHSYNC_CONFIRM_TIMEOUT", default_value = "5s", value_parser = pushsync_service::parse_duration)]
    pub confirm_timeout: Duration,

    /// GitHub webhook secret.
    #[arg(long, env = "PUSHSYNC_GITHUB_SECRET", hide_env_values = true)]
    pub github_secret: Option<String>,
    /// Files with GitHub webhook secrets (comma-separated list).
    #[arg(long, env = "PUSHSYNC_GITHUB_SECRET_FILE", value_delimiter = ',')]
    pub github_secret_file: Vec<PathBuf>,

    /// GitLab secret token (sent back in X-Gitlab-Token).
    #[arg(long, env = "PUSHSYNC_GITLAB_TOKEN", hide_env_values = true)]
    pub gitlab_token: Option<String>,
    /// Files with GitLab secret tokens (comma-separated list).
    #[arg(long, env = "PUSHSYNC_GITLAB_TOKEN_FILE", value_delimiter = ',')]
    pub gitlab_token_file: Vec<PathBuf>,

    /// GitLab signing token (whsec_...): when set, the webhook-signature header is required.
    #[arg(long, env = "PUSHSYNC_GITLAB_SIGNING_TOKEN", hide_env_values = true)]
    pub gitlab_signing_token: Option<String>,
    /// Files with GitLab signing tokens (comma-separated list).
    #[arg(
        long,
        env = "PUSHSYNC_GITLAB_SIGNING_TOKEN_FILE",
        value_delimiter = ','
    )]
    pub gitlab_signing_token_file: Vec<PathBuf>,

    /// Largest accepted age (or clock skew) of GitLab's signed webhook-timestamp.
    #[arg(long, env = "PUSHSYNC_GITLAB_TIMESTAMP_TOLERANCE", default_value = "5m", value_parser = pushsync_service::parse_duration)]
    pub gitlab_timestamp_tolerance: Duration,

    /// Gitea / Forgejo / Gogs webhook secret.
    #[arg(long, env = "PUSHSYNC_GITEA_SECRET", hide_env_values = true)]
    pub gitea_secret: Option<String>,
    /// Files with Gitea / Forgejo / Gogs webhook secrets (comma-separated list).
    #[arg(long, env = "PUSHSYNC_GITEA_SECRET_FILE", value_delimiter = ',')]
    pub gitea_secret_file: Vec<PathBuf>,

    /// Bitbucket Cloud / Server webhook secret.
    #[arg(long, env = "PUSHSYNC_BITBUCKET_SECRET", hide_env_values = true)]
    pub bitbucket_secret: Option<String>,
    /// Files with Bitbucket webhook secrets (comma-separated list).
    #[arg(long, env = "PUSHSYNC_BITBUCKET_SECRET_FILE", value_delimiter = ',')]
    pub bitbucket_secret_file: Vec<PathBuf>,

    /// How often secret files are re-read (0s: only at start).
    #[arg(long, env = "PUSHSYNC_SECRET_RELOAD_INTERVAL", default_value = "30s", value_parser = pushsync_service::parse_duration)]
    pub secret_reload_interval: Duration,

    /// Largest accepted request body in bytes; larger ones get 413.
    #[arg(long, env = "PUSHSYNC_MAX_BODY_BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,

    /// Request-body bytes held in memory at once across all requests; beyond it requests get 503 with Retry-After.
    #[arg(long, env = "PUSHSYNC_MAX_IN_FLIGHT_BYTES", default_value_t = DEFAULT_MAX_IN_FLIGHT_BYTES)]
    pub max_in_flight_bytes: usize,

    /// How long a client may take to send a whole request body; slower ones get 408.
    #[arg(long, env = "PUSHSYNC_REQUEST_DEADLINE", default_value = "30s", value_parser = pushsync_service::parse_duration)]
    pub request_deadline: Duration,

    /// How long a client may take to send a request head; slower ones get 408.
    #[arg(long, env = "PUSHSYNC_HEADER_TIMEOUT", default_value = "5s", value_parser = pushsync_service::parse_duration)]
    pub header_timeout: Duration,

    /// Open connections at most, across all HTTP workers; further ones wait until one closes.
    #[arg(long, env = "PUSHSYNC_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,

    /// How long a delivery id is remembered so a redelivery is not published twice.
    #[arg(long, env = "PUSHSYNC_DEDUP_WINDOW", default_value = "1h", value_parser = pushsync_service::parse_duration)]
    pub dedup_window: Duration,

    /// How many delivery ids are remembered at most.
    #[arg(long, env = "PUSHSYNC_DEDUP_CAPACITY", default_value_t = 100_000)]
    pub dedup_capacity: usize,

    /// HTTP worker threads (default: one per CPU).
    #[arg(long, env = "PUSHSYNC_HTTP_WORKERS")]
    pub http_workers: Option<usize>,

    /// How long in-flight requests may take to finish after SIGTERM.
    #[arg(long, env = "PUSHSYNC_SHUTDOWN_GRACE", default_value = "30s", value_parser = pushsync_service::parse_duration)]
    pub shutdown_grace: Duration,

    /// Log format.
    #[arg(long, env = "PUSHSYNC_LOG_FORMAT", value_enum, default_value = "json")]
    pub log_format: pushsync_service::LogFormat,
}

/// A configuration value is unusable. The message names the flag or variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Neither a broker URI nor the in-memory queue was chosen.
    #[error(
        "no queue configured: set PUSHSYNC_AMQP_URL (--amqp-url) or PUSHSYNC_AMQP_URL_FILE, or pass --in-memory-queue for a local trial"
    )]
    NoQueue,
    /// The broker URI (or its file) is unusable.
    #[error(transparent)]
    AmqpUri(#[from] pushsync_service::AmqpUriError),
    /// A file named in the configuration cannot be read.
    #[error("cannot read {name} file {path}")]
    UnreadableFile {
        /// The flag or variable at fault.
        name: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A secret is present but unusable (empty, or a GitLab signing token not in whsec_ form).
    #[error("{name}: {reason}")]
    BadSecret {
        /// The flag or variable at fault.
        name: &'static str,
        /// What is wrong (never the secret itself).
        reason: String,
    },
    /// No provider has a secret, so every webhook would be refused.
    #[error(
        "no webhook secret configured: set at least one of PUSHSYNC_GITHUB_SECRET(_FILE), PUSHSYNC_GITLAB_TOKEN(_FILE), PUSHSYNC_GITLAB_SIGNING_TOKEN(_FILE), PUSHSYNC_GITEA_SECRET(_FILE), PUSHSYNC_BITBUCKET_SECRET(_FILE)"
    )]
    NoSecrets,
    /// A numeric setting is out of range.
    #[error("{name} must be greater than zero")]
    Zero {
        /// The flag or variable at fault.
        name: &'static str,
    },
    /// A setting is smaller than another one it must hold.
    #[error("{name} ({value}) must be at least {other} ({other_value})")]
    Below {
        /// The flag or variable at fault.
        name: &'static str,
        /// Its value.
        value: usize,
        /// The setting it must not be below.
        other: &'static str,
        /// That setting's value.
        other_value: usize,
    },
}

impl Args {
    /// Validate and turn the arguments into a [`Config`]. Secret files are
    /// read once here so a typo fails at start, not at the first webhook.
    pub fn into_config(self) -> Result<Config, ConfigError> {
        let topology = Topology::new(self.queue_prefix);
        let queue = if self.in_memory_queue {
            QueueConfig::Memory(MemoryQueue::new(10_000))
        } else {
            let uri = pushsync_service::amqp_uri(self.amqp_url, self.amqp_url_file.as_deref())?
                .ok_or(ConfigError::NoQueue)?;
            let host = pushsync_service::hostname();
            let mut amqp = AmqpConfig::new(uri, format!("pushsync-receiver@{host}"));
            amqp.topology = topology;
            amqp.confirm_timeout = self.confirm_timeout;
            // The receiver's broker user needs no configure permission: the
            // workers declare the topology; the receiver only checks it.
            if !self.declare_topology {
                amqp.declare = pushsync_broker::Declare::CheckEvents;
            }
            QueueConfig::Amqp(amqp)
        };
        let secrets = SecretSources {
            github: SecretSource::new(
                "PUSHSYNC_GITHUB_SECRET",
                self.github_secret,
                self.github_secret_file,
            ),
            gitlab_token: SecretSource::new(
                "PUSHSYNC_GITLAB_TOKEN",
                self.gitlab_token,
                self.gitlab_token_file,
            ),
            gitlab_signing: SecretSource::new(
                "PUSHSYNC_GITLAB_SIGNING_TOKEN",
                self.gitlab_signing_token,
                self.gitlab_signing_token_file,
            ),
            gitea: SecretSource::new(
                "PUSHSYNC_GITEA_SECRET",
                self.gitea_secret,
                self.gitea_secret_file,
            ),
            bitbucket: SecretSource::new(
                "PUSHSYNC_BITBUCKET_SECRET",
                self.bitbucket_secret,
                self.bitbucket_secret_file,
            ),
        };
        if secrets.load()?.is_empty() {
            return Err(ConfigError::NoSecrets);
        }
        for (name, value) in [
            ("PUSHSYNC_MAX_BODY_BYTES", self.max_body_bytes),
            ("PUSHSYNC_MAX_IN_FLIGHT_BYTES", self.max_in_flight_bytes),
            ("PUSHSYNC_MAX_CONNECTIONS", self.max_connections),
            ("PUSHSYNC_DEDUP_CAPACITY", self.dedup_capacity),
            ("PUSHSYNC_HTTP_WORKERS", self.http_workers.unwrap_or(1)),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero { name });
            }
        }
        // Zero would turn actix-web's header timeout off, and no body could
        // beat a zero deadline.
        for (name, value) in [
            ("PUSHSYNC_CONFIRM_TIMEOUT", self.confirm_timeout),
            ("PUSHSYNC_REQUEST_DEADLINE", self.request_deadline),
            ("PUSHSYNC_HEADER_TIMEOUT", self.header_timeout),
        ] {
            if value.is_zero() {
                return Err(ConfigError::Zero { name });
            }
        }
        // Otherwise a body near the limit could never be accepted: every
        // delivery of it would get 503, and the forge would retry in vain.
        if self.max_in_flight_bytes < self.max_body_bytes {
            return Err(ConfigError::Below {
                name: "PUSHSYNC_MAX_IN_FLIGHT_BYTES",
                value: self.max_in_flight_bytes,
                other: "PUSHSYNC_MAX_BODY_BYTES",
                other_value: self.max_body_bytes,
            });
        }
        let mut config = Config::new(queue, secrets);
        config.secret_reload_interval =
            (!self.secret_reload_interval.is_zero()).then_some(self.secret_reload_interval);
        config.http.max_body_bytes = self.max_body_bytes;
        config.http.max_in_flight_bytes = self.max_in_flight_bytes;
        config.http.request_deadline = self.request_deadline;
        config.http.header_timeout = self.header_timeout;
        config.http.max_connections = self.max_connections;
        config.http.shutdown_grace = self.shutdown_grace;
        if let Some(workers) = self.http_workers {
            config.http.workers = workers;
        }
        config.dedup_window = self.dedup_window;
        config.dedup_capacity = self.dedup_capacity;
        config.gitlab_timestamp_tolerance = self.gitlab_timestamp_tolerance;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Result<Config, ConfigError> {
        let mut argv = vec!["pushsync-receiver"];
        argv.extend_from_slice(extra);
        Args::try_parse_from(argv).unwrap().into_config()
    }

    #[test]
    fn a_queue_must_be_chosen_explicitly() {
        let err = args(&["--github-secret", "s"]).unwrap_err();
        assert!(matches!(err, ConfigError::NoQueue), "{err}");
        assert!(err.to_string().contains("PUSHSYNC_AMQP_URL"));
    }

    #[test]
    fn at_least_one_secret_is_required() {
        let err = args(&["--in-memory-queue"]).unwrap_err();
        assert!(matches!(err, ConfigError::NoSecrets), "{err}");
    }

    #[test]
    fn bad_broker_uris_and_files_name_their_variable() {
        let err = args(&["--amqp-url", "http://x", "--github-secret", "s"]).unwrap_err();
        assert!(err.to_string().contains("PUSHSYNC_AMQP_URL"), "{err}");
        // A file that cannot be read names its variable and path…
        let dir = tempfile::tempdir().unwrap();
        let unreadable = dir.path().display().to_string();
        let err = args(&["--in-memory-queue", "--github-secret-file", &unreadable]).unwrap_err();
        assert!(
            err.to_string().contains("PUSHSYNC_GITHUB_SECRET_FILE"),
            "{err}"
        );
        assert!(err.to_string().contains(&unreadable), "{err}");
        // …while an absent one (an optional Secret key) turns its forge off.
        let err = args(&[
            "--in-memory-queue",
            "--github-secret-file",
            "/nonexistent/secret",
        ])
        .unwrap_err();
        assert!(matches!(err, ConfigError::NoSecrets), "{err}");
        assert!(
            args(&[
                "--in-memory-queue",
                "--github-secret-file",
                "/nonexistent/secret",
                "--gitea-secret",
                "s",
            ])
            .is_ok()
        );
    }

    #[test]
    fn resource_limits_are_validated() {
        let base = ["--in-memory-queue", "--github-secret", "s"];
        let with = |extra: &[&str]| {
            let mut argv = base.to_vec();
            argv.extend_from_slice(extra);
            args(&argv)
        };
        for (flag, variable) in [
            ("--max-in-flight-bytes", "PUSHSYNC_MAX_IN_FLIGHT_BYTES"),
            ("--max-connections", "PUSHSYNC_MAX_CONNECTIONS"),
            ("--request-deadline", "PUSHSYNC_REQUEST_DEADLINE"),
            ("--header-timeout", "PUSHSYNC_HEADER_TIMEOUT"),
        ] {
            let err = with(&[flag, "0"]).unwrap_err();
            assert!(
                matches!(err, ConfigError::Zero { name } if name == variable),
                "{err}"
            );
        }
        // A budget that cannot hold one body at the limit is refused.
        let err = with(&["--max-body-bytes", "2048", "--max-in-flight-bytes", "1024"]).unwrap_err();
        assert!(
            err.to_string()
                .contains("PUSHSYNC_MAX_IN_FLIGHT_BYTES (1024)"),
            "{err}"
        );
        assert!(
            err.to_string().contains("PUSHSYNC_MAX_BODY_BYTES (2048)"),
            "{err}"
        );

        let config = with(&[
            "--max-body-bytes",
            "4096",
            "--max-in-flight-bytes",
            "4096",
            "--max-connections",
            "7",
            "--request-deadline",
            "2s",
            "--header-timeout",
            "500ms",
            "--http-workers",
            "2",
        ])
        .unwrap();
        assert_eq!(config.http.max_in_flight_bytes, 4096);
        assert_eq!(config.http.request_deadline, Duration::from_secs(2));
        assert_eq!(config.http.header_timeout, Duration::from_millis(500));
        // actix-web's limit is per worker: 7 over 2 workers rounds up to 4.
        assert_eq!(config.http.max_connections_per_worker(), 4);

        let defaults = with(&[]).unwrap();
        assert_eq!(defaults.http.max_body_bytes, 8 * 1024 * 1024);
        assert_eq!(defaults.http.max_in_flight_bytes, 64 * 1024 * 1024);
        assert_eq!(defaults.http.max_connections, 1024);
        assert_eq!(defaults.http.request_deadline, Duration::from_secs(30));
        assert_eq!(defaults.http.header_timeout, Duration::from_secs(5));
    }

    #[test]
    fn connections_per_worker_round_up_and_never_reach_zero() {
        let mut http = HttpConfig::default();
        for (total, workers, per_worker) in [(1024, 3, 342), (4, 1, 4), (1, 8, 1), (8, 0, 8)] {
            http.max_connections = total;
            http.workers = workers;
            assert_eq!(
                http.max_connections_per_worker(),
                per_worker,
                "{total}/{workers}"
            );
        }
    }

    #[test]
    fn secrets_never_appear_in_debug_output() {
        let config = args(&[
            "--amqp-url",
            "amqp://guest:hunter2@127.0.0.1:5672/%2f",
            "--github-secret",
            "gh-very-secret",
        ])
        .unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(!debug.contains("gh-very-secret"), "{debug}");
    }
}
