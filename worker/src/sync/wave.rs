//! One wave of an operation: apply each step (fields ignoreDifferences names
//! left out, hooks recreated per their delete policy, `Replace=true`
//! recreating on immutable fields), then wait until every object is healthy
//! — or a newer commit supersedes the wait — and finish its hooks.

use pushsync_api::{
    HealthStatusCode, IgnoreDifference, OperationPhase, ResourceResult, ResultCode,
};
use serde_json::Value;

use super::admission::{delete_owned, not_ours};
use super::{Newer, SyncContext, Target, Transient, live, reference, transient_or};
use crate::apply::ApplyOptions;
use crate::health::{self, Assessment};
use crate::ignore;
use crate::plan::{DeletePolicy, Step};
use crate::render::Manifest;
use crate::tenancy::{self, Owner};

/// What applying a step came to (transient failures are errors instead).
pub(super) enum Applied {
    /// Applied: its result, and the step as applied (named as the server
    /// named it, for `generateName`).
    Done(Box<(ResourceResult, Step)>),
    /// The API server refused it; why.
    Refused(String),
}

/// How a wave settled.
pub(super) enum Settled {
    /// Every object healthy (or without a health rule): the verdicts of its
    /// resources (not hooks) by identity.
    Healthy(Vec<(String, Assessment)>),
    /// Degraded, or not healthy in time.
    Failed(String),
    /// A newer commit is waiting; this is what was still pending.
    Superseded(String),
}

/// Apply one step into the target's destination.
pub(super) async fn apply_step(
    ctx: &SyncContext,
    step: &Step,
    target: &Target,
    replace: bool,
) -> Result<Applied, Transient> {
    let namespace = target.destination.as_str();
    // Fields an ignoreDifferences rule names are neither set nor reverted.
    let rules: Vec<&IgnoreDifference> = target
        .ignore_differences
        .iter()
        .filter(|r| ignore::matches(r, &step.manifest, namespace))
        .collect();
    let stripped;
    let manifest = if rules.is_empty() {
        &step.manifest
    } else {
        let current = if ignore::needs_live(&rules) {
            live(ctx, &step.manifest, namespace).await?
        } else {
            None
        };
        stripped = Manifest {
            object: ignore::strip(&step.manifest.object, current.as_ref(), &rules),
            source: step.manifest.source.clone(),
        };
        &stripped
    };
    if step.hook && !manifest.name().is_empty() {
        // Hooks are not compared: their ownership is checked here. One that
        // is recreated deletes its previous run first (its own only); any
        // other must not land on an object that is not this Application's.
        if step
            .delete_policies
            .contains(&DeletePolicy::BeforeHookCreation)
        {
            if let Err(refused) = delete_owned(ctx, target, manifest).await? {
                return Ok(Applied::Refused(refused));
            }
            wait_gone(ctx, manifest, namespace).await?;
        } else if let Some(current) = live(ctx, manifest, namespace).await? {
            let owner = tenancy::owner_of(&target.app, &current);
            if owner != Owner::This {
                return Ok(Applied::Refused(not_ours(manifest, &owner)));
            }
        }
    }
    let (_, namespaced) = match ctx.cluster.resolve(manifest).await {
        Ok(found) => found,
        Err(error) => return Ok(Applied::Refused(transient_or(error)?.to_string())),
    };
    // What was applied, named as the server named it (generateName).
    let done = |object: &Value, message: Option<String>| {
        let mut step = step.clone();
        if let Some(name) = object.pointer("/metadata/name").cloned() {
            step.manifest.object["metadata"]["name"] = name;
        }
        let result = ResourceResult {
            resource: reference(&step.manifest, namespace, namespaced),
            status: ResultCode::Synced,
            message,
            hook_phase: step.hook.then_some(OperationPhase::Running),
        };
        Applied::Done(Box::new((result, step)))
    };
    let error = match ctx
        .cluster
        .apply(manifest, namespace, ApplyOptions::default())
        .await
    {
        Ok(object) => return Ok(done(&object, None)),
        Err(error) => transient_or(error)?,
    };
    if !(replace && error.is_immutable_field()) {
        return Ok(Applied::Refused(error.to_string()));
    }
    if let Err(refused) = delete_owned(ctx, target, manifest).await? {
        return Ok(Applied::Refused(format!("{error}; {refused}")));
    }
    wait_gone(ctx, manifest, namespace).await?;
    match ctx
        .cluster
        .apply(manifest, namespace, ApplyOptions::default())
        .await
    {
        Ok(object) => Ok(done(
            &object,
            Some("replaced: an immutable field changed".to_owned()),
        )),
        Err(error) => Ok(Applied::Refused(transient_or(error)?.to_string())),
    }
}

async fn wait_gone(
    ctx: &SyncContext,
    manifest: &Manifest,
    namespace: &str,
) -> Result<(), Transient> {
    gone_within(ctx, manifest, namespace).await.map(|_| ())
}

/// Whether `manifest`'s object is gone within the health timeout.
pub(super) async fn gone_within(
    ctx: &SyncContext,
    manifest: &Manifest,
    namespace: &str,
) -> Result<bool, Transient> {
    let deadline = tokio::time::Instant::now() + ctx.health_timeout;
    loop {
        if live(ctx, manifest, namespace).await?.is_none() {
            return Ok(true);
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(ctx.health_poll).await;
    }
}

/// Wait until every object of the wave is healthy (or has no health rule).
pub(super) async fn wait_healthy(
    ctx: &SyncContext,
    steps: &[Step],
    namespace: &str,
    revision: &str,
    mut newer: Newer,
) -> Result<Settled, Transient> {
    let deadline = tokio::time::Instant::now() + ctx.health_timeout;
    loop {
        let mut pending = None;
        let mut verdicts = Vec::with_capacity(steps.len());
        for step in steps {
            let verdict = health::assess(live(ctx, &step.manifest, namespace).await?.as_ref());
            let what = || {
                format!(
                    "{} {:?}: {}",
                    step.manifest.kind(),
                    step.manifest.name(),
                    verdict.message
                )
            };
            match verdict.health {
                HealthStatusCode::Healthy | HealthStatusCode::Unknown => {}
                HealthStatusCode::Degraded => {
                    return Ok(Settled::Failed(format!(
                        "{} {:?} is degraded: {}",
                        step.manifest.kind(),
                        step.manifest.name(),
                        verdict.message
                    )));
                }
                // Paused on purpose: nothing to wait for.
                HealthStatusCode::Suspended => {}
                HealthStatusCode::Progressing | HealthStatusCode::Missing => {
                    pending = Some(what());
                }
            }
            if !step.hook {
                verdicts.push((step.manifest.identity(), verdict));
            }
        }
        let Some(pending) = pending else {
            return Ok(Settled::Healthy(verdicts));
        };
        if tokio::time::Instant::now() >= deadline {
            return Ok(Settled::Failed(format!(
                "not healthy within {:?}: {pending}",
                ctx.health_timeout
            )));
        }
        if let Some(newer) = newer.superseding(revision) {
            tracing::info!(revision, newer, waiting_for = %pending, "a newer commit supersedes this sync");
            return Ok(Settled::Superseded(pending));
        }
        tokio::select! {
            () = newer.changed() => {}
            () = tokio::time::sleep(ctx.health_poll) => {}
        }
    }
}

/// Delete the wave's hooks whose delete policy names `policy`.
pub(super) async fn finish_hooks(
    ctx: &SyncContext,
    steps: &[Step],
    target: &Target,
    policy: DeletePolicy,
) -> Result<(), Transient> {
    for step in steps
        .iter()
        .filter(|s| s.hook && s.delete_policies.contains(&policy))
    {
        if let Err(refused) = delete_owned(ctx, target, &step.manifest).await? {
            tracing::warn!(application = %target.app, reason = %refused, "a finished hook was left in place");
        }
    }
    Ok(())
}
