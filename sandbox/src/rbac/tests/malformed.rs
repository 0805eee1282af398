//! Policies that are malformed or go round in circles: rules that do not
//! read (refused, never a way past escalation prevention) and aggregated
//! ClusterRoles that select each other.

use super::*;
use crate::store::PatchKind;

/// A Role in team-a with `rules`, bound to `mallory`: the attacker of the
/// escalation tests, who may read secrets and write Roles there.
fn mallory_store() -> Store {
    store_with(&[
        role(
            "Role",
            Some("team-a"),
            "secrets-and-roles",
            json!([
                {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]},
                {"apiGroups": [GROUP], "resources": ["roles"], "verbs": ["create", "update", "patch"]},
            ]),
        ),
        binding(
            "RoleBinding",
            Some("team-a"),
            "mallory",
            ("Role", "secrets-and-roles"),
            json!([{"kind": "User", "name": "mallory"}]),
        ),
    ])
}

#[test]
fn a_malformed_rule_cannot_hide_an_escalation() {
    let store = mallory_store();
    let mallory = UserInfo::authenticated("mallory", &[]);
    let confirm = |rules: Value| {
        let object = role("Role", Some("team-a"), "more", rules);
        let (rt, object) = write(&store, "roles", &object);
        let check = RbacWrite {
            rt: &rt,
            namespace: "team-a",
            name: "",
            object,
            old: None,
        };
        escalation::confirm(Mode::Rbac, &store, &mallory, &check)
    };
    let all_secrets = json!({"apiGroups": [""], "resources": ["secrets"], "verbs": ["*"]});
    assert_eq!(confirm(json!([all_secrets])).unwrap_err().code, 403);
    // The rule that does not read used to empty the whole list the check saw.
    let hidden = confirm(json!([all_secrets, {"verbs": "get"}])).unwrap_err();
    assert_eq!(hidden.code, 422, "{}", hidden.message);
    assert!(hidden.message.contains("rules[1]"), "{}", hidden.message);
    let held = json!({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]});
    assert!(confirm(json!([held])).is_ok());
}

#[test]
fn roles_whose_rules_do_not_read_are_never_stored() {
    let store = mallory_store();
    let rt = store.resolve(GROUP, "v1", "roles").unwrap();
    let options = WriteOptions::default();
    let malformed =
        json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["*"]}, {"verbs": "get"}]);
    let bad = role("Role", Some("team-a"), "bad", malformed.clone());
    let error = store
        .create(&rt, Some("team-a"), bad.clone(), &options)
        .unwrap_err();
    assert_eq!(error.code, 400);
    assert!(
        error.message.starts_with(
            r#"Role in version "v1" cannot be handled as a Role: rules[1]: invalid type"#
        ),
        "{}",
        error.message
    );
    let existing = "secrets-and-roles";
    let mut replaced = store.get(&rt, Some("team-a"), existing).unwrap();
    replaced["rules"] = malformed.clone();
    let update = store.update(&rt, Some("team-a"), existing, replaced, &options);
    assert_eq!(update.unwrap_err().code, 400);
    let patch = |kind, patch| store.patch(&rt, Some("team-a"), existing, kind, patch, &options);
    let merge = patch(PatchKind::Merge, json!({"rules": malformed.clone()}));
    assert_eq!(merge.unwrap_err().code, 422);
    let mut applied = role("Role", Some("team-a"), existing, malformed);
    applied["rules"][0] = json!("not a rule");
    let apply = store.patch(
        &rt,
        Some("team-a"),
        existing,
        PatchKind::Apply,
        applied.clone(),
        &WriteOptions {
            manager: "mallory".into(),
            force: true,
            ..WriteOptions::default()
        },
    );
    assert_eq!(apply.unwrap_err().code, 422);
    let created_by_apply = store.patch(&rt, Some("team-a"), "bad", PatchKind::Apply, bad, &options);
    assert_eq!(created_by_apply.unwrap_err().code, 422);
    assert!(store.get(&rt, Some("team-a"), "bad").is_err());
    let stored = store.get(&rt, Some("team-a"), existing).unwrap();
    assert_eq!(stored["rules"][0]["verbs"], json!(["get", "list"]));
}

#[test]
fn aggregated_roles_that_select_each_other_are_expanded_once() {
    // A ring of aggregated ClusterRoles that all select one another, and one
    // plain role they all also select.
    let ring = 16;
    let mut objects: Vec<Value> = (0..ring)
        .map(|i| {
            let mut role = role(
                "ClusterRole",
                None,
                &format!("ring-{i}"),
                json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["delete"]}]),
            );
            role["metadata"]["labels"] = json!({"ring": "yes"});
            role["aggregationRule"] =
                json!({"clusterRoleSelectors": [{"matchLabels": {"ring": "yes"}}]});
            role
        })
        .collect();
    let mut pods = role(
        "ClusterRole",
        None,
        "pods",
        json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]),
    );
    pods["metadata"]["labels"] = json!({"ring": "yes"});
    objects.push(pods);
    objects.push(binding(
        "ClusterRoleBinding",
        None,
        "ring",
        ("ClusterRole", "ring-0"),
        json!([{"kind": "User", "name": "alice"}]),
    ));
    let store = store_with(&objects);
    let alice = UserInfo::authenticated("alice", &[]);
    let started = std::time::Instant::now();
    assert!(allowed(&store, &alice, "get", "", "pods", "team-a", "p"));
    // An aggregated role's own rules are replaced by what it aggregates,
    // also when the walk comes back round to it.
    assert!(!allowed(
        &store, &alice, "delete", "", "secrets", "team-a", "s"
    ));
    let (rules, errors) = rules_for(Mode::Rbac, &store, &alice, "team-a");
    assert!(errors.is_empty());
    assert!(rules.iter().any(|r| r.resources == ["pods"]));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
}
