//! What a sync reports: its [`Outcome`] (turned into the status patch by
//! `crate::status`) and the time each phase took.

use std::time::Duration;

use pushsync_api::{
    Condition, HealthStatusCode, OperationPhase, ResourceRef, ResourceResult, ResourceStatus,
    ResourceSyncCode, SyncStatusCode,
};

use crate::health::Assessment;

/// How a sync ended, when it ended (transient failures are errors instead).
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The commit synced, attempted or compared against.
    pub revision: Option<String>,
    /// How the operation ended; `Refreshed` when the cluster was only
    /// compared with Git.
    pub phase: OperationPhase,
    /// Whether the cluster matches Git.
    pub sync_status: SyncStatusCode,
    /// A readable summary.
    pub message: String,
    /// Per-resource results of the operation.
    pub resources: Vec<ResourceResult>,
    /// Each managed resource as compared with Git.
    pub live: Vec<ResourceStatus>,
    /// What is applied now (for the next prune).
    pub inventory: Vec<ResourceRef>,
    /// Health after the sync.
    pub health: Assessment,
    /// A condition to show, when something is wrong.
    pub condition: Option<Condition>,
    /// When the sync started.
    pub started_at: jiff::Timestamp,
    /// When the push that asked for it was received.
    pub push_received_at: Option<jiff::Timestamp>,
    /// Time per phase.
    pub timings: Timings,
    /// Digest of what was compared: the rendered manifests and the settings
    /// that shape an apply.
    pub desired_digest: Option<String>,
}

impl Outcome {
    /// Whether a sync operation ran (rather than only a comparison).
    pub fn operated(&self) -> bool {
        self.phase != OperationPhase::Refreshed
    }

    /// A failed sync: `condition` says why; the inventory stays `previous`
    /// (nothing of this revision was applied, or it is added by the caller).
    pub fn failed(
        revision: Option<String>,
        condition: Condition,
        message: String,
        previous: &[ResourceRef],
    ) -> Self {
        Self {
            revision,
            phase: OperationPhase::Failed,
            sync_status: SyncStatusCode::OutOfSync,
            condition: Some(condition),
            message,
            inventory: previous.to_vec(),
            ..Self::default()
        }
    }
}

impl Default for Outcome {
    fn default() -> Self {
        Self {
            revision: None,
            phase: OperationPhase::Failed,
            sync_status: SyncStatusCode::Unknown,
            message: String::new(),
            resources: Vec::new(),
            live: Vec::new(),
            inventory: Vec::new(),
            health: Assessment {
                health: HealthStatusCode::Unknown,
                message: String::new(),
            },
            condition: None,
            started_at: jiff::Timestamp::now(),
            push_received_at: None,
            timings: Timings::default(),
            desired_digest: None,
        }
    }
}

/// Time spent in each phase of one sync.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timings {
    /// Resolving the revision (fetching when the remote moved).
    pub fetch: Duration,
    /// Reading the tree, rendering and validating.
    pub render: Duration,
    /// Comparing with the cluster (dry-run applies and reads).
    pub diff: Duration,
    /// Applying, hooks and pruning.
    pub apply: Duration,
    /// Waiting for waves to become healthy.
    pub health: Duration,
}

impl Timings {
    /// Each phase with its metric label.
    pub fn phases(&self) -> [(&'static str, Duration); 5] {
        [
            ("fetch", self.fetch),
            ("render", self.render),
            ("diff", self.diff),
            ("apply", self.apply),
            ("health", self.health),
        ]
    }
}

/// How a leftover of the previous inventory that was not pruned is reported.
pub(super) fn leftover_status(resource: ResourceRef, protected: bool) -> ResourceStatus {
    ResourceStatus {
        resource,
        status: if protected {
            ResourceSyncCode::PruneSkipped
        } else {
            ResourceSyncCode::RequiresPruning
        },
        health: None,
        diff: None,
        resource_version: None,
    }
}
