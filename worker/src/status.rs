//! An Application's status: the patch a sync outcome makes (bounded
//! history, last operation, conditions), and writing it through the
//! `status` subresource.

use kube::api::{Api, Patch, PatchParams};
use pushsync_api::{
    Application, Condition, ConditionStatus, HealthStatusCode, OperationPhase, SyncStatusCode,
};
use pushsync_proto::AppRef;
use serde_json::{Value, json};

use crate::sync::Outcome;

/// The field manager status writes use.
pub const STATUS_MANAGER: &str = "pushsync-status";

/// How many deployed revisions the status remembers.
pub const HISTORY_LIMIT: usize = 10;

/// A condition that holds now.
pub fn condition(kind: &str, reason: &str, message: &str) -> Condition {
    Condition {
        kind: kind.to_owned(),
        status: ConditionStatus::True,
        reason: Some(reason.to_owned()),
        message: Some(message.to_owned()),
        last_transition_time: Some(jiff::Timestamp::now().to_string()),
        observed_generation: None,
    }
}

/// kstatus' `Ready` condition type: true when synced and healthy.
pub const READY: &str = "Ready";
/// kstatus' `Reconciling`: present (true) while resources are still rolling out.
pub const RECONCILING: &str = "Reconciling";
/// kstatus' `Stalled`: present (true) when a problem needs a change to Git
/// or to the Application to go away.
pub const STALLED: &str = "Stalled";

/// The conditions `app` shows after an outcome with `problem` (if any),
/// sync status `sync` and health `health`: `Ready` always, `Reconciling`
/// and `Stalled` only when true (kstatus' abnormal-true polarity), and the
/// problem itself. A condition whose status did not change keeps its
/// `lastTransitionTime`.
pub fn conditions(
    app: Option<&Application>,
    problem: Option<&Condition>,
    sync: SyncStatusCode,
    health: HealthStatusCode,
    message: &str,
) -> Vec<Condition> {
    let (ready, reason, ready_message) = match problem {
        Some(problem) => (
            ConditionStatus::False,
            problem
                .reason
                .clone()
                .unwrap_or_else(|| problem.kind.clone()),
            problem.message.clone().unwrap_or_default(),
        ),
        None => match (sync, health) {
            (SyncStatusCode::Synced, HealthStatusCode::Healthy) => (
                ConditionStatus::True,
                "Synced".to_owned(),
                message.to_owned(),
            ),
            (SyncStatusCode::OutOfSync, _) => (
                ConditionStatus::False,
                "OutOfSync".to_owned(),
                message.to_owned(),
            ),
            (_, health) => (
                ConditionStatus::False,
                health.as_str().to_owned(),
                message.to_owned(),
            ),
        },
    };
    let mut out = vec![Condition {
        kind: READY.to_owned(),
        status: ready,
        reason: Some(reason),
        message: Some(ready_message),
        ..Condition::default()
    }];
    if problem.is_none() && health == HealthStatusCode::Progressing {
        out.push(Condition {
            kind: RECONCILING.to_owned(),
            status: ConditionStatus::True,
            reason: Some("Progressing".to_owned()),
            message: Some(message.to_owned()),
            ..Condition::default()
        });
    }
    if let Some(app) = app
        && app.spec.suspend
        && let Some(revision) = crate::rollback::rolled_back_to(app)
    {
        out.push(Condition {
            kind: "AutoSyncDisabled".to_owned(),
            status: ConditionStatus::True,
            reason: Some("RolledBack".to_owned()),
            message: Some(format!(
                "rolled back to {}: automated sync and self-heal are off until spec.suspend is set to false",
                short_revision(revision)
            )),
            ..Condition::default()
        });
    }
    if let Some(problem) = problem {
        out.push(Condition {
            kind: STALLED.to_owned(),
            ..problem.clone()
        });
        out.push(problem.clone());
    }
    let previous = app
        .and_then(|app| app.status.as_ref())
        .map(|status| status.conditions.as_slice())
        .unwrap_or_default();
    let now = jiff::Timestamp::now().to_string();
    let generation = app.and_then(|app| app.metadata.generation);
    for condition in &mut out {
        condition.last_transition_time = previous
            .iter()
            .find(|p| p.kind == condition.kind && p.status == condition.status)
            .and_then(|p| p.last_transition_time.clone())
            .or_else(|| Some(now.clone()));
        condition.observed_generation = generation;
    }
    out
}

/// A commit id's first seven characters (all of a shorter revision).
pub fn short_revision(revision: &str) -> &str {
    revision.get(..7).unwrap_or(revision)
}

/// The Application status after `outcome`, merged over the previous one:
/// a comparison without an operation leaves the last operation and the
/// history as they were.
pub fn status_patch(app: &Application, outcome: &Outcome) -> Value {
    let now = jiff::Timestamp::now().to_string();
    let mut status = json!({
        "sync": {
            "status": outcome.sync_status,
            "revision": outcome.revision,
            "shortRevision": outcome.revision.as_deref().map(short_revision),
            "desiredDigest": outcome.desired_digest,
        },
        "health": {"status": outcome.health.health, "message": (!outcome.health.message.is_empty()).then_some(&outcome.health.message)},
        "conditions": conditions(
            Some(app),
            outcome.condition.as_ref(),
            outcome.sync_status,
            outcome.health.health,
            if outcome.health.message.is_empty() || outcome.sync_status != SyncStatusCode::Synced {
                &outcome.message
            } else {
                &outcome.health.message
            },
        ),
        "inventory": outcome.inventory,
        "resources": outcome.live,
        "reconciledAt": now,
        "observedGeneration": app.metadata.generation,
    });
    if let Some(received) = outcome.push_received_at {
        status["lastPushReceivedAt"] = json!(received.to_string());
    }
    if outcome.operated() {
        let mut history = app
            .status
            .as_ref()
            .map(|s| s.history.clone())
            .unwrap_or_default();
        if outcome.phase == OperationPhase::Succeeded
            && let Some(revision) = &outcome.revision
            && history.last().is_none_or(|h| &h.revision != revision)
        {
            history.push(pushsync_api::RevisionHistory {
                revision: revision.clone(),
                deployed_at: now.clone(),
            });
            let excess = history.len().saturating_sub(HISTORY_LIMIT);
            history.drain(..excess);
        }
        status["history"] = json!(history);
        status["operationState"] = json!({
            "phase": outcome.phase,
            "message": outcome.message,
            "revision": outcome.revision,
            "startedAt": outcome.started_at.to_string(),
            "finishedAt": now,
            "resources": outcome.resources,
            "desiredDigest": outcome.desired_digest,
        });
    }
    json!({ "status": status })
}

/// Why a status write failed.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The Application has no name or namespace (not read from the API).
    #[error("the Application has no name or namespace")]
    Unnamed,
    /// The API server refused or failed.
    #[error("writing the status of {namespace}/{name} failed")]
    Write {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
}

/// Merge-patch the outcome of a sync into `app`'s status.
pub async fn write(
    client: &kube::Client,
    app: &Application,
    outcome: &Outcome,
) -> Result<Application, StatusError> {
    let (Some(name), Some(namespace)) = (
        app.metadata.name.as_deref(),
        app.metadata.namespace.as_deref(),
    ) else {
        return Err(StatusError::Unnamed);
    };
    merge(client, namespace, name, &status_patch(app, outcome)).await
}

/// Report `condition` on the Application `app` outside a sync (a deleted
/// ref, a job given up), with `status` fields merged beside it (its
/// `conditions` replaced by this one).
pub async fn report(
    client: &kube::Client,
    app: &AppRef,
    condition: Condition,
    mut status: Value,
) -> Result<Application, StatusError> {
    let message = condition.message.clone().unwrap_or_default();
    // As stored now, so unchanged conditions keep their transition times
    // (and a rollback's AutoSyncDisabled stays); one read on a rare path.
    let current = Api::<Application>::namespaced(client.clone(), &app.namespace)
        .get_opt(&app.name)
        .await
        .ok()
        .flatten();
    status["conditions"] = json!(conditions(
        current.as_ref(),
        Some(&condition),
        SyncStatusCode::Unknown,
        HealthStatusCode::Unknown,
        &message,
    ));
    merge(
        client,
        &app.namespace,
        &app.name,
        &json!({ "status": status }),
    )
    .await
}

async fn merge(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    patch: &Value,
) -> Result<Application, StatusError> {
    let api: Api<Application> = Api::namespaced(client.clone(), namespace);
    let params = PatchParams {
        field_manager: Some(STATUS_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    api.patch_status(name, &params, &Patch::Merge(patch))
        .await
        .map_err(|source| StatusError::Write {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            source,
        })
}
