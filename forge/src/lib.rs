//! Forge API clients for registering push webhooks: GitHub (github.com and
//! Enterprise Server), GitLab (gitlab.com and self-managed) and
//! Gitea/Forgejo, on repositories (projects) and organisations (groups).
//!
//! [`Forge::ensure`] is the idempotent registration the `pushsync webhook
//! register` command runs: it lists the target's hooks, creates ours when no
//! hook points at the URL, updates only what differs when one does, and
//! never creates a duplicate or deletes anything by itself.
//!
//! **Secrets cannot be compared.** None of the three forges returns a hook's
//! secret (GitHub masks it as `********`, GitLab and Gitea omit it), so
//! `ensure` writes the secret only when asked to
//! ([`WantedHook::rewrite_secret`]) or when the forge reports that the hook
//! has none (GitHub only: [`Hook::has_secret`] is `Some(false)`). Rotation is
//! [`Forge::set_secret`]. The caller (the CLI) keeps the secret; this crate
//! never stores it.
//!
//! The API token and the webhook secret never appear in an error, a `Debug`
//! output or a log line: both are [`SecretString`]s, exposed only while a
//! request is built, and a forge's error message that echoes either is
//! redacted.

mod client;
mod ensure;
mod error;
mod gitea;
mod github;
mod gitlab;
mod http;
mod target;
mod transport;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

pub use client::HttpsClient;
pub use ensure::{Ensured, same_url};
pub use error::ForgeError;
pub use target::Target;

/// Which forge's API a [`Forge`] speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ForgeKind {
    /// GitHub.com or GitHub Enterprise Server (REST API v3, version
    /// `2022-11-28`).
    Github,
    /// GitLab.com or self-managed GitLab (REST API v4).
    Gitlab,
    /// Gitea or Forgejo (API v1; Forgejo keeps Gitea's hook API).
    Gitea,
}

impl ForgeKind {
    /// Every kind, in the order the CLI lists them.
    pub const ALL: [ForgeKind; 3] = [ForgeKind::Github, ForgeKind::Gitlab, ForgeKind::Gitea];

    /// The lower-case name (`github`, `gitlab`, `gitea`), as parsed by
    /// [`FromStr`].
    pub fn as_str(self) -> &'static str {
        match self {
            ForgeKind::Github => "github",
            ForgeKind::Gitlab => "gitlab",
            ForgeKind::Gitea => "gitea",
        }
    }

    /// The API base used when none is given: `None` for Gitea, which has no
    /// public default instance.
    pub fn default_api_base(self) -> Option<&'static str> {
        match self {
            ForgeKind::Github => Some("https://api.github.com"),
            ForgeKind::Gitlab => Some("https://gitlab.com/api/v4"),
            ForgeKind::Gitea => None,
        }
    }

    /// The events a pushsync hook subscribes to, as [`Hook::events`] names
    /// them: GitHub and Gitea `push` (tags included), GitLab `push` and
    /// `tag_push` (separate switches there).
    pub fn wanted_events(self) -> &'static [&'static str] {
        match self {
            ForgeKind::Github | ForgeKind::Gitea => &["push"],
            ForgeKind::Gitlab => &["push", "tag_push"],
        }
    }
}

impl fmt::Display for ForgeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ForgeKind {
    type Err = ForgeError;

    /// `github`, `gitlab`, `gitea` or `forgejo` (a Gitea), case-insensitive.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "github" => Ok(ForgeKind::Github),
            "gitlab" => Ok(ForgeKind::Gitlab),
            "gitea" | "forgejo" => Ok(ForgeKind::Gitea),
            _ => Err(ForgeError::UnknownKind { name: s.to_owned() }),
        }
    }
}

/// A webhook as the forge reports it, reduced to what pushsync compares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hook {
    /// The forge's id of the hook.
    pub id: u64,
    /// Where the forge delivers, exactly as stored.
    pub url: String,
    /// The events it is subscribed to, sorted: GitHub's and Gitea's event
    /// names (`push`, `pull_request`, …); for GitLab the enabled
    /// `<name>_events` switches without the suffix (`push`, `tag_push`, …).
    pub events: Vec<String>,
    /// Whether the forge delivers at all (GitLab: not disabled after
    /// failures).
    pub active: bool,
    /// The payload encoding (`json`, `form`); `None` where the forge has no
    /// choice (GitLab) or does not say.
    pub content_type: Option<String>,
    /// Whether TLS verification of the receiver is switched off.
    pub insecure_ssl: bool,
    /// Whether a secret is set: `Some` only where the forge says (GitHub
    /// masks a set secret as `********` and omits an unset one); `None` for
    /// GitLab and Gitea, which never tell.
    pub has_secret: Option<bool>,
}

/// The hook pushsync wants on a target. The events, content type, TLS
/// verification and activity are fixed per forge (see
/// [`ForgeKind::wanted_events`]): JSON payloads, TLS verified, active.
pub struct WantedHook {
    /// The receiver's URL for this forge, e.g.
    /// `https://pushsync.example.com/hooks/github`.
    pub url: String,
    /// The webhook secret (GitHub/Gitea HMAC key, GitLab token).
    pub secret: SecretString,
    /// Write the secret even when the hook exists and seems to have one
    /// (the forges cannot tell whether it is the same): after a rotation,
    /// or when the operator is unsure.
    pub rewrite_secret: bool,
}

impl fmt::Debug for WantedHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WantedHook")
            .field("url", &self.url)
            .field("secret", &"[REDACTED]")
            .field("rewrite_secret", &self.rewrite_secret)
            .finish()
    }
}

/// How long one request may take, connection included, unless
/// [`Forge::with_timeout`] says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A client of one forge's hook API, authenticated with one token.
///
/// Cheap to clone (the HTTP client is shared). `Debug` shows the kind and
/// the API base, never the token.
#[derive(Clone)]
pub struct Forge {
    kind: ForgeKind,
    api: http::Api,
}

impl fmt::Debug for Forge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Forge")
            .field("kind", &self.kind)
            .field("api_base", &self.api.base().as_str())
            .finish_non_exhaustive()
    }
}

impl Forge {
    /// A client for `kind` at `api_base` (its default when `None`; Gitea
    /// has none). The base may carry a path prefix, which every request
    /// keeps: `https://ghe.example.com/api/v3`,
    /// `https://git.example.com/gitlab/api/v4`,
    /// `https://gitea.example.com/api/v1`.
    pub fn new(
        kind: ForgeKind,
        api_base: Option<&str>,
        token: SecretString,
    ) -> Result<Forge, ForgeError> {
        Self::with_timeout(kind, api_base, token, DEFAULT_TIMEOUT)
    }

    /// [`Forge::new`] with another per-request timeout.
    pub fn with_timeout(
        kind: ForgeKind,
        api_base: Option<&str>,
        token: SecretString,
        timeout: Duration,
    ) -> Result<Forge, ForgeError> {
        let base = api_base
            .or(kind.default_api_base())
            .ok_or(ForgeError::MissingApiBase { kind })?;
        let base = parse_base(base)?;
        let api = http::Api::new(kind, base, token, timeout)?;
        Ok(Forge { kind, api })
    }

    /// The forge this client speaks to.
    pub fn kind(&self) -> ForgeKind {
        self.kind
    }

    /// The API base every path is joined to.
    pub fn api_base(&self) -> &Url {
        self.api.base()
    }

    /// Every hook on `target`, all pages followed.
    pub async fn hooks(&self, target: &Target) -> Result<Vec<Hook>, ForgeError> {
        match self.kind {
            ForgeKind::Github => github::list(&self.api, target).await,
            ForgeKind::Gitlab => gitlab::list(&self.api, target).await,
            ForgeKind::Gitea => gitea::list(&self.api, target).await,
        }
    }

    /// Make sure `target` has the hook `wanted` describes, idempotently:
    /// create it when no hook points at its URL (compared without trailing
    /// slashes), update the first that does when its events, content type,
    /// activity or TLS verification differ, and write the secret only when
    /// [`WantedHook::rewrite_secret`] is set or the forge reports the hook
    /// has none (see the crate docs: secrets cannot be read back). Other
    /// hooks pointing at the same URL are reported, never deleted.
    ///
    /// Whenever GitHub's hook configuration is written (content type, TLS
    /// verification), the secret is sent with it: GitHub drops a secret
    /// that a configuration update omits.
    pub async fn ensure(
        &self,
        target: &Target,
        wanted: &WantedHook,
    ) -> Result<Ensured, ForgeError> {
        ensure::ensure(self, target, wanted).await
    }

    /// Ask the forge to deliver a test event to hook `id`: GitHub a `ping`,
    /// GitLab a test `push_events`, Gitea a test push (repositories only;
    /// Gitea has no test for organisation hooks: [`ForgeError::Unsupported`]).
    pub async fn ping(&self, target: &Target, id: u64) -> Result<(), ForgeError> {
        match self.kind {
            ForgeKind::Github => github::ping(&self.api, target, id).await,
            ForgeKind::Gitlab => gitlab::ping(&self.api, target, id).await,
            ForgeKind::Gitea => gitea::ping(&self.api, target, id).await,
        }
    }

    /// Delete hook `id` from `target`.
    pub async fn delete(&self, target: &Target, id: u64) -> Result<(), ForgeError> {
        let url = self.api.hook_url(target, id)?;
        self.api.delete("delete hook", url).await
    }

    /// Write `secret` as hook `id`'s secret and change nothing else (secret
    /// rotation). GitHub: `PATCH …/hooks/{id}/config`; GitLab and Gitea read
    /// the hook first, because their update needs its URL.
    pub async fn set_secret(
        &self,
        target: &Target,
        id: u64,
        secret: &SecretString,
    ) -> Result<(), ForgeError> {
        match self.kind {
            ForgeKind::Github => github::set_secret(&self.api, target, id, secret).await,
            ForgeKind::Gitlab => gitlab::set_secret(&self.api, target, id, secret).await,
            ForgeKind::Gitea => gitea::set_secret(&self.api, target, id, secret).await,
        }
    }
}

/// An absolute `http(s)` URL without query, fragment or credentials.
fn parse_base(base: &str) -> Result<Url, ForgeError> {
    // The base as shown in the error: never the credentials it may carry.
    let shown = pushsync_proto::redact_url(base);
    let invalid = |reason: &'static str| ForgeError::InvalidApiBase {
        base: shown.clone(),
        reason,
    };
    let url = Url::parse(base).map_err(|_| invalid("not an absolute URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("the scheme must be http or https"));
    }
    if url.cannot_be_a_base() || url.host().is_none() {
        return Err(invalid("not an absolute URL with a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("credentials belong in the token, not the URL"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("a query or fragment is not allowed"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests;
