//! A job whose Application is being deleted: finish the deletion (see
//! [`crate::sync::finalize`]) instead of syncing, and the Events the sync
//! loop writes.

use pushsync_api::Application;
use tokio_util::sync::CancellationToken;

use super::{Done, Failure, Syncer};

impl Syncer {
    /// The Application is being deleted: finish that (its objects, hooks
    /// and finalizer) instead of syncing.
    pub(super) async fn finalize(
        &self,
        app: &Application,
        lost: &CancellationToken,
        stop: &CancellationToken,
    ) -> Result<Done, Failure> {
        use crate::sync::finalize::{Finalized, finalize};
        let inner = &self.inner;
        let Some(app_ref) = crate::context::app_ref(app) else {
            return Ok(Done::Gone);
        };
        let finalized = tokio::select! {
            finalized = finalize(&inner.ctx, app) => finalized,
            () = lost.cancelled() => return Err(Failure::LockLost),
            // Shutting down: as a sync, `drain` to finish, then the job goes
            // back to the queue (deleting again is harmless).
            () = async {
                stop.cancelled().await;
                tokio::time::sleep(inner.settings.drain).await;
            } => {
                tracing::warn!(application = %app_ref, "shutting down mid-deletion; the job goes back to the queue");
                let _ = inner.shared.leases.abandon(&app_ref).await;
                return Ok(Done::Stopped);
            }
        };
        match finalized {
            Ok(Finalized::NotOurs) => {
                inner.shared.leases.finish(&app_ref).await?;
                Ok(Done::Gone)
            }
            Ok(Finalized::Done { deleted }) => {
                tracing::info!(application = %app_ref, deleted, "the Application was deleted with its objects");
                inner.shared.leases.finish(&app_ref).await?;
                Ok(Done::Gone)
            }
            Ok(Finalized::Pending(why)) => {
                self.events()
                    .record(app, crate::events::Kind::Warning, "DeletionPending", &why)
                    .await;
                let _ = inner.shared.leases.abandon(&app_ref).await;
                Err(Failure::Finalizing(why))
            }
            Err(error) => {
                let _ = inner.shared.leases.abandon(&app_ref).await;
                Err(error.into())
            }
        }
    }

    /// Events as this worker.
    pub(super) fn events(&self) -> crate::events::Recorder {
        crate::events::Recorder::new(
            self.inner.shared.client.clone(),
            self.inner.shared.leases.identity(),
        )
    }
}
