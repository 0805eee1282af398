//! Gitea's (and Forgejo's) repository and organisation webhooks (API v1).
//!
//! Hooks are of type `gitea` with a string-valued `config` (`url`,
//! `content_type`, `secret`); the secret is never returned, so
//! [`Hook::has_secret`] is `None`. `active` defaults to false on creation,
//! so it is always sent. There is no per-hook TLS switch, and no test
//! endpoint for organisation hooks.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use crate::ensure::Change;
use crate::http::{Api, Call};
use crate::{ForgeError, ForgeKind, Hook, Target, WantedHook};

/// Gitea's default `MAX_RESPONSE_ITEMS`; a larger `limit` is cut to it.
const PER_PAGE: u32 = 50;

#[derive(Deserialize)]
struct GiteaHook {
    id: u64,
    #[serde(default)]
    active: bool,
    #[serde(default)]
    events: Vec<String>,
    #[serde(default)]
    config: std::collections::BTreeMap<String, String>,
}

impl From<GiteaHook> for Hook {
    fn from(mut hook: GiteaHook) -> Hook {
        let mut events = hook.events;
        events.sort();
        Hook {
            id: hook.id,
            url: hook.config.remove("url").unwrap_or_default(),
            events,
            active: hook.active,
            content_type: hook.config.remove("content_type"),
            insecure_ssl: false,
            has_secret: None,
        }
    }
}

pub(crate) async fn list(api: &Api, target: &Target) -> Result<Vec<Hook>, ForgeError> {
    let url = api.hooks_url(target)?;
    let hooks: Vec<GiteaHook> = api.list("list hooks", url, "limit", PER_PAGE).await?;
    Ok(hooks.into_iter().map(Hook::from).collect())
}

pub(crate) async fn create(
    api: &Api,
    target: &Target,
    wanted: &WantedHook,
) -> Result<u64, ForgeError> {
    let url = api.hooks_url(target)?;
    let body = json!({
        "type": "gitea",
        "config": {
            "url": wanted.url,
            "content_type": "json",
            "secret": wanted.secret.expose_secret(),
        },
        "events": ForgeKind::Gitea.wanted_events(),
        "active": true,
    });
    let call = Call {
        operation: "create hook",
        method: "POST",
        url: &url,
    };
    let created: GiteaHook = api
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
        body.insert("events".into(), json!(ForgeKind::Gitea.wanted_events()));
    }
    if change.active {
        body.insert("active".into(), json!(true));
    }
    if change.content_type || change.secret {
        let mut config = serde_json::Map::new();
        config.insert("url".into(), json!(hook.url));
        config.insert("content_type".into(), json!("json"));
        if change.secret {
            config.insert("secret".into(), json!(wanted.secret.expose_secret()));
        }
        body.insert("config".into(), config.into());
    }
    patch(api, target, hook.id, &body.into(), Some(&wanted.secret)).await
}

async fn patch(
    api: &Api,
    target: &Target,
    id: u64,
    body: &serde_json::Value,
    secret: Option<&SecretString>,
) -> Result<(), ForgeError> {
    let url = api.hook_url(target, id)?;
    let call = Call {
        operation: "update hook",
        method: "PATCH",
        url: &url,
    };
    api.send(call, Some(body), secret).await.map(drop)
}

pub(crate) async fn ping(api: &Api, target: &Target, id: u64) -> Result<(), ForgeError> {
    if let Target::Org(_) = target {
        return Err(ForgeError::Unsupported {
            kind: ForgeKind::Gitea,
            operation: "test an organisation hook",
            reason: "Gitea's API tests repository hooks only (POST /repos/{owner}/{repo}/hooks/{id}/tests)",
        });
    }
    let url = api.hook_url_with(target, id, &["tests"])?;
    let call = Call {
        operation: "test hook",
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
    let url = api.hook_url(target, id)?;
    let call = Call {
        operation: "get hook",
        method: "GET",
        url: &url,
    };
    let hook: Hook = api.send_json::<GiteaHook>(call, None, None).await?.into();
    let mut config = serde_json::Map::new();
    config.insert("url".into(), json!(hook.url));
    if let Some(content_type) = hook.content_type {
        config.insert("content_type".into(), json!(content_type));
    }
    config.insert("secret".into(), json!(secret.expose_secret()));
    patch(api, target, id, &json!({ "config": config }), Some(secret)).await
}
