//! One sync of one Application, stage by stage:
//!
//! 0. [`admission`]: the Application's Project allows its repository and
//!    destination, and names who writes (the rest acts as that identity);
//! 1. [`source`]: resolve the revision, read and render it (cached per
//!    commit), plan hooks and waves, check every kind is known;
//!    then [`admission::hold`]: every object within the project's rules, or
//!    nothing is applied; each marked as this Application's;
//! 2. [`compare`]: each resource against the cluster (a dry-run apply over
//!    the live object), or the steady-state shortcut when nothing can have
//!    changed; the previous inventory's leftovers;
//! 3. [`decide`]: apply, or only report (`Refreshed`);
//! 4. [`operation`]: namespaces, hooks and waves in order (each wave awaited
//!    healthy, see `wave`), prune;
//! 5. [`outcome`]: what is reported (the status patch is `crate::status`'s).
//!
//! Each stage returns a [`Verdict`]: go on with what it produced, or stop
//! with an outcome. Transient failures (git server, API server) are errors,
//! so the job is retried; everything else ends in a reported outcome.
//!
//! Invariants:
//! - Nothing of a revision is applied unless all of it rendered and validated.
//! - Only objects of the previous inventory are pruned, and only when they
//!   carry this Application's tracking mark; no object another Application
//!   marked is overwritten (with `AllowShared=true` it is written under
//!   its owner's mark).
//! - Every write is made as the identity the Application's Project names.

pub mod admission;
pub mod compare;
pub mod decide;
pub mod finalize;
pub mod operation;
pub mod options;
pub mod outcome;
pub mod preview;
pub mod source;
mod wave;

use std::time::{Duration, Instant};

use std::sync::Arc;

use pushsync_api::{Application, Project, ResourceRef};
use serde_json::{Value, json};

use crate::apply::{ApplyError, Cluster};
use crate::git::{GitCache, GitError, Limits};
use crate::render::{Manifest, RenderCache, Tools};
use crate::tenancy::Projects;

pub use outcome::{Outcome, Timings};

/// Annotation that keeps an object out of pruning.
pub const PRUNE_ANNOTATION: &str = "pushsync.dev/prune";

/// What a sync needs.
#[derive(Debug, Clone)]
pub struct SyncContext {
    /// Git sources.
    pub git: GitCache,
    /// The cluster.
    pub cluster: Cluster,
    /// Where Applications' Projects are found.
    pub projects: Projects,
    /// Limits on what is read.
    pub limits: Limits,
    /// Kustomize and Helm, and bounds on what is rendered.
    pub tools: Tools,
    /// How long a wave or hook may take to become healthy.
    pub health_timeout: Duration,
    /// How often health is checked while waiting.
    pub health_poll: Duration,
    /// Renders of commits already seen.
    pub renders: RenderCache,
}

impl SyncContext {
    /// Defaults for everything but the git cache and the cluster: default
    /// limits, `kubectl` and `helm` from `PATH`, two minutes per render, five
    /// minutes for a wave to become healthy, polled twice a second.
    pub fn new(git: GitCache, cluster: Cluster, projects: Projects) -> Self {
        Self {
            git,
            cluster,
            projects,
            limits: Limits::default(),
            tools: Tools::default(),
            health_timeout: Duration::from_secs(300),
            health_poll: Duration::from_millis(500),
            renders: RenderCache::default(),
        }
    }
}

/// What a stage decided: go on with what it produced, or stop here with
/// the outcome to report.
#[derive(Debug)]
pub enum Verdict<T> {
    /// Go on to the next stage.
    Go(T),
    /// The sync ends here.
    Stop(Box<Outcome>),
}

/// A failure worth retrying.
#[derive(Debug, thiserror::Error)]
pub enum Transient {
    /// Git failed.
    #[error("git failed")]
    Git(#[source] Box<GitError>),
    /// The API server failed.
    #[error("the API server failed")]
    Api(#[source] Box<ApplyError>),
}

impl Transient {
    /// A bounded label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Git(_) => "git",
            Self::Api(_) => "api",
        }
    }
}

/// Why a sync runs, and what may cut it short.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Someone asked for this sync: apply even when automated sync is off or
    /// when only drift (no new revision) was found and selfHeal is off.
    pub manual: bool,
    /// When the push that asked for it was received.
    pub push_received_at: Option<jiff::Timestamp>,
    /// Newer commits waiting for this Application: a wait for health is
    /// abandoned when one differs from the revision being synced, and the
    /// sync ends `Superseded`, so the newer commit goes next.
    pub newer: Newer,
    /// Sync this revision instead of the one `targetRevision` names (a
    /// rollback, or a sync of a given commit).
    pub revision: Option<String>,
    /// Apply only these resources (empty: all).
    pub resources: Vec<pushsync_proto::ResourceSelector>,
    /// Prune (or not) regardless of `automated.prune` (`None`: as it says).
    pub prune: Option<bool>,
}

/// The newest revision other requests are waiting to have synced (set by
/// whoever holds the Application's lock and hears of them).
#[derive(Debug, Clone)]
pub struct Newer(tokio::sync::watch::Receiver<Option<String>>);

impl Default for Newer {
    fn default() -> Self {
        Self::channel().1
    }
}

impl Newer {
    /// A sender to announce newer revisions, and the receiving side.
    pub fn channel() -> (tokio::sync::watch::Sender<Option<String>>, Self) {
        let (sender, receiver) = tokio::sync::watch::channel(None);
        (sender, Self(receiver))
    }

    /// The waiting revision, when it is not `revision`.
    fn superseding(&self, revision: &str) -> Option<String> {
        self.0.borrow().clone().filter(|newer| newer != revision)
    }

    /// Until the waiting revision changes (forever once nobody can announce).
    async fn changed(&mut self) {
        if self.0.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Sync `app` because a push or poll said it may be out of date.
pub async fn sync(ctx: &SyncContext, app: &Application) -> Result<Outcome, Transient> {
    sync_with(ctx, app, &Request::default()).await
}

/// Sync `app`: resolve, render, compare; then apply when the policy (or a
/// manual request) says so, or only report.
pub async fn sync_with(
    ctx: &SyncContext,
    app: &Application,
    request: &Request,
) -> Result<Outcome, Transient> {
    let started_at = jiff::Timestamp::now();
    let mut timings = Timings::default();
    let mut outcome = stages(ctx, app, request, &mut timings).await?;
    outcome.started_at = started_at;
    outcome.push_received_at = request.push_received_at;
    outcome.timings = timings;
    Ok(outcome)
}

/// The stages in order; each one's time goes to its phase in `timings`.
async fn stages(
    ctx: &SyncContext,
    app: &Application,
    request: &Request,
    timings: &mut Timings,
) -> Result<Outcome, Transient> {
    let mut target = Target::of(app);
    target.selection.clone_from(&request.resources);
    if let Some(prune) = request.prune {
        target.prune = prune;
    }
    let admitted = match admission::admit(ctx, app, &mut target).await? {
        Verdict::Go(admitted) => admitted,
        Verdict::Stop(outcome) => return Ok(*outcome),
    };
    let ctx = &admitted;

    let clock = Instant::now();
    let revision = match source::resolve(ctx, app, &target, request.revision.as_deref()).await? {
        Verdict::Go(revision) => revision,
        Verdict::Stop(outcome) => return Ok(*outcome),
    };
    timings.fetch = clock.elapsed();

    let clock = Instant::now();
    let mut desired = match source::render(ctx, app, &target, revision).await? {
        Verdict::Go(desired) => desired,
        Verdict::Stop(outcome) => return Ok(*outcome),
    };
    if let Verdict::Stop(outcome) = admission::hold(ctx, &target, &mut desired).await? {
        return Ok(*outcome);
    }
    timings.render = clock.elapsed();

    let clock = Instant::now();
    let comparison = compare::compare(ctx, app, request, &target, &desired).await?;
    timings.diff = clock.elapsed();
    if let Some(outcome) = admission::shared(
        &target,
        app.spec.sync_policy.as_ref(),
        &mut desired,
        &comparison,
    )
    .or_else(|| admission::forbidden(&target, &desired, &comparison))
    {
        return Ok(outcome);
    }

    let comparison = match decide::decide(app, request, &target, &desired, comparison) {
        Verdict::Go(comparison) => comparison,
        Verdict::Stop(outcome) => return Ok(*outcome),
    };
    let mut outcome =
        operation::run(ctx, &target, &desired, comparison, &request.newer, timings).await?;
    outcome.desired_digest = Some(desired.digest.clone());
    Ok(outcome)
}

/// What an Application's spec and status say about where and how a sync
/// applies, derived once.
#[derive(Debug, Clone)]
pub struct Target {
    /// The Application, as `namespace/name` (what its tracking marks name).
    pub app: String,
    /// Its Project, once admitted.
    pub project: Option<Arc<Project>>,
    /// Who the sync writes as, once admitted (`None`: the workers).
    pub acting_as: Option<String>,
    /// The namespace namespaced objects that name none go to.
    pub destination: String,
    /// What the previous sync applied (only these may be pruned).
    pub previous: Vec<ResourceRef>,
    /// `syncPolicy.automated` is set and `spec.suspend` is not.
    pub automated: bool,
    /// `spec.suspend`.
    pub suspended: bool,
    /// `automated.prune`, unless the request says otherwise.
    pub prune: bool,
    /// `automated.selfHeal`.
    pub self_heal: bool,
    /// `CreateNamespace=true`.
    pub create_namespace: bool,
    /// `Replace=true`.
    pub replace: bool,
    /// The spec's `ignoreDifferences`.
    pub ignore_differences: Vec<pushsync_api::IgnoreDifference>,
    /// Only these resources are applied (empty: all); hooks do not run and
    /// nothing is pruned (a sync of selected resources).
    pub selection: Vec<pushsync_proto::ResourceSelector>,
    /// Keep whole diffs (a preview shows them); the status keeps 4 KiB each.
    pub full_diffs: bool,
}

impl Target {
    /// Whether `manifest` is applied by this sync.
    pub fn selects(&self, manifest: &Manifest) -> bool {
        let namespace = manifest.namespace().unwrap_or(&self.destination);
        self.selection.is_empty()
            || self.selection.iter().any(|s| {
                s.matches(
                    manifest.group(),
                    manifest.kind(),
                    namespace,
                    manifest.name(),
                )
            })
    }
}

impl Target {
    /// Derive it from `app`.
    pub fn of(app: &Application) -> Self {
        let spec = &app.spec;
        let policy = spec.sync_policy.clone().unwrap_or_default();
        Self {
            app: crate::tenancy::app_key(app),
            project: None,
            acting_as: None,
            destination: destination_of(app),
            previous: app
                .status
                .as_ref()
                .map(|s| s.inventory.clone())
                .unwrap_or_default(),
            // Suspended: no automated sync (nor self-heal); manual ones run.
            automated: policy.automated.is_some() && !spec.suspend,
            suspended: spec.suspend,
            prune: policy.automated.as_ref().is_some_and(|a| a.prune),
            self_heal: spec.self_heals(),
            create_namespace: policy.option("CreateNamespace"),
            replace: policy.option("Replace"),
            ignore_differences: spec.ignore_differences.clone(),
            selection: Vec::new(),
            full_diffs: false,
        }
    }
}

/// The namespace namespaced objects that name none go to.
fn destination_of(app: &Application) -> String {
    app.spec.destination.namespace.clone().unwrap_or_else(|| {
        app.metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned())
    })
}

/// The reference of a manifest, as the inventory records it.
pub fn reference(manifest: &Manifest, default_namespace: &str, namespaced: bool) -> ResourceRef {
    let (group, version) = manifest
        .api_version()
        .rsplit_once('/')
        .unwrap_or(("", manifest.api_version()));
    ResourceRef {
        group: group.to_owned(),
        version: version.to_owned(),
        kind: manifest.kind().to_owned(),
        namespace: if namespaced {
            manifest.namespace().unwrap_or(default_namespace).to_owned()
        } else {
            String::new()
        },
        name: manifest.name().to_owned(),
    }
}

/// A manifest naming only the object `reference` points at (for reads and
/// deletes).
fn manifest_of(reference: &ResourceRef) -> Manifest {
    let api_version = if reference.group.is_empty() {
        reference.version.clone()
    } else {
        format!("{}/{}", reference.group, reference.version)
    };
    let mut metadata = json!({"name": reference.name});
    if !reference.namespace.is_empty() {
        metadata["namespace"] = json!(reference.namespace);
    }
    Manifest {
        object: json!({"apiVersion": api_version, "kind": reference.kind, "metadata": metadata}),
        source: "inventory".into(),
    }
}

/// `Err` when `error` is worth a retry; the error back otherwise.
fn transient_or(error: ApplyError) -> Result<ApplyError, Transient> {
    if error.is_transient() {
        Err(Transient::Api(Box::new(error)))
    } else {
        Ok(error)
    }
}

/// What reading a live object found.
enum Read {
    /// The object.
    Found(Value),
    /// No such object (or unreadable for a reason a retry does not fix).
    Absent,
    /// The identity the sync acts as may not read it (the API server's words).
    Forbidden(String),
}

/// Read the live object; transient failures are errors.
async fn read(ctx: &SyncContext, manifest: &Manifest, namespace: &str) -> Result<Read, Transient> {
    match ctx.cluster.get(manifest, namespace).await {
        Ok(Some(live)) => Ok(Read::Found(live)),
        Ok(None) => Ok(Read::Absent),
        Err(error) => match transient_or(error)? {
            error if error.is_forbidden() => Ok(Read::Forbidden(error.to_string())),
            _ => Ok(Read::Absent),
        },
    }
}

/// The live object, `None` when absent (or unreadable: health then reports
/// it missing).
async fn live(
    ctx: &SyncContext,
    manifest: &Manifest,
    namespace: &str,
) -> Result<Option<Value>, Transient> {
    Ok(match read(ctx, manifest, namespace).await? {
        Read::Found(live) => Some(live),
        Read::Absent | Read::Forbidden(_) => None,
    })
}

/// Whether the manifest's kind is namespaced (kinds were checked before
/// anything was applied, so an unknown kind here is a CRD of this revision).
async fn is_namespaced(ctx: &SyncContext, manifest: &Manifest) -> Result<bool, Transient> {
    match ctx.cluster.resolve(manifest).await {
        Ok((_, namespaced)) => Ok(namespaced),
        Err(error) => transient_or(error).map(|_| true),
    }
}

/// (group, kind, namespace, name): what makes two references one object.
type RefKey = (String, String, String, String);

fn key(r: &ResourceRef) -> RefKey {
    (
        r.group.clone(),
        r.kind.clone(),
        r.namespace.clone(),
        r.name.clone(),
    )
}
