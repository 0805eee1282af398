//! Deleting an Application that carries the resources finalizer: its
//! PreDelete hooks, then every object its last sync applied (only those
//! carrying its tracking mark, as the destination's ServiceAccount), then —
//! foreground — a wait until they are gone, its PostDelete hooks, and the
//! finalizer removed so the Application goes. Without the finalizer a
//! deleted Application leaves its objects in place.
//!
//! Hooks come from the revision last synced (`status.sync.revision`, else
//! the one `targetRevision` names now); when that cannot be fetched or
//! rendered, the objects are still deleted and the hooks are skipped (a
//! repository that is gone must not keep an Application alive forever).

use kube::api::{Api, Patch, PatchParams};
use pushsync_api::{Application, RESOURCES_FINALIZER, RESOURCES_FINALIZER_BACKGROUND};
use serde_json::json;

use super::{SyncContext, Target, Transient, Verdict, admission, manifest_of, operation, source};
use crate::plan::Phase;

/// How deleting the Application went.
#[derive(Debug, PartialEq, Eq)]
pub enum Finalized {
    /// It does not carry a resources finalizer: nothing of ours to do.
    NotOurs,
    /// Objects deleted, hooks run, finalizer removed; `deleted` objects.
    Done {
        /// How many objects were deleted.
        deleted: usize,
    },
    /// Not finished (an object still terminating, a hook failed, an object
    /// that is not this Application's, the project refusing): why. The
    /// finalizer stays; the job is retried.
    Pending(String),
}

/// Whether `app` is being deleted.
pub fn deleting(app: &Application) -> bool {
    app.metadata.deletion_timestamp.is_some()
}

/// Finish deleting `app`.
pub async fn finalize(ctx: &SyncContext, app: &Application) -> Result<Finalized, Transient> {
    let finalizers = app.metadata.finalizers.as_deref().unwrap_or_default();
    let foreground = finalizers.iter().any(|f| f == RESOURCES_FINALIZER);
    if !foreground
        && !finalizers
            .iter()
            .any(|f| f == RESOURCES_FINALIZER_BACKGROUND)
    {
        return Ok(Finalized::NotOurs);
    }
    let own = ctx.cluster.client();
    let mut target = Target::of(app);
    let ctx = match admission::admit(ctx, app, &mut target).await? {
        Verdict::Go(admitted) => admitted,
        Verdict::Stop(outcome) => return Ok(Finalized::Pending(outcome.message)),
    };
    let ctx = &ctx;
    let desired = delete_hooks(ctx, app, &target).await?;

    if let Some(desired) = &desired
        && let Some(why) = operation::run_phases(ctx, &target, desired, &[Phase::PreDelete]).await?
    {
        return Ok(Finalized::Pending(format!(
            "a PreDelete hook did not succeed: {why}"
        )));
    }
    let mut deleted = 0;
    let mut refused = Vec::new();
    let mut kept = Vec::new();
    for resource in &target.previous {
        let manifest = manifest_of(resource);
        match super::read(ctx, &manifest, &target.destination).await? {
            super::Read::Absent => continue,
            // Never deleted blind, never counted as gone.
            super::Read::Forbidden(why) => {
                refused.push(why);
                continue;
            }
            super::Read::Found(live) => {
                // Another Application's (shared, or re-marked): not ours to delete.
                let owner = crate::tenancy::owner_of(&target.app, &live);
                if owner != crate::tenancy::Owner::This {
                    tracing::info!(application = %target.app, object = %format!("{} {}", resource.kind, resource.name), owner = ?owner, "left in place: it is not this Application's");
                    kept.push(super::key(resource));
                    continue;
                }
                // `Delete=false` (Argo CD's sync option): it outlives the Application.
                if super::options::ResourceOptions::of(&live).no_delete {
                    kept.push(super::key(resource));
                    continue;
                }
                // Checked above: this object, by uid (no second read).
                let uid = live
                    .pointer("/metadata/uid")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or_default();
                match ctx
                    .cluster
                    .delete_exact(&manifest, &target.destination, uid)
                    .await
                {
                    Ok(()) => deleted += 1,
                    Err(error) => refused.push(super::transient_or(error)?.to_string()),
                }
            }
        }
    }
    if !refused.is_empty() {
        return Ok(Finalized::Pending(refused.join("; ")));
    }
    if foreground {
        for resource in target
            .previous
            .iter()
            .filter(|r| !kept.contains(&super::key(r)))
        {
            let manifest = manifest_of(resource);
            if !super::wave::gone_within(ctx, &manifest, &target.destination).await? {
                return Ok(Finalized::Pending(format!(
                    "{} {:?} is still terminating",
                    resource.kind, resource.name
                )));
            }
        }
    }
    if let Some(desired) = &desired
        && let Some(why) =
            operation::run_phases(ctx, &target, desired, &[Phase::PostDelete]).await?
    {
        return Ok(Finalized::Pending(format!(
            "a PostDelete hook did not succeed: {why}"
        )));
    }
    remove_finalizers(&own, app).await?;
    Ok(Finalized::Done { deleted })
}

/// The plan holding the delete hooks, when the source can be read.
async fn delete_hooks(
    ctx: &SyncContext,
    app: &Application,
    target: &Target,
) -> Result<Option<source::Desired>, Transient> {
    // The revision last applied (a comparison alone may have moved
    // `status.sync` to one never deployed).
    let synced = app.status.as_ref().and_then(|s| {
        s.history
            .last()
            .map(|h| h.revision.clone())
            .or_else(|| s.sync.as_ref().and_then(|sync| sync.revision.clone()))
    });
    let revision = match synced {
        Some(revision) => revision,
        None => match source::resolve(ctx, app, target, None).await {
            Ok(Verdict::Go(revision)) => revision,
            Ok(Verdict::Stop(outcome)) => {
                skipped(app, &outcome.message);
                return Ok(None);
            }
            Err(error) => return Err(error),
        },
    };
    // The synced commit may have left the cache (or never been in this
    // worker's): fetch it like any commit id.
    if let Err(error) = ctx.git.resolve(&app.spec.source.repo_url, &revision).await {
        if error.is_transient() {
            return Err(Transient::Git(Box::new(error)));
        }
        skipped(app, &error.public_message());
        return Ok(None);
    }
    let mut desired = match source::render(ctx, app, target, revision).await? {
        Verdict::Go(desired) => desired,
        Verdict::Stop(outcome) => {
            skipped(app, &outcome.message);
            return Ok(None);
        }
    };
    // Hooks are held to the Project and marked as this Application's, as
    // in a sync (a hook may not do at deletion what a sync may not).
    if let Verdict::Stop(outcome) = admission::hold(ctx, target, &mut desired).await? {
        skipped(app, &outcome.message);
        return Ok(None);
    }
    Ok(Some(desired))
}

fn skipped(app: &Application, why: &str) {
    tracing::warn!(
        application = %crate::tenancy::app_key(app),
        reason = why,
        "the source cannot be read: deleting the Application's objects without running its delete hooks"
    );
}

/// Drop our finalizers from `app`, with the worker's own client, only from
/// the version read (the merge patch carries its resourceVersion, so a
/// concurrent change is a conflict, retried, never a lost update).
async fn remove_finalizers(client: &kube::Client, app: &Application) -> Result<(), Transient> {
    remove(client, app, true).await
}

async fn remove(client: &kube::Client, app: &Application, retry: bool) -> Result<(), Transient> {
    let (Some(name), Some(namespace)) = (
        app.metadata.name.as_deref(),
        app.metadata.namespace.as_deref(),
    ) else {
        return Ok(());
    };
    let rest: Vec<&String> = app
        .metadata
        .finalizers
        .iter()
        .flatten()
        .filter(|f| *f != RESOURCES_FINALIZER && *f != RESOURCES_FINALIZER_BACKGROUND)
        .collect();
    let patch = json!({"metadata": {
        "finalizers": rest,
        "resourceVersion": app.metadata.resource_version,
    }});
    let api: Api<Application> = Api::namespaced(client.clone(), namespace);
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        // Already gone: someone else finished it.
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        // Changed meanwhile (another finalizer, an annotation removed): once
        // more against what is there now.
        Err(kube::Error::Api(status)) if status.code == 409 && retry => {
            match api.get_opt(name).await {
                Ok(Some(current)) => Box::pin(remove(client, &current, false)).await,
                Ok(None) => Ok(()),
                Err(source) => Err(Transient::Api(Box::new(
                    crate::apply::ApplyError::Transient {
                        what: format!("reading {namespace}/{name} to remove its finalizer"),
                        source,
                    },
                ))),
            }
        }
        Err(source) => Err(Transient::Api(Box::new(
            crate::apply::ApplyError::Transient {
                what: format!("removing the finalizer of {namespace}/{name}"),
                source,
            },
        ))),
    }
}
