//! The worker's loops, side by side: [`dispatch`] (push events → sync jobs),
//! [`sync`] (sync jobs → synced Applications), [`poll`] (the fallback poll
//! and manual triggers, on the elected leader) and [`drift`] (fast
//! self-heal, on the same leader). Each depends on [`Shared`] and the parts
//! below it, never on another loop; [`spawn`] starts them together, so the
//! binary, `pushsync-local` and the benchmark run the same thing.

pub mod dispatch;
pub mod drift;
pub mod poll;
pub mod sync;

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::context::Shared;
use crate::sync::SyncContext;

/// How the loops run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Push events handled at once.
    pub dispatch_prefetch: u16,
    /// The sync loop.
    pub sync: sync::SyncSettings,
    /// The fallback poll, manual triggers and fast self-heal; `None` runs
    /// none of them.
    pub poll: Option<poll::PollSettings>,
}

/// How often the Applications gauge is refreshed.
const CENSUS_INTERVAL: Duration = Duration::from_secs(15);

/// Start every loop; the handles finish once `stop` is cancelled (the sync
/// loop after its drain).
pub fn spawn(
    shared: &Shared,
    ctx: SyncContext,
    settings: Settings,
    stop: &CancellationToken,
) -> Vec<JoinHandle<()>> {
    let mut handles = vec![tokio::spawn(dispatch::run(
        shared.clone(),
        settings.dispatch_prefetch,
        stop.clone(),
    ))];
    if let Some(poll) = settings.poll {
        handles.push(tokio::spawn(
            drift::DriftWatch::new(shared.clone()).run(stop.clone()),
        ));
        handles.push(tokio::spawn(
            poll::Poller::new(shared.clone(), poll).run(stop.clone()),
        ));
    }
    handles.push(tokio::spawn(census(shared.clone(), stop.clone())));
    handles.push(tokio::spawn(
        sync::Syncer::new(shared.clone(), ctx, settings.sync).run(stop.clone()),
    ));
    handles
}

/// Keep the Applications gauge (by sync and health status) current.
async fn census(shared: Shared, stop: CancellationToken) {
    loop {
        let apps = shared.index.applications();
        shared
            .metrics
            .count_applications(apps.iter().map(|a| a.as_ref()));
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(CENSUS_INTERVAL) => {}
        }
    }
}
