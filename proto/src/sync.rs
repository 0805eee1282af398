//! Sync jobs: "this Application may be out of date, bring it in line".

use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// A request to sync one Application.
///
/// A job does not carry the revision to deploy: the sync resolves the branch
/// head itself when it runs, so a stale or duplicated job is harmless and a
/// burst of jobs converges on the newest commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncJob {
    /// Unique id of this job, for logs and de-duplication.
    pub job_id: String,
    /// The Application to sync.
    pub application: AppRef,
    /// Why the job exists.
    pub trigger: SyncTrigger,
    /// When the job was created.
    pub requested_at: Timestamp,
    /// Attempts that failed so far: a job re-published to wait out its
    /// retry backoff carries the count, so the retry limit holds across
    /// re-publishes and workers. Absent (0) on a fresh job.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failures: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A namespaced reference to an Application.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AppRef {
    /// The Application's namespace.
    pub namespace: String,
    /// The Application's name.
    pub name: String,
}

impl fmt::Display for AppRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// One resource of an Application, as a sync of selected resources names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ResourceSelector {
    /// API group (`""` for the core group).
    #[serde(default)]
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Namespace (`None`: the Application's destination, or cluster-scoped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

impl ResourceSelector {
    /// Whether this names the object `group`/`kind` `namespace`/`name` (a
    /// selector without a namespace names it in any).
    pub fn matches(&self, group: &str, kind: &str, namespace: &str, name: &str) -> bool {
        self.group == group
            && self.kind == kind
            && self.name == name
            && self.namespace.as_deref().is_none_or(|n| n == namespace)
    }

    /// Read `[GROUP]:KIND:[NAMESPACE/]NAME`, as `argocd app sync --resource`
    /// writes it (`apps:Deployment:web`, `:ConfigMap:team/settings`).
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.splitn(3, ':');
        let (group, kind, rest) = (parts.next()?, parts.next()?, parts.next()?);
        let (namespace, name) = match rest.split_once('/') {
            Some((namespace, name)) => (Some(namespace.to_owned()), name),
            None => (None, rest),
        };
        (!kind.is_empty() && !name.is_empty()).then(|| Self {
            group: group.to_owned(),
            kind: kind.to_owned(),
            namespace,
            name: name.to_owned(),
        })
    }
}

/// What caused a sync job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum SyncTrigger {
    /// A push webhook touched the Application's source.
    Push {
        /// The delivery the push arrived in.
        delivery_id: String,
        /// The commit the push moved the ref to (informational: the sync
        /// resolves the head itself).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        revision: Option<String>,
        /// When the receiver accepted the push, so the end-to-end delay can be
        /// measured and shown.
        received_at: Timestamp,
    },
    /// The fallback poll found the source moved or the last sync failed.
    Poll,
    /// Someone asked for a sync (annotation, CLI or HTTP).
    Manual {
        /// Who asked, as far as known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        requested_by: Option<String>,
        /// Only compare with Git and apply as the sync policy says (a
        /// refresh); without it, a manual sync applies even when automated
        /// sync or selfHeal is off.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        refresh_only: bool,
        /// Sync this revision (a commit id, branch or tag) instead of the
        /// one `targetRevision` names.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        revision: Option<String>,
        /// A rollback to `revision`: automated sync is turned off first
        /// (`spec.suspend`), so it does not bring the newer commit back.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        rollback: bool,
        /// Apply only these resources (empty: all): hooks do not run and
        /// nothing is pruned, as Argo CD's `sync --resource`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        resources: Vec<ResourceSelector>,
        /// Delete what the previous sync applied and Git no longer has:
        /// `Some(true)` or `Some(false)` overrides `automated.prune` for this
        /// sync (Argo CD's `app sync --prune`); `None` follows it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prune: Option<bool>,
    },
    /// Live objects drifted from the desired state.
    SelfHeal,
}
