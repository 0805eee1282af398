//! An Application's page below its header bar: summary and actions (by
//! role; the API checks again), conditions, the last operation, the
//! resource tree as a graph, resources with their diffs, history with Roll
//! back, Events. Rendered whole for the page and again as the fragment live
//! pages swap in.

use std::fmt::Write as _;

use pushsync_api::Application;

use super::{badge, clip, esc};
use crate::State;
use crate::apps::{Summary, project_of};
use crate::policy::{Role, User};
use crate::routes::urlencode;
use crate::tree::Node;

/// Everything an Application's page shows below the header bar.
pub(super) async fn app_body(state: &State, user: &User, app: &Application) -> String {
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
        health = badge("health", summary.shown_health()),
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
pub(super) fn diff_html(diff: &str) -> String {
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
