//! The bootstrap policy a real API server creates at start, seeded when RBAC
//! is on: `cluster-admin` (bound to `system:masters`), the discovery, basic
//! user and public info roles (bound to every authenticated user), and the
//! user-facing `admin`, `edit` and `view`.
//!
//! `admin`, `edit` and `view` aggregate `system:aggregate-to-*` roles with
//! the real labels, so ClusterRoles labelled `aggregate-to-edit` and the
//! like add to them. Their rules are an **approximation** of the real
//! bootstrap ones, limited to the kinds the sandbox serves (plus the pod
//! subresources of the originals): `view` reads workloads, services,
//! config maps, PVCs, events and namespaces but not Secrets; `edit` adds
//! writes on core, apps, batch, networking, policy and autoscaling kinds and
//! reads Secrets; `admin` adds Roles and RoleBindings.

use serde_json::{Value, json};

use crate::auth::{AUTHENTICATED, MASTERS, UNAUTHENTICATED};
use crate::status::ApiError;
use crate::store::{Store, WriteOptions};

use super::{GROUP, PolicyRule};

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
const AGGREGATE_TO: &str = "rbac.authorization.k8s.io/aggregate-to-";

/// Create the bootstrap ClusterRoles and ClusterRoleBindings.
pub fn seed(store: &Store) -> Result<(), ApiError> {
    let options = WriteOptions {
        manager: "kube-apiserver".to_owned(),
        ..WriteOptions::default()
    };
    let view = view_rules();
    let edit = [edit_rules(), view.clone()].concat();
    let admin = [admin_rules(), edit.clone()].concat();
    let roles = [
        role("cluster-admin", &[], cluster_admin_rules(), None),
        role("system:discovery", &[], discovery_rules(), None),
        role("system:basic-user", &[], basic_user_rules(), None),
        role("system:public-info-viewer", &[], public_info_rules(), None),
        role("system:aggregate-to-view", &["view"], view.clone(), None),
        role("system:aggregate-to-edit", &["edit"], edit_rules(), None),
        role("system:aggregate-to-admin", &["admin"], admin_rules(), None),
        role("view", &["edit"], view, Some("view")),
        role("edit", &["admin"], edit, Some("edit")),
        role("admin", &[], admin, Some("admin")),
    ];
    let bindings = [
        binding("cluster-admin", &[MASTERS]),
        binding("system:discovery", &[AUTHENTICATED]),
        binding("system:basic-user", &[AUTHENTICATED]),
        binding(
            "system:public-info-viewer",
            &[AUTHENTICATED, UNAUTHENTICATED],
        ),
    ];
    for (plural, objects) in [
        ("clusterroles", &roles[..]),
        ("clusterrolebindings", &bindings[..]),
    ] {
        let rt = store
            .resolve(GROUP, "v1", plural)
            .ok_or_else(|| ApiError::internal(format!("{plural}.{GROUP} is not served")))?;
        for object in objects {
            store.create(&rt, None, object.clone(), &options)?;
        }
    }
    Ok(())
}

/// A ClusterRole with the bootstrap label, `aggregate-to-<label>` labels, and
/// an aggregation rule selecting `aggregate-to-<aggregates>` when given.
fn role(name: &str, labels: &[&str], rules: Vec<PolicyRule>, aggregates: Option<&str>) -> Value {
    let mut object = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
        },
        "rules": rules,
    });
    for label in labels {
        object["metadata"]["labels"][format!("{AGGREGATE_TO}{label}")] = json!("true");
    }
    if let Some(target) = aggregates {
        object["aggregationRule"] = json!({
            "clusterRoleSelectors": [{"matchLabels": {format!("{AGGREGATE_TO}{target}"): "true"}}],
        });
    }
    object
}

/// A ClusterRoleBinding of the ClusterRole `name` to `groups`.
fn binding(name: &str, groups: &[&str]) -> Value {
    let subjects: Vec<Value> = groups
        .iter()
        .map(|g| json!({"kind": "Group", "apiGroup": GROUP, "name": g}))
        .collect();
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
        },
        "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": name},
        "subjects": subjects,
    })
}

fn cluster_admin_rules() -> Vec<PolicyRule> {
    vec![
        PolicyRule::resource(&["*"], &["*"], &["*"]),
        PolicyRule::urls(&["*"], &["*"]),
    ]
}

fn discovery_rules() -> Vec<PolicyRule> {
    vec![PolicyRule::urls(
        &["get"],
        &[
            "/api",
            "/api/*",
            "/apis",
            "/apis/*",
            "/healthz",
            "/livez",
            "/openapi",
            "/openapi/*",
            "/readyz",
            "/version",
            "/version/",
        ],
    )]
}

fn basic_user_rules() -> Vec<PolicyRule> {
    vec![
        PolicyRule::resource(
            &["create"],
            &["authorization.k8s.io"],
            &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
        ),
        PolicyRule::resource(
            &["create"],
            &["authentication.k8s.io"],
            &["selfsubjectreviews"],
        ),
    ]
}

fn public_info_rules() -> Vec<PolicyRule> {
    vec![PolicyRule::urls(
        &["get"],
        &["/healthz", "/livez", "/readyz", "/version", "/version/"],
    )]
}

fn view_rules() -> Vec<PolicyRule> {
    vec![
        PolicyRule::resource(
            READ,
            &[""],
            &[
                "configmaps",
                "endpoints",
                "persistentvolumeclaims",
                "persistentvolumeclaims/status",
                "pods",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "serviceaccounts",
                "services",
                "services/status",
            ],
        ),
        PolicyRule::resource(
            READ,
            &[""],
            &[
                "bindings",
                "events",
                "limitranges",
                "namespaces/status",
                "pods/log",
                "pods/status",
                "replicationcontrollers/status",
                "resourcequotas",
                "resourcequotas/status",
            ],
        ),
        PolicyRule::resource(READ, &[""], &["namespaces"]),
        PolicyRule::resource(
            READ,
            &["apps"],
            &[
                "controllerrevisions",
                "daemonsets",
                "daemonsets/status",
                "deployments",
                "deployments/scale",
                "deployments/status",
                "replicasets",
                "replicasets/scale",
                "replicasets/status",
                "statefulsets",
                "statefulsets/scale",
                "statefulsets/status",
            ],
        ),
        PolicyRule::resource(
            READ,
            &["autoscaling"],
            &[
                "horizontalpodautoscalers",
                "horizontalpodautoscalers/status",
            ],
        ),
        PolicyRule::resource(
            READ,
            &["batch"],
            &["cronjobs", "cronjobs/status", "jobs", "jobs/status"],
        ),
        PolicyRule::resource(
            READ,
            &["policy"],
            &["poddisruptionbudgets", "poddisruptionbudgets/status"],
        ),
        PolicyRule::resource(
            READ,
            &["networking.k8s.io"],
            &["ingresses", "ingresses/status", "networkpolicies"],
        ),
    ]
}

fn edit_rules() -> Vec<PolicyRule> {
    vec![
        PolicyRule::resource(&["impersonate"], &[""], &["serviceaccounts"]),
        PolicyRule::resource(
            WRITE,
            &[""],
            &[
                "pods",
                "pods/attach",
                "pods/exec",
                "pods/portforward",
                "pods/proxy",
            ],
        ),
        PolicyRule::resource(&["create"], &[""], &["pods/eviction"]),
        PolicyRule::resource(
            WRITE,
            &[""],
            &[
                "configmaps",
                "events",
                "persistentvolumeclaims",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "secrets",
                "serviceaccounts",
                "services",
                "services/proxy",
            ],
        ),
        PolicyRule::resource(&["create"], &[""], &["serviceaccounts/token"]),
        PolicyRule::resource(
            WRITE,
            &["apps"],
            &[
                "daemonsets",
                "deployments",
                "deployments/rollback",
                "deployments/scale",
                "replicasets",
                "replicasets/scale",
                "statefulsets",
                "statefulsets/scale",
            ],
        ),
        PolicyRule::resource(WRITE, &["autoscaling"], &["horizontalpodautoscalers"]),
        PolicyRule::resource(WRITE, &["batch"], &["cronjobs", "jobs"]),
        PolicyRule::resource(
            WRITE,
            &["networking.k8s.io"],
            &["ingresses", "networkpolicies"],
        ),
        PolicyRule::resource(WRITE, &["policy"], &["poddisruptionbudgets"]),
        PolicyRule::resource(
            READ,
            &[""],
            &[
                "pods/attach",
                "pods/exec",
                "pods/portforward",
                "pods/proxy",
                "secrets",
                "services/proxy",
            ],
        ),
    ]
}

fn admin_rules() -> Vec<PolicyRule> {
    let mut read_write = READ.to_vec();
    read_write.extend_from_slice(WRITE);
    vec![
        PolicyRule::resource(
            &["create"],
            &["authorization.k8s.io"],
            &["localsubjectaccessreviews"],
        ),
        PolicyRule::resource(&read_write, &[GROUP], &["rolebindings", "roles"]),
    ]
}
