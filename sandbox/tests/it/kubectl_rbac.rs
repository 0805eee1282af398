//! The real kubectl against an RBAC sandbox: `auth can-i`, `auth can-i
//! --list --as`, `auth whoami`, and its Forbidden and Unauthorized errors.

use pushsync_sandbox::{Sandbox, SandboxConfig, kubeconfig_yaml};

use crate::kubectl::Kubectl;

const POLICY: &str = r#"apiVersion: v1
kind: Namespace
metadata: {name: team-a}
---
apiVersion: v1
kind: Namespace
metadata: {name: team-b}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: deployer, namespace: team-a}
rules:
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, create]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: team-a-deployers, namespace: team-a}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: deployer}
subjects:
- {kind: Group, apiGroup: rbac.authorization.k8s.io, name: team-a}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: pushsync-worker}
rules:
- apiGroups: ["*"]
  resources: ["*"]
  verbs: ["*"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: pushsync-worker, namespace: team-a}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: pushsync-worker}
subjects:
- {kind: ServiceAccount, name: pushsync-worker, namespace: pushsync}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_auth_can_i_and_forbidden_errors_against_an_rbac_sandbox() {
    let sandbox = Sandbox::start_with(SandboxConfig {
        rbac: true,
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, POLICY).unwrap();
    let alice_config = sandbox.kubeconfig_as("alice", &["team-a"]).unwrap();
    let stranger = dir.path().join("stranger");
    std::fs::write(
        &stranger,
        kubeconfig_yaml(sandbox.kubectl_url(), "no-such-token"),
    )
    .unwrap();
    let admin = Kubectl {
        kubeconfig: sandbox.kubeconfig(),
    };
    let alice = Kubectl {
        kubeconfig: &alice_config,
    };
    let stranger = Kubectl {
        kubeconfig: &stranger,
    };
    tokio::task::block_in_place(|| {
        admin.ok(&["apply", "--server-side", "-f", policy.to_str().unwrap()]);

        assert_eq!(
            alice
                .ok(&["auth", "can-i", "create", "deployments", "-n", "team-a"])
                .trim(),
            "yes"
        );
        let no = alice.run(&["auth", "can-i", "create", "deployments", "-n", "team-b"]);
        assert_eq!(no.status.code(), Some(1), "{no:?}");
        assert_eq!(String::from_utf8_lossy(&no.stdout).trim(), "no");
        let delete = alice.run(&["auth", "can-i", "delete", "deployments", "-n", "team-a"]);
        assert_eq!(String::from_utf8_lossy(&delete.stdout).trim(), "no");

        let list = admin.ok(&[
            "auth",
            "can-i",
            "--list",
            "-n",
            "team-a",
            "--as=system:serviceaccount:pushsync:pushsync-worker",
        ]);
        assert!(list.contains("*.*") && list.contains("[*]"), "{list}");
        assert!(list.contains("[/api/*]"), "{list}");
        assert!(
            list.contains("selfsubjectaccessreviews.authorization.k8s.io"),
            "{list}"
        );
        let elsewhere = admin.ok(&[
            "auth",
            "can-i",
            "--list",
            "-n",
            "team-b",
            "--as=system:serviceaccount:pushsync:pushsync-worker",
        ]);
        assert!(!elsewhere.contains("*.*"), "{elsewhere}");

        let whoami = alice.ok(&["auth", "whoami"]);
        assert!(
            whoami.contains("alice") && whoami.contains("team-a"),
            "{whoami}"
        );

        let denied = alice.run(&["get", "deployments", "-n", "team-b"]);
        assert!(!denied.status.success());
        let stderr = String::from_utf8_lossy(&denied.stderr);
        assert!(
            stderr.contains(r#"Error from server (Forbidden): deployments.apps is forbidden: User "alice" cannot list resource "deployments" in API group "apps" in the namespace "team-b""#),
            "{stderr}"
        );
        assert!(alice.ok(&["get", "deployments", "-n", "team-a"]).is_empty());

        // kubectl's own generators (protobuf bodies), and escalation refused in its words.
        admin.ok(&[
            "create",
            "role",
            "pod-reader",
            "-n",
            "team-a",
            "--verb=get,list",
            "--resource=pods",
        ]);
        admin.ok(&[
            "create",
            "rolebinding",
            "alice-pods",
            "-n",
            "team-a",
            "--role=pod-reader",
            "--user=alice",
        ]);
        assert_eq!(
            alice
                .ok(&["auth", "can-i", "list", "pods", "-n", "team-a"])
                .trim(),
            "yes"
        );
        admin.ok(&[
            "create",
            "clusterrole",
            "binder",
            "--verb=create",
            "--resource=clusterrolebindings",
        ]);
        admin.ok(&[
            "create",
            "clusterrolebinding",
            "alice-binder",
            "--clusterrole=binder",
            "--user=alice",
        ]);
        let escalation = alice.run(&[
            "create",
            "clusterrolebinding",
            "alice-admin",
            "--clusterrole=cluster-admin",
            "--user=alice",
        ]);
        let stderr = String::from_utf8_lossy(&escalation.stderr);
        assert!(
            stderr.contains(r#"clusterrolebindings.rbac.authorization.k8s.io "alice-admin" is forbidden: user "alice" (groups=["team-a" "system:authenticated"]) is attempting to grant RBAC permissions not currently held:"#)
                && stderr.contains(r#"{APIGroups:["*"], Resources:["*"], Verbs:["*"]}"#),
            "{stderr}"
        );

        let unknown = stranger.run(&["get", "namespaces"]);
        let stderr = String::from_utf8_lossy(&unknown.stderr);
        assert!(
            stderr.contains("error: You must be logged in to the server (Unauthorized)"),
            "{stderr}"
        );
    });
}

#[tokio::test]
async fn kubeconfig_file_names_say_nothing_about_the_token() {
    let sandbox = Sandbox::start().await.unwrap();
    let path = sandbox.kubeconfig_as("alice", &[]).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let token = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("token: "))
        .unwrap()
        .trim_matches('"');
    assert!(token.len() > 16, "{token}");
    let name = path.file_name().unwrap().to_str().unwrap();
    assert!(name.starts_with("kubeconfig-alice-"), "{name}");
    let suffix = name.trim_start_matches("kubeconfig-alice-");
    assert!(!token.contains(suffix), "{name} repeats part of the token");
    let again = sandbox.kubeconfig_as("alice", &[]).unwrap();
    assert_ne!(path, again, "each kubeconfig gets its own file");
}
