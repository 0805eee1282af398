//! `deploy/monitoring/`'s alert rules and Grafana dashboard query only
//! metrics the shipped binaries export: every `pushsync_*` name they use is
//! in a fresh receiver's or worker's `/metrics` (bounded label values are
//! exported at zero from the start, so a fresh scrape lists every family).
//! `scripts/check-monitoring.sh` (in `make lint`) runs promtool on the rules
//! and their unit tests; this test holds them to the binaries.

use std::collections::BTreeSet;
use std::time::Duration;

use pushsync_testkit::amqp::{TestBroker, amqp_url, unique_topology};

use crate::process::{Service, free_port, repo_root, wait_status};

/// The `pushsync_*` names `text` mentions.
fn names_in(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("pushsync_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        // Skip a word that merely contains it (`xpushsync_…`).
        let before = rest[..start].chars().next_back();
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            names.insert(tail[..end].to_owned());
        }
        rest = &tail[end..];
    }
    names
}

/// The metric families `/metrics` at `url` declares, with a histogram's
/// `_bucket`, `_sum` and `_count` series named too.
async fn families(url: &str) -> BTreeSet<String> {
    let text = reqwest::get(url).await.unwrap().text().await.unwrap();
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if let (Some("#"), Some("TYPE"), Some(name), Some(kind)) =
            (words.next(), words.next(), words.next(), words.next())
        {
            names.insert(name.to_owned());
            if kind == "histogram" || kind == "summary" {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
        }
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alerts_and_the_dashboard_use_only_metrics_the_binaries_export() {
    let topology = unique_topology();
    let sandbox = pushsync_sandbox::Sandbox::start().await.unwrap();
    crate::cluster::install_crds(&sandbox.client()).await;
    let cache = tempfile::tempdir().unwrap();
    let (receiver_port, worker_port) = (free_port(), free_port());
    let common = [
        ("PUSHSYNC_AMQP_URL", amqp_url()),
        ("PUSHSYNC_QUEUE_PREFIX", topology.prefix().to_owned()),
        ("PUSHSYNC_GITHUB_SECRET", "s".to_owned()),
    ];
    let mut receiver_env = common.to_vec();
    receiver_env.push(("PUSHSYNC_LISTEN", format!("127.0.0.1:{receiver_port}")));
    let receiver = Service::start("pushsync-receiver", &[], &receiver_env);
    let mut worker_env = common.to_vec();
    worker_env.extend([
        ("KUBECONFIG", sandbox.kubeconfig().display().to_string()),
        ("PUSHSYNC_GIT_CACHE", cache.path().display().to_string()),
        (
            "PUSHSYNC_METRICS_LISTEN",
            format!("127.0.0.1:{worker_port}"),
        ),
        ("PUSHSYNC_APPLICATION_NAMESPACES", "*".to_owned()),
        ("PUSHSYNC_NAMESPACE", "default".to_owned()),
    ]);
    let worker = Service::start("pushsync-worker", &[], &worker_env);
    let receiver_url = format!("http://127.0.0.1:{receiver_port}");
    let worker_url = format!("http://127.0.0.1:{worker_port}");
    assert!(
        wait_status(
            &format!("{receiver_url}/readyz"),
            200,
            Duration::from_secs(30)
        )
        .await,
        "the receiver never got ready"
    );
    assert!(
        wait_status(
            &format!("{worker_url}/metrics"),
            200,
            Duration::from_secs(30)
        )
        .await,
        "the worker never served metrics"
    );
    let mut exported = families(&format!("{receiver_url}/metrics")).await;
    exported.extend(families(&format!("{worker_url}/metrics")).await);
    assert!(
        exported.contains("pushsync_worker_build_info"),
        "{exported:?}"
    );

    let monitoring = repo_root().join("deploy/monitoring");
    for file in ["rules.yaml", "grafana-dashboard.json"] {
        let text = std::fs::read_to_string(monitoring.join(file)).unwrap();
        let used = names_in(&text);
        assert!(used.len() > 5, "{file} names hardly any metric: {used:?}");
        let unknown: Vec<_> = used.difference(&exported).collect();
        assert!(
            unknown.is_empty(),
            "deploy/monitoring/{file} queries metrics neither binary exports: {unknown:?}"
        );
    }
    assert!(receiver.terminate(), "the receiver did not stop cleanly");
    assert!(worker.terminate(), "the worker did not stop cleanly");
    TestBroker::connect().await.delete_topology(&topology).await;
}
