//! The words an Application's status is written in, as types: what Argo CD
//! users read (`Synced`, `OutOfSync`, `Healthy`, `Succeeded`, …), serialized
//! exactly so, and listed as `enum` in the CRD schema.
//!
//! Adding a variant is a compatible change only once every worker that may
//! read the status knows it: an unknown word makes the whole Application
//! unreadable to an older worker. Add, release, then write.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Generates `as_str` and `Display` for a unit enum serialized by its name.
macro_rules! words {
    ($ty:ident { $($variant:ident),+ $(,)? }) => {
        impl $ty {
            /// The word used in status.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => stringify!($variant),)+
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// Whether the cluster matches Git (`status.sync.status`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum SyncStatusCode {
    /// Every resource matches its rendered manifest.
    Synced,
    /// Something differs, is missing, or needs pruning.
    OutOfSync,
    /// Not compared (never synced, the source failed, the ref was deleted).
    #[default]
    Unknown,
}
words!(SyncStatusCode {
    Synced,
    OutOfSync,
    Unknown
});

/// Health of an object or an Application, ordered from best to worst so
/// that the worst of several is their maximum.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
)]
pub enum HealthStatusCode {
    /// Running as intended.
    Healthy,
    /// No health rule for this kind: assumed fine, reported as such.
    #[default]
    Unknown,
    /// Not there yet (a rollout, a Job running, a load balancer pending).
    Progressing,
    /// Failed (progress deadline exceeded, Job failed, claim lost).
    Degraded,
    /// Expected but absent.
    Missing,
}
words!(HealthStatusCode {
    Healthy,
    Unknown,
    Progressing,
    Degraded,
    Missing
});

/// How a sync operation ended, or that only a comparison ran
/// (`status.operationState.phase`, and a hook's phase).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum OperationPhase {
    /// Under way (a hook that was applied and is awaited).
    Running,
    /// Everything applied and healthy.
    Succeeded,
    /// Something could not be applied, or did not become healthy.
    #[default]
    Failed,
    /// A newer commit replaced it while it waited for health.
    Superseded,
    /// No operation: Git and the cluster were only compared.
    Refreshed,
}
words!(OperationPhase {
    Running,
    Succeeded,
    Failed,
    Superseded,
    Refreshed
});

/// One managed resource as last compared with Git (`status.resources[].status`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ResourceSyncCode {
    /// The live object matches.
    Synced,
    /// The live object differs (see its diff).
    #[default]
    OutOfSync,
    /// The object does not exist.
    Missing,
    /// It left Git but prune is off.
    RequiresPruning,
    /// It left Git and is protected by `pushsync.dev/prune: "false"`.
    PruneSkipped,
}
words!(ResourceSyncCode {
    Synced,
    OutOfSync,
    Missing,
    RequiresPruning,
    PruneSkipped
});

/// What a sync operation did to one resource (`operationState.resources[].status`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ResultCode {
    /// Applied.
    #[default]
    Synced,
    /// Deleted because it left Git.
    Pruned,
    /// Left Git, protected from pruning.
    PruneSkipped,
    /// Left Git, prune is off.
    RequiresPruning,
}
words!(ResultCode {
    Synced,
    Pruned,
    PruneSkipped,
    RequiresPruning
});

/// A condition's status, as Kubernetes writes it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    /// The condition holds.
    #[default]
    True,
    /// It does not.
    False,
    /// Not known.
    Unknown,
}
words!(ConditionStatus {
    True,
    False,
    Unknown
});
