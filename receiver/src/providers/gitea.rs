//! Gitea, Forgejo and Gogs: bare-hex HMAC-SHA256 in `X-Gitea-Signature` / `X-Forgejo-Signature` / `X-Gogs-Signature`.

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

// Forgejo also sends the Gitea headers, and Gitea also sends the Gogs ones,
// so the most specific name is looked at first.
const EVENT: [&str; 3] = ["x-forgejo-event", "x-gitea-event", "x-gogs-event"];
const DELIVERY: [&str; 3] = ["x-forgejo-delivery", "x-gitea-delivery", "x-gogs-delivery"];
const SIGNATURE: [&str; 3] = [
    "x-forgejo-signature",
    "x-gitea-signature",
    "x-gogs-signature",
];

pub(crate) fn describe(headers: &HeaderMap) -> Envelope {
    let event = header(headers, &EVENT).map(str::to_owned);
    let event_label = match event.as_deref() {
        Some("push") => "push",
        Some(_) => "other",
        None => "none",
    };
    Envelope {
        event_label,
        event,
        delivery_id: super::delivery_id(headers, &DELIVERY),
    }
}

pub(crate) fn verify(headers: &HeaderMap, body: &[u8], keys: &Keys) -> Result<(), Error> {
    if keys.is_empty() {
        return Err(Error::ProviderNotConfigured);
    }
    let signature = header(headers, &SIGNATURE).ok_or(Error::MissingSignature)?;
    let digest = hex::decode(signature).map_err(|_| Error::InvalidSignature)?;
    if keys.verify_hmac_sha256(&[body], &digest) {
        Ok(())
    } else {
        Err(Error::InvalidSignature)
    }
}

fn provider(headers: &HeaderMap) -> Provider {
    if headers.contains_key(EVENT[0]) {
        Provider::Forgejo
    } else if headers.contains_key(EVENT[1]) {
        Provider::Gitea
    } else {
        Provider::Gogs
    }
}

#[derive(Debug, Deserialize)]
struct Push {
    #[serde(rename = "ref")]
    git_ref: String,
    before: String,
    after: String,
    #[serde(default)]
    commits: Vec<CommitFiles>,
    /// Newer Gitea versions say how many commits the push had when the list
    /// is shortened.
    total_commits: Option<u64>,
    repository: Repo,
    pusher: Option<User>,
}

#[derive(Debug, Deserialize)]
struct Repo {
    full_name: String,
    html_url: Option<String>,
    clone_url: Option<String>,
    ssh_url: Option<String>,
}

#[derive(Debug, Deserialize)]
struct User {
    login: Option<String>,
    username: Option<String>,
}

pub(crate) fn parse(
    envelope: &Envelope,
    headers: &HeaderMap,
    body: Cow<'_, [u8]>,
    context: Context<'_>,
) -> Result<Action, Error> {
    match envelope.event.as_deref() {
        None => Err(Error::MissingEvent {
            header: "X-Gitea-Event",
        }),
        Some("push") => {
            let push: Push = from_json(&body)?;
            Ok(Action::Publish(vec![normalise(
                provider(headers),
                push,
                context,
            )?]))
        }
        Some(_) => Ok(Action::Ignore),
    }
}

fn normalise(provider: Provider, push: Push, context: Context<'_>) -> Result<PushEvent, Error> {
    if push.git_ref.is_empty() {
        return Err(Error::malformed("ref is empty"));
    }
    let before = commit_id(&push.before, "before")?;
    let after = commit_id(&push.after, "after")?;
    let created = before.is_none();
    let deleted = after.is_none();
    let truncated = push
        .total_commits
        .is_some_and(|total| total > push.commits.len() as u64);
    let repo = &push.repository;
    Ok(PushEvent {
        provider,
        delivery_id: context.delivery_id.to_owned(),
        repository: Repository {
            id: repo_id([&repo.html_url, &repo.clone_url, &repo.ssh_url])?,
            full_name: repo.full_name.clone(),
            clone_urls: clone_urls([&repo.clone_url, &repo.ssh_url]),
            web_url: repo.html_url.clone(),
        },
        git_ref: GitRef::from_full(&push.git_ref),
        changed_paths: changed_paths(&push.commits, truncated, created, deleted, false),
        before,
        after,
        created,
        deleted,
        forced: false,
        pusher: push.pusher.and_then(|p| p.login.or(p.username)),
        received_at: context.received_at,
    })
}
