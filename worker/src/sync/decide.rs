//! Stage 3: whether the comparison leads to a sync operation or only to a
//! report (`Refreshed`). An operation runs when someone asked for it, or
//! with automated sync when the last one did not succeed, or when something
//! differs and either the desired state is new (another commit, or the same
//! commit rendered differently because the spec changed: the desired
//! digest differs) or selfHeal is on.

use pushsync_api::{Application, OperationPhase, ResourceRef, ResourceStatus, SyncStatusCode};

use super::compare::{Compared, Comparison, Leftover};
use super::outcome::leftover_status;
use super::source::Desired;
use super::{Outcome, Request, Target, Verdict};
use crate::health;

/// What the operation works from: the comparison that called for it.
#[derive(Debug)]
pub struct Operation {
    /// Each desired resource against its live object.
    pub resources: Vec<Compared>,
    /// Objects of the previous inventory that left Git but still exist.
    pub leftovers: Vec<Leftover>,
}

/// Go on to an operation, or stop with the comparison as a report.
pub(super) fn decide(
    app: &Application,
    request: &Request,
    target: &Target,
    desired: &Desired,
    comparison: Comparison,
) -> Verdict<Operation> {
    let (resources, leftovers) = match comparison {
        Comparison::Unchanged(live) => {
            let health = health::worst(live.iter().map(|(_, a)| a));
            return Verdict::Stop(Box::new(Outcome {
                revision: Some(desired.revision.clone()),
                phase: OperationPhase::Refreshed,
                sync_status: SyncStatusCode::Synced,
                message: "in sync (no live object changed since the last comparison)".to_owned(),
                inventory: target.previous.clone(),
                live: live.into_iter().map(|(s, _)| s).collect(),
                health,
                desired_digest: Some(desired.digest.clone()),
                ..Outcome::default()
            }));
        }
        Comparison::Compared {
            resources,
            leftovers,
        } => (resources, leftovers),
    };
    let status = app.status.clone().unwrap_or_default();
    let changed = resources.iter().filter(|c| c.differs()).count();
    let unpruned = leftovers.iter().filter(|l| !l.protected).count();
    let differs = changed > 0 || (target.prune && unpruned > 0);
    let failed_before = status
        .operation_state
        .as_ref()
        .is_some_and(|o| o.phase != OperationPhase::Succeeded);
    // New desired state: another commit than the last one *applied*, or
    // the same commit rendered or applied differently because the spec
    // changed (a status written before digests existed does not count as a
    // change). Against the last operation, not `status.sync`: a comparison
    // that applied nothing (while suspended, or before automation was
    // turned on) moves `status.sync` without deploying anything.
    let (applied_revision, applied_digest) = match status.operation_state.as_ref() {
        Some(operation) if operation.revision.is_some() => (
            operation.revision.as_deref(),
            operation.desired_digest.as_deref(),
        ),
        _ => {
            let synced = status.sync.as_ref();
            (
                synced.and_then(|s| s.revision.as_deref()),
                synced.and_then(|s| s.desired_digest.as_deref()),
            )
        }
    };
    // A status from before operations recorded their digest: the compared
    // digest stands in while it is of the same revision.
    let applied_digest = applied_digest.or_else(|| {
        status
            .sync
            .as_ref()
            .filter(|s| s.revision.as_deref() == applied_revision)
            .and_then(|s| s.desired_digest.as_deref())
    });
    let new_desired = applied_revision != Some(desired.revision.as_str())
        || applied_digest.is_some_and(|digest| digest != desired.digest);
    let apply = request.manual
        || (target.automated && (failed_before || (differs && (target.self_heal || new_desired))));
    if apply {
        return Verdict::Go(Operation {
            resources,
            leftovers,
        });
    }
    // `IgnoreExtraneous` leftovers are pruned when pruning is on (above),
    // but never make the Application out of sync.
    let out_of_sync = changed > 0 || leftovers.iter().any(|l| !l.protected && !l.ignored);
    let mut inventory: Vec<ResourceRef> = resources
        .iter()
        .map(|c| c.status.resource.clone())
        .collect();
    inventory.extend(leftovers.iter().map(|l| l.resource.clone()));
    let health = health::worst(resources.iter().map(|c| &c.health));
    let mut live: Vec<ResourceStatus> = resources.into_iter().map(|c| c.status).collect();
    live.extend(
        leftovers
            .into_iter()
            .map(|l| leftover_status(l.resource, l.protected)),
    );
    let why = if target.suspended {
        "the Application is suspended"
    } else if target.automated {
        "selfHeal is off"
    } else {
        "automated sync is off"
    };
    Verdict::Stop(Box::new(Outcome {
        revision: Some(desired.revision.clone()),
        phase: OperationPhase::Refreshed,
        sync_status: if out_of_sync {
            SyncStatusCode::OutOfSync
        } else {
            SyncStatusCode::Synced
        },
        message: match (changed, unpruned) {
            (0, 0) => "in sync".to_owned(),
            (0, n) => format!("{n} objects need pruning"),
            (n, 0) => format!("{n} resources out of sync; not applied: {why}"),
            (n, m) => format!("{n} resources out of sync, {m} need pruning; not applied: {why}"),
        },
        inventory,
        health,
        live,
        desired_digest: Some(desired.digest.clone()),
        ..Outcome::default()
    }))
}
