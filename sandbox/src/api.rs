//! The HTTP surface: discovery, OpenAPI stubs kubectl needs, the REST verbs,
//! watch streams and Table output, plus the sandbox's own test controls.
//! Every request passes authentication, impersonation and authorization
//! first (`filters`).

mod filters;
mod request;
mod route;
mod watch;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::auth::{Tokens, UserInfo};
use crate::rbac::{self, Mode, escalation};
use crate::registry::ResourceType;
use crate::schema::openapi;
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::{PatchKind, Propagation, Store, WriteOptions};

use request::{
    field_manager, field_validation, openapi_v2, parse_body, parse_query, wants_table, warned,
};
use route::{Route, verb};

/// The Kubernetes version the sandbox claims to be.
pub const KUBE_MINOR: &str = "32";

/// Shared by every request.
#[derive(Debug)]
pub struct Shared {
    /// The objects.
    pub store: Arc<Store>,
    /// Every request, for tests.
    pub audit: Mutex<Vec<AuditEntry>>,
    /// Injected failures, for tests.
    pub faults: Mutex<Vec<Fault>>,
    /// When the sandbox started (for request timing).
    pub started: Instant,
    /// The bearer tokens requests authenticate with.
    pub tokens: Tokens,
    /// How requests are authorized.
    pub authorization: Mode,
}

/// One request as the audit log records it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditEntry {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, or the HTTP method for other paths.
    pub verb: String,
    /// Request path.
    pub path: String,
    /// Query string.
    pub query: String,
    /// Field manager, for writes.
    pub field_manager: Option<String>,
    /// Response status.
    pub status: u16,
    /// Milliseconds since the sandbox started, at arrival.
    pub start_ms: f64,
    /// Milliseconds since the sandbox started, when answered.
    pub end_ms: f64,
    /// The user the request ran as (the impersonated one when impersonating;
    /// `system:anonymous` when nobody authenticated).
    pub user: String,
    /// The authenticated user who impersonated `user`, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub impersonator: Option<String>,
    /// Whether the request addressed a create-only resource (the
    /// self-reviews): answered, never stored, so never a write.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub create_only: bool,
}

impl AuditEntry {
    /// Whether the request was a dry run (nothing stored).
    pub fn is_dry_run(&self) -> bool {
        self.query.split('&').any(|p| p == "dryRun=All")
    }

    /// Whether the request changed (or tried to change) stored state.
    /// Create-only resources (SelfSubjectAccessReviews and the like) are
    /// created but never stored, so they are not writes.
    pub fn is_write(&self) -> bool {
        matches!(
            self.verb.as_str(),
            "create" | "update" | "patch" | "delete" | "deletecollection"
        ) && !self.is_dry_run()
            && !self.create_only
    }
}

/// Make the next `count` requests whose path contains `path` (and whose verb
/// is `verb`, when given) fail with `status`, or wait `delay_ms` first.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Fault {
    /// Substring of the request path.
    pub path: String,
    /// Verb to match (`get`, `patch`, …); any when absent.
    #[serde(default)]
    pub verb: Option<String>,
    /// How many requests it affects.
    pub count: u32,
    /// Status to answer (0: do not fail, only delay).
    #[serde(default)]
    pub status: u16,
    /// Added latency.
    #[serde(default)]
    pub delay_ms: u64,
}

/// Route everything: the sandbox parses paths itself, as the real server does.
pub fn configure(config: &mut web::ServiceConfig) {
    config.default_service(web::to(handle));
}

async fn handle(req: HttpRequest, body: Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let start = shared.started.elapsed();
    let query = parse_query(req.query_string());
    let route = Route::parse(req.path(), &shared.store);
    let verb = verb(req.method(), &route, &query);
    let field_manager = query.get("fieldManager").cloned();
    let (requester, denied) = filters::admit(&shared, &req, &query);
    let response = match denied {
        Some(error) => error.into(),
        None => match injected(&shared, req.path(), &verb).await {
            Some(error) => error.into(),
            None => match serve(&req, &body, &shared, &route, &query, &requester.user).await {
                Ok(response) => response,
                Err(error) => error.into(),
            },
        },
    };
    if !req.path().starts_with("/sandbox/") {
        let entry = AuditEntry {
            verb,
            path: req.path().to_owned(),
            query: req.query_string().to_owned(),
            field_manager,
            status: response.status().as_u16(),
            start_ms: start.as_secs_f64() * 1000.0,
            end_ms: shared.started.elapsed().as_secs_f64() * 1000.0,
            user: requester.user.name,
            impersonator: requester.impersonator,
            create_only: route.create_only(),
        };
        if let Ok(mut audit) = shared.audit.lock() {
            audit.push(entry);
        }
    }
    response
}

impl From<ApiError> for HttpResponse {
    fn from(error: ApiError) -> Self {
        actix_web::ResponseError::error_response(&error)
    }
}

async fn injected(shared: &Shared, path: &str, verb: &str) -> Option<ApiError> {
    let fault = {
        let mut faults = shared.faults.lock().ok()?;
        let index = faults.iter().position(|f| {
            f.count > 0 && path.contains(&f.path) && f.verb.as_deref().is_none_or(|v| v == verb)
        })?;
        let fault = faults[index].clone();
        faults[index].count -= 1;
        if faults[index].count == 0 {
            faults.remove(index);
        }
        fault
    };
    if fault.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(fault.delay_ms)).await;
    }
    (fault.status != 0).then(|| ApiError::injected(fault.status))
}

async fn serve(
    req: &HttpRequest,
    body: &[u8],
    shared: &web::Data<Shared>,
    route: &Route,
    query: &BTreeMap<String, String>,
    user: &UserInfo,
) -> Result<HttpResponse, ApiError> {
    let store = &shared.store;
    let method = req.method().as_str();
    let dry_run = query.get("dryRun").is_some_and(|d| d == "All");
    match (route, method) {
        (Route::Version, "GET") => Ok(HttpResponse::Ok().json(json!({
            "major": "1", "minor": KUBE_MINOR, "gitVersion": format!("v1.{KUBE_MINOR}.0-pushsync-sandbox"),
            "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
            "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24", "compiler": "gc", "platform": "linux/amd64",
        }))),
        (Route::Health, "GET") => Ok(HttpResponse::Ok().content_type("text/plain").body("ok")),
        (Route::CoreVersions, "GET") => Ok(HttpResponse::Ok().json(json!({
            "kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": req.connection_info().host()}],
        }))),
        (Route::Groups, "GET") => Ok(HttpResponse::Ok().json(crate::discovery::groups(&store.types()))),
        (Route::Group(group), "GET") => crate::discovery::groups(&store.types())["groups"]
            .as_array()
            .and_then(|groups| groups.iter().find(|g| g["name"] == group.as_str()).cloned())
            .map(|mut g| {
                g["kind"] = json!("APIGroup");
                g["apiVersion"] = json!("v1");
                HttpResponse::Ok().json(g)
            })
            .ok_or_else(|| ApiError::no_route(req.path())),
        (Route::Resources(group, version), "GET") => crate::discovery::resources(&store.types(), group, version)
            .map(|list| HttpResponse::Ok().json(list))
            .ok_or_else(|| ApiError::no_route(req.path())),
        (Route::OpenApiIndex, "GET") => Ok(HttpResponse::Ok().json(openapi::v3_index(&store.types()))),
        (Route::OpenApiDoc(group, version), "GET") => openapi::v3_document(&store.types(), group, version)
            .map(|doc| HttpResponse::Ok().json(doc))
            .ok_or_else(|| ApiError::no_route(req.path())),
        (Route::OpenApiV2, "GET") => Ok(openapi_v2(req, &store.types())),
        (Route::Audit, "GET") => {
            let audit = shared.audit.lock().map(|a| a.clone()).unwrap_or_default();
            Ok(HttpResponse::Ok().json(audit))
        }
        (Route::Audit, "DELETE") => {
            if let Ok(mut audit) = shared.audit.lock() {
                audit.clear();
            }
            Ok(HttpResponse::Ok().json(json!({})))
        }
        (Route::Compact, "POST") => {
            store.compact();
            Ok(HttpResponse::Ok().json(json!({})))
        }
        (Route::Faults, "POST") => {
            let fault: Fault = serde_json::from_slice(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
            if let Ok(mut faults) = shared.faults.lock() {
                faults.push(fault);
            }
            Ok(HttpResponse::Created().json(json!({})))
        }
        (Route::Collection { rt, namespace }, "GET") => {
            let labels = LabelSelector::parse(query.get("labelSelector").map_or("", String::as_str))?;
            let fields = FieldSelector::parse_for(query.get("fieldSelector").map_or("", String::as_str), rt)?;
            let table = wants_table(req);
            if rbac::is_watch(query) {
                return watch::watch(shared.clone(), rt.clone(), namespace.clone(), labels, fields, query, table);
            }
            let token = query.get("continue").filter(|t| !t.is_empty());
            if token.is_some() && query.get("resourceVersion").is_some_and(|rv| !rv.is_empty() && rv != "0") {
                return Err(ApiError::bad_request("specifying resource version is not allowed when using continue"));
            }
            // A negative or zero limit means no limit, as on the real server.
            let limit = match query.get("limit").filter(|l| !l.is_empty()) {
                Some(limit) => {
                    let limit = limit.parse::<i64>().map_err(|_| {
                        ApiError::bad_request(format!("limit: Invalid value: {limit:?}: must be an integer"))
                    })?;
                    usize::try_from(limit).ok().filter(|l| *l > 0)
                }
                None => None,
            };
            let page = store.list_page(rt, namespace.as_deref(), &labels, &fields, limit, token.map(String::as_str))?;
            let mut list = if table {
                crate::discovery::table(rt, &page.items, page.rv)
            } else {
                json!({
                    "kind": format!("{}List", rt.kind),
                    "apiVersion": rt.api_version(),
                    "metadata": {"resourceVersion": page.rv.to_string()},
                    "items": page.items,
                })
            };
            if let Some(next) = page.continue_token {
                list["metadata"]["continue"] = json!(next);
            }
            if let Some(remaining) = page.remaining {
                list["metadata"]["remainingItemCount"] = json!(remaining);
            }
            Ok(HttpResponse::Ok().json(list))
        }
        (Route::Collection { rt, .. }, "POST") if rt.create_only => {
            let review = parse_body(req, body)?;
            Ok(HttpResponse::Created().json(rbac::review::answer(shared.authorization, store, user, rt, review)?))
        }
        (Route::Collection { rt, .. } | Route::Object { rt, .. }, _) if rt.create_only => {
            Err(ApiError::method_not_allowed(format!("the server does not allow this method on the requested resource ({method})")))
        }
        (Route::Collection { rt, namespace }, "POST") => {
            let object = parse_body(req, body)?;
            let options = WriteOptions {
                manager: field_manager(req, query),
                dry_run,
                validation: field_validation(query, "CreateOptions")?,
                ..Default::default()
            };
            let warnings = options.warnings.clone();
            let target = Target { shared, user, rt, namespace: namespace.as_deref(), name: "" };
            let create = |object, options: &WriteOptions| store.create(rt, namespace.as_deref(), object, options);
            let created = checked(&target, object, options, create, |created| created)?;
            Ok(warned(HttpResponse::Created(), &warnings).json(created))
        }
        (Route::Object { rt, namespace, name, .. }, "GET") => {
            let object = store.get(rt, namespace.as_deref(), name)?;
            if wants_table(req) {
                let rv = store.resource_version();
                return Ok(HttpResponse::Ok().json(crate::discovery::table(rt, std::slice::from_ref(&object), rv)));
            }
            Ok(HttpResponse::Ok().json(object))
        }
        (Route::Object { rt, namespace, name, status }, "PUT") => {
            let object = parse_body(req, body)?;
            let options = WriteOptions {
                manager: field_manager(req, query),
                dry_run,
                status: *status,
                validation: field_validation(query, "UpdateOptions")?,
                ..Default::default()
            };
            let warnings = options.warnings.clone();
            let target = Target { shared, user, rt, namespace: namespace.as_deref(), name };
            let update = |object, options: &WriteOptions| store.update(rt, namespace.as_deref(), name, object, options);
            let updated = checked(&target, object, options, update, |updated| updated)?;
            Ok(warned(HttpResponse::Ok(), &warnings).json(updated))
        }
        (Route::Object { rt, namespace, name, status }, "PATCH") => {
            let content_type = req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
            let kind = match content_type.split(';').next().unwrap_or_default().trim() {
                "application/apply-patch+yaml" | "application/apply-patch+cbor" => PatchKind::Apply,
                "application/merge-patch+json" => PatchKind::Merge,
                // Custom resources have no Go struct tags to merge by: the
                // real server refuses strategic merge for them.
                "application/strategic-merge-patch+json" if rt.custom => {
                    return Err(ApiError::unsupported_patch_for_custom_resource());
                }
                "application/strategic-merge-patch+json" => PatchKind::Strategic,
                "application/json-patch+json" => PatchKind::Json,
                other => return Err(ApiError::unsupported_media_type(other)),
            };
            if kind == PatchKind::Apply && query.get("fieldManager").is_none_or(String::is_empty) {
                return Err(ApiError::bad_request("PATCH request must have fieldManager for apply"));
            }
            let patch = parse_body(req, body)?;
            let options = WriteOptions {
                manager: field_manager(req, query),
                dry_run,
                status: *status,
                force: query.get("force").is_some_and(|f| f == "true"),
                validation: field_validation(query, "PatchOptions")?,
                ..Default::default()
            };
            let warnings = options.warnings.clone();
            let target = Target { shared, user, rt, namespace: namespace.as_deref(), name };
            let write = |patch, options: &WriteOptions| store.patch(rt, namespace.as_deref(), name, kind, patch, options);
            match checked(&target, patch, options, write, |(patched, _)| patched)? {
                (object, true) => Ok(warned(HttpResponse::Created(), &warnings).json(object)),
                (object, false) => Ok(warned(HttpResponse::Ok(), &warnings).json(object)),
            }
        }
        (Route::Object { rt, namespace, name, .. }, "DELETE") => {
            let options: Value = if body.is_empty() { json!({}) } else { serde_json::from_slice(body).unwrap_or(json!({})) };
            let policy = query
                .get("propagationPolicy")
                .map(String::as_str)
                .or_else(|| options.get("propagationPolicy").and_then(Value::as_str));
            let propagation = match policy {
                Some("Orphan") => Propagation::Orphan,
                Some("Foreground") => Propagation::Foreground,
                _ => Propagation::Background,
            };
            let dry_run = dry_run || options.get("dryRun").and_then(Value::as_array).is_some_and(|d| d.iter().any(|v| v == "All"));
            Ok(HttpResponse::Ok().json(store.delete(rt, namespace.as_deref(), name, propagation, dry_run)?))
        }
        (Route::Collection { rt, namespace }, "DELETE") => {
            let labels = LabelSelector::parse(query.get("labelSelector").map_or("", String::as_str))?;
            let fields = FieldSelector::parse_for(query.get("fieldSelector").map_or("", String::as_str), rt)?;
            let (items, _) = store.list(rt, namespace.as_deref(), &labels, &fields);
            let mut deleted = Vec::new();
            for item in items {
                let name = item.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
                let ns = item.pointer("/metadata/namespace").and_then(Value::as_str);
                match store.delete(rt, ns, name, Propagation::Background, dry_run) {
                    Ok(object) => deleted.push(object),
                    Err(error) if error.code == 404 => {}
                    Err(error) => return Err(error),
                }
            }
            Ok(HttpResponse::Ok().json(json!({
                "kind": format!("{}List", rt.kind),
                "apiVersion": rt.api_version(),
                "metadata": {"resourceVersion": store.resource_version().to_string()},
                "items": deleted,
            })))
        }
        (Route::Scale { rt, namespace, name }, "GET") => {
            let object = store.get(rt, Some(namespace), name)?;
            Ok(HttpResponse::Ok().json(scale_of(&object)))
        }
        (Route::Scale { rt, namespace, name }, "PUT" | "PATCH") => {
            let object = store.get(rt, Some(namespace), name)?;
            let mut scale = scale_of(&object);
            let change = parse_body(req, body)?;
            if method == "PUT" {
                scale = change;
            } else {
                let content_type = req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
                if content_type.starts_with("application/json-patch+json") {
                    let operations: json_patch::Patch =
                        serde_json::from_value(change).map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
                    json_patch::patch(&mut scale, &operations).map_err(|e| ApiError::bad_request(e.to_string()))?;
                } else {
                    json_patch::merge(&mut scale, &change);
                }
            }
            let replicas = scale
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .ok_or_else(|| ApiError::bad_request("spec.replicas is required"))?;
            let options = WriteOptions {
                manager: field_manager(req, query),
                dry_run,
                validation: field_validation(query, "PatchOptions")?,
                ..Default::default()
            };
            let (updated, _) = store.patch(
                rt,
                Some(namespace),
                name,
                PatchKind::Merge,
                json!({"spec": {"replicas": replicas}}),
                &options,
            )?;
            Ok(HttpResponse::Ok().json(scale_of(&updated)))
        }
        (Route::Unknown, _) => Err(ApiError::no_route(req.path())),
        _ => Err(ApiError::method_not_allowed(format!("the server does not allow this method on the requested resource ({method})"))),
    }
}

/// Whom a write is for and what it writes to, for RBAC's escalation check.
struct Target<'a> {
    shared: &'a Shared,
    user: &'a UserInfo,
    rt: &'a ResourceType,
    namespace: Option<&'a str>,
    /// The name in the URL (empty on a POST create).
    name: &'a str,
}

/// Run `write` with the request's `body` and `options`. When the escalation
/// check applies (RBAC objects, in RBAC mode, written by someone outside
/// `system:masters`), the write runs as a dry run first so the check sees
/// exactly what would be stored, including the result of a patch or
/// server-side apply; only then are the body and options copied.
fn checked<T>(
    target: &Target<'_>,
    body: Value,
    options: WriteOptions,
    write: impl Fn(Value, &WriteOptions) -> Result<T, ApiError>,
    stored: fn(&T) -> &Value,
) -> Result<T, ApiError> {
    let Target {
        shared,
        user,
        rt,
        namespace,
        name,
    } = *target;
    if !escalation::required(shared.authorization, user, rt) {
        return write(body, &options);
    }
    let old = (!name.is_empty())
        .then(|| shared.store.get(rt, namespace, name).ok())
        .flatten();
    let dry = WriteOptions {
        dry_run: true,
        ..options.clone()
    };
    let preview = write(body.clone(), &dry)?;
    let check = escalation::RbacWrite {
        rt,
        namespace: namespace.unwrap_or_default(),
        name,
        object: stored(&preview),
        old: old.as_ref(),
    };
    escalation::confirm(shared.authorization, &shared.store, user, &check)?;
    if options.dry_run {
        Ok(preview)
    } else {
        write(body, &options)
    }
}

/// The `autoscaling/v1` Scale view of a scalable object.
fn scale_of(object: &Value) -> Value {
    let labels = object
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let metadata = object.get("metadata").cloned().unwrap_or(json!({}));
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": metadata.get("name"),
            "namespace": metadata.get("namespace"),
            "uid": metadata.get("uid"),
            "resourceVersion": metadata.get("resourceVersion"),
            "creationTimestamp": metadata.get("creationTimestamp"),
        },
        "spec": {"replicas": object.pointer("/spec/replicas").cloned().unwrap_or(json!(1))},
        "status": {
            "replicas": object.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": labels,
        },
    })
}
