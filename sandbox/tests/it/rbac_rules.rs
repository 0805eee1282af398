//! Roles whose rules do not read, over the wire: refused before anything
//! is stored, so a malformed rule cannot hide an escalation from the check
//! that reads the same rules as the authorizer.

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use pushsync_sandbox::{Sandbox, SandboxConfig};
use serde_json::{Value, json};

/// The API status code and message of a failed call.
#[track_caller]
fn status<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> (u16, String) {
    match result {
        Err(kube::Error::Api(status)) => (status.code, status.message),
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn role(name: &str, rules: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": name, "namespace": "team-a"},
        "rules": rules,
    }))
    .unwrap()
}

/// An RBAC sandbox where `mallory` may read secrets and write Roles in team-a.
async fn sandbox_with_mallory() -> (Sandbox, Client) {
    let sandbox = Sandbox::start_with(SandboxConfig {
        rbac: true,
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let admin = sandbox.client();
    let pp = PostParams::default();
    let namespace: Namespace =
        serde_json::from_value(json!({"metadata": {"name": "team-a"}})).unwrap();
    Api::<Namespace>::all(admin.clone())
        .create(&pp, &namespace)
        .await
        .unwrap();
    let rights: Role = serde_json::from_value(json!({
        "metadata": {"name": "mallory", "namespace": "team-a"},
        "rules": [
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]},
            {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["get", "create", "patch"]},
        ],
    }))
    .unwrap();
    Api::<Role>::namespaced(admin.clone(), "team-a")
        .create(&pp, &rights)
        .await
        .unwrap();
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "mallory", "namespace": "team-a"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "mallory"},
        "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "mallory"}],
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(admin, "team-a")
        .create(&pp, &binding)
        .await
        .unwrap();
    let mallory = Client::try_from(sandbox.config_as("mallory", &[])).unwrap();
    (sandbox, mallory)
}

#[tokio::test]
async fn a_malformed_rule_cannot_smuggle_an_escalating_role_in() {
    let (sandbox, mallory) = sandbox_with_mallory().await;
    let resource = ApiResource::erase::<Role>(&());
    let roles: Api<DynamicObject> = Api::namespaced_with(mallory, "team-a", &resource);
    let pp = PostParams::default();
    let all_secrets = json!({"apiGroups": [""], "resources": ["secrets"], "verbs": ["*"]});
    let (code, _) = status(roles.create(&pp, &role("more", json!([all_secrets]))).await);
    assert_eq!(code, 403, "the plain escalation is refused");

    let hidden = json!([all_secrets, {"verbs": "get"}]);
    let (code, message) = status(roles.create(&pp, &role("more", hidden.clone())).await);
    assert_eq!(code, 400, "{message}");
    assert!(
        message.starts_with(r#"Role in version "v1" cannot be handled as a Role: rules[1]: "#),
        "{message}"
    );
    let held = json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]);
    roles.create(&pp, &role("reader", held)).await.unwrap();
    let patched = roles
        .patch(
            "reader",
            &PatchParams::default(),
            &Patch::Merge(json!({"rules": hidden})),
        )
        .await;
    let (code, message) = status(patched);
    assert_eq!(code, 422, "{message}");

    let admin: Api<DynamicObject> = Api::namespaced_with(sandbox.client(), "team-a", &resource);
    assert_eq!(status(admin.get("more").await).0, 404);
    let reader = admin.get("reader").await.unwrap();
    assert_eq!(reader.data["rules"][0]["verbs"], json!(["get"]));
}
