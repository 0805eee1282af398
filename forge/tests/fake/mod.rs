//! A stateful fake of the three forges' webhook APIs, for the tests: hooks
//! live in memory per repository/organisation (GitLab: project/group),
//! lists are paginated two to a page, secrets are stored (so tests can check
//! what was written) but never returned — GitHub masks a set secret as
//! `********`, GitLab and Gitea omit it — and every request is recorded.
//!
//! Responses carry every field the official descriptions require, so the
//! validating proxy in front (prism) accepts them. Behaviour that matters to
//! a client is copied from the forges' documentation: GitHub drops the
//! secret when a hook `PATCH` has a `config` without one; Gitea's `active`
//! defaults to false; GitLab's `PUT` needs `url` and resets the token when
//! the URL changes.
//!
//! Requests for a target whose name contains `missing` get the forge's 404;
//! a wrong token gets its 401.

mod gitea;
mod github;
mod gitlab;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex, MutexGuard};

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::Value;

/// The token every fake accepts.
pub const TOKEN: &str = "test-token-ab12cd34";
/// Hooks per list page: small, so clients must follow pagination.
pub const PAGE_SIZE: usize = 2;
/// The timestamp on every hook.
const TIME: &str = "2026-01-01T00:00:00Z";

/// Which forge a fake imitates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    Github,
    Gitlab,
    Gitea,
}

/// A hook as the fake stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredHook {
    pub id: u64,
    pub url: String,
    /// GitHub/Gitea event names; GitLab: enabled `<name>_events` switches.
    pub events: Vec<String>,
    pub active: bool,
    pub content_type: Option<String>,
    pub insecure_ssl: bool,
    pub secret: Option<String>,
}

impl StoredHook {
    /// A hook as a person might have made it by hand.
    pub fn new(url: &str, events: &[&str], secret: Option<&str>) -> StoredHook {
        StoredHook {
            id: 0,
            url: url.to_owned(),
            events: events.iter().map(|e| e.to_string()).collect(),
            active: true,
            content_type: Some("json".into()),
            insecure_ssl: false,
            secret: secret.map(str::to_owned),
        }
    }
}

/// One request the fake received.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    /// The raw path, as sent (percent-encoding kept).
    pub path: String,
    pub query: String,
    /// Lower-case header names.
    pub headers: BTreeMap<String, String>,
    pub body: Option<Value>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    hooks: BTreeMap<String, Vec<StoredHook>>,
    requests: Vec<(String, Recorded)>,
}

/// One fake forge, serving on a loopback port from a thread of its own.
pub struct Fake {
    pub flavor: Flavor,
    pub port: u16,
    state: Mutex<State>,
}

/// The parsed route of a hook request.
pub struct Route {
    /// `repos/o/r`, `orgs/acme`, `projects/g/p`, `groups/g`.
    pub scope: String,
    /// Whether the scope is an organisation or group.
    pub org: bool,
    pub id: Option<u64>,
    /// Segments after the id: `pings`, `tests`, `config`, `test/push_events`.
    pub action: Vec<String>,
}

impl Fake {
    /// Start a fake of `flavor` on a free port.
    pub fn start(flavor: Flavor) -> Arc<Fake> {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let fake = Arc::new(Fake {
            flavor,
            port,
            state: Mutex::new(State {
                next_id: 1,
                ..State::default()
            }),
        });
        let data = web::Data::from(Arc::clone(&fake));
        let server = actix_web::HttpServer::new(move || {
            actix_web::App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(1 << 20))
                .default_service(web::to(handle))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        // The thread ends with the test process.
        std::thread::spawn(move || actix_web::rt::System::new().block_on(server));
        fake
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The hooks of `scope` (`repos/o/r`, `orgs/acme`, `projects/g/p`,
    /// `groups/g`), in creation order.
    pub fn hooks(&self, scope: &str) -> Vec<StoredHook> {
        self.state().hooks.get(scope).cloned().unwrap_or_default()
    }

    /// Add a hook as if made by hand; returns its id.
    pub fn insert(&self, scope: &str, hook: StoredHook) -> u64 {
        self.create(scope, hook).id
    }

    /// Change a stored hook as if edited by hand.
    pub fn edit(&self, scope: &str, id: u64, change: impl FnOnce(&mut StoredHook)) {
        let mut state = self.state();
        let hook = state
            .hooks
            .get_mut(scope)
            .and_then(|hooks| hooks.iter_mut().find(|h| h.id == id))
            .unwrap();
        change(hook);
    }

    /// The requests made on `scope`.
    pub fn requests(&self, scope: &str) -> Vec<Recorded> {
        self.state()
            .requests
            .iter()
            .filter(|(s, _)| s == scope)
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// The requests on `scope` that could change something (not `GET`).
    pub fn writes(&self, scope: &str) -> Vec<Recorded> {
        let mut writes = self.requests(scope);
        writes.retain(|r| r.method != "GET");
        writes
    }

    fn create(&self, scope: &str, mut hook: StoredHook) -> StoredHook {
        let mut state = self.state();
        hook.id = state.next_id;
        state.next_id += 1;
        state
            .hooks
            .entry(scope.to_owned())
            .or_default()
            .push(hook.clone());
        hook
    }

    fn with_hook<T>(
        &self,
        scope: &str,
        id: u64,
        f: impl FnOnce(&mut StoredHook) -> T,
    ) -> Option<T> {
        let mut state = self.state();
        state
            .hooks
            .get_mut(scope)
            .and_then(|hooks| hooks.iter_mut().find(|h| h.id == id))
            .map(f)
    }

    fn remove(&self, scope: &str, id: u64) -> bool {
        let mut state = self.state();
        let Some(hooks) = state.hooks.get_mut(scope) else {
            return false;
        };
        let before = hooks.len();
        hooks.retain(|h| h.id != id);
        hooks.len() != before
    }
}

/// Percent-decode one path segment.
fn decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        if let (b'%', Some(Ok(b))) = (bytes[i], hex.map(|h| u8::from_str_radix(h, 16))) {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `repos/{o}/{r}/hooks…`, `orgs/{org}/hooks…`, `projects/{id}/hooks…`,
/// `groups/{id}/hooks…`, after an optional API prefix (`/api/v3`).
fn route(flavor: Flavor, path: &str) -> Option<Route> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let start = segments
        .iter()
        .position(|s| matches!(*s, "repos" | "orgs" | "projects" | "groups"))?;
    let prefix = &segments[..start];
    if !(prefix.is_empty()
        || prefix == ["api", "v3"]
        || prefix == ["api", "v4"]
        || prefix == ["api", "v1"])
    {
        return None;
    }
    let rest: Vec<String> = segments[start..].iter().map(|s| decode(s)).collect();
    let (scope, org, after) = match (flavor, rest.first()?.as_str()) {
        (Flavor::Github | Flavor::Gitea, "repos") if rest.len() >= 4 => {
            (format!("repos/{}/{}", rest[1], rest[2]), false, &rest[3..])
        }
        (Flavor::Github | Flavor::Gitea, "orgs") if rest.len() >= 3 => {
            (format!("orgs/{}", rest[1]), true, &rest[2..])
        }
        (Flavor::Gitlab, "projects") if rest.len() >= 3 => {
            (format!("projects/{}", rest[1]), false, &rest[2..])
        }
        (Flavor::Gitlab, "groups") if rest.len() >= 3 => {
            (format!("groups/{}", rest[1]), true, &rest[2..])
        }
        _ => return None,
    };
    if after.first().map(String::as_str) != Some("hooks") {
        return None;
    }
    let id = match after.get(1) {
        Some(id) => Some(id.parse().ok()?),
        None => None,
    };
    Some(Route {
        scope,
        org,
        id,
        action: after.iter().skip(2).cloned().collect(),
    })
}

/// The query parameter `name`, if any.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The page of `hooks` a list request asks for, and whether more follow.
fn page_of(
    hooks: &[StoredHook],
    query: &str,
    size_param: &str,
) -> (Vec<StoredHook>, u64, Option<u64>, u64) {
    let page: u64 = query_param(query, "page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    let asked: usize = query_param(query, size_param)
        .and_then(|p| p.parse().ok())
        .unwrap_or(30);
    let size = asked.clamp(1, PAGE_SIZE);
    let total_pages = hooks.len().div_ceil(size).max(1) as u64;
    let start = ((page - 1) as usize) * size;
    let items = hooks.iter().skip(start).take(size).cloned().collect();
    let next = (page < total_pages).then_some(page + 1);
    (items, page, next, total_pages)
}

async fn handle(req: HttpRequest, body: web::Bytes, fake: web::Data<Fake>) -> HttpResponse {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let body: Option<Value> = if body.is_empty() {
        None
    } else {
        serde_json::from_slice(&body).ok()
    };
    let recorded = Recorded {
        method: req.method().as_str().to_owned(),
        path: path.clone(),
        query,
        headers,
        body,
    };
    let Some(route) = route(fake.flavor, &path) else {
        return HttpResponse::NotFound()
            .json(serde_json::json!({"message": "no such route in the fake"}));
    };
    fake.state()
        .requests
        .push((route.scope.clone(), recorded.clone()));
    match fake.flavor {
        Flavor::Github => github::handle(&fake, &route, &recorded),
        Flavor::Gitlab => gitlab::handle(&fake, &route, &recorded),
        Flavor::Gitea => gitea::handle(&fake, &route, &recorded),
    }
}
