//! Authentication, RBAC, impersonation and escalation prevention through the
//! `kube` crate, as multi-tenancy tests see them.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authorization::v1::{SelfSubjectAccessReview, SelfSubjectRulesReview};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use pushsync_sandbox::{Sandbox, SandboxConfig};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

const DEPLOYER: &str = "system:serviceaccount:team-a:deployer";

fn typed<T: DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).unwrap()
}

fn deployment(name: &str) -> Deployment {
    typed(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "app", "image": "nginx"}]}}
        }
    }))
}

fn role(namespace: &str, name: &str, rules: Value) -> Role {
    typed(json!({"metadata": {"name": name, "namespace": namespace}, "rules": rules}))
}

fn binding(namespace: &str, name: &str, kind: &str, role: &str, subjects: Value) -> RoleBinding {
    typed(json!({
        "metadata": {"name": name, "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
        "subjects": subjects,
    }))
}

fn client_as(sandbox: &Sandbox, user: &str, groups: &[&str]) -> Client {
    Client::try_from(sandbox.config_as(user, groups)).unwrap()
}

/// The API status of a failed call.
#[track_caller]
fn status<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> (u16, String) {
    match result {
        Err(kube::Error::Api(status)) => (status.code, status.message),
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// An RBAC sandbox with namespaces `team-a` and `team-b`, a Deployment `web`
/// in each, a `deployer` Role in team-a bound to the team-a `deployer`
/// ServiceAccount, and `alice` (group `team-a`) a viewer of team-a.
async fn tenants() -> Sandbox {
    let sandbox = Sandbox::start_with(SandboxConfig {
        rbac: true,
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let admin = sandbox.client();
    let pp = PostParams::default();
    for ns in ["team-a", "team-b"] {
        let namespace: Namespace = typed(json!({"metadata": {"name": ns}}));
        Api::<Namespace>::all(admin.clone())
            .create(&pp, &namespace)
            .await
            .unwrap();
        Api::<Deployment>::namespaced(admin.clone(), ns)
            .create(&pp, &deployment("web"))
            .await
            .unwrap();
    }
    let deployer = role(
        "team-a",
        "deployer",
        json!([
            {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list", "watch", "create", "patch"]},
            {"apiGroups": ["apps"], "resources": ["deployments/scale"], "verbs": ["get"]},
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "update"], "resourceNames": ["settings"]},
        ]),
    );
    Api::<Role>::namespaced(admin.clone(), "team-a")
        .create(&pp, &deployer)
        .await
        .unwrap();
    let bindings = Api::<RoleBinding>::namespaced(admin.clone(), "team-a");
    let sa = json!([{"kind": "ServiceAccount", "name": "deployer", "namespace": "team-a"}]);
    bindings
        .create(&pp, &binding("team-a", "deployer", "Role", "deployer", sa))
        .await
        .unwrap();
    let group =
        json!([{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "team-a"}]);
    bindings
        .create(
            &pp,
            &binding("team-a", "team-a-view", "ClusterRole", "view", group),
        )
        .await
        .unwrap();
    sandbox
}

#[tokio::test]
async fn requests_without_a_known_token_are_unauthorized_when_rbac_is_on() {
    let sandbox = tenants().await;
    let mut config = sandbox.config();
    config.auth_info.token = None;
    let anonymous = Client::try_from(config.clone()).unwrap();
    let (code, message) = status(
        Api::<Namespace>::all(anonymous)
            .list(&ListParams::default())
            .await,
    );
    assert_eq!((code, message.as_str()), (401, "Unauthorized"));
    config.auth_info.token = Some("not-a-token".to_owned().into());
    let forged = Client::try_from(config).unwrap();
    assert_eq!(status(forged.apiserver_version().await).0, 401);
    // Health and version need no credentials.
    let mut bare = sandbox.config();
    bare.auth_info.token = None;
    let bare = Client::try_from(bare).unwrap();
    assert!(bare.apiserver_version().await.is_ok());
}

#[tokio::test]
async fn rbac_allows_and_denies_per_verb_namespace_name_and_subresource() {
    let sandbox = tenants().await;
    let sa = client_as(&sandbox, DEPLOYER, &[]);
    let team_a = Api::<Deployment>::namespaced(sa.clone(), "team-a");
    assert_eq!(
        team_a
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    let patch = Patch::Merge(json!({"spec": {"replicas": 2}}));
    team_a
        .patch("web", &PatchParams::default(), &patch)
        .await
        .unwrap();
    team_a.get_scale("web").await.unwrap();

    let (code, message) = status(
        Api::<Deployment>::namespaced(sa.clone(), "team-b")
            .list(&ListParams::default())
            .await,
    );
    assert_eq!(code, 403);
    assert_eq!(
        message,
        r#"deployments.apps is forbidden: User "system:serviceaccount:team-a:deployer" cannot list resource "deployments" in API group "apps" in the namespace "team-b""#
    );
    let (code, message) = status(team_a.delete("web", &DeleteParams::default()).await);
    assert_eq!(code, 403);
    assert_eq!(
        message,
        r#"deployments.apps "web" is forbidden: User "system:serviceaccount:team-a:deployer" cannot delete resource "deployments" in API group "apps" in the namespace "team-a""#
    );
    let (_, message) = status(team_a.get_status("web").await);
    assert!(
        message.contains(r#"cannot get resource "deployments/status""#),
        "{message}"
    );
    let (_, message) = status(
        team_a
            .patch_scale("web", &PatchParams::default(), &patch)
            .await,
    );
    assert!(
        message.contains(r#"cannot patch resource "deployments/scale""#),
        "{message}"
    );

    // resourceNames: the named object only, and never a list.
    let config_maps = Api::<ConfigMap>::namespaced(sa.clone(), "team-a");
    assert_eq!(
        status(config_maps.get("settings").await).0,
        404,
        "allowed, then not found"
    );
    assert_eq!(status(config_maps.get("other").await).0, 403);
    assert_eq!(
        status(config_maps.list(&ListParams::default()).await).0,
        403
    );
    let one = ListParams::default().fields("metadata.name=settings");
    assert!(
        config_maps.list(&one).await.is_ok(),
        "a list of the one name is allowed"
    );

    let (code, message) = status(
        Api::<ClusterRoleBinding>::all(sa)
            .create(&PostParams::default(), &typed(json!({"metadata": {"name": "x"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"}})))
            .await,
    );
    assert_eq!(code, 403);
    assert_eq!(
        message,
        r#"clusterrolebindings.rbac.authorization.k8s.io is forbidden: User "system:serviceaccount:team-a:deployer" cannot create resource "clusterrolebindings" in API group "rbac.authorization.k8s.io" at the cluster scope"#
    );

    // A group binding to the aggregated `view` role: read, never write, never secrets.
    let alice = client_as(&sandbox, "alice", &["team-a"]);
    Api::<Deployment>::namespaced(alice.clone(), "team-a")
        .get("web")
        .await
        .unwrap();
    Api::<Namespace>::all(alice.clone())
        .get("team-a")
        .await
        .unwrap();
    assert_eq!(
        status(Api::<Namespace>::all(alice.clone()).get("team-b").await).0,
        403
    );
    let (_, message) = status(
        Api::<Deployment>::namespaced(alice, "team-a")
            .create(&PostParams::default(), &deployment("new"))
            .await,
    );
    assert_eq!(
        message,
        r#"deployments.apps is forbidden: User "alice" cannot create resource "deployments" in API group "apps" in the namespace "team-a""#
    );
}

#[tokio::test]
async fn impersonation_needs_the_impersonate_verb_and_acts_as_the_target() {
    let sandbox = tenants().await;
    // The admin (system:masters) may impersonate anyone.
    let mut config = sandbox.config();
    config.auth_info.impersonate = Some(DEPLOYER.to_owned());
    let as_deployer = Client::try_from(config).unwrap();
    Api::<Deployment>::namespaced(as_deployer.clone(), "team-a")
        .get("web")
        .await
        .unwrap();
    assert_eq!(
        status(
            Api::<Deployment>::namespaced(as_deployer, "team-b")
                .get("web")
                .await
        )
        .0,
        403
    );

    let mut config = sandbox.config_as("alice", &[]);
    config.auth_info.impersonate = Some("bob".to_owned());
    let alice_as_bob = Client::try_from(config.clone()).unwrap();
    let (code, message) = status(
        Api::<Deployment>::namespaced(alice_as_bob.clone(), "team-a")
            .get("web")
            .await,
    );
    assert_eq!(code, 403);
    assert_eq!(
        message,
        r#"users "bob" is forbidden: User "alice" cannot impersonate resource "users" in API group "" at the cluster scope"#
    );

    let admin = sandbox.client();
    let impersonator: ClusterRole = typed(json!({
        "metadata": {"name": "impersonate-bob"},
        "rules": [{"apiGroups": [""], "resources": ["users"], "verbs": ["impersonate"], "resourceNames": ["bob"]}],
    }));
    Api::<ClusterRole>::all(admin.clone())
        .create(&PostParams::default(), &impersonator)
        .await
        .unwrap();
    let grant: ClusterRoleBinding = typed(json!({
        "metadata": {"name": "alice-impersonates-bob"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "impersonate-bob"},
        "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"}],
    }));
    Api::<ClusterRoleBinding>::all(admin)
        .create(&PostParams::default(), &grant)
        .await
        .unwrap();
    // Now alice acts as bob, who may do nothing in team-a: the 403 names bob.
    let (_, message) = status(
        Api::<Deployment>::namespaced(alice_as_bob, "team-a")
            .get("web")
            .await,
    );
    assert!(
        message.contains(r#"User "bob" cannot get resource "deployments""#),
        "{message}"
    );
    // Groups need their own grant.
    config.auth_info.impersonate_groups = Some(vec!["team-a".to_owned()]);
    let with_group = Client::try_from(config).unwrap();
    let (_, message) = status(
        Api::<Deployment>::namespaced(with_group, "team-a")
            .get("web")
            .await,
    );
    assert_eq!(
        message,
        r#"groups "team-a" is forbidden: User "alice" cannot impersonate resource "groups" in API group "" at the cluster scope"#
    );

    let audit = sandbox.audit();
    let entry = audit
        .iter()
        .rev()
        .find(|e| e.user == "bob")
        .expect("bob's request is audited");
    assert_eq!(entry.impersonator.as_deref(), Some("alice"));
    assert_eq!(entry.status, 403);
    assert!(
        audit
            .iter()
            .any(|e| e.user == "sandbox-admin" && e.status == 201)
    );
}

#[tokio::test]
async fn writing_roles_and_bindings_cannot_escalate_without_bind_or_escalate() {
    let sandbox = tenants().await;
    let admin = sandbox.client();
    let pp = PostParams::default();
    // alice may manage RBAC objects in team-a, and may deploy there.
    let manager = role(
        "team-a",
        "rbac-manager",
        json!([
            {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings"], "verbs": ["create", "update", "patch", "get"]},
            {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list"]},
        ]),
    );
    Api::<Role>::namespaced(admin.clone(), "team-a")
        .create(&pp, &manager)
        .await
        .unwrap();
    let alice_subject =
        json!([{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"}]);
    Api::<RoleBinding>::namespaced(admin.clone(), "team-a")
        .create(
            &pp,
            &binding(
                "team-a",
                "alice-rbac",
                "Role",
                "rbac-manager",
                alice_subject.clone(),
            ),
        )
        .await
        .unwrap();
    let alice = client_as(&sandbox, "alice", &[]);
    let roles = Api::<Role>::namespaced(alice.clone(), "team-a");

    roles
        .create(
            &pp,
            &role(
                "team-a",
                "reader",
                json!([{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]}]),
            ),
        )
        .await
        .unwrap();
    let greedy = role(
        "team-a",
        "greedy",
        json!([{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "delete"]}]),
    );
    let (code, message) = status(roles.create(&pp, &greedy).await);
    assert_eq!(code, 403);
    assert_eq!(
        message,
        "roles.rbac.authorization.k8s.io \"greedy\" is forbidden: user \"alice\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"apps\"], Resources:[\"deployments\"], Verbs:[\"delete\"]}"
    );
    // Server-side apply is checked on the object it would produce (forced,
    // since field conflicts are answered first, as in the real server).
    let apply = PatchParams::apply("alice").force();
    let escalating = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "reader", "namespace": "team-a"},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]});
    assert_eq!(
        status(
            roles
                .patch("reader", &apply, &Patch::Apply(&escalating))
                .await
        )
        .0,
        403
    );

    let bindings = Api::<RoleBinding>::namespaced(alice.clone(), "team-a");
    let to_admin = binding(
        "team-a",
        "alice-admin",
        "ClusterRole",
        "admin",
        alice_subject.clone(),
    );
    let (code, message) = status(bindings.create(&pp, &to_admin).await);
    assert_eq!(code, 403);
    assert!(
        message.starts_with(
            r#"rolebindings.rbac.authorization.k8s.io "alice-admin" is forbidden: user "alice""#
        ),
        "{message}"
    );
    bindings
        .create(
            &pp,
            &binding("team-a", "reader", "Role", "reader", alice_subject.clone()),
        )
        .await
        .unwrap();

    // `escalate` on roles and `bind` on the admin ClusterRole lift the limits.
    let lift = role(
        "team-a",
        "lift",
        json!([
            {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["escalate"]},
            {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "verbs": ["bind"], "resourceNames": ["admin"]},
        ]),
    );
    Api::<Role>::namespaced(admin.clone(), "team-a")
        .create(&pp, &lift)
        .await
        .unwrap();
    Api::<RoleBinding>::namespaced(admin, "team-a")
        .create(
            &pp,
            &binding("team-a", "alice-lift", "Role", "lift", alice_subject),
        )
        .await
        .unwrap();
    roles.create(&pp, &greedy).await.unwrap();
    roles
        .patch("reader", &apply, &Patch::Apply(&escalating))
        .await
        .unwrap();
    bindings.create(&pp, &to_admin).await.unwrap();
    // With admin in team-a, alice may now delete there, and still nowhere else.
    Api::<Deployment>::namespaced(alice.clone(), "team-a")
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(
        status(
            Api::<Deployment>::namespaced(alice, "team-b")
                .delete("web", &DeleteParams::default())
                .await
        )
        .0,
        403
    );
}

#[tokio::test]
async fn self_reviews_answer_for_the_requester() {
    let sandbox = tenants().await;
    let sa = client_as(&sandbox, DEPLOYER, &[]);
    let reviews = Api::<SelfSubjectAccessReview>::all(sa.clone());
    let ask = |verb: &str, namespace: &str| -> SelfSubjectAccessReview {
        typed(
            json!({"spec": {"resourceAttributes": {"verb": verb, "group": "apps", "resource": "deployments", "namespace": namespace}}}),
        )
    };
    let yes = reviews
        .create(&PostParams::default(), &ask("create", "team-a"))
        .await
        .unwrap();
    let status = yes.status.unwrap();
    assert!(status.allowed);
    assert_eq!(
        status.reason.as_deref(),
        Some(
            r#"RBAC: allowed by RoleBinding "deployer/team-a" of Role "deployer" to ServiceAccount "deployer/team-a""#
        )
    );
    let no = reviews
        .create(&PostParams::default(), &ask("create", "team-b"))
        .await
        .unwrap();
    assert!(!no.status.unwrap().allowed);

    let rules: SelfSubjectRulesReview = typed(json!({"spec": {"namespace": "team-a"}}));
    let answer = Api::<SelfSubjectRulesReview>::all(sa)
        .create(&PostParams::default(), &rules)
        .await
        .unwrap()
        .status
        .unwrap();
    assert!(!answer.incomplete);
    assert!(
        answer
            .resource_rules
            .iter()
            .any(|r| r.resources.as_deref() == Some(&["deployments".to_owned()][..]))
    );
    assert!(answer.non_resource_rules.iter().any(|r| {
        r.non_resource_urls
            .as_deref()
            .is_some_and(|u| u.contains(&"/api".to_owned()))
    }));
    let audit = sandbox.audit();
    let review = audit
        .iter()
        .find(|e| e.path.ends_with("/selfsubjectaccessreviews"))
        .unwrap();
    assert_eq!(
        (review.verb.as_str(), review.user.as_str()),
        ("create", DEPLOYER)
    );
    assert!(!review.is_write(), "reviews store nothing");
}

#[tokio::test]
async fn with_rbac_off_everyone_may_do_everything() {
    let sandbox = Sandbox::start().await.unwrap();
    let mut config = sandbox.config();
    config.auth_info.token = None;
    let anonymous = Client::try_from(config).unwrap();
    let pp = PostParams::default();
    Api::<Deployment>::namespaced(anonymous, "default")
        .create(&pp, &deployment("web"))
        .await
        .unwrap();
    let nobody = client_as(&sandbox, "nobody", &[]);
    Api::<Deployment>::namespaced(nobody.clone(), "default")
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    let greedy: ClusterRoleBinding = typed(json!({
        "metadata": {"name": "me"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "User", "name": "nobody"}],
    }));
    Api::<ClusterRoleBinding>::all(nobody.clone())
        .create(&pp, &greedy)
        .await
        .unwrap();
    let mut config = sandbox.config_as("nobody", &[]);
    config.auth_info.impersonate = Some("anyone".to_owned());
    let impersonating = Client::try_from(config).unwrap();
    Api::<Namespace>::all(impersonating)
        .list(&ListParams::default())
        .await
        .unwrap();
    let audit = sandbox.audit();
    assert!(
        audit
            .iter()
            .any(|e| e.user == "system:anonymous" && e.verb == "create")
    );
    assert!(
        audit
            .iter()
            .any(|e| e.user == "anyone" && e.impersonator.as_deref() == Some("nobody"))
    );
}

#[tokio::test]
async fn kubeconfigs_of_an_rbac_sandbox_authenticate_over_tls() {
    let sandbox = tenants().await;
    assert!(sandbox.kubectl_url().starts_with("https://127.0.0.1:"));
    let path = sandbox.kubeconfig_as(DEPLOYER, &[]).unwrap();
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    let client = Client::try_from(config).unwrap();
    Api::<Deployment>::namespaced(client.clone(), "team-a")
        .get("web")
        .await
        .unwrap();
    assert_eq!(
        status(
            Api::<Deployment>::namespaced(client, "team-b")
                .get("web")
                .await
        )
        .0,
        403
    );
    let audit = sandbox.audit();
    assert!(audit.iter().any(|e| e.user == DEPLOYER && e.status == 403));
}
