//! The reconcile loop: an Application that was created, or whose spec
//! changed (`metadata.generation` ahead of the `status.observedGeneration`
//! its last sync recorded), gets a sync job at once — not at the next push
//! or poll. It runs on the poll leader only, woken by every change the
//! Application watch delivers, and enqueues through the same queue and
//! Lease as pushes, so one sync per Application still holds.

use std::collections::HashMap;
use std::time::Duration;

use pushsync_proto::{AppRef, SyncTrigger};
use tokio_util::sync::CancellationToken;

use crate::context::{Shared, app_ref, job};

/// How often the loop looks even without a change (leadership may have
/// moved here, or an enqueue failed and is worth another try).
const RESCAN: Duration = Duration::from_secs(5);

/// Enqueue a sync of every Application whose spec is newer than its last
/// sync, while this worker leads, until `stop`.
pub async fn run(shared: Shared, stop: CancellationToken) {
    // The object (uid) and generation a job was last enqueued for, per
    // Application: one job per spec change, not one per wake-up while the
    // sync runs; a deleted and recreated Application is a new object.
    let mut enqueued: HashMap<AppRef, (String, i64)> = HashMap::new();
    let mut seen = 0;
    loop {
        if shared.leadership.is_leading() {
            enqueue_due(&shared, &mut enqueued).await;
        } else {
            enqueued.clear();
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = shared.index.changed(&mut seen) => {}
            () = tokio::time::sleep(RESCAN) => {}
        }
    }
}

async fn enqueue_due(shared: &Shared, enqueued: &mut HashMap<AppRef, (String, i64)>) {
    let apps = shared.index.applications();
    let mut jobs = Vec::new();
    let mut due = Vec::new();
    let id = format!("spec-{}", jiff::Timestamp::now().as_millisecond());
    for app in &apps {
        let (Some(target), Some(generation)) = (app_ref(app), app.metadata.generation) else {
            continue;
        };
        let observed = app.status.as_ref().and_then(|s| s.observed_generation);
        let this = (app.metadata.uid.clone().unwrap_or_default(), generation);
        if observed == Some(generation) || enqueued.get(&target) == Some(&this) {
            continue;
        }
        if let Some(outgoing) = job(target.clone(), SyncTrigger::Poll, &id, &shared.topology) {
            jobs.push(outgoing);
            due.push((target, this));
        }
    }
    if !jobs.is_empty() && shared.enqueue(&jobs).await {
        for (target, this) in due {
            tracing::info!(application = %target, generation = this.1, "new or changed Application: sync enqueued");
            enqueued.insert(target, this);
        }
    }
    // Forget Applications that are gone (a lookup per remembered one, not a
    // set of every Application at every wake-up).
    enqueued.retain(|app, _| shared.index.get(app).is_some());
}
