//! Waiting for an Application: for goals (`synced`, `healthy`, …), for the
//! outcome of a sync or refresh asked for, or for it to be gone. Progress
//! goes to stderr (one rewritten line on a terminal, a line per change
//! otherwise), so stdout stays for results.
//!
//! What a request changes is recognised by the status moving on from what
//! it was before the request (never by comparing clocks: the worker's may
//! differ from this machine's), and a refused request by a new Warning
//! Event the worker writes.

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams};
use pushsync_api::{
    Application, ConditionStatus, HealthStatusCode, OperationPhase, SyncStatusCode,
};

use crate::cluster::Cluster;
use crate::{CliError, Status};

/// What `wait --for` can wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Goal {
    /// The live objects match Git.
    Synced,
    /// Every resource with a health notion is healthy.
    Healthy,
    /// Paused on purpose (a paused Deployment, a suspended Job).
    Suspended,
    /// The last sync operation has finished.
    Operation,
}

/// What ends a wait.
#[derive(Debug, Clone)]
pub enum Until {
    /// Every goal holds for the current spec (status of its generation).
    Goals(Vec<Goal>),
    /// A sync (or rollback) asked for has run: the last operation is a new
    /// one, or the status was compared anew without one.
    Operated(Before),
    /// A refresh asked for has run: the status was compared anew.
    Compared(Before),
    /// The Application no longer exists.
    Gone,
}

/// The status as it was before a request, to see it move on.
#[derive(Debug, Clone, Default)]
pub struct Before {
    annotation: String,
    finished_at: Option<String>,
    reconciled_at: Option<String>,
    events: BTreeSet<String>,
}

/// Warning reasons that mean the worker refused what was asked.
const REFUSALS: &[&str] = &["SyncRefused", "RollbackFailed"];

impl Before {
    /// Take it from `app` and its Events, before `annotation` asks.
    pub async fn of(
        cluster: &Cluster,
        app: &Application,
        annotation: &str,
    ) -> Result<Self, CliError> {
        let status = app.status.as_ref();
        Ok(Self {
            annotation: annotation.to_owned(),
            finished_at: status
                .and_then(|s| s.operation_state.as_ref())
                .and_then(|o| o.finished_at.clone()),
            reconciled_at: status.and_then(|s| s.reconciled_at.clone()),
            events: refusals(cluster, app)
                .await?
                .into_iter()
                .map(|(uid, _)| uid)
                .collect(),
        })
    }
}

/// The worker's refusal Events on `app`: (uid, message).
async fn refusals(cluster: &Cluster, app: &Application) -> Result<Vec<(String, String)>, CliError> {
    let name = app.metadata.name.as_deref().unwrap_or_default();
    let events: Api<Event> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let list = events
        .list(&ListParams::default().fields(&format!(
            "involvedObject.name={name},involvedObject.kind=Application,type=Warning"
        )))
        .await
        .map_err(CliError::kube(format!("reading the events of {name}")))?;
    Ok(list
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref().is_some_and(|r| REFUSALS.contains(&r)))
        .map(|e| {
            (
                e.metadata.uid.unwrap_or_default(),
                e.message.unwrap_or_default(),
            )
        })
        .collect())
}

/// Wait for `until` on `name`, at most `timeout`.
pub async fn until(
    cluster: &Cluster,
    name: &str,
    until: Until,
    timeout: Duration,
) -> Result<Status, CliError> {
    let apps: Api<Application> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let deadline = Instant::now() + timeout;
    let mut progress = Progress::new(name);
    loop {
        let app = apps
            .get_opt(name)
            .await
            .map_err(CliError::kube(format!("reading application {name}")))?;
        let verdict = match (&until, app) {
            (Until::Gone, None) => Verdict::Done(format!("{name} is gone")),
            (_, None) => {
                return Err(CliError::NotFound {
                    namespace: cluster.namespace.clone(),
                    name: name.to_owned(),
                });
            }
            (Until::Gone, Some(app)) => Verdict::Waiting(deleting(&app)),
            (Until::Goals(goals), Some(app)) => goals_reached(&app, goals),
            (Until::Operated(before) | Until::Compared(before), Some(app)) => {
                let refused = refusals(cluster, &app)
                    .await?
                    .into_iter()
                    .find(|(uid, _)| !before.events.contains(uid));
                match refused {
                    Some((_, why)) => Verdict::Failed(format!("refused: {why}")),
                    None => requested(&app, before, matches!(until, Until::Operated(_))),
                }
            }
        };
        match verdict {
            Verdict::Done(summary) => {
                progress.end(&summary);
                return Ok(Status::Ok);
            }
            Verdict::Failed(why) => {
                progress.end(&format!("failed: {why}"));
                return Ok(Status::Failed);
            }
            Verdict::Waiting(state) => {
                if Instant::now() >= deadline {
                    progress.end(&format!("timed out after {}s: {state}", timeout.as_secs()));
                    return Ok(Status::TimedOut);
                }
                progress.show(&state);
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Where a wait stands.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Done(String),
    Failed(String),
    Waiting(String),
}

/// One line about `app`'s state.
fn state(app: &Application) -> String {
    let status = app.status.as_ref();
    let sync = status
        .and_then(|s| s.sync.as_ref())
        .map_or(SyncStatusCode::Unknown, |s| s.status);
    let health = status
        .and_then(|s| s.health.as_ref())
        .map_or(HealthStatusCode::Unknown, |h| h.status);
    let revision = status
        .and_then(|s| s.sync.as_ref())
        .and_then(|s| s.short_revision.clone())
        .map(|r| format!(" at {r}"))
        .unwrap_or_default();
    let operation = status
        .and_then(|s| s.operation_state.as_ref())
        .map(|o| {
            format!(
                ", last sync {}{}",
                o.phase.as_str(),
                o.revision
                    .as_ref()
                    .map(|r| format!(" of {}", r.chars().take(7).collect::<String>()))
                    .unwrap_or_default()
            )
        })
        .unwrap_or_default();
    format!("{sync}/{health}{revision}{operation}")
}

fn deleting(app: &Application) -> String {
    let finalizers = app.metadata.finalizers.clone().unwrap_or_default();
    if finalizers.is_empty() {
        "being deleted".to_owned()
    } else {
        format!("being deleted, waiting for {}", finalizers.join(", "))
    }
}

fn goals_reached(app: &Application, goals: &[Goal]) -> Verdict {
    let status = app.status.clone().unwrap_or_default();
    if let Some(stalled) = status
        .conditions
        .iter()
        .find(|c| c.kind == "Stalled" && c.status == ConditionStatus::True)
    {
        return Verdict::Failed(format!(
            "{}: {}",
            stalled
                .reason
                .clone()
                .unwrap_or_else(|| "Stalled".to_owned()),
            stalled.message.clone().unwrap_or_default()
        ));
    }
    // The status must speak of the current spec, not an older one.
    let generation = app.metadata.generation.unwrap_or(0);
    if status.observed_generation.is_some_and(|o| o < generation) {
        return Verdict::Waiting(format!(
            "{} (of generation {}, waiting for {generation})",
            state(app),
            status.observed_generation.unwrap_or(0)
        ));
    }
    let sync = status.sync.as_ref().map(|s| s.status);
    let health = status.health.as_ref().map(|h| h.status);
    let operation = status.operation_state.as_ref().map(|o| o.phase);
    let missing: Vec<&str> = goals
        .iter()
        .filter(|goal| match goal {
            Goal::Synced => sync != Some(SyncStatusCode::Synced),
            Goal::Healthy => health != Some(HealthStatusCode::Healthy),
            Goal::Suspended => health != Some(HealthStatusCode::Suspended),
            Goal::Operation => operation.is_none_or(|p| p == OperationPhase::Running),
        })
        .map(|goal| match goal {
            Goal::Synced => "synced",
            Goal::Healthy => "healthy",
            Goal::Suspended => "suspended",
            Goal::Operation => "operation",
        })
        .collect();
    if missing.is_empty() {
        Verdict::Done(state(app))
    } else {
        Verdict::Waiting(format!("{} (not yet {})", state(app), missing.join(", ")))
    }
}

/// Whether what was asked has run: once a worker took the request (the
/// annotation is gone), a new last operation (its phase says how it went),
/// or, for a refresh or a sync that found nothing to apply, a new comparison.
fn requested(app: &Application, before: &Before, operation_wanted: bool) -> Verdict {
    if app
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(&before.annotation))
    {
        return Verdict::Waiting(format!(
            "{} (waiting for a worker to take the request)",
            state(app)
        ));
    }
    let status = app.status.clone().unwrap_or_default();
    let operation = status.operation_state.as_ref();
    let new_operation = operation
        .filter(|o| o.finished_at.is_some() && o.finished_at != before.finished_at)
        .filter(|o| o.phase != OperationPhase::Running);
    let compared = status.reconciled_at.is_some() && status.reconciled_at != before.reconciled_at;
    match new_operation {
        Some(o) if o.phase == OperationPhase::Failed => Verdict::Failed(format!(
            "{}: {}",
            state(app),
            o.message.clone().unwrap_or_default()
        )),
        Some(_) => Verdict::Done(state(app)),
        None if compared && !operation_wanted => Verdict::Done(state(app)),
        None if compared
            && status
                .sync
                .as_ref()
                .is_some_and(|s| s.status == SyncStatusCode::Synced) =>
        {
            Verdict::Done(format!("{} (nothing to apply)", state(app)))
        }
        None => Verdict::Waiting(format!("{} (waiting for the sync)", state(app))),
    }
}

/// Progress on stderr.
struct Progress {
    name: String,
    terminal: bool,
    last: String,
    started: Instant,
}

impl Progress {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            terminal: std::io::stderr().is_terminal(),
            last: String::new(),
            started: Instant::now(),
        }
    }

    fn show(&mut self, state: &str) {
        let state = crate::output::clean(state);
        let state = state.as_str();
        let elapsed = self.started.elapsed().as_secs();
        if self.terminal {
            eprint!("\r\x1b[2K{}: {state} [{elapsed}s]", self.name);
        } else if state != self.last {
            eprintln!("{}: {state}", self.name);
        }
        state.clone_into(&mut self.last);
    }

    fn end(&mut self, summary: &str) {
        let summary = crate::output::clean(summary);
        if self.terminal {
            eprint!("\r\x1b[2K");
        }
        eprintln!("{}: {summary}", self.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(status: serde_json::Value, generation: i64) -> Application {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "pushsync.dev/v1alpha1",
            "kind": "Application",
            "metadata": {"name": "web", "namespace": "default", "generation": generation},
            "spec": {"project": "default", "source": {"repoURL": "https://example.com/r.git", "targetRevision": "main", "path": "."}, "destination": {}},
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn goals_need_the_status_of_the_current_generation() {
        let ready = serde_json::json!({
            "sync": {"status": "Synced", "shortRevision": "0d1a26e"},
            "health": {"status": "Healthy"},
            "observedGeneration": 2,
        });
        let goals = [Goal::Synced, Goal::Healthy];
        assert!(matches!(
            goals_reached(&app(ready.clone(), 2), &goals),
            Verdict::Done(_)
        ));
        let Verdict::Waiting(why) = goals_reached(&app(ready, 3), &goals) else {
            panic!("an older generation's status was taken");
        };
        assert!(why.contains("waiting for 3"), "{why}");
    }

    #[test]
    fn a_stalled_application_fails_the_wait_at_once() {
        let stalled = serde_json::json!({
            "conditions": [{"type": "Stalled", "status": "True", "reason": "RenderFailed", "message": "kustomize: boom"}],
        });
        assert_eq!(
            goals_reached(&app(stalled, 1), &[Goal::Synced]),
            Verdict::Failed("RenderFailed: kustomize: boom".to_owned())
        );
    }

    #[test]
    fn a_request_is_done_when_a_new_operation_finished_and_failed_when_it_failed() {
        let before = Before {
            annotation: "pushsync.dev/sync".to_owned(),
            finished_at: Some("2026-12-02T10:00:00Z".to_owned()),
            reconciled_at: Some("2026-12-02T10:00:00Z".to_owned()),
            events: BTreeSet::new(),
        };
        let old = serde_json::json!({"operationState": {"phase": "Succeeded", "finishedAt": "2026-12-02T10:00:00Z"}, "reconciledAt": "2026-12-02T10:00:00Z"});
        assert!(matches!(
            requested(&app(old, 1), &before, true),
            Verdict::Waiting(_)
        ));
        let failed = serde_json::json!({"operationState": {"phase": "Failed", "finishedAt": "2026-12-02T10:00:05Z", "message": "apply refused"}});
        let Verdict::Failed(why) = requested(&app(failed, 1), &before, true) else {
            panic!("a failed sync was not a failure");
        };
        assert!(why.contains("apply refused"), "{why}");
        let compared = serde_json::json!({"operationState": {"phase": "Succeeded", "finishedAt": "2026-12-02T10:00:00Z"}, "reconciledAt": "2026-12-02T10:00:09Z", "sync": {"status": "OutOfSync"}});
        assert!(matches!(
            requested(&app(compared.clone(), 1), &before, false),
            Verdict::Done(_)
        ));
        assert!(
            matches!(
                requested(&app(compared, 1), &before, true),
                Verdict::Waiting(_)
            ),
            "a sync that applied nothing while out of sync is not done"
        );
    }
}
