//! GitHub's repository and organisation webhooks (REST API `2022-11-28`,
//! github.com and Enterprise Server).
//!
//! A hook's secret is masked (`"secret": "********"`) when set and absent
//! when not, so [`Hook::has_secret`] is known. `PATCH …/hooks/{id}` with a
//! `config` that omits the secret removes it, so every config write here
//! carries the secret; events and activity are patched without `config`.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use crate::ensure::Change;
use crate::http::{Api, Call};
use crate::{ForgeError, ForgeKind, Hook, Target, WantedHook};

/// GitHub's largest page.
const PER_PAGE: u32 = 100;

#[derive(Deserialize)]
struct GithubHook {
    id: u64,
    #[serde(default)]
    active: bool,
    #[serde(default)]
    events: Vec<String>,
    #[serde(default)]
    config: Config,
}

#[derive(Default, Deserialize)]
struct Config {
    url: Option<String>,
    content_type: Option<String>,
    /// `"0"`/`"1"`, and a number in some answers.
    insecure_ssl: Option<serde_json::Value>,
    /// `"********"` when set; absent when not.
    secret: Option<serde_json::Value>,
}

impl From<GithubHook> for Hook {
    fn from(hook: GithubHook) -> Hook {
        let insecure_ssl = match &hook.config.insecure_ssl {
            Some(serde_json::Value::String(s)) => s.trim() == "1",
            Some(serde_json::Value::Number(n)) => n.as_f64() == Some(1.0),
            _ => false,
        };
        let has_secret =
            matches!(&hook.config.secret, Some(serde_json::Value::String(s)) if !s.is_empty());
        let mut events = hook.events;
        events.sort();
        Hook {
            id: hook.id,
            url: hook.config.url.unwrap_or_default(),
            events,
            active: hook.active,
            content_type: hook.config.content_type,
            insecure_ssl,
            has_secret: Some(has_secret),
        }
    }
}

#[derive(Deserialize)]
struct Created {
    id: u64,
}

pub(crate) async fn list(api: &Api, target: &Target) -> Result<Vec<Hook>, ForgeError> {
    let url = api.hooks_url(target)?;
    let hooks: Vec<GithubHook> = api.list("list hooks", url, "per_page", PER_PAGE).await?;
    Ok(hooks.into_iter().map(Hook::from).collect())
}

/// The `config` object pushsync wants, secret included.
fn config(url: &str, secret: &SecretString) -> serde_json::Value {
    json!({
        "url": url,
        "content_type": "json",
        "insecure_ssl": "0",
        "secret": secret.expose_secret(),
    })
}

pub(crate) async fn create(
    api: &Api,
    target: &Target,
    wanted: &WantedHook,
) -> Result<u64, ForgeError> {
    let url = api.hooks_url(target)?;
    let body = json!({
        "name": "web",
        "active": true,
        "events": ForgeKind::Github.wanted_events(),
        "config": config(&wanted.url, &wanted.secret),
    });
    let call = Call {
        operation: "create hook",
        method: "POST",
        url: &url,
    };
    let created: Created = api
        .send_json(call, Some(&body), Some(&wanted.secret))
        .await?;
    Ok(created.id)
}

pub(crate) async fn update(
    api: &Api,
    target: &Target,
    hook: &Hook,
    wanted: &WantedHook,
    change: Change,
) -> Result<(), ForgeError> {
    let mut body = serde_json::Map::new();
    if change.events {
        body.insert("events".into(), json!(ForgeKind::Github.wanted_events()));
    }
    if change.active {
        body.insert("active".into(), json!(true));
    }
    if change.touches_config() {
        // The hook's own URL, so a trailing-slash difference is kept.
        body.insert("config".into(), config(&hook.url, &wanted.secret));
    }
    let url = api.hook_url(target, hook.id)?;
    let call = Call {
        operation: "update hook",
        method: "PATCH",
        url: &url,
    };
    api.send(call, Some(&body.into()), Some(&wanted.secret))
        .await
        .map(drop)
}

pub(crate) async fn ping(api: &Api, target: &Target, id: u64) -> Result<(), ForgeError> {
    let url = api.hook_url_with(target, id, &["pings"])?;
    let call = Call {
        operation: "ping hook",
        method: "POST",
        url: &url,
    };
    api.send(call, None, None).await.map(drop)
}

pub(crate) async fn set_secret(
    api: &Api,
    target: &Target,
    id: u64,
    secret: &SecretString,
) -> Result<(), ForgeError> {
    let url = api.hook_url_with(target, id, &["config"])?;
    let call = Call {
        operation: "set hook secret",
        method: "PATCH",
        url: &url,
    };
    let body = json!({ "secret": secret.expose_secret() });
    api.send(call, Some(&body), Some(secret)).await.map(drop)
}
