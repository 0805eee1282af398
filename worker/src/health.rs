//! HealthStatusCode assessment of live objects, as the built-in rules of Argo CD and
//! kstatus do it: Healthy, Progressing, Degraded, Missing or Unknown. An
//! Application's health is the worst of its resources.

use pushsync_api::HealthStatusCode;
use serde_json::Value;

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
}

/// The worst of several verdicts; `Healthy` for none.
pub fn worst<'a>(assessments: impl IntoIterator<Item = &'a Assessment>) -> Assessment {
    assessments
        .into_iter()
        .max_by_key(|a| a.health)
        .cloned()
        .unwrap_or_else(Assessment::healthy)
}

fn int(object: &Value, pointer: &str) -> Option<i64> {
    object.pointer(pointer).and_then(Value::as_i64)
}

fn condition<'v>(object: &'v Value, kind: &str) -> Option<&'v Value> {
    object
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|conditions| {
            conditions
                .iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
        })
}

fn condition_is(object: &Value, kind: &str, status: &str) -> bool {
    condition(object, kind)
        .and_then(|c| c.get("status"))
        .and_then(Value::as_str)
        == Some(status)
}

fn condition_message(object: &Value, kind: &str) -> String {
    condition(object, kind)
        .and_then(|c| c.get("message").or_else(|| c.get("reason")))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// Assess one live object (`None`: it does not exist).
pub fn assess(live: Option<&Value>) -> Assessment {
    let Some(object) = live else {
        return Assessment::new(HealthStatusCode::Missing, "the object does not exist");
    };
    if object.pointer("/metadata/deletionTimestamp").is_some() {
        return Assessment::new(HealthStatusCode::Progressing, "being deleted");
    }
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
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
        ("autoscaling", "HorizontalPodAutoscaler") => hpa(object),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => crd(object),
        _ => Assessment::new(HealthStatusCode::Unknown, ""),
    }
}

fn observed(object: &Value) -> bool {
    let generation = int(object, "/metadata/generation").unwrap_or(0);
    int(object, "/status/observedGeneration").is_some_and(|o| o >= generation)
}

fn deployment(object: &Value) -> Assessment {
    if object.pointer("/spec/paused").and_then(Value::as_bool) == Some(true) {
        return Assessment::new(HealthStatusCode::Progressing, "the deployment is paused");
    }
    if !observed(object) {
        return Assessment::new(
            HealthStatusCode::Progressing,
            "waiting for the rollout to be observed",
        );
    }
    if condition(object, "Progressing")
        .and_then(|c| c.get("reason"))
        .and_then(Value::as_str)
        == Some("ProgressDeadlineExceeded")
    {
        return Assessment::new(
            HealthStatusCode::Degraded,
            format!(
                "progress deadline exceeded: {}",
                condition_message(object, "Progressing")
            ),
        );
    }
    let want = int(object, "/spec/replicas").unwrap_or(1);
    let updated = int(object, "/status/updatedReplicas").unwrap_or(0);
    let total = int(object, "/status/replicas").unwrap_or(0);
    let available = int(object, "/status/availableReplicas").unwrap_or(0);
    if updated < want {
        return Assessment::new(
            HealthStatusCode::Progressing,
            format!("{updated} of {want} replicas updated"),
        );
    }
    if total > updated {
        return Assessment::new(
            HealthStatusCode::Progressing,
            format!("{} old replicas pending termination", total - updated),
        );
    }
    if available < updated {
        return Assessment::new(
            HealthStatusCode::Progressing,
            format!("{available} of {updated} updated replicas available"),
        );
    }
    Assessment::healthy()
}

fn stateful_set(object: &Value) -> Assessment {
    if !observed(object) {
        return Assessment::new(
            HealthStatusCode::Progressing,
            "waiting for the rollout to be observed",
        );
    }
    let want = int(object, "/spec/replicas").unwrap_or(1);
    let ready = int(object, "/status/readyReplicas").unwrap_or(0);
    if ready < want {
        return Assessment::new(
            HealthStatusCode::Progressing,
            format!("{ready} of {want} replicas ready"),
        );
    }
    let rolling = object
        .pointer("/spec/updateStrategy/type")
        .and_then(Value::as_str)
        .unwrap_or("RollingUpdate")
        == "RollingUpdate";
    let (current, update) = (
        object.pointer("/status/currentRevision"),
        object.pointer("/status/updateRevision"),
    );
    if rolling && update.is_some() && current != update {
        return Assessment::new(HealthStatusCode::Progressing, "rolling update in progress");
    }
    Assessment::healthy()
}

fn daemon_set(object: &Value) -> Assessment {
    if !observed(object) {
        return Assessment::new(
            HealthStatusCode::Progressing,
            "waiting for the rollout to be observed",
        );
    }
    let desired = int(object, "/status/desiredNumberScheduled").unwrap_or(0);
    let updated = int(object, "/status/updatedNumberScheduled").unwrap_or(0);
    let available = int(object, "/status/numberAvailable").unwrap_or(0);
    if updated < desired {
        return Assessment::new(
            HealthStatusCode::Progressing,
            format!("{updated} of {desired} pods updated"),
        );
    }
    if available < desired {
        return Assessment::new(
            HealthStatusCode::Progressing,
            format!("{available} of {desired} pods available"),
        );
    }
    Assessment::healthy()
}

fn replica_set(object: &Value) -> Assessment {
    if !observed(object) {
        return Assessment::new(
            HealthStatusCode::Progressing,
            "waiting for the replica set to be observed",
        );
    }
    if condition_is(object, "ReplicaFailure", "True") {
        return Assessment::new(
            HealthStatusCode::Degraded,
            condition_message(object, "ReplicaFailure"),
        );
    }
    let want = int(object, "/spec/replicas").unwrap_or(1);
    let available = int(object, "/status/availableReplicas").unwrap_or(0);
    if available < want {
        return Assessment::new(
            HealthStatusCode::Progressing,
            format!("{available} of {want} replicas available"),
        );
    }
    Assessment::healthy()
}

fn job(object: &Value) -> Assessment {
    if condition_is(object, "Failed", "True") {
        return Assessment::new(
            HealthStatusCode::Degraded,
            format!("job failed: {}", condition_message(object, "Failed")),
        );
    }
    if condition_is(object, "Complete", "True") {
        return Assessment::healthy();
    }
    if object.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true) {
        return Assessment::new(HealthStatusCode::Progressing, "the job is suspended");
    }
    Assessment::new(HealthStatusCode::Progressing, "the job is running")
}

fn pod(object: &Value) -> Assessment {
    match object.pointer("/status/phase").and_then(Value::as_str) {
        Some("Succeeded") => Assessment::healthy(),
        Some("Failed") => Assessment::new(
            HealthStatusCode::Degraded,
            object
                .pointer("/status/message")
                .and_then(Value::as_str)
                .unwrap_or("the pod failed")
                .to_owned(),
        ),
        Some("Running") => {
            let waiting = object
                .pointer("/status/containerStatuses")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find_map(|c| c.pointer("/state/waiting/reason").and_then(Value::as_str));
            match waiting {
                Some(
                    reason @ ("CrashLoopBackOff"
                    | "ImagePullBackOff"
                    | "ErrImagePull"
                    | "CreateContainerConfigError"),
                ) => Assessment::new(HealthStatusCode::Degraded, reason),
                _ if condition_is(object, "Ready", "True") => Assessment::healthy(),
                _ => Assessment::new(HealthStatusCode::Progressing, "containers are not ready"),
            }
        }
        _ => Assessment::new(HealthStatusCode::Progressing, "the pod is pending"),
    }
}

fn pvc(object: &Value) -> Assessment {
    match object.pointer("/status/phase").and_then(Value::as_str) {
        Some("Bound") => Assessment::healthy(),
        Some("Lost") => Assessment::new(HealthStatusCode::Degraded, "the claim lost its volume"),
        _ => Assessment::new(
            HealthStatusCode::Progressing,
            "waiting for the claim to be bound",
        ),
    }
}

fn service(object: &Value) -> Assessment {
    if object.pointer("/spec/type").and_then(Value::as_str) != Some("LoadBalancer") {
        return Assessment::healthy();
    }
    let ingress = object
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array);
    if ingress.is_some_and(|i| !i.is_empty()) {
        Assessment::healthy()
    } else {
        Assessment::new(
            HealthStatusCode::Progressing,
            "waiting for a load balancer address",
        )
    }
}

fn ingress(object: &Value) -> Assessment {
    let ingress = object
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array);
    if ingress.is_some_and(|i| !i.is_empty()) {
        Assessment::healthy()
    } else {
        Assessment::new(
            HealthStatusCode::Progressing,
            "waiting for an ingress address",
        )
    }
}

fn hpa(object: &Value) -> Assessment {
    for failing in ["AbleToScale", "ScalingActive"] {
        if condition_is(object, failing, "False") {
            let reason = condition(object, failing)
                .and_then(|c| c.get("reason"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            // Missing metrics right after creation are normal, not a failure.
            if reason.starts_with("FailedGet")
                || reason == "FailedUpdateScale"
                || reason == "InvalidSelector"
            {
                return Assessment::new(
                    HealthStatusCode::Degraded,
                    condition_message(object, failing),
                );
            }
        }
    }
    // No failing condition (or none reported yet, right after creation): an
    // autoscaler never holds a rollout back, as in Argo CD.
    Assessment::healthy()
}

fn crd(object: &Value) -> Assessment {
    if condition_is(object, "NamesAccepted", "False") {
        return Assessment::new(
            HealthStatusCode::Degraded,
            condition_message(object, "NamesAccepted"),
        );
    }
    if object.pointer("/status/conditions").is_none() || condition_is(object, "Established", "True")
    {
        // The sandbox (and very old servers) do not write conditions.
        return Assessment::healthy();
    }
    Assessment::new(
        HealthStatusCode::Progressing,
        "waiting for the CRD to be established",
    )
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
