//! The `Application` custom resource (`pushsync.dev/v1alpha1`): "this path of
//! this repository, at this revision, belongs in this namespace, synced this
//! way". The CRD in `deploy/crds/application.yaml` is generated from these
//! types (`cargo run -p pushsync-api --bin crdgen`); a test fails when the
//! checked-in file differs.
//!
//! Users who know Argo CD find the same words: `repoURL`, `targetRevision`,
//! `syncPolicy.automated.{prune,selfHeal}`, `syncOptions`, `retry`,
//! `ignoreDifferences`.
//!
//! This crate is separate from `proto` on purpose: it needs kube's derive and
//! schemars, and Cargo unifies features across a workspace build, so types
//! behind a feature of `proto` would be linked into the receiver too.

mod project;
mod states;
pub mod tracking;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use project::{DEFAULT_PROJECT, GroupKind, Project, ProjectDestination, ProjectSpec};
pub use states::{
    ConditionStatus, HealthStatusCode, OperationPhase, ResourceSyncCode, ResultCode, SyncStatusCode,
};

/// The finalizer that makes deleting an Application delete what it applied,
/// waiting until those objects are gone (foreground), as Argo CD's
/// `resources-finalizer.argocd.argoproj.io` does. Opt-in: without it, a
/// deleted Application leaves its objects in place.
pub const RESOURCES_FINALIZER: &str = "pushsync.dev/resources-finalizer";

/// The same, without waiting for the objects to be gone (background
/// deletion; Argo CD's `…/background` variant).
pub const RESOURCES_FINALIZER_BACKGROUND: &str = "pushsync.dev/resources-finalizer-background";

/// Annotation asking for a sync now (applied even without automated sync);
/// its value may name resources, pruning and a revision
/// (`pushsync_proto::SyncRequest`).
pub const SYNC_ANNOTATION: &str = "pushsync.dev/sync";

/// Annotation asking for a refresh now (compare; apply as the policy says).
pub const REFRESH_ANNOTATION: &str = "pushsync.dev/refresh";

/// Annotation asking for a rollback to the revision it names (one of
/// `status.history`); automated sync is turned off until resumed.
pub const ROLLBACK_ANNOTATION: &str = "pushsync.dev/rollback";

/// The desired state: where the manifests come from and where they go.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "pushsync.dev",
    version = "v1alpha1",
    kind = "Application",
    namespaced,
    status = "ApplicationStatus",
    // Not `app`/`apps`: Argo CD's, and both run side by side in a migration.
    shortname = "psapp",
    shortname = "psapps",
    category = "pushsync",
    printcolumn = r#"{"name":"Sync","type":"string","jsonPath":".status.sync.status"}"#,
    printcolumn = r#"{"name":"Health","type":"string","jsonPath":".status.health.status"}"#,
    printcolumn = r#"{"name":"Revision","type":"string","jsonPath":".status.sync.shortRevision"}"#,
    printcolumn = r#"{"name":"Suspended","type":"boolean","jsonPath":".spec.suspend","priority":1}"#,
    printcolumn = r#"{"name":"Message","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].message","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSpec {
    /// The Project whose rules this Application is held to (a Project of
    /// that name in the workers' install namespace).
    #[serde(default = "default_project")]
    #[schemars(length(min = 1, max = 253))]
    pub project: String,
    /// Where the manifests come from.
    pub source: Source,
    /// Where they are applied.
    pub destination: Destination,
    /// How syncing happens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_policy: Option<SyncPolicy>,
    /// Differences that do not make the Application out of sync.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_differences: Vec<IgnoreDifference>,
    /// No automated sync and no self-heal while true; a manual sync still
    /// runs, and drift is still reported.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,
}

impl ApplicationSpec {
    /// Whether changes made in the cluster are reverted (`automated.selfHeal`,
    /// and not suspended).
    pub fn self_heals(&self) -> bool {
        !self.suspend
            && self
                .sync_policy
                .as_ref()
                .and_then(|p| p.automated.as_ref())
                .is_some_and(|a| a.self_heal)
    }

    /// `path` of `repo_url` at `target_revision`, into `namespace`, synced
    /// automatically with prune (no selfHeal, no sync options): the common
    /// case, to adjust field by field.
    pub fn automated(repo_url: &str, target_revision: &str, path: &str, namespace: &str) -> Self {
        Self {
            project: DEFAULT_PROJECT.to_owned(),
            source: Source {
                repo_url: repo_url.to_owned(),
                target_revision: target_revision.to_owned(),
                path: path.to_owned(),
                ..Source::default()
            },
            destination: Destination {
                namespace: Some(namespace.to_owned()),
            },
            sync_policy: Some(SyncPolicy {
                automated: Some(Automated {
                    prune: true,
                    self_heal: false,
                }),
                ..SyncPolicy::default()
            }),
            ignore_differences: Vec::new(),
            suspend: false,
        }
    }

    /// This spec with a sync option added (`CreateNamespace=true`, …).
    pub fn with_sync_option(mut self, option: &str) -> Self {
        self.sync_policy
            .get_or_insert_with(SyncPolicy::default)
            .sync_options
            .push(option.to_owned());
        self
    }
}

impl Application {
    /// An Application `name` in `namespace` with `spec`.
    pub fn namespaced(namespace: &str, name: &str, spec: ApplicationSpec) -> Self {
        let mut app = Self::new(name, spec);
        app.metadata.namespace = Some(namespace.to_owned());
        app
    }
}

/// A Git source.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    /// The repository, in any URL form (`https://…`, `git@host:org/repo.git`, `ssh://…`).
    #[serde(rename = "repoURL")]
    pub repo_url: String,
    /// Branch, tag, full ref or commit; `HEAD` (the default) follows the default branch.
    #[serde(default = "head", skip_serializing_if = "String::is_empty")]
    pub target_revision: String,
    /// Directory in the repository (default: the root).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// Plain manifests (the default when neither kustomize nor helm is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<DirectorySource>,
    /// Render with Kustomize.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kustomize: Option<KustomizeSource>,
    /// Render with `helm template`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helm: Option<HelmSource>,
}

fn default_project() -> String {
    DEFAULT_PROJECT.to_owned()
}

fn head() -> String {
    "HEAD".to_owned()
}

/// Plain YAML/JSON files.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DirectorySource {
    /// Also read subdirectories.
    #[serde(default)]
    pub recurse: bool,
}

/// A Kustomize overlay (`kustomization.yaml` in the path).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KustomizeSource {
    /// Prefix added to every resource name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_prefix: Option<String>,
}

/// A Helm chart in the path.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HelmSource {
    /// Values files, relative to the chart, applied in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub value_files: Vec<String>,
    /// Inline values (YAML), applied after the files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<String>,
    /// Release name (default: the Application's name), as Helm accepts
    /// them: DNS-1123, at most 53 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 53),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub release_name: Option<String>,
}

/// Where manifests go.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Destination {
    /// Namespace for namespaced objects that name none (a DNS-1123 label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub namespace: Option<String>,
}

/// How syncing happens.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncPolicy {
    /// Sync on every change without asking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automated: Option<Automated>,
    /// `CreateNamespace=true`, `Replace=true`, …
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sync_options: Vec<String>,
    /// Retries of a failed sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<Retry>,
}

impl SyncPolicy {
    /// Whether `option` (e.g. `CreateNamespace`) is set to `true`.
    pub fn option(&self, option: &str) -> bool {
        self.sync_options.iter().any(|o| {
            o.split_once('=')
                .is_some_and(|(k, v)| k.trim() == option && v.trim().eq_ignore_ascii_case("true"))
        })
    }
}

/// Automated sync.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Automated {
    /// Delete objects that left Git.
    #[serde(default)]
    pub prune: bool,
    /// Revert changes made in the cluster.
    #[serde(default)]
    pub self_heal: bool,
}

/// Retry policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Retry {
    /// Most attempts (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    /// Delay between attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Backoff>,
}

/// Exponential backoff.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Backoff {
    /// First delay (`5s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// Multiplier per attempt (2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor: Option<i64>,
    /// Longest delay (`3m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration: Option<String>,
}

/// A difference to ignore.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IgnoreDifference {
    /// API group (empty for the core group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind.
    pub kind: String,
    /// Only this object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Only in this namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// RFC 6901 pointers to ignore (`/spec/replicas`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub json_pointers: Vec<String>,
    /// Ignore fields owned by these field managers (e.g. an HPA's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managed_fields_managers: Vec<String>,
}

/// What the workers report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationStatus {
    /// Whether the cluster matches Git.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<SyncStatus>,
    /// The worst health of the Application's resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthStatus>,
    /// The last sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_state: Option<OperationState>,
    /// Deployed revisions, newest last, bounded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<RevisionHistory>,
    /// Readable problems (render failures, deleted branch, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Objects applied by the last successful sync (for pruning).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inventory: Vec<ResourceRef>,
    /// When the push that triggered the last sync was received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_push_received_at: Option<String>,
    /// Each managed resource as last compared with Git: sync status, health
    /// and, when out of sync, a bounded unified diff.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<ResourceStatus>,
    /// When Git and the cluster were last compared (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconciled_at: Option<String>,
    /// The `metadata.generation` of the spec the last sync worked from: when
    /// it differs from the Application's, a sync of the new spec is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// One managed resource as last compared with Git.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceStatus {
    /// The resource.
    #[serde(flatten)]
    pub resource: ResourceRef,
    /// Whether it matches Git.
    pub status: ResourceSyncCode,
    /// Its health when last seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthStatusCode>,
    /// Live → desired, as a unified diff (truncated), when out of sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// The live object's resourceVersion when it was found in sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
}

/// Sync status.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncStatus {
    /// Whether the cluster matches Git.
    pub status: SyncStatusCode,
    /// The commit compared against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// Its first seven characters, for `kubectl get`'s Revision column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub short_revision: Option<String>,
    /// A digest of what was compared (rendered manifests and the settings
    /// that shape an apply): with unchanged live objects, an unchanged digest
    /// means nothing to compare again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_digest: Option<String>,
}

/// Health status.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthStatus {
    /// The worst health of the Application's resources.
    pub status: HealthStatusCode,
    /// Why, when not healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The last sync operation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationState {
    /// How it ended (`Superseded`: a newer commit replaced it while it
    /// waited for health).
    pub phase: OperationPhase,
    /// A readable summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The commit synced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// When it started (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// When it finished (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Per-resource results.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<ResourceResult>,
    /// The digest of the desired state it applied (see
    /// `SyncStatus::desired_digest`): what automated sync compares a new
    /// render with, since a comparison alone (a refresh, or while
    /// suspended) moves `status.sync` but applies nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_digest: Option<String>,
}

/// What happened to one resource in a sync.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceResult {
    /// The resource.
    #[serde(flatten)]
    pub resource: ResourceRef,
    /// What was done to it.
    pub status: ResultCode,
    /// Details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Hook phase, for hooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook_phase: Option<OperationPhase>,
}

/// A reference to a cluster object.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct ResourceRef {
    /// API group (empty for the core group).
    #[serde(default)]
    pub group: String,
    /// API version.
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Namespace (empty for cluster-scoped objects).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Name.
    pub name: String,
}

/// One deployed revision.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevisionHistory {
    /// The commit.
    pub revision: String,
    /// When it was deployed (RFC 3339).
    pub deployed_at: String,
}

/// A condition, as Kubernetes writes them (`metav1.Condition`): besides the
/// problems (`SourceFailed`, `RenderFailed`, …), kstatus' `Ready`,
/// `Reconciling` and `Stalled`, so `kubectl wait --for=condition=Ready`
/// and Flux/Argo-style tooling read an Application like any resource.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `RenderFailed`, `RefDeleted`, `SyncFailed`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// Whether it holds.
    pub status: ConditionStatus,
    /// Machine-readable reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What to tell a human.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When it last changed (RFC 3339): kept while the status stays the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    /// The `metadata.generation` it was set for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Every CRD, with the file it is checked in as under `deploy/crds/`.
pub fn crds() -> Vec<(
    &'static str,
    k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
)> {
    use kube::CustomResourceExt;
    vec![
        ("application.yaml", Application::crd()),
        ("project.yaml", Project::crd()),
    ]
}

/// A CRD as YAML, as checked in under `deploy/crds/`.
pub fn crd_yaml(
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> Result<String, serde_saphyr::SerializeError> {
    let header = "# Generated by `cargo run -p pushsync-api --bin crdgen`; do not edit.\n";
    Ok(format!("{header}{}", serde_saphyr::to_string(crd)?))
}

#[cfg(test)]
mod tests;
