//! Simulated controllers: workloads become available, Jobs complete,
//! PersistentVolumeClaims are bound and LoadBalancer Services get an address
//! after a delay, so health assessment can be
//! tested. An object annotated
//! `sandbox.pushsync.dev/health: progressing` never becomes available; with
//! `degraded` it fails (Deployment progress deadline exceeded, Job failed).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::store::Store;

/// The annotation tests use to steer the simulated controllers.
pub const HEALTH_ANNOTATION: &str = "sandbox.pushsync.dev/health";

/// Run the controllers until `stop`: every `tick`, objects whose generation has
/// been pending for `delay` get the status a real controller would write.
pub async fn run(store: Arc<Store>, delay: Duration, stop: CancellationToken) {
    let mut pending: HashMap<String, Instant> = HashMap::new();
    let tick = (delay / 4).clamp(Duration::from_millis(5), Duration::from_millis(100));
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(tick) => {}
        }
        store.with_state(|access| {
            let mut seen = Vec::new();
            for (group, kind) in [
                ("apps", "Deployment"),
                ("apps", "StatefulSet"),
                ("apps", "DaemonSet"),
                ("apps", "ReplicaSet"),
                ("batch", "Job"),
                ("", "PersistentVolumeClaim"),
                ("", "Service"),
            ] {
                for (rt, object) in access.objects(group, kind) {
                    let generation = object
                        .pointer("/metadata/generation")
                        .and_then(Value::as_i64)
                        .unwrap_or(1);
                    let uid = object
                        .pointer("/metadata/uid")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    let key = format!("{uid}/{generation}");
                    seen.push(key.clone());
                    let observed = object
                        .pointer("/status/observedGeneration")
                        .and_then(Value::as_i64);
                    let done = match kind {
                        "Job" => object.pointer("/status/conditions").is_some(),
                        "PersistentVolumeClaim" => object.pointer("/status/phase").is_some(),
                        // Only load balancers get an address from a controller.
                        "Service" => {
                            object.pointer("/spec/type").and_then(Value::as_str)
                                != Some("LoadBalancer")
                                || object.pointer("/status/loadBalancer/ingress").is_some()
                        }
                        _ => observed == Some(generation),
                    };
                    if done {
                        continue;
                    }
                    let since = *pending.entry(key).or_insert_with(Instant::now);
                    if since.elapsed() < delay {
                        continue;
                    }
                    let health = object
                        .pointer("/metadata/annotations")
                        .and_then(|a| a.get(HEALTH_ANNOTATION))
                        .and_then(Value::as_str)
                        .unwrap_or("healthy");
                    let status = status_for(kind, &object, generation, health);
                    access.set_status(&rt, &object, status);
                }
            }
            pending.retain(|key, _| seen.contains(key));
        });
    }
}

fn now() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

fn condition(kind: &str, status: &str, reason: &str, message: &str) -> Value {
    let now = now();
    json!({"type": kind, "status": status, "reason": reason, "message": message, "lastTransitionTime": now, "lastUpdateTime": now})
}

fn status_for(kind: &str, object: &Value, generation: i64, health: &str) -> Value {
    let replicas = object
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let ready = if health == "healthy" { replicas } else { 0 };
    match kind {
        "Deployment" => {
            let (progressing, available) = match health {
                "degraded" => (
                    condition(
                        "Progressing",
                        "False",
                        "ProgressDeadlineExceeded",
                        "ReplicaSet has timed out progressing.",
                    ),
                    condition(
                        "Available",
                        "False",
                        "MinimumReplicasUnavailable",
                        "Deployment does not have minimum availability.",
                    ),
                ),
                "progressing" => (
                    condition(
                        "Progressing",
                        "True",
                        "ReplicaSetUpdated",
                        "ReplicaSet is progressing.",
                    ),
                    condition(
                        "Available",
                        "False",
                        "MinimumReplicasUnavailable",
                        "Deployment does not have minimum availability.",
                    ),
                ),
                _ => (
                    condition(
                        "Progressing",
                        "True",
                        "NewReplicaSetAvailable",
                        "ReplicaSet has successfully progressed.",
                    ),
                    condition(
                        "Available",
                        "True",
                        "MinimumReplicasAvailable",
                        "Deployment has minimum availability.",
                    ),
                ),
            };
            let mut status = json!({
                "observedGeneration": generation,
                "replicas": replicas,
                "updatedReplicas": replicas,
                "readyReplicas": ready,
                "availableReplicas": ready,
                "conditions": [available, progressing],
            });
            if ready < replicas {
                status["unavailableReplicas"] = json!(replicas - ready);
            }
            status
        }
        "StatefulSet" | "ReplicaSet" => json!({
            "observedGeneration": generation,
            "replicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "currentReplicas": replicas,
            "updatedReplicas": replicas,
            "currentRevision": format!("rev-{generation}"),
            "updateRevision": format!("rev-{generation}"),
        }),
        "DaemonSet" => json!({
            "observedGeneration": generation,
            "desiredNumberScheduled": 1,
            "currentNumberScheduled": 1,
            "updatedNumberScheduled": 1,
            "numberReady": i64::from(health == "healthy"),
            "numberAvailable": i64::from(health == "healthy"),
            "numberMisscheduled": 0,
        }),
        "Service" => {
            // A load-balancer controller (MetalLB, a cloud) assigns an address.
            let octet = object
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .map_or(1, |n| n.len() % 250 + 2);
            if health == "healthy" {
                json!({"loadBalancer": {"ingress": [{"ip": format!("192.0.2.{octet}")}]}})
            } else {
                json!({"loadBalancer": {}})
            }
        }
        "PersistentVolumeClaim" => {
            // A provisioner binds the claim (a test can keep it Pending).
            let phase = if health == "healthy" {
                "Bound"
            } else {
                "Pending"
            };
            json!({
                "phase": phase,
                "accessModes": object.pointer("/spec/accessModes").cloned().unwrap_or(json!(["ReadWriteOnce"])),
                "capacity": {"storage": object.pointer("/spec/resources/requests/storage").cloned().unwrap_or(json!("1Gi"))},
            })
        }
        _ => {
            // Job
            let now = now();
            match health {
                "degraded" => json!({
                    "startTime": now,
                    "failed": 1,
                    "conditions": [condition("Failed", "True", "BackoffLimitExceeded", "Job has reached the specified backoff limit")],
                }),
                "progressing" => json!({"startTime": now, "active": 1}),
                _ => json!({
                    "startTime": now,
                    "completionTime": now,
                    "succeeded": object.pointer("/spec/completions").and_then(Value::as_i64).unwrap_or(1),
                    "conditions": [
                        condition("SuccessCriteriaMet", "True", "CompletionsReached", "Reached expected number of succeeded pods"),
                        condition("Complete", "True", "CompletionsReached", "Reached expected number of succeeded pods"),
                    ],
                }),
            }
        }
    }
}
