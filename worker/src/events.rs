//! Kubernetes Events on Applications, so `kubectl describe psapp NAME` (and
//! `kubectl get events`) tells what the worker did: a sync applied or
//! failed, what it pruned, a job given up on, a deletion that cannot finish.
//!
//! Written as core/v1 Events, the API `kubectl describe` reads (by
//! `involvedObject`); the API server serves the same objects through
//! `events.k8s.io/v1`. An Event that cannot be written is logged at debug
//! and never fails a sync: Events are best effort in Kubernetes too.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, PostParams};
use pushsync_api::{Application, OperationPhase, ResultCode};

use crate::sync::Outcome;

/// What an Event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Something went as it should.
    Normal,
    /// Someone should look.
    Warning,
}

/// Longest message kept (the API server truncates at 1 KiB too).
const MESSAGE_LIMIT: usize = 1024;

/// Writes Events as this worker.
#[derive(Clone)]
pub struct Recorder {
    client: kube::Client,
    instance: String,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

impl Recorder {
    /// Events reported by `instance` (the worker's identity).
    pub fn new(client: kube::Client, instance: &str) -> Self {
        Self {
            client,
            instance: instance.to_owned(),
        }
    }

    /// Record `reason` with `message` on `app`.
    pub async fn record(&self, app: &Application, kind: Kind, reason: &str, message: &str) {
        let (Some(name), Some(namespace)) = (
            app.metadata.name.as_deref(),
            app.metadata.namespace.as_deref(),
        ) else {
            return;
        };
        let now = Time(jiff::Timestamp::now());
        let message: String = message.chars().take(MESSAGE_LIMIT).collect();
        let event = Event {
            metadata: ObjectMeta {
                // Unique per Event, as client-go names them.
                name: Some(format!(
                    "{name}.{:x}",
                    jiff::Timestamp::now().as_nanosecond()
                )),
                namespace: Some(namespace.to_owned()),
                ..ObjectMeta::default()
            },
            involved_object: ObjectReference {
                api_version: Some("pushsync.dev/v1alpha1".to_owned()),
                kind: Some("Application".to_owned()),
                name: Some(name.to_owned()),
                namespace: Some(namespace.to_owned()),
                uid: app.metadata.uid.clone(),
                resource_version: app.metadata.resource_version.clone(),
                ..ObjectReference::default()
            },
            reason: Some(reason.to_owned()),
            message: Some(message),
            type_: Some(
                match kind {
                    Kind::Normal => "Normal",
                    Kind::Warning => "Warning",
                }
                .to_owned(),
            ),
            source: Some(EventSource {
                component: Some("pushsync-worker".to_owned()),
                host: None,
            }),
            reporting_component: Some("pushsync.dev/worker".to_owned()),
            reporting_instance: Some(self.instance.clone()),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            count: Some(1),
            action: Some(reason.to_owned()),
            ..Event::default()
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), namespace);
        if let Err(error) = api.create(&PostParams::default(), &event).await {
            tracing::debug!(application = %format!("{namespace}/{name}"), reason, error = %error, "an Event could not be written");
        }
    }

    /// The Events a sync's outcome is worth: applied, failed, superseded,
    /// and what was pruned (a comparison that applied nothing is none).
    pub async fn outcome(&self, app: &Application, outcome: &Outcome) {
        let revision = outcome
            .revision
            .as_deref()
            .map(crate::status::short_revision)
            .unwrap_or("-");
        match outcome.phase {
            OperationPhase::Succeeded => {
                self.record(
                    app,
                    Kind::Normal,
                    "Synced",
                    &format!("{revision}: {}", outcome.message),
                )
                .await;
            }
            OperationPhase::Failed => {
                // The problem's type: SourceFailed, RenderFailed, SyncFailed, …
                let reason = outcome
                    .condition
                    .as_ref()
                    .map_or_else(|| "SyncFailed".to_owned(), |c| c.kind.clone());
                self.record(
                    app,
                    Kind::Warning,
                    &reason,
                    &format!("{revision}: {}", outcome.message),
                )
                .await;
            }
            OperationPhase::Superseded => {
                self.record(app, Kind::Normal, "Superseded", &outcome.message)
                    .await;
            }
            _ => {}
        }
        let pruned: Vec<String> = outcome
            .resources
            .iter()
            .filter(|r| r.status == ResultCode::Pruned)
            .map(|r| format!("{} {}", r.resource.kind, r.resource.name))
            .collect();
        if !pruned.is_empty() {
            self.record(
                app,
                Kind::Normal,
                "Pruned",
                &format!("pruned {}", pruned.join(", ")),
            )
            .await;
        }
    }
}
