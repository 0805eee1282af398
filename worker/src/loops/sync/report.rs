//! What the sync loop tells about a job: metrics and a log line per sync,
//! the dead-letter queue, and a condition on an Application given up on.

use pushsync_api::ResultCode;
use std::time::Duration;

use pushsync_broker::{Delivery, PublishError};
use pushsync_proto::{AppRef, SyncJob};
use pushsync_service::error_chain;
use serde_json::json;

use super::Syncer;
use crate::sync::Outcome;

impl Syncer {
    /// Publish `job` again, with `failures` so far, to come back after
    /// `delay` (it waits in a broker retry queue, not in this worker).
    pub(super) async fn later(
        &self,
        job: &SyncJob,
        failures: u32,
        delay: Duration,
    ) -> Result<Duration, PublishError> {
        let shared = &self.inner.shared;
        let job = SyncJob {
            failures,
            ..job.clone()
        };
        let outgoing =
            crate::context::outgoing(job, &shared.topology).ok_or(PublishError::Unavailable)?;
        shared.broker.publish_later(&outgoing, delay).await
    }

    pub(super) async fn dead_letter(&self, delivery: Delivery) {
        let metrics = &self.inner.shared.metrics;
        metrics.dead_lettered.inc();
        metrics
            .sync_jobs
            .with_label_values(&["dead_lettered"])
            .inc();
        if let Err(error) = delivery.dead_letter().await {
            tracing::warn!(error = %error, "dead-lettering failed; the job will be redelivered");
        }
    }

    pub(super) fn observe(&self, app: &AppRef, outcome: &Outcome) {
        let metrics = &self.inner.shared.metrics;
        metrics
            .syncs
            .with_label_values(&[&outcome.phase.as_str().to_ascii_lowercase()])
            .inc();
        for (phase, took) in outcome.timings.phases() {
            metrics
                .sync_phase_duration
                .with_label_values(&[phase])
                .observe(took.as_secs_f64());
        }
        for resource in &outcome.resources {
            let result = match resource.status {
                ResultCode::Synced => "synced",
                ResultCode::Pruned => "pruned",
                ResultCode::PruneSkipped | ResultCode::RequiresPruning => "prune_skipped",
                ResultCode::Unknown => "unknown",
            };
            metrics.resources.with_label_values(&[result]).inc();
        }
        tracing::info!(
            application = %app,
            revision = outcome.revision.as_deref().unwrap_or("-"),
            phase = outcome.phase.as_str(),
            sync_status = outcome.sync_status.as_str(),
            message = %outcome.message,
            "sync finished"
        );
    }

    /// Tell the Application its job was given up on, and why.
    pub(super) async fn give_up(&self, app: &AppRef, failures: u32, error: &str) {
        let message = format!(
            "gave up after {failures} attempts (the job is in the dead-letter queue; the next push or poll tries again): {error}"
        );
        let condition = crate::status::condition("SyncError", "RetriesExhausted", &message);
        let operation = json!({"operationState": {
            "phase": "Failed",
            "message": message,
            "finishedAt": condition.last_transition_time,
        }});
        match crate::status::report(&self.inner.shared.client, app, condition, operation).await {
            Ok(application) => {
                self.events()
                    .record(
                        &application,
                        crate::events::Kind::Warning,
                        "RetriesExhausted",
                        &message,
                    )
                    .await;
            }
            Err(error) => {
                tracing::warn!(application = %app, error = %error_chain(&error), "could not record the give-up on the Application");
            }
        }
    }
}
