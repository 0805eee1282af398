//! Idempotent registration: find our hook by URL, then create, update what
//! differs, or leave it alone.

use crate::{Forge, ForgeError, ForgeKind, Hook, Target, WantedHook, gitea, github, gitlab};

/// What [`Forge::ensure`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ensured {
    /// No hook pointed at the URL; one was created.
    Created {
        /// The new hook's id.
        id: u64,
    },
    /// The hook existed and was updated.
    Updated {
        /// The hook's id.
        id: u64,
        /// What was written, in this order: `events`, `content_type`,
        /// `active`, `insecure_ssl`, `secret`.
        changed: Vec<&'static str>,
        /// Other hooks pointing at the same URL, left as they are (delete
        /// them with [`Forge::delete`] if they are leftovers).
        duplicates: Vec<u64>,
    },
    /// The hook existed as wanted; nothing was written.
    Unchanged {
        /// The hook's id.
        id: u64,
        /// Other hooks pointing at the same URL, left as they are.
        duplicates: Vec<u64>,
    },
}

impl Ensured {
    /// The id of our hook.
    pub fn id(&self) -> u64 {
        match self {
            Ensured::Created { id }
            | Ensured::Updated { id, .. }
            | Ensured::Unchanged { id, .. } => *id,
        }
    }
}

/// Which parts of an existing hook must be written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Change {
    pub events: bool,
    pub content_type: bool,
    pub active: bool,
    pub insecure_ssl: bool,
    pub secret: bool,
}

impl Change {
    /// The names [`Ensured::Updated::changed`] reports.
    pub(crate) fn names(self) -> Vec<&'static str> {
        [
            (self.events, "events"),
            (self.content_type, "content_type"),
            (self.active, "active"),
            (self.insecure_ssl, "insecure_ssl"),
            (self.secret, "secret"),
        ]
        .into_iter()
        .filter_map(|(changed, name)| changed.then_some(name))
        .collect()
    }

    pub(crate) fn is_empty(self) -> bool {
        self == Change::default()
    }

    /// Whether GitHub's or Gitea's `config` object must be written.
    pub(crate) fn touches_config(self) -> bool {
        self.content_type || self.insecure_ssl || self.secret
    }
}

/// What differs between `hook` and what pushsync wants on `kind`.
pub(crate) fn diff(kind: ForgeKind, hook: &Hook, rewrite_secret: bool) -> Change {
    let mut wanted: Vec<&str> = kind.wanted_events().to_vec();
    wanted.sort_unstable();
    let mut events: Vec<&str> = hook.events.iter().map(String::as_str).collect();
    events.sort_unstable();
    events.dedup();
    Change {
        events: events != wanted,
        // GitLab always sends JSON and has no such setting.
        content_type: kind != ForgeKind::Gitlab && hook.content_type.as_deref() != Some("json"),
        // GitLab has no switch: a successful test delivery re-enables a
        // hook it disabled.
        active: kind != ForgeKind::Gitlab && !hook.active,
        insecure_ssl: hook.insecure_ssl,
        secret: rewrite_secret || hook.has_secret == Some(false),
    }
}

/// Two hook URLs are the same when equal but for trailing slashes.
pub fn same_url(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

pub(crate) async fn ensure(
    forge: &Forge,
    target: &Target,
    wanted: &WantedHook,
) -> Result<Ensured, ForgeError> {
    check_hook_url(&wanted.url)?;
    let hooks = forge.hooks(target).await?;
    let mut ours = hooks.iter().filter(|h| same_url(&h.url, &wanted.url));
    let Some(hook) = ours.next() else {
        let id = match forge.kind {
            ForgeKind::Github => github::create(&forge.api, target, wanted).await?,
            ForgeKind::Gitlab => gitlab::create(&forge.api, target, wanted).await?,
            ForgeKind::Gitea => gitea::create(&forge.api, target, wanted).await?,
        };
        return Ok(Ensured::Created { id });
    };
    let duplicates = ours.map(|h| h.id).collect();
    let change = diff(forge.kind, hook, wanted.rewrite_secret);
    if change.is_empty() {
        return Ok(Ensured::Unchanged {
            id: hook.id,
            duplicates,
        });
    }
    match forge.kind {
        ForgeKind::Github => github::update(&forge.api, target, hook, wanted, change).await?,
        ForgeKind::Gitlab => gitlab::update(&forge.api, target, hook, wanted, change).await?,
        ForgeKind::Gitea => gitea::update(&forge.api, target, hook, wanted, change).await?,
    }
    Ok(Ensured::Updated {
        id: hook.id,
        changed: change.names(),
        duplicates,
    })
}

fn check_hook_url(url: &str) -> Result<(), ForgeError> {
    let invalid = |reason: &'static str| ForgeError::InvalidHookUrl {
        url: url.to_owned(),
        reason,
    };
    let parsed = url::Url::parse(url).map_err(|_| invalid("not an absolute URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(invalid("not an http(s) URL with a host"));
    }
    Ok(())
}
