//! Start-up shared by pushsync's shipped binaries, so the receiver and the
//! worker read their settings and behave alike: one duration grammar, one
//! log format switch, one way to wait for SIGTERM, one error-chain format,
//! one way to take the broker URI from a variable or a file.
//!
//! No Kubernetes, broker or HTTP dependency: the receiver links it too.

mod duration;
mod size;

use std::path::Path;

use secrecy::SecretString;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

pub use duration::parse_duration;
pub use size::parse_bytes;

/// `EX_USAGE`: the configuration is unusable (the message names the variable).
pub const EXIT_USAGE: u8 = 64;

/// How logs are written (`PUSHSYNC_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line (for log pipelines).
    Json,
    /// Human-readable lines (for terminals).
    Text,
}

/// Log to standard error in `format`, filtered by `PUSHSYNC_LOG`
/// (`tracing` directives, default `info`).
pub fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("PUSHSYNC_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
        LogFormat::Text => builder.init(),
    }
}

/// A multi-threaded tokio runtime with every driver enabled.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

/// Cancel `shutdown` on SIGTERM or Ctrl-C.
pub async fn cancel_on_signal(shutdown: CancellationToken) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(error = %error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
    shutdown.cancel();
}

/// `error` and its causes on one line, `: `-separated (how every binary
/// logs an error chain, once, at its boundary).
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// This machine's host name (the pod name in a cluster), or `unknown`.
pub fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Why the broker URI cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AmqpUriError {
    /// Both the URI and a URI file were given.
    #[error("set only one of PUSHSYNC_AMQP_URL and PUSHSYNC_AMQP_URL_FILE")]
    Both,
    /// The URI file cannot be read.
    #[error("cannot read PUSHSYNC_AMQP_URL_FILE {path}")]
    Unreadable {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Not an `amqp://` or `amqps://` URI.
    #[error("{name} must start with amqp:// or amqps://")]
    Scheme {
        /// The variable at fault.
        name: &'static str,
    },
}

impl AmqpUriError {
    /// A bounded label for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Both => "both",
            Self::Unreadable { .. } => "unreadable",
            Self::Scheme { .. } => "scheme",
        }
    }
}

/// The broker URI from `PUSHSYNC_AMQP_URL` or the file `PUSHSYNC_AMQP_URL_FILE`
/// names (a mounted Secret); `None` when neither is set.
pub fn amqp_uri(
    url: Option<String>,
    file: Option<&Path>,
) -> Result<Option<SecretString>, AmqpUriError> {
    let (uri, name) = match (url, file) {
        (Some(_), Some(_)) => return Err(AmqpUriError::Both),
        (None, None) => return Ok(None),
        (Some(uri), None) => (uri, "PUSHSYNC_AMQP_URL"),
        (None, Some(path)) => (
            std::fs::read_to_string(path)
                .map_err(|source| AmqpUriError::Unreadable {
                    path: path.to_path_buf(),
                    source,
                })?
                .trim()
                .to_owned(),
            "PUSHSYNC_AMQP_URL_FILE",
        ),
    };
    if !(uri.starts_with("amqp://") || uri.starts_with("amqps://")) {
        return Err(AmqpUriError::Scheme { name });
    }
    Ok(Some(SecretString::from(uri)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_broker_uri_comes_from_one_place_and_must_be_amqp() {
        assert!(amqp_uri(None, None).unwrap().is_none());
        assert!(amqp_uri(Some("amqp://h".into()), None).unwrap().is_some());
        let dir = std::env::temp_dir().join(format!("pushsync-service-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("uri");
        std::fs::write(&file, "amqps://u:p@h/%2f\n").unwrap();
        assert!(amqp_uri(None, Some(&file)).unwrap().is_some());
        assert!(matches!(
            amqp_uri(Some("amqp://h".into()), Some(&file)),
            Err(AmqpUriError::Both)
        ));
        assert!(matches!(
            amqp_uri(Some("http://h".into()), None),
            Err(AmqpUriError::Scheme { .. })
        ));
        let missing = amqp_uri(None, Some(&dir.join("missing"))).unwrap_err();
        assert!(matches!(missing, AmqpUriError::Unreadable { .. }));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn error_chains_read_outermost_first() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        let error = Outer(std::io::Error::other("inner"));
        assert_eq!(error_chain(&error), "outer: inner");
    }
}
