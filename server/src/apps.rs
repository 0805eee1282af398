//! Applications as the server reads them: a watch-fed cache (so a page of a
//! thousand Applications costs no API call), the summary a list shows, the
//! filters, and the changes live pages subscribe to.

use std::sync::Arc;

use futures_util::StreamExt;
use kube::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use pushsync_api::Application;
use serde::Serialize;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::policy::{Policy, Role, User};

/// One change to an Application, as live pages hear of it.
#[derive(Debug, Clone)]
pub enum Change {
    /// Created or changed: its summary now.
    Applied(Box<Summary>),
    /// Deleted.
    Deleted {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// Project (for visibility).
        project: String,
    },
}

/// The cached Applications of the watched namespaces.
#[derive(Clone)]
pub struct Apps {
    stores: Vec<Store<Application>>,
    changes: broadcast::Sender<Change>,
}

/// What a list row shows.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `spec.project`.
    pub project: String,
    /// Labels.
    pub labels: std::collections::BTreeMap<String, String>,
    /// Repository.
    pub repo_url: String,
    /// Path in the repository.
    pub path: String,
    /// `spec.source.targetRevision`.
    pub target_revision: String,
    /// Where it deploys.
    pub destination_namespace: String,
    /// `Synced`, `OutOfSync`, `Unknown`.
    pub sync: String,
    /// `Healthy`, `Progressing`, `Degraded`, `Suspended`, `Missing`, `Unknown`.
    pub health: String,
    /// The health message, if any.
    pub health_message: String,
    /// The synced revision, short.
    pub revision: String,
    /// The last operation's phase (`Running`, `Succeeded`, `Failed`, …).
    pub operation: String,
    /// When it finished (or started, while running).
    pub operation_at: String,
    /// `spec.suspend`.
    pub suspended: bool,
    /// How many resources it manages.
    pub resources: usize,
}

impl Summary {
    /// The health a page shows: `Suspended` while automated syncs are off.
    pub fn shown_health(&self) -> &str {
        if self.suspended {
            "Suspended"
        } else {
            &self.health
        }
    }

    /// The summary of `app`.
    pub fn of(app: &Application) -> Summary {
        let status = app.status.as_ref();
        let operation = status.and_then(|s| s.operation_state.as_ref());
        Summary {
            namespace: app.metadata.namespace.clone().unwrap_or_default(),
            name: app.metadata.name.clone().unwrap_or_default(),
            project: project_of(app).to_owned(),
            labels: app.metadata.labels.clone().unwrap_or_default(),
            repo_url: app.spec.source.repo_url.clone(),
            path: app.spec.source.path.clone(),
            target_revision: app.spec.source.target_revision.clone(),
            destination_namespace: app.spec.destination.namespace.clone().unwrap_or_default(),
            sync: status
                .and_then(|s| s.sync.as_ref())
                .map_or("Unknown", |s| s.status.as_str())
                .to_owned(),
            health: status
                .and_then(|s| s.health.as_ref())
                .map_or("Unknown", |h| h.status.as_str())
                .to_owned(),
            health_message: status
                .and_then(|s| s.health.as_ref())
                .and_then(|h| h.message.clone())
                .unwrap_or_default(),
            revision: status
                .and_then(|s| s.sync.as_ref())
                .and_then(|s| s.short_revision.clone().or_else(|| s.revision.clone()))
                .unwrap_or_default(),
            operation: operation
                .map(|o| o.phase.as_str().to_owned())
                .unwrap_or_default(),
            operation_at: operation
                .and_then(|o| o.finished_at.clone().or_else(|| o.started_at.clone()))
                .unwrap_or_default(),
            suspended: app.spec.suspend,
            resources: status.map_or(0, |s| s.resources.len()),
        }
    }
}

/// The Project an Application belongs to.
pub fn project_of(app: &Application) -> &str {
    if app.spec.project.is_empty() {
        "default"
    } else {
        &app.spec.project
    }
}

/// What a list asks for (all optional; all must match).
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct Filter {
    /// Project name.
    #[serde(default)]
    pub project: String,
    /// Namespace.
    #[serde(default)]
    pub namespace: String,
    /// Sync status.
    #[serde(default)]
    pub sync: String,
    /// Health status.
    #[serde(default)]
    pub health: String,
    /// `key=value` or `key` (label present).
    #[serde(default)]
    pub label: String,
    /// Words found in the name, repository, path or project.
    #[serde(default)]
    pub q: String,
}

impl Filter {
    /// Whether `summary` passes.
    pub fn matches(&self, summary: &Summary) -> bool {
        let equal = |wanted: &str, have: &str| wanted.is_empty() || wanted == have;
        let label = match self.label.split_once('=') {
            _ if self.label.is_empty() => true,
            Some((key, value)) => summary
                .labels
                .get(key.trim())
                .is_some_and(|v| v == value.trim()),
            None => summary.labels.contains_key(self.label.trim()),
        };
        let text = || {
            format!(
                "{} {} {} {} {}",
                summary.name, summary.namespace, summary.repo_url, summary.path, summary.project
            )
            .to_lowercase()
        };
        equal(&self.project, &summary.project)
            && equal(&self.namespace, &summary.namespace)
            && equal(&self.sync, &summary.sync)
            && equal(&self.health, &summary.health)
            && label
            && (self.q.trim().is_empty()
                || self
                    .q
                    .to_lowercase()
                    .split_whitespace()
                    .all(|word| text().contains(word)))
    }
}

impl Apps {
    /// Start watching Applications in `namespaces` (all when empty) until
    /// `shutdown`.
    pub fn watch(client: kube::Client, namespaces: &[String], shutdown: CancellationToken) -> Apps {
        let (changes, _) = broadcast::channel(1024);
        let apis: Vec<Api<Application>> = if namespaces.is_empty() {
            vec![Api::all(client)]
        } else {
            namespaces
                .iter()
                .map(|ns| Api::namespaced(client.clone(), ns))
                .collect()
        };
        let mut stores = Vec::new();
        for api in apis {
            let (reader, writer) = reflector::store();
            stores.push(reader);
            let sender = changes.clone();
            let stop = shutdown.clone();
            let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()));
            tokio::spawn(async move {
                let mut stream = std::pin::pin!(stream);
                loop {
                    let event = tokio::select! {
                        () = stop.cancelled() => return,
                        event = stream.next() => event,
                    };
                    match event {
                        Some(Ok(watcher::Event::Apply(app) | watcher::Event::InitApply(app))) => {
                            let _ = sender.send(Change::Applied(Box::new(Summary::of(&app))));
                        }
                        Some(Ok(watcher::Event::Delete(app))) => {
                            let _ = sender.send(Change::Deleted {
                                namespace: app.metadata.namespace.clone().unwrap_or_default(),
                                name: app.metadata.name.clone().unwrap_or_default(),
                                project: project_of(&app).to_owned(),
                            });
                        }
                        Some(Ok(_)) => {}
                        Some(Err(error)) => {
                            tracing::warn!(error = %error, "watching Applications failed; retrying");
                            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                        }
                        None => return,
                    }
                }
            });
        }
        Apps { stores, changes }
    }

    /// Whether every watch has listed once.
    pub async fn ready(&self) {
        for store in &self.stores {
            let _ = store.wait_until_ready().await;
        }
    }

    /// Every cached Application.
    pub fn all(&self) -> Vec<Arc<Application>> {
        self.stores.iter().flat_map(Store::state).collect()
    }

    /// The Applications `user` may read, matching `filter`, by namespace and name.
    pub fn visible(&self, policy: &Policy, user: &User, filter: &Filter) -> Vec<Summary> {
        let mut summaries: Vec<Summary> = self
            .all()
            .iter()
            .filter(|app| policy.allows(user, project_of(app), Role::Read))
            .map(|app| Summary::of(app))
            .filter(|s| filter.matches(s))
            .collect();
        summaries.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        summaries
    }

    /// One Application, if `user` may read it (else not found: the answer
    /// for one that does not exist, so other Projects' names do not leak).
    pub fn get(
        &self,
        policy: &Policy,
        user: &User,
        namespace: &str,
        name: &str,
    ) -> Option<Arc<Application>> {
        self.all()
            .into_iter()
            .find(|app| {
                app.metadata.namespace.as_deref() == Some(namespace)
                    && app.metadata.name.as_deref() == Some(name)
            })
            .filter(|app| policy.allows(user, project_of(app), Role::Read))
    }

    /// Changes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }
}
