//! GitHub (github.com and Enterprise Server): `X-Hub-Signature-256` HMAC-SHA256.

use std::borrow::Cow;

use actix_web::http::header::HeaderMap;
use pushsync_proto::{GitRef, Provider, PushEvent, Repository};
use serde::Deserialize;

use super::{
    Action, CommitFiles, Context, Envelope, changed_paths, clone_urls, commit_id, from_json,
    header, repo_id,
};
use crate::Error;
use crate::secrets::Keys;

const EVENT: &str = "x-github-event";
const DELIVERY: &str = "x-github-delivery";
const SIGNATURE: &str = "x-hub-signature-256";

/// GitHub lists at most this many commits in a push payload.
const MAX_COMMITS: usize = 2048;

pub(crate) fn describe(headers: &HeaderMap) -> Envelope {
    let event = header(headers, &[EVENT]).map(str::to_owned);
    let event_label = match event.as_deref() {
        Some("push") => "push",
        Some("ping") => "ping",
        Some(_) => "other",
        None => "none",
    };
    Envelope {
        event_label,
        event,
        delivery_id: super::delivery_id(headers, &[DELIVERY]),
    }
}

pub(crate) fn verify(headers: &HeaderMap, body: &[u8], keys: &Keys) -> Result<(), Error> {
    if keys.is_empty() {
        return Err(Error::ProviderNotConfigured);
    }
    let signature = header(headers, &[SIGNATURE]).ok_or(Error::MissingSignature)?;
    verify_prefixed_hex(signature, body, keys)
}

/// Check a `sha256=<hex>` signature (GitHub, Bitbucket).
pub(crate) fn verify_prefixed_hex(signature: &str, body: &[u8], keys: &Keys) -> Result<(), Error> {
    let hex_digest = signature
        .strip_prefix("sha256=")
        .ok_or(Error::InvalidSignature)?;
    let digest = hex::decode(hex_digest).map_err(|_| Error::InvalidSignature)?;
    if keys.verify_hmac_sha256(&[body], &digest) {
        Ok(())
    } else {
        Err(Error::InvalidSignature)
    }
}

#[derive(Debug, Deserialize)]
struct Push {
    #[serde(rename = "ref")]
    git_ref: String,
    before: String,
    after: String,
    #[serde(default)]
    created: bool,
    #[serde(default)]
    deleted: bool,
    #[serde(default)]
    forced: bool,
    #[serde(default)]
    commits: Vec<CommitFiles>,
    repository: Repo,
    pusher: Option<Pusher>,
}

#[derive(Debug, Deserialize)]
struct Repo {
    full_name: String,
    html_url: Option<String>,
    clone_url: Option<String>,
    ssh_url: Option<String>,
    git_url: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Pusher {
    name: Option<String>,
}

pub(crate) fn parse(
    envelope: &Envelope,
    body: Cow<'_, [u8]>,
    context: Context<'_>,
) -> Result<Action, Error> {
    match envelope.event.as_deref() {
        None => Err(Error::MissingEvent {
            header: "X-GitHub-Event",
        }),
        Some("ping") => Ok(Action::Ping),
        Some("push") => {
            let push: Push = from_json(&body)?;
            Ok(Action::Publish(vec![normalise(push, context)?]))
        }
        Some(_) => Ok(Action::Ignore),
    }
}

fn normalise(push: Push, context: Context<'_>) -> Result<PushEvent, Error> {
    if push.git_ref.is_empty() {
        return Err(Error::malformed("ref is empty"));
    }
    let before = commit_id(&push.before, "before")?;
    let after = commit_id(&push.after, "after")?;
    let created = push.created || before.is_none();
    let deleted = push.deleted || after.is_none();
    let repo = &push.repository;
    let urls = [&repo.clone_url, &repo.ssh_url, &repo.git_url];
    Ok(PushEvent {
        provider: Provider::Github,
        delivery_id: context.delivery_id.to_owned(),
        repository: Repository {
            id: repo_id([&repo.html_url, &repo.clone_url, &repo.ssh_url])?,
            full_name: repo.full_name.clone(),
            clone_urls: clone_urls(urls),
            web_url: repo.html_url.clone(),
        },
        git_ref: GitRef::from_full(&push.git_ref),
        changed_paths: changed_paths(
            &push.commits,
            push.commits.len() >= MAX_COMMITS,
            created,
            deleted,
            push.forced,
        ),
        before,
        after,
        created,
        deleted,
        forced: push.forced,
        pusher: push.pusher.and_then(|p| p.name),
        received_at: context.received_at,
    })
}
