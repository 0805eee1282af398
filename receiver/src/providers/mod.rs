//! Forge-specific verification and parsing, normalising every push into [`PushEvent`]s.
//!
//! Each provider module exposes the same three steps, called in this order by
//! [`crate::routes`]: `describe` (read headers: event, delivery id),
//! `verify` (signature or token, before the body is trusted in any way) and
//! `parse` (body to events).

pub mod bitbucket;
pub mod gitea;
pub mod github;
pub mod gitlab;

use std::borrow::Cow;
use std::time::Duration;

use actix_web::http::header::{CONTENT_TYPE, HeaderMap};
use jiff::Timestamp;
use pushsync_proto::{ChangedPaths, PushEvent, RepoId};
use serde::Deserialize;

use crate::Error;
use crate::secrets::Secrets;

/// One webhook endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `POST /hooks/github`.
    Github,
    /// `POST /hooks/gitlab`.
    Gitlab,
    /// `POST /hooks/gitea` (Gitea, Forgejo and Gogs).
    Gitea,
    /// `POST /hooks/bitbucket` (Cloud and Server/Data Center).
    Bitbucket,
}

/// What the headers say about a delivery, known before the body is checked.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// Bounded event label for metrics (`push`, `tag_push`, `ping`, `other`, `none`).
    pub event_label: &'static str,
    /// The event name as sent (for logs), if any.
    pub event: Option<String>,
    /// The forge's delivery id, if it sent one.
    pub delivery_id: Option<String>,
}

/// What to do with a verified, parsed delivery.
#[derive(Debug)]
pub enum Action {
    /// Publish these events (one per ref update).
    Publish(Vec<PushEvent>),
    /// A connectivity test: answer 200, publish nothing.
    Ping,
    /// An event pushsync does not act on: answer 202, publish nothing.
    Ignore,
}

/// Settings the providers need besides secrets.
#[derive(Debug, Clone, Copy)]
pub struct VerifyOptions {
    /// Accepted skew of signed timestamps (GitLab's Standard Webhooks).
    pub timestamp_tolerance: Duration,
    /// The current time, passed in so tests can pin it.
    pub now: Timestamp,
}

impl Route {
    /// The route's name, used as the `provider` metric label and in paths.
    pub fn name(self) -> &'static str {
        match self {
            Self::Github => "github",
            Self::Gitlab => "gitlab",
            Self::Gitea => "gitea",
            Self::Bitbucket => "bitbucket",
        }
    }

    /// Read the headers that say what this delivery is.
    pub fn describe(self, headers: &HeaderMap) -> Envelope {
        match self {
            Self::Github => github::describe(headers),
            Self::Gitlab => gitlab::describe(headers),
            Self::Gitea => gitea::describe(headers),
            Self::Bitbucket => bitbucket::describe(headers),
        }
    }

    /// Check the signature or token against the configured secrets.
    pub fn verify(
        self,
        headers: &HeaderMap,
        body: &[u8],
        secrets: &Secrets,
        options: VerifyOptions,
    ) -> Result<(), Error> {
        match self {
            Self::Github => github::verify(headers, body, &secrets.github),
            Self::Gitlab => gitlab::verify(headers, body, secrets, options),
            Self::Gitea => gitea::verify(headers, body, &secrets.gitea),
            Self::Bitbucket => bitbucket::verify(headers, body, &secrets.bitbucket),
        }
    }

    /// Turn a verified body into an action.
    pub fn parse(
        self,
        envelope: &Envelope,
        headers: &HeaderMap,
        body: &[u8],
        delivery_id: &str,
        received_at: Timestamp,
    ) -> Result<Action, Error> {
        let context = Context {
            delivery_id,
            received_at,
        };
        match self {
            Self::Github => github::parse(envelope, json_body(headers, body, true)?, context),
            Self::Gitlab => gitlab::parse(envelope, json_body(headers, body, false)?, context),
            Self::Gitea => {
                gitea::parse(envelope, headers, json_body(headers, body, true)?, context)
            }
            Self::Bitbucket => {
                bitbucket::parse(envelope, json_body(headers, body, false)?, context)
            }
        }
    }
}

/// Per-delivery values every event carries.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The delivery id (the forge's, or one made up).
    pub delivery_id: &'a str,
    /// When the receiver got the request.
    pub received_at: Timestamp,
}

/// The first of `names` present in `headers`, as a string.
pub(crate) fn header<'h>(headers: &'h HeaderMap, names: &[&str]) -> Option<&'h str> {
    names
        .iter()
        .find_map(|name| headers.get(*name))
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

/// Delivery ids end up in logs and AMQP message ids (at most 255 bytes):
/// keep printable ASCII and bound the length.
pub(crate) fn delivery_id(headers: &HeaderMap, names: &[&str]) -> Option<String> {
    let id: String = header(headers, names)?
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(128)
        .collect();
    (!id.is_empty()).then_some(id)
}

/// The JSON document of a body: JSON as is, or the `payload` field of a form
/// (GitHub and Gitea offer `application/x-www-form-urlencoded`).
fn json_body<'b>(
    headers: &HeaderMap,
    body: &'b [u8],
    allow_form: bool,
) -> Result<Cow<'b, [u8]>, Error> {
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    match content_type.as_deref() {
        // Forges always send a type; a hand-made request without one is read as JSON.
        None | Some("application/json") => Ok(Cow::Borrowed(body)),
        Some("application/x-www-form-urlencoded") if allow_form => {
            #[derive(Deserialize)]
            struct Form {
                payload: String,
            }
            let form: Form = serde_urlencoded::from_bytes(body)
                .map_err(|e| Error::malformed(format!("form body without a payload field: {e}")))?;
            Ok(Cow::Owned(form.payload.into_bytes()))
        }
        Some(_) => Err(Error::UnsupportedMediaType),
    }
}

/// Deserialize a JSON body, mapping failures to a 400 that says what was wrong.
pub(crate) fn from_json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, Error> {
    serde_json::from_slice(body).map_err(Error::malformed)
}

/// A commit id from a payload: `None` for the all-zero id (ref created or
/// deleted); anything but 40 or 64 hex digits is malformed.
pub(crate) fn commit_id(value: &str, field: &str) -> Result<Option<String>, Error> {
    let is_hex = value.bytes().all(|b| b.is_ascii_hexdigit());
    if !is_hex || !(value.len() == 40 || value.len() == 64) {
        return Err(Error::malformed(format!("{field} is not a commit id")));
    }
    if value.bytes().all(|b| b == b'0') {
        return Ok(None);
    }
    Ok(Some(value.to_ascii_lowercase()))
}

/// The file lists of one commit, as GitHub, GitLab and Gitea send them.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct CommitFiles {
    added: Option<Vec<String>>,
    removed: Option<Vec<String>>,
    modified: Option<Vec<String>>,
}

/// What the push's commit list says changed.
///
/// The list is incomplete (consumers must assume anything changed) when the
/// ref is new or was force-pushed (the commits are not a diff against the old
/// state), when the forge truncated the list, when there are no commits for a
/// moved ref, or when a commit lacks file lists (Gogs). A deletion changes no
/// file that can be deployed, so its list is empty and complete.
pub(crate) fn changed_paths(
    commits: &[CommitFiles],
    truncated: bool,
    created: bool,
    deleted: bool,
    forced: bool,
) -> ChangedPaths {
    if deleted {
        return ChangedPaths::default();
    }
    let mut missing_lists = false;
    let mut paths = Vec::new();
    for commit in commits {
        match (&commit.added, &commit.removed, &commit.modified) {
            (None, None, None) => missing_lists = true,
            (added, removed, modified) => {
                for list in [added, removed, modified].into_iter().flatten() {
                    paths.extend(list.iter().cloned());
                }
            }
        }
    }
    let mut changed = ChangedPaths::complete(paths);
    changed.incomplete = truncated || created || forced || commits.is_empty() || missing_lists;
    changed.bounded()
}

/// The repository identity: the first of `urls` that parses.
pub(crate) fn repo_id<'u>(
    urls: impl IntoIterator<Item = &'u Option<String>>,
) -> Result<RepoId, Error> {
    urls.into_iter()
        .flatten()
        .find_map(|url| RepoId::parse(url).ok())
        .ok_or_else(|| Error::malformed("repository has no usable URL"))
}

/// The non-empty URLs among `urls`, de-duplicated, in order.
pub(crate) fn clone_urls<'u>(urls: impl IntoIterator<Item = &'u Option<String>>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for url in urls.into_iter().flatten() {
        if !url.is_empty() && !out.contains(url) {
            out.push(url.clone());
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests;
