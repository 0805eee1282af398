//! One sync of one Application: resolve the branch head, read and render the
//! source, validate the whole set, then apply it (hooks and waves in order,
//! each wave awaited healthy), prune what left Git, and report.
//!
//! Invariants:
//! - Nothing of a revision is applied unless all of it rendered and validated.
//! - Transient failures (git server, API server) are returned as errors so the
//!   job is retried; everything else ends in a reported outcome.

use std::collections::BTreeSet;
use std::time::Duration;

use pushsync_api::{Application, Condition, IgnoreDifference, ResourceRef, ResourceResult};
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
        }
    }
}

/// How a sync ended, when it ended (transient failures are errors instead).
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The commit synced (or attempted).
    pub revision: Option<String>,
    /// `Succeeded` or `Failed`.
    pub phase: &'static str,
    /// A readable summary.
    pub message: String,
    /// Per-resource results.
    pub resources: Vec<ResourceResult>,
    /// What is applied now (for the next prune).
    pub inventory: Vec<ResourceRef>,
    /// Health after the sync.
    pub health: Assessment,
    /// A condition to show, when something is wrong.
    pub condition: Option<Condition>,
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

fn condition(kind: &str, reason: &str, message: &str) -> Condition {
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
        condition: Some(condition(kind, reason, &message)),
        message,
        resources: Vec::new(),
        inventory: previous.to_vec(),
        health: Assessment {
            health: Health::Unknown,
            message: String::new(),
        },
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

/// Sync `app`. `previous` is the inventory of the last successful sync.
pub async fn sync(ctx: &SyncContext, app: &Application) -> Result<Outcome, Transient> {
    let spec = &app.spec;
    let previous: Vec<ResourceRef> = app
        .status
        .as_ref()
        .map(|s| s.inventory.clone())
        .unwrap_or_default();
    let app_namespace = app
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_owned());
    let destination = spec.destination.namespace.clone().unwrap_or(app_namespace);
    let policy = spec.sync_policy.clone().unwrap_or_default();
    let prune = policy.automated.as_ref().is_some_and(|a| a.prune);

    // 1. Source.
    let source = &spec.source;
    let revision = match ctx
        .git
        .resolve(&source.repo_url, &source.target_revision)
        .await
    {
        Ok(revision) => revision,
        Err(error) if error.is_transient() => return Err(Transient::Git(Box::new(error))),
        Err(error) => {
            return Ok(failed(
                None,
                "SourceFailed",
                "RevisionNotFound",
                error.to_string(),
                &previous,
            ));
        }
    };
    let files = match ctx
        .git
        .files(&source.repo_url, &revision, &source.path, ctx.limits)
        .await
    {
        Ok(files) => files,
        Err(error) if error.is_transient() => return Err(Transient::Git(Box::new(error))),
        Err(error) => {
            return Ok(failed(
                Some(revision),
                "SourceFailed",
                "InvalidSource",
                error.to_string(),
                &previous,
            ));
        }
    };
    // 2. Render and validate everything before touching the cluster.
    // Which renderer: as asked, or as Argo CD detects it by file name.
    let is_helm = source.helm.is_some() || files.iter().any(|f| f.path == "Chart.yaml");
    let is_kustomize = source.kustomize.is_some()
        || files
            .iter()
            .any(|f| render::kustomize::KUSTOMIZATION_FILES.contains(&f.path.as_str()));
    let rendered = if is_helm {
        let helm = source.helm.clone().unwrap_or_default();
        let options = render::helm::Options {
            release: helm
                .release_name
                .unwrap_or_else(|| app.metadata.name.clone().unwrap_or_default()),
            namespace: destination.clone(),
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
            .files(&source.repo_url, &revision, "", ctx.limits)
            .await
        {
            Ok(repo) => repo,
            Err(error) if error.is_transient() => return Err(Transient::Git(Box::new(error))),
            Err(error) => {
                return Ok(failed(
                    Some(revision),
                    "SourceFailed",
                    "InvalidSource",
                    error.to_string(),
                    &previous,
                ));
            }
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
    let manifests = match rendered {
        Ok(manifests) => manifests,
        Err(error) => {
            return Ok(failed(
                Some(revision),
                "RenderFailed",
                "InvalidManifests",
                error.to_string(),
                &previous,
            ));
        }
    };
    let plan = match plan::plan(manifests) {
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

    // 3. Apply.
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
    let mut failure: Option<String> = None;
    // Health of the resources, as each wave settled (no second round of reads).
    let mut verdicts: Vec<Assessment> = Vec::new();
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
                        failure = Some(message);
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
            match wait_healthy(ctx, &applied, &destination).await? {
                Ok(settled) => {
                    verdicts.extend(settled);
                    finish_hooks(ctx, &applied, &destination, DeletePolicy::HookSucceeded).await?
                }
                Err(message) => {
                    finish_hooks(ctx, &applied, &destination, DeletePolicy::HookFailed).await?;
                    failure = Some(message);
                    break 'phases;
                }
            }
        }
    }
    if let Some(message) = failure {
        for wave in plan.waves(Phase::SyncFail) {
            for step in &wave.steps {
                let _ =
                    apply_step(ctx, step, &destination, false, &spec.ignore_differences).await?;
            }
        }
        let mut outcome = failed(
            Some(revision),
            "SyncFailed",
            "SyncFailed",
            message,
            &previous,
        );
        outcome.resources = results;
        return Ok(outcome);
    }

    // 4. Prune what left Git.
    let mut inventory = Vec::new();
    for manifest in plan.resources() {
        inventory.push(reference(
            manifest,
            &destination,
            is_namespaced(ctx, manifest).await?,
        ));
    }
    let keep: BTreeSet<(String, String, String, String)> = inventory
        .iter()
        .map(|r| {
            (
                r.group.clone(),
                r.kind.clone(),
                r.namespace.clone(),
                r.name.clone(),
            )
        })
        .collect();
    let mut out_of_sync = false;
    for gone in previous.iter().filter(|r| {
        !keep.contains(&(
            r.group.clone(),
            r.kind.clone(),
            r.namespace.clone(),
            r.name.clone(),
        ))
    }) {
        let manifest = manifest_of(gone);
        let Some(live) = live(ctx, &manifest, &destination).await? else {
            continue;
        };
        let protected = live
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(PRUNE_ANNOTATION))
            .and_then(Value::as_str)
            == Some("false");
        let status = if prune && !protected {
            ctx.cluster
                .delete(&manifest, &destination)
                .await
                .or_else(|e| transient_or(e).map(|_| ()))?;
            "Pruned"
        } else {
            out_of_sync = true;
            inventory.push(gone.clone());
            if protected {
                "PruneSkipped"
            } else {
                "RequiresPruning"
            }
        };
        results.push(ResourceResult {
            resource: gone.clone(),
            status: status.to_owned(),
            message: None,
            hook_phase: None,
        });
    }

    let applied = results.iter().filter(|r| r.status == "Synced").count();
    Ok(Outcome {
        revision: Some(revision),
        phase: "Succeeded",
        message: if out_of_sync {
            format!("{applied} resources synced; some objects need pruning")
        } else {
            format!("{applied} resources synced")
        },
        resources: results,
        inventory,
        health: health::worst(&verdicts),
        condition: None,
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

/// Wait until every object of the wave is healthy (or has no health rule).
async fn wait_healthy(
    ctx: &SyncContext,
    steps: &[Step],
    namespace: &str,
) -> Result<Result<Vec<Assessment>, String>, Transient> {
    let deadline = tokio::time::Instant::now() + ctx.health_timeout;
    loop {
        let mut pending = None;
        let mut verdicts = Vec::with_capacity(steps.len());
        for step in steps {
            let verdict = health::assess(live(ctx, &step.manifest, namespace).await?.as_ref());
            match verdict.health {
                Health::Healthy | Health::Unknown => {}
                Health::Degraded => {
                    return Ok(Err(format!(
                        "{} {:?} is degraded: {}",
                        step.manifest.kind(),
                        step.manifest.name(),
                        verdict.message
                    )));
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
                verdicts.push(verdict);
            }
        }
        let Some(pending) = pending else {
            return Ok(Ok(verdicts));
        };
        if tokio::time::Instant::now() >= deadline {
            return Ok(Err(format!(
                "not healthy within {:?}: {pending}",
                ctx.health_timeout
            )));
        }
        tokio::time::sleep(ctx.health_poll).await;
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

/// The Application status after `outcome`, merged over the previous one.
pub fn status_patch(app: &Application, outcome: &Outcome) -> Value {
    let now = jiff::Timestamp::now().to_string();
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
        let excess = history.len().saturating_sub(10);
        history.drain(..excess);
    }
    let sync_status = if outcome.phase == "Succeeded" && !outcome.message.contains("need pruning") {
        "Synced"
    } else {
        "OutOfSync"
    };
    json!({
        "status": {
            "sync": {"status": sync_status, "revision": outcome.revision},
            "health": {"status": outcome.health.health.as_str(), "message": (!outcome.health.message.is_empty()).then_some(&outcome.health.message)},
            "operationState": {
                "phase": outcome.phase,
                "message": outcome.message,
                "revision": outcome.revision,
                "finishedAt": now,
                "resources": outcome.resources,
            },
            "history": history,
            "conditions": outcome.condition.iter().collect::<Vec<_>>(),
            "inventory": outcome.inventory,
        }
    })
}

#[cfg(test)]
mod tests;
