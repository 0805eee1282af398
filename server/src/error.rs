//! Errors as the API answers them: a status and `{"error": …, "message": …}`.
//! Messages never carry tokens, cookies or Secret data.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// No (or a wrong) token or session.
    #[error("log in first (a session, or an API token as `Authorization: Bearer`)")]
    Unauthenticated,
    /// A browser request without this site's CSRF token.
    #[error(
        "this request did not come from the pushsync UI (missing or wrong CSRF token, or another site)"
    )]
    Csrf,
    /// The user's groups do not allow the action on this Project.
    #[error("{user} may not {action} in project {project:?}")]
    Forbidden {
        /// Who asked.
        user: String,
        /// What for.
        action: &'static str,
        /// Where.
        project: String,
    },
    /// Not there, or not visible to this user (the same answer, so names do
    /// not leak across Projects).
    #[error("{0} not found")]
    NotFound(String),
    /// The request is malformed.
    #[error("{0}")]
    Invalid(String),
    /// The Kubernetes API failed.
    #[error("the Kubernetes API failed while {what}: {message}")]
    Kubernetes {
        /// What the server was doing.
        what: String,
        /// The API's answer.
        message: String,
    },
    /// The identity provider failed or refused.
    #[error("the identity provider failed: {0}")]
    Provider(String),
    /// A bug or an exhausted resource.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ServerError {
    /// Wrap a kube error with what was being done.
    pub fn kube(what: impl Into<String>) -> impl FnOnce(kube::Error) -> ServerError {
        let what = what.into();
        move |error| match error {
            kube::Error::Api(status) if status.code == 404 => ServerError::NotFound(what),
            kube::Error::Api(status) => ServerError::Kubernetes {
                what,
                message: status.message,
            },
            other => ServerError::Kubernetes {
                what,
                message: other.to_string(),
            },
        }
    }

    /// A bounded label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ServerError::Unauthenticated => "unauthenticated",
            ServerError::Csrf => "csrf",
            ServerError::Forbidden { .. } => "forbidden",
            ServerError::NotFound(_) => "not_found",
            ServerError::Invalid(_) => "invalid",
            ServerError::Kubernetes { .. } => "kubernetes",
            ServerError::Provider(_) => "provider",
            ServerError::Internal(_) => "internal",
        }
    }
}

impl ResponseError for ServerError {
    fn status_code(&self) -> StatusCode {
        match self {
            ServerError::Unauthenticated => StatusCode::UNAUTHORIZED,
            ServerError::Csrf | ServerError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ServerError::NotFound(_) => StatusCode::NOT_FOUND,
            ServerError::Invalid(_) => StatusCode::BAD_REQUEST,
            ServerError::Kubernetes { .. } | ServerError::Provider(_) => StatusCode::BAD_GATEWAY,
            ServerError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code())
            .json(json!({"error": self.kind(), "message": self.to_string()}))
    }
}
