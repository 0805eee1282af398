//! Kubernetes-shaped errors: every failure is a `metav1.Status` with reason and code.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

/// An API error as the real server reports it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{reason} ({code}): {message}")]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// `metav1.StatusReason` (`NotFound`, `Conflict`, `Invalid`, …).
    pub reason: &'static str,
    /// Human-readable message, in the real server's words where it matters to clients.
    pub message: String,
    /// `details` (name, group, kind) when known.
    pub details: Option<serde_json::Value>,
    /// The Status's `metadata` (a 410 for an expired continue token carries
    /// a token to continue inconsistently with).
    pub metadata: Option<serde_json::Value>,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
            metadata: None,
        }
    }

    /// 404 for one object.
    pub fn not_found(resource: &str, name: &str) -> Self {
        let mut error = Self::new(404, "NotFound", format!("{resource} \"{name}\" not found"));
        error.details = Some(json!({ "name": name, "kind": resource }));
        error
    }

    /// 404 for a path that serves nothing.
    pub fn no_route(path: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        )
    }

    /// 409 AlreadyExists.
    pub fn already_exists(resource: &str, name: &str) -> Self {
        let mut error = Self::new(
            409,
            "AlreadyExists",
            format!("{resource} \"{name}\" already exists"),
        );
        error.details = Some(json!({ "name": name, "kind": resource }));
        error
    }

    /// 409 Conflict (stale resourceVersion, or SSA field conflicts).
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(409, "Conflict", message)
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 422 Invalid.
    pub fn invalid(kind: &str, name: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        let mut error = Self::new(
            422,
            "Invalid",
            format!("{kind} \"{name}\" is invalid: {message}"),
        );
        // "field: detail" becomes a cause, which kubectl prints as "* field: detail".
        let (group_kind, group) = kind.split_once('.').unwrap_or((kind, ""));
        let mut details = json!({ "name": name, "group": group, "kind": group_kind });
        if let Some((field, detail)) = message.split_once(": ") {
            let reason = if detail.starts_with("Required") {
                "FieldValueRequired"
            } else if detail.starts_with("Forbidden") {
                "FieldValueForbidden"
            } else {
                "FieldValueInvalid"
            };
            details["causes"] = json!([{ "reason": reason, "message": detail, "field": field }]);
        }
        error.details = Some(details);
        error
    }

    /// 422 Invalid with every cause listed, as the real server reports a
    /// custom resource that fails its schema: one cause is `field: detail`,
    /// several are `[a: x, b: y]`.
    pub fn invalid_causes(kind: &str, name: &str, causes: &[crate::schema::Cause]) -> Self {
        let lines: Vec<String> = causes.iter().map(crate::schema::Cause::line).collect();
        let summary = match lines.as_slice() {
            [one] => one.clone(),
            many => format!("[{}]", many.join(", ")),
        };
        let mut error = Self::new(
            422,
            "Invalid",
            format!("{kind} \"{name}\" is invalid: {summary}"),
        );
        let (group_kind, group) = kind.split_once('.').unwrap_or((kind, ""));
        error.details = Some(json!({
            "name": name,
            "group": group,
            "kind": group_kind,
            "causes": causes.iter().map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field})).collect::<Vec<_>>(),
        }));
        error
    }

    /// 500 InternalError without a reason, as server-side apply reports a
    /// field its schema does not declare.
    pub fn internal_unreasoned(message: impl Into<String>) -> Self {
        Self::new(500, "", message)
    }

    /// 415: a strategic merge patch sent to a custom resource, in the real
    /// server's words.
    pub fn unsupported_patch_for_custom_resource() -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/apply-patch+cbor",
        )
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    /// 410 Gone (watch from a compacted resourceVersion).
    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// 415 UnsupportedMediaType.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {content_type})"
            ),
        )
    }

    /// 401: no credentials, or credentials no authenticator accepts.
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    /// 403 as `apierrors.NewForbidden` words it: `<resource>.<group> "<name>"
    /// is forbidden: <why>` (`forbidden: <why>` for a path that names no
    /// resource), with the non-empty parts of the resource in `details`.
    pub fn forbidden(group: &str, resource: &str, name: &str, why: &str) -> Self {
        let qualified = match (group.is_empty(), resource.is_empty()) {
            (_, true) => String::new(),
            (true, false) => resource.to_owned(),
            (false, false) => format!("{resource}.{group}"),
        };
        let message = if qualified.is_empty() {
            format!("forbidden: {why}")
        } else if name.is_empty() {
            format!("{qualified} is forbidden: {why}")
        } else {
            format!("{qualified} \"{name}\" is forbidden: {why}")
        };
        let mut details = serde_json::Map::new();
        for (key, value) in [("name", name), ("group", group), ("kind", resource)] {
            if !value.is_empty() {
                details.insert(key.to_owned(), json!(value));
            }
        }
        let mut error = Self::new(403, "Forbidden", message);
        error.details = Some(serde_json::Value::Object(details));
        error
    }

    /// 500 InternalError: the server could not handle a request it understood.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    /// An injected fault (tests).
    pub fn injected(code: u16) -> Self {
        let reason = match code {
            409 => "Conflict",
            429 => "TooManyRequests",
            503 => "ServiceUnavailable",
            _ => "InternalError",
        };
        Self::new(code, reason, format!("injected fault: {code}"))
    }

    /// The `metav1.Status` body.
    pub fn status(&self) -> serde_json::Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        if let Some(metadata) = &self.metadata {
            status["metadata"] = metadata.clone();
        }
        status
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if self.code == 429 {
            response.insert_header(("Retry-After", "1"));
        }
        response.json(self.status())
    }
}
