//! Where Projects come from: the install namespace, watched (so a sync
//! reads its project from memory), with a read through to the API server
//! when the watch has not seen a project yet (created a moment ago).

use std::sync::Arc;

use kube::Api;
use kube::runtime::reflector::{ObjectRef, Store};
use pushsync_api::Project;
use tokio_util::sync::CancellationToken;

/// The Projects of one install namespace. Cheap to clone.
#[derive(Clone)]
pub struct Projects {
    api: Option<Api<Project>>,
    namespace: String,
    store: Option<Store<Project>>,
    changes: Option<tokio::sync::watch::Receiver<u64>>,
    fixed: Arc<Vec<Arc<Project>>>,
}

impl std::fmt::Debug for Projects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Projects")
            .field("namespace", &self.namespace)
            .field("watched", &self.store.is_some())
            .finish()
    }
}

impl Projects {
    /// Read Projects in `namespace` on demand (tests, one-off syncs).
    pub fn read(client: kube::Client, namespace: &str) -> Self {
        Self {
            api: Some(Api::namespaced(client, namespace)),
            namespace: namespace.to_owned(),
            store: None,
            changes: None,
            fixed: Arc::default(),
        }
    }

    /// Exactly these Projects, never changing (tests and benchmarks that
    /// sync without the Project CRD).
    pub fn fixed(namespace: &str, projects: Vec<Project>) -> Self {
        Self {
            api: None,
            namespace: namespace.to_owned(),
            store: None,
            changes: None,
            fixed: Arc::new(projects.into_iter().map(Arc::new).collect()),
        }
    }

    /// Watch Projects in `namespace` until `stop`.
    pub fn watch(client: kube::Client, namespace: &str, stop: CancellationToken) -> Self {
        let api: Api<Project> = Api::namespaced(client, namespace);
        let (store, changed) = crate::index::reflect(api.clone(), "Projects", stop);
        Self {
            api: Some(api),
            namespace: namespace.to_owned(),
            store: Some(store),
            changes: Some(changed),
            fixed: Arc::default(),
        }
    }

    /// Wait until the watch has listed the Projects once (at once when they
    /// are read on demand or fixed).
    pub async fn ready(&self) -> bool {
        match &self.store {
            Some(store) => store.wait_until_ready().await.is_ok(),
            None => true,
        }
    }

    /// The namespace Projects are read from.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The project `name`: `Ok(None)` when it does not exist; `Err` when
    /// the API server could not say.
    pub async fn get(&self, name: &str) -> Result<Option<Arc<Project>>, kube::Error> {
        if let Some(project) = self
            .store
            .as_ref()
            .and_then(|store| store.get(&ObjectRef::new(name).within(&self.namespace)))
        {
            return Ok(Some(project));
        }
        if let Some(project) = self
            .fixed
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(name))
        {
            return Ok(Some(project.clone()));
        }
        match &self.api {
            Some(api) => Ok(api.get_opt(name).await?.map(Arc::new)),
            None => Ok(None),
        }
    }

    /// Every watched (or fixed) project; none when read on demand.
    pub fn all(&self) -> Vec<Arc<Project>> {
        match &self.store {
            Some(store) => store.state(),
            None => self.fixed.as_ref().clone(),
        }
    }

    /// Until a watched project is created or changed (never, when read on
    /// demand); changes between two calls are not lost.
    pub async fn changed(&self, seen: &mut u64) {
        match &self.changes {
            Some(changes) => crate::index::next_change(changes, seen).await,
            None => std::future::pending().await,
        }
    }
}

/// Create or update Project `name` in `namespace` with `spec` (server-side
/// apply as `pushsync`): how installs without a chart (the local default,
/// tests, benchmarks) get their `default` project.
pub async fn ensure(
    client: kube::Client,
    namespace: &str,
    name: &str,
    spec: pushsync_api::ProjectSpec,
) -> Result<Project, kube::Error> {
    let api: Api<Project> = Api::namespaced(client, namespace);
    let mut project = Project::namespaced(namespace, name, spec);
    project.metadata.managed_fields = None;
    let params = kube::api::PatchParams::apply(crate::apply::FIELD_MANAGER).force();
    api.patch(name, &params, &kube::api::Patch::Apply(&project))
        .await
}
