//! What a user can ask of an Application, written the way the `pushsync`
//! CLI writes it: the trigger annotations the workers read (so one sync per
//! Application still holds: the worker owning it acts on them) and
//! `spec.suspend`. The sync annotation's value is `pushsync_proto::SyncRequest`,
//! the type the worker parses.

use kube::Api;
use kube::api::{Patch, PatchParams};
use pushsync_api::Application;
use pushsync_proto::{ResourceSelector, SyncRequest};
use serde::Deserialize;
use serde_json::json;

use crate::error::ServerError;
use crate::policy::Role;

/// An action and its arguments, as the API receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Sync (selected resources only when some are named).
    Sync {
        /// `[GROUP]:KIND:[NAMESPACE/]NAME` each.
        resources: Vec<String>,
        /// Prune override.
        prune: Option<bool>,
    },
    /// Compare again now.
    Refresh,
    /// Deploy an earlier revision from the history.
    Rollback {
        /// A deployed revision (7 or more characters of it).
        revision: String,
    },
    /// Stop automated syncs.
    Suspend,
    /// Start them again.
    Resume,
}

/// A sync request's body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncBody {
    /// Resources to sync (all when empty).
    #[serde(default)]
    pub resources: Vec<String>,
    /// Prune override.
    #[serde(default)]
    pub prune: Option<bool>,
}

/// A rollback request's body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackBody {
    /// The revision.
    pub revision: String,
}

impl Action {
    /// The role the action needs.
    pub fn needs(&self) -> Role {
        match self {
            Action::Sync { .. } | Action::Refresh => Role::Sync,
            Action::Rollback { .. } => Role::Rollback,
            Action::Suspend | Action::Resume => Role::Admin,
        }
    }

    /// A word for messages and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Sync { .. } => "sync",
            Action::Refresh => "refresh",
            Action::Rollback { .. } => "rollback",
            Action::Suspend => "suspend",
            Action::Resume => "resume",
        }
    }

    /// The merge patch that asks for it, checked against `app` (a rollback
    /// names a revision it deployed; resources read as selectors).
    pub fn patch(&self, app: &Application) -> Result<serde_json::Value, ServerError> {
        let nonce = jiff::Timestamp::now().to_string();
        Ok(match self {
            Action::Sync { resources, prune } => {
                let resources = resources
                    .iter()
                    .map(|r| {
                        ResourceSelector::parse(r).ok_or_else(|| {
                            ServerError::Invalid(format!(
                                "resource {r:?}: write [GROUP]:KIND:[NAMESPACE/]NAME (apps:Deployment:web)"
                            ))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let request = SyncRequest {
                    resources,
                    prune: *prune,
                    revision: None,
                };
                json!({"metadata": {"annotations": {pushsync_api::SYNC_ANNOTATION: request.annotation(&nonce)}}})
            }
            Action::Refresh => {
                json!({"metadata": {"annotations": {pushsync_api::REFRESH_ANNOTATION: nonce}}})
            }
            Action::Rollback { revision } => {
                let wanted = revision.trim().to_ascii_lowercase();
                let deployed = app
                    .status
                    .as_ref()
                    .is_some_and(|s| s.history.iter().any(|h| h.revision.starts_with(&wanted)));
                if wanted.len() < 7 || !wanted.bytes().all(|b| b.is_ascii_hexdigit()) || !deployed {
                    return Err(ServerError::Invalid(format!(
                        "{revision:?} is not a revision this Application deployed (7 or more hex digits of one from its history)"
                    )));
                }
                json!({"metadata": {"annotations": {pushsync_api::ROLLBACK_ANNOTATION: wanted}}})
            }
            Action::Suspend => json!({"spec": {"suspend": true}}),
            Action::Resume => json!({"spec": {"suspend": false}}),
        })
    }
}

/// Ask for `action` on `app`.
pub async fn perform(
    client: &kube::Client,
    app: &Application,
    action: &Action,
) -> Result<(), ServerError> {
    let namespace = app.metadata.namespace.clone().unwrap_or_default();
    let name = app.metadata.name.clone().unwrap_or_default();
    let patch = action.patch(app)?;
    let api: Api<Application> = Api::namespaced(client.clone(), &namespace);
    let params = PatchParams {
        field_manager: Some("pushsync-server".to_owned()),
        ..PatchParams::default()
    };
    api.patch(&name, &params, &Patch::Merge(&patch))
        .await
        .map_err(ServerError::kube(format!(
            "asking {namespace}/{name} to {}",
            action.name()
        )))?;
    Ok(())
}
