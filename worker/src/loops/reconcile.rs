//! The reconcile loop: an Application that was created, or whose spec
//! changed (`metadata.generation` ahead of the `status.observedGeneration`
//! its last sync recorded), gets a sync job at once — not at the next push
//! or poll. It runs on the poll leader only, woken by every change the
//! Application watch delivers, and enqueues through the same queue and
//! Lease as pushes, so one sync per Application still holds.
//!
//! A Project that is created or changed re-evaluates its Applications the
//! same way: each gets a sync, which holds it to the new rules (a
//! tightened project turns excess resources into a `ProjectViolation`,
//! never into deletions).

use std::collections::HashMap;
use std::time::Duration;

use pushsync_proto::{AppRef, SyncTrigger};
use tokio_util::sync::CancellationToken;

use crate::context::{Shared, app_ref, job};
use crate::tenancy::Projects;

/// How often the loop looks even without a change (leadership may have
/// moved here, or an enqueue failed and is worth another try).
const RESCAN: Duration = Duration::from_secs(5);

/// How often an Application still being deleted gets another job (its
/// last one may have been given up on: a Git host down, a hook failing).
const DELETION_RETRY: Duration = Duration::from_secs(300);

/// The object (uid) and generation a job was last enqueued for, and when.
type Enqueued = ((String, i64), std::time::Instant);

/// Enqueue a sync of every Application whose spec is newer than its last
/// sync, while this worker leads, until `stop`.
pub async fn run(shared: Shared, projects: Projects, stop: CancellationToken) {
    // The object (uid) and generation a job was last enqueued for, per
    // Application: one job per spec change, not one per wake-up while the
    // sync runs; a deleted and recreated Application is a new object.
    let mut enqueued: HashMap<AppRef, Enqueued> = HashMap::new();
    // The same per Project; `None` until the first look (Projects that
    // exist at start are not changes — hence the wait for their listing).
    let mut rules: Option<HashMap<String, (String, String)>> = None;
    let (mut seen, mut seen_projects) = (0, 0);
    tokio::select! {
        () = stop.cancelled() => return,
        _ = projects.ready() => {}
    }
    loop {
        let changed = changed_projects(&projects, &mut rules);
        if shared.leadership.is_leading() {
            enqueue_due(&shared, &mut enqueued).await;
            if !changed.is_empty() {
                enqueue_of_projects(&shared, &changed).await;
            }
        } else {
            enqueued.clear();
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = shared.index.changed(&mut seen) => {}
            () = projects.changed(&mut seen_projects) => {}
            () = tokio::time::sleep(RESCAN) => {}
        }
    }
}

/// Projects created or changed since the last look.
fn changed_projects(
    projects: &Projects,
    known: &mut Option<HashMap<String, (String, String)>>,
) -> Vec<String> {
    let now: HashMap<String, (String, String)> = projects
        .all()
        .iter()
        .filter_map(|p| {
            // The resourceVersion, not the generation: any change re-syncs
            // (rare, and safe), whatever the API server counts as one.
            let this = (
                p.metadata.uid.clone()?,
                p.metadata.resource_version.clone()?,
            );
            Some((p.metadata.name.clone()?, this))
        })
        .collect();
    let changed = match known {
        None => Vec::new(),
        Some(before) => now
            .iter()
            .filter(|(name, this)| before.get(*name) != Some(*this))
            .map(|(name, _)| name.clone())
            .collect(),
    };
    *known = Some(now);
    changed
}

/// A sync of every Application of `projects`.
async fn enqueue_of_projects(shared: &Shared, projects: &[String]) {
    let id = format!("project-{}", jiff::Timestamp::now().as_millisecond());
    let jobs: Vec<_> = shared
        .index
        .applications()
        .iter()
        .filter(|app| projects.contains(&app.spec.project))
        .filter_map(|app| job(app_ref(app)?, SyncTrigger::Poll, &id, &shared.topology))
        .collect();
    if !jobs.is_empty() && shared.enqueue(&jobs).await {
        tracing::info!(projects = ?projects, applications = jobs.len(), "Projects changed: their Applications' syncs enqueued");
    }
}

async fn enqueue_due(shared: &Shared, enqueued: &mut HashMap<AppRef, Enqueued>) {
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
        // Being deleted: the job finishes the deletion (the API server bumps
        // the generation then too, but a deletion must not hang on that).
        let deleting = crate::sync::finalize::deleting(app);
        let last = enqueued.get(&target);
        let again = deleting && last.is_some_and(|(_, at)| at.elapsed() >= DELETION_RETRY);
        if (observed == Some(generation) && !deleting)
            || (last.is_some_and(|(seen, _)| *seen == this) && !again)
        {
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
            enqueued.insert(target, (this, std::time::Instant::now()));
        }
    }
    // Forget Applications that are gone (a lookup per remembered one, not a
    // set of every Application at every wake-up).
    enqueued.retain(|app, _| shared.index.get(app).is_some());
}
