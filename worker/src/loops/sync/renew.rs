//! Holding an Application's Lease during a sync: renewals, newer revisions
//! announced to the running sync, and the running-syncs gauge.

use std::time::Duration;

use pushsync_proto::AppRef;
use pushsync_service::error_chain;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use std::sync::Arc;

use super::{Announce, Inner, Syncer};
use crate::lease::{Leases, Renewal};
use crate::sync::Newer;

/// Keep `app`'s Lease while the returned handle lives: renew it every third
/// of its duration, read it every `look` in between (the lock poll
/// interval: other workers' newer revisions are heard as soon as their jobs
/// would look, without more writes), and announce newer requested
/// revisions to the running sync; the token is cancelled once the Lease is
/// lost. The returned sender announces too (jobs of this process).
pub(super) fn renew(
    leases: Leases,
    app: AppRef,
    look: Duration,
) -> (Announce, Newer, CancellationToken, AbortOnDropHandle<()>) {
    let (announce, newer) = Newer::channel();
    let lost = CancellationToken::new();
    let sender = announce.clone();
    let renew_every = (leases.duration() / 3).max(Duration::from_millis(100));
    let tick = look.clamp(Duration::from_millis(100), renew_every);
    let task = tokio::spawn({
        let lost = lost.clone();
        async move {
            let mut renewed = tokio::time::Instant::now();
            loop {
                tokio::time::sleep(tick).await;
                let answer = if renewed.elapsed() + tick > renew_every {
                    renewed = tokio::time::Instant::now();
                    leases.renew(&app).await
                } else {
                    leases.peek(&app).await
                };
                match answer {
                    Ok(Renewal::Held { newer }) => {
                        announce.send_replace(newer.flatten());
                    }
                    Ok(Renewal::Lost) => {
                        lost.cancel();
                        return;
                    }
                    Err(error) => {
                        tracing::warn!(application = %app, error_kind = error.kind(), error = %error_chain(&error), "renewing or reading the sync lock failed");
                    }
                }
            }
        }
    });
    (sender, newer, lost, AbortOnDropHandle::new(task))
}

/// Decrements a gauge when dropped.
pub(super) struct GaugeGuard(pub(super) prometheus::IntGauge);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Removes a running sync from [`Inner::running`] when it ends (only its
/// own entry: a later sync of the same Application may have replaced it).
pub(super) struct Running {
    pub(super) inner: Arc<Inner>,
    pub(super) app: AppRef,
    pub(super) announce: Announce,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(mut running) = self.inner.running.lock()
            && running
                .get(&self.app)
                .is_some_and(|current| current.same_channel(&self.announce))
        {
            running.remove(&self.app);
        }
    }
}

impl Syncer {
    /// Tell a sync of `app` running in this process that `revision` waits.
    pub(super) fn announce(&self, app: &AppRef, revision: &str) {
        if let Ok(running) = self.inner.running.lock()
            && let Some(announce) = running.get(app)
        {
            announce.send_if_modified(|newer| {
                let changed = newer.as_deref() != Some(revision);
                *newer = Some(revision.to_owned());
                changed
            });
        }
    }
}
