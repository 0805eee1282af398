//! GitLab: `X-Gitlab-Token` and, when a signing token is set, the Standard Webhooks signature.

use std::borrow::Cow;

use actix_web::http::header::HeaderMap;
use base64::Engine;
use pushsync_proto::{GitRef, Provider, PushEvent, Repository};
use serde::Deserialize;

use super::{
    Action, CommitFiles, Context, Envelope, VerifyOptions, changed_paths, clone_urls, commit_id,
    from_json, header, repo_id,
};
use crate::Error;
use crate::secrets::Secrets;

const EVENT: &str = "x-gitlab-event";
const TOKEN: &str = "x-gitlab-token";
/// The delivery id, for dedup: the `webhook-id` first, because in signed
/// mode it is covered by the signature — a replay within the timestamp
/// window cannot change it, while `Idempotency-Key` (GitLab 17.4+, equal to
/// `webhook-id` when GitLab sends both) is unsigned and could be changed to
/// slip past dedup. Older GitLab only sends the event UUID.
const DELIVERY: [&str; 3] = ["webhook-id", "idempotency-key", "x-gitlab-event-uuid"];
const SIGNATURE_ID: &str = "webhook-id";
const SIGNATURE_TIMESTAMP: &str = "webhook-timestamp";
const SIGNATURE: &str = "webhook-signature";

pub(crate) fn describe(headers: &HeaderMap) -> Envelope {
    let event = header(headers, &[EVENT]).map(str::to_owned);
    let event_label = match event.as_deref() {
        Some("Push Hook") => "push",
        Some("Tag Push Hook") => "tag_push",
        Some("System Hook") => "system_hook",
        Some(_) => "other",
        None => "none",
    };
    Envelope {
        event_label,
        event,
        delivery_id: super::delivery_id(headers, &DELIVERY),
    }
}

/// Every mechanism that is configured must pass: the plain token when tokens
/// are configured, the signature when signing tokens are.
pub(crate) fn verify(
    headers: &HeaderMap,
    body: &[u8],
    secrets: &Secrets,
    options: VerifyOptions,
) -> Result<(), Error> {
    let (tokens, signing) = (&secrets.gitlab_token, &secrets.gitlab_signing);
    if tokens.is_empty() && signing.is_empty() {
        return Err(Error::ProviderNotConfigured);
    }
    if !tokens.is_empty() {
        let token = header(headers, &[TOKEN]).ok_or(Error::MissingSignature)?;
        if !tokens.matches_token(token.as_bytes()) {
            return Err(Error::InvalidSignature);
        }
    }
    if !signing.is_empty() {
        let id = header(headers, &[SIGNATURE_ID]).ok_or(Error::MissingSignature)?;
        let timestamp = header(headers, &[SIGNATURE_TIMESTAMP]).ok_or(Error::MissingSignature)?;
        let signatures = header(headers, &[SIGNATURE]).ok_or(Error::MissingSignature)?;
        let seconds: i64 = timestamp.parse().map_err(|_| Error::InvalidSignature)?;
        let skew = options.now.as_second().abs_diff(seconds);
        if skew > options.timestamp_tolerance.as_secs() {
            return Err(Error::StaleTimestamp);
        }
        let parts: [&[u8]; 5] = [id.as_bytes(), b".", timestamp.as_bytes(), b".", body];
        let valid = signatures
            .split_ascii_whitespace()
            .filter_map(|entry| entry.strip_prefix("v1,"))
            .filter_map(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
            .any(|digest| signing.verify_hmac_sha256(&parts, &digest));
        if !valid {
            return Err(Error::InvalidSignature);
        }
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
struct Push {
    #[serde(rename = "ref")]
    git_ref: String,
    before: String,
    after: String,
    #[serde(default)]
    commits: Vec<CommitFiles>,
    total_commits_count: Option<u64>,
    project: Option<Project>,
    repository: Option<Repo>,
    user_username: Option<String>,
    user_name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Project {
    path_with_namespace: Option<String>,
    web_url: Option<String>,
    git_http_url: Option<String>,
    git_ssh_url: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Repo {
    homepage: Option<String>,
    git_http_url: Option<String>,
    git_ssh_url: Option<String>,
    url: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Kind {
    object_kind: Option<String>,
    event_name: Option<String>,
}

pub(crate) fn parse(
    envelope: &Envelope,
    body: Cow<'_, [u8]>,
    context: Context<'_>,
) -> Result<Action, Error> {
    match envelope.event.as_deref() {
        None => Err(Error::MissingEvent {
            header: "X-Gitlab-Event",
        }),
        Some("Push Hook" | "Tag Push Hook") => {
            let push: Push = from_json(&body)?;
            Ok(Action::Publish(vec![normalise(push, context)?]))
        }
        // System hooks carry many event kinds; only pushes matter.
        Some("System Hook") => {
            let kind: Kind = from_json(&body)?;
            let name = kind.event_name.or(kind.object_kind);
            if matches!(name.as_deref(), Some("push" | "tag_push")) {
                let push: Push = from_json(&body)?;
                Ok(Action::Publish(vec![normalise(push, context)?]))
            } else {
                Ok(Action::Ignore)
            }
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
    let created = before.is_none();
    let deleted = after.is_none();
    // GitLab lists at most 20 commits and says how many there were.
    let truncated = push
        .total_commits_count
        .is_some_and(|total| total > push.commits.len() as u64);
    let (project, repo) = (push.project.as_ref(), push.repository.as_ref());
    let web_url = project
        .and_then(|p| p.web_url.clone())
        .or_else(|| repo.and_then(|r| r.homepage.clone()));
    let http = project
        .and_then(|p| p.git_http_url.clone())
        .or_else(|| repo.and_then(|r| r.git_http_url.clone()));
    let ssh = project
        .and_then(|p| p.git_ssh_url.clone())
        .or_else(|| repo.and_then(|r| r.git_ssh_url.clone()))
        .or_else(|| repo.and_then(|r| r.url.clone()));
    let id = repo_id([&web_url, &http, &ssh])?;
    let full_name = project
        .and_then(|p| p.path_with_namespace.clone())
        .unwrap_or_else(|| {
            id.as_str()
                .split_once('/')
                .map_or("", |(_, p)| p)
                .to_owned()
        });
    Ok(PushEvent {
        provider: Provider::Gitlab,
        delivery_id: context.delivery_id.to_owned(),
        repository: Repository {
            id,
            full_name,
            clone_urls: clone_urls([&http, &ssh]),
            web_url,
        },
        git_ref: GitRef::from_full(&push.git_ref),
        changed_paths: changed_paths(&push.commits, truncated, created, deleted, false),
        before,
        after,
        created,
        deleted,
        forced: false,
        pusher: push.user_username.or(push.user_name),
        received_at: context.received_at,
    })
}
