//! The worker's loops, side by side: [`dispatch`] (push events → sync jobs),
//! [`sync`] (sync jobs → synced Applications), [`poll`] (the fallback poll
//! and manual triggers, on the elected leader), [`drift`] (fast self-heal,
//! on the same leader) and [`reconcile`] (new and changed Applications, on
//! the same leader). Each depends on [`Shared`] and the parts
//! below it, never on another loop; [`spawn`] starts them together, so the
//! binary, `pushsync-local` and the benchmark run the same thing.

pub mod dispatch;
pub mod drift;
pub mod poll;
pub mod reconcile;
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
    /// The fallback poll, manual triggers, fast self-heal and the reconcile
    /// of new and changed Applications (all on the elected leader); `None`
    /// runs none of them.
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
        handles.push(tokio::spawn(reconcile::run(
            shared.clone(),
            ctx.projects.clone(),
            stop.clone(),
        )));
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

#[cfg(test)]
mod tests {
    /// The loops stay side by side: no loop names another (they share
    /// `Shared` and the parts below it instead).
    #[test]
    fn no_loop_imports_another() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/loops");
        let loops = ["dispatch", "sync", "poll", "drift", "reconcile"];
        let mut sources = Vec::new();
        let mut stack = vec![dir.clone()];
        while let Some(path) = stack.pop() {
            for entry in std::fs::read_dir(&path).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.file_name().is_some_and(|n| n != "mod.rs") {
                    sources.push(path);
                }
            }
        }
        assert!(sources.len() >= loops.len());
        for path in sources {
            let text = std::fs::read_to_string(&path).unwrap();
            let relative = path
                .strip_prefix(&dir)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let own = loops
                .iter()
                .find(|l| relative.starts_with(*l))
                .copied()
                .unwrap_or_default();
            for other in loops.iter().filter(|l| **l != own) {
                for needle in [
                    format!("crate::loops::{other}"),
                    format!("super::{other}"),
                    format!("loops::{other}::"),
                ] {
                    assert!(
                        !text.contains(&needle),
                        "loops/{relative} names the {other} loop ({needle})"
                    );
                }
            }
        }
    }
}
