//! Reading a request (query, body, field manager, `fieldValidation`,
//! whether a Table is wanted) and the response headers and bodies that
//! depend on it (warnings, `/openapi/v2` in JSON or protobuf).

use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse};
use serde_json::Value;

use crate::registry::ResourceType;
use crate::schema::{FieldValidation, openapi};
use crate::status::ApiError;
use crate::store::Warnings;

pub(super) fn parse_query(query: &str) -> BTreeMap<String, String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .unwrap_or_default()
        .into_iter()
        .collect()
}

pub(super) fn wants_table(req: &HttpRequest) -> bool {
    req.headers()
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("as=Table"))
}

pub(super) fn field_manager(req: &HttpRequest, query: &BTreeMap<String, String>) -> String {
    if let Some(manager) = query.get("fieldManager").filter(|m| !m.is_empty()) {
        return manager.clone();
    }
    // The real server derives a manager from the user agent's program name.
    req.headers()
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .and_then(|ua| ua.split('/').next())
        .filter(|ua| !ua.is_empty())
        .unwrap_or("unknown")
        .to_owned()
}

/// The `fieldValidation` parameter of a write whose options are `options`
/// (`CreateOptions`, …; absent: Warn, the API's default).
pub(super) fn field_validation(
    query: &BTreeMap<String, String>,
    options: &str,
) -> Result<FieldValidation, ApiError> {
    let value = query.get("fieldValidation").map(String::as_str);
    FieldValidation::parse(value).ok_or_else(|| {
        ApiError::invalid(
            &format!("{options}.meta.k8s.io"),
            "",
            format!(
                "fieldValidation: Unsupported value: {:?}: supported values: \"\", \"Ignore\", \"Strict\", \"Warn\"",
                value.unwrap_or_default()
            ),
        )
    })
}

/// A response carrying the write's warnings as `Warning: 299 - "…"` headers.
pub(super) fn warned(
    mut builder: actix_web::HttpResponseBuilder,
    warnings: &Warnings,
) -> actix_web::HttpResponseBuilder {
    for warning in warnings.list() {
        let quoted = warning.replace('\\', "\\\\").replace('"', "\\\"");
        builder.append_header(("Warning", format!("299 - \"{quoted}\"")));
    }
    builder
}

/// `/openapi/v2`: kubectl asks for gnostic's protobuf encoding; JSON otherwise.
pub(super) fn openapi_v2(req: &HttpRequest, types: &[ResourceType]) -> HttpResponse {
    let document = openapi::v2_document(types);
    let protobuf = req
        .headers()
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("protobuf"));
    if protobuf {
        HttpResponse::Ok()
            .content_type("application/com.github.proto-openapi.spec.v2.v1.0+protobuf")
            .body(crate::openapi_v2::encode(&document))
    } else {
        HttpResponse::Ok().json(document)
    }
}

pub(super) fn parse_body(req: &HttpRequest, body: &[u8]) -> Result<Value, ApiError> {
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    // kubectl's typed clients send protobuf for built-in kinds.
    if content_type.contains("protobuf") {
        return crate::protobuf::decode(body);
    }
    if content_type.contains("cbor") {
        return Err(ApiError::unsupported_media_type(content_type));
    }
    if body.is_empty() {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        return Ok(value);
    }
    let yaml = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.contains("yaml"));
    if yaml {
        let text = std::str::from_utf8(body)
            .map_err(|_| ApiError::bad_request("the request body is not UTF-8"))?;
        return serde_saphyr::from_str::<Value>(text)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")));
    }
    Err(ApiError::bad_request("the request body is not valid JSON"))
}
