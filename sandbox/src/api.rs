//! The HTTP surface: discovery, OpenAPI stubs kubectl needs, the REST verbs,
//! watch streams and Table output, plus the sandbox's own test controls.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::registry::ResourceType;
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::{PatchKind, Propagation, Store, WatchEvent, WriteOptions};

/// The Kubernetes version the sandbox claims to be.
pub const KUBE_MINOR: &str = "33";

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
}

impl AuditEntry {
    /// Whether the request was a dry run (nothing stored).
    pub fn is_dry_run(&self) -> bool {
        self.query.split('&').any(|p| p == "dryRun=All")
    }

    /// Whether the request changed (or tried to change) stored state.
    pub fn is_write(&self) -> bool {
        matches!(
            self.verb.as_str(),
            "create" | "update" | "patch" | "delete" | "deletecollection"
        ) && !self.is_dry_run()
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
    let response = match injected(&shared, req.path(), &verb).await {
        Some(error) => error.into(),
        None => match serve(&req, &body, &shared, &route, &query).await {
            Ok(response) => response,
            Err(error) => error.into(),
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

fn parse_query(query: &str) -> BTreeMap<String, String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .unwrap_or_default()
        .into_iter()
        .collect()
}

/// What a path addresses.
#[derive(Debug, Clone)]
enum Route {
    Version,
    Health,
    CoreVersions,
    Groups,
    Group(String),
    Resources(String, String),
    OpenApiIndex,
    OpenApiDoc(String, String),
    Audit,
    Faults,
    Collection {
        rt: ResourceType,
        namespace: Option<String>,
    },
    Object {
        rt: ResourceType,
        namespace: Option<String>,
        name: String,
        status: bool,
    },
    /// The `scale` subresource of a Deployment, StatefulSet or ReplicaSet.
    Scale {
        rt: ResourceType,
        namespace: String,
        name: String,
    },
    Unknown,
}

impl Route {
    fn parse(path: &str, store: &Store) -> Self {
        let segments: Vec<&str> = path
            .trim_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        match segments.as_slice() {
            ["version"] => Self::Version,
            ["healthz" | "readyz" | "livez", ..] => Self::Health,
            ["api"] => Self::CoreVersions,
            ["apis"] => Self::Groups,
            ["apis", group] => Self::Group((*group).to_owned()),
            ["api", version] => Self::Resources(String::new(), (*version).to_owned()),
            ["apis", group, version] => Self::Resources((*group).to_owned(), (*version).to_owned()),
            ["openapi", "v3"] => Self::OpenApiIndex,
            ["openapi", "v3", "api", version] => {
                Self::OpenApiDoc(String::new(), (*version).to_owned())
            }
            ["openapi", "v3", "apis", group, version] => {
                Self::OpenApiDoc((*group).to_owned(), (*version).to_owned())
            }
            ["sandbox", "audit"] => Self::Audit,
            ["sandbox", "faults"] => Self::Faults,
            ["api", version, rest @ ..] => Self::resource(store, "", version, rest),
            ["apis", group, version, rest @ ..] => Self::resource(store, group, version, rest),
            _ => Self::Unknown,
        }
    }

    fn resource(store: &Store, group: &str, version: &str, rest: &[&str]) -> Self {
        let resolve = |plural: &str| store.resolve(group, version, plural);
        let namespaced_collection = |plural: &str| resolve(plural).filter(|rt| rt.namespaced);
        match rest {
            ["namespaces", ns, plural] if namespaced_collection(plural).is_some() => {
                Self::Collection {
                    rt: namespaced_collection(plural)
                        .unwrap_or_else(|| unreachable!("checked by the guard")),
                    namespace: Some((*ns).to_owned()),
                }
            }
            ["namespaces", ns, plural, name] => match namespaced_collection(plural) {
                Some(rt) => Self::Object {
                    rt,
                    namespace: Some((*ns).to_owned()),
                    name: (*name).to_owned(),
                    status: false,
                },
                None => Self::Unknown,
            },
            ["namespaces", ns, plural, name, "scale"] => match namespaced_collection(plural) {
                Some(rt) if rt.scalable() => Self::Scale {
                    rt,
                    namespace: (*ns).to_owned(),
                    name: (*name).to_owned(),
                },
                _ => Self::Unknown,
            },
            ["namespaces", ns, plural, name, "status"] => match namespaced_collection(plural) {
                Some(rt) if rt.status => Self::Object {
                    rt,
                    namespace: Some((*ns).to_owned()),
                    name: (*name).to_owned(),
                    status: true,
                },
                _ => Self::Unknown,
            },
            [plural] => match resolve(plural) {
                Some(rt) => Self::Collection {
                    rt,
                    namespace: None,
                },
                None => Self::Unknown,
            },
            [plural, name] => match resolve(plural).filter(|rt| !rt.namespaced) {
                Some(rt) => Self::Object {
                    rt,
                    namespace: None,
                    name: (*name).to_owned(),
                    status: false,
                },
                None => Self::Unknown,
            },
            [plural, name, "status"] => {
                match resolve(plural).filter(|rt| !rt.namespaced && rt.status) {
                    Some(rt) => Self::Object {
                        rt,
                        namespace: None,
                        name: (*name).to_owned(),
                        status: true,
                    },
                    None => Self::Unknown,
                }
            }
            _ => Self::Unknown,
        }
    }
}

fn verb(method: &Method, route: &Route, query: &BTreeMap<String, String>) -> String {
    let watch = query.get("watch").is_some_and(|w| w == "true" || w == "1");
    match (route, method.as_str()) {
        (Route::Collection { .. }, "GET") if watch => "watch",
        (Route::Collection { .. }, "GET") => "list",
        (Route::Collection { .. }, "POST") => "create",
        (Route::Collection { .. }, "DELETE") => "deletecollection",
        (Route::Object { .. }, "GET") => "get",
        (Route::Object { .. }, "PUT") => "update",
        (Route::Object { .. }, "PATCH") => "patch",
        (Route::Object { .. }, "DELETE") => "delete",
        (Route::Scale { .. }, "GET") => "get",
        (Route::Scale { .. }, "PUT") => "update",
        (Route::Scale { .. }, "PATCH") => "patch",
        (_, method) => return method.to_ascii_lowercase(),
    }
    .to_owned()
}

fn wants_table(req: &HttpRequest) -> bool {
    req.headers()
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("as=Table"))
}

fn field_manager(req: &HttpRequest, query: &BTreeMap<String, String>) -> String {
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

fn parse_body(req: &HttpRequest, body: &[u8]) -> Result<Value, ApiError> {
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

async fn serve(
    req: &HttpRequest,
    body: &[u8],
    shared: &web::Data<Shared>,
    route: &Route,
    query: &BTreeMap<String, String>,
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
        (Route::OpenApiIndex, "GET") => Ok(HttpResponse::Ok().json(crate::discovery::openapi_index(&store.types()))),
        (Route::OpenApiDoc(group, version), "GET") => crate::discovery::openapi_doc(&store.types(), group, version)
            .map(|doc| HttpResponse::Ok().json(doc))
            .ok_or_else(|| ApiError::no_route(req.path())),
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
        (Route::Faults, "POST") => {
            let fault: Fault = serde_json::from_slice(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
            if let Ok(mut faults) = shared.faults.lock() {
                faults.push(fault);
            }
            Ok(HttpResponse::Created().json(json!({})))
        }
        (Route::Collection { rt, namespace }, "GET") => {
            let labels = LabelSelector::parse(query.get("labelSelector").map_or("", String::as_str))?;
            let fields = FieldSelector::parse(query.get("fieldSelector").map_or("", String::as_str))?;
            let table = wants_table(req);
            if query.get("watch").is_some_and(|w| w == "true" || w == "1") {
                return watch(shared.clone(), rt.clone(), namespace.clone(), labels, fields, query, table);
            }
            let (items, rv) = store.list(rt, namespace.as_deref(), &labels, &fields);
            if table {
                return Ok(HttpResponse::Ok().json(crate::discovery::table(rt, &items, rv)));
            }
            Ok(HttpResponse::Ok().json(json!({
                "kind": format!("{}List", rt.kind),
                "apiVersion": rt.api_version(),
                "metadata": {"resourceVersion": rv.to_string()},
                "items": items,
            })))
        }
        (Route::Collection { rt, namespace }, "POST") => {
            let object = parse_body(req, body)?;
            let options = WriteOptions { manager: field_manager(req, query), dry_run, ..Default::default() };
            let created = store.create(rt, namespace.as_deref(), object, &options)?;
            Ok(HttpResponse::Created().json(created))
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
            let options = WriteOptions { manager: field_manager(req, query), dry_run, status: *status, force: false };
            Ok(HttpResponse::Ok().json(store.update(rt, namespace.as_deref(), name, object, &options)?))
        }
        (Route::Object { rt, namespace, name, status }, "PATCH") => {
            let content_type = req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
            let kind = match content_type.split(';').next().unwrap_or_default().trim() {
                "application/apply-patch+yaml" | "application/apply-patch+cbor" => PatchKind::Apply,
                "application/merge-patch+json" => PatchKind::Merge,
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
            };
            match store.patch(rt, namespace.as_deref(), name, kind, patch, &options)? {
                (object, true) => Ok(HttpResponse::Created().json(object)),
                (object, false) => Ok(HttpResponse::Ok().json(object)),
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
            let fields = FieldSelector::parse(query.get("fieldSelector").map_or("", String::as_str))?;
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
            let options = WriteOptions { manager: field_manager(req, query), dry_run, ..Default::default() };
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

/// A watch stream: newline-delimited JSON events until the timeout.
fn watch(
    shared: web::Data<Shared>,
    rt: ResourceType,
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    query: &BTreeMap<String, String>,
    table: bool,
) -> Result<HttpResponse, ApiError> {
    let since = query
        .get("resourceVersion")
        .filter(|v| !v.is_empty() && *v != "0");
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map_or(Duration::from_secs(1800), Duration::from_secs);
    let store = &shared.store;
    let (initial, receiver) = match since {
        Some(since) => {
            let since: u64 = since
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {since:?}")))?;
            let (replay, receiver) = store.watch_from(since)?;
            (replay, receiver)
        }
        None => {
            // Current objects first, as ADDED, then changes after them.
            let rv = store.resource_version();
            let (replay, receiver) = store.watch_from(rv)?;
            let (items, _) = store.list(&rt, namespace.as_deref(), &labels, &fields);
            let mut initial: Vec<Arc<WatchEvent>> = items
                .into_iter()
                .map(|object| {
                    Arc::new(WatchEvent {
                        rv,
                        kind: "ADDED",
                        key: rt.storage_key(),
                        object,
                    })
                })
                .collect();
            initial.extend(replay);
            (initial, receiver)
        }
    };
    let filter = Arc::new(move |event: &WatchEvent| -> Option<Bytes> {
        if event.key != rt.storage_key() {
            return None;
        }
        let object = &event.object;
        let ns = object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if namespace.as_deref().is_some_and(|n| n != ns)
            || !labels.matches(object)
            || !fields.matches(object)
        {
            return None;
        }
        let mut object = object.clone();
        object["apiVersion"] = json!(rt.api_version());
        let object = if table {
            let rv = event.rv;
            crate::discovery::table(&rt, std::slice::from_ref(&object), rv)
        } else {
            object
        };
        let mut line = serde_json::to_vec(&json!({"type": event.kind, "object": object})).ok()?;
        line.push(b'\n');
        Some(Bytes::from(line))
    });
    let deadline = tokio::time::Instant::now() + timeout;
    struct WatchState {
        initial: std::vec::IntoIter<Arc<WatchEvent>>,
        receiver: tokio::sync::broadcast::Receiver<Arc<WatchEvent>>,
        last_rv: u64,
        done: bool,
    }
    let state = WatchState {
        initial: initial.into_iter(),
        receiver,
        last_rv: 0,
        done: false,
    };
    let stream = futures_util::stream::unfold(state, move |mut state| {
        let filter = filter.clone();
        async move {
            if state.done {
                return None;
            }
            loop {
                if let Some(event) = state.initial.next() {
                    state.last_rv = state.last_rv.max(event.rv);
                    if let Some(line) = filter(&event) {
                        return Some((Ok::<_, actix_web::Error>(line), state));
                    }
                    continue;
                }
                let next = tokio::time::timeout_at(deadline, state.receiver.recv()).await;
                match next {
                    Ok(Ok(event)) => {
                        if event.rv <= state.last_rv {
                            continue;
                        }
                        state.last_rv = event.rv;
                        if let Some(line) = filter(&event) {
                            return Some((Ok(line), state));
                        }
                    }
                    // Lagged: the client must re-list, as after a real 410.
                    Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {
                        let gone = json!({"type": "ERROR", "object": ApiError::gone("watch fell behind; re-list").status()});
                        let mut line = serde_json::to_vec(&gone).unwrap_or_default();
                        line.push(b'\n');
                        state.done = true;
                        return Some((Ok(Bytes::from(line)), state));
                    }
                    Ok(Err(_)) | Err(_) => return None,
                }
            }
        }
    });
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .streaming(stream))
}
