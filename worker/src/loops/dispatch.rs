//! The dispatch loop: push events → one sync job per affected Application
//! (the rules are [`crate::routing`]'s), on the queue, acknowledging a push
//! only once its jobs are confirmed published.
//!
//! A sync job names an Application, not a revision: the sync resolves the
//! branch head when it runs, so duplicated or stale jobs are harmless.

use std::time::Duration;

use pushsync_api::SyncStatusCode;
use pushsync_broker::{Delivery, Outgoing};
use pushsync_proto::{AppRef, Message, PushEvent, SyncTrigger, Topology};
use tokio_util::sync::CancellationToken;

use crate::context::{Shared, job};
use crate::routing::{AppSource, Decision, affected};

/// How long a failed step waits before its message goes back to the queue.
const RETRY_DELAY: Duration = Duration::from_millis(500);

/// Sync jobs for the Applications one push affects, and the Applications
/// whose ref it deleted.
pub fn jobs_for(
    message: &Message,
    apps: &[AppSource],
    topology: &Topology,
) -> (Vec<Outgoing>, Vec<AppRef>) {
    let Message::PushV1(event) = message else {
        return (Vec::new(), Vec::new());
    };
    let mut deleted = Vec::new();
    let jobs = affected(event, apps)
        .into_iter()
        .filter_map(|decision| match decision {
            Decision::Sync(app) => Some(app),
            Decision::RefDeleted(app) => {
                deleted.push(app);
                None
            }
        })
        .filter_map(|app| {
            let trigger = SyncTrigger::Push {
                delivery_id: event.delivery_id.clone(),
                revision: event.after.clone(),
                received_at: event.received_at,
            };
            job(app, trigger, &event.delivery_id, topology)
        })
        .collect();
    (jobs, deleted)
}

/// Mark `app` with a `RefDeleted` condition: its ref is gone, nothing was applied.
async fn report_deleted_ref(client: &kube::Client, app: &AppRef, event: &PushEvent) {
    tracing::warn!(application = %app, git_ref = %event.git_ref.full, "the ref this Application follows was deleted; nothing is applied");
    let message = format!(
        "{} was deleted in {} (delivery {}); nothing was applied, the last synced objects stay",
        event.git_ref.full, event.repository.full_name, event.delivery_id
    );
    let condition = crate::status::condition("RefDeleted", "RefDeleted", &message);
    let sync = serde_json::json!({"sync": {"status": SyncStatusCode::Unknown}});
    if let Err(error) = crate::status::report(client, app, condition, sync).await {
        tracing::warn!(application = %app, error = %error, "could not mark the Application with RefDeleted");
    }
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

/// Consume push events (`prefetch` at a time) and publish sync jobs until `stop`.
pub async fn run(shared: Shared, prefetch: u16, stop: CancellationToken) {
    let Shared {
        broker,
        topology,
        client,
        index,
        metrics,
        ..
    } = &shared;
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
        let (jobs, deleted) = jobs_for(&message, &index.sources(), topology);
        if let Message::PushV1(event) = &message {
            for app in &deleted {
                report_deleted_ref(client, app, event).await;
            }
        }
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
