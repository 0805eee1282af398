//! The order of a sync: hooks by phase, Namespaces and CRDs first, sync waves
//! lowest first, and a sensible kind order inside each wave.
//!
//! Annotations (ours win over Argo CD's when both are set, so repositories
//! written for Argo CD migrate unchanged):
//! - `pushsync.dev/sync-wave` / `argocd.argoproj.io/sync-wave`: an integer, default 0;
//! - `pushsync.dev/hook` / `argocd.argoproj.io/hook`: `PreSync`, `Sync`,
//!   `PostSync`, `SyncFail`, `PreDelete`, `PostDelete` or `Skip`
//!   (comma-separated for several phases); Helm's `helm.sh/hook`
//!   `pre-install`/`pre-upgrade` and `post-install`/`post-upgrade` map to
//!   PreSync and PostSync, as Argo CD does, and `pre-delete`/`post-delete`
//!   to PreDelete and PostDelete (run only when an Application with the
//!   resources finalizer is deleted);
//! - `pushsync.dev/hook-delete-policy` / `argocd.argoproj.io/hook-delete-policy`:
//!   `HookSucceeded`, `HookFailed`, `BeforeHookCreation` (the default).

use std::collections::BTreeMap;

use crate::render::Manifest;

/// Sync wave annotation.
pub const SYNC_WAVE: &str = "pushsync.dev/sync-wave";
/// Hook annotation.
pub const HOOK: &str = "pushsync.dev/hook";
/// Hook delete policy annotation.
pub const HOOK_DELETE_POLICY: &str = "pushsync.dev/hook-delete-policy";
const ARGO_SYNC_WAVE: &str = "argocd.argoproj.io/sync-wave";
const ARGO_HOOK: &str = "argocd.argoproj.io/hook";
const ARGO_HOOK_DELETE_POLICY: &str = "argocd.argoproj.io/hook-delete-policy";
const HELM_HOOK: &str = "helm.sh/hook";
const HELM_HOOK_WEIGHT: &str = "helm.sh/hook-weight";

/// A sync phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// Before anything is applied.
    PreSync,
    /// With the manifests.
    Sync,
    /// After everything is applied and healthy.
    PostSync,
    /// Only when the sync failed.
    SyncFail,
    /// When the Application is deleted (with the resources finalizer),
    /// before its objects are.
    PreDelete,
    /// When the Application is deleted, after its objects are gone.
    PostDelete,
}

/// When a hook object is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeletePolicy {
    /// After it succeeded.
    HookSucceeded,
    /// After it failed.
    HookFailed,
    /// Just before it is created again (the default).
    BeforeHookCreation,
}

/// A manifest scheduled in a phase and wave.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The manifest.
    pub manifest: Manifest,
    /// Whether it is a hook (run, awaited, maybe deleted) rather than a resource.
    pub hook: bool,
    /// Hook delete policies (empty for resources).
    pub delete_policies: Vec<DeletePolicy>,
}

/// One wave: applied together, awaited healthy before the next.
#[derive(Debug, Clone, PartialEq)]
pub struct Wave {
    /// The wave number (`i32::MIN` for the Namespaces-and-CRDs wave).
    pub number: i32,
    /// In apply order.
    pub steps: Vec<Step>,
}

/// The whole plan.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Waves per phase, lowest first.
    pub phases: BTreeMap<Phase, Vec<Wave>>,
    /// Manifests annotated `Skip`: never applied, never pruned.
    pub skipped: Vec<Manifest>,
}

impl Plan {
    /// The waves of `phase` (empty when none).
    pub fn waves(&self, phase: Phase) -> &[Wave] {
        self.phases.get(&phase).map_or(&[], Vec::as_slice)
    }

    /// Every manifest of every phase, hooks included, in plan order.
    pub fn manifests(&self) -> impl Iterator<Item = &Manifest> {
        self.phases
            .values()
            .flatten()
            .flat_map(|w| &w.steps)
            .map(|s| &s.manifest)
    }

    /// The same, to change (marks, …).
    pub fn manifests_mut(&mut self) -> impl Iterator<Item = &mut Manifest> {
        self.phases
            .values_mut()
            .flatten()
            .flat_map(|w| &mut w.steps)
            .map(|s| &mut s.manifest)
    }

    /// The kinds this plan's own CustomResourceDefinitions
    /// (`apiextensions.k8s.io`) define: (group, kind) and whether namespaced.
    pub fn defined_kinds(&self) -> BTreeMap<(String, String), bool> {
        self.manifests()
            .filter(|m| {
                m.group() == "apiextensions.k8s.io" && m.kind() == "CustomResourceDefinition"
            })
            .filter_map(|m| {
                let spec = m.object.get("spec")?;
                let group = spec.get("group")?.as_str()?.to_owned();
                let kind = spec.pointer("/names/kind")?.as_str()?.to_owned();
                let namespaced =
                    spec.get("scope").and_then(serde_json::Value::as_str) != Some("Cluster");
                Some(((group, kind), namespaced))
            })
            .collect()
    }

    /// Every manifest that is a resource (not a hook): what the inventory holds.
    pub fn resources(&self) -> impl Iterator<Item = &Manifest> {
        self.waves(Phase::Sync)
            .iter()
            .flat_map(|w| w.steps.iter().filter(|s| !s.hook).map(|s| &s.manifest))
    }
}

/// An annotation with an unusable value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_ref}: annotation {annotation}={value:?} is not valid: {expected}")]
pub struct PlanError {
    /// `file#document`.
    pub source_ref: String,
    /// The annotation.
    pub annotation: String,
    /// Its value.
    pub value: String,
    /// What was expected.
    pub expected: &'static str,
}

impl PlanError {
    /// A bounded label for metrics and logs (one kind: a bad annotation).
    pub fn kind(&self) -> &'static str {
        "invalid_annotation"
    }
}

fn annotation<'m>(
    manifest: &'m Manifest,
    ours: &'static str,
    theirs: &'static str,
) -> Option<(&'static str, &'m str)> {
    let annotations = manifest.object.pointer("/metadata/annotations")?;
    let get = |key: &str| annotations.get(key).and_then(serde_json::Value::as_str);
    get(ours)
        .map(|v| (ours, v))
        .or_else(|| get(theirs).map(|v| (theirs, v)))
}

fn invalid(
    manifest: &Manifest,
    annotation: &str,
    value: &str,
    expected: &'static str,
) -> PlanError {
    PlanError {
        source_ref: manifest.source.clone(),
        annotation: annotation.to_owned(),
        value: value.to_owned(),
        expected,
    }
}

/// The manifest's sync wave.
pub fn wave_of(manifest: &Manifest) -> Result<i32, PlanError> {
    let found = annotation(manifest, SYNC_WAVE, ARGO_SYNC_WAVE)
        .or_else(|| annotation(manifest, HELM_HOOK_WEIGHT, HELM_HOOK_WEIGHT));
    match found {
        None => Ok(0),
        Some((name, value)) => value
            .trim()
            .parse()
            .map_err(|_| invalid(manifest, name, value, "an integer")),
    }
}

/// The hook phases of a manifest (`None`: a plain resource; `Some(empty)`: Skip).
pub fn hook_phases(manifest: &Manifest) -> Result<Option<Vec<Phase>>, PlanError> {
    if let Some((name, value)) = annotation(manifest, HOOK, ARGO_HOOK) {
        let mut phases = Vec::new();
        for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "PreSync" => phases.push(Phase::PreSync),
                "Sync" => phases.push(Phase::Sync),
                "PostSync" => phases.push(Phase::PostSync),
                "SyncFail" => phases.push(Phase::SyncFail),
                "PreDelete" => phases.push(Phase::PreDelete),
                "PostDelete" => phases.push(Phase::PostDelete),
                "Skip" => return Ok(Some(Vec::new())),
                _ => {
                    return Err(invalid(
                        manifest,
                        name,
                        value,
                        "PreSync, Sync, PostSync, SyncFail, PreDelete, PostDelete or Skip",
                    ));
                }
            }
        }
        return Ok(Some(phases));
    }
    if let Some((name, value)) = annotation(manifest, HELM_HOOK, HELM_HOOK) {
        let mut phases = Vec::new();
        for part in value.split(',').map(str::trim) {
            let phase = match part {
                "pre-install" | "pre-upgrade" => Phase::PreSync,
                "post-install" | "post-upgrade" => Phase::PostSync,
                "pre-delete" => Phase::PreDelete,
                "post-delete" => Phase::PostDelete,
                // Helm's rollback and test hooks have no counterpart.
                "pre-rollback" | "post-rollback" | "test" | "test-success" => continue,
                _ => {
                    return Err(invalid(
                        manifest,
                        name,
                        value,
                        "a Helm hook such as pre-install or post-upgrade",
                    ));
                }
            };
            if !phases.contains(&phase) {
                phases.push(phase);
            }
        }
        return Ok(Some(phases));
    }
    Ok(None)
}

/// The hook delete policies (default: BeforeHookCreation).
pub fn delete_policies(manifest: &Manifest) -> Result<Vec<DeletePolicy>, PlanError> {
    let Some((name, value)) = annotation(manifest, HOOK_DELETE_POLICY, ARGO_HOOK_DELETE_POLICY)
        .or_else(|| {
            annotation(
                manifest,
                "helm.sh/hook-delete-policy",
                "helm.sh/hook-delete-policy",
            )
        })
    else {
        return Ok(vec![DeletePolicy::BeforeHookCreation]);
    };
    value
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|policy| match policy {
            "HookSucceeded" | "hook-succeeded" => Ok(DeletePolicy::HookSucceeded),
            "HookFailed" | "hook-failed" => Ok(DeletePolicy::HookFailed),
            "BeforeHookCreation" | "before-hook-creation" => Ok(DeletePolicy::BeforeHookCreation),
            _ => Err(invalid(
                manifest,
                name,
                value,
                "HookSucceeded, HookFailed or BeforeHookCreation",
            )),
        })
        .collect()
}

/// Apply order of kinds inside a wave (others, such as custom resources, last).
const KIND_ORDER: &[&str] = &[
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
];

fn kind_rank(kind: &str) -> usize {
    KIND_ORDER
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(KIND_ORDER.len())
}

fn sort_steps(steps: &mut [Step]) {
    steps.sort_by(|a, b| {
        (
            kind_rank(a.manifest.kind()),
            a.manifest.kind(),
            a.manifest.namespace(),
            a.manifest.name(),
        )
            .cmp(&(
                kind_rank(b.manifest.kind()),
                b.manifest.kind(),
                b.manifest.namespace(),
                b.manifest.name(),
            ))
    });
}

/// Build the plan for a validated manifest set.
pub fn plan(manifests: Vec<Manifest>) -> Result<Plan, PlanError> {
    let mut plan = Plan::default();
    let mut grouped: BTreeMap<(Phase, i32), Vec<Step>> = BTreeMap::new();
    for manifest in manifests {
        let wave = wave_of(&manifest)?;
        match hook_phases(&manifest)? {
            Some(phases) if phases.is_empty() => plan.skipped.push(manifest),
            Some(phases) => {
                let delete_policies = delete_policies(&manifest)?;
                for phase in phases {
                    grouped.entry((phase, wave)).or_default().push(Step {
                        manifest: manifest.clone(),
                        hook: true,
                        delete_policies: delete_policies.clone(),
                    });
                }
            }
            None => {
                // Namespaces and CRDs go before every wave: later waves need them.
                let wave = if matches!(manifest.kind(), "Namespace" | "CustomResourceDefinition") {
                    i32::MIN
                } else {
                    wave
                };
                grouped.entry((Phase::Sync, wave)).or_default().push(Step {
                    manifest,
                    hook: false,
                    delete_policies: Vec::new(),
                });
            }
        }
    }
    for ((phase, number), mut steps) in grouped {
        sort_steps(&mut steps);
        plan.phases
            .entry(phase)
            .or_default()
            .push(Wave { number, steps });
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn manifest(kind: &str, name: &str, annotations: serde_json::Value) -> Manifest {
        Manifest {
            object: json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "annotations": annotations}}),
            source: format!("{name}.yaml#0"),
        }
    }

    fn order(plan: &Plan, phase: Phase) -> Vec<(i32, Vec<String>)> {
        plan.waves(phase)
            .iter()
            .map(|w| {
                (
                    w.number,
                    w.steps
                        .iter()
                        .map(|s| format!("{}/{}", s.manifest.kind(), s.manifest.name()))
                        .collect(),
                )
            })
            .collect()
    }

    #[test]
    fn namespaces_and_crds_first_then_waves_then_kind_order() {
        let plan = plan(vec![
            manifest("Deployment", "web", json!({})),
            manifest("Service", "web", json!({})),
            manifest("ConfigMap", "late", json!({SYNC_WAVE: "5"})),
            manifest("Widget", "custom", json!({})),
            manifest("Namespace", "apps", json!({SYNC_WAVE: "3"})),
            manifest("CustomResourceDefinition", "widgets.example.com", json!({})),
            manifest("Secret", "early", json!({ARGO_SYNC_WAVE: "-1"})),
        ])
        .unwrap();
        assert_eq!(
            order(&plan, Phase::Sync),
            [
                (
                    i32::MIN,
                    vec![
                        "Namespace/apps".to_owned(),
                        "CustomResourceDefinition/widgets.example.com".to_owned()
                    ]
                ),
                (-1, vec!["Secret/early".to_owned()]),
                (
                    0,
                    vec![
                        "Service/web".to_owned(),
                        "Deployment/web".to_owned(),
                        "Widget/custom".to_owned()
                    ]
                ),
                (5, vec!["ConfigMap/late".to_owned()]),
            ]
        );
        assert_eq!(plan.resources().count(), 7);
    }

    #[test]
    fn hooks_go_to_their_phases_and_ours_win_over_argo_cds() {
        let plan = plan(vec![
            manifest(
                "Job",
                "migrate",
                json!({HOOK: "PreSync", HOOK_DELETE_POLICY: "HookSucceeded"}),
            ),
            manifest(
                "Job",
                "smoke",
                json!({ARGO_HOOK: "PostSync", ARGO_HOOK_DELETE_POLICY: "HookSucceeded,HookFailed"}),
            ),
            manifest(
                "Job",
                "both",
                json!({HOOK: "SyncFail", ARGO_HOOK: "PreSync"}),
            ),
            manifest("ConfigMap", "ignored", json!({ARGO_HOOK: "Skip"})),
            manifest(
                "Job",
                "helm-pre",
                json!({HELM_HOOK: "pre-install,pre-upgrade", HELM_HOOK_WEIGHT: "-2"}),
            ),
        ])
        .unwrap();
        assert_eq!(
            order(&plan, Phase::PreSync),
            [
                (-2, vec!["Job/helm-pre".to_owned()]),
                (0, vec!["Job/migrate".to_owned()])
            ]
        );
        assert_eq!(
            order(&plan, Phase::PostSync),
            [(0, vec!["Job/smoke".to_owned()])]
        );
        assert_eq!(
            order(&plan, Phase::SyncFail),
            [(0, vec!["Job/both".to_owned()])]
        );
        assert_eq!(plan.skipped.len(), 1);
        let smoke = &plan.waves(Phase::PostSync)[0].steps[0];
        assert_eq!(
            smoke.delete_policies,
            [DeletePolicy::HookSucceeded, DeletePolicy::HookFailed]
        );
        assert_eq!(
            plan.waves(Phase::PreSync)[0].steps[0].delete_policies,
            [DeletePolicy::BeforeHookCreation]
        );
        assert_eq!(plan.resources().count(), 0);
    }

    #[test]
    fn bad_annotations_are_readable_errors() {
        for (annotations, expected) in [
            (
                json!({SYNC_WAVE: "soon"}),
                "pushsync.dev/sync-wave=\"soon\" is not valid: an integer",
            ),
            (
                json!({HOOK: "Sometimes"}),
                "pushsync.dev/hook=\"Sometimes\"",
            ),
            (
                json!({HOOK: "PreSync", HOOK_DELETE_POLICY: "Never"}),
                "hook-delete-policy=\"Never\"",
            ),
        ] {
            let error = plan(vec![manifest("Job", "x", annotations)]).unwrap_err();
            assert!(error.to_string().contains(expected), "{error}");
            assert!(error.to_string().starts_with("x.yaml#0: "), "{error}");
        }
    }

    #[test]
    fn the_argo_cd_hook_examples_plan_as_argo_cd_runs_them() {
        let files: Vec<crate::git::SourceFile> =
            crate::render::fixture_files("argocd-example-apps/pre-post-sync", "")
                .into_iter()
                .filter(|f| f.path != "kustomization.yaml")
                .collect();
        let manifests =
            crate::render::directory::render(&files, false, Default::default()).unwrap();
        let plan = plan(manifests).unwrap();
        assert_eq!(plan.waves(Phase::PreSync).len(), 1);
        assert_eq!(plan.waves(Phase::PostSync).len(), 1);
    }
}
