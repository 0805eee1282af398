//! GitLab's project and group hook endpoints (REST v4).

use actix_web::HttpResponse;
use serde_json::{Value, json};

use super::{Fake, Recorded, Route, StoredHook, TIME, TOKEN, page_of};

/// The `<name>_events` switches the fake renders.
pub const EVENTS: [&str; 12] = [
    "push",
    "tag_push",
    "merge_requests",
    "issues",
    "confidential_issues",
    "note",
    "confidential_note",
    "job",
    "pipeline",
    "wiki_page",
    "deployment",
    "releases",
];

fn not_found(what: &str) -> HttpResponse {
    HttpResponse::NotFound().json(json!({ "message": format!("404 {what} Not Found") }))
}

fn render(route: &Route, hook: &StoredHook) -> Value {
    let mut out = json!({
        "id": hook.id,
        "url": hook.url,
        "name": "",
        "description": "",
        "push_events_branch_filter": "",
        "branch_filter_strategy": "wildcard",
        "enable_ssl_verification": !hook.insecure_ssl,
        "alert_status": if hook.active { "executable" } else { "disabled" },
        "disabled_until": null,
        "url_variables": [],
        "custom_headers": [],
        "custom_webhook_template": "",
        "created_at": TIME,
        "repository_update_events": false,
    });
    for event in EVENTS {
        out[format!("{event}_events")] = json!(hook.events.iter().any(|e| e == event));
    }
    if route.org {
        out["group_id"] = json!(7);
    } else {
        out["project_id"] = json!(3);
    }
    out
}

/// Apply the event switches, TLS flag and token of a POST or PUT body.
fn apply(hook: &mut StoredHook, body: &Value) {
    for event in EVENTS {
        if let Some(on) = body.get(format!("{event}_events")).and_then(Value::as_bool) {
            hook.events.retain(|e| e != event);
            if on {
                hook.events.push(event.to_owned());
            }
        }
    }
    if let Some(verify) = body.get("enable_ssl_verification").and_then(Value::as_bool) {
        hook.insecure_ssl = !verify;
    }
    if let Some(token) = body.get("token").and_then(Value::as_str) {
        hook.secret = Some(token.to_owned());
    }
}

pub(super) fn handle(fake: &Fake, route: &Route, request: &Recorded) -> HttpResponse {
    if request.headers.get("private-token").map(String::as_str) != Some(TOKEN) {
        return HttpResponse::Unauthorized().json(json!({ "message": "401 Unauthorized" }));
    }
    let what = if route.org { "Group" } else { "Project" };
    if route.scope.contains("missing") {
        return not_found(what);
    }
    let body = request.body.clone().unwrap_or(Value::Null);
    let action: Vec<&str> = route.action.iter().map(String::as_str).collect();
    match (request.method.as_str(), route.id, action.as_slice()) {
        ("GET", None, []) => {
            let hooks = fake.hooks(&route.scope);
            let (items, page, next, total_pages) = page_of(&hooks, &request.query, "per_page");
            let items: Vec<Value> = items.iter().map(|h| render(route, h)).collect();
            let next = next.map(|n| n.to_string()).unwrap_or_default();
            HttpResponse::Ok()
                .insert_header(("x-page", page.to_string()))
                .insert_header(("x-per-page", super::PAGE_SIZE.to_string()))
                .insert_header(("x-next-page", next))
                .insert_header(("x-total", hooks.len().to_string()))
                .insert_header(("x-total-pages", total_pages.to_string()))
                .json(items)
        }
        ("POST", None, []) => {
            let Some(url) = body.get("url").and_then(Value::as_str) else {
                return HttpResponse::BadRequest().json(json!({ "error": "url is missing" }));
            };
            // push_events defaults to true, the others to false.
            let mut hook = StoredHook::new(url, &["push"], None);
            hook.content_type = None;
            apply(&mut hook, &body);
            let hook = fake.create(&route.scope, hook);
            HttpResponse::Created().json(render(route, &hook))
        }
        ("GET", Some(id), []) => match fake.with_hook(&route.scope, id, |h| render(route, h)) {
            Some(hook) => HttpResponse::Ok().json(hook),
            None => not_found("Hook"),
        },
        ("PUT", Some(id), []) => {
            let Some(url) = body.get("url").and_then(Value::as_str) else {
                return HttpResponse::BadRequest().json(json!({ "error": "url is missing" }));
            };
            let updated = fake.with_hook(&route.scope, id, |hook| {
                if hook.url != url {
                    // "When you change the webhook URL, the secret token is
                    // reset and not retained."
                    hook.secret = None;
                    hook.url = url.to_owned();
                }
                apply(hook, &body);
                render(route, hook)
            });
            updated.map_or_else(|| not_found("Hook"), |h| HttpResponse::Ok().json(h))
        }
        ("DELETE", Some(id), []) => {
            if fake.remove(&route.scope, id) {
                HttpResponse::NoContent().finish()
            } else {
                not_found("Hook")
            }
        }
        ("POST", Some(id), ["test", "push_events"]) => {
            if fake.with_hook(&route.scope, id, |_| ()).is_some() {
                HttpResponse::Created().json(json!({ "message": "201 Created" }))
            } else {
                not_found("Hook")
            }
        }
        _ => not_found("Route"),
    }
}
