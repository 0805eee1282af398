//! The Applications a worker knows: from the cluster (a kube reflector, kept
//! current by a watch) or a fixed list.

use std::sync::Arc;

use futures_util::StreamExt;
use kube::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use pushsync_api::Application;
use pushsync_proto::{AppRef, RepoId};
use tokio_util::sync::CancellationToken;

use crate::routing::{AppSource, PATHS_ANNOTATION};

/// A store of `api`'s objects kept current by a watch until `stop`, and a
/// counter bumped at every change the watch delivers (`what` names the
/// objects in logs). The watcher backs off and resumes by itself.
pub(crate) fn reflect<K>(
    api: Api<K>,
    what: &'static str,
    stop: CancellationToken,
) -> (Store<K>, tokio::sync::watch::Receiver<u64>)
where
    K: kube::Resource
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (store, writer) = reflector::store();
    let stream = reflector::reflector(
        writer,
        watcher::watcher(api, watcher::Config::default()).default_backoff(),
    )
    .applied_objects();
    let (changes, changed) = tokio::sync::watch::channel(0_u64);
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                item = stream.next() => match item {
                    Some(Ok(_)) => changes.send_modify(|n| *n = n.wrapping_add(1)),
                    Some(Err(error)) => tracing::warn!(error = %error, "watching {what} failed; retrying"),
                    None => break,
                },
            }
        }
    });
    (store, changed)
}

/// Until `changes` differs from `seen` (then `seen` is updated): changes
/// between two calls are not lost. Forever once the watch has ended.
pub(crate) async fn next_change(changes: &tokio::sync::watch::Receiver<u64>, seen: &mut u64) {
    let mut changes = changes.clone();
    if changes
        .wait_for(|now| now != seen)
        .await
        .map(|now| *seen = *now)
        .is_err()
    {
        std::future::pending::<()>().await;
    }
}

/// The dispatch view of an Application; `None` when its `repoURL` is not a
/// repository URL (reported on the Application by the sync, not here).
pub fn source_of(app: &Application) -> Option<AppSource> {
    let namespace = app
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_owned());
    let name = app.metadata.name.clone()?;
    Some(AppSource {
        app: AppRef { namespace, name },
        repo: RepoId::parse(&app.spec.source.repo_url).ok()?,
        target_revision: app.spec.source.target_revision.clone(),
        path: app.spec.source.path.clone(),
        extra_paths: app
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(PATHS_ANNOTATION))
            .cloned(),
    })
}

/// Which namespaces' Applications a worker honours (Argo CD's "apps in
/// any namespace", opt-in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Namespaces {
    /// Every namespace (`*`).
    All,
    /// Only these.
    Only(std::collections::BTreeSet<String>),
}

impl Namespaces {
    /// `*`, or a comma-separated list of namespaces.
    pub fn parse(list: &str) -> Option<Self> {
        if list.trim() == "*" {
            return Some(Self::All);
        }
        let names: std::collections::BTreeSet<String> = list
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect();
        let valid = !names.is_empty()
            && names.iter().all(|n| {
                n.len() <= 63
                    && n.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            });
        valid.then_some(Self::Only(names))
    }

    /// Just `namespace`.
    pub fn one(namespace: &str) -> Self {
        Self::Only(std::iter::once(namespace.to_owned()).collect())
    }

    /// Whether Applications in `namespace` are honoured.
    pub fn allows(&self, namespace: &str) -> bool {
        match self {
            Self::All => true,
            Self::Only(names) => names.contains(namespace),
        }
    }
}

impl std::fmt::Display for Namespaces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::All => f.write_str("*"),
            Self::Only(names) => f.write_str(&names.iter().cloned().collect::<Vec<_>>().join(",")),
        }
    }
}

/// The Applications a worker knows: watched in the cluster, or a fixed
/// list (benchmarks and tests that need no watch). Cheap to clone.
#[derive(Clone)]
pub struct Index(Known, Arc<Namespaces>);

#[derive(Clone)]
enum Known {
    /// The store, and a counter bumped at every change the watch delivers.
    Watched(Store<Application>, tokio::sync::watch::Receiver<u64>),
    Fixed(Arc<Vec<Arc<Application>>>),
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index")
            .field("applications", &self.applications().len())
            .finish()
    }
}

impl Index {
    /// Watch the Applications of `namespaces` until `stop` (one namespace
    /// is watched alone; several, through a cluster-wide watch filtered
    /// here).
    pub fn watch(client: kube::Client, namespaces: &Namespaces, stop: CancellationToken) -> Self {
        let api: Api<Application> = match namespaces {
            Namespaces::Only(names) if names.len() == 1 => {
                Api::namespaced(client, names.iter().next().map_or("", String::as_str))
            }
            _ => Api::all(client),
        };
        let (store, changed) = reflect(api, "Applications", stop);
        Self(Known::Watched(store, changed), Arc::new(namespaces.clone()))
    }

    /// Exactly these Applications, never changing.
    pub fn fixed(applications: Vec<Application>) -> Self {
        Self(
            Known::Fixed(Arc::new(applications.into_iter().map(Arc::new).collect())),
            Arc::new(Namespaces::All),
        )
    }

    /// Wait until the first listing arrived.
    pub async fn ready(&self) -> bool {
        match &self.0 {
            Known::Watched(store, _) => store.wait_until_ready().await.is_ok(),
            Known::Fixed(_) => true,
        }
    }

    /// Until an Application is created or changed (never, for a fixed
    /// list). Changes between two calls are not lost: each call returns at
    /// once when something changed since the caller's last call.
    pub async fn changed(&self, seen: &mut u64) {
        match &self.0 {
            Known::Watched(_, changed) => next_change(changed, seen).await,
            Known::Fixed(_) => std::future::pending().await,
        }
    }

    /// Every known Application (of the honoured namespaces).
    pub fn applications(&self) -> Vec<Arc<Application>> {
        let mut all = match &self.0 {
            Known::Watched(store, _) => store.state(),
            Known::Fixed(apps) => apps.as_ref().clone(),
        };
        all.retain(|a| {
            self.1
                .allows(a.metadata.namespace.as_deref().unwrap_or_default())
        });
        all
    }

    /// One Application (`None` outside the honoured namespaces).
    pub fn get(&self, app: &AppRef) -> Option<Arc<Application>> {
        if !self.1.allows(&app.namespace) {
            return None;
        }
        match &self.0 {
            Known::Watched(store, _) => {
                store.get(&ObjectRef::new(&app.name).within(&app.namespace))
            }
            Known::Fixed(apps) => apps
                .iter()
                .find(|a| {
                    a.metadata.name.as_deref() == Some(app.name.as_str())
                        && a.metadata.namespace.as_deref() == Some(app.namespace.as_str())
                })
                .cloned(),
        }
    }

    /// The dispatch view of every Application.
    pub fn sources(&self) -> Vec<AppSource> {
        self.applications()
            .iter()
            .filter_map(|a| source_of(a))
            .collect()
    }
}
