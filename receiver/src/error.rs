//! Request errors and their one mapping to HTTP answers.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use pushsync_broker::PublishError;

/// Why a webhook was not accepted. Each variant maps to exactly one status
/// code; the body is a short stable code (and, for malformed payloads, what
/// was malformed), never a secret or an internal error chain.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The provider has no secret configured, so it accepts nothing.
    #[error("no secret is configured for this provider")]
    ProviderNotConfigured,
    /// The signature or token header is absent.
    #[error("the request carries no signature or token")]
    MissingSignature,
    /// The signature or token does not match any configured secret (or is
    /// not even well-formed).
    #[error("the signature or token does not match")]
    InvalidSignature,
    /// The signed timestamp is too far from now (replay protection).
    #[error("the signed timestamp is outside the accepted window")]
    StaleTimestamp,
    /// The body is larger than the configured limit.
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// The content type is neither JSON nor (where the forge offers it) a form.
    #[error("unsupported content type")]
    UnsupportedMediaType,
    /// The header naming the event is absent.
    #[error("the request names no event ({header} header missing)")]
    MissingEvent {
        /// The header expected.
        header: &'static str,
    },
    /// The body is not the JSON the event promises.
    #[error("malformed payload: {detail}")]
    MalformedPayload {
        /// What is wrong, e.g. ``missing field `ref` at line 1 column 20``.
        detail: String,
    },
    /// Reading the body failed (client went away, bad chunked encoding).
    #[error("the request body could not be read")]
    BodyRead(#[source] actix_web::error::PayloadError),
    /// The body did not arrive within the request deadline (a slow or
    /// stalled client); the connection is closed.
    #[error("the request body did not arrive within {deadline:?}")]
    RequestTimeout {
        /// The configured deadline.
        deadline: Duration,
    },
    /// Other requests hold the whole in-flight body budget; the forge should
    /// redeliver later.
    #[error("too many request bodies in flight")]
    Busy {
        /// `Retry-After` to send.
        retry_after: Duration,
    },
    /// The queue did not confirm the publish; the forge should redeliver.
    #[error("the event could not be stored")]
    Publish {
        /// `Retry-After` to send.
        retry_after: Duration,
        /// What failed.
        #[source]
        source: PublishError,
    },
}

impl Error {
    /// A bounded label for metrics and the response body.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::ProviderNotConfigured => "provider_not_configured",
            Self::MissingSignature => "missing_signature",
            Self::InvalidSignature => "invalid_signature",
            Self::StaleTimestamp => "stale_timestamp",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::MissingEvent { .. } => "missing_event",
            Self::MalformedPayload { .. } => "malformed_payload",
            Self::BodyRead(_) => "body_read_error",
            Self::RequestTimeout { .. } => "request_timeout",
            Self::Busy { .. } => "receiver_busy",
            Self::Publish { .. } => "broker_unavailable",
        }
    }

    pub(crate) fn malformed(detail: impl std::fmt::Display) -> Self {
        Self::MalformedPayload {
            detail: detail.to_string(),
        }
    }
}

impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::ProviderNotConfigured
            | Self::MissingSignature
            | Self::InvalidSignature
            | Self::StaleTimestamp => StatusCode::UNAUTHORIZED,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::MissingEvent { .. } | Self::MalformedPayload { .. } | Self::BodyRead(_) => {
                StatusCode::BAD_REQUEST
            }
            Self::RequestTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            // Never a 4xx for a transient failure: GitLab disables hooks that
            // keep failing with client errors, and every forge retries 5xx.
            Self::Busy { .. } | Self::Publish { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if let Self::Publish { retry_after, .. } | Self::Busy { retry_after } = self
            && let Ok(value) = HeaderValue::from_str(&retry_after.as_secs().max(1).to_string())
        {
            response.insert_header((header::RETRY_AFTER, value));
        }
        // The rest of the body is not read: say the connection ends here
        // (actix-web closes it either way, and so frees it).
        if matches!(self, Self::RequestTimeout { .. } | Self::Busy { .. }) {
            response.force_close();
        }
        let body = match self {
            Self::MalformedPayload { detail } => {
                serde_json::json!({ "error": self.kind(), "detail": detail })
            }
            Self::MissingEvent { header } => {
                serde_json::json!({ "error": self.kind(), "detail": format!("{header} header missing") })
            }
            _ => serde_json::json!({ "error": self.kind() }),
        };
        response.json(body)
    }
}

/// Failure to start the receiver.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The secrets could not be loaded.
    #[error("loading webhook secrets failed")]
    Secrets(#[from] crate::config::ConfigError),
    /// The metrics registry rejected a metric (a bug).
    #[error("registering metrics failed")]
    Metrics(#[from] prometheus::Error),
    /// The HTTP server could not start on the listener.
    #[error("starting the HTTP server failed")]
    Http(#[source] std::io::Error),
}
