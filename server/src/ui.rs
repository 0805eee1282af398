//! The pages: server-rendered HTML with a small script (`assets/app.js`)
//! for actions and live updates; no build step, everything embedded.
//! Every value is escaped; every action the page offers is checked again
//! by the API (the page only leaves out buttons the user's role lacks).

use std::fmt::Write as _;

use actix_session::Session;
use actix_web::{HttpRequest, HttpResponse, web};
use pushsync_api::Application;

use crate::State;
use crate::apps::{Filter, Summary, project_of};
use crate::auth;
use crate::error::ServerError;
use crate::policy::{Role, User};
use crate::routes::{authenticate, local_path, readable, urlencode};
use crate::tree::Node;

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
        health = badge(
            "health",
            if summary.suspended {
                "Suspended"
            } else {
                &summary.health
            }
        ),
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
    let (user, _) = authenticate(&req, &session, &state)?;
    let app = readable(&state, &user, &path)?;
    let body = app_body(&state, &user, &app).await;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("cache-control", "no-store"))
        .body(body))
}

/// Everything an Application's page shows below the header bar.
async fn app_body(state: &State, user: &User, app: &Application) -> String {
    let summary = Summary::of(app);
    let role = state.policy.role(user, project_of(app));
    let can = |needed: Role| role.is_some_and(|r| r >= needed);
    let status = app.status.as_ref();
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<section class="card"><h1>{name} <span class="sub">{ns} · project {project}</span></h1>
<div class="summary"><div>Sync {sync}</div><div>Health {health}</div><div>Revision <code>{revision}</code></div><div>Source <span class="wrap">{repo}</span> <code>{path}</code> at <code>{target}</code></div></div>
<p class="sub">{message}</p><div class="actions" role="group" aria-label="Actions">"#,
        name = esc(&summary.name),
        ns = esc(&summary.namespace),
        project = esc(&summary.project),
        sync = badge("sync", &summary.sync),
        health = badge(
            "health",
            if summary.suspended {
                "Suspended"
            } else {
                &summary.health
            }
        ),
        revision = esc(&summary.revision),
        repo = esc(&summary.repo_url),
        path = esc(&summary.path),
        target = esc(&summary.target_revision),
        message = esc(&summary.health_message),
    );
    if can(Role::Sync) {
        out.push_str(r#"<button data-action="sync">Sync</button><button data-action="refresh">Refresh</button>"#);
    }
    if can(Role::Admin) {
        if summary.suspended {
            out.push_str(r#"<button data-action="resume">Resume</button>"#);
        } else {
            out.push_str(r#"<button data-action="suspend">Suspend</button>"#);
        }
    }
    if role == Some(Role::Read) {
        out.push_str(r#"<span class="sub">You may look, not act (role: read).</span>"#);
    }
    out.push_str(
        r#"<span class="result" role="status" aria-live="polite"></span></div></section>"#,
    );

    // Conditions and the last operation.
    if let Some(status) = status {
        out.push_str(r#"<section class="card"><h2>Conditions</h2><ul class="conditions">"#);
        if status.conditions.is_empty() {
            out.push_str(r#"<li class="empty">None reported yet.</li>"#);
        }
        for condition in &status.conditions {
            let _ = write!(
                out,
                r#"<li><strong>{}</strong> {} <span class="sub">{}</span> {}</li>"#,
                esc(&condition.kind),
                esc(condition.status.as_str()),
                esc(condition.reason.as_deref().unwrap_or_default()),
                esc(condition.message.as_deref().unwrap_or_default())
            );
        }
        out.push_str("</ul>");
        if let Some(operation) = &status.operation_state {
            let _ = write!(
                out,
                r#"<h2>Last operation</h2><p>{} <code>{}</code> <span class="sub">{} → {}</span></p><p>{}</p>"#,
                badge("phase", operation.phase.as_str()),
                esc(operation.revision.as_deref().unwrap_or_default()),
                esc(operation.started_at.as_deref().unwrap_or_default()),
                esc(operation.finished_at.as_deref().unwrap_or("…")),
                esc(operation.message.as_deref().unwrap_or_default()),
            );
        }
        out.push_str("</section>");
    }

    // The resource tree.
    out.push_str(r#"<section class="card"><h2>Resources</h2>"#);
    match crate::tree::tree(&state.client, app).await {
        Ok(nodes) if nodes.is_empty() => out.push_str(r#"<p class="empty">No resources yet.</p>"#),
        Ok(nodes) => {
            out.push_str(&graph(&summary, &nodes));
            out.push_str(&resource_table(&summary, &nodes, can(Role::Sync)));
        }
        Err(error) => {
            let _ = write!(
                out,
                r#"<p class="error" role="alert">Could not read the live objects: {}</p>"#,
                esc(&error.to_string())
            );
        }
    }
    out.push_str("</section>");

    // History.
    if let Some(status) = status {
        out.push_str(r#"<section class="card"><h2>History</h2><table class="history"><thead><tr><th>Revision</th><th>Deployed</th><th></th></tr></thead><tbody>"#);
        for entry in status.history.iter().rev() {
            let current =
                summary.revision.len() >= 7 && entry.revision.starts_with(&summary.revision);
            let button = if can(Role::Rollback) && !current {
                format!(
                    r#"<button data-action="rollback" data-revision="{}">Roll back</button>"#,
                    esc(&entry.revision)
                )
            } else if current {
                r#"<span class="sub">deployed</span>"#.to_owned()
            } else {
                String::new()
            };
            let _ = write!(
                out,
                r#"<tr><td><code>{}</code></td><td>{}</td><td>{button}</td></tr>"#,
                esc(&entry.revision.chars().take(12).collect::<String>()),
                esc(&entry.deployed_at)
            );
        }
        out.push_str("</tbody></table></section>");
    }

    // Events.
    out.push_str(r#"<section class="card"><h2>Events</h2>"#);
    match crate::tree::events(&state.client, app).await {
        Ok(events) if events.is_empty() => out.push_str(r#"<p class="empty">No events.</p>"#),
        Ok(events) => {
            out.push_str(r#"<table class="events"><thead><tr><th>Type</th><th>Reason</th><th>Message</th><th>Last seen</th></tr></thead><tbody>"#);
            for event in events.iter().take(50) {
                let text = |key: &str| esc(event[key].as_str().unwrap_or_default());
                let _ = write!(
                    out,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    text("type"),
                    text("reason"),
                    text("message"),
                    text("time")
                );
            }
            out.push_str("</tbody></table>");
        }
        Err(error) => {
            let _ = write!(
                out,
                r#"<p class="error" role="alert">Could not read the events: {}</p>"#,
                esc(&error.to_string())
            );
        }
    }
    out.push_str("</section>");
    out
}

/// The tree as a graph: the Application on the left, each object in its
/// own row, indented by depth, joined to its parent by an elbow line;
/// colour and text both say sync and health.
fn graph(summary: &Summary, nodes: &[Node]) -> String {
    const ROW: usize = 40;
    const INDENT: usize = 36;
    const WIDTH: usize = 300;
    // Depth-first order from the Application (parent "" is the root).
    let mut rows: Vec<(usize, &Node)> = Vec::new();
    fn visit<'n>(parent: &str, depth: usize, nodes: &'n [Node], rows: &mut Vec<(usize, &'n Node)>) {
        for node in nodes.iter().filter(|n| n.parent == parent) {
            rows.push((depth, node));
            if !node.uid.is_empty() {
                visit(&node.uid, depth + 1, nodes, rows);
            }
        }
    }
    visit("", 1, nodes, &mut rows);
    let height = (rows.len() + 1) * ROW + 8;
    let deepest = rows.iter().map(|(d, _)| *d).max().unwrap_or(1);
    let width = deepest * INDENT + WIDTH + 16;
    let mut svg = format!(
        r#"<div class="graph"><svg role="img" aria-label="Resource tree of {}" width="{width}" height="{height}" viewBox="0 0 {width} {height}">"#,
        esc(&summary.name)
    );
    let _ = write!(
        svg,
        r#"<g class="node app"><rect x="4" y="4" width="{WIDTH}" height="30" rx="4"/><text x="12" y="24">Application {}</text></g>"#,
        esc(&summary.name)
    );
    // Where each node's box is, to draw the line to its children.
    let mut position: std::collections::HashMap<&str, (usize, usize)> =
        std::collections::HashMap::new();
    for (index, (depth, node)) in rows.iter().enumerate() {
        let x = 4 + depth * INDENT;
        let y = 4 + (index + 1) * ROW;
        let (px, py) = if node.parent.is_empty() {
            (4, 4)
        } else {
            position
                .get(node.parent.as_str())
                .copied()
                .unwrap_or((4, 4))
        };
        let _ = write!(
            svg,
            r#"<path class="edge" d="M{} {} V{} H{x}"/>"#,
            px + 12,
            py + 30,
            y + 15
        );
        if !node.uid.is_empty() {
            position.insert(node.uid.as_str(), (x, y));
        }
        let state = if node.managed {
            format!(
                "{} · {}",
                if node.sync.is_empty() {
                    "Unknown"
                } else {
                    &node.sync
                },
                if node.health.is_empty() {
                    "—"
                } else {
                    &node.health
                }
            )
        } else {
            node.info.clone()
        };
        let class = format!(
            "node sync-{} health-{}",
            node.sync.to_ascii_lowercase(),
            node.health.to_ascii_lowercase()
        );
        let _ = write!(
            svg,
            r#"<g class="{}"><title>{} {}/{}</title><rect x="{x}" y="{y}" width="{WIDTH}" height="30" rx="4"/><text x="{}" y="{}">{} {}</text><text class="state" x="{}" y="{}">{}</text></g>"#,
            esc(&class),
            esc(&node.kind),
            esc(&node.namespace),
            esc(&node.name),
            x + 8,
            y + 19,
            esc(&node.kind),
            esc(&clip(&node.name, 22)),
            x + WIDTH - 8,
            y + 19,
            esc(&state),
        );
    }
    svg.push_str("</svg></div>");
    svg
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

fn resource_table(summary: &Summary, nodes: &[Node], can_sync: bool) -> String {
    let mut out = String::from(
        r#"<div class="table"><table class="resources"><thead><tr><th>Kind</th><th>Name</th><th>Sync</th><th>Health</th><th>Diff</th><th></th></tr></thead><tbody>"#,
    );
    for node in nodes.iter().filter(|n| n.managed) {
        let diff = if node.diff.is_empty() {
            String::new()
        } else {
            format!(
                r#"<details><summary>diff</summary><pre class="diff">{}</pre></details>"#,
                diff_html(&node.diff)
            )
        };
        let selector = format!(
            "{}:{}:{}{}",
            node.group,
            node.kind,
            if node.namespace.is_empty() {
                String::new()
            } else {
                format!("{}/", node.namespace)
            },
            node.name
        );
        let sync = if can_sync {
            format!(
                r#"<button data-action="sync" data-resource="{}">Sync</button>"#,
                esc(&selector)
            )
        } else {
            String::new()
        };
        let manifest = format!(
            "/api/v1/applications/{}/{}/manifest?group={}&kind={}&namespace={}&name={}",
            urlencode(&summary.namespace),
            urlencode(&summary.name),
            urlencode(&node.group),
            urlencode(&node.kind),
            urlencode(&node.namespace),
            urlencode(&node.name)
        );
        let _ = write!(
            out,
            r#"<tr><td>{}</td><td><a href="{}">{}</a><div class="sub">{}</div></td><td>{}</td><td>{}</td><td>{diff}</td><td>{sync}</td></tr>"#,
            esc(&node.kind),
            esc(&manifest),
            esc(&node.name),
            esc(&node.namespace),
            badge("sync", &node.sync),
            badge("health", &node.health),
        );
    }
    out.push_str("</tbody></table></div>");
    out
}

/// A unified diff with added and removed lines marked.
fn diff_html(diff: &str) -> String {
    diff.lines()
        .map(|line| {
            let class = match line.chars().next() {
                Some('+') if !line.starts_with("+++") => "add",
                Some('-') if !line.starts_with("---") => "del",
                Some('@') => "hunk",
                _ => "ctx",
            };
            format!(r#"<span class="{class}">{}</span>"#, esc(line))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
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
