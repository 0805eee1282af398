//! One sync of one Application: resolve the branch head, read and render the
//! source, validate the whole set, then apply it (hooks and waves in order,
//! each wave awaited healthy), prune what left Git, and report.
//!
//! Invariants:
//! - Nothing of a revision is applied unless all of it rendered and validated.
//! - Transient failures (git server, API server) are returned as errors so the
//!   job is retried; everything else ends in a reported outcome.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{StreamExt, TryStreamExt};
use pushsync_api::{
    Application, Condition, IgnoreDifference, ResourceRef, ResourceResult, ResourceStatus,
};
use serde_json::{Value, json};

use crate::apply::{ApplyError, ApplyOptions, Cluster};
use crate::git::{GitCache, GitError, Limits};
use crate::health::{self, Assessment, Health};
use crate::ignore;
use crate::plan::{self, DeletePolicy, Phase, Step};
use crate::render::{self, Manifest, RenderLimits};

/// Annotation that keeps an object out of pruning.
pub const PRUNE_ANNOTATION: &str = "pushsync.dev/prune";

/// What a sync needs.
#[derive(Debug, Clone)]
pub struct SyncContext {
    /// Git sources.
    pub git: GitCache,
    /// The cluster.
    pub cluster: Cluster,
    /// Limits on what is read.
    pub limits: Limits,
    /// Limits on what is rendered.
    pub render_limits: RenderLimits,
    /// How long Kustomize or Helm may run.
    pub render_timeout: Duration,
    /// The `kubectl` binary (its `kustomize` subcommand renders Kustomize sources).
    pub kubectl: std::path::PathBuf,
    /// The `helm` binary (version 3).
    pub helm: std::path::PathBuf,
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
    pub fn new(git: GitCache, cluster: Cluster) -> Self {
        Self {
            git,
            cluster,
            limits: Limits::default(),
            render_limits: RenderLimits::default(),
            render_timeout: Duration::from_secs(120),
            kubectl: "kubectl".into(),
            helm: "helm".into(),
            health_timeout: Duration::from_secs(300),
            health_poll: Duration::from_millis(500),
            renders: RenderCache::default(),
        }
    }
}

/// How a sync ended, when it ended (transient failures are errors instead).
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The commit synced, attempted or compared against.
    pub revision: Option<String>,
    /// `Succeeded`, `Failed` or `Superseded` when a sync operation ran;
    /// `Refreshed` when the cluster was only compared with Git.
    pub phase: &'static str,
    /// `Synced`, `OutOfSync` or `Unknown`.
    pub sync_status: &'static str,
    /// A readable summary.
    pub message: String,
    /// Per-resource results of the operation.
    pub resources: Vec<ResourceResult>,
    /// Each managed resource as compared with Git.
    pub live: Vec<ResourceStatus>,
    /// What is applied now (for the next prune).
    pub inventory: Vec<ResourceRef>,
    /// Health after the sync.
    pub health: Assessment,
    /// A condition to show, when something is wrong.
    pub condition: Option<Condition>,
    /// When the sync started.
    pub started_at: jiff::Timestamp,
    /// When the push that asked for it was received.
    pub push_received_at: Option<jiff::Timestamp>,
    /// Time per phase.
    pub timings: Timings,
    /// Digest of what was compared: the rendered manifests and the settings
    /// that shape an apply.
    pub desired_digest: Option<String>,
}

impl Outcome {
    /// Whether a sync operation ran (rather than only a comparison).
    pub fn operated(&self) -> bool {
        self.phase != "Refreshed"
    }
}

impl Default for Outcome {
    fn default() -> Self {
        Self {
            revision: None,
            phase: "Failed",
            sync_status: "Unknown",
            message: String::new(),
            resources: Vec::new(),
            live: Vec::new(),
            inventory: Vec::new(),
            health: Assessment {
                health: Health::Unknown,
                message: String::new(),
            },
            condition: None,
            started_at: jiff::Timestamp::now(),
            push_received_at: None,
            timings: Timings::default(),
            desired_digest: None,
        }
    }
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

/// A condition that holds now.
pub fn condition(kind: &str, reason: &str, message: &str) -> Condition {
    Condition {
        kind: kind.to_owned(),
        status: "True".to_owned(),
        reason: Some(reason.to_owned()),
        message: Some(message.to_owned()),
        last_transition_time: Some(jiff::Timestamp::now().to_string()),
    }
}

fn failed(
    revision: Option<String>,
    kind: &str,
    reason: &str,
    message: String,
    previous: &[ResourceRef],
) -> Outcome {
    Outcome {
        revision,
        phase: "Failed",
        sync_status: "OutOfSync",
        condition: Some(condition(kind, reason, &message)),
        message,
        inventory: previous.to_vec(),
        ..Outcome::default()
    }
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

fn transient_or(error: ApplyError) -> Result<ApplyError, Transient> {
    if error.is_transient() {
        Err(Transient::Api(Box::new(error)))
    } else {
        Ok(error)
    }
}

/// The live object, `None` when absent (or unreadable for a reason that is
/// not worth a retry: health then reports it missing).
async fn live(
    ctx: &SyncContext,
    manifest: &Manifest,
    namespace: &str,
) -> Result<Option<Value>, Transient> {
    match ctx.cluster.get(manifest, namespace).await {
        Ok(live) => Ok(live),
        Err(error) => transient_or(error).map(|_| None),
    }
}

/// Whether the manifest's kind is namespaced (kinds were checked before
/// anything was applied, so an unknown kind here is a CRD of this revision).
async fn is_namespaced(ctx: &SyncContext, manifest: &Manifest) -> Result<bool, Transient> {
    match ctx.cluster.resolve(manifest).await {
        Ok((_, namespaced)) => Ok(namespaced),
        Err(error) => transient_or(error).map(|_| true),
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

/// Time spent in each phase of one sync.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timings {
    /// Resolving the revision (fetching when the remote moved).
    pub fetch: Duration,
    /// Reading the tree, rendering and validating.
    pub render: Duration,
    /// Comparing with the cluster (dry-run applies and reads).
    pub diff: Duration,
    /// Applying, hooks and pruning.
    pub apply: Duration,
    /// Waiting for waves to become healthy.
    pub health: Duration,
}

impl Timings {
    /// Each phase with its metric label.
    pub fn phases(&self) -> [(&'static str, Duration); 5] {
        [
            ("fetch", self.fetch),
            ("render", self.render),
            ("diff", self.diff),
            ("apply", self.apply),
            ("health", self.health),
        ]
    }
}

/// Rendered manifests per (repository, commit, source, destination): a
/// commit's content never changes, so re-syncs of an unchanged revision skip
/// reading the tree and running Kustomize or Helm.
#[derive(Debug, Clone, Default)]
pub struct RenderCache {
    entries: Arc<Mutex<Renders>>,
}

/// Renders by key, and the keys oldest first (for eviction).
type Renders = (HashMap<String, Arc<Rendered>>, VecDeque<String>);

/// One render of a source at a commit, and the digest of its manifests
/// (computed once, not at every re-sync).
#[derive(Debug)]
struct Rendered {
    manifests: Vec<Manifest>,
    digest: u64,
}

impl Rendered {
    fn new(manifests: Vec<Manifest>) -> Self {
        let digest = manifests.iter().fold(crate::FNV_OFFSET, |hash, m| {
            crate::fnv1a(hash, m.object.to_string().as_bytes())
        });
        Self { manifests, digest }
    }
}

impl RenderCache {
    const CAPACITY: usize = 256;

    fn get(&self, key: &str) -> Option<Arc<Rendered>> {
        let entries = self.entries.lock().ok()?;
        entries.0.get(key).cloned()
    }

    fn put(&self, key: String, manifests: Arc<Rendered>) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        let (map, order) = &mut *entries;
        if map.insert(key.clone(), manifests).is_none() {
            order.push_back(key);
        }
        while order.len() > Self::CAPACITY {
            if let Some(oldest) = order.pop_front() {
                map.remove(&oldest);
            }
        }
    }
}

/// Why a render could not be used.
struct Unusable {
    kind: &'static str,
    reason: &'static str,
    message: String,
}

impl Unusable {
    fn new(kind: &'static str, reason: &'static str, message: impl ToString) -> Self {
        Self {
            kind,
            reason,
            message: message.to_string(),
        }
    }
}

/// Read and render `app`'s source at `revision` (from the cache when this
/// exact source was rendered before).
async fn render_source(
    ctx: &SyncContext,
    app: &Application,
    revision: &str,
    destination: &str,
) -> Result<Result<Arc<Rendered>, Unusable>, Transient> {
    let source = &app.spec.source;
    let name = app.metadata.name.clone().unwrap_or_default();
    let key = format!(
        "{}\n{revision}\n{}\n{name}\n{destination}",
        source.repo_url,
        serde_json::to_string(source).unwrap_or_default()
    );
    if let Some(manifests) = ctx.renders.get(&key) {
        return Ok(Ok(manifests));
    }
    let files = match ctx
        .git
        .files(&source.repo_url, revision, &source.path, ctx.limits)
        .await
    {
        Ok(files) => files,
        Err(error) if error.is_transient() => return Err(Transient::Git(Box::new(error))),
        Err(error) => return Ok(Err(Unusable::new("SourceFailed", "InvalidSource", error))),
    };
    // Which renderer: as asked, or as Argo CD detects it by file name.
    let is_helm = source.helm.is_some() || files.iter().any(|f| f.path == "Chart.yaml");
    let is_kustomize = source.kustomize.is_some()
        || files
            .iter()
            .any(|f| render::kustomize::KUSTOMIZATION_FILES.contains(&f.path.as_str()));
    let rendered = if is_helm {
        let helm = source.helm.clone().unwrap_or_default();
        let options = render::helm::Options {
            release: helm.release_name.unwrap_or(name),
            namespace: destination.to_owned(),
            value_files: helm.value_files,
            values: helm.values,
        };
        render::helm::render(
            &ctx.helm,
            &files,
            &options,
            ctx.render_timeout,
            ctx.render_limits,
        )
        .await
    } else if is_kustomize {
        // Overlays refer to bases elsewhere in the repository: read all of it.
        let repo = match ctx
            .git
            .files(&source.repo_url, revision, "", ctx.limits)
            .await
        {
            Ok(repo) => repo,
            Err(error) if error.is_transient() => return Err(Transient::Git(Box::new(error))),
            Err(error) => return Ok(Err(Unusable::new("SourceFailed", "InvalidSource", error))),
        };
        let options = render::kustomize::Options {
            name_prefix: source
                .kustomize
                .as_ref()
                .and_then(|k| k.name_prefix.clone()),
        };
        render::kustomize::render(
            &ctx.kubectl,
            &repo,
            &source.path,
            &options,
            ctx.render_timeout,
            ctx.render_limits,
        )
        .await
    } else {
        let recurse = source.directory.as_ref().is_some_and(|d| d.recurse);
        render::directory::render(&files, recurse, ctx.render_limits)
    };
    match rendered {
        Ok(manifests) => {
            let rendered = Arc::new(Rendered::new(manifests));
            ctx.renders.put(key, rendered.clone());
            Ok(Ok(rendered))
        }
        Err(error) => Ok(Err(Unusable::new(
            "RenderFailed",
            "InvalidManifests",
            error,
        ))),
    }
}

/// One desired resource compared with its live object.
struct Compared {
    identity: String,
    status: ResourceStatus,
    health: Assessment,
}

/// Longest diff kept per resource in the status.
const DIFF_LIMIT: usize = 4096;

/// Compare one desired resource with the cluster: what a server-side dry-run
/// apply would make of the live object, against the live object.
async fn compare_one(
    ctx: &SyncContext,
    step: &Step,
    namespace: &str,
    ignore_differences: &[IgnoreDifference],
) -> Result<Compared, Transient> {
    let manifest = &step.manifest;
    let namespaced = is_namespaced(ctx, manifest).await?;
    let resource = reference(manifest, namespace, namespaced);
    let identity = manifest.identity();
    let Some(current) = live(ctx, manifest, namespace).await? else {
        return Ok(Compared {
            identity,
            status: ResourceStatus {
                resource,
                status: "Missing".to_owned(),
                health: Some(Health::Missing.as_str().to_owned()),
                diff: None,
                resource_version: None,
            },
            health: health::assess(None),
        });
    };
    let rules: Vec<&IgnoreDifference> = ignore_differences
        .iter()
        .filter(|r| ignore::matches(r, manifest, namespace))
        .collect();
    let desired = Manifest {
        object: ignore::strip(&manifest.object, Some(&current), &rules),
        source: manifest.source.clone(),
    };
    let pointers: Vec<String> = rules
        .iter()
        .flat_map(|r| r.json_pointers.iter().cloned())
        .collect();
    let verdict = health::assess(Some(&current));
    let difference = match ctx
        .cluster
        .apply(&desired, namespace, ApplyOptions { dry_run: true })
        .await
    {
        Ok(after) => crate::apply::diff(Some(&current), &after, &pointers),
        Err(error) => Some(format!("the dry run failed: {}", transient_or(error)?)),
    };
    let resource_version = difference
        .is_none()
        .then(|| current.pointer("/metadata/resourceVersion"))
        .flatten()
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(Compared {
        identity,
        status: ResourceStatus {
            resource,
            resource_version,
            status: if difference.is_some() {
                "OutOfSync"
            } else {
                "Synced"
            }
            .to_owned(),
            health: Some(verdict.health.as_str().to_owned()),
            diff: difference.map(|mut text| {
                if text.len() > DIFF_LIMIT {
                    let mut end = DIFF_LIMIT;
                    while !text.is_char_boundary(end) {
                        end -= 1;
                    }
                    text.truncate(end);
                    text.push_str("\n… (truncated)\n");
                }
                text
            }),
        },
        health: verdict,
    })
}

/// How many comparisons run at once.
const COMPARE_CONCURRENCY: usize = 8;

/// Compare every resource (not hooks) of `plan` with the cluster.
async fn compare(
    ctx: &SyncContext,
    plan: &plan::Plan,
    namespace: &str,
    ignore_differences: &[IgnoreDifference],
) -> Result<Vec<Compared>, Transient> {
    // The futures are made up front (not yet run): a stream mapping borrowed
    // items makes the sync future lose `Send` (rust-lang/rust#102211).
    let comparisons: Vec<_> = plan
        .waves(Phase::Sync)
        .iter()
        .flat_map(|w| w.steps.iter().filter(|s| !s.hook))
        .map(|step| compare_one(ctx, step, namespace, ignore_differences))
        .collect();
    futures_util::stream::iter(comparisons)
        .buffered(COMPARE_CONCURRENCY)
        .try_collect()
        .await
}

type RefKey = (String, String, String, String);

fn key(r: &ResourceRef) -> RefKey {
    (
        r.group.clone(),
        r.kind.clone(),
        r.namespace.clone(),
        r.name.clone(),
    )
}

/// Objects of the previous inventory that left Git but still exist, each
/// with whether it is protected from pruning by annotation.
async fn leftovers(
    ctx: &SyncContext,
    previous: &[ResourceRef],
    desired: &BTreeSet<RefKey>,
    namespace: &str,
) -> Result<Vec<(ResourceRef, bool)>, Transient> {
    let mut found = Vec::new();
    for gone in previous.iter().filter(|r| !desired.contains(&key(r))) {
        let Some(live) = live(ctx, &manifest_of(gone), namespace).await? else {
            continue;
        };
        let protected = live
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(PRUNE_ANNOTATION))
            .and_then(Value::as_str)
            == Some("false");
        found.push((gone.clone(), protected));
    }
    Ok(found)
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
    let mut outcome = reconcile(ctx, app, request, &mut timings).await?;
    outcome.started_at = started_at;
    outcome.push_received_at = request.push_received_at;
    outcome.timings = timings;
    Ok(outcome)
}

async fn reconcile(
    ctx: &SyncContext,
    app: &Application,
    request: &Request,
    timings: &mut Timings,
) -> Result<Outcome, Transient> {
    let spec = &app.spec;
    let status = app.status.clone().unwrap_or_default();
    let previous = status.inventory.clone();
    let destination = destination_of(app);
    let policy = spec.sync_policy.clone().unwrap_or_default();
    let automated = policy.automated.clone();
    let prune = automated.as_ref().is_some_and(|a| a.prune);
    let self_heal = spec.self_heals();

    // 1. Source.
    let clock = Instant::now();
    let source = &spec.source;
    let revision = match ctx
        .git
        .resolve(&source.repo_url, &source.target_revision)
        .await
    {
        Ok(revision) => revision,
        Err(error) if error.is_transient() => return Err(Transient::Git(Box::new(error))),
        Err(error) => {
            let reason = match &error {
                GitError::AuthenticationFailed { .. } => "AuthenticationFailed",
                _ => "RevisionNotFound",
            };
            return Ok(failed(
                None,
                "SourceFailed",
                reason,
                error.to_string(),
                &previous,
            ));
        }
    };
    timings.fetch = clock.elapsed();

    // 2. Render and validate everything before touching the cluster.
    let clock = Instant::now();
    let manifests = match render_source(ctx, app, &revision, &destination).await? {
        Ok(manifests) => manifests,
        Err(unusable) => {
            return Ok(failed(
                Some(revision),
                unusable.kind,
                unusable.reason,
                unusable.message,
                &previous,
            ));
        }
    };
    let plan = match plan::plan(manifests.manifests.clone()) {
        Ok(plan) => plan,
        Err(error) => {
            return Ok(failed(
                Some(revision),
                "RenderFailed",
                "InvalidAnnotation",
                error.to_string(),
                &previous,
            ));
        }
    };
    // Every kind must be known before anything is applied (CRDs in this revision excepted).
    let new_kinds: BTreeSet<String> = plan
        .resources()
        .filter(|m| m.kind() == "CustomResourceDefinition")
        .filter_map(|m| {
            m.object
                .pointer("/spec/names/kind")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect();
    for manifest in plan
        .phases
        .values()
        .flatten()
        .flat_map(|w| &w.steps)
        .map(|s| &s.manifest)
    {
        if new_kinds.contains(manifest.kind()) {
            continue;
        }
        if let Err(error) = ctx.cluster.resolve(manifest).await {
            let error = transient_or(error)?;
            return Ok(failed(
                Some(revision),
                "RenderFailed",
                "UnknownKind",
                error.to_string(),
                &previous,
            ));
        }
    }
    timings.render = clock.elapsed();
    let digest = desired_digest(manifests.digest, spec);

    // 3. Compare with the cluster — unless nothing can have changed: same
    //    commit, same desired state, and every live object still at the
    //    resourceVersion it had when last found in sync.
    let clock = Instant::now();
    if !request.manual
        && let Some(live) = unchanged(ctx, &status, &revision, &digest, &plan, &destination).await?
    {
        timings.diff = clock.elapsed();
        let health = health::worst(live.iter().map(|(_, a)| a));
        return Ok(Outcome {
            revision: Some(revision),
            phase: "Refreshed",
            sync_status: "Synced",
            message: "in sync (no live object changed since the last comparison)".to_owned(),
            inventory: previous,
            live: live.into_iter().map(|(s, _)| s).collect(),
            health,
            desired_digest: Some(digest),
            ..Outcome::default()
        });
    }
    let compared = compare(ctx, &plan, &destination, &spec.ignore_differences).await?;
    let desired: BTreeSet<RefKey> = compared.iter().map(|c| key(&c.status.resource)).collect();
    let leftovers = leftovers(ctx, &previous, &desired, &destination).await?;
    timings.diff = clock.elapsed();
    let changed = compared
        .iter()
        .filter(|c| c.status.status != "Synced")
        .count();
    let differs = changed > 0 || (prune && leftovers.iter().any(|(_, protected)| !protected));
    let failed_before = status
        .operation_state
        .as_ref()
        .is_some_and(|o| o.phase != "Succeeded");
    let new_revision =
        status.sync.as_ref().and_then(|s| s.revision.as_deref()) != Some(revision.as_str());
    let apply = request.manual
        || (automated.is_some() && (failed_before || (differs && (self_heal || new_revision))));
    if !apply {
        let unpruned = leftovers.iter().filter(|(_, protected)| !protected).count();
        let out_of_sync = changed > 0 || unpruned > 0;
        let mut inventory: Vec<ResourceRef> =
            compared.iter().map(|c| c.status.resource.clone()).collect();
        inventory.extend(leftovers.iter().map(|(r, _)| r.clone()));
        let mut live: Vec<ResourceStatus> = compared.iter().map(|c| c.status.clone()).collect();
        live.extend(leftovers.into_iter().map(leftover_status));
        let why = if automated.is_none() {
            "automated sync is off"
        } else {
            "selfHeal is off"
        };
        return Ok(Outcome {
            revision: Some(revision),
            phase: "Refreshed",
            sync_status: if out_of_sync { "OutOfSync" } else { "Synced" },
            message: match (changed, unpruned) {
                (0, 0) => "in sync".to_owned(),
                (0, n) => format!("{n} objects need pruning"),
                (n, 0) => format!("{n} resources out of sync; not applied: {why}"),
                (n, m) => {
                    format!("{n} resources out of sync, {m} need pruning; not applied: {why}")
                }
            },
            resources: Vec::new(),
            inventory,
            health: health::worst(compared.iter().map(|c| &c.health)),
            live,
            condition: None,
            desired_digest: Some(digest),
            ..Outcome::default()
        });
    }
    let mut outcome = operation(
        ctx, app, request, timings, revision, &plan, compared, leftovers,
    )
    .await?;
    outcome.desired_digest = Some(digest);
    Ok(outcome)
}

/// A digest of the desired state: the rendered manifests' digest and the
/// settings that change what an apply or a comparison does.
fn desired_digest(manifests: u64, spec: &pushsync_api::ApplicationSpec) -> String {
    let hash = [
        serde_json::to_string(&spec.destination),
        serde_json::to_string(&spec.sync_policy),
        serde_json::to_string(&spec.ignore_differences),
    ]
    .into_iter()
    .fold(manifests, |hash, part| {
        crate::fnv1a(hash, part.unwrap_or_default().as_bytes())
    });
    format!("{hash:016x}")
}

/// When nothing can have changed since the last comparison found `status`
/// in sync, the resources as they are now (listed, one request per kind and
/// namespace) with their health; `None` when a full comparison is needed.
async fn unchanged(
    ctx: &SyncContext,
    status: &pushsync_api::ApplicationStatus,
    revision: &str,
    digest: &str,
    plan: &plan::Plan,
    destination: &str,
) -> Result<Option<Vec<(ResourceStatus, Assessment)>>, Transient> {
    let Some(sync) = &status.sync else {
        return Ok(None);
    };
    let same = sync.status == "Synced"
        && sync.revision.as_deref() == Some(revision)
        && sync.desired_digest.as_deref() == Some(digest)
        && status
            .operation_state
            .as_ref()
            .is_none_or(|o| o.phase == "Succeeded")
        && status.resources.len() == plan.resources().count()
        && status.inventory.len() == status.resources.len()
        && status
            .resources
            .iter()
            .all(|r| r.status == "Synced" && r.resource_version.is_some());
    if !same {
        return Ok(None);
    }
    let mut groups: BTreeMap<(String, String, String, String), Vec<&ResourceStatus>> =
        BTreeMap::new();
    for resource in &status.resources {
        let r = &resource.resource;
        groups
            .entry((
                r.group.clone(),
                r.version.clone(),
                r.kind.clone(),
                r.namespace.clone(),
            ))
            .or_default()
            .push(resource);
    }
    let mut found = Vec::with_capacity(status.resources.len());
    for resources in groups.values() {
        let probe = manifest_of(&resources[0].resource);
        let listed = match ctx.cluster.list(&probe, destination).await {
            Ok(listed) => listed,
            Err(error) => {
                transient_or(error)?;
                return Ok(None);
            }
        };
        let by_name: HashMap<&str, &Value> = listed
            .iter()
            .filter_map(|o| Some((o.pointer("/metadata/name")?.as_str()?, o)))
            .collect();
        for resource in resources {
            let Some(object) = by_name.get(resource.resource.name.as_str()) else {
                return Ok(None);
            };
            let version = object
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str);
            if version != resource.resource_version.as_deref() {
                return Ok(None);
            }
            let verdict = health::assess(Some(object));
            found.push((
                ResourceStatus {
                    health: Some(verdict.health.as_str().to_owned()),
                    ..(*resource).clone()
                },
                verdict,
            ));
        }
    }
    Ok(Some(found))
}

/// The sync operation: namespaces, hooks and waves in order, prune.
#[allow(
    clippy::too_many_arguments,
    reason = "the state reconcile built, handed over once"
)]
async fn operation(
    ctx: &SyncContext,
    app: &Application,
    request: &Request,
    timings: &mut Timings,
    revision: String,
    plan: &plan::Plan,
    compared: Vec<Compared>,
    leftovers: Vec<(ResourceRef, bool)>,
) -> Result<Outcome, Transient> {
    let spec = &app.spec;
    let previous = app
        .status
        .as_ref()
        .map(|s| s.inventory.clone())
        .unwrap_or_default();
    let destination = destination_of(app);
    let policy = spec.sync_policy.clone().unwrap_or_default();
    let prune = policy.automated.as_ref().is_some_and(|a| a.prune);
    let clock = Instant::now();
    let mut results = Vec::new();
    if policy.option("CreateNamespace") {
        let namespace = Manifest {
            object: json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": destination}}),
            source: "CreateNamespace".into(),
        };
        if let Err(error) = ctx
            .cluster
            .apply(&namespace, &destination, ApplyOptions::default())
            .await
        {
            let error = transient_or(error)?;
            return Ok(failed(
                Some(revision),
                "SyncFailed",
                "NamespaceFailed",
                error.to_string(),
                &previous,
            ));
        }
    }
    let mut failure: Option<Result<String, String>> = None;
    // Health of the resources, as each wave settled (no second round of reads).
    let mut verdicts: HashMap<String, Assessment> = HashMap::new();
    let mut waited = Duration::ZERO;
    'phases: for phase in [Phase::PreSync, Phase::Sync, Phase::PostSync] {
        for wave in plan.waves(phase) {
            let mut applied = Vec::with_capacity(wave.steps.len());
            for step in &wave.steps {
                match apply_step(
                    ctx,
                    step,
                    &destination,
                    policy.option("Replace"),
                    &spec.ignore_differences,
                )
                .await?
                {
                    Ok((result, applied_step)) => {
                        results.push(result);
                        applied.push(applied_step);
                    }
                    Err(message) => {
                        failure = Some(Err(message));
                        break 'phases;
                    }
                }
            }
            if wave
                .steps
                .iter()
                .any(|s| s.manifest.kind() == "CustomResourceDefinition")
            {
                ctx.cluster.forget_kinds().await;
            }
            let wait = Instant::now();
            let settled = wait_healthy(
                ctx,
                &applied,
                &destination,
                &revision,
                request.newer.clone(),
            )
            .await?;
            waited += wait.elapsed();
            match settled {
                Ok(settled) => {
                    verdicts.extend(settled);
                    finish_hooks(ctx, &applied, &destination, DeletePolicy::HookSucceeded).await?
                }
                Err(Wait::Failed(message)) => {
                    finish_hooks(ctx, &applied, &destination, DeletePolicy::HookFailed).await?;
                    failure = Some(Err(message));
                    break 'phases;
                }
                Err(Wait::Superseded(message)) => {
                    failure = Some(Ok(message));
                    break 'phases;
                }
            }
        }
    }
    // What this operation applied joins the inventory even when it failed,
    // so a later sync can prune it.
    let partial_inventory = |results: &[ResourceResult]| {
        let mut inventory = previous.clone();
        let known: BTreeSet<RefKey> = inventory.iter().map(key).collect();
        inventory.extend(
            results
                .iter()
                .filter(|r| r.hook_phase.is_none() && !known.contains(&key(&r.resource)))
                .map(|r| r.resource.clone()),
        );
        inventory
    };
    match failure {
        Some(Ok(waiting_for)) => {
            timings.health = waited;
            timings.apply = clock.elapsed().saturating_sub(waited);
            return Ok(Outcome {
                revision: Some(revision),
                phase: "Superseded",
                sync_status: "OutOfSync",
                message: format!("a newer commit is waiting; stopped waiting for {waiting_for}"),
                inventory: partial_inventory(&results),
                resources: results,
                health: Assessment {
                    health: Health::Progressing,
                    message: waiting_for,
                },
                live: compared.into_iter().map(|c| c.status).collect(),
                ..Outcome::default()
            });
        }
        Some(Err(message)) => {
            for wave in plan.waves(Phase::SyncFail) {
                for step in &wave.steps {
                    let _ = apply_step(ctx, step, &destination, false, &spec.ignore_differences)
                        .await?;
                }
            }
            timings.health = waited;
            timings.apply = clock.elapsed().saturating_sub(waited);
            let mut outcome = failed(
                Some(revision),
                "SyncFailed",
                "SyncFailed",
                message,
                &previous,
            );
            outcome.inventory = partial_inventory(&results);
            outcome.resources = results;
            outcome.live = compared.into_iter().map(|c| c.status).collect();
            return Ok(outcome);
        }
        None => {}
    }

    // 4. Prune what left Git.
    let mut inventory: Vec<ResourceRef> =
        compared.iter().map(|c| c.status.resource.clone()).collect();
    let mut out_of_sync = false;
    let mut kept = Vec::new();
    for (gone, protected) in leftovers {
        let status = if prune && !protected {
            ctx.cluster
                .delete(&manifest_of(&gone), &destination)
                .await
                .or_else(|e| transient_or(e).map(|_| ()))?;
            "Pruned"
        } else {
            out_of_sync |= !protected;
            inventory.push(gone.clone());
            kept.push(leftover_status((gone.clone(), protected)));
            if protected {
                "PruneSkipped"
            } else {
                "RequiresPruning"
            }
        };
        results.push(ResourceResult {
            resource: gone,
            status: status.to_owned(),
            message: None,
            hook_phase: None,
        });
    }
    timings.health = waited;
    timings.apply = clock.elapsed().saturating_sub(waited);

    let applied = results.iter().filter(|r| r.status == "Synced").count();
    let health = health::worst(verdicts.values());
    let mut live: Vec<ResourceStatus> = compared
        .into_iter()
        .map(|c| ResourceStatus {
            status: "Synced".to_owned(),
            diff: None,
            // Applying changed them: the next comparison records new ones.
            resource_version: None,
            health: verdicts
                .get(&c.identity)
                .map(|a| a.health.as_str().to_owned())
                .or(c.status.health),
            ..c.status
        })
        .collect();
    live.extend(kept);
    Ok(Outcome {
        revision: Some(revision),
        phase: "Succeeded",
        sync_status: if out_of_sync { "OutOfSync" } else { "Synced" },
        message: if out_of_sync {
            format!("{applied} resources synced; some objects need pruning")
        } else {
            format!("{applied} resources synced")
        },
        resources: results,
        inventory,
        health,
        live,
        ..Outcome::default()
    })
}

/// How a leftover of the previous inventory that was not pruned is reported.
fn leftover_status((resource, protected): (ResourceRef, bool)) -> ResourceStatus {
    ResourceStatus {
        resource,
        status: if protected {
            "PruneSkipped"
        } else {
            "RequiresPruning"
        }
        .to_owned(),
        health: None,
        diff: None,
        resource_version: None,
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

async fn apply_step(
    ctx: &SyncContext,
    step: &Step,
    namespace: &str,
    replace: bool,
    ignore_differences: &[IgnoreDifference],
) -> Result<Result<(ResourceResult, Step), String>, Transient> {
    // Fields an ignoreDifferences rule names are neither set nor reverted.
    let rules: Vec<&IgnoreDifference> = ignore_differences
        .iter()
        .filter(|r| ignore::matches(r, &step.manifest, namespace))
        .collect();
    let stripped;
    let manifest = if rules.is_empty() {
        &step.manifest
    } else {
        let current = if ignore::needs_live(&rules) {
            live(ctx, &step.manifest, namespace).await?
        } else {
            None
        };
        stripped = Manifest {
            object: ignore::strip(&step.manifest.object, current.as_ref(), &rules),
            source: step.manifest.source.clone(),
        };
        &stripped
    };
    if step.hook
        && step
            .delete_policies
            .contains(&DeletePolicy::BeforeHookCreation)
        && !manifest.name().is_empty()
    {
        ctx.cluster
            .delete(manifest, namespace)
            .await
            .or_else(|e| transient_or(e).map(|_| ()))?;
        wait_gone(ctx, manifest, namespace).await?;
    }
    let (_, namespaced) = match ctx.cluster.resolve(manifest).await {
        Ok(found) => found,
        Err(error) => return Ok(Err(transient_or(error)?.to_string())),
    };
    // What was applied, named as the server named it (generateName).
    let applied = |object: &Value| {
        let mut step = step.clone();
        if let Some(name) = object.pointer("/metadata/name").cloned() {
            step.manifest.object["metadata"]["name"] = name;
        }
        step
    };
    let result = |step: &Step, status: &str, message: Option<String>| ResourceResult {
        resource: reference(&step.manifest, namespace, namespaced),
        status: status.to_owned(),
        message,
        hook_phase: step.hook.then(|| "Running".to_owned()),
    };
    match ctx
        .cluster
        .apply(manifest, namespace, ApplyOptions::default())
        .await
    {
        Ok(object) => {
            let step = applied(&object);
            Ok(Ok((result(&step, "Synced", None), step)))
        }
        Err(error) => {
            let error = transient_or(error)?;
            if replace && error.is_immutable_field() {
                ctx.cluster
                    .delete(manifest, namespace)
                    .await
                    .or_else(|e| transient_or(e).map(|_| ()))?;
                wait_gone(ctx, manifest, namespace).await?;
                return match ctx
                    .cluster
                    .apply(manifest, namespace, ApplyOptions::default())
                    .await
                {
                    Ok(object) => {
                        let step = applied(&object);
                        Ok(Ok((
                            result(
                                &step,
                                "Synced",
                                Some("replaced: an immutable field changed".to_owned()),
                            ),
                            step,
                        )))
                    }
                    Err(error) => Ok(Err(transient_or(error)?.to_string())),
                };
            }
            Ok(Err(error.to_string()))
        }
    }
}

async fn wait_gone(
    ctx: &SyncContext,
    manifest: &Manifest,
    namespace: &str,
) -> Result<(), Transient> {
    let deadline = tokio::time::Instant::now() + ctx.health_timeout;
    while tokio::time::Instant::now() < deadline {
        if live(ctx, manifest, namespace).await?.is_none() {
            break;
        }
        tokio::time::sleep(ctx.health_poll).await;
    }
    Ok(())
}

/// Why a wave did not settle.
enum Wait {
    /// Degraded, or not healthy in time.
    Failed(String),
    /// A newer commit is waiting; this is what was still pending.
    Superseded(String),
}

/// Wait until every object of the wave is healthy (or has no health rule);
/// the verdicts of its resources (not hooks) by identity.
async fn wait_healthy(
    ctx: &SyncContext,
    steps: &[Step],
    namespace: &str,
    revision: &str,
    mut newer: Newer,
) -> Result<Result<Vec<(String, Assessment)>, Wait>, Transient> {
    let deadline = tokio::time::Instant::now() + ctx.health_timeout;
    loop {
        let mut pending = None;
        let mut verdicts = Vec::with_capacity(steps.len());
        for step in steps {
            let verdict = health::assess(live(ctx, &step.manifest, namespace).await?.as_ref());
            match verdict.health {
                Health::Healthy | Health::Unknown => {}
                Health::Degraded => {
                    return Ok(Err(Wait::Failed(format!(
                        "{} {:?} is degraded: {}",
                        step.manifest.kind(),
                        step.manifest.name(),
                        verdict.message
                    ))));
                }
                Health::Progressing | Health::Missing => {
                    pending = Some(format!(
                        "{} {:?}: {}",
                        step.manifest.kind(),
                        step.manifest.name(),
                        verdict.message
                    ));
                }
            }
            if !step.hook {
                verdicts.push((step.manifest.identity(), verdict));
            }
        }
        let Some(pending) = pending else {
            return Ok(Ok(verdicts));
        };
        if tokio::time::Instant::now() >= deadline {
            return Ok(Err(Wait::Failed(format!(
                "not healthy within {:?}: {pending}",
                ctx.health_timeout
            ))));
        }
        if let Some(newer) = newer.superseding(revision) {
            tracing::info!(revision, newer, waiting_for = %pending, "a newer commit supersedes this sync");
            return Ok(Err(Wait::Superseded(pending)));
        }
        tokio::select! {
            () = newer.changed() => {}
            () = tokio::time::sleep(ctx.health_poll) => {}
        }
    }
}

async fn finish_hooks(
    ctx: &SyncContext,
    steps: &[Step],
    namespace: &str,
    policy: DeletePolicy,
) -> Result<(), Transient> {
    for step in steps
        .iter()
        .filter(|s| s.hook && s.delete_policies.contains(&policy))
    {
        ctx.cluster
            .delete(&step.manifest, namespace)
            .await
            .or_else(|e| transient_or(e).map(|_| ()))?;
    }
    Ok(())
}

/// The Application status after `outcome`, merged over the previous one:
/// a comparison without an operation leaves the last operation and the
/// history as they were.
pub fn status_patch(app: &Application, outcome: &Outcome) -> Value {
    let now = jiff::Timestamp::now().to_string();
    let mut status = json!({
        "sync": {"status": outcome.sync_status, "revision": outcome.revision, "desiredDigest": outcome.desired_digest},
        "health": {"status": outcome.health.health.as_str(), "message": (!outcome.health.message.is_empty()).then_some(&outcome.health.message)},
        "conditions": outcome.condition.iter().collect::<Vec<_>>(),
        "inventory": outcome.inventory,
        "resources": outcome.live,
        "reconciledAt": now,
    });
    if let Some(received) = outcome.push_received_at {
        status["lastPushReceivedAt"] = json!(received.to_string());
    }
    if outcome.operated() {
        let mut history = app
            .status
            .as_ref()
            .map(|s| s.history.clone())
            .unwrap_or_default();
        if outcome.phase == "Succeeded"
            && let Some(revision) = &outcome.revision
            && history.last().is_none_or(|h| &h.revision != revision)
        {
            history.push(pushsync_api::RevisionHistory {
                revision: revision.clone(),
                deployed_at: now.clone(),
            });
            let excess = history.len().saturating_sub(HISTORY_LIMIT);
            history.drain(..excess);
        }
        status["history"] = json!(history);
        status["operationState"] = json!({
            "phase": outcome.phase,
            "message": outcome.message,
            "revision": outcome.revision,
            "startedAt": outcome.started_at.to_string(),
            "finishedAt": now,
            "resources": outcome.resources,
        });
    }
    json!({ "status": status })
}

/// How many deployed revisions the status remembers.
pub const HISTORY_LIMIT: usize = 10;

#[cfg(test)]
mod tests;
