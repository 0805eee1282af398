//! The real kubectl (installed on these machines) against the sandbox.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use pushsync_sandbox::Sandbox;
use pushsync_testkit::repo_root;

fn manifests() -> PathBuf {
    repo_root().join("testdata/manifests")
}

pub(crate) struct Kubectl<'a> {
    pub(crate) kubeconfig: &'a Path,
}

impl Kubectl<'_> {
    pub(crate) fn run(&self, args: &[&str]) -> Output {
        Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(self.kubeconfig)
            .args(args)
            .output()
            .expect("kubectl is required (installed on these machines)")
    }

    #[track_caller]
    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "kubectl {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

/// `kubectl kustomize` a fixture directory into a file.
fn render(dir: &str, out: &Path) -> PathBuf {
    let output = Command::new("kubectl")
        .arg("kustomize")
        .arg(manifests().join(dir))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::write(out, &output.stdout).unwrap();
    out.to_path_buf()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_discovers_creates_applies_diffs_and_deletes() {
    let sandbox = Sandbox::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubectl = Kubectl {
        kubeconfig: sandbox.kubeconfig(),
    };
    let kubectl = &kubectl;

    let resources = tokio::task::block_in_place(|| kubectl.ok(&["api-resources"]));
    for expected in [
        "deployments",
        "deploy",
        "apps/v1",
        "customresourcedefinitions",
        "horizontalpodautoscalers",
        "cronjobs",
    ] {
        assert!(
            resources.contains(expected),
            "{expected} missing from api-resources:\n{resources}"
        );
    }

    tokio::task::block_in_place(|| {
        assert!(
            kubectl
                .ok(&["create", "namespace", "sock-shop"])
                .contains("namespace/sock-shop created")
        );
        let sock = render(
            "argocd-example-apps/sock-shop",
            &dir.path().join("sock.yaml"),
        );
        let applied = kubectl.ok(&[
            "apply",
            "--server-side",
            "-n",
            "sock-shop",
            "-f",
            sock.to_str().unwrap(),
        ]);
        assert_eq!(
            applied.matches("serverside-applied").count(),
            29,
            "{applied}"
        );

        // The podinfo dev overlay: a Namespace, HPAs, CronJobs, a StatefulSet, a PVC.
        let podinfo = render(
            "podinfo/deploy/overlays/dev",
            &dir.path().join("podinfo.yaml"),
        );
        let applied = kubectl.ok(&["apply", "--server-side", "-f", podinfo.to_str().unwrap()]);
        for kind in [
            "namespace/dev",
            "statefulset.apps/",
            "cronjob.batch/",
            "horizontalpodautoscaler.autoscaling/",
            "persistentvolumeclaim/",
        ] {
            assert!(applied.contains(kind), "{kind} missing:\n{applied}");
        }

        // managedFields as the real server records them.
        let yaml = kubectl.ok(&[
            "get",
            "deploy",
            "carts",
            "-n",
            "sock-shop",
            "-o",
            "yaml",
            "--show-managed-fields",
        ]);
        for expected in [
            "managedFields:",
            "manager: kubectl",
            "operation: Apply",
            "k:{\"name\":\"carts\"}:",
        ] {
            assert!(yaml.contains(expected), "{expected} missing:\n{yaml}");
        }

        // diff shows a changed field and exits 1; no change exits 0.
        let changed = dir.path().join("changed.yaml");
        std::fs::write(
            &changed,
            std::fs::read_to_string(&sock)
                .unwrap()
                .replace("replicas: 1", "replicas: 3"),
        )
        .unwrap();
        let diff = kubectl.run(&[
            "diff",
            "--server-side",
            "-n",
            "sock-shop",
            "-f",
            changed.to_str().unwrap(),
        ]);
        assert_eq!(
            diff.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&diff.stderr)
        );
        let text = String::from_utf8_lossy(&diff.stdout);
        assert!(
            text.contains("-  replicas: 1") && text.contains("+  replicas: 3"),
            "{text}"
        );
        let same = kubectl.run(&[
            "diff",
            "--server-side",
            "-n",
            "sock-shop",
            "-f",
            sock.to_str().unwrap(),
        ]);
        assert_eq!(
            same.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&same.stdout)
        );

        // A second manager's conflicting apply fails, then wins with --force-conflicts.
        let conflict = kubectl.run(&[
            "apply",
            "--server-side",
            "--field-manager",
            "intruder",
            "-n",
            "sock-shop",
            "-f",
            changed.to_str().unwrap(),
        ]);
        assert!(!conflict.status.success());
        let stderr = String::from_utf8_lossy(&conflict.stderr);
        assert!(
            stderr.contains("conflict with \"kubectl\"") && stderr.contains(".spec.replicas"),
            "{stderr}"
        );
        kubectl.ok(&[
            "apply",
            "--server-side",
            "--field-manager",
            "intruder",
            "--force-conflicts",
            "-n",
            "sock-shop",
            "-f",
            changed.to_str().unwrap(),
        ]);
        assert_eq!(
            kubectl.ok(&[
                "get",
                "deploy",
                "carts",
                "-n",
                "sock-shop",
                "-o",
                "jsonpath={.spec.replicas}"
            ]),
            "3"
        );

        // delete -f removes everything it names.
        let deleted = kubectl.ok(&["delete", "-n", "sock-shop", "-f", sock.to_str().unwrap()]);
        assert_eq!(deleted.matches("deleted").count(), 29, "{deleted}");
        let left = kubectl.run(&["get", "deploy", "-n", "sock-shop"]);
        assert!(
            String::from_utf8_lossy(&left.stderr).contains("No resources found"),
            "{left:?}"
        );
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_applies_a_crd_then_a_custom_resource() {
    let sandbox = Sandbox::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubectl = Kubectl {
        kubeconfig: sandbox.kubeconfig(),
    };
    let crd = dir.path().join("crd.yaml");
    std::fs::write(
        &crd,
        r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
"#,
    )
    .unwrap();
    let widget = dir.path().join("widget.yaml");
    std::fs::write(&widget, "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1, namespace: default}\nspec: {size: 3}\n").unwrap();
    tokio::task::block_in_place(|| {
        kubectl.ok(&["apply", "--server-side", "-f", crd.to_str().unwrap()]);
        let resources = kubectl.ok(&["api-resources", "--api-group", "example.com"]);
        assert!(
            resources.contains("widgets") && resources.contains("wd"),
            "{resources}"
        );
        kubectl.ok(&["apply", "--server-side", "-f", widget.to_str().unwrap()]);
        assert_eq!(
            kubectl.ok(&["get", "wd", "w1", "-o", "jsonpath={.spec.size}"]),
            "3"
        );
        // Deleting the CRD removes its kind and objects.
        kubectl.ok(&["delete", "crd", "widgets.example.com"]);
        let gone = kubectl.run(&["get", "widgets"]);
        assert!(!gone.status.success());
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_shows_a_crds_printer_columns() {
    let sandbox = Sandbox::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubectl = Kubectl {
        kubeconfig: sandbox.kubeconfig(),
    };
    let crd = dir.path().join("crd.yaml");
    std::fs::write(
        &crd,
        r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: gadgets, singular: gadget, kind: Gadget}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Ready, type: string, jsonPath: '.status.conditions[?(@.type=="Ready")].status'}
    - {name: Why, type: string, priority: 1, jsonPath: '.status.conditions[?(@.type=="Ready")].message'}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
"#,
    )
    .unwrap();
    let gadget = dir.path().join("gadget.yaml");
    std::fs::write(
        &gadget,
        "apiVersion: example.com/v1\nkind: Gadget\nmetadata: {name: g1, namespace: default}\nspec: {size: 3}\n",
    )
    .unwrap();
    tokio::task::block_in_place(|| {
        kubectl.ok(&["apply", "--server-side", "-f", crd.to_str().unwrap()]);
        kubectl.ok(&["create", "-f", gadget.to_str().unwrap()]);
        kubectl.ok(&[
            "patch",
            "gadget",
            "g1",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"conditions":[{"type":"Ready","status":"False","message":"still-warming"}]}}"#,
        ]);
        let plain = kubectl.ok(&["get", "gadgets"]);
        let mut lines = plain.lines();
        let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
        assert_eq!(header, ["NAME", "SIZE", "READY", "AGE"], "{plain}");
        let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
        assert_eq!(&row[..3], ["g1", "3", "False"], "{plain}");
        assert!(row[3].ends_with('s'), "an age: {plain}");
        let wide = kubectl.ok(&["get", "gadgets", "-o", "wide"]);
        assert!(wide.lines().next().unwrap().contains("WHY"), "{wide}");
        assert!(wide.contains("still-warming"), "{wide}");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_watch_prints_updates() {
    let sandbox = Sandbox::start().await.unwrap();
    let kubectl = Kubectl {
        kubeconfig: sandbox.kubeconfig(),
    };
    tokio::task::block_in_place(|| {
        kubectl.ok(&["create", "configmap", "watched", "--from-literal=a=1"]);
        let mut watcher = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(sandbox.kubeconfig())
            .args([
                "get",
                "configmap",
                "watched",
                "-w",
                "-o",
                "jsonpath={.data.a}{\"\\n\"}",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = watcher.stdout.take().unwrap();
        let (lines_tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        // The watch is established once the current state is printed.
        let first = lines
            .recv_timeout(Duration::from_secs(20))
            .expect("kubectl printed nothing");
        kubectl.ok(&[
            "patch",
            "configmap",
            "watched",
            "--type=merge",
            "-p",
            r#"{"data":{"a":"2"}}"#,
        ]);
        let second = lines
            .recv_timeout(Duration::from_secs(20))
            .expect("kubectl printed no update");
        let _ = watcher.kill();
        let _ = watcher.wait();
        assert_eq!([first, second], ["1", "2"], "watch output");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_kubernetes_shaped_errors() {
    let sandbox = Sandbox::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubectl = Kubectl {
        kubeconfig: sandbox.kubeconfig(),
    };
    let cases = [
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Bad_Name}\n",
            "Invalid value: \"Bad_Name\"",
        ),
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: nowhere}\n",
            "namespaces \"nowhere\" not found",
        ),
    ];
    tokio::task::block_in_place(|| {
        for (i, (yaml, expected)) in cases.iter().enumerate() {
            let file = dir.path().join(format!("{i}.yaml"));
            std::fs::write(&file, yaml).unwrap();
            let output = kubectl.run(&["apply", "--server-side", "-f", file.to_str().unwrap()]);
            assert!(!output.status.success());
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(
                stderr.contains(expected),
                "{expected} missing from {stderr}"
            );
        }
        // An immutable field.
        let deploy = dir.path().join("deploy.yaml");
        let body = |selector: &str| {
            format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  selector: {{matchLabels: {{app: {selector}}}}}\n  template:\n    metadata: {{labels: {{app: {selector}}}}}\n    spec: {{containers: [{{name: c, image: nginx}}]}}\n"
            )
        };
        std::fs::write(&deploy, body("a")).unwrap();
        kubectl.ok(&["apply", "--server-side", "-f", deploy.to_str().unwrap()]);
        std::fs::write(&deploy, body("b")).unwrap();
        let output = kubectl.run(&["apply", "--server-side", "-f", deploy.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("field is immutable"), "{stderr}");
    });
}
