//! The pages: server-rendered HTML with a small script (`assets/app.js`)
//! for actions and live updates; no build step, everything embedded.
//! Every value is escaped; every action the page offers is checked again
//! by the API (the page only leaves out buttons the user's role lacks).

use std::fmt::Write as _;

use actix_session::Session;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::State;
use crate::apps::{Filter, Summary};
use crate::auth;
use crate::error::ServerError;
use crate::policy::User;
use crate::routes::{authenticate, local_path, readable, urlencode, user_and_app};

mod application;

use application::app_body;

const SCRIPT: &str = include_str!("../assets/app.js");
const STYLE: &str = include_str!("../assets/style.css");

/// Mount the pages.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/", web::get().to(list_page))
        .route("/login", web::get().to(login_page))
        .route(
            "/static/app.js",
            web::get().to(|| async { asset("text/javascript", SCRIPT) }),
        )
        .route(
            "/static/style.css",
            web::get().to(|| async { asset("text/css", STYLE) }),
        )
        .route("/applications/{namespace}/{name}", web::get().to(app_page))
        .route(
            "/applications/{namespace}/{name}/fragment",
            web::get().to(app_fragment),
        );
}

fn asset(content_type: &str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("cache-control", "public, max-age=300"))
        .body(body)
}

/// HTML-escape `text`.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(title: &str, csrf: &str, user: Option<&User>, body: &str) -> HttpResponse {
    let who = match user {
        Some(user) => format!(
            r#"<span class="who">{}</span><form method="post" action="/auth/logout" class="logout" data-csrf-form><button type="submit">Log out</button></form>"#,
            esc(&user.name)
        ),
        None => String::new(),
    };
    let html = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="csrf-token" content="{csrf}"><title>{title} · pushsync</title>
<link rel="stylesheet" href="/static/style.css"><script src="/static/app.js" defer></script></head>
<body><header class="top"><a href="/" class="brand">pushsync</a><nav>{who}</nav></header>
<main id="main">{body}</main></body></html>"#,
        csrf = esc(csrf),
        title = esc(title),
    );
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("cache-control", "no-store"))
        .insert_header(("x-frame-options", "DENY"))
        .insert_header((
            "content-security-policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
        ))
        .body(html)
}

fn to_login(req: &HttpRequest) -> HttpResponse {
    let next = req.uri().path_and_query().map_or("/", |p| p.as_str());
    HttpResponse::SeeOther()
        .insert_header((
            "location",
            format!("/login?next={}", urlencode(local_path(next))),
        ))
        .finish()
}

/// The login page's query.
#[derive(Debug, Default, serde::Deserialize)]
pub struct LoginQuery {
    #[serde(default)]
    next: String,
    #[serde(default)]
    failed: String,
    #[serde(default)]
    why: String,
}

async fn login_page(state: web::Data<State>, query: web::Query<LoginQuery>) -> HttpResponse {
    let failed = match query.failed.as_str() {
        "" => String::new(),
        "sso" => format!(
            r#"<p class="error" role="alert">Single sign-on did not log you in: {}</p>"#,
            esc(&clip(&query.why, 300))
        ),
        _ => r#"<p class="error" role="alert">Wrong user name or password.</p>"#.to_owned(),
    };
    let sso = if state.oidc.is_some() {
        format!(
            r#"<p><a class="button" href="/auth/sso?next={}">Log in with single sign-on</a></p>"#,
            urlencode(local_path(&query.next))
        )
    } else {
        String::new()
    };
    let form = if state.local_users.is_empty() && state.oidc.is_some() {
        String::new()
    } else if state.local_users.is_empty() {
        r#"<p class="empty">No way to log in is configured: give the server <code>--local-user</code> or an API token.</p>"#.to_owned()
    } else {
        format!(
            r#"<form method="post" action="/auth/login" class="login">
<label>User name <input name="username" autocomplete="username" required autofocus></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<input type="hidden" name="next" value="{}"><button type="submit">Log in</button></form>"#,
            esc(local_path(&query.next))
        )
    };
    page(
        "Log in",
        "",
        None,
        &format!(r#"<section class="card narrow"><h1>Log in</h1>{failed}{sso}{form}</section>"#),
    )
}

fn badge(kind: &str, value: &str) -> String {
    let value = if value.is_empty() { "Unknown" } else { value };
    format!(
        r#"<span class="badge {kind}-{}">{}</span>"#,
        esc(&value.to_ascii_lowercase()),
        esc(value)
    )
}

fn row(summary: &Summary) -> String {
    let key = format!("{}/{}", summary.namespace, summary.name);
    format!(
        r#"<tr data-key="{key}"><td><a href="/applications/{ns}/{name}">{name_text}</a><div class="sub">{ns_text}</div></td><td>{project}</td><td data-field="sync">{sync}</td><td data-field="health">{health}</td><td data-field="revision"><code>{revision}</code></td><td data-field="operation">{operation}</td><td class="wide">{repo}<div class="sub">{path}</div></td></tr>"#,
        key = esc(&key),
        ns = urlencode(&summary.namespace),
        name = urlencode(&summary.name),
        name_text = esc(&summary.name),
        ns_text = esc(&summary.namespace),
        project = esc(&summary.project),
        sync = badge("sync", &summary.sync),
        health = badge("health", summary.shown_health()),
        revision = esc(&summary.revision),
        operation = esc(&summary.operation),
        repo = esc(&summary.repo_url),
        path = esc(&summary.path),
    )
}

async fn list_page(
    req: HttpRequest,
    session: Session,
    state: web::Data<State>,
    filter: web::Query<Filter>,
) -> Result<HttpResponse, ServerError> {
    let user = match authenticate(&req, &session, &state) {
        Ok((user, _)) => user,
        Err(ServerError::Unauthenticated) => return Ok(to_login(&req)),
        Err(error) => return Err(error),
    };
    let csrf = auth::csrf_token(&session).unwrap_or_default();
    let summaries = state.apps.visible(&state.policy, &user, &filter);
    let mut rows = String::new();
    for summary in &summaries {
        rows.push_str(&row(summary));
    }
    let select = |name: &str, current: &str, values: &[&str]| {
        let mut out = format!(
            r#"<label>{} <select name="{name}"><option value="">any</option>"#,
            esc(name)
        );
        for value in values {
            let selected = if *value == current { " selected" } else { "" };
            let _ = write!(out, r#"<option{selected}>{}</option>"#, esc(value));
        }
        out.push_str("</select></label>");
        out
    };
    let loading = if state.ready.load(std::sync::atomic::Ordering::Relaxed) {
        ""
    } else {
        r#"<p class="notice" role="status">Still reading Applications from the cluster; this list may be incomplete.</p>"#
    };
    let empty = if summaries.is_empty() {
        if state.policy.roles(&user).is_empty() {
            r#"<p class="empty">You may not see any Project's Applications. Ask a platform admin to grant one of your groups a role.</p>"#
        } else {
            r#"<p class="empty">No Applications match.</p>"#
        }
    } else {
        ""
    };
    let body = format!(
        r#"<section class="card"><h1>Applications <span class="count">{count}</span></h1>{loading}
<form class="filters" method="get" action="/" role="search">
<label>Search <input name="q" value="{q}" type="search" placeholder="name, repository, path"></label>
<label>Project <input name="project" value="{project}"></label>
<label>Namespace <input name="namespace" value="{namespace}"></label>
{sync}{health}
<label>Label <input name="label" value="{label}" placeholder="key=value"></label>
<button type="submit">Filter</button></form>
<div class="table"><table id="applications" data-live="list"><thead><tr><th>Name</th><th>Project</th><th>Sync</th><th>Health</th><th>Revision</th><th>Last operation</th><th class="wide">Source</th></tr></thead>
<tbody>{rows}</tbody></table></div>{empty}</section>"#,
        count = summaries.len(),
        q = esc(&filter.q),
        project = esc(&filter.project),
        namespace = esc(&filter.namespace),
        label = esc(&filter.label),
        sync = select("sync", &filter.sync, &["Synced", "OutOfSync", "Unknown"]),
        health = select(
            "health",
            &filter.health,
            &[
                "Healthy",
                "Progressing",
                "Degraded",
                "Suspended",
                "Missing",
                "Unknown"
            ]
        ),
    );
    Ok(page("Applications", &csrf, Some(&user), &body))
}

async fn app_page(
    req: HttpRequest,
    session: Session,
    state: web::Data<State>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ServerError> {
    let user = match authenticate(&req, &session, &state) {
        Ok((user, _)) => user,
        Err(ServerError::Unauthenticated) => return Ok(to_login(&req)),
        Err(error) => return Err(error),
    };
    let csrf = auth::csrf_token(&session).unwrap_or_default();
    let Ok(app) = readable(&state, &user, &path) else {
        let body = format!(
            r#"<section class="card narrow"><h1>Not found</h1><p class="empty">There is no Application {}/{} you may see.</p><p><a href="/">All Applications</a></p></section>"#,
            esc(&path.0),
            esc(&path.1)
        );
        let mut response = page("Not found", &csrf, Some(&user), &body);
        *response.status_mut() = actix_web::http::StatusCode::NOT_FOUND;
        return Ok(response);
    };
    let body = app_body(&state, &user, &app).await;
    let live = format!(
        r#"<div id="app" data-live="app" data-namespace="{}" data-name="{}">{body}</div>"#,
        esc(&path.0),
        esc(&path.1)
    );
    Ok(page(&path.1, &csrf, Some(&user), &live))
}

async fn app_fragment(
    req: HttpRequest,
    session: Session,
    state: web::Data<State>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ServerError> {
    let (user, app) = user_and_app(&req, &session, &state, &path)?;
    let body = app_body(&state, &user, &app).await;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("cache-control", "no-store"))
        .body(body))
}

fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut short: String = text.chars().take(max - 1).collect();
        short.push('…');
        short
    }
}

#[cfg(test)]
mod tests {
    use super::application::diff_html;
    use super::*;

    #[test]
    fn text_is_escaped_everywhere_it_is_placed() {
        assert_eq!(
            esc(r#"<script>"x" & 'y'"#),
            "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;"
        );
        let diff = diff_html("--- a\n+++ b\n@@ -1 +1 @@\n-<old>\n+<new>\n same");
        assert!(
            diff.contains(r#"<span class="del">-&lt;old&gt;</span>"#),
            "{diff}"
        );
        assert!(
            diff.contains(r#"<span class="add">+&lt;new&gt;</span>"#),
            "{diff}"
        );
        assert_eq!(clip("abcdef", 4), "abc…");
    }
}
