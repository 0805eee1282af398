//! Health assessment of live objects, as Argo CD's built-in rules
//! (gitops-engine's `pkg/health`, held to its own test cases in
//! `health/cases.rs`) and kstatus do it: Healthy, Progressing, Degraded or
//! Missing, and Unknown for "no opinion" (a kind without a health notion).
//! An Application's health is the worst of its resources' that have one.

use pushsync_api::HealthStatusCode;
use serde_json::Value;

#[cfg(test)]
mod cases;

/// A health verdict with the reason a human needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    /// The verdict.
    pub health: HealthStatusCode,
    /// Why (empty when healthy).
    pub message: String,
}

impl Assessment {
    fn new(health: HealthStatusCode, message: impl Into<String>) -> Self {
        Self {
            health,
            message: message.into(),
        }
    }

    fn healthy() -> Self {
        Self::new(HealthStatusCode::Healthy, "")
    }

    fn progressing(message: impl Into<String>) -> Self {
        Self::new(HealthStatusCode::Progressing, message)
    }

    fn degraded(message: impl Into<String>) -> Self {
        Self::new(HealthStatusCode::Degraded, message)
    }

    /// No opinion: a kind without a health notion (a ConfigMap), or a state
    /// that says nothing either way.
    fn no_opinion(message: impl Into<String>) -> Self {
        Self::new(HealthStatusCode::Unknown, message)
    }

    /// Argo CD's `Suspended` (a paused Deployment, a suspended Job).
    fn suspended(message: &str) -> Self {
        Self::new(SUSPENDED, format!("suspended: {message}"))
    }
}

/// What Argo CD calls `Suspended` reads as: the status words have no
/// `Suspended` yet (`pushsync_api::HealthStatusCode`), so it is `Progressing`
/// with a message starting `suspended:`. The one place to change once they do.
const SUSPENDED: HealthStatusCode = HealthStatusCode::Progressing;

/// The worst of several verdicts, leaving out those without an opinion
/// (`Unknown`: kinds without a health notion), as Argo CD leaves out
/// resources without health; `Healthy` when none is left.
pub fn worst<'a>(assessments: impl IntoIterator<Item = &'a Assessment>) -> Assessment {
    assessments
        .into_iter()
        .filter(|a| a.health != HealthStatusCode::Unknown)
        .max_by_key(|a| a.health)
        .cloned()
        .unwrap_or_else(Assessment::healthy)
}

fn int(object: &Value, pointer: &str) -> Option<i64> {
    object.pointer(pointer).and_then(Value::as_i64)
}

fn text<'v>(object: &'v Value, pointer: &str) -> Option<&'v str> {
    object.pointer(pointer).and_then(Value::as_str)
}

fn items<'v>(object: &'v Value, pointer: &str) -> impl Iterator<Item = &'v Value> {
    object
        .pointer(pointer)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn condition<'v>(object: &'v Value, kind: &str) -> Option<&'v Value> {
    items(object, "/status/conditions").find(|c| text(c, "/type") == Some(kind))
}

fn condition_is(object: &Value, kind: &str, status: &str) -> bool {
    condition(object, kind).and_then(|c| text(c, "/status")) == Some(status)
}

fn condition_message(object: &Value, kind: &str) -> String {
    condition(object, kind)
        .map(reason_and_message)
        .unwrap_or_default()
}

/// `reason: message`, or whichever of the two a condition has.
fn reason_and_message(condition: &Value) -> String {
    match (
        text(condition, "/reason").filter(|r| !r.is_empty()),
        text(condition, "/message").filter(|m| !m.is_empty()),
    ) {
        (Some(reason), Some(message)) => format!("{reason}: {message}"),
        (Some(one), None) | (None, Some(one)) => one.to_owned(),
        (None, None) => String::new(),
    }
}

/// Assess one live object (`None`: it does not exist).
pub fn assess(live: Option<&Value>) -> Assessment {
    let Some(object) = live else {
        return Assessment::new(HealthStatusCode::Missing, "the object does not exist");
    };
    if object.pointer("/metadata/deletionTimestamp").is_some() {
        return Assessment::progressing("being deleted");
    }
    let api_version = text(object, "/apiVersion").unwrap_or_default();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let kind = text(object, "/kind").unwrap_or_default();
    match (group, kind) {
        ("apps", "Deployment") => deployment(object),
        ("apps", "StatefulSet") => stateful_set(object),
        ("apps", "DaemonSet") => daemon_set(object),
        ("apps", "ReplicaSet") => replica_set(object),
        ("batch", "Job") => job(object),
        ("", "Pod") => pod(object),
        ("", "PersistentVolumeClaim") => pvc(object),
        ("", "Service") => service(object),
        ("networking.k8s.io" | "extensions", "Ingress") => ingress(object),
        ("autoscaling", "HorizontalPodAutoscaler") => hpa(object, version),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => crd(object),
        ("apiregistration.k8s.io", "APIService") => api_service(object),
        ("argoproj.io", "Workflow") => workflow(object),
        ("pushsync.dev", "Application") => application(object),
        _ => generic(object),
    }
}

fn observed(object: &Value) -> bool {
    let generation = int(object, "/metadata/generation").unwrap_or(0);
    int(object, "/status/observedGeneration").is_some_and(|o| o >= generation)
}

fn deployment(object: &Value) -> Assessment {
    if object.pointer("/spec/paused").and_then(Value::as_bool) == Some(true) {
        return Assessment::suspended("the deployment is paused");
    }
    if !observed(object) {
        return Assessment::progressing("waiting for the rollout to be observed");
    }
    if condition(object, "Progressing").and_then(|c| text(c, "/reason"))
        == Some("ProgressDeadlineExceeded")
    {
        return Assessment::degraded(format!(
            "progress deadline exceeded: {}",
            condition_message(object, "Progressing")
        ));
    }
    let want = int(object, "/spec/replicas").unwrap_or(1);
    let updated = int(object, "/status/updatedReplicas").unwrap_or(0);
    let total = int(object, "/status/replicas").unwrap_or(0);
    let available = int(object, "/status/availableReplicas").unwrap_or(0);
    if updated < want {
        return Assessment::progressing(format!("{updated} of {want} replicas updated"));
    }
    if total > updated {
        return Assessment::progressing(format!(
            "{} old replicas pending termination",
            total - updated
        ));
    }
    if available < updated {
        return Assessment::progressing(format!(
            "{available} of {updated} updated replicas available"
        ));
    }
    Assessment::healthy()
}

/// kubectl's `rollout status` for StatefulSets, as Argo CD has it.
fn stateful_set(object: &Value) -> Assessment {
    if !observed(object) {
        return Assessment::progressing("waiting for the rollout to be observed");
    }
    let want = int(object, "/spec/replicas").unwrap_or(1);
    let ready = int(object, "/status/readyReplicas").unwrap_or(0);
    if ready < want {
        return Assessment::progressing(format!("{ready} of {want} replicas ready"));
    }
    match text(object, "/spec/updateStrategy/type").unwrap_or("RollingUpdate") {
        // Pods are replaced only when someone deletes them.
        "OnDelete" => return Assessment::healthy(),
        "RollingUpdate" => {
            if let Some(partition) = int(object, "/spec/updateStrategy/rollingUpdate/partition") {
                // A partitioned rollout is done when the pods at or above the
                // partition are updated; those below stay at the old revision.
                let updated = int(object, "/status/updatedReplicas").unwrap_or(0);
                if updated < want - partition {
                    return Assessment::progressing(format!(
                        "{updated} of {} pods updated (partition {partition})",
                        want - partition
                    ));
                }
                return Assessment::healthy();
            }
        }
        _ => {}
    }
    let (current, update) = (
        object.pointer("/status/currentRevision"),
        object.pointer("/status/updateRevision"),
    );
    if update.is_some() && current != update {
        return Assessment::progressing("rolling update in progress");
    }
    Assessment::healthy()
}

fn daemon_set(object: &Value) -> Assessment {
    if !observed(object) {
        return Assessment::progressing("waiting for the rollout to be observed");
    }
    let desired = int(object, "/status/desiredNumberScheduled").unwrap_or(0);
    let updated = int(object, "/status/updatedNumberScheduled").unwrap_or(0);
    let available = int(object, "/status/numberAvailable").unwrap_or(0);
    // With `OnDelete` pods are replaced only when someone deletes them, so
    // old ones are no rollout to wait for (Argo CD says Healthy at once;
    // pushsync still waits for the pods to be available, as for RollingUpdate).
    let on_delete = text(object, "/spec/updateStrategy/type") == Some("OnDelete");
    if !on_delete && updated < desired {
        return Assessment::progressing(format!("{updated} of {desired} pods updated"));
    }
    if available < desired {
        return Assessment::progressing(format!("{available} of {desired} pods available"));
    }
    Assessment::healthy()
}

fn replica_set(object: &Value) -> Assessment {
    if !observed(object) {
        return Assessment::progressing("waiting for the replica set to be observed");
    }
    if condition_is(object, "ReplicaFailure", "True") {
        return Assessment::degraded(condition_message(object, "ReplicaFailure"));
    }
    let want = int(object, "/spec/replicas").unwrap_or(1);
    let available = int(object, "/status/availableReplicas").unwrap_or(0);
    if available < want {
        return Assessment::progressing(format!("{available} of {want} replicas available"));
    }
    Assessment::healthy()
}

fn job(object: &Value) -> Assessment {
    if condition_is(object, "Failed", "True") {
        return Assessment::degraded(format!(
            "job failed: {}",
            condition_message(object, "Failed")
        ));
    }
    if condition_is(object, "Complete", "True") {
        return Assessment::healthy();
    }
    if condition_is(object, "Suspended", "True")
        || object.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true)
    {
        return Assessment::suspended("the job is suspended");
    }
    Assessment::progressing("the job is running")
}

/// A container waiting for a reason that will not go away by itself
/// (Argo CD's test: `Err…`, `…Error`, `…BackOff`): `name: reason: message`.
fn stuck(container: &Value) -> Option<String> {
    let reason = text(container, "/state/waiting/reason")?;
    if !(reason.starts_with("Err") || reason.ends_with("Error") || reason.ends_with("BackOff")) {
        return None;
    }
    let name = text(container, "/name").unwrap_or("a container");
    Some(match text(container, "/state/waiting/message") {
        Some(message) if !message.is_empty() => format!("{name}: {reason}: {message}"),
        _ => format!("{name}: {reason}"),
    })
}

/// Why a terminated container failed, if it did.
fn failure(container: &Value) -> Option<String> {
    let terminated = container.pointer("/state/terminated")?;
    let name = text(container, "/name").unwrap_or("a container");
    if let Some(message) = text(terminated, "/message").filter(|m| !m.is_empty()) {
        return Some(format!("{name}: {message}"));
    }
    let reason = text(terminated, "/reason").unwrap_or_default();
    if reason == "OOMKilled" {
        return Some(format!("{name}: OOMKilled"));
    }
    match int(terminated, "/exitCode") {
        Some(code) if code != 0 => Some(format!("{name} exited with code {code}")),
        _ => None,
    }
}

fn pod(object: &Value) -> Assessment {
    let containers = || {
        items(object, "/status/initContainerStatuses")
            .chain(items(object, "/status/containerStatuses"))
    };
    let message = text(object, "/status/message").filter(|m| !m.is_empty());
    let always = text(object, "/spec/restartPolicy").unwrap_or("Always") == "Always";
    // Only pods that restart for ever: a hook's pod (Never, OnFailure) may
    // still recover, and failing it early would run it after the sync.
    if always {
        let stuck: Vec<String> = containers().filter_map(stuck).collect();
        if !stuck.is_empty() {
            return Assessment::degraded(stuck.join(", "));
        }
    }
    match text(object, "/status/phase") {
        Some("Succeeded") => Assessment::healthy(),
        Some("Failed") => Assessment::degraded(
            message
                .map(str::to_owned)
                .or_else(|| containers().find_map(failure))
                .unwrap_or_else(|| "the pod failed".to_owned()),
        ),
        Some("Running") if always => {
            if condition_is(object, "Ready", "True") {
                return Assessment::healthy();
            }
            // Not ready, and a container exited (now or before a restart).
            let exited = items(object, "/status/containerStatuses").find_map(|c| {
                failure(c).or_else(|| {
                    c.pointer("/lastState/terminated").map(|t| {
                        format!(
                            "{} restarted after {}",
                            text(c, "/name").unwrap_or("a container"),
                            text(t, "/reason").unwrap_or("exiting")
                        )
                    })
                })
            });
            match exited {
                Some(exited) => Assessment::degraded(message.map_or(exited, str::to_owned)),
                None => Assessment::progressing(message.unwrap_or("containers are not ready")),
            }
        }
        // A pod meant to finish (a hook's) is under way until it has.
        Some("Running") => Assessment::progressing(message.unwrap_or("running until it completes")),
        // Argo CD says Unknown: the node stopped reporting. Not fine, so
        // not "no opinion" either: wait, as for a pending pod.
        Some("Unknown") => {
            Assessment::progressing(message.unwrap_or("the pod's node does not report its state"))
        }
        _ => Assessment::progressing(message.unwrap_or("the pod is pending")),
    }
}

fn pvc(object: &Value) -> Assessment {
    match text(object, "/status/phase") {
        Some("Bound") => Assessment::healthy(),
        Some("Lost") => Assessment::degraded("the claim lost its volume"),
        _ => Assessment::progressing("waiting for the claim to be bound"),
    }
}

fn service(object: &Value) -> Assessment {
    if text(object, "/spec/type") != Some("LoadBalancer") {
        return Assessment::healthy();
    }
    if items(object, "/status/loadBalancer/ingress")
        .next()
        .is_some()
    {
        Assessment::healthy()
    } else {
        Assessment::progressing("waiting for a load balancer address")
    }
}

fn ingress(object: &Value) -> Assessment {
    if items(object, "/status/loadBalancer/ingress")
        .next()
        .is_some()
    {
        Assessment::healthy()
    } else {
        Assessment::progressing("waiting for an ingress address")
    }
}

/// An autoscaler that has reported no conditions yet (just created). Argo
/// CD says Progressing until the HPA controller reports (within its 15 s
/// sync period); pushsync says Healthy for now, because the Kubernetes API
/// sandbox its tests run against has no HPA controller. Set it to
/// `Progressing` once the sandbox writes HPA conditions (and drop the
/// difference `health/cases.rs` lists).
const HPA_WITHOUT_CONDITIONS: HealthStatusCode = HealthStatusCode::Healthy;

/// Argo CD's rule: the first condition that says Degraded (a failure to read
/// the target's scale or its metrics, a bad selector) or Healthy (able to
/// scale, or limited by its bounds) decides; none: waiting to autoscale.
/// `autoscaling/v1` keeps its conditions in an annotation.
fn hpa(object: &Value, version: &str) -> Assessment {
    const WAITING: &str = "waiting to autoscale";
    let from_annotation;
    let conditions: &[Value] = if version == "v1" {
        let Some(annotation) = text(
            object,
            "/metadata/annotations/autoscaling.alpha.kubernetes.io~1conditions",
        ) else {
            return Assessment::new(HPA_WITHOUT_CONDITIONS, "no conditions reported yet");
        };
        match serde_json::from_str::<Vec<Value>>(annotation) {
            Ok(parsed) => {
                from_annotation = parsed;
                &from_annotation
            }
            Err(error) => {
                return Assessment::no_opinion(format!(
                    "unreadable conditions annotation: {error}"
                ));
            }
        }
    } else {
        object
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    };
    if conditions.is_empty() {
        return Assessment::new(HPA_WITHOUT_CONDITIONS, "no conditions reported yet");
    }
    for condition in conditions {
        let kind = text(condition, "/type").unwrap_or_default();
        let reason = text(condition, "/reason").unwrap_or_default();
        let message = text(condition, "/message").unwrap_or_default();
        if matches!(
            (kind, reason),
            ("AbleToScale", "FailedGetScale" | "FailedUpdateScale")
                | (
                    "ScalingActive",
                    "FailedGetResourceMetric" | "InvalidSelector"
                )
        ) {
            return Assessment::degraded(message);
        }
        if matches!(kind, "AbleToScale" | "ScalingLimited")
            && text(condition, "/status") == Some("True")
        {
            return Assessment::healthy();
        }
    }
    Assessment::progressing(WAITING)
}

/// Not Argo CD's (it has no rule for CRDs): a CRD is awaited until its names
/// are accepted and it is established, so that a later wave can create its
/// custom resources.
fn crd(object: &Value) -> Assessment {
    if condition_is(object, "NamesAccepted", "False") {
        return Assessment::degraded(condition_message(object, "NamesAccepted"));
    }
    if object.pointer("/status/conditions").is_none() || condition_is(object, "Established", "True")
    {
        // The sandbox (and very old servers) do not write conditions.
        return Assessment::healthy();
    }
    Assessment::progressing("waiting for the CRD to be established")
}

/// Available or not: an aggregated API whose backend is down is not there yet.
fn api_service(object: &Value) -> Assessment {
    match condition(object, "Available") {
        Some(available) if text(available, "/status") == Some("True") => Assessment::healthy(),
        Some(available) => Assessment::progressing(reason_and_message(available)),
        None => Assessment::progressing("waiting to be processed"),
    }
}

/// Argo Workflows' `Workflow`, a built-in of Argo CD's.
fn workflow(object: &Value) -> Assessment {
    let message = text(object, "/status/message").unwrap_or_default();
    match text(object, "/status/phase").unwrap_or_default() {
        "" | "Pending" | "Running" => Assessment::progressing(message),
        "Succeeded" => Assessment::healthy(),
        "Failed" | "Error" => Assessment::degraded(message),
        _ => Assessment::no_opinion(message),
    }
}

/// A pushsync Application managed by another (app of apps): its own health,
/// once it has synced the spec it was given. As Argo CD's documented health
/// check for Applications, except that a child whose resources are Missing
/// is waited for (Progressing) rather than left out; a child that could not
/// tell (`Unknown`) is left out, as in Argo CD.
fn application(object: &Value) -> Assessment {
    let Some(health) = object.pointer("/status/health") else {
        return Assessment::progressing("waiting for the Application's first sync");
    };
    if let Some(generation) = int(object, "/metadata/generation") {
        let observed = int(object, "/status/observedGeneration").unwrap_or(0);
        if observed < generation {
            return Assessment::progressing(format!(
                "waiting for the Application to sync generation {generation}"
            ));
        }
    }
    let message = text(health, "/message").unwrap_or_default();
    match text(health, "/status").unwrap_or_default() {
        "Healthy" => Assessment::healthy(),
        "Progressing" => Assessment::progressing(message),
        "Degraded" => Assessment::degraded(message),
        "Suspended" => Assessment::suspended(message),
        "Missing" => Assessment::progressing(if message.is_empty() {
            "its resources are missing".to_owned()
        } else {
            format!("its resources are missing: {message}")
        }),
        _ => Assessment::no_opinion(message),
    }
}

/// Any other kind, kstatus-style: a status whose `observedGeneration` lags
/// the spec is Progressing; then `Stalled` true is Degraded, `Reconciling`
/// true is Progressing, and a `Ready` condition (of the current generation,
/// when it says which) decides: true is Healthy, anything else Progressing.
/// Without any of these the kind has no health notion (Unknown).
fn generic(object: &Value) -> Assessment {
    let generation = int(object, "/metadata/generation");
    let behind = |observed: Option<i64>| match (generation, observed) {
        (Some(generation), Some(observed)) => observed < generation,
        _ => false,
    };
    if behind(int(object, "/status/observedGeneration")) {
        return Assessment::progressing(format!(
            "waiting for generation {} to be observed",
            generation.unwrap_or_default()
        ));
    }
    if condition_is(object, "Stalled", "True") {
        return Assessment::degraded(condition_message(object, "Stalled"));
    }
    if condition_is(object, "Reconciling", "True") {
        return Assessment::progressing(condition_message(object, "Reconciling"));
    }
    match condition(object, "Ready") {
        Some(ready) if behind(int(ready, "/observedGeneration")) => {
            Assessment::progressing(format!(
                "waiting for generation {} to be ready",
                generation.unwrap_or_default()
            ))
        }
        Some(ready) if text(ready, "/status") == Some("True") => Assessment::healthy(),
        Some(ready) => Assessment::progressing(reason_and_message(ready)),
        None if condition(object, "Stalled").is_some()
            || condition(object, "Reconciling").is_some() =>
        {
            Assessment::healthy()
        }
        None => Assessment::no_opinion(""),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[track_caller]
    fn check(object: Value, expected: HealthStatusCode) {
        let got = assess(Some(&object));
        assert_eq!(got.health, expected, "{object}: {}", got.message);
    }

    fn deploy(status: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"generation": 2}, "spec": {"replicas": 2}, "status": status})
    }

    #[test]
    fn deployments() {
        check(
            deploy(
                json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}),
            ),
            HealthStatusCode::Healthy,
        );
        check(
            deploy(
                json!({"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}),
            ),
            HealthStatusCode::Progressing,
        );
        check(
            deploy(
                json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 2, "availableReplicas": 2}),
            ),
            HealthStatusCode::Progressing,
        );
        check(
            deploy(
                json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 1}),
            ),
            HealthStatusCode::Progressing,
        );
        check(
            deploy(
                json!({"observedGeneration": 2, "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]}),
            ),
            HealthStatusCode::Degraded,
        );
    }

    #[test]
    fn jobs_pods_claims_services_and_the_rest() {
        let job = |conditions: Value| json!({"apiVersion": "batch/v1", "kind": "Job", "status": {"conditions": conditions}});
        check(
            job(json!([{"type": "Complete", "status": "True"}])),
            HealthStatusCode::Healthy,
        );
        check(
            job(json!([{"type": "Failed", "status": "True", "message": "BackoffLimitExceeded"}])),
            HealthStatusCode::Degraded,
        );
        check(job(json!([])), HealthStatusCode::Progressing);
        let pod = |status: Value| json!({"apiVersion": "v1", "kind": "Pod", "status": status});
        check(
            pod(json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]})),
            HealthStatusCode::Healthy,
        );
        check(
            pod(
                json!({"phase": "Running", "containerStatuses": [{"state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}),
            ),
            HealthStatusCode::Degraded,
        );
        check(
            pod(json!({"phase": "Pending"})),
            HealthStatusCode::Progressing,
        );
        check(
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "status": {"phase": "Bound"}}),
            HealthStatusCode::Healthy,
        );
        check(
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "status": {"phase": "Pending"}}),
            HealthStatusCode::Progressing,
        );
        check(
            json!({"apiVersion": "v1", "kind": "Service", "spec": {"type": "ClusterIP"}}),
            HealthStatusCode::Healthy,
        );
        check(
            json!({"apiVersion": "v1", "kind": "Service", "spec": {"type": "LoadBalancer"}}),
            HealthStatusCode::Progressing,
        );
        check(
            json!({"apiVersion": "v1", "kind": "Service", "spec": {"type": "LoadBalancer"}, "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}}),
            HealthStatusCode::Healthy,
        );
        check(
            json!({"apiVersion": "v1", "kind": "ConfigMap"}),
            HealthStatusCode::Unknown,
        );
        check(
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}}),
            HealthStatusCode::Progressing,
        );
        assert_eq!(assess(None).health, HealthStatusCode::Missing);
    }

    #[test]
    fn statefulsets_daemonsets_hpas() {
        let sts = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"generation": 1}, "spec": {"replicas": 1},
            "status": {"observedGeneration": 1, "readyReplicas": 1, "currentRevision": "r1", "updateRevision": "r1"}});
        check(sts.clone(), HealthStatusCode::Healthy);
        let mut rolling = sts;
        rolling["status"]["updateRevision"] = json!("r2");
        check(rolling, HealthStatusCode::Progressing);
        check(
            json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "status": {"observedGeneration": 0, "desiredNumberScheduled": 2, "updatedNumberScheduled": 2, "numberAvailable": 1}}),
            HealthStatusCode::Progressing,
        );
        check(
            json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "status": {"conditions": [{"type": "ScalingActive", "status": "False", "reason": "FailedGetResourceMetric"}]}}),
            HealthStatusCode::Degraded,
        );
    }

    #[test]
    fn pods_stuck_or_crashed_are_degraded_in_any_phase() {
        let pod = |restart: &str, status: Value| json!({"apiVersion": "v1", "kind": "Pod", "spec": {"restartPolicy": restart}, "status": status});
        let waiting = |reason: &str| json!([{"name": "main", "state": {"waiting": {"reason": reason, "message": "m"}}}]);
        for reason in [
            "ErrImagePull",
            "ImagePullBackOff",
            "CreateContainerConfigError",
        ] {
            check(
                pod(
                    "Always",
                    json!({"phase": "Pending", "containerStatuses": waiting(reason)}),
                ),
                HealthStatusCode::Degraded,
            );
        }
        // A hook's pod may recover (Argo CD's reason): it is under way.
        check(
            pod(
                "Never",
                json!({"phase": "Pending", "containerStatuses": waiting("ErrImagePull")}),
            ),
            HealthStatusCode::Progressing,
        );
        check(
            pod(
                "Always",
                json!({"phase": "Pending", "containerStatuses": waiting("ContainerCreating")}),
            ),
            HealthStatusCode::Progressing,
        );
        // Deliberately beyond Argo CD (which looks at app containers only):
        // an init container in a crash loop holds the pod Pending for ever.
        check(
            pod(
                "Always",
                json!({"phase": "Pending", "initContainerStatuses": waiting("CrashLoopBackOff")}),
            ),
            HealthStatusCode::Degraded,
        );
        // Running, not ready, and a container exited with an error.
        check(
            pod(
                "Always",
                json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}],
                "containerStatuses": [{"name": "main", "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}),
            ),
            HealthStatusCode::Degraded,
        );
        // A pod meant to finish is under way while it runs, ready or not.
        check(
            pod(
                "Never",
                json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}),
            ),
            HealthStatusCode::Progressing,
        );
        // Deliberately not Argo CD's Unknown (which would leave it out of the
        // Application's health and let a wave go on): wait for it.
        check(
            pod("Always", json!({"phase": "Unknown"})),
            HealthStatusCode::Progressing,
        );
        check(
            pod(
                "Never",
                json!({"phase": "Failed", "containerStatuses": [{"name": "main", "state": {"terminated": {"exitCode": 3}}}]}),
            ),
            HealthStatusCode::Degraded,
        );
    }

    #[test]
    fn daemonsets_on_delete_wait_for_available_pods_only() {
        let ds = |available: i64| {
            json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"generation": 2},
            "spec": {"updateStrategy": {"type": "OnDelete"}},
            "status": {"observedGeneration": 2, "desiredNumberScheduled": 2, "updatedNumberScheduled": 0, "numberAvailable": available}})
        };
        check(ds(2), HealthStatusCode::Healthy);
        // Deliberately stricter than Argo CD (Healthy at once with OnDelete).
        check(ds(1), HealthStatusCode::Progressing);
    }

    #[test]
    fn partitioned_statefulsets_are_done_at_their_partition() {
        let sts = |updated: i64| {
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"generation": 3},
            "spec": {"replicas": 3, "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}},
            "status": {"observedGeneration": 3, "readyReplicas": 3, "updatedReplicas": updated, "currentRevision": "r1", "updateRevision": "r2"}})
        };
        check(sts(0), HealthStatusCode::Progressing);
        check(sts(1), HealthStatusCode::Healthy);
    }

    #[test]
    fn paused_and_suspended_read_as_suspended() {
        let mut paused = deploy(
            json!({"observedGeneration": 1, "replicas": 2, "updatedReplicas": 1, "availableReplicas": 1}),
        );
        paused["spec"]["paused"] = json!(true);
        let got = assess(Some(&paused));
        assert_eq!(got.health, SUSPENDED);
        assert!(got.message.starts_with("suspended:"), "{}", got.message);
        let job = json!({"apiVersion": "batch/v1", "kind": "Job", "spec": {"suspend": true}, "status": {}});
        assert_eq!(assess(Some(&job)).health, SUSPENDED);
    }

    #[test]
    fn api_services_autoscalers_and_workflows() {
        let api = |conditions: Value| json!({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "status": {"conditions": conditions}});
        check(
            api(json!([{"type": "Available", "status": "True"}])),
            HealthStatusCode::Healthy,
        );
        check(
            api(json!([{"type": "Available", "status": "False", "reason": "MissingEndpoints"}])),
            HealthStatusCode::Progressing,
        );
        check(api(json!([])), HealthStatusCode::Progressing);
        let v1 = |conditions: &str| {
            json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"annotations": {"autoscaling.alpha.kubernetes.io/conditions": conditions}}})
        };
        check(
            v1(r#"[{"type":"AbleToScale","status":"True","reason":"SucceededGetScale"}]"#),
            HealthStatusCode::Healthy,
        );
        check(
            v1(r#"[{"type":"AbleToScale","status":"False","reason":"FailedGetScale"}]"#),
            HealthStatusCode::Degraded,
        );
        check(
            v1(r#"[{"type":"ScalingActive","status":"True","reason":"ValidMetricFound"}]"#),
            HealthStatusCode::Progressing,
        );
        // Deliberately not Argo CD's Progressing for now (see HPA_WITHOUT_CONDITIONS).
        check(v1("[]"), HPA_WITHOUT_CONDITIONS);
        check(
            json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler"}),
            HPA_WITHOUT_CONDITIONS,
        );
        // TestGetArgoWorkflowHealth
        let workflow = |status: Value| json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "status": status});
        check(
            workflow(json!({"phase": "Running", "message": "This node is running"})),
            HealthStatusCode::Progressing,
        );
        check(
            workflow(json!({"phase": "Succeeded"})),
            HealthStatusCode::Healthy,
        );
        check(
            workflow(json!({"phase": "Error"})),
            HealthStatusCode::Degraded,
        );
        check(
            json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow"}),
            HealthStatusCode::Progressing,
        );
    }

    #[test]
    fn custom_resources_kstatus_style() {
        let cr = |status: Value| json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"generation": 2}, "status": status});
        let ready = |status: &str, observed: i64| {
            json!({"observedGeneration": 2, "conditions": [
            {"type": "Ready", "status": status, "reason": "R", "message": "m", "observedGeneration": observed}]})
        };
        check(cr(ready("True", 2)), HealthStatusCode::Healthy);
        check(cr(ready("False", 2)), HealthStatusCode::Progressing);
        check(cr(ready("Unknown", 2)), HealthStatusCode::Progressing);
        // Ready, but for the previous spec.
        check(cr(ready("True", 1)), HealthStatusCode::Progressing);
        // The controller has not seen the new spec yet.
        check(
            cr(
                json!({"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True"}]}),
            ),
            HealthStatusCode::Progressing,
        );
        check(
            cr(
                json!({"conditions": [{"type": "Stalled", "status": "True", "message": "bad spec"}]}),
            ),
            HealthStatusCode::Degraded,
        );
        check(
            cr(json!({"conditions": [{"type": "Reconciling", "status": "True"}]})),
            HealthStatusCode::Progressing,
        );
        check(
            cr(json!({"conditions": [{"type": "Reconciling", "status": "False"}]})),
            HealthStatusCode::Healthy,
        );
        // No notion of health: no opinion (conditions of other types, none at all).
        check(
            cr(
                json!({"observedGeneration": 2, "conditions": [{"type": "Synced", "status": "False"}]}),
            ),
            HealthStatusCode::Unknown,
        );
        check(
            json!({"apiVersion": "example.com/v1", "kind": "Widget"}),
            HealthStatusCode::Unknown,
        );
    }

    #[test]
    fn nested_applications_report_their_own_health() {
        let app = |generation: i64, status: Value| {
            json!({"apiVersion": "pushsync.dev/v1alpha1", "kind": "Application",
            "metadata": {"generation": generation}, "status": status})
        };
        let synced = |health: &str| json!({"observedGeneration": 2, "health": {"status": health, "message": "m"}});
        check(app(2, synced("Healthy")), HealthStatusCode::Healthy);
        check(app(2, synced("Progressing")), HealthStatusCode::Progressing);
        check(app(2, synced("Degraded")), HealthStatusCode::Degraded);
        // Not synced yet, or not the spec it was just given.
        check(app(1, json!({})), HealthStatusCode::Progressing);
        check(app(3, synced("Healthy")), HealthStatusCode::Progressing);
        // As Argo CD: a child that cannot tell is left out of its parent's
        // health. Deliberately unlike Argo CD, a child whose resources are
        // missing is waited for rather than left out.
        check(app(2, synced("Unknown")), HealthStatusCode::Unknown);
        check(app(2, synced("Missing")), HealthStatusCode::Progressing);
    }

    #[test]
    fn resources_without_health_leave_an_application_healthy() {
        let config_map = assess(Some(&json!({"apiVersion": "v1", "kind": "ConfigMap"})));
        assert_eq!(config_map.health, HealthStatusCode::Unknown);
        assert_eq!(
            worst([&config_map, &config_map]).health,
            HealthStatusCode::Healthy
        );
        let rolling = Assessment::progressing("rolling");
        assert_eq!(
            worst([&config_map, &rolling]).health,
            HealthStatusCode::Progressing
        );
    }

    #[test]
    fn an_application_is_as_healthy_as_its_worst_resource() {
        let verdicts = [
            Assessment::healthy(),
            Assessment::new(HealthStatusCode::Progressing, "rolling"),
            Assessment::new(HealthStatusCode::Unknown, ""),
        ];
        assert_eq!(worst(&verdicts).health, HealthStatusCode::Progressing);
        assert_eq!(worst(&[]).health, HealthStatusCode::Healthy);
        assert_eq!(
            worst(&[
                Assessment::new(HealthStatusCode::Missing, "gone"),
                Assessment::new(HealthStatusCode::Degraded, "x")
            ])
            .health,
            HealthStatusCode::Missing
        );
    }
}
