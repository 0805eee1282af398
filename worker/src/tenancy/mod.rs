//! Tenancy: an Application is never a key to the cluster.
//!
//! - [`Projects`] finds the Project an Application names (in the install
//!   namespace only).
//! - [`admit`] checks what is known before anything is fetched: the
//!   project exists, allows the repository and the destination, and says
//!   who applies ([`Admission::service_account`]).
//! - [`check`] holds every object a revision would write (resources and
//!   hooks of every phase) to the project's rules, as a whole, before the
//!   first write: one object out of bounds and nothing is applied.
//! - [`mark`] and [`owner_of`]: the tracking mark written on every applied
//!   object, and whose an object is; deletes (prune, hook re-creation,
//!   `Replace=true`) touch only objects marked as this Application's.

mod glob;
mod projects;

use pushsync_api::tracking::{
    APP_NAME_LABEL, APP_NAMESPACE_LABEL, TRACKING_ANNOTATION, tracked_application, tracking_id,
};
use pushsync_api::{Application, GroupKind, ProjectSpec};
use pushsync_proto::RepoId;
use serde_json::Value;

pub use glob::matches;
pub use projects::{Projects, ensure as ensure_project};

/// The condition type every project refusal is reported under.
pub const VIOLATION: &str = "ProjectViolation";

/// The sync option that lets two Applications share an object.
pub const ALLOW_SHARED: &str = "AllowShared";

/// Why a project refused an Application or one of its objects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Violation {
    /// The condition reason (`SourceNotPermitted`, …).
    pub reason: &'static str,
    /// What to tell a human: the project, the rule and the object.
    pub message: String,
}

impl Violation {
    fn new(reason: &'static str, message: String) -> Self {
        Self { reason, message }
    }
}

/// What a project allows an Application: who writes for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// The Kubernetes user every write is made as
    /// (`system:serviceaccount:NS:NAME`), or `None` for the workers' own
    /// identity.
    pub service_account: Option<String>,
}

/// Check `app` against `project` before anything is fetched: the
/// Application's namespace is among `sourceNamespaces` (the install
/// namespace `home` when the project lists none), the repository among
/// `sourceRepos`, the destination namespace among `destinations`; the
/// destination's ServiceAccount applies.
pub fn admit(
    project_name: &str,
    project: &ProjectSpec,
    home: &str,
    app: &Application,
    destination: &str,
) -> Result<Admission, Violation> {
    let app_namespace = app.metadata.namespace.as_deref().unwrap_or_default();
    let admitted = if project.source_namespaces.is_empty() {
        app_namespace == home
    } else {
        project
            .source_namespaces
            .iter()
            .any(|pattern| matches(pattern, app_namespace))
    };
    if !admitted {
        return Err(Violation::new(
            "NamespaceNotPermitted",
            format!(
                "project {project_name:?} does not take Applications from namespace {app_namespace:?} (sourceNamespaces)"
            ),
        ));
    }
    let url = &app.spec.source.repo_url;
    let Some(repo) = canonical_repo(url) else {
        return Err(Violation::new(
            "SourceNotPermitted",
            format!(
                "project {project_name:?}: the repository URL is not in canonical form (no `.`/`..` segments, no percent-escapes in its path)"
            ),
        ));
    };
    // A local repository (`file://`, a path) only by a pattern that names
    // local paths: `*` never reaches the workers' own disk (where the
    // other tenants' fetched repositories are cached).
    let local = |id: &str| id.starts_with("file://");
    if !project
        .source_repos
        .iter()
        .filter_map(|pattern| repo_pattern(pattern))
        .any(|pattern| local(&pattern) == local(repo.as_str()) && matches(&pattern, repo.as_str()))
    {
        return Err(Violation::new(
            "SourceNotPermitted",
            format!("project {project_name:?} does not allow the repository {repo} (sourceRepos)"),
        ));
    }
    let Some(entry) = project
        .destinations
        .iter()
        .find(|d| matches(&d.namespace, destination))
    else {
        return Err(Violation::new(
            "DestinationNotPermitted",
            format!(
                "project {project_name:?} does not allow the destination namespace {destination:?} (destinations)"
            ),
        ));
    };
    let service_account = match entry.service_account.as_deref() {
        None => None,
        Some(account) => Some(service_account_user(project_name, account, destination)?),
    };
    Ok(Admission { service_account })
}

/// `system:serviceaccount:NS:NAME` for `NAME` (in `destination`) or `NS:NAME`.
fn service_account_user(
    project_name: &str,
    account: &str,
    destination: &str,
) -> Result<String, Violation> {
    let (namespace, name) = account.split_once(':').unwrap_or((destination, account));
    if !valid_name(namespace) || !valid_name(name) {
        return Err(Violation::new(
            "InvalidProject",
            format!(
                "project {project_name:?}: {account:?} is not a ServiceAccount (NAME or NAMESPACE:NAME)"
            ),
        ));
    }
    Ok(format!("system:serviceaccount:{namespace}:{name}"))
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

/// One object a sync would write, as the rules see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object<'a> {
    /// API group (`""` for the core group).
    pub group: &'a str,
    /// Kind.
    pub kind: &'a str,
    /// Namespace; `None` for a cluster-scoped kind.
    pub namespace: Option<&'a str>,
    /// Name (or generateName).
    pub name: &'a str,
}

impl std::fmt::Display for Object<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let group = if self.group.is_empty() {
            "core"
        } else {
            self.group
        };
        match self.namespace {
            Some(namespace) => write!(f, "{group}/{} {namespace}/{}", self.kind, self.name),
            None => write!(f, "{group}/{} {} (cluster-scoped)", self.kind, self.name),
        }
    }
}

/// Hold every object to `project`'s rules; all the violations, or none.
/// `acting_as` is who the sync writes as ([`Admission::service_account`]):
/// an object in a namespace whose destination entry names someone else is
/// refused (one Application acts as one identity).
pub fn check(
    project_name: &str,
    project: &ProjectSpec,
    acting_as: Option<&str>,
    objects: &[Object<'_>],
) -> Vec<Violation> {
    objects
        .iter()
        .filter_map(|object| check_one(project_name, project, acting_as, object))
        .collect()
}

fn check_one(
    project_name: &str,
    project: &ProjectSpec,
    acting_as: Option<&str>,
    object: &Object<'_>,
) -> Option<Violation> {
    let listed = |kinds: &[GroupKind]| {
        kinds
            .iter()
            .any(|k| matches(&k.group, object.group) && matches(&k.kind, object.kind))
    };
    let destination = |namespace: &str| {
        project
            .destinations
            .iter()
            .find(|d| matches(&d.namespace, namespace))
    };
    match object.namespace {
        None if !listed(&project.cluster_resource_whitelist) => Some(Violation::new(
            "ClusterResourceNotPermitted",
            format!("project {project_name:?} does not allow {object} (clusterResourceWhitelist)"),
        )),
        // A Namespace is held to the destinations by its name.
        None if object.group.is_empty()
            && object.kind == "Namespace"
            && destination(object.name).is_none() =>
        {
            Some(Violation::new(
                "DestinationNotPermitted",
                format!(
                    "project {project_name:?} does not allow {object}: it is not among its destinations"
                ),
            ))
        }
        None => None,
        Some(namespace)
            if !project
                .destinations
                .iter()
                .any(|d| matches(&d.namespace, namespace)) =>
        {
            Some(Violation::new(
                "DestinationNotPermitted",
                format!(
                    "project {project_name:?} does not allow {object}: namespace {namespace:?} is not among its destinations"
                ),
            ))
        }
        Some(_) if listed(&project.namespace_resource_blacklist) => Some(Violation::new(
            "NamespacedResourceDenied",
            format!(
                "project {project_name:?} does not allow {object} (namespaceResourceBlacklist)"
            ),
        )),
        Some(namespace) => {
            let entry = destination(namespace)?;
            let writer = match entry.service_account.as_deref() {
                None => None,
                Some(account) => match service_account_user(project_name, account, namespace) {
                    Ok(user) => Some(user),
                    Err(violation) => return Some(violation),
                },
            };
            (writer.as_deref() != acting_as).then(|| {
                Violation::new(
                    "DestinationNotPermitted",
                    format!(
                        "project {project_name:?}: {object} would be written as {}, but this Application acts as {} (split it into one Application per identity)",
                        writer.as_deref().unwrap_or("the workers themselves"),
                        acting_as.unwrap_or("the workers themselves"),
                    ),
                )
            })
        }
    }
}

/// The repository identity of `url`, when its path is in canonical form
/// (a `.`/`..` segment or a percent-escape could name another repository
/// on a server that resolves them than the pattern appears to allow) and it
/// has no query or fragment (`https://evil.tld?@github.com/x` is a URL of
/// evil.tld to a git client, but names github.com to a naive reading).
fn canonical_repo(url: &str) -> Option<RepoId> {
    if url.contains(['?', '#']) {
        return None;
    }
    let repo = RepoId::parse(url).ok()?;
    let path = repo.as_str().split_once('/').map_or("", |(_, path)| path);
    let canonical = !path.contains('%')
        && !path.contains('\\')
        && path
            .split('/')
            .all(|segment| segment != "." && segment != "..");
    canonical.then_some(repo)
}

/// A `sourceRepos` pattern normalised as repository URLs are (`*` alone
/// stays `*`, which then also matches across `/`).
fn repo_pattern(pattern: &str) -> Option<String> {
    match pattern.trim() {
        "*" => Some("**".to_owned()),
        pattern => RepoId::parse(pattern).ok().map(|id| id.as_str().to_owned()),
    }
}

/// `namespace/name` of `app`.
pub fn app_key(app: &Application) -> String {
    format!(
        "{}/{}",
        app.metadata.namespace.as_deref().unwrap_or("default"),
        app.metadata.name.as_deref().unwrap_or_default()
    )
}

/// Write the tracking mark of Application `app` (`namespace/name`, see
/// [`app_key`]) and its lookup labels on `object`, which is `group`/`kind`
/// in `namespace` (`None`: cluster-scoped).
pub fn mark(app: &str, object: &mut Value, group: &str, namespace: Option<&str>) {
    let (app_namespace, app_name) = app.split_once('/').unwrap_or(("", app));
    let text = |pointer: &str| {
        object
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let (kind, name) = (text("/kind"), text("/metadata/name"));
    let id = tracking_id(
        app_namespace,
        app_name,
        group,
        &kind,
        namespace.unwrap_or_default(),
        &name,
    );
    let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let annotations = metadata
        .entry("annotations")
        .or_insert_with(|| Value::Object(Default::default()));
    if let Some(annotations) = annotations.as_object_mut() {
        annotations.insert(TRACKING_ANNOTATION.to_owned(), Value::String(id));
    }
    let labels = metadata
        .entry("labels")
        .or_insert_with(|| Value::Object(Default::default()));
    if let Some(labels) = labels.as_object_mut() {
        for (label, value) in [
            (APP_NAME_LABEL, app_name),
            (APP_NAMESPACE_LABEL, app_namespace),
        ] {
            if value.len() <= 63 {
                labels.insert(label.to_owned(), Value::String(value.to_owned()));
            }
        }
    }
}

/// Whose a live object is, by its tracking mark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// Marked as this Application's, for this very object.
    This,
    /// Marked as another Application's (`namespace/name`).
    Other(String),
    /// No mark (made by hand, or applied before marks existed), or a mark
    /// written for another object (copied).
    Unmarked,
}

/// Whose `live` is, from the point of view of Application `app`
/// (`namespace/name`).
pub fn owner_of(app: &str, live: &Value) -> Owner {
    let Some(id) = live
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(TRACKING_ANNOTATION))
        .and_then(Value::as_str)
    else {
        return Owner::Unmarked;
    };
    match tracked_application(id) {
        Some(owner) if owner != app => Owner::Other(owner.to_owned()),
        Some(_) if marks_this_object(app, id, live) => Owner::This,
        _ => Owner::Unmarked,
    }
}

/// Whether the object part of `id` names `live` itself (a generated name
/// counts when the mark was written with an empty name).
fn marks_this_object(app: &str, id: &str, live: &Value) -> bool {
    let text = |pointer: &str| {
        live.pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let (app_namespace, app_name) = app.split_once('/').unwrap_or(("", app));
    let (group, _) = text("/apiVersion").rsplit_once('/').unwrap_or(("", ""));
    let expected = |name: &str| {
        tracking_id(
            app_namespace,
            app_name,
            group,
            text("/kind"),
            text("/metadata/namespace"),
            name,
        )
    };
    id == expected(text("/metadata/name"))
        || (!text("/metadata/generateName").is_empty() && id == expected(""))
}

#[cfg(test)]
mod tests;
