//! The sandbox held to the real schemas, seen through the real kubectl:
//! unknown fields per `--validate`, `kubectl explain`, `kind: List` files,
//! CRD pruning and validation, list-map keys in server-side apply, paging.

use std::path::Path;

use pushsync_sandbox::Sandbox;
use pushsync_testkit::repo_root;
use serde_json::Value;

use crate::kubectl::Kubectl;

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

const DEPLOYMENT_WITH_TYPOS: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: typo, namespace: default}
spec:
  replica: 2
  selector: {matchLabels: {app: typo}}
  template:
    metadata: {labels: {app: typo}}
    spec:
      containers:
      - name: app
        image: nginx:1.27
        imagePullPolicyy: Always
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_fields_follow_kubectls_validate_flag() {
    let sandbox = Sandbox::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubectl = Kubectl {
        kubeconfig: sandbox.kubeconfig(),
    };
    let file = write(dir.path(), "typo.yaml", DEPLOYMENT_WITH_TYPOS);
    tokio::task::block_in_place(|| {
        // Strict (kubectl's default): refused, naming both fields, nothing stored.
        let strict = kubectl.run(&["apply", "--validate=strict", "-f", &file]);
        assert!(!strict.status.success());
        let message = stderr(&strict);
        assert!(
            message.contains("strict decoding error")
                && message.contains(r#"unknown field "spec.replica""#)
                && message.contains(
                    r#"unknown field "spec.template.spec.containers[0].imagePullPolicyy""#
                ),
            "{message}"
        );
        assert!(!kubectl.run(&["get", "deployment", "typo"]).status.success());
        // Server-side apply refuses them whatever --validate says, as the real server does.
        let ssa = kubectl.run(&["apply", "--server-side", "--validate=ignore", "-f", &file]);
        assert!(!ssa.status.success());
        assert!(
            stderr(&ssa).contains(".spec.replica: field not declared in schema"),
            "{}",
            stderr(&ssa)
        );
        // Warn: stored without them, and kubectl prints the server's warnings.
        let warn = kubectl.run(&["apply", "--validate=warn", "-f", &file]);
        assert!(warn.status.success(), "{}", stderr(&warn));
        let warnings = stderr(&warn);
        assert!(
            warnings.contains(r#"Warning: unknown field "spec.replica""#)
                && warnings.contains(
                    r#"Warning: unknown field "spec.template.spec.containers[0].imagePullPolicyy""#
                ),
            "{warnings}"
        );
        let stored: Value =
            serde_json::from_str(&kubectl.ok(&["get", "deployment", "typo", "-o", "json"]))
                .unwrap();
        assert!(stored["spec"].get("replica").is_none(), "{stored}");
        assert!(
            stored["spec"]["template"]["spec"]["containers"][0]
                .get("imagePullPolicyy")
                .is_none()
        );
    });
    // A merge patch adding one under Strict is the real server's 422 on the patch.
    let patch = reqwest::Client::new()
        .patch(format!(
            "{}/apis/apps/v1/namespaces/default/deployments/typo?fieldValidation=Strict",
            sandbox.url()
        ))
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"spec":{"bogus":1}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(patch.status(), 422);
    let status: Value = patch.json().await.unwrap();
    let message = status["message"].as_str().unwrap();
    assert!(
        message.starts_with(r#" "" is invalid: patch: Invalid value: "#)
            && message.ends_with(r#"strict decoding error: unknown field "spec.bogus""#),
        "{message}"
    );
    assert_eq!(status["details"]["causes"][0]["field"], "patch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_explain_reads_the_served_openapi() {
    let sandbox = Sandbox::start().await.unwrap();
    let kubectl = Kubectl {
        kubeconfig: sandbox.kubeconfig(),
    };
    tokio::task::block_in_place(|| {
        let ports = kubectl.ok(&["explain", "deployment.spec.template.spec.containers.ports"]);
        assert!(
            ports.contains("KIND:       Deployment")
                && ports.contains("FIELD: ports <[]ContainerPort>")
                && ports.contains("containerPort\t<integer> -required-"),
            "{ports}"
        );
        // A custom kind, from its CRD's schema.
        kubectl.ok(&[
            "apply",
            "--server-side",
            "-f",
            repo_root().join("deploy/crds").to_str().unwrap(),
        ]);
        let spec = kubectl.ok(&["explain", "applications.spec.source"]);
        assert!(
            spec.contains("KIND:       Application") && spec.contains("repoURL"),
            "{spec}"
        );
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_file_applies_after_client_side_validation() {
    let sandbox = Sandbox::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubectl = Kubectl {
        kubeconfig: sandbox.kubeconfig(),
    };
    let list = write(
        dir.path(),
        "list.yaml",
        r#"apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: one, namespace: default}
  data: {a: "1"}
- apiVersion: v1
  kind: Service
  metadata: {name: two, namespace: default}
  spec:
    selector: {app: two}
    ports: [{port: 80, targetPort: http}]
"#,
    );
    let bad = write(
        dir.path(),
        "bad-list.yaml",
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: three, namespace: default}\n  dataa: {a: \"1\"}\n",
    );
    tokio::task::block_in_place(|| {
        let applied = kubectl.ok(&["apply", "-f", &list]);
        assert!(
            applied.contains("configmap/one created") && applied.contains("service/two created"),
            "{applied}"
        );
        assert_eq!(
            kubectl.ok(&[
                "get",
                "service",
                "two",
                "-o",
                "jsonpath={.spec.ports[0].targetPort}"
            ]),
            "http"
        );
        // kubectl itself refuses an unknown field in a List, from /openapi/v2.
        let refused = kubectl.run(&["apply", "-f", &bad]);
        assert!(!refused.status.success());
        assert!(
            stderr(&refused).contains("unknown field \"dataa\""),
            "{}",
            stderr(&refused)
        );
        assert!(!kubectl.run(&["get", "configmap", "three"]).status.success());
    });
}

const WIDGETS: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [name]
            properties:
              name: {type: string, pattern: '^[a-z]+$'}
              size: {type: integer, minimum: 1, default: 1}
              free: {type: object, x-kubernetes-preserve-unknown-fields: true}
          status:
            type: object
            properties:
              phase: {type: string, enum: [Ready, Failed]}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_resources_are_pruned_defaulted_and_validated() {
    let sandbox = Sandbox::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubectl = Kubectl {
        kubeconfig: sandbox.kubeconfig(),
    };
    let crd = write(dir.path(), "crd.yaml", WIDGETS);
    let widget = write(
        dir.path(),
        "w.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w, namespace: default}\nspec: {name: abc, extra: 1, free: {any: {thing: [1]}}}\n",
    );
    let invalid = write(
        dir.path(),
        "bad.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: bad, namespace: default}\nspec: {name: Not_Valid, size: \"3\"}\n",
    );
    tokio::task::block_in_place(|| {
        kubectl.ok(&["apply", "--server-side", "-f", &crd]);
        // Client-side apply with --validate=ignore: the server prunes what the schema does not declare.
        kubectl.ok(&["apply", "--validate=ignore", "-f", &widget]);
        let stored: Value =
            serde_json::from_str(&kubectl.ok(&["get", "widget", "w", "-o", "json"])).unwrap();
        assert!(stored["spec"].get("extra").is_none(), "pruned: {stored}");
        assert_eq!(
            stored["spec"]["free"],
            serde_json::json!({"any": {"thing": [1]}})
        );
        assert_eq!(stored["spec"]["size"], 1, "defaulted");
        // Invalid: the real server's 422 with every cause.
        let refused = kubectl.run(&["apply", "--server-side", "-f", &invalid]);
        assert!(!refused.status.success());
        let message = stderr(&refused);
        // kubectl prints the Status's causes one per line.
        assert!(
            message.contains(r#"The Widget "bad" is invalid"#)
                && message.contains(r#"spec.name: Invalid value: "Not_Valid": spec.name in body should match '^[a-z]+$'"#)
                && message.contains(r#"spec.size: Invalid value: "string": spec.size in body must be of type integer: "string""#),
            "{message}"
        );
        assert!(!kubectl.run(&["get", "widget", "bad"]).status.success());
        // No strategic merge patch for custom resources (415, as the real server).
        let strategic = kubectl.run(&[
            "patch",
            "widget",
            "w",
            "--type=strategic",
            "-p",
            r#"{"spec":{"size":2}}"#,
        ]);
        assert!(!strategic.status.success());
        assert!(
            stderr(&strategic).contains("unknown format"),
            "{}",
            stderr(&strategic)
        );
        // The status subresource validates status alone.
        let status = kubectl.run(&[
            "patch",
            "widget",
            "w",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"phase":"Sleeping"}}"#,
        ]);
        assert!(!status.status.success());
        assert!(
            stderr(&status).contains(r#"status.phase: Unsupported value: "Sleeping": supported values: "Ready", "Failed""#),
            "{}",
            stderr(&status)
        );
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_ports_are_keyed_by_port_and_protocol_in_server_side_apply() {
    let sandbox = Sandbox::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubectl = Kubectl {
        kubeconfig: sandbox.kubeconfig(),
    };
    let pod = |port: u16, protocol: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p, namespace: default}}\nspec:\n  containers:\n  - name: app\n    image: nginx\n    ports:\n    - {{containerPort: {port}, protocol: {protocol}, name: p{port}{}}}\n",
            protocol.to_ascii_lowercase()
        )
    };
    let tcp = write(dir.path(), "a.yaml", &pod(53, "TCP"));
    let udp = write(dir.path(), "b.yaml", &pod(53, "UDP"));
    let clash = write(
        dir.path(),
        "c.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: default}\nspec:\n  containers:\n  - name: app\n    image: nginx\n    ports:\n    - {containerPort: 53, protocol: TCP, name: other}\n",
    );
    tokio::task::block_in_place(|| {
        kubectl.ok(&[
            "apply",
            "--server-side",
            "--field-manager=alice",
            "-f",
            &tcp,
        ]);
        // Same port number, other protocol: another item, no conflict.
        kubectl.ok(&["apply", "--server-side", "--field-manager=bob", "-f", &udp]);
        let ports = kubectl.ok(&[
            "get",
            "pod",
            "p",
            "-o",
            "jsonpath={.spec.containers[0].ports[*].protocol}",
        ]);
        assert_eq!(ports, "TCP UDP");
        // The same port and protocol with another name: a conflict on alice's field.
        let conflict = kubectl.run(&[
            "apply",
            "--server-side",
            "--field-manager=carol",
            "-f",
            &clash,
        ]);
        assert!(!conflict.status.success());
        let message = stderr(&conflict);
        assert!(
            message.contains(r#"conflict with "alice""#)
                && message.contains(
                    r#".spec.containers[name="app"].ports[containerPort=53,protocol="TCP"].name"#
                ),
            "{message}"
        );
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_pages_with_chunk_size_and_stale_tokens_expire() {
    let sandbox = Sandbox::start().await.unwrap();
    let kubectl = Kubectl {
        kubeconfig: sandbox.kubeconfig(),
    };
    tokio::task::block_in_place(|| {
        for i in 0..5 {
            kubectl.ok(&[
                "create",
                "configmap",
                &format!("page-{i}"),
                "--from-literal=i=1",
            ]);
        }
    });
    let client = reqwest::Client::new();
    let base = sandbox.url();
    let before = sandbox.audit().len();
    tokio::task::block_in_place(|| {
        let names = kubectl.ok(&["get", "configmaps", "--chunk-size=2", "-o", "name"]);
        assert_eq!(
            names
                .lines()
                .filter(|l| l.starts_with("configmap/page-"))
                .count(),
            5,
            "{names}"
        );
    });
    let audit = sandbox.audit();
    let pages: Vec<_> = audit[before..]
        .iter()
        .filter(|e| e.path.ends_with("/configmaps") && e.query.contains("limit=2"))
        .collect();
    assert!(pages.len() >= 3, "three pages of two: {pages:?}");
    assert!(
        pages.iter().skip(1).all(|e| e.query.contains("continue=")),
        "{pages:?}"
    );

    // A token outlives a compaction only as a 410 with a token to go on inconsistently.
    let first: Value = client
        .get(format!(
            "{base}/api/v1/namespaces/default/configmaps?limit=2"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(first["metadata"]["remainingItemCount"], 3);
    let token = first["metadata"]["continue"].as_str().unwrap().to_owned();
    client
        .post(format!("{base}/sandbox/compact"))
        .send()
        .await
        .unwrap();
    let expired = client
        .get(format!(
            "{base}/api/v1/namespaces/default/configmaps?limit=2&continue={token}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(expired.status(), 410);
    let status: Value = expired.json().await.unwrap();
    assert_eq!(status["reason"], "Expired");
    let inconsistent = status["metadata"]["continue"].as_str().unwrap();
    let rest: Value = client
        .get(format!(
            "{base}/api/v1/namespaces/default/configmaps?limit=10&continue={inconsistent}"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rest["items"].as_array().unwrap().len(), 3, "{rest}");
    let garbage = client
        .get(format!(
            "{base}/api/v1/namespaces/default/configmaps?limit=2&continue=not-a-token"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), 400);
}
