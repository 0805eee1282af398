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
        Self::new(HealthStatusCode::Suspended, format!("suspended: {message}"))
    }
}

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

/// A resource's health as the status lists it: none for a kind without a
/// health notion (a ConfigMap), as Argo CD shows it.
pub fn known(health: HealthStatusCode) -> Option<HealthStatusCode> {
    (health != HealthStatusCode::Unknown).then_some(health)
}

#[cfg(test)]
mod tests;
