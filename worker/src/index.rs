//! The Applications a worker knows: from the cluster (a kube reflector, kept
//! current by a watch) or, for the local default, from a YAML file.

use std::path::Path;
use std::sync::Arc;

use futures_util::StreamExt;
use kube::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use pushsync_api::Application;
use pushsync_proto::{AppRef, RepoId};
use tokio_util::sync::CancellationToken;

use crate::dispatch::{AppSource, PATHS_ANNOTATION};

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

/// Applications from the cluster, kept current by a watch.
#[derive(Clone)]
pub struct ClusterIndex {
    store: Store<Application>,
}

impl std::fmt::Debug for ClusterIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterIndex")
            .field("applications", &self.store.state().len())
            .finish()
    }
}

impl ClusterIndex {
    /// Watch Applications (in `namespace`, or everywhere) until `stop`.
    pub fn start(client: kube::Client, namespace: Option<&str>, stop: CancellationToken) -> Self {
        let api: Api<Application> = match namespace {
            Some(namespace) => Api::namespaced(client, namespace),
            None => Api::all(client),
        };
        let (store, writer) = reflector::store();
        let stream = reflector::reflector(
            writer,
            watcher::watcher(api, watcher::Config::default()).default_backoff(),
        )
        .applied_objects();
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    item = stream.next() => match item {
                        Some(Ok(_)) => {}
                        // The watcher backs off and resumes by itself.
                        Some(Err(error)) => tracing::warn!(error = %error, "watching Applications failed; retrying"),
                        None => break,
                    },
                }
            }
        });
        Self { store }
    }

    /// Wait until the first listing arrived.
    pub async fn ready(&self) -> bool {
        self.store.wait_until_ready().await.is_ok()
    }

    /// Every known Application.
    pub fn applications(&self) -> Vec<Arc<Application>> {
        self.store.state()
    }

    /// One Application.
    pub fn get(&self, app: &AppRef) -> Option<Arc<Application>> {
        self.store
            .get(&ObjectRef::new(&app.name).within(&app.namespace))
    }

    /// The dispatch view of every Application.
    pub fn sources(&self) -> Vec<AppSource> {
        self.applications()
            .iter()
            .filter_map(|a| source_of(a))
            .collect()
    }
}

/// Why an Applications file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file cannot be read.
    #[error("cannot read the Applications file {path}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A document is not an Application.
    #[error("{path}: document {index} is not a pushsync.dev/v1alpha1 Application: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// Which document (from 0).
        index: usize,
        /// What is wrong.
        message: String,
    },
}

/// Applications from a multi-document YAML file (the local default's source).
pub fn load_file(path: &Path) -> Result<Vec<Application>, FileError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| FileError::Read {
        path: shown.clone(),
        source,
    })?;
    let documents: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(&text).map_err(|e| FileError::Invalid {
            path: shown.clone(),
            index: 0,
            message: e.to_string(),
        })?;
    documents
        .into_iter()
        .enumerate()
        .filter(|(_, d)| !d.is_null())
        .map(|(index, document)| {
            let invalid = |message: String| FileError::Invalid {
                path: shown.clone(),
                index,
                message,
            };
            if document
                .get("apiVersion")
                .and_then(serde_json::Value::as_str)
                != Some("pushsync.dev/v1alpha1")
                || document.get("kind").and_then(serde_json::Value::as_str) != Some("Application")
            {
                return Err(invalid(
                    "apiVersion must be pushsync.dev/v1alpha1 and kind Application".to_owned(),
                ));
            }
            let mut app: Application =
                serde_json::from_value(document).map_err(|e| invalid(e.to_string()))?;
            if app.metadata.name.as_deref().is_none_or(str::is_empty) {
                return Err(invalid("metadata.name is required".to_owned()));
            }
            app.metadata
                .namespace
                .get_or_insert_with(|| "default".to_owned());
            Ok(app)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use kube::CustomResourceExt;
    use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
    use pushsync_api::{ApplicationSpec, Destination, Source};
    use pushsync_proto::{ChangedPaths, GitRef, Provider, PushEvent, Repository};
    use pushsync_sandbox::Sandbox;

    use super::*;
    use crate::dispatch::{Decision, affected};

    fn app(name: &str, path: &str) -> Application {
        let mut app = Application::new(
            name,
            ApplicationSpec {
                source: Source {
                    repo_url: "git@github.com:org/manifests.git".into(),
                    target_revision: "main".into(),
                    path: path.into(),
                    ..Source::default()
                },
                destination: Destination::default(),
                sync_policy: None,
                ignore_differences: Vec::new(),
            },
        );
        app.metadata.namespace = Some("default".into());
        app
    }

    fn push(paths: &[&str]) -> PushEvent {
        PushEvent {
            provider: Provider::Github,
            delivery_id: "d".into(),
            repository: Repository {
                id: RepoId::parse("https://github.com/org/manifests").unwrap(),
                full_name: "org/manifests".into(),
                clone_urls: Vec::new(),
                web_url: None,
            },
            git_ref: GitRef::branch("main"),
            before: Some("a".repeat(40)),
            after: Some("b".repeat(40)),
            created: false,
            deleted: false,
            forced: false,
            changed_paths: ChangedPaths::complete(paths.iter().copied()),
            pusher: None,
            received_at: "2026-11-23T00:00:00Z".parse().unwrap(),
        }
    }

    async fn eventually(index: &ClusterIndex, check: impl Fn(&ClusterIndex) -> bool) -> bool {
        for _ in 0..200 {
            if check(index) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        false
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_index_follows_applications_in_the_cluster() {
        let sandbox = Sandbox::start().await.unwrap();
        let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
            Api::all(sandbox.client());
        crds.create(&PostParams::default(), &Application::crd())
            .await
            .unwrap();
        let apps: Api<Application> = Api::namespaced(sandbox.client(), "default");
        apps.create(&PostParams::default(), &app("web", "apps/web"))
            .await
            .unwrap();
        apps.create(&PostParams::default(), &app("api", "apps/api"))
            .await
            .unwrap();

        let stop = CancellationToken::new();
        let index = ClusterIndex::start(sandbox.client(), None, stop.clone());
        assert!(index.ready().await);
        assert!(eventually(&index, |i| i.applications().len() == 2).await);
        let names = |decisions: Vec<Decision>| {
            decisions
                .into_iter()
                .map(|d| match d {
                    Decision::Sync(a) | Decision::RefDeleted(a) => a.name,
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(affected(&push(&["apps/web/x.yaml"]), &index.sources())),
            ["web"]
        );

        // A changed path and a deletion are followed.
        apps.patch(
            "api",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"source": {"path": "apps/web"}}})),
        )
        .await
        .unwrap();
        assert!(
            eventually(&index, |i| i
                .get(&AppRef {
                    namespace: "default".into(),
                    name: "api".into()
                })
                .is_some_and(|a| a.spec.source.path == "apps/web"))
            .await
        );
        apps.delete("web", &DeleteParams::default()).await.unwrap();
        assert!(eventually(&index, |i| i.applications().len() == 1).await);
        assert_eq!(
            names(affected(&push(&["apps/web/x.yaml"]), &index.sources())),
            ["api"]
        );
        stop.cancel();
    }

    #[test]
    fn an_applications_file_is_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("apps.yaml");
        std::fs::write(
            &path,
            "apiVersion: pushsync.dev/v1alpha1\nkind: Application\nmetadata: {name: web}\nspec: {source: {repoURL: 'https://github.com/org/m', path: apps/web}, destination: {namespace: web}}\n---\n",
        )
        .unwrap();
        let apps = load_file(&path).unwrap();
        assert_eq!(apps.len(), 1);
        assert_eq!(apps[0].metadata.namespace.as_deref(), Some("default"));
        assert_eq!(
            source_of(&apps[0]).unwrap().repo.as_str(),
            "github.com/org/m"
        );

        for (text, expected) in [
            (
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
                "document 0 is not a pushsync.dev/v1alpha1 Application",
            ),
            (
                "apiVersion: pushsync.dev/v1alpha1\nkind: Application\nmetadata: {name: x}\nspec: {}\n",
                "missing field",
            ),
            (
                "apiVersion: pushsync.dev/v1alpha1\nkind: Application\nmetadata: {}\nspec: {source: {repoURL: x}, destination: {}}\n",
                "metadata.name is required",
            ),
            ("key: [unclosed\n", "apps.yaml"),
        ] {
            std::fs::write(&path, text).unwrap();
            let error = load_file(&path).unwrap_err().to_string();
            assert!(error.contains(expected), "{error} lacks {expected}");
        }
        assert!(load_file(&dir.path().join("missing.yaml")).is_err());
    }
}
