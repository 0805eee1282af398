//! GitLab's project and group webhooks (REST API v4).
//!
//! Events are boolean `<name>_events` switches; pushsync wants `push_events`
//! and `tag_push_events` and nothing else. The secret is the hook's `token`,
//! never returned, so [`Hook::has_secret`] is `None`. Updates are `PUT` and
//! need the hook's `url`; the token is sent only when it is to be written
//! (the URL is never changed here: GitLab resets the token on a URL change).
//! A hook GitLab disabled after failed deliveries shows as inactive; there
//! is no switch to set, a successful test delivery ([`crate::Forge::ping`])
//! re-enables it, so `ensure` does not compare activity on GitLab.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use crate::ensure::Change;
use crate::http::{Api, Call};
use crate::{ForgeError, Hook, Target, WantedHook};

/// GitLab's largest page.
const PER_PAGE: u32 = 100;

#[derive(Deserialize)]
struct GitlabHook {
    id: u64,
    url: String,
    #[serde(default = "yes")]
    enable_ssl_verification: bool,
    /// `executable`, `disabled` or `temporarily_disabled` (GitLab disables a
    /// hook that keeps failing); absent on old versions.
    alert_status: Option<String>,
    /// Every other field, among them the `*_events` switches.
    #[serde(flatten)]
    rest: serde_json::Map<String, serde_json::Value>,
}

fn yes() -> bool {
    true
}

impl From<GitlabHook> for Hook {
    fn from(hook: GitlabHook) -> Hook {
        let mut events: Vec<String> = hook
            .rest
            .iter()
            .filter(|(_, on)| on.as_bool() == Some(true))
            .filter_map(|(key, _)| key.strip_suffix("_events").map(str::to_owned))
            .collect();
        events.sort();
        Hook {
            id: hook.id,
            url: hook.url,
            events,
            active: hook
                .alert_status
                .as_deref()
                .is_none_or(|s| s == "executable"),
            content_type: None,
            insecure_ssl: !hook.enable_ssl_verification,
            has_secret: None,
        }
    }
}

#[derive(Deserialize)]
struct Created {
    id: u64,
}

pub(crate) async fn list(api: &Api, target: &Target) -> Result<Vec<Hook>, ForgeError> {
    let url = api.hooks_url(target)?;
    let hooks: Vec<GitlabHook> = api.list("list hooks", url, "per_page", PER_PAGE).await?;
    Ok(hooks.into_iter().map(Hook::from).collect())
}

pub(crate) async fn create(
    api: &Api,
    target: &Target,
    wanted: &WantedHook,
) -> Result<u64, ForgeError> {
    let url = api.hooks_url(target)?;
    let body = json!({
        "url": wanted.url,
        "push_events": true,
        "tag_push_events": true,
        "enable_ssl_verification": true,
        "token": wanted.secret.expose_secret(),
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
    body.insert("url".into(), json!(hook.url));
    if change.events {
        // Switch off what is on and unwanted, switch on what is wanted.
        for event in &hook.events {
            body.insert(format!("{event}_events"), json!(false));
        }
        body.insert("push_events".into(), json!(true));
        body.insert("tag_push_events".into(), json!(true));
    }
    if change.insecure_ssl {
        body.insert("enable_ssl_verification".into(), json!(true));
    }
    if change.secret {
        body.insert("token".into(), json!(wanted.secret.expose_secret()));
    }
    put(api, target, hook.id, &body.into(), Some(&wanted.secret)).await
}

async fn put(
    api: &Api,
    target: &Target,
    id: u64,
    body: &serde_json::Value,
    secret: Option<&SecretString>,
) -> Result<(), ForgeError> {
    let url = api.hook_url(target, id)?;
    let call = Call {
        operation: "update hook",
        method: "PUT",
        url: &url,
    };
    api.send(call, Some(body), secret).await.map(drop)
}

pub(crate) async fn ping(api: &Api, target: &Target, id: u64) -> Result<(), ForgeError> {
    let url = api.hook_url_with(target, id, &["test", "push_events"])?;
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
    let hook: GitlabHook = api.send_json(call, None, None).await?;
    let body = json!({ "url": hook.url, "token": secret.expose_secret() });
    put(api, target, id, &body, Some(secret)).await
}
