//! Strategic merge patch, for the cases kubectl sends (label, annotate, scale, edit).

use serde_json::Value;

use crate::managed::{item_key, merge_keys};

/// Apply a strategic merge patch: like a JSON merge patch, but lists that
/// Kubernetes merges by key are merged item by item, and `$patch: delete`
/// removes an item.
pub fn strategic_merge(target: &mut Value, patch: &Value, field: &str) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (name, value) in patch {
                if name.starts_with("$setElementOrder/") || name == "$retainKeys" {
                    continue;
                }
                if value.is_null() {
                    target.remove(name);
                    continue;
                }
                match target.get_mut(name) {
                    Some(existing) => strategic_merge(existing, value, name),
                    None => {
                        let mut fresh = if value.is_object() {
                            Value::Object(Default::default())
                        } else {
                            Value::Null
                        };
                        strategic_merge(&mut fresh, value, name);
                        target.insert(name.clone(), fresh);
                    }
                }
            }
        }
        (Value::Array(target), Value::Array(patch)) => {
            let keys = merge_keys(field, patch).or_else(|| merge_keys(field, target));
            match keys.filter(|_| patch.iter().chain(target.iter()).all(Value::is_object)) {
                Some(keys) => {
                    for item in patch {
                        let key = item_key(item, &keys);
                        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
                        let position = target.iter().position(|t| item_key(t, &keys) == key);
                        match (position, delete) {
                            (Some(i), true) => {
                                target.remove(i);
                            }
                            (Some(i), false) => strategic_merge(&mut target[i], item, ""),
                            (None, false) => target.push(item.clone()),
                            (None, true) => {}
                        }
                    }
                }
                None => *target = patch.clone(),
            }
        }
        (target, patch) => {
            let mut value = patch.clone();
            strip_nulls(&mut value);
            *target = value;
        }
    }
}

fn strip_nulls(value: &mut Value) {
    if let Value::Object(map) = value {
        map.retain(|_, v| !v.is_null());
        for child in map.values_mut() {
            strip_nulls(child);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn containers_merge_by_name_and_nulls_delete() {
        let mut target = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"containers": [{"name": "x", "image": "1"}, {"name": "y", "image": "1"}]}});
        let patch = json!({"metadata": {"labels": {"b": null, "c": "3"}}, "spec": {"containers": [{"name": "y", "image": "2"}, {"name": "x", "$patch": "delete"}]}});
        strategic_merge(&mut target, &patch, "");
        assert_eq!(
            target,
            json!({"metadata": {"labels": {"a": "1", "c": "3"}}, "spec": {"containers": [{"name": "y", "image": "2"}]}})
        );
    }
}
