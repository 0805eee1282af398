//! Strategic merge patch, as kubectl sends it (`apply` without
//! `--server-side`, `edit`, `label`, `annotate`, `scale`, `set image`).
//!
//! Like a JSON merge patch, except where the schema says otherwise: a list
//! whose `x-kubernetes-patch-strategy` is `merge` is merged item by item by
//! its `x-kubernetes-patch-merge-key` (containers by `name`, container ports
//! by `containerPort` alone — the real server's known quirk), or by value
//! for scalar lists (finalizers); every other list is replaced. Directives:
//! `$patch: delete | replace | merge`, `$retainKeys`,
//! `$setElementOrder/<field>` and `$deleteFromPrimitiveList/<field>`.

use serde_json::{Map, Value};

use crate::schema::Node;

const SET_ORDER: &str = "$setElementOrder/";
const DELETE_FROM: &str = "$deleteFromPrimitiveList/";

/// Apply `patch` to `target` under `schema`; the error is a malformed
/// directive, worded for a 400.
pub fn strategic_merge(target: &mut Value, patch: &Value, schema: Node<'_>) -> Result<(), String> {
    match (target, patch) {
        (target @ Value::Object(_), Value::Object(patch)) => merge_map(target, patch, schema),
        (target, patch) => {
            *target = clean(patch);
            Ok(())
        }
    }
}

fn merge_map(
    target: &mut Value,
    patch: &Map<String, Value>,
    schema: Node<'_>,
) -> Result<(), String> {
    match patch.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            *target = clean(&Value::Object(patch.clone()));
            return Ok(());
        }
        Some("delete") => {
            *target = Value::Object(Map::new());
            return Ok(());
        }
        Some("merge") | None => {}
        Some(other) => return Err(format!("unknown patch type: {other:?} in map: {patch:?}")),
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(map) = target else {
        return Ok(());
    };
    for (name, value) in patch {
        if name.starts_with('$') {
            continue;
        }
        let field = schema.field(name);
        if value.is_null() {
            map.remove(name);
            continue;
        }
        if let Value::Object(child) = value
            && child.get("$patch").and_then(Value::as_str) == Some("delete")
        {
            map.remove(name);
            continue;
        }
        match (map.get_mut(name), value) {
            (Some(existing @ Value::Array(_)), Value::Array(items)) => {
                merge_list(existing, items, field)?;
            }
            (Some(existing), Value::Object(child)) => merge_map(existing, child, field)?,
            (None, Value::Array(items)) => {
                let mut fresh = Value::Array(Vec::new());
                merge_list(&mut fresh, items, field)?;
                map.insert(name.clone(), fresh);
            }
            (None, Value::Object(child)) => {
                let mut fresh = Value::Object(Map::new());
                merge_map(&mut fresh, child, field)?;
                map.insert(name.clone(), fresh);
            }
            (_, other) => {
                map.insert(name.clone(), clean(other));
            }
        }
    }
    for (name, value) in patch {
        if let Some(field) = name.strip_prefix(DELETE_FROM) {
            let doomed = value
                .as_array()
                .ok_or_else(|| format!("{name} must be a list"))?;
            if let Some(Value::Array(items)) = map.get_mut(field) {
                items.retain(|item| !doomed.contains(item));
            }
        }
    }
    for (name, value) in patch {
        if let Some(field) = name.strip_prefix(SET_ORDER) {
            let order = value
                .as_array()
                .ok_or_else(|| format!("{name} must be a list"))?;
            if let Some(Value::Array(items)) = map.get_mut(field) {
                reorder(items, order, schema.field(field));
            }
        }
    }
    if let Some(keep) = patch.get("$retainKeys") {
        let keep = keep
            .as_array()
            .ok_or_else(|| "$retainKeys must be a list".to_owned())?;
        map.retain(|name, _| keep.iter().any(|k| k.as_str() == Some(name)));
    }
    Ok(())
}

fn merge_list(target: &mut Value, patch: &[Value], schema: Node<'_>) -> Result<(), String> {
    if patch
        .iter()
        .any(|item| item.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        *target = Value::Array(
            patch
                .iter()
                .filter(|item| item.get("$patch").is_none())
                .map(clean)
                .collect(),
        );
        return Ok(());
    }
    if !schema.patch_merges() {
        *target = Value::Array(patch.iter().map(clean).collect());
        return Ok(());
    }
    let Value::Array(items) = target else {
        *target = Value::Array(patch.iter().map(clean).collect());
        return Ok(());
    };
    match schema.patch_merge_key() {
        Some(key) => {
            for item in patch {
                let Some(wanted) = item.get(key) else {
                    return Err(format!(
                        "map: {item} does not contain declared merge key: {key}"
                    ));
                };
                let position = items.iter().position(|t| t.get(key) == Some(wanted));
                let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
                match (position, delete) {
                    (Some(i), true) => {
                        items.remove(i);
                    }
                    (Some(i), false) => {
                        if let Value::Object(child) = item {
                            merge_map(&mut items[i], child, schema.items())?;
                        }
                    }
                    (None, false) => items.push(clean(item)),
                    (None, true) => {}
                }
            }
        }
        None => {
            // A list of scalars merged by value (finalizers).
            for item in patch {
                if !items.contains(item) {
                    items.push(item.clone());
                }
            }
        }
    }
    Ok(())
}

/// `$setElementOrder`: the listed items first, in that order; the rest
/// after them, as they were.
fn reorder(items: &mut Vec<Value>, order: &[Value], schema: Node<'_>) {
    let key = schema.patch_merge_key();
    let identity = |item: &Value| -> Value {
        match key {
            Some(key) => item.get(key).cloned().unwrap_or(Value::Null),
            None => item.clone(),
        }
    };
    let wanted: Vec<Value> = order.iter().map(&identity).collect();
    let mut sorted = Vec::with_capacity(items.len());
    for id in &wanted {
        if let Some(i) = items.iter().position(|item| identity(item) == *id) {
            sorted.push(items.remove(i));
        }
    }
    sorted.append(items);
    *items = sorted;
}

/// A patch value as stored: directives and nulls inside it removed.
fn clean(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(name, v)| !name.starts_with('$') && !v.is_null())
                .map(|(name, v)| (name.clone(), clean(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(clean).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod_spec() -> Node<'static> {
        crate::schema::builtin().named("io.k8s.api.core.v1.PodSpec")
    }

    #[test]
    fn containers_merge_by_name_and_nulls_delete() {
        let mut target = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"containers": [{"name": "x", "image": "1"}, {"name": "y", "image": "1"}]}});
        let patch = json!({"metadata": {"labels": {"b": null, "c": "3"}}, "spec": {"containers": [{"name": "y", "image": "2"}, {"name": "x", "$patch": "delete"}]}});
        let pod = crate::schema::builtin().kind("", "v1", "Pod");
        strategic_merge(&mut target, &patch, pod).unwrap();
        assert_eq!(
            target,
            json!({"metadata": {"labels": {"a": "1", "c": "3"}}, "spec": {"containers": [{"name": "y", "image": "2"}]}})
        );
    }

    #[test]
    fn lists_without_a_merge_strategy_are_replaced() {
        let mut target = json!({"tolerations": [{"key": "a"}, {"key": "b"}]});
        let patch = json!({"tolerations": [{"key": "c"}]});
        strategic_merge(&mut target, &patch, pod_spec()).unwrap();
        assert_eq!(target, json!({"tolerations": [{"key": "c"}]}));
    }

    #[test]
    fn directives_order_retain_and_delete_from_primitive_lists() {
        let mut target = json!({
            "containers": [{"name": "a"}, {"name": "b"}],
            "volumes": [{"name": "v", "emptyDir": {}}],
        });
        let patch = json!({
            "$setElementOrder/containers": [{"name": "c"}, {"name": "b"}, {"name": "a"}],
            "containers": [{"name": "c", "image": "x"}],
            "volumes": [{"name": "v", "configMap": {"name": "m"}, "$retainKeys": ["name", "configMap"]}],
        });
        strategic_merge(&mut target, &patch, pod_spec()).unwrap();
        assert_eq!(
            target,
            json!({
                "containers": [{"name": "c", "image": "x"}, {"name": "b"}, {"name": "a"}],
                "volumes": [{"name": "v", "configMap": {"name": "m"}}],
            })
        );
        let mut meta = json!({"finalizers": ["a", "b", "c"]});
        let object_meta =
            crate::schema::builtin().named("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta");
        strategic_merge(
            &mut meta,
            &json!({"$deleteFromPrimitiveList/finalizers": ["b"], "finalizers": ["d"]}),
            object_meta,
        )
        .unwrap();
        assert_eq!(meta, json!({"finalizers": ["a", "c", "d"]}));
    }

    #[test]
    fn a_merge_list_item_without_its_key_is_an_error() {
        let mut target = json!({"containers": []});
        let error = strategic_merge(
            &mut target,
            &json!({"containers": [{"image": "x"}]}),
            pod_spec(),
        )
        .unwrap_err();
        assert!(error.contains("merge key: name"), "{error}");
    }
}
