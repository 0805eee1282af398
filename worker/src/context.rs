//! What the worker's loops share: the queue, the cluster, the Application
//! index, the git cache, Leases and metrics, in one cheap-to-clone value, so
//! that each loop depends on these parts and never on another loop.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use pushsync_broker::{Broker, Outgoing};
use pushsync_proto::{AppRef, Message, SyncJob, SyncTrigger, Topology};

use crate::git::GitCache;
use crate::index::Index;
use crate::lease::Leases;
use crate::metrics::Metrics;

/// The parts every loop works with; cheap to clone.
#[derive(Clone)]
pub struct Shared {
    /// The queue.
    pub broker: Broker,
    /// Its exchange and queue names.
    pub topology: Topology,
    /// The cluster.
    pub client: kube::Client,
    /// The Applications known.
    pub index: Index,
    /// Git sources (the poll asks remotes through it; syncs read through it).
    pub git: GitCache,
    /// Sync locks and leader election.
    pub leases: Leases,
    /// Metrics.
    pub metrics: Metrics,
    /// Whether this worker is the poll leader (the poll loop sets it; the
    /// drift watch acts only while it is set).
    pub leadership: Leadership,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("topology", &self.topology)
            .field("index", &self.index)
            .field("leases", &self.leases)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Publish sync jobs, confirmed by the broker; `false` (logged) when
    /// they were not, so the caller tries again later.
    pub async fn enqueue(&self, jobs: &[Outgoing]) -> bool {
        if jobs.is_empty() {
            return true;
        }
        match self.broker.publish_all(jobs).await {
            Ok(()) => {
                self.metrics.sync_jobs_published.inc_by(jobs.len() as u64);
                true
            }
            Err(error) => {
                tracing::warn!(error = %error, error_kind = error.kind(), jobs = jobs.len(), "publishing sync jobs failed");
                false
            }
        }
    }
}

/// A flag one loop sets and others read: set while this worker leads.
#[derive(Debug, Clone, Default)]
pub struct Leadership(Arc<AtomicBool>);

impl Leadership {
    /// Whether this worker leads now.
    pub fn is_leading(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Record whether this worker leads.
    pub fn set(&self, leading: bool) {
        self.0.store(leading, Ordering::Relaxed);
    }
}

/// A sync job for `app`, ready to publish; `id` names what asked for it
/// (a delivery, a poll cycle, a manual request) and makes the job's id.
pub fn job(app: AppRef, trigger: SyncTrigger, id: &str, topology: &Topology) -> Option<Outgoing> {
    outgoing(
        SyncJob {
            job_id: format!("{id}/{app}"),
            trigger,
            requested_at: jiff::Timestamp::now(),
            application: app,
            failures: 0,
        },
        topology,
    )
}

/// `job` as a message for the jobs exchange (`None` if it cannot be encoded).
pub fn outgoing(job: SyncJob, topology: &Topology) -> Option<Outgoing> {
    let message_id = job.job_id.clone();
    let message = Message::SyncJobV1(job);
    Some(Outgoing {
        exchange: topology.jobs_exchange(),
        routing_key: Topology::SYNC_ROUTING_KEY.to_owned(),
        message_id,
        schema: message.schema(),
        body: message.encode().ok()?,
    })
}

/// The reference of an Application read from the API (`None` without a
/// name or namespace).
pub fn app_ref(app: &pushsync_api::Application) -> Option<AppRef> {
    Some(AppRef {
        namespace: app.metadata.namespace.clone()?,
        name: app.metadata.name.clone()?,
    })
}
