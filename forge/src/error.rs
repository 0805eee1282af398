//! What can go wrong talking to a forge. No variant carries the token or
//! the webhook secret: requests are described by operation and path, and a
//! forge's message is redacted before it is kept.

use crate::ForgeKind;

/// Why a forge call failed.
#[derive(Debug, thiserror::Error)]
pub enum ForgeError {
    /// The forge name is not one of `github`, `gitlab`, `gitea`, `forgejo`.
    #[error("unknown forge {name:?} (expected github, gitlab, gitea or forgejo)")]
    UnknownKind {
        /// What was given.
        name: String,
    },
    /// The forge has no default API base (Gitea) and none was given.
    #[error("{kind} needs an API base URL, e.g. https://gitea.example.com/api/v1")]
    MissingApiBase {
        /// The forge.
        kind: ForgeKind,
    },
    /// The API base URL is unusable.
    #[error("invalid API base URL {base:?}: {reason}")]
    InvalidApiBase {
        /// What was given.
        base: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The target is not a repository or organisation this forge can name.
    #[error("invalid target {target:?}: {reason}")]
    InvalidTarget {
        /// What was given.
        target: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The hook URL to register is not an absolute `http(s)` URL.
    #[error("invalid hook URL {url:?}: {reason}")]
    InvalidHookUrl {
        /// What was given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The HTTP client could not be built (TLS setup).
    #[error("the HTTP client could not be built")]
    Client(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
    /// The forge answered with an error status.
    #[error("{operation} failed: {method} {path} answered {status}: {message}")]
    Status {
        /// What this crate was doing, e.g. `create hook`.
        operation: &'static str,
        /// The HTTP method.
        method: &'static str,
        /// The request path (no query, no credentials).
        path: String,
        /// The HTTP status code.
        status: u16,
        /// The forge's own message (GitHub and Gitea `message`, GitLab
        /// `message` or `error`), or the start of the body; redacted.
        message: String,
    },
    /// The request did not complete: connection refused, proxy, TLS (or no
    /// trusted root certificates), timeout, or an answer too large. A
    /// redirect is never followed (it could carry the token to another
    /// host): it is a [`ForgeError::Status`] with its 3xx status.
    #[error("{operation} failed: {method} {path}")]
    Transport {
        /// What this crate was doing.
        operation: &'static str,
        /// The HTTP method.
        method: &'static str,
        /// The request path.
        path: String,
        /// The cause (hyper, rustls, the proxy, or a timeout).
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// The forge answered 2xx with a body this crate does not understand.
    #[error("{operation}: unexpected answer to {method} {path}: {detail}")]
    UnexpectedBody {
        /// What this crate was doing.
        operation: &'static str,
        /// The HTTP method.
        method: &'static str,
        /// The request path.
        path: String,
        /// What was wrong, e.g. a serde error.
        detail: String,
    },
    /// The forge has no API for this operation on this kind of target.
    #[error("{kind} cannot {operation}: {reason}")]
    Unsupported {
        /// The forge.
        kind: ForgeKind,
        /// What was asked, e.g. `test an organisation hook`.
        operation: &'static str,
        /// Why not.
        reason: &'static str,
    },
}

impl ForgeError {
    /// A bounded label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ForgeError::UnknownKind { .. } => "unknown_kind",
            ForgeError::MissingApiBase { .. } => "missing_api_base",
            ForgeError::InvalidApiBase { .. } => "invalid_api_base",
            ForgeError::InvalidTarget { .. } => "invalid_target",
            ForgeError::InvalidHookUrl { .. } => "invalid_hook_url",
            ForgeError::Client(_) => "client",
            ForgeError::Status { .. } => "status",
            ForgeError::Transport { .. } => "transport",
            ForgeError::UnexpectedBody { .. } => "unexpected_body",
            ForgeError::Unsupported { .. } => "unsupported",
        }
    }

    /// The HTTP status, when the forge answered with an error status.
    pub fn status(&self) -> Option<u16> {
        match self {
            ForgeError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}
