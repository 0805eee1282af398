//! The `Project` custom resource: what the Applications that name it may
//! apply, where, from which repositories, and as whom.
//!
//! Projects are namespaced and live in the install namespace (the workers'
//! `PUSHSYNC_NAMESPACE`), as Argo CD's AppProjects do: an Application names
//! a project by name only, so a tenant who may create Applications in their
//! own namespace cannot create a project there that the workers would
//! honour; who may edit projects is the install namespace's RBAC. Two
//! installs in one cluster keep separate projects.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The project every Application without `spec.project` belongs to.
pub const DEFAULT_PROJECT: &str = "default";

/// The rules. Patterns are globs: `*` matches within one `/`-separated
/// segment, `**` across segments, `?` one character; everything else is
/// literal and case-sensitive (repository patterns are normalised like
/// repository URLs first, see `sourceRepos`).
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "pushsync.dev",
    version = "v1alpha1",
    kind = "Project",
    namespaced,
    shortname = "psproj",
    category = "pushsync",
    printcolumn = r#"{"name":"Description","type":"string","jsonPath":".spec.description"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ProjectSpec {
    /// What the project is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Namespaces whose Applications may name this project (patterns).
    /// Empty: only the install namespace, where the platform team alone
    /// writes. Without it, an Application anywhere could borrow a
    /// project's ServiceAccount by naming the project.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_namespaces: Vec<String>,
    /// Repositories Applications may take manifests from, as URL patterns
    /// (`https://github.com/acme/*`, `git@github.com:acme/**`, `*`).
    /// Patterns and URLs are compared as repository identities: scheme,
    /// credentials, port and a trailing `.git` dropped, host and path
    /// lower-cased. Empty: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_repos: Vec<String>,
    /// Namespaces objects may be applied in, each with the ServiceAccount
    /// that applies there. Empty: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destinations: Vec<ProjectDestination>,
    /// Cluster-scoped kinds that may be applied. Empty (the default): none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cluster_resource_whitelist: Vec<GroupKind>,
    /// Namespaced kinds that may not be applied. Empty: all allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespace_resource_blacklist: Vec<GroupKind>,
}

/// Namespaces objects may go to, and who applies them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectDestination {
    /// Namespace pattern (`team-a`, `team-a-*`, `*`).
    pub namespace: String,
    /// The ServiceAccount whose rights every write of an Application whose
    /// `destination.namespace` matches this entry is made with (Kubernetes
    /// impersonation): `NAME` in the destination namespace, or
    /// `NAMESPACE:NAME`. Without it the workers write with their own
    /// identity, which the shipped RBAC allows no writes outside pushsync's
    /// own resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
}

/// A kind, by group and kind patterns (`group: ""` is the core group).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupKind {
    /// API group pattern (`""`, `apps`, `*`).
    #[serde(default)]
    pub group: String,
    /// Kind pattern (`Deployment`, `*`).
    pub kind: String,
}

impl GroupKind {
    /// `group`/`kind` exactly.
    pub fn new(group: &str, kind: &str) -> Self {
        Self {
            group: group.to_owned(),
            kind: kind.to_owned(),
        }
    }
}

impl Project {
    /// A project `name` in `namespace` with `spec`.
    pub fn namespaced(namespace: &str, name: &str, spec: ProjectSpec) -> Self {
        let mut project = Self::new(name, spec);
        project.metadata.namespace = Some(namespace.to_owned());
        project
    }
}

impl ProjectSpec {
    /// Any repository, any namespace, any kind, applied with the workers'
    /// own identity: what a single-tenant setup (and the local default)
    /// wants, never a shared cluster.
    pub fn unrestricted() -> Self {
        Self {
            description: Some("anything anywhere, as the workers themselves".to_owned()),
            source_namespaces: vec!["*".to_owned()],
            source_repos: vec!["*".to_owned(), "file:///**".to_owned()],
            destinations: vec![ProjectDestination {
                namespace: "*".to_owned(),
                service_account: None,
            }],
            cluster_resource_whitelist: vec![GroupKind::new("*", "*")],
            namespace_resource_blacklist: Vec::new(),
        }
    }
}
