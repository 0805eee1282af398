//! Unit tests of the health rules beside gitops-engine's cases (cases.rs).

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
    assert_eq!(got.health, HealthStatusCode::Suspended);
    assert!(got.message.starts_with("suspended:"), "{}", got.message);
    let job =
        json!({"apiVersion": "batch/v1", "kind": "Job", "spec": {"suspend": true}, "status": {}});
    assert_eq!(assess(Some(&job)).health, HealthStatusCode::Suspended);
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
        cr(json!({"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True"}]})),
        HealthStatusCode::Progressing,
    );
    check(
        cr(json!({"conditions": [{"type": "Stalled", "status": "True", "message": "bad spec"}]})),
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
        cr(json!({"observedGeneration": 2, "conditions": [{"type": "Synced", "status": "False"}]})),
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
