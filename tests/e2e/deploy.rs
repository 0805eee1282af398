//! `deploy/` is what a cluster runs: it renders with `kubectl kustomize`, the
//! API server accepts all of it (applied to the sandbox, a server-side dry
//! run on a real cluster), its workloads roll out, and every `PUSHSYNC_*`
//! variable it sets is one the binaries read.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};

use crate::cluster::TestCluster;
use crate::process::{binary, repo_root};

fn kustomize(dir: &str) -> String {
    let output = Command::new("kubectl")
        .args(["kustomize"])
        .arg(repo_root().join(dir))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "kubectl kustomize {dir}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn kubectl(cluster: &TestCluster, args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(text) = stdin {
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), text.as_bytes()).unwrap();
    }
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The `PUSHSYNC_*` variables a binary documents in `--help`.
fn variables_of(name: &str) -> BTreeSet<String> {
    let output = Command::new(binary(name)).arg("--help").output().unwrap();
    String::from_utf8_lossy(&output.stdout)
        .split("env: ")
        .skip(1)
        .filter_map(|rest| {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            (!name.is_empty()).then_some(name)
        })
        .collect()
}

/// The chart rendered as `helm template` does (CRDs included).
fn helm_template(values: &[&str]) -> String {
    let output = Command::new(pushsync_testkit::helm_binary())
        .args(["template", "pushsync"])
        .arg(repo_root().join("charts/pushsync"))
        .args(["--namespace", "pushsync", "--include-crds"])
        .args(values)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "helm template: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deploy_manifests_are_accepted_and_roll_out() {
    accepted_and_rolled_out(&kustomize("deploy")).await;

    // Autoscaling watches the queue the workers consume.
    let autoscaling = kustomize("deploy/autoscaling");
    let queue = pushsync_proto::Topology::default().sync_jobs_queue();
    assert!(
        autoscaling.contains(&format!("queueName: {queue}")),
        "deploy/autoscaling does not watch {queue}"
    );
}

/// The broker for a cluster without operators (a three-node StatefulSet,
/// its users made by a Job) and the CPU autoscaler alternative: accepted,
/// and the broker rolls out. (`deploy/rabbitmq/operator` needs the RabbitMQ
/// operators' kinds, which neither the sandbox nor a bare cluster serves:
/// it is only rendered here.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_and_autoscaler_alternatives_are_accepted() {
    let cluster = TestCluster::start(std::time::Duration::from_millis(100)).await;
    let real = std::env::var_os("PUSHSYNC_TEST_KUBECONFIG").is_some();
    let mut apply = vec![
        "apply",
        "--server-side",
        "--field-manager=pushsync-e2e",
        "-f",
        "-",
    ];
    if real {
        apply.push("--dry-run=server");
    }
    let namespace = "apiVersion: v1\nkind: Namespace\nmetadata: {name: pushsync}\n";
    kubectl(&cluster, &apply, Some(namespace));
    let broker = kustomize("deploy/rabbitmq/statefulset");
    assert!(
        broker.contains("kind: StatefulSet") && broker.contains("replicas: 3"),
        "{broker}"
    );
    kubectl(&cluster, &apply, Some(&broker));
    kubectl(&cluster, &apply, Some(&kustomize("deploy/autoscaling/hpa")));
    if !real {
        kubectl(
            &cluster,
            &[
                "rollout",
                "status",
                "statefulset/rabbitmq",
                "-n",
                "pushsync",
                "--timeout=30s",
            ],
            None,
        );
    }
    let operator = kustomize("deploy/rabbitmq/operator");
    for kind in ["kind: RabbitmqCluster", "kind: User", "kind: Permission"] {
        assert!(
            operator.contains(kind),
            "deploy/rabbitmq/operator lacks {kind}"
        );
    }
}

/// The chart as `helm install` would apply it (scripts/check-chart.sh holds
/// it to `deploy/`, object by object; here the API server takes it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_helm_chart_is_accepted_and_rolls_out() {
    accepted_and_rolled_out(&helm_template(&[])).await;
    let queue = pushsync_proto::Topology::default().sync_jobs_queue();
    let keda = helm_template(&["--set", "worker.autoscaling.keda.enabled=true"]);
    assert!(
        keda.contains(&format!("queueName: {queue}")),
        "the chart's KEDA ScaledObject does not watch {queue}"
    );
}

/// `rendered` is applied (a server-side dry run on a real cluster), its
/// Deployments roll out, and every variable they set is one the binaries read.
async fn accepted_and_rolled_out(rendered: &str) {
    let cluster = TestCluster::start(std::time::Duration::from_millis(100)).await;
    let real = std::env::var_os("PUSHSYNC_TEST_KUBECONFIG").is_some();
    let mut apply = vec![
        "apply",
        "--server-side",
        "--field-manager=pushsync-e2e",
        "-f",
        "-",
    ];
    if real {
        // Never install pushsync into someone's cluster from a test.
        apply.push("--dry-run=server");
    }
    kubectl(&cluster, &apply, Some(rendered));
    if !real {
        for deployment in ["pushsync-receiver", "pushsync-worker", "pushsync-server"] {
            kubectl(
                &cluster,
                &[
                    "rollout",
                    "status",
                    &format!("deployment/{deployment}"),
                    "-n",
                    "pushsync",
                    "--timeout=30s",
                ],
                None,
            );
        }
    }

    // Every variable the manifests set is one the binary reads.
    let mut documents: Vec<serde_json::Value> = Vec::new();
    let mut doc = String::new();
    for line in rendered.lines().chain(["---"]) {
        if line == "---" {
            if doc
                .lines()
                .any(|l| !l.trim().is_empty() && !l.starts_with('#'))
            {
                documents.push(serde_saphyr::from_str(&doc).unwrap());
            }
            doc.clear();
        } else {
            doc.push_str(line);
            doc.push('\n');
        }
    }
    for (deployment, binary_name) in [
        ("pushsync-receiver", "pushsync-receiver"),
        ("pushsync-worker", "pushsync-worker"),
        ("pushsync-server", "pushsync-server"),
    ] {
        let known = variables_of(binary_name);
        let spec = documents
            .iter()
            .find(|d| d["kind"] == "Deployment" && d["metadata"]["name"] == deployment)
            .unwrap();
        for env in spec["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .unwrap()
        {
            let name = env["name"].as_str().unwrap();
            assert!(
                known.contains(name),
                "{deployment} sets {name}, which {binary_name} does not read"
            );
        }
    }
}
