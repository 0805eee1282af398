//! The JSON API, live updates, login and logout, metrics and probes. Every
//! handler asks `authorize` first: authentication, then (for a change) the
//! CSRF check, then the policy — enforced here, not only hidden in pages.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use actix_session::Session;
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use pushsync_api::Application;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use crate::State;
use crate::actions::{Action, RollbackBody, SyncBody};
use crate::apps::{Change, Filter, project_of};
use crate::auth::{self, Via};
use crate::error::ServerError;
use crate::policy::{Role, User};

/// Mount the API.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics))
        .route("/auth/login", web::post().to(login))
        .route("/auth/logout", web::post().to(logout))
        .route("/auth/sso", web::get().to(sso))
        .route("/auth/callback", web::get().to(callback))
        .route("/api/v1/me", web::get().to(me))
        .route("/api/v1/applications", web::get().to(list))
        .route("/api/v1/stream", web::get().to(stream))
        .route(
            "/api/v1/applications/{namespace}/{name}",
            web::get().to(get),
        )
        .route(
            "/api/v1/applications/{namespace}/{name}/tree",
            web::get().to(tree),
        )
        .route(
            "/api/v1/applications/{namespace}/{name}/events",
            web::get().to(events),
        )
        .route(
            "/api/v1/applications/{namespace}/{name}/manifest",
            web::get().to(manifest),
        )
        .route(
            "/api/v1/applications/{namespace}/{name}/{action}",
            web::post().to(act),
        );
}

/// The authenticated user, or 401.
pub fn authenticate(
    req: &HttpRequest,
    session: &Session,
    state: &State,
) -> Result<(User, Via), ServerError> {
    auth::requester(req, session, &state.tokens)?.ok_or(ServerError::Unauthenticated)
}

/// The authenticated user and the Application at the path, if they may
/// read it: what every read of one Application starts with.
pub fn user_and_app(
    req: &HttpRequest,
    session: &Session,
    state: &State,
    path: &(String, String),
) -> Result<(User, Arc<Application>), ServerError> {
    let (user, _) = authenticate(req, session, state)?;
    let app = readable(state, &user, path)?;
    Ok((user, app))
}

/// The Application at the path, if `user` may read it.
pub fn readable(
    state: &State,
    user: &User,
    path: &(String, String),
) -> Result<Arc<Application>, ServerError> {
    state
        .apps
        .get(&state.policy, user, &path.0, &path.1)
        .ok_or_else(|| ServerError::NotFound(format!("application {}/{}", path.0, path.1)))
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok")
}

async fn readyz(state: web::Data<State>) -> HttpResponse {
    if state.ready.load(Ordering::Relaxed) {
        HttpResponse::Ok().content_type("text/plain").body("ok")
    } else {
        HttpResponse::ServiceUnavailable()
            .content_type("text/plain")
            .body("listing Applications")
    }
}

async fn metrics(state: web::Data<State>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}

/// A password login (form or JSON).
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
    /// Where to go next (a path on this site).
    #[serde(default)]
    pub next: String,
}

/// A path on this site to go to after logging in (`/` for anything else, so
/// the login page cannot send a user to another site).
pub fn local_path(next: &str) -> &str {
    // Browsers drop tabs and newlines from URLs (`/\t/evil` becomes
    // `//evil`) and treat `\` as `/`: a path with any of them is not ours.
    let safe = next.starts_with('/')
        && !next.starts_with("//")
        && !next
            .chars()
            .any(|c| c == '\\' || c.is_whitespace() || c.is_control());
    if safe { next } else { "/" }
}

async fn login(
    req: HttpRequest,
    session: Session,
    state: web::Data<State>,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, ServerError> {
    auth::same_site(&req)?;
    let Some(user) = state.local_users.check(&form.username, &form.password) else {
        // Not the name typed: it is sometimes a password in the wrong field.
        tracing::info!("password login refused");
        let next = urlencode(local_path(&form.next));
        return Ok(HttpResponse::SeeOther()
            .insert_header(("location", format!("/login?failed=1&next={next}")))
            .finish());
    };
    auth::log_in(&session, &state.policy.relevant(user), state.session_ttl)?;
    tracing::info!("password login");
    Ok(HttpResponse::SeeOther()
        .insert_header(("location", local_path(&form.next).to_owned()))
        .finish())
}

/// Percent-encode a query value.
pub fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Where a single sign-on starts.
#[derive(Debug, Default, Deserialize)]
pub struct SsoQuery {
    /// Where to go after logging in.
    #[serde(default)]
    pub next: String,
}

async fn sso(
    session: Session,
    state: web::Data<State>,
    query: web::Query<SsoQuery>,
) -> Result<HttpResponse, ServerError> {
    let oidc = state
        .oidc
        .as_ref()
        .ok_or_else(|| ServerError::NotFound("single sign-on (not configured)".to_owned()))?;
    let url = oidc.begin(&session, local_path(&query.next))?;
    Ok(HttpResponse::SeeOther()
        .insert_header(("location", url))
        .finish())
}

/// The provider's answer.
#[derive(Debug, Default, Deserialize)]
pub struct CallbackQuery {
    #[serde(default)]
    code: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

async fn callback(
    session: Session,
    state: web::Data<State>,
    query: web::Query<CallbackQuery>,
) -> Result<HttpResponse, ServerError> {
    let oidc = state
        .oidc
        .as_ref()
        .ok_or_else(|| ServerError::NotFound("single sign-on (not configured)".to_owned()))?;
    let refused = |why: &str| {
        tracing::info!(reason = why, "single sign-on refused");
        HttpResponse::SeeOther()
            .insert_header((
                "location",
                format!("/login?failed=sso&why={}", urlencode(why)),
            ))
            .finish()
    };
    if !query.error.is_empty() {
        return Ok(refused(&format!(
            "{} {}",
            query.error, query.error_description
        )));
    }
    match oidc.finish(&session, &query.code, &query.state).await {
        Ok((user, next)) => {
            let user = state.policy.relevant(user);
            auth::log_in(&session, &user, state.session_ttl)?;
            tracing::info!(user = %user.name, groups = ?user.groups, "logged in by single sign-on");
            Ok(HttpResponse::SeeOther()
                .insert_header(("location", local_path(&next).to_owned()))
                .finish())
        }
        Err(error) => Ok(refused(&error.to_string())),
    }
}

async fn logout(
    req: HttpRequest,
    session: Session,
    state: web::Data<State>,
) -> Result<HttpResponse, ServerError> {
    if let Ok((_, via)) = authenticate(&req, &session, &state) {
        auth::check_csrf(&req, &session, via)?;
    }
    session.purge();
    Ok(HttpResponse::SeeOther()
        .insert_header(("location", "/login"))
        .finish())
}

async fn me(
    req: HttpRequest,
    session: Session,
    state: web::Data<State>,
) -> Result<HttpResponse, ServerError> {
    let (user, _) = authenticate(&req, &session, &state)?;
    Ok(HttpResponse::Ok().json(json!({
        "name": user.name,
        "groups": user.groups,
        "roles": state.policy.roles(&user),
    })))
}

async fn list(
    req: HttpRequest,
    session: Session,
    state: web::Data<State>,
    filter: web::Query<Filter>,
) -> Result<HttpResponse, ServerError> {
    let (user, _) = authenticate(&req, &session, &state)?;
    let items = state.apps.visible(&state.policy, &user, &filter);
    Ok(HttpResponse::Ok().json(json!({"items": items})))
}

async fn get(
    req: HttpRequest,
    session: Session,
    state: web::Data<State>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ServerError> {
    let (user, app) = user_and_app(&req, &session, &state, &path)?;
    let role = state.policy.role(&user, project_of(&app));
    Ok(HttpResponse::Ok().json(json!({"application": app.as_ref(), "role": role})))
}

async fn tree(
    req: HttpRequest,
    session: Session,
    state: web::Data<State>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ServerError> {
    let (_, app) = user_and_app(&req, &session, &state, &path)?;
    let nodes = crate::tree::tree(&state.client, &app).await?;
    Ok(HttpResponse::Ok().json(json!({"nodes": nodes})))
}

async fn events(
    req: HttpRequest,
    session: Session,
    state: web::Data<State>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ServerError> {
    let (_, app) = user_and_app(&req, &session, &state, &path)?;
    let events = crate::tree::events(&state.client, &app).await?;
    Ok(HttpResponse::Ok().json(json!({"items": events})))
}

/// Which object a manifest request names.
#[derive(Debug, Deserialize)]
pub struct ObjectQuery {
    /// API group (`""`: core).
    #[serde(default)]
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Namespace (`""`: cluster-scoped).
    #[serde(default)]
    pub namespace: String,
    /// Name.
    pub name: String,
}

async fn manifest(
    req: HttpRequest,
    session: Session,
    state: web::Data<State>,
    path: web::Path<(String, String)>,
    object: web::Query<ObjectQuery>,
) -> Result<HttpResponse, ServerError> {
    let (_, app) = user_and_app(&req, &session, &state, &path)?;
    let live = crate::tree::live(
        &state.client,
        &app,
        &object.group,
        &object.kind,
        &object.namespace,
        &object.name,
    )
    .await?;
    let diff = app
        .status
        .iter()
        .flat_map(|s| &s.resources)
        .find(|r| {
            r.resource.group == object.group
                && r.resource.kind == object.kind
                && r.resource.namespace == object.namespace
                && r.resource.name == object.name
        })
        .and_then(|r| r.diff.clone());
    Ok(HttpResponse::Ok().json(json!({"live": live, "diff": diff})))
}

async fn act(
    req: HttpRequest,
    session: Session,
    state: web::Data<State>,
    path: web::Path<(String, String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, ServerError> {
    let (namespace, name, action) = path.into_inner();
    let (user, via) = authenticate(&req, &session, &state)?;
    auth::check_csrf(&req, &session, via)?;
    let parse = |what: &str| -> Result<serde_json::Value, ServerError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(json!({}));
        }
        serde_json::from_slice(&body)
            .map_err(|e| ServerError::Invalid(format!("the {what} body: {e}")))
    };
    let action = match action.as_str() {
        "sync" => {
            let body: SyncBody = serde_json::from_value(parse("sync")?)
                .map_err(|e| ServerError::Invalid(format!("the sync body: {e}")))?;
            Action::Sync {
                resources: body.resources,
                prune: body.prune,
            }
        }
        "refresh" => Action::Refresh,
        "rollback" => {
            let body: RollbackBody = serde_json::from_value(parse("rollback")?)
                .map_err(|e| ServerError::Invalid(format!("the rollback body: {e}")))?;
            Action::Rollback {
                revision: body.revision,
            }
        }
        "suspend" => Action::Suspend,
        "resume" => Action::Resume,
        other => return Err(ServerError::NotFound(format!("action {other:?}"))),
    };
    let outcome = |label: &str| {
        state
            .metrics
            .actions
            .with_label_values(&[action.name(), label])
            .inc();
    };
    let app = readable(&state, &user, &(namespace.clone(), name.clone()))?;
    let project = project_of(&app).to_owned();
    if !state.policy.allows(&user, &project, action.needs()) {
        outcome("forbidden");
        return Err(ServerError::Forbidden {
            user: user.name,
            action: action.name(),
            project,
        });
    }
    match crate::actions::perform(&state.client, &app, &action).await {
        Ok(()) => {
            outcome("done");
            tracing::info!(user = %user.name, action = action.name(), application = %format!("{namespace}/{name}"), "action requested");
            Ok(HttpResponse::Accepted().json(json!({"requested": action.name()})))
        }
        Err(error @ ServerError::Invalid(_)) => {
            outcome("invalid");
            Err(error)
        }
        Err(error) => {
            outcome("failed");
            Err(error)
        }
    }
}

/// Which Application a stream follows (all visible when empty).
#[derive(Debug, Default, Deserialize)]
pub struct StreamQuery {
    /// Namespace.
    #[serde(default)]
    pub namespace: String,
    /// Name.
    #[serde(default)]
    pub name: String,
}

/// Resolves at `ends`, or never.
async fn expiry(ends: Option<tokio::time::Instant>) {
    match ends {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Decrements the open-streams gauge when a stream ends.
struct Open(prometheus::IntGauge);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Server-Sent Events: `application` with a summary when one the user may
/// read changes, `deleted` when one goes, `resync` when this stream fell
/// behind (the page should reload its list), a comment every 15 s.
async fn stream(
    req: HttpRequest,
    session: Session,
    state: web::Data<State>,
    query: web::Query<StreamQuery>,
) -> Result<HttpResponse, ServerError> {
    let (user, via) = authenticate(&req, &session, &state)?;
    // A session's stream ends when the session does (a token's when the
    // client or the server goes).
    let ends = match via {
        Via::Session => auth::session_expires(&session),
        Via::Token => None,
    }
    .map(|at| {
        let left = at.saturating_sub(jiff::Timestamp::now().as_second()).max(0);
        tokio::time::Instant::now() + Duration::from_secs(left.unsigned_abs())
    });
    let receiver = state.apps.subscribe();
    state.metrics.streams.inc();
    let open = Open(state.metrics.streams.clone());
    let state = state.into_inner();
    let query = query.into_inner();
    let visible = move |state: &State, namespace: &str, name: &str, project: &str| {
        state.policy.allows(&user, project, Role::Read)
            && (query.namespace.is_empty() || query.namespace == namespace)
            && (query.name.is_empty() || query.name == name)
    };
    // A comment every 15 s whatever else happens (events this user may not
    // see included), so idle proxies keep the stream and a gone client is noticed.
    let ping = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(15),
        Duration::from_secs(15),
    );
    let events = futures_util::stream::unfold(
        (receiver, state, visible, open, ping),
        move |(mut receiver, state, visible, open, mut ping)| async move {
            loop {
                let change = tokio::select! {
                    () = state.shutdown.cancelled() => return None,
                    () = expiry(ends) => return None,
                    _ = ping.tick() => {
                        let comment = Bytes::from_static(b": ping\n\n");
                        return Some((Ok::<_, actix_web::Error>(comment), (receiver, state, visible, open, ping)));
                    }
                    change = receiver.recv() => change,
                };
                let frame = match change {
                    Ok(Change::Applied(summary)) => {
                        if !visible(&state, &summary.namespace, &summary.name, &summary.project) {
                            continue;
                        }
                        let data = serde_json::to_string(&summary).unwrap_or_default();
                        format!("event: application\ndata: {data}\n\n")
                    }
                    Ok(Change::Deleted {
                        namespace,
                        name,
                        project,
                    }) => {
                        if !visible(&state, &namespace, &name, &project) {
                            continue;
                        }
                        let data = json!({"namespace": namespace, "name": name});
                        format!("event: deleted\ndata: {data}\n\n")
                    }
                    Err(RecvError::Lagged(_)) => "event: resync\ndata: {}\n\n".to_owned(),
                    Err(RecvError::Closed) => return None,
                };
                return Some((
                    Ok(Bytes::from(frame)),
                    (receiver, state, visible, open, ping),
                ));
            }
        },
    );
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(events))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_on_this_site_are_followed_after_login() {
        for ours in ["/", "/applications/default/web?x=1"] {
            assert_eq!(local_path(ours), ours);
        }
        for theirs in [
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/ /evil.example",
            "evil",
            "",
        ] {
            assert_eq!(local_path(theirs), "/", "{theirs:?}");
        }
    }
}
