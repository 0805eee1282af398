use serde_json::json;

use super::conform::{apply_defaults, prune_nulls, prune_unknown, validate};
use super::*;

fn pod_spec() -> Node<'static> {
    builtin().named("io.k8s.api.core.v1.PodSpec")
}

#[test]
fn built_in_lists_are_typed_as_kubernetes_declares_them() {
    let container = pod_spec().field("containers").items();
    assert_eq!(
        *pod_spec().field("containers").list_type(),
        ListType::Map(vec!["name".to_owned()])
    );
    assert_eq!(
        *container.field("ports").list_type(),
        ListType::Map(vec!["containerPort".to_owned(), "protocol".to_owned()])
    );
    assert_eq!(
        container.field("ports").patch_merge_key(),
        Some("containerPort")
    );
    assert_eq!(
        *pod_spec().field("tolerations").list_type(),
        ListType::Atomic
    );
    assert!(!pod_spec().field("tolerations").patch_merges());
    assert!(pod_spec().field("volumes").patch_retains_keys());
    let meta = builtin().named(compile::OBJECT_META);
    assert_eq!(*meta.field("finalizers").list_type(), ListType::Set);
    // Labels are a granular map; a label selector's matchLabels is atomic.
    assert!(!meta.field("labels").is_atomic_map());
    let deployment = builtin().kind("apps", "v1", "Deployment");
    assert!(deployment.field("spec").field("selector").is_atomic_map());
    assert!(builtin().kind("apps", "v1", "NoSuchKind").is_any());
}

#[test]
fn unknown_fields_of_a_built_in_kind_are_found_and_dropped() {
    let deployment = builtin().kind("apps", "v1", "Deployment");
    let mut object = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"any-key": "kept"}, "bogus": 1},
        "spec": {
            "replicas": 1,
            "replica": 2,
            "template": {"spec": {"containers": [{"name": "app", "image": "x", "imagePullPolicyy": "Always", "resources": {"limits": {"cpu": "1"}}}]}},
        },
    });
    let unknown = prune_unknown(deployment, &mut object);
    assert_eq!(
        unknown,
        [
            "metadata.bogus",
            "spec.replica",
            "spec.template.spec.containers[0].imagePullPolicyy"
        ]
    );
    assert_eq!(
        object["metadata"],
        json!({"name": "web", "labels": {"any-key": "kept"}})
    );
    assert_eq!(
        object["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"],
        "1"
    );
    // Opaque Go types (RawExtension, FieldsV1) keep whatever they hold.
    let mut entry = json!({"manager": "m", "fieldsV1": {"f:spec": {"f:x": {}}}});
    assert!(
        prune_unknown(
            builtin().named("io.k8s.apimachinery.pkg.apis.meta.v1.ManagedFieldsEntry"),
            &mut entry
        )
        .is_empty()
    );
}

fn widget_schema() -> CrdSchema {
    CrdSchema::compile(&json!({
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 8},
                    "replicas": {"type": "integer", "minimum": 1, "maximum": 5, "default": 1},
                    "mode": {"type": "string", "enum": ["fast", "slow"]},
                    "port": {"x-kubernetes-int-or-string": true},
                    "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set", "maxItems": 3},
                    "config": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "note": {"type": "string", "nullable": true},
                    "template": {"type": "object", "x-kubernetes-embedded-resource": true, "properties": {"spec": {"type": "object"}}},
                },
            },
            "status": {"type": "object", "properties": {"phase": {"type": "string"}}},
        },
    }))
    .unwrap()
}

#[test]
fn a_custom_resource_is_pruned_defaulted_and_validated() {
    let schema = widget_schema();
    let root = schema.root();
    let mut object = json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w", "unknownMeta": true},
        "spec": {
            "name": "abc", "extra": 1, "config": {"anything": {"goes": [1]}},
            "labels": {"a": "b"}, "note": null, "port": "http", "mode": null,
            "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "x": 1}, "spec": {"dropped": true}},
        },
        "status": {"phase": "Ready", "undeclared": "x"},
    });
    let unknown = prune_unknown(root, &mut object);
    assert_eq!(
        unknown,
        [
            "metadata.unknownMeta",
            "spec.extra",
            "spec.template.metadata.x",
            "spec.template.spec.dropped",
            "status.undeclared"
        ]
    );
    prune_nulls(root, &mut object);
    apply_defaults(root, &mut object);
    assert_eq!(object["spec"]["replicas"], 1);
    assert!(
        object["spec"].get("mode").is_none(),
        "a null in a non-nullable field is pruned"
    );
    assert!(
        object["spec"]["note"].is_null(),
        "a nullable field keeps its null"
    );
    let mut causes = Vec::new();
    validate(root, &object, "", &mut causes);
    assert!(causes.is_empty(), "{causes:?}");
}

#[test]
fn schema_violations_name_the_field_and_the_rule() {
    let schema = widget_schema();
    let object = json!({
        "apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
        "spec": {"name": "Not_Valid", "replicas": "three", "mode": "medium", "tags": ["a", "a"], "port": 1.5},
    });
    let mut causes = Vec::new();
    validate(schema.root(), &object, "", &mut causes);
    let lines: Vec<String> = causes.iter().map(Cause::line).collect();
    assert_eq!(
        lines,
        [
            "spec.mode: Unsupported value: \"medium\": supported values: \"fast\", \"slow\"",
            "spec.name: Too long: may not be more than 8 bytes",
            "spec.name: Invalid value: \"Not_Valid\": spec.name in body should match '^[a-z]+$'",
            "spec.port: Invalid value: \"number\": spec.port in body must be of type integer,string: \"number\"",
            "spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\"",
            "spec.tags[1]: Duplicate value: \"a\"",
        ]
    );
    let mut causes = Vec::new();
    validate(
        schema.root(),
        &json!({"spec": {"replicas": 9}}),
        "",
        &mut causes,
    );
    let lines: Vec<String> = causes.iter().map(Cause::line).collect();
    assert_eq!(
        lines,
        [
            "spec.name: Required value",
            "spec.replicas: Invalid value: 9: spec.replicas in body should be less than or equal to 5",
        ]
    );
}

#[test]
fn a_schema_the_sandbox_cannot_read_is_refused() {
    let bad_pattern = CrdSchema::compile(
        &json!({"type": "object", "properties": {"a": {"type": "string", "pattern": "("}}}),
    );
    assert!(bad_pattern.unwrap_err().contains("pattern"));
    let map_without_keys = CrdSchema::compile(
        &json!({"type": "object", "properties": {"a": {"type": "array", "x-kubernetes-list-type": "map", "items": {"type": "object"}}}}),
    );
    assert!(map_without_keys.unwrap_err().contains("list-map-keys"));
}
