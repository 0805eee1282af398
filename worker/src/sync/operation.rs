//! Stage 4: the sync operation — the destination namespace when asked for,
//! PreSync, Sync and PostSync waves in order (each applied, then awaited
//! healthy, see [`super::wave`]), SyncFail hooks when one fails, and prune
//! by inventory.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use pushsync_api::{
    HealthStatusCode, OperationPhase, ResourceRef, ResourceResult, ResourceStatus,
    ResourceSyncCode, ResultCode, SyncStatusCode,
};
use serde_json::json;

use super::compare::Compared;
use super::decide::Operation;
use super::outcome::leftover_status;
use super::source::Desired;
use super::wave::{self, Applied, Settled};
use super::{Outcome, RefKey, SyncContext, Target, Timings, Transient, key, manifest_of};
use crate::apply::ApplyOptions;
use crate::health::{self, Assessment};
use crate::plan::{DeletePolicy, Phase};
use crate::render::Manifest;
use crate::status::condition;

/// Why the waves stopped before the end.
enum Interrupted {
    /// Something could not be applied, or did not become healthy.
    Failed(String),
    /// A newer commit is waiting; this is what was still pending.
    Superseded(String),
}

/// What the waves did so far.
#[derive(Default)]
struct Progress {
    /// Per-resource results, in order.
    results: Vec<ResourceResult>,
    /// Health of the resources, as each wave settled (no second round of reads).
    verdicts: HashMap<String, Assessment>,
    /// Time spent waiting for health.
    waited: Duration,
}

/// Run the operation; `timings` gets its apply and health time.
pub(super) async fn run(
    ctx: &SyncContext,
    target: &Target,
    desired: &Desired,
    operation: Operation,
    newer: &super::Newer,
    timings: &mut Timings,
) -> Result<Outcome, Transient> {
    let clock = Instant::now();
    if target.create_namespace
        && let Some(outcome) = create_namespace(ctx, target, desired).await?
    {
        return Ok(outcome);
    }
    let mut progress = Progress::default();
    let interrupted = waves(ctx, target, desired, newer, &mut progress).await?;
    let outcome = match interrupted {
        Some(interrupted) => {
            stopped(ctx, target, desired, operation, interrupted, &mut progress).await?
        }
        None => prune(ctx, target, desired, operation, &mut progress).await?,
    };
    timings.health = progress.waited;
    timings.apply = clock.elapsed().saturating_sub(progress.waited);
    Ok(outcome)
}

/// Apply the destination namespace; the failed outcome when it cannot be.
async fn create_namespace(
    ctx: &SyncContext,
    target: &Target,
    desired: &Desired,
) -> Result<Option<Outcome>, Transient> {
    let destination = &target.destination;
    let namespace = Manifest {
        object: json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": destination}}),
        source: "CreateNamespace".into(),
    };
    match ctx
        .cluster
        .apply(&namespace, destination, ApplyOptions::default())
        .await
    {
        Ok(_) => Ok(None),
        Err(error) => {
            let message = super::transient_or(error)?.to_string();
            Ok(Some(Outcome::failed(
                Some(desired.revision.clone()),
                condition("SyncFailed", "NamespaceFailed", &message),
                message,
                &target.previous,
            )))
        }
    }
}

/// The outcome of an operation whose waves stopped early (SyncFail hooks
/// run first when it failed). What it applied joins the inventory, so a
/// later sync can prune it.
async fn stopped(
    ctx: &SyncContext,
    target: &Target,
    desired: &Desired,
    operation: Operation,
    interrupted: Interrupted,
    progress: &mut Progress,
) -> Result<Outcome, Transient> {
    let revision = Some(desired.revision.clone());
    let outcome = match interrupted {
        Interrupted::Superseded(waiting_for) => Outcome {
            revision,
            phase: OperationPhase::Superseded,
            sync_status: SyncStatusCode::OutOfSync,
            message: format!("a newer commit is waiting; stopped waiting for {waiting_for}"),
            health: Assessment {
                health: HealthStatusCode::Progressing,
                message: waiting_for,
            },
            ..Outcome::default()
        },
        Interrupted::Failed(message) => {
            for wave in desired.plan.waves(Phase::SyncFail) {
                for step in &wave.steps {
                    wave::apply_step(ctx, step, target, false).await?;
                }
            }
            Outcome::failed(
                revision,
                condition("SyncFailed", "SyncFailed", &message),
                message,
                &target.previous,
            )
        }
    };
    let results = std::mem::take(&mut progress.results);
    Ok(Outcome {
        inventory: partial_inventory(&target.previous, &results),
        resources: results,
        live: operation.resources.into_iter().map(|c| c.status).collect(),
        ..outcome
    })
}

/// Prune what left Git (or report it), and the outcome of a completed operation.
async fn prune(
    ctx: &SyncContext,
    target: &Target,
    desired: &Desired,
    operation: Operation,
    progress: &mut Progress,
) -> Result<Outcome, Transient> {
    let Operation {
        resources,
        leftovers,
    } = operation;
    let mut results = std::mem::take(&mut progress.results);
    let mut inventory: Vec<ResourceRef> = resources
        .iter()
        .map(|c| c.status.resource.clone())
        .collect();
    let partial = !target.selection.is_empty();
    // What a sync of selected resources left alone may still differ.
    let mut out_of_sync = partial
        && resources
            .iter()
            .any(|c| !selected(target, c) && c.differs());
    let mut kept = Vec::new();
    for gone in leftovers {
        let (status, message) =
            if target.prune && !partial && !gone.protected && gone.held.is_none() {
                ctx.cluster
                    .delete_exact(&manifest_of(&gone.resource), &target.destination, &gone.uid)
                    .await
                    .or_else(|e| super::transient_or(e).map(|_| ()))?;
                (ResultCode::Pruned, None)
            } else {
                out_of_sync |= !gone.protected && !gone.ignored;
                inventory.push(gone.resource.clone());
                kept.push(leftover_status(gone.resource.clone(), gone.protected));
                if gone.protected {
                    (ResultCode::PruneSkipped, None)
                } else {
                    (ResultCode::RequiresPruning, gone.held)
                }
            };
        results.push(ResourceResult {
            resource: gone.resource,
            status,
            message,
            hook_phase: None,
        });
    }
    let applied = results
        .iter()
        .filter(|r| r.status == ResultCode::Synced)
        .count();
    let health = health::worst(progress.verdicts.values());
    let mut live = synced(target, resources, &progress.verdicts);
    live.extend(kept);
    Ok(Outcome {
        revision: Some(desired.revision.clone()),
        phase: OperationPhase::Succeeded,
        sync_status: if out_of_sync {
            SyncStatusCode::OutOfSync
        } else {
            SyncStatusCode::Synced
        },
        message: if out_of_sync {
            format!("{applied} resources synced; some objects need pruning")
        } else {
            format!("{applied} resources synced")
        },
        resources: results,
        inventory,
        health,
        live,
        ..Outcome::default()
    })
}

/// PreSync, Sync and PostSync waves in order; `None` when all settled.
async fn waves(
    ctx: &SyncContext,
    target: &Target,
    desired: &Desired,
    newer: &super::Newer,
    progress: &mut Progress,
) -> Result<Option<Interrupted>, Transient> {
    phases(
        ctx,
        target,
        desired,
        &[Phase::PreSync, Phase::Sync, Phase::PostSync],
        newer,
        progress,
    )
    .await
}

/// Run the waves of `phases` of the whole plan, hooks deleted by their
/// policies; `Ok(None)` when all settled, else why not (in words).
pub(super) async fn run_phases(
    ctx: &SyncContext,
    target: &Target,
    desired: &Desired,
    phases_to_run: &[Phase],
) -> Result<Option<String>, Transient> {
    let mut progress = Progress::default();
    let interrupted = phases(
        ctx,
        target,
        desired,
        phases_to_run,
        &super::Newer::default(),
        &mut progress,
    )
    .await?;
    Ok(interrupted.map(|i| match i {
        Interrupted::Failed(why) | Interrupted::Superseded(why) => why,
    }))
}

async fn phases(
    ctx: &SyncContext,
    target: &Target,
    desired: &Desired,
    phases: &[Phase],
    newer: &super::Newer,
    progress: &mut Progress,
) -> Result<Option<Interrupted>, Transient> {
    for &phase in phases {
        for wave in desired.plan.waves(phase) {
            let mut applied = Vec::with_capacity(wave.steps.len());
            // A sync of selected resources: those only, and no hooks.
            let partial = !target.selection.is_empty();
            for step in wave
                .steps
                .iter()
                .filter(|s| !partial || (!s.hook && target.selects(&s.manifest)))
            {
                let replace = target.replace
                    || super::options::ResourceOptions::of(&step.manifest.object).replace;
                match wave::apply_step(ctx, step, target, replace).await? {
                    Applied::Done(done) => {
                        let (result, step) = *done;
                        progress.results.push(result);
                        applied.push(step);
                    }
                    Applied::Refused(message) => return Ok(Some(Interrupted::Failed(message))),
                }
            }
            if wave
                .steps
                .iter()
                .any(|s| s.manifest.kind() == "CustomResourceDefinition")
            {
                ctx.cluster.forget_kinds().await;
            }
            let clock = Instant::now();
            let settled = wave::wait_healthy(
                ctx,
                &applied,
                &target.destination,
                &desired.revision,
                newer.clone(),
            )
            .await?;
            progress.waited += clock.elapsed();
            match settled {
                Settled::Healthy(settled) => {
                    progress.verdicts.extend(settled);
                    wave::finish_hooks(ctx, &applied, target, DeletePolicy::HookSucceeded).await?;
                }
                Settled::Failed(message) => {
                    wave::finish_hooks(ctx, &applied, target, DeletePolicy::HookFailed).await?;
                    return Ok(Some(Interrupted::Failed(message)));
                }
                Settled::Superseded(pending) => return Ok(Some(Interrupted::Superseded(pending))),
            }
        }
    }
    Ok(None)
}

/// The previous inventory and what `results` applied (hooks aside).
fn partial_inventory(previous: &[ResourceRef], results: &[ResourceResult]) -> Vec<ResourceRef> {
    let mut inventory = previous.to_vec();
    let known: BTreeSet<RefKey> = inventory.iter().map(key).collect();
    inventory.extend(
        results
            .iter()
            .filter(|r| r.hook_phase.is_none() && !known.contains(&key(&r.resource)))
            .map(|r| r.resource.clone()),
    );
    inventory
}

/// The compared resources as they are after a successful apply, with the
/// health each wave settled at.
fn synced(
    target: &Target,
    resources: Vec<Compared>,
    verdicts: &HashMap<String, Assessment>,
) -> Vec<ResourceStatus> {
    resources
        .into_iter()
        .map(|c| {
            if selected(target, &c) {
                applied(c, verdicts)
            } else {
                // Not part of a sync of selected resources: as compared.
                c.status
            }
        })
        .collect()
}

/// Whether a sync of selected resources applied `compared`.
fn selected(target: &Target, compared: &Compared) -> bool {
    let r = &compared.status.resource;
    target.selection.is_empty()
        || target
            .selection
            .iter()
            .any(|s| s.matches(&r.group, &r.kind, &r.namespace, &r.name))
}

fn applied(c: Compared, verdicts: &HashMap<String, Assessment>) -> ResourceStatus {
    ResourceStatus {
        status: ResourceSyncCode::Synced,
        diff: None,
        // Applying changed them: the next comparison records new ones.
        resource_version: None,
        health: verdicts
            .get(&c.identity)
            .and_then(|a| crate::health::known(a.health))
            .or(c.status.health),
        ..c.status
    }
}
