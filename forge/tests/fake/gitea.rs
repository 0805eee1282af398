//! Gitea's repository and organisation hook endpoints (API v1).

use actix_web::HttpResponse;
use serde_json::{Value, json};

use super::{Fake, Recorded, Route, StoredHook, TIME, TOKEN, page_of};

fn not_found() -> HttpResponse {
    HttpResponse::NotFound().json(json!({
        "errors": null,
        "message": "The target couldn't be found.",
        "url": "https://gitea.example.com/api/swagger",
    }))
}

fn render(hook: &StoredHook) -> Value {
    let mut config = json!({ "url": hook.url, "http_method": "post" });
    if let Some(content_type) = &hook.content_type {
        config["content_type"] = json!(content_type);
    }
    json!({
        "id": hook.id,
        "type": "gitea",
        "branch_filter": "*",
        "config": config,
        "events": hook.events,
        "authorization_header": "",
        "active": hook.active,
        "updated_at": TIME,
        "created_at": TIME,
    })
}

fn apply_config(hook: &mut StoredHook, config: &Value) {
    if let Some(url) = config.get("url").and_then(Value::as_str) {
        hook.url = url.to_owned();
    }
    if let Some(ct) = config.get("content_type").and_then(Value::as_str) {
        hook.content_type = Some(ct.to_owned());
    }
    if let Some(secret) = config.get("secret").and_then(Value::as_str) {
        hook.secret = Some(secret.to_owned());
    }
}

fn events(body: &Value) -> Option<Vec<String>> {
    body.get("events").and_then(Value::as_array).map(|e| {
        e.iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    })
}

pub(super) fn handle(fake: &Fake, route: &Route, request: &Recorded) -> HttpResponse {
    let auth = request.headers.get("authorization").map(String::as_str);
    if auth != Some(format!("token {TOKEN}").as_str()) {
        return HttpResponse::Unauthorized()
            .json(json!({ "message": "token is required", "url": "" }));
    }
    if route.scope.contains("missing") {
        return not_found();
    }
    let body = request.body.clone().unwrap_or(Value::Null);
    let action: Vec<&str> = route.action.iter().map(String::as_str).collect();
    match (request.method.as_str(), route.id, action.as_slice()) {
        ("GET", None, []) => {
            let hooks = fake.hooks(&route.scope);
            let (items, _, next, last) = page_of(&hooks, &request.query, "limit");
            let items: Vec<Value> = items.iter().map(render).collect();
            let mut response = HttpResponse::Ok();
            response.insert_header(("x-total-count", hooks.len().to_string()));
            if let Some(next) = next {
                let base = format!("https://gitea.example.com/api/v1/{}/hooks", route.scope);
                response.insert_header((
                    "link",
                    format!("<{base}?limit=2&page={next}>; rel=\"next\",<{base}?limit=2&page={last}>; rel=\"last\""),
                ));
            }
            response.json(items)
        }
        ("POST", None, []) => {
            let config = body.get("config").cloned().unwrap_or(Value::Null);
            let (Some(_), Some(url), Some(_)) = (
                body.get("type").and_then(Value::as_str),
                config.get("url").and_then(Value::as_str),
                config.get("content_type").and_then(Value::as_str),
            ) else {
                return HttpResponse::UnprocessableEntity()
                    .json(json!({ "message": "Missing config option: url, content_type or type", "url": "" }));
            };
            let mut hook = StoredHook::new(url, &["push"], None);
            apply_config(&mut hook, &config);
            if let Some(events) = events(&body) {
                hook.events = events;
            }
            // Gitea's CreateHookOption.active defaults to false.
            hook.active = body.get("active").and_then(Value::as_bool).unwrap_or(false);
            let hook = fake.create(&route.scope, hook);
            HttpResponse::Created().json(render(&hook))
        }
        ("GET", Some(id), []) => match fake.with_hook(&route.scope, id, |h| render(h)) {
            Some(hook) => HttpResponse::Ok().json(hook),
            None => not_found(),
        },
        ("PATCH", Some(id), []) => {
            let updated = fake.with_hook(&route.scope, id, |hook| {
                if let Some(config) = body.get("config") {
                    apply_config(hook, config);
                }
                if let Some(events) = events(&body) {
                    hook.events = events;
                }
                if let Some(active) = body.get("active").and_then(Value::as_bool) {
                    hook.active = active;
                }
                render(hook)
            });
            updated.map_or_else(not_found, |h| HttpResponse::Ok().json(h))
        }
        ("DELETE", Some(id), []) => {
            if fake.remove(&route.scope, id) {
                HttpResponse::NoContent().finish()
            } else {
                not_found()
            }
        }
        ("POST", Some(id), ["tests"]) if !route.org => {
            if fake.with_hook(&route.scope, id, |_| ()).is_some() {
                HttpResponse::NoContent().finish()
            } else {
                not_found()
            }
        }
        _ => not_found(),
    }
}
