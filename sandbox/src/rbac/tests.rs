//! Authorization against RBAC objects in a real store: bindings, subjects,
//! aggregation, reasons, escalation and the bootstrap policy.

use serde_json::{Value, json};

use super::escalation::{self, RbacWrite};
use super::{Attributes, GROUP, Mode, authorize, bootstrap, rules_for};
use crate::auth::UserInfo;
use crate::store::{Store, WriteOptions};

/// A store with the bootstrap policy, namespaces `team-a` and `team-b`, and `objects`.
fn store_with(objects: &[Value]) -> Store {
    let store = Store::new();
    bootstrap::seed(&store).unwrap();
    let namespaces = store.resolve("", "v1", "namespaces").unwrap();
    for ns in ["team-a", "team-b"] {
        let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        store
            .create(&namespaces, None, namespace, &WriteOptions::default())
            .unwrap();
    }
    for object in objects {
        let plural = format!("{}s", object["kind"].as_str().unwrap().to_ascii_lowercase());
        let rt = store.resolve(GROUP, "v1", &plural).unwrap();
        let ns = object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str);
        store
            .create(&rt, ns, object.clone(), &WriteOptions::default())
            .unwrap();
    }
    store
}

fn role(kind: &str, namespace: Option<&str>, name: &str, rules: Value) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind,
           "metadata": {"name": name, "namespace": namespace}, "rules": rules})
}

fn binding(
    kind: &str,
    namespace: Option<&str>,
    name: &str,
    role_ref: (&str, &str),
    subjects: Value,
) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind,
           "metadata": {"name": name, "namespace": namespace},
           "roleRef": {"apiGroup": GROUP, "kind": role_ref.0, "name": role_ref.1},
           "subjects": subjects})
}

fn deployer_store() -> Store {
    store_with(&[
        role(
            "Role",
            Some("team-a"),
            "deployer",
            json!([
                {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list", "patch"]},
                {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"], "resourceNames": ["settings"]},
            ]),
        ),
        binding(
            "RoleBinding",
            Some("team-a"),
            "deployer",
            ("Role", "deployer"),
            json!([{"kind": "ServiceAccount", "name": "deployer"}]),
        ),
        binding(
            "RoleBinding",
            Some("team-a"),
            "alice-view",
            ("ClusterRole", "view"),
            json!([{"kind": "User", "name": "alice"}, {"kind": "Group", "name": "auditors"}]),
        ),
        binding(
            "RoleBinding",
            Some("team-b"),
            "broken",
            ("Role", "gone"),
            json!([{"kind": "User", "name": "alice"}]),
        ),
    ])
}

fn allowed(
    store: &Store,
    user: &UserInfo,
    verb: &str,
    group: &str,
    resource: &str,
    ns: &str,
    name: &str,
) -> bool {
    let attrs = Attributes::resource(verb, group, resource, ns, name);
    authorize(Mode::Rbac, store, user, &attrs).allowed
}

#[test]
fn role_bindings_grant_only_in_their_namespace() {
    let store = deployer_store();
    let sa = UserInfo::authenticated("system:serviceaccount:team-a:deployer", &[]);
    assert!(allowed(
        &store,
        &sa,
        "patch",
        "apps",
        "deployments",
        "team-a",
        "web"
    ));
    assert!(!allowed(
        &store,
        &sa,
        "patch",
        "apps",
        "deployments",
        "team-b",
        "web"
    ));
    assert!(!allowed(
        &store,
        &sa,
        "delete",
        "apps",
        "deployments",
        "team-a",
        "web"
    ));
    assert!(
        !allowed(&store, &sa, "list", "apps", "deployments", "", ""),
        "all namespaces needs a cluster binding"
    );
    assert!(allowed(
        &store,
        &sa,
        "get",
        "",
        "configmaps",
        "team-a",
        "settings"
    ));
    assert!(!allowed(
        &store,
        &sa,
        "get",
        "",
        "configmaps",
        "team-a",
        "other"
    ));
    assert!(!allowed(
        &store,
        &sa,
        "list",
        "",
        "configmaps",
        "team-a",
        ""
    ));
    // A ServiceAccount of the same name elsewhere is someone else.
    let other = UserInfo::authenticated("system:serviceaccount:team-b:deployer", &[]);
    assert!(!allowed(
        &store,
        &other,
        "get",
        "apps",
        "deployments",
        "team-a",
        "web"
    ));
}

#[test]
fn users_groups_and_the_aggregated_view_role() {
    let store = deployer_store();
    let alice = UserInfo::authenticated("alice", &[]);
    let auditor = UserInfo::authenticated("carol", &["auditors"]);
    for user in [&alice, &auditor] {
        assert!(allowed(
            &store,
            user,
            "list",
            "apps",
            "deployments",
            "team-a",
            ""
        ));
        assert!(allowed_scale(&store, user), "view reads deployments/scale");
        assert!(
            !allowed(&store, user, "get", "", "secrets", "team-a", "s"),
            "view reads no secrets"
        );
        assert!(!allowed(
            &store,
            user,
            "create",
            "apps",
            "deployments",
            "team-a",
            ""
        ));
    }
    // A ClusterRole labelled to aggregate into view adds to it at once.
    let store = store_with(&[
        binding(
            "RoleBinding",
            Some("team-a"),
            "alice-view",
            ("ClusterRole", "view"),
            json!([{"kind": "User", "name": "alice"}]),
        ),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
               "metadata": {"name": "widgets-view", "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
               "rules": [{"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["get"]}]}),
    ]);
    assert!(allowed(
        &store,
        &alice,
        "get",
        "example.com",
        "widgets",
        "team-a",
        "w"
    ));
}

fn allowed_scale(store: &Store, user: &UserInfo) -> bool {
    let mut attrs = Attributes::resource("get", "apps", "deployments", "team-a", "web");
    attrs.subresource = "scale".into();
    authorize(Mode::Rbac, store, user, &attrs).allowed
}

#[test]
fn reasons_name_the_binding_or_the_missing_role() {
    let store = deployer_store();
    let sa = UserInfo::authenticated("system:serviceaccount:team-a:deployer", &[]);
    let decision = authorize(
        Mode::Rbac,
        &store,
        &sa,
        &Attributes::resource("get", "apps", "deployments", "team-a", "web"),
    );
    assert_eq!(
        decision.reason,
        r#"RBAC: allowed by RoleBinding "deployer/team-a" of Role "deployer" to ServiceAccount "deployer/team-a""#
    );
    let alice = UserInfo::authenticated("alice", &[]);
    let decision = authorize(
        Mode::Rbac,
        &store,
        &alice,
        &Attributes::resource("get", "", "pods", "team-b", "p"),
    );
    assert!(!decision.allowed);
    assert_eq!(
        decision.reason,
        r#"RBAC: role.rbac.authorization.k8s.io "gone" not found"#
    );
}

#[test]
fn masters_and_always_allow_allow_everything() {
    let store = Store::new();
    let master = UserInfo::authenticated("root", &["system:masters"]);
    let nobody = UserInfo::anonymous();
    let attrs = Attributes::resource("delete", "", "namespaces", "", "kube-system");
    assert!(authorize(Mode::Rbac, &store, &master, &attrs).allowed);
    assert!(!authorize(Mode::Rbac, &store, &nobody, &attrs).allowed);
    assert!(authorize(Mode::AlwaysAllow, &store, &nobody, &attrs).allowed);
    let (rules, errors) = rules_for(Mode::AlwaysAllow, &store, &nobody, "default");
    assert_eq!(rules.len(), 2);
    assert!(errors.is_empty());
}

#[test]
fn every_authenticated_user_may_discover_and_review_itself() {
    let store = store_with(&[]);
    let bob = UserInfo::authenticated("bob", &[]);
    let path = |p: &str| Attributes::from_request("GET", p, &Default::default());
    for p in [
        "/api",
        "/api/v1",
        "/apis",
        "/apis/apps/v1",
        "/openapi/v3",
        "/openapi/v3/apis/apps/v1",
        "/version",
    ] {
        assert!(authorize(Mode::Rbac, &store, &bob, &path(p)).allowed, "{p}");
    }
    assert!(!authorize(Mode::Rbac, &store, &bob, &path("/metrics")).allowed);
    let review = Attributes::resource(
        "create",
        "authorization.k8s.io",
        "selfsubjectaccessreviews",
        "",
        "",
    );
    assert!(authorize(Mode::Rbac, &store, &bob, &review).allowed);
    assert!(!authorize(Mode::Rbac, &store, &UserInfo::anonymous(), &review).allowed);
}

fn write<'a>(
    store: &'a Store,
    plural: &str,
    object: &'a Value,
) -> (crate::registry::ResourceType, &'a Value) {
    (store.resolve(GROUP, "v1", plural).unwrap(), object)
}

#[test]
fn roles_may_only_grant_what_the_writer_holds() {
    let store = deployer_store();
    let sa = UserInfo::authenticated("system:serviceaccount:team-a:deployer", &[]);
    let confirm = |object: &Value, namespace: &str| {
        let (rt, object) = write(&store, "roles", object);
        let check = RbacWrite {
            rt: &rt,
            namespace,
            name: "",
            object,
            old: None,
        };
        escalation::confirm(Mode::Rbac, &store, &sa, &check)
    };
    let within = role(
        "Role",
        Some("team-a"),
        "sub",
        json!([
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]}]),
    );
    assert!(confirm(&within, "team-a").is_ok());
    assert!(confirm(&within, "team-b").is_err(), "held in team-a only");
    let beyond = role(
        "Role",
        Some("team-a"),
        "more",
        json!([
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "delete", "create"]},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["*"]}]),
    );
    let error = confirm(&beyond, "team-a").unwrap_err();
    assert_eq!(error.code, 403);
    assert_eq!(
        error.message,
        "roles.rbac.authorization.k8s.io \"more\" is forbidden: user \"system:serviceaccount:team-a:deployer\" \
         (groups=[\"system:serviceaccounts\" \"system:serviceaccounts:team-a\" \"system:authenticated\"]) \
         is attempting to grant RBAC permissions not currently held:\n\
         {APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"*\"]}\n\
         {APIGroups:[\"apps\"], Resources:[\"deployments\"], Verbs:[\"delete\" \"create\"]}"
    );
}

#[test]
fn bindings_need_bind_or_every_permission_of_the_role() {
    let store = store_with(&[
        role(
            "ClusterRole",
            None,
            "binder",
            json!([
            {"apiGroups": [GROUP], "resources": ["clusterroles"], "verbs": ["bind"], "resourceNames": ["edit"]}]),
        ),
        binding(
            "ClusterRoleBinding",
            None,
            "alice-binder",
            ("ClusterRole", "binder"),
            json!([{"kind": "User", "name": "alice"}]),
        ),
    ]);
    let alice = UserInfo::authenticated("alice", &["team-a"]);
    let confirm = |plural: &str, object: &Value, namespace: &str| {
        let (rt, object) = write(&store, plural, object);
        let check = RbacWrite {
            rt: &rt,
            namespace,
            name: "",
            object,
            old: None,
        };
        escalation::confirm(Mode::Rbac, &store, &alice, &check)
    };
    let subjects = json!([{"kind": "User", "name": "alice"}]);
    let edit = binding(
        "RoleBinding",
        Some("team-a"),
        "e",
        ("ClusterRole", "edit"),
        subjects.clone(),
    );
    assert!(confirm("rolebindings", &edit, "team-a").is_ok());
    let admin = binding(
        "ClusterRoleBinding",
        None,
        "x",
        ("ClusterRole", "cluster-admin"),
        subjects.clone(),
    );
    let error = confirm("clusterrolebindings", &admin, "").unwrap_err();
    assert_eq!(
        error.message,
        "clusterrolebindings.rbac.authorization.k8s.io \"x\" is forbidden: user \"alice\" \
         (groups=[\"team-a\" \"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n\
         {APIGroups:[\"*\"], Resources:[\"*\"], Verbs:[\"*\"]}\n{NonResourceURLs:[\"*\"], Verbs:[\"*\"]}"
    );
    let missing = binding(
        "RoleBinding",
        Some("team-a"),
        "m",
        ("Role", "nope"),
        subjects,
    );
    let error = confirm("rolebindings", &missing, "team-a").unwrap_err();
    assert_eq!(
        (error.code, error.message.as_str()),
        (404, r#"role.rbac.authorization.k8s.io "nope" not found"#)
    );
}

#[test]
fn aggregation_rules_need_cluster_admin() {
    let store = store_with(&[
        role(
            "ClusterRole",
            None,
            "role-writer",
            json!([
            {"apiGroups": [GROUP], "resources": ["clusterroles"], "verbs": ["create", "escalate"]}]),
        ),
        binding(
            "ClusterRoleBinding",
            None,
            "w",
            ("ClusterRole", "role-writer"),
            json!([{"kind": "User", "name": "alice"}]),
        ),
    ]);
    let alice = UserInfo::authenticated("alice", &[]);
    let mut aggregated = role("ClusterRole", None, "agg", json!([]));
    aggregated["aggregationRule"] = json!({"clusterRoleSelectors": [{"matchLabels": {"a": "b"}}]});
    let (rt, object) = write(&store, "clusterroles", &aggregated);
    let check = RbacWrite {
        rt: &rt,
        namespace: "",
        name: "",
        object,
        old: None,
    };
    // `escalate` lets alice write any rules, aggregation included.
    assert!(escalation::confirm(Mode::Rbac, &store, &alice, &check).is_ok());
    let bob = UserInfo::authenticated("bob", &[]);
    let error = escalation::confirm(Mode::Rbac, &store, &bob, &check).unwrap_err();
    assert_eq!(
        error.message,
        r#"clusterroles.rbac.authorization.k8s.io "agg" is forbidden: must have cluster-admin privileges to use the aggregationRule"#
    );
}

#[test]
fn rules_reviews_list_what_applies_in_the_namespace() {
    let store = deployer_store();
    let sa = UserInfo::authenticated("system:serviceaccount:team-a:deployer", &[]);
    let (rules, errors) = rules_for(Mode::Rbac, &store, &sa, "team-a");
    assert!(errors.is_empty());
    assert!(rules.iter().any(|r| r.resources == ["deployments"]));
    assert!(
        rules
            .iter()
            .any(|r| r.non_resource_urls.contains(&"/api".to_owned()))
    );
    let (rules, _) = rules_for(Mode::Rbac, &store, &sa, "team-b");
    assert!(!rules.iter().any(|r| r.resources == ["deployments"]));
}

mod malformed;
