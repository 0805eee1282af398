use serde_json::json;

use super::*;

fn deploy() -> Node<'static> {
    crate::schema::builtin().kind("apps", "v1", "Deployment")
}

fn deployment(image: &str, replicas: Option<i64>) -> Value {
    let mut d = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                {"name": "app", "image": image, "ports": [{"containerPort": 80}], "args": ["a", "b"]}
            ]}}
        }
    });
    if let Some(r) = replicas {
        d["spec"]["replicas"] = json!(r);
    }
    d
}

const NOW: &str = "2026-11-23T00:00:00Z";

#[test]
fn field_sets_round_trip_through_fields_v1() {
    let set = field_set(&deployment("nginx:1", Some(2)), deploy());
    let tree = to_fields_v1(&set);
    assert_eq!(from_fields_v1(&tree), set);
    let containers = &tree["f:spec"]["f:template"]["f:spec"]["f:containers"];
    let item = &containers[r#"k:{"name":"app"}"#];
    assert!(item.get(".").is_some(), "{tree}");
    assert!(
        item["f:ports"][r#"k:{"containerPort":80,"protocol":"TCP"}"#]
            .get(".")
            .is_some(),
        "{tree}"
    );
    // Atomic lists are owned whole; identity fields are not owned.
    assert_eq!(item["f:args"], json!({}));
    assert!(tree["f:metadata"].get("f:name").is_none());
    assert!(tree.get("f:apiVersion").is_none());
}

#[test]
fn reapplying_without_a_field_removes_it() {
    let first = apply(
        deploy(),
        None,
        &deployment("nginx:1", Some(3)),
        "mgr",
        "apps/v1",
        "",
        false,
        NOW,
    )
    .unwrap();
    assert_eq!(first["spec"]["replicas"], 3);
    let second = apply(
        deploy(),
        Some(&first),
        &deployment("nginx:2", None),
        "mgr",
        "apps/v1",
        "",
        false,
        NOW,
    )
    .unwrap();
    assert!(second["spec"].get("replicas").is_none(), "{second}");
    assert_eq!(
        second["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:2"
    );
}

#[test]
fn another_managers_field_conflicts_unless_forced() {
    let first = apply(
        deploy(),
        None,
        &deployment("nginx:1", Some(3)),
        "alice",
        "apps/v1",
        "",
        false,
        NOW,
    )
    .unwrap();
    let conflicts = apply(
        deploy(),
        Some(&first),
        &deployment("nginx:1", Some(5)),
        "bob",
        "apps/v1",
        "",
        false,
        NOW,
    )
    .unwrap_err();
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0].manager, "alice");
    assert_eq!(display_path(&conflicts[0].path), ".spec.replicas");

    // Same value: shared ownership, no conflict.
    let shared = apply(
        deploy(),
        Some(&first),
        &deployment("nginx:1", Some(3)),
        "bob",
        "apps/v1",
        "",
        false,
        NOW,
    )
    .unwrap();
    assert_eq!(entries(&shared).len(), 2);

    let forced = apply(
        deploy(),
        Some(&first),
        &deployment("nginx:1", Some(5)),
        "bob",
        "apps/v1",
        "",
        true,
        NOW,
    )
    .unwrap();
    assert_eq!(forced["spec"]["replicas"], 5);
    let alice = entries(&forced)
        .into_iter()
        .find(|e| e.manager == "alice")
        .unwrap();
    assert!(!alice.fields.contains(&vec![
        Seg::Field("spec".into()),
        Seg::Field("replicas".into())
    ]));
}

#[test]
fn a_field_dropped_by_one_manager_stays_while_another_owns_it() {
    let first = apply(
        deploy(),
        None,
        &deployment("nginx:1", Some(3)),
        "alice",
        "apps/v1",
        "",
        false,
        NOW,
    )
    .unwrap();
    let both = apply(
        deploy(),
        Some(&first),
        &deployment("nginx:1", Some(3)),
        "bob",
        "apps/v1",
        "",
        false,
        NOW,
    )
    .unwrap();
    let after = apply(
        deploy(),
        Some(&both),
        &deployment("nginx:1", None),
        "alice",
        "apps/v1",
        "",
        false,
        NOW,
    )
    .unwrap();
    assert_eq!(after["spec"]["replicas"], 3);
}

#[test]
fn associative_list_items_merge_by_key() {
    let first = apply(
        deploy(),
        None,
        &deployment("nginx:1", None),
        "alice",
        "apps/v1",
        "",
        false,
        NOW,
    )
    .unwrap();
    let mut sidecar = json!({"metadata": {"name": "web"}, "spec": {"template": {"spec": {"containers": [{"name": "proxy", "image": "envoy"}]}}}});
    sidecar["apiVersion"] = json!("apps/v1");
    let merged = apply(
        deploy(),
        Some(&first),
        &sidecar,
        "bob",
        "apps/v1",
        "",
        false,
        NOW,
    )
    .unwrap();
    let names: Vec<&str> = merged["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["app", "proxy"]);
    // Bob stops applying his container: it goes, Alice's stays.
    let bare = json!({"apiVersion": "apps/v1", "metadata": {"name": "web"}});
    let removed = apply(
        deploy(),
        Some(&merged),
        &bare,
        "bob",
        "apps/v1",
        "",
        false,
        NOW,
    )
    .unwrap();
    assert_eq!(
        removed["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn updates_take_ownership_of_changed_fields() {
    let mut created = deployment("nginx:1", Some(1));
    record_update(
        deploy(),
        None,
        &mut created,
        "kubectl-create",
        "apps/v1",
        "",
        NOW,
    );
    let applied = apply(
        deploy(),
        Some(&created),
        &deployment("nginx:1", Some(1)),
        "gitops",
        "apps/v1",
        "",
        false,
        NOW,
    )
    .unwrap();
    let mut scaled = applied.clone();
    scaled["spec"]["replicas"] = json!(4);
    record_update(
        deploy(),
        Some(&applied),
        &mut scaled,
        "hpa",
        "apps/v1",
        "",
        NOW,
    );
    let hpa = entries(&scaled)
        .into_iter()
        .find(|e| e.manager == "hpa")
        .unwrap();
    assert_eq!(hpa.fields.len(), 1);
    // gitops now conflicts on replicas with the hpa.
    let conflicts = apply(
        deploy(),
        Some(&scaled),
        &deployment("nginx:1", Some(1)),
        "gitops",
        "apps/v1",
        "",
        false,
        NOW,
    )
    .unwrap_err();
    assert_eq!(conflicts[0].manager, "hpa");
}
