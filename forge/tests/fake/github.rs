//! GitHub's repository and organisation hook endpoints (REST `2022-11-28`).

use actix_web::HttpResponse;
use serde_json::{Value, json};

use super::{Fake, Recorded, Route, StoredHook, TIME, TOKEN, page_of};

const API: &str = "https://api.github.com";

fn not_found() -> HttpResponse {
    HttpResponse::NotFound().json(json!({
        "message": "Not Found",
        "documentation_url": "https://docs.github.com/rest/repos/webhooks",
        "status": "404",
    }))
}

fn config(hook: &StoredHook) -> Value {
    let mut config = json!({
        "url": hook.url,
        "insecure_ssl": if hook.insecure_ssl { "1" } else { "0" },
    });
    if let Some(content_type) = &hook.content_type {
        config["content_type"] = json!(content_type);
    }
    if hook.secret.is_some() {
        config["secret"] = json!("********");
    }
    config
}

fn render(route: &Route, hook: &StoredHook) -> Value {
    let base = format!("{API}/{}/hooks/{}", route.scope, hook.id);
    let mut out = json!({
        "type": if route.org { "Organization" } else { "Repository" },
        "id": hook.id,
        "name": "web",
        "active": hook.active,
        "events": hook.events,
        "config": config(hook),
        "updated_at": TIME,
        "created_at": TIME,
        "url": base,
        "ping_url": format!("{base}/pings"),
        "deliveries_url": format!("{base}/deliveries"),
    });
    if !route.org {
        out["test_url"] = json!(format!("{base}/test"));
        out["last_response"] = json!({"code": null, "status": "unused", "message": null});
    }
    out
}

/// Apply a `config` object of a PATCH: given keys replace stored ones.
fn merge_config(hook: &mut StoredHook, config: &Value) {
    if let Some(url) = config.get("url").and_then(Value::as_str) {
        hook.url = url.to_owned();
    }
    if let Some(ct) = config.get("content_type").and_then(Value::as_str) {
        hook.content_type = Some(ct.to_owned());
    }
    if let Some(ssl) = config.get("insecure_ssl") {
        hook.insecure_ssl = ssl.as_str() == Some("1") || ssl.as_i64() == Some(1);
    }
    if let Some(secret) = config.get("secret").and_then(Value::as_str) {
        hook.secret = Some(secret.to_owned());
    }
}

pub(super) fn handle(fake: &Fake, route: &Route, request: &Recorded) -> HttpResponse {
    let auth = request.headers.get("authorization").map(String::as_str);
    if auth != Some(format!("Bearer {TOKEN}").as_str()) {
        return HttpResponse::Unauthorized().json(json!({
            "message": "Bad credentials",
            "documentation_url": "https://docs.github.com/rest",
            "status": "401",
        }));
    }
    if route.scope.contains("missing") {
        return not_found();
    }
    let body = request.body.clone().unwrap_or(Value::Null);
    let action: Vec<&str> = route.action.iter().map(String::as_str).collect();
    match (request.method.as_str(), route.id, action.as_slice()) {
        ("GET", None, []) => {
            let hooks = fake.hooks(&route.scope);
            let (items, _, next, last) = page_of(&hooks, &request.query, "per_page");
            let items: Vec<Value> = items.iter().map(|h| render(route, h)).collect();
            let mut response = HttpResponse::Ok();
            if let Some(next) = next {
                // GitHub's own form: the numeric-id URL on api.github.com.
                response.insert_header((
                    "link",
                    format!(
                        "<{API}/repositories/1/hooks?per_page=2&page={next}>; rel=\"next\", <{API}/repositories/1/hooks?per_page=2&page={last}>; rel=\"last\""
                    ),
                ));
            }
            response.json(items)
        }
        ("POST", None, []) => {
            let config = body.get("config").cloned().unwrap_or(Value::Null);
            let Some(url) = config.get("url").and_then(Value::as_str) else {
                return HttpResponse::UnprocessableEntity()
                    .json(json!({"message": "Validation Failed", "errors": [{"resource": "Hook", "code": "missing_field", "field": "config.url"}]}));
            };
            if fake.hooks(&route.scope).iter().any(|h| h.url == url) {
                return HttpResponse::UnprocessableEntity().json(json!({
                    "message": "Validation Failed",
                    "errors": [{"resource": "Hook", "code": "custom", "message": "Hook already exists on this repository"}],
                    "documentation_url": "https://docs.github.com/rest/repos/webhooks#create-a-repository-webhook",
                }));
            }
            let mut hook = StoredHook::new(url, &["push"], None);
            hook.content_type = Some("form".into());
            merge_config(&mut hook, &config);
            if let Some(events) = body.get("events").and_then(Value::as_array) {
                hook.events = events
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect();
            }
            hook.active = body.get("active").and_then(Value::as_bool).unwrap_or(true);
            let hook = fake.create(&route.scope, hook);
            let rendered = render(route, &hook);
            HttpResponse::Created()
                .insert_header((
                    "location",
                    rendered["url"].as_str().unwrap_or("").to_owned(),
                ))
                .json(rendered)
        }
        ("GET", Some(id), []) => match fake.with_hook(&route.scope, id, |h| render(route, h)) {
            Some(hook) => HttpResponse::Ok().json(hook),
            None => not_found(),
        },
        ("PATCH", Some(id), []) => {
            let updated = fake.with_hook(&route.scope, id, |hook| {
                if let Some(events) = body.get("events").and_then(Value::as_array) {
                    hook.events = events
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect();
                }
                if let Some(active) = body.get("active").and_then(Value::as_bool) {
                    hook.active = active;
                }
                if let Some(config) = body.get("config") {
                    // "If you previously had a secret set, you must provide
                    // the same secret or set a new secret or the secret will
                    // be removed."
                    hook.secret = None;
                    merge_config(hook, config);
                }
                render(route, hook)
            });
            updated.map_or_else(not_found, |h| HttpResponse::Ok().json(h))
        }
        ("PATCH", Some(id), ["config"]) => {
            let updated = fake.with_hook(&route.scope, id, |hook| {
                merge_config(hook, &body);
                config(hook)
            });
            updated.map_or_else(not_found, |c| HttpResponse::Ok().json(c))
        }
        ("DELETE", Some(id), []) => {
            if fake.remove(&route.scope, id) {
                HttpResponse::NoContent().finish()
            } else {
                not_found()
            }
        }
        ("POST", Some(id), ["pings"]) | ("POST", Some(id), ["tests"]) => {
            if fake.with_hook(&route.scope, id, |_| ()).is_some() {
                HttpResponse::NoContent().finish()
            } else {
                not_found()
            }
        }
        _ => not_found(),
    }
}
