//! Stage 1: from an Application's source to the desired state — the
//! revision resolved, its files read and rendered (cached per commit), hooks
//! and waves planned, every kind known to the cluster. Nothing here writes
//! to the cluster; a failure stops the sync with a condition and applies
//! nothing of the revision.

use std::sync::Arc;

use pushsync_api::{Application, ApplicationSpec};

use super::{Outcome, SyncContext, Target, Transient, Verdict, transient_or};
use crate::git::GitError;
use crate::plan::{self, Plan};
use crate::render::{Rendered, Renderer};
use crate::status::condition;

/// What the cluster should hold: the revision's manifests, planned.
#[derive(Debug)]
pub struct Desired {
    /// The commit.
    pub revision: String,
    /// Its rendered manifests (shared with the render cache).
    pub rendered: Arc<Rendered>,
    /// Hooks and waves.
    pub plan: Plan,
    /// Digest of the manifests and of the settings that shape an apply.
    pub digest: String,
}

/// Stop with a failed outcome: a condition of `kind` for `reason`.
fn stop<T>(
    target: &Target,
    revision: Option<String>,
    kind: &str,
    reason: &str,
    message: String,
) -> Verdict<T> {
    Verdict::Stop(Box::new(Outcome::failed(
        revision,
        condition(kind, reason, &message),
        message,
        &target.previous,
    )))
}

/// The commit `app`'s `targetRevision` (or `instead`) names now.
pub(super) async fn resolve(
    ctx: &SyncContext,
    app: &Application,
    target: &Target,
    instead: Option<&str>,
) -> Result<Verdict<String>, Transient> {
    let source = &app.spec.source;
    match ctx
        .git
        .resolve(&source.repo_url, instead.unwrap_or(&source.target_revision))
        .await
    {
        Ok(revision) => Ok(Verdict::Go(revision)),
        Err(error) if error.is_transient() => Err(Transient::Git(Box::new(error))),
        Err(error) => {
            let reason = match &error {
                GitError::AuthenticationFailed { .. } => "AuthenticationFailed",
                GitError::NotAllowed { .. } => "RepositoryNotAllowed",
                GitError::TooLarge { .. } => "SourceTooLarge",
                _ => "RevisionNotFound",
            };
            Ok(stop(
                target,
                None,
                "SourceFailed",
                reason,
                error.to_string(),
            ))
        }
    }
}

/// Read, render, plan and check `revision` of `app`'s source.
pub(super) async fn render(
    ctx: &SyncContext,
    app: &Application,
    target: &Target,
    revision: String,
) -> Result<Verdict<Desired>, Transient> {
    render_from(ctx, app, target, revision, None).await
}

/// The same, from the files of a local checkout when `checkout` is given
/// (`revision` then only names it).
pub(super) async fn render_from(
    ctx: &SyncContext,
    app: &Application,
    target: &Target,
    revision: String,
    checkout: Option<&std::path::Path>,
) -> Result<Verdict<Desired>, Transient> {
    let rendered = match rendered(ctx, app, target, &revision, checkout).await? {
        Verdict::Go(rendered) => rendered,
        Verdict::Stop(outcome) => return Ok(Verdict::Stop(outcome)),
    };
    let plan = match plan::plan(rendered.manifests.clone()) {
        Ok(plan) => plan,
        Err(error) => {
            let message = error.to_string();
            return Ok(stop(
                target,
                Some(revision),
                "RenderFailed",
                "InvalidAnnotation",
                message,
            ));
        }
    };
    // Every kind must be known before anything is applied (kinds the
    // revision's own CRDs define excepted).
    let new_kinds = plan.defined_kinds();
    for manifest in plan
        .manifests()
        .filter(|m| !new_kinds.contains_key(&(m.group().to_owned(), m.kind().to_owned())))
        .filter(|m| !super::options::ResourceOptions::of(&m.object).skip_dry_run_on_missing)
    {
        if let Err(error) = ctx.cluster.resolve(manifest).await {
            let message = transient_or(error)?.to_string();
            return Ok(stop(
                target,
                Some(revision),
                "RenderFailed",
                "UnknownKind",
                message,
            ));
        }
    }
    let digest = desired_digest(rendered.digest, &app.spec);
    Ok(Verdict::Go(Desired {
        revision,
        rendered,
        plan,
        digest,
    }))
}

/// The render of `revision` (from the cache when this exact source was
/// rendered before).
async fn rendered(
    ctx: &SyncContext,
    app: &Application,
    target: &Target,
    revision: &str,
    checkout: Option<&std::path::Path>,
) -> Result<Verdict<Arc<Rendered>>, Transient> {
    let source = &app.spec.source;
    let name = app.metadata.name.clone().unwrap_or_default();
    let key = format!(
        "{}\n{revision}\n{}\n{name}\n{}",
        source.repo_url,
        serde_json::to_string(source).unwrap_or_default(),
        target.destination
    );
    // A checkout's files may change between two reads: never cached.
    if checkout.is_none()
        && let Some(rendered) = ctx.renders.get(&key)
    {
        return Ok(Verdict::Go(rendered));
    }
    let read = |path: &str| {
        let (git, url, path) = (ctx.git.clone(), source.repo_url.clone(), path.to_owned());
        let (checkout, limits) = (checkout.map(std::path::Path::to_path_buf), ctx.limits);
        async move {
            match checkout {
                Some(root) => tokio::task::spawn_blocking(move || {
                    crate::git::local_files(&root, &path, limits)
                })
                .await
                .map_err(|_| GitError::TaskFailed)?,
                None => git.files(&url, revision, &path, ctx.limits).await,
            }
        }
    };
    let invalid = |error: GitError| -> Result<Verdict<Arc<Rendered>>, Transient> {
        if error.is_transient() {
            return Err(Transient::Git(Box::new(error)));
        }
        let message = error.to_string();
        Ok(stop(
            target,
            Some(revision.to_owned()),
            "SourceFailed",
            "InvalidSource",
            message,
        ))
    };
    let files = match read(&source.path).await {
        Ok(files) => files,
        Err(error) => return invalid(error),
    };
    let renderer = Renderer::choose(source, &files, &name, &target.destination);
    let files = if renderer.needs_repository() {
        match read("").await {
            Ok(files) => files,
            Err(error) => return invalid(error),
        }
    } else {
        files
    };
    match renderer.render(&ctx.tools, &files, &source.path).await {
        Ok(manifests) => {
            let rendered = Arc::new(Rendered::new(manifests));
            if checkout.is_none() {
                ctx.renders.put(key, rendered.clone());
            }
            Ok(Verdict::Go(rendered))
        }
        Err(error) => Ok(stop(
            target,
            Some(revision.to_owned()),
            "RenderFailed",
            "InvalidManifests",
            error.to_string(),
        )),
    }
}

/// A digest of the desired state: the rendered manifests' digest and the
/// settings that change what an apply or a comparison does.
fn desired_digest(manifests: u64, spec: &ApplicationSpec) -> String {
    let hash = [
        serde_json::to_string(&spec.destination),
        serde_json::to_string(&spec.sync_policy),
        serde_json::to_string(&spec.ignore_differences),
    ]
    .into_iter()
    .fold(manifests, |hash, part| {
        crate::fnv1a(hash, part.unwrap_or_default().as_bytes())
    });
    format!("{hash:016x}")
}
