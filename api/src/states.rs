//! The words an Application's status is written in, as types: what Argo CD
//! users read (`Synced`, `OutOfSync`, `Healthy`, `Succeeded`, …), serialized
//! exactly so, and listed as `enum` in the CRD schema.
//!
//! A word this version does not know (an older tool's, a newer release's,
//! a hand edit made before the CRD listed the words) reads as `Unknown`
//! rather than making the whole Application unreadable; still, add a word
//! to readers one release before writers use it.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Generates `as_str` and `Display` for a unit enum serialized by its name.
macro_rules! words {
    ($ty:ident { $($variant:ident),+ $(,)? }) => {
        impl $ty {
            /// Every word, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

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
    #[serde(other)]
    Unknown,
}
words!(SyncStatusCode {
    Synced,
    OutOfSync,
    Unknown
});

// Deserialized by hand (below): its fallback for unknown words sits in the
// middle of the order, where `#[serde(other)]` cannot go.
/// Health of an object or an Application, ordered from best to worst so
/// that the worst of several is their maximum.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, JsonSchema,
)]
pub enum HealthStatusCode {
    /// Running as intended.
    Healthy,
    /// Paused on purpose (a paused Deployment, a suspended Job or CronJob),
    /// as Argo CD says. Added readers first: read by the release before the
    /// one that writes it.
    Suspended,
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
    Suspended,
    Unknown,
    Progressing,
    Degraded,
    Missing
});

impl<'de> Deserialize<'de> for HealthStatusCode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let word = std::borrow::Cow::<str>::deserialize(deserializer)?;
        Ok(match word.as_ref() {
            "Healthy" => Self::Healthy,
            "Suspended" => Self::Suspended,
            "Progressing" => Self::Progressing,
            "Degraded" => Self::Degraded,
            "Missing" => Self::Missing,
            _ => Self::Unknown,
        })
    }
}

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
    /// A word this version does not know.
    #[serde(other)]
    Unknown,
}
words!(OperationPhase {
    Running,
    Succeeded,
    Failed,
    Superseded,
    Refreshed,
    Unknown
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
    /// A word this version does not know.
    #[serde(other)]
    Unknown,
}
words!(ResourceSyncCode {
    Synced,
    OutOfSync,
    Missing,
    RequiresPruning,
    PruneSkipped,
    Unknown
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
    /// A word this version does not know.
    #[serde(other)]
    Unknown,
}
words!(ResultCode {
    Synced,
    Pruned,
    PruneSkipped,
    RequiresPruning,
    Unknown
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
    #[serde(other)]
    Unknown,
}
words!(ConditionStatus {
    True,
    False,
    Unknown
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suspended_is_read_and_ranks_between_healthy_and_unknown() {
        let health: HealthStatusCode =
            serde_json::from_value(serde_json::json!("Suspended")).unwrap();
        assert_eq!(health, HealthStatusCode::Suspended);
        assert_eq!(serde_json::to_value(health).unwrap(), "Suspended");
        assert!(HealthStatusCode::Healthy < health && health < HealthStatusCode::Unknown);
    }

    #[test]
    fn unknown_words_read_as_unknown_and_known_ones_round_trip() {
        let status: crate::ApplicationStatus = serde_json::from_value(serde_json::json!({
            "sync": {"status": "Bogus"},
            "health": {"status": "Paused"},
            "operationState": {"phase": "Terminating", "resources": [
                {"version": "v1", "kind": "ConfigMap", "name": "a", "status": "SyncFailed", "hookPhase": "Pending"}
            ]},
            "resources": [{"version": "v1", "kind": "ConfigMap", "name": "a", "status": "Weird"}],
            "conditions": [{"type": "X", "status": "Maybe"}],
        }))
        .unwrap();
        assert_eq!(status.sync.unwrap().status, SyncStatusCode::Unknown);
        assert_eq!(status.health.unwrap().status, HealthStatusCode::Unknown);
        let operation = status.operation_state.unwrap();
        assert_eq!(operation.phase, OperationPhase::Unknown);
        assert_eq!(operation.resources[0].status, ResultCode::Unknown);
        assert_eq!(
            operation.resources[0].hook_phase,
            Some(OperationPhase::Unknown)
        );
        assert_eq!(status.resources[0].status, ResourceSyncCode::Unknown);
        assert_eq!(status.conditions[0].status, ConditionStatus::Unknown);
        for phase in [OperationPhase::Succeeded, OperationPhase::Superseded] {
            let text = serde_json::to_string(&phase).unwrap();
            assert_eq!(text, format!("\"{phase}\""));
            assert_eq!(
                serde_json::from_str::<OperationPhase>(&text).unwrap(),
                phase
            );
        }
    }
}
