//! Bitbucket Cloud (`repo:push`) and Server/Data Center (`repo:refs_changed`): `X-Hub-Signature: sha256=<hex>`.

use std::borrow::Cow;

use actix_web::http::header::HeaderMap;
use pushsync_proto::{ChangedPaths, GitRef, Provider, PushEvent, RefKind, Repository};
use serde::Deserialize;

use super::{Action, Context, Envelope, clone_urls, commit_id, from_json, header, repo_id};
use crate::Error;
use crate::secrets::Keys;

const EVENT: &str = "x-event-key";
/// Cloud sends `X-Request-UUID`, Server `X-Request-Id`.
const DELIVERY: [&str; 2] = ["x-request-uuid", "x-request-id"];
const SIGNATURE: &str = "x-hub-signature";

pub(crate) fn describe(headers: &HeaderMap) -> Envelope {
    let event = header(headers, &[EVENT]).map(str::to_owned);
    let event_label = match event.as_deref() {
        Some("repo:push" | "repo:refs_changed") => "push",
        Some("diagnostics:ping") => "ping",
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
    let signature = header(headers, &[SIGNATURE]).ok_or(Error::MissingSignature)?;
    super::github::verify_prefixed_hex(signature, body, keys)
}

pub(crate) fn parse(
    envelope: &Envelope,
    body: Cow<'_, [u8]>,
    context: Context<'_>,
) -> Result<Action, Error> {
    let events = match envelope.event.as_deref() {
        None => {
            return Err(Error::MissingEvent {
                header: "X-Event-Key",
            });
        }
        Some("diagnostics:ping") => return Ok(Action::Ping),
        Some("repo:push") => cloud(from_json(&body)?, context)?,
        Some("repo:refs_changed") => server(from_json(&body)?, context)?,
        Some(_) => return Ok(Action::Ignore),
    };
    if events.is_empty() {
        return Ok(Action::Ignore);
    }
    Ok(Action::Publish(events))
}

// Bitbucket payloads list commits but never the files they touched, so the
// changed paths are always unknown.

#[derive(Debug, Deserialize)]
struct CloudPush {
    repository: CloudRepo,
    push: CloudChanges,
    actor: Option<CloudActor>,
}

#[derive(Debug, Deserialize)]
struct CloudRepo {
    full_name: String,
    links: Option<CloudLinks>,
}

#[derive(Debug, Deserialize)]
struct CloudLinks {
    html: Option<Href>,
}

#[derive(Debug, Deserialize)]
struct Href {
    href: String,
}

#[derive(Debug, Deserialize)]
struct CloudChanges {
    changes: Vec<CloudChange>,
}

#[derive(Debug, Deserialize)]
struct CloudChange {
    new: Option<CloudRef>,
    old: Option<CloudRef>,
    #[serde(default)]
    forced: bool,
}

#[derive(Debug, Deserialize)]
struct CloudRef {
    #[serde(rename = "type")]
    kind: String,
    name: String,
    target: CloudTarget,
}

#[derive(Debug, Deserialize)]
struct CloudTarget {
    hash: String,
}

#[derive(Debug, Deserialize)]
struct CloudActor {
    nickname: Option<String>,
    display_name: Option<String>,
}

fn cloud(push: CloudPush, context: Context<'_>) -> Result<Vec<PushEvent>, Error> {
    let full_name = push.repository.full_name.trim_matches('/').to_owned();
    if full_name.is_empty() {
        return Err(Error::malformed("repository.full_name is empty"));
    }
    // Bitbucket Cloud is one host; its clone URLs follow from the full name.
    let https = Some(format!("https://bitbucket.org/{full_name}.git"));
    let ssh = Some(format!("git@bitbucket.org:{full_name}.git"));
    let repository = Repository {
        id: repo_id([&https])?,
        full_name,
        clone_urls: clone_urls([&https, &ssh]),
        web_url: push.repository.links.and_then(|l| l.html).map(|h| h.href),
    };
    let pusher = push.actor.and_then(|a| a.nickname.or(a.display_name));
    push.push
        .changes
        .into_iter()
        .map(|change| {
            let reference = change
                .new
                .as_ref()
                .or(change.old.as_ref())
                .ok_or_else(|| Error::malformed("a change has neither new nor old"))?;
            let git_ref = match reference.kind.as_str() {
                "branch" | "named_branch" => GitRef::branch(&reference.name),
                "tag" | "annotated_tag" => GitRef::tag(&reference.name),
                _ => GitRef {
                    kind: RefKind::Other,
                    name: reference.name.clone(),
                    full: reference.name.clone(),
                },
            };
            let before = change
                .old
                .as_ref()
                .map(|r| commit_id(&r.target.hash, "old.target.hash"))
                .transpose()?
                .flatten();
            let after = change
                .new
                .as_ref()
                .map(|r| commit_id(&r.target.hash, "new.target.hash"))
                .transpose()?
                .flatten();
            Ok(event(
                Provider::BitbucketCloud,
                &repository,
                git_ref,
                before,
                after,
                change.forced,
                pusher.clone(),
                context,
            ))
        })
        .collect()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ServerPush {
    repository: ServerRepo,
    changes: Vec<ServerChange>,
    actor: Option<ServerActor>,
}

#[derive(Debug, Deserialize)]
struct ServerRepo {
    slug: String,
    project: ServerProject,
    links: Option<ServerLinks>,
}

#[derive(Debug, Deserialize)]
struct ServerProject {
    key: String,
}

#[derive(Debug, Deserialize)]
struct ServerLinks {
    #[serde(default)]
    clone: Vec<ServerClone>,
    #[serde(default, rename = "self")]
    self_links: Vec<Href>,
}

#[derive(Debug, Deserialize)]
struct ServerClone {
    href: String,
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ServerChange {
    ref_id: String,
    from_hash: String,
    to_hash: String,
}

#[derive(Debug, Deserialize)]
struct ServerActor {
    name: Option<String>,
}

fn server(push: ServerPush, context: Context<'_>) -> Result<Vec<PushEvent>, Error> {
    let links = push.repository.links.unwrap_or(ServerLinks {
        clone: Vec::new(),
        self_links: Vec::new(),
    });
    let by_name = |name: &str| {
        links
            .clone
            .iter()
            .find(|c| c.name.as_deref() == Some(name))
            .map(|c| c.href.clone())
    };
    let (http, ssh) = (by_name("http"), by_name("ssh"));
    let all: Vec<Option<String>> = links.clone.iter().map(|c| Some(c.href.clone())).collect();
    let repository = Repository {
        id: repo_id([&http, &ssh].into_iter().chain(all.iter()))?,
        full_name: format!("{}/{}", push.repository.project.key, push.repository.slug),
        clone_urls: clone_urls(all.iter()),
        web_url: links.self_links.first().map(|h| h.href.clone()),
    };
    let pusher = push.actor.and_then(|a| a.name);
    push.changes
        .into_iter()
        .map(|change| {
            if change.ref_id.is_empty() {
                return Err(Error::malformed("refId is empty"));
            }
            let before = commit_id(&change.from_hash, "fromHash")?;
            let after = commit_id(&change.to_hash, "toHash")?;
            Ok(event(
                Provider::BitbucketServer,
                &repository,
                GitRef::from_full(&change.ref_id),
                before,
                after,
                false,
                pusher.clone(),
                context,
            ))
        })
        .collect()
}

#[allow(
    clippy::too_many_arguments,
    reason = "a plain constructor shared by both Bitbucket flavours"
)]
fn event(
    provider: Provider,
    repository: &Repository,
    git_ref: GitRef,
    before: Option<String>,
    after: Option<String>,
    forced: bool,
    pusher: Option<String>,
    context: Context<'_>,
) -> PushEvent {
    let deleted = after.is_none();
    PushEvent {
        provider,
        delivery_id: context.delivery_id.to_owned(),
        repository: repository.clone(),
        git_ref,
        created: before.is_none(),
        deleted,
        forced,
        changed_paths: if deleted {
            ChangedPaths::default()
        } else {
            ChangedPaths::unknown()
        },
        before,
        after,
        pusher,
        received_at: context.received_at,
    }
}
