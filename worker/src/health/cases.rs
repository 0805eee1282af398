//! Argo CD's own health test cases (gitops-engine's `pkg/health/testdata`,
//! vendored unchanged in `testdata/` with its licence) run through
//! [`super::assess`]: every verdict agrees with Argo CD's, or is listed in
//! [`DIFFERENCES`] with the reason.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use pushsync_api::HealthStatusCode;
use serde_json::Value;

use super::{HPA_WITHOUT_CONDITIONS, assess};

/// Every vendored file and the verdict gitops-engine's `health_test.go`
/// asserts for it (`None`: no health at all, its `assert.Nil`).
const CASES: &[(&str, Option<&str>)] = &[
    // TestDeploymentHealth (nginx.yaml is pkg/utils/kube/testdata's)
    ("nginx.yaml", Some("Healthy")),
    ("deployment-progressing.yaml", Some("Progressing")),
    ("deployment-suspended.yaml", Some("Suspended")),
    ("deployment-degraded.yaml", Some("Degraded")),
    // TestStatefulSetHealth, TestStatefulSetOnDeleteHealth, TestDaemonSetOnDeleteHealth
    ("statefulset.yaml", Some("Healthy")),
    ("statefulset-ondelete.yaml", Some("Healthy")),
    ("daemonset-ondelete.yaml", Some("Healthy")),
    // TestPVCHealth
    ("pvc-bound.yaml", Some("Healthy")),
    ("pvc-pending.yaml", Some("Progressing")),
    // TestServiceHealth
    ("svc-clusterip.yaml", Some("Healthy")),
    ("svc-loadbalancer.yaml", Some("Healthy")),
    ("svc-loadbalancer-unassigned.yaml", Some("Progressing")),
    ("svc-loadbalancer-nonemptylist.yaml", Some("Healthy")),
    // TestIngressHealth
    ("ingress.yaml", Some("Healthy")),
    ("ingress-unassigned.yaml", Some("Progressing")),
    ("ingress-nonemptylist.yaml", Some("Healthy")),
    // TestCRD
    ("knative-service.yaml", None),
    // TestJob
    ("job-running.yaml", Some("Progressing")),
    ("job-failed.yaml", Some("Degraded")),
    ("job-succeeded.yaml", Some("Healthy")),
    ("job-suspended.yaml", Some("Suspended")),
    // TestHPA
    ("hpa-v2-healthy.yaml", Some("Healthy")),
    ("hpa-v2-degraded.yaml", Some("Degraded")),
    ("hpa-v2-progressing.yaml", Some("Progressing")),
    ("hpa-v2beta2-healthy.yaml", Some("Healthy")),
    ("hpa-v2beta1-healthy-disabled.yaml", Some("Healthy")),
    ("hpa-v2beta1-healthy.yaml", Some("Healthy")),
    ("hpa-v1-degraded.yaml", Some("Degraded")),
    ("hpa-v1-healthy.yaml", Some("Healthy")),
    ("hpa-v1-healthy-toofew.yaml", Some("Healthy")),
    ("hpa-v1-progressing.yaml", Some("Progressing")),
    (
        "hpa-v1-progressing-with-no-annotations.yaml",
        Some("Progressing"),
    ),
    // TestPod
    ("pod-pending.yaml", Some("Progressing")),
    ("pod-running-not-ready.yaml", Some("Progressing")),
    ("pod-crashloop.yaml", Some("Degraded")),
    ("pod-imagepullbackoff.yaml", Some("Degraded")),
    ("pod-error.yaml", Some("Degraded")),
    ("pod-running-restart-always.yaml", Some("Healthy")),
    ("pod-running-restart-never.yaml", Some("Progressing")),
    ("pod-running-restart-onfailure.yaml", Some("Progressing")),
    ("pod-failed.yaml", Some("Degraded")),
    ("pod-succeeded.yaml", Some("Healthy")),
    ("pod-deletion.yaml", Some("Progressing")),
    // TestApplication (argoproj.io Applications: no built-in health)
    ("application-healthy.yaml", None),
    ("application-degraded.yaml", None),
    // TestAPIService
    ("apiservice-v1-true.yaml", Some("Healthy")),
    ("apiservice-v1-false.yaml", Some("Progressing")),
    ("apiservice-v1beta1-true.yaml", Some("Healthy")),
    ("apiservice-v1beta1-false.yaml", Some("Progressing")),
];

/// Where pushsync gives another verdict on purpose: the file, pushsync's
/// verdict, and why. The README's health section lists the same.
const DIFFERENCES: &[(&str, HealthStatusCode, &str)] = &[(
    "hpa-v1-progressing-with-no-annotations.yaml",
    HPA_WITHOUT_CONDITIONS,
    "an autoscaler without conditions yet is Healthy, not Progressing, while the \
         API sandbox the tests run against has no HPA controller to write them",
)];

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/health/testdata")
}

fn load(file: &str) -> Value {
    let text = std::fs::read_to_string(testdata().join(file)).unwrap();
    // statefulset-ondelete.yaml repeats `spec.updateStrategy` (same value
    // twice); Go's YAML reader keeps the last one.
    let options = serde_saphyr::options! {
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::LastWins,
    };
    serde_saphyr::from_str_with_options(&text, options).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// Argo CD's word for a pushsync verdict: pushsync's `Unknown` is "no health
/// notion", Argo CD's `nil`.
fn in_argo_words(code: HealthStatusCode) -> Option<&'static str> {
    (code != HealthStatusCode::Unknown).then(|| code.as_str())
}

#[test]
fn every_vendored_file_is_a_case() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(testdata())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".yaml"))
        .collect();
    let listed: BTreeSet<String> = CASES.iter().map(|(f, _)| (*f).to_owned()).collect();
    assert_eq!(on_disk, listed);
    assert_eq!(CASES.len(), 49);
    for (file, _, _) in DIFFERENCES {
        assert!(listed.contains(*file), "{file} is not a case");
    }
}

#[test]
fn gitops_engine_cases_agree_or_differ_on_purpose() {
    let mut agree = 0;
    let mut with_status = 0;
    let mut agree_with_status = 0;
    let mut failures = Vec::new();
    for &(file, argo) in CASES {
        let got = assess(Some(&load(file)));
        let same = in_argo_words(got.health) == argo;
        agree += usize::from(same);
        if argo.is_some() {
            with_status += 1;
            agree_with_status += usize::from(same);
        }
        match DIFFERENCES.iter().find(|(f, _, _)| *f == file) {
            Some((_, ours, _)) if same => failures.push(format!(
                "{file}: listed as a difference ({ours}) but agrees with Argo CD now: drop it"
            )),
            Some((_, ours, why)) if got.health != *ours => failures.push(format!(
                "{file}: pushsync should say {ours} ({why}), says {} ({})",
                got.health, got.message
            )),
            Some(_) => {}
            None if !same => failures.push(format!(
                "{file}: Argo CD says {}, pushsync {} ({})",
                argo.unwrap_or("nothing"),
                got.health,
                got.message
            )),
            None => {}
        }
    }
    println!(
        "gitops-engine health cases: {agree} of {} agree with Argo CD \
         ({agree_with_status} of {with_status} that expect a status); {} deliberate differences",
        CASES.len(),
        DIFFERENCES.len()
    );
    for (file, ours, why) in DIFFERENCES {
        println!("  differs on purpose: {file} → {ours}: {why}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
