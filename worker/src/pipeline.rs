//! The two loops a worker runs: dispatch (push events → one sync job per
//! affected Application) and sync (sync jobs → syncs → status), both on the
//! queue, acknowledging a message only when its work is done.
//!
//! A sync job names an Application, not a revision: the sync resolves the
//! branch head when it runs, so duplicated or stale jobs are harmless.

use std::sync::Arc;
use std::time::Duration;

use pushsync_api::Application;
use pushsync_broker::{Broker, Delivery, Outgoing};
use pushsync_proto::{AppRef, Message, SyncJob, SyncTrigger, Topology};
use tokio_util::sync::CancellationToken;

use crate::dispatch::{AppSource, Decision, affected};
use crate::metrics::Metrics;
use crate::sync::{Request, SyncContext, sync_with};

/// How long a failed step waits before its message goes back to the queue.
const RETRY_DELAY: Duration = Duration::from_millis(500);

/// Sync jobs for the Applications one push affects.
pub fn jobs_for(message: &Message, apps: &[AppSource], topology: &Topology) -> Vec<Outgoing> {
    let Message::PushV1(event) = message else {
        return Vec::new();
    };
    affected(event, apps)
        .into_iter()
        .filter_map(|decision| match decision {
            Decision::Sync(app) => Some(app),
            Decision::RefDeleted(app) => {
                tracing::warn!(application = %app, git_ref = %event.git_ref.full, "the ref this Application follows was deleted; nothing is applied");
                None
            }
        })
        .filter_map(|app| {
            let job_id = format!("{}/{app}", event.delivery_id);
            let job = Message::SyncJobV1(SyncJob {
                job_id: job_id.clone(),
                trigger: SyncTrigger::Push {
                    delivery_id: event.delivery_id.clone(),
                    revision: event.after.clone(),
                    received_at: event.received_at,
                },
                requested_at: jiff::Timestamp::now(),
                application: app,
            });
            Some(Outgoing {
                exchange: topology.jobs_exchange(),
                routing_key: Topology::SYNC_ROUTING_KEY.to_owned(),
                message_id: job_id,
                schema: job.schema(),
                body: job.encode().ok()?,
            })
        })
        .collect()
}

async fn settle(delivery: Delivery, outcome: Result<(), ()>) {
    let result = match outcome {
        Ok(()) => delivery.ack().await,
        Err(()) => {
            tokio::time::sleep(RETRY_DELAY).await;
            delivery.retry().await
        }
    };
    if let Err(error) = result {
        tracing::warn!(error = %error, "acknowledging failed; the message will be redelivered");
    }
}

/// Consume push events and publish sync jobs until `stop`.
pub async fn dispatch_loop(
    broker: Broker,
    topology: Topology,
    prefetch: u16,
    apps: impl Fn() -> Vec<AppSource>,
    metrics: Metrics,
    stop: CancellationToken,
) {
    let mut consumer = broker.consume(
        &topology.push_events_queue(),
        &topology.events_exchange(),
        prefetch,
    );
    loop {
        let delivery = tokio::select! {
            () = stop.cancelled() => return,
            delivery = consumer.next() => match delivery { Some(d) => d, None => return },
        };
        let message = match Message::decode(&delivery.body) {
            Ok(message) => message,
            Err(error) => {
                tracing::warn!(error = %error, "undecodable push event; dead-lettering it");
                metrics
                    .push_events
                    .with_label_values(&["undecodable"])
                    .inc();
                metrics.dead_lettered.inc();
                let _ = delivery.dead_letter().await;
                continue;
            }
        };
        if let Message::PushV1(event) = &message {
            tracing::info!(
                delivery_id = %event.delivery_id,
                provider = %event.provider,
                repository = %event.repository.id,
                git_ref = %event.git_ref.full,
                after = event.after.as_deref().unwrap_or("-"),
                changed_paths = event.changed_paths.paths.len(),
                paths_incomplete = event.changed_paths.incomplete,
                "push event received"
            );
        }
        let jobs = jobs_for(&message, &apps(), &topology);
        match broker.publish_all(&jobs).await {
            Ok(()) => {
                metrics.push_events.with_label_values(&["dispatched"]).inc();
                metrics.sync_jobs_published.inc_by(jobs.len() as u64);
                settle(delivery, Ok(())).await;
            }
            Err(error) => {
                tracing::warn!(error = %error, "publishing sync jobs failed; the push event will be retried");
                metrics
                    .push_events
                    .with_label_values(&["publish_failed"])
                    .inc();
                settle(delivery, Err(())).await;
            }
        }
    }
}

/// Consume sync jobs, sync, write status, until `stop`.
#[allow(
    clippy::too_many_arguments,
    reason = "the loop's collaborators, each passed once at start"
)]
pub async fn sync_loop(
    broker: Broker,
    topology: Topology,
    prefetch: u16,
    ctx: SyncContext,
    client: kube::Client,
    lookup: impl Fn(&AppRef) -> Option<Arc<Application>>,
    metrics: Metrics,
    stop: CancellationToken,
) {
    let mut consumer = broker.consume(
        &topology.sync_jobs_queue(),
        &topology.jobs_exchange(),
        prefetch,
    );
    loop {
        let delivery = tokio::select! {
            () = stop.cancelled() => return,
            delivery = consumer.next() => match delivery { Some(d) => d, None => return },
        };
        let job = match Message::decode(&delivery.body) {
            Ok(Message::SyncJobV1(job)) => job,
            other => {
                tracing::warn!(decoded = ?other.map(|m| m.schema()), "not a sync job; dead-lettering it");
                metrics.dead_lettered.inc();
                let _ = delivery.dead_letter().await;
                continue;
            }
        };
        let Some(app) = lookup(&job.application) else {
            tracing::info!(application = %job.application, "the Application no longer exists; dropping its job");
            settle(delivery, Ok(())).await;
            continue;
        };
        if let SyncTrigger::Push { received_at, .. } = &job.trigger {
            let lag = jiff::Timestamp::now()
                .duration_since(*received_at)
                .as_secs_f64();
            metrics.push_to_sync_start.observe(lag.max(0.0));
        }
        let request = Request {
            manual: matches!(job.trigger, SyncTrigger::Manual { .. }),
            push_received_at: match &job.trigger {
                SyncTrigger::Push { received_at, .. } => Some(*received_at),
                _ => None,
            },
            ..Request::default()
        };
        let started = std::time::Instant::now();
        let result = sync_with(&ctx, &app, &request).await;
        metrics
            .sync_duration
            .observe(started.elapsed().as_secs_f64());
        let outcome = match result {
            Ok(outcome) => {
                metrics
                    .syncs
                    .with_label_values(&[&outcome.phase.to_ascii_lowercase()])
                    .inc();
                for resource in &outcome.resources {
                    let result = match resource.status.as_str() {
                        "Synced" => "synced",
                        "Pruned" => "pruned",
                        _ => "prune_skipped",
                    };
                    metrics.resources.with_label_values(&[result]).inc();
                }
                outcome
            }
            Err(error) => {
                metrics.syncs.with_label_values(&["transient"]).inc();
                tracing::warn!(application = %job.application, error = %error, "sync failed transiently; it will be retried");
                settle(delivery, Err(())).await;
                continue;
            }
        };
        tracing::info!(application = %job.application, revision = outcome.revision.as_deref().unwrap_or("-"), phase = outcome.phase, message = %outcome.message, "sync finished");
        // The job is done only once its status is written.
        match crate::status::write(&client, &app, &outcome).await {
            Ok(_) => settle(delivery, Ok(())).await,
            Err(error) => {
                tracing::warn!(application = %job.application, error = %error, "writing the status failed; the job will be retried");
                settle(delivery, Err(())).await;
            }
        }
    }
}

#[cfg(test)]
mod tests;
