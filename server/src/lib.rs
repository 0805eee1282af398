//! The pushsync API server and web UI.
//!
//! A stateless actix-web service: it reads Applications through the
//! Kubernetes API (a watch-fed cache, no database), shows them to the users
//! the policy lets see them, and turns their requests into the annotations
//! and spec changes the workers act on. Several replicas can run behind one
//! Service: sessions live in the (encrypted) cookie, keyed by a shared key.
//!
//! - `routes`: the JSON API (`/api/v1/…`), live updates as Server-Sent
//!   Events, `/metrics`, `/healthz`, `/readyz`;
//! - `ui`: the pages (server-rendered HTML and a little script, embedded;
//!   no build step);
//! - `auth`, `policy`: who is asking and what their groups allow;
//! - `apps`, `tree`, `actions`: what is shown and what is done.

pub mod actions;
pub mod apps;
pub mod auth;
pub mod error;
pub mod metrics;
pub mod oidc;
pub mod policy;
pub mod routes;
pub mod tree;
pub mod ui;

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use actix_session::SessionMiddleware;
use actix_session::config::{CookieContentSecurity, PersistentSession};
use actix_session::storage::CookieSessionStore;
use actix_web::cookie::{Key, SameSite};
use actix_web::dev::Service as _;
use actix_web::{App, HttpServer, web};
use tokio_util::sync::CancellationToken;

use crate::apps::Apps;
use crate::auth::{LocalUsers, Tokens};
use crate::policy::Policy;

/// How the server runs.
pub struct Config {
    /// Namespaces whose Applications are shown (all when empty).
    pub namespaces: Vec<String>,
    /// Who may do what.
    pub policy: Policy,
    /// API tokens.
    pub tokens: Tokens,
    /// Password users.
    pub local_users: LocalUsers,
    /// The session cookie key (64 bytes or more; the same on every replica).
    pub session_key: Key,
    /// Mark the session cookie `Secure` (off only for plain-http development
    /// with a browser that does not treat the address as secure).
    pub secure_cookies: bool,
    /// How long a session lasts.
    pub session_ttl: std::time::Duration,
    /// Single sign-on, when configured.
    pub oidc: Option<oidc::Settings>,
}

/// What every request shares.
pub struct State {
    /// The Kubernetes client (the server's own identity).
    pub client: kube::Client,
    /// The Applications.
    pub apps: Apps,
    /// The policy.
    pub policy: Policy,
    /// API tokens.
    pub tokens: Tokens,
    /// Password users.
    pub local_users: LocalUsers,
    /// Single sign-on.
    pub oidc: Option<oidc::Oidc>,
    /// How long a login lasts.
    pub session_ttl: std::time::Duration,
    /// Whether the first list of Applications has arrived.
    pub ready: AtomicBool,
    /// Stops live streams at shutdown.
    pub shutdown: CancellationToken,
    /// Metrics.
    pub metrics: metrics::Metrics,
}

/// The session cookie's name (not `_session`: an identity provider on the
/// same host uses that, and cookies do not tell ports apart).
pub const SESSION_COOKIE: &str = "pushsync_session";

/// Serve on `listener` until `shutdown`; live streams end at shutdown so the
/// server drains promptly.
pub async fn run(
    config: Config,
    client: kube::Client,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let metrics = metrics::Metrics::new().map_err(std::io::Error::other)?;
    let oidc = match config.oidc {
        Some(settings) => Some(discover(settings, &shutdown).await?),
        None => None,
    };
    let apps = Apps::watch(client.clone(), &config.namespaces, shutdown.clone());
    let state = Arc::new(State {
        client,
        apps: apps.clone(),
        policy: config.policy,
        tokens: config.tokens,
        local_users: config.local_users,
        oidc,
        session_ttl: config.session_ttl,
        ready: AtomicBool::new(false),
        shutdown: shutdown.clone(),
        metrics,
    });
    {
        let state = state.clone();
        tokio::spawn(async move {
            apps.ready().await;
            state.ready.store(true, Ordering::Relaxed);
            tracing::info!("Applications listed; ready");
        });
    }
    let key = config.session_key;
    let secure = config.secure_cookies;
    let ttl = actix_web::cookie::time::Duration::seconds(
        i64::try_from(config.session_ttl.as_secs()).unwrap_or(i64::MAX),
    );
    let data = web::Data::from(state);
    let server = HttpServer::new(move || {
        let sessions = SessionMiddleware::builder(CookieSessionStore::default(), key.clone())
            .cookie_name(SESSION_COOKIE.to_owned())
            .cookie_secure(secure)
            .cookie_http_only(true)
            .cookie_same_site(SameSite::Lax)
            .cookie_content_security(CookieContentSecurity::Private)
            .session_lifecycle(PersistentSession::default().session_ttl(ttl))
            .build();
        App::new()
            .app_data(data.clone())
            .app_data(web::JsonConfig::default().limit(64 * 1024))
            .app_data(web::PayloadConfig::new(64 * 1024))
            .app_data(web::FormConfig::default().limit(16 * 1024))
            .wrap(sessions)
            .wrap(
                actix_web::middleware::DefaultHeaders::new()
                    .add(("x-content-type-options", "nosniff")),
            )
            .wrap_fn(|req, service| {
                let state = req.app_data::<web::Data<State>>().cloned();
                let response = service.call(req);
                async move {
                    let response = response.await?;
                    if let Some(state) = state {
                        let route = response
                            .request()
                            .match_pattern()
                            .unwrap_or_else(|| "unmatched".to_owned());
                        state
                            .metrics
                            .requests
                            .with_label_values(&[route.as_str(), response.status().as_str()])
                            .inc();
                    }
                    Ok(response)
                }
            })
            .configure(routes::configure)
            .configure(ui::configure)
    })
    .listen(listener)?
    .disable_signals()
    .shutdown_timeout(5)
    .run();
    let handle = server.handle();
    tokio::spawn(async move {
        shutdown.cancelled().await;
        handle.stop(true).await;
    });
    server.await
}

/// Discover the identity provider, trying for up to a minute (it may be
/// starting beside this server); then fail, loudly, rather than serve a UI
/// nobody can log in to.
async fn discover(
    settings: oidc::Settings,
    shutdown: &CancellationToken,
) -> std::io::Result<oidc::Oidc> {
    let mut last = String::new();
    for _ in 0..30 {
        match oidc::Oidc::discover(settings.clone()).await {
            Ok(found) => {
                tracing::info!(issuer = %settings.issuer, "identity provider discovered");
                return Ok(found);
            }
            Err(error) => {
                tracing::warn!(%error, "identity provider not reachable yet");
                last = error;
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
        }
    }
    Err(std::io::Error::other(last))
}
