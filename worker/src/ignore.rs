//! `ignoreDifferences`: fields pushsync neither sets nor reverts.
//!
//! Before a manifest is applied, the fields a matching rule names are removed
//! from it: by JSON pointer, and by field manager (every field the live object
//! says another manager owns, such as `replicas` written by an autoscaler).
//! Removed from the applied configuration, such a field is neither owned nor
//! overwritten by pushsync's server-side apply.

use std::cmp::Ordering;

use pushsync_api::IgnoreDifference;
use serde_json::Value;

use crate::render::Manifest;

/// Whether `rule` applies to `manifest` (in `namespace` when it names none).
pub fn matches(rule: &IgnoreDifference, manifest: &Manifest, namespace: &str) -> bool {
    rule.kind == manifest.kind()
        && rule.group.as_deref().unwrap_or("") == manifest.group()
        && rule.name.as_deref().is_none_or(|n| n == manifest.name())
        && rule
            .namespace
            .as_deref()
            .is_none_or(|n| n == manifest.namespace().unwrap_or(namespace))
}

/// Whether any rule needs the live object (to read its field managers).
pub fn needs_live(rules: &[&IgnoreDifference]) -> bool {
    rules.iter().any(|r| !r.managed_fields_managers.is_empty())
}

/// `desired` without what `rules` ignore; `live` supplies field ownership.
pub fn strip(desired: &Value, live: Option<&Value>, rules: &[&IgnoreDifference]) -> Value {
    let mut pointers: Vec<Vec<String>> = rules
        .iter()
        .flat_map(|r| r.json_pointers.iter())
        .filter_map(|p| p.strip_prefix('/'))
        .map(|p| {
            p.split('/')
                .map(|s| s.replace("~1", "/").replace("~0", "~"))
                .collect()
        })
        .collect();
    let managers: Vec<&String> = rules
        .iter()
        .flat_map(|r| r.managed_fields_managers.iter())
        .collect();
    if let Some(entries) = live
        .and_then(|l| l.pointer("/metadata/managedFields"))
        .and_then(Value::as_array)
    {
        for entry in entries {
            let manager = entry
                .get("manager")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if managers.iter().any(|m| m.as_str() == manager)
                && let Some(tree) = entry.get("fieldsV1")
            {
                owned_paths(tree, Some(desired), &mut Vec::new(), &mut pointers);
            }
        }
    }
    // Deepest and highest indices first, so removals do not shift each other.
    pointers.sort_by(|a, b| compare_paths(b, a));
    pointers.dedup();
    let mut out = desired.clone();
    for path in pointers {
        remove(&mut out, &path);
    }
    out
}

fn compare_paths(a: &[String], b: &[String]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        let order = match (x.parse::<usize>(), y.parse::<usize>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            _ => x.cmp(y),
        };
        if order != Ordering::Equal {
            return order;
        }
    }
    a.len().cmp(&b.len())
}

/// Leaf paths of a `FieldsV1` tree, resolved against `value` (list items by
/// key or value to indices).
fn owned_paths(
    node: &Value,
    value: Option<&Value>,
    prefix: &mut Vec<String>,
    out: &mut Vec<Vec<String>>,
) {
    let Some(map) = node.as_object() else { return };
    for (key, child) in map {
        // A list item the manager added (".") goes whole; a map it merely
        // holds keys in is entered.
        let owns_item = !key.starts_with("f:") && child.get(".").is_some();
        let is_leaf = owns_item || child.as_object().is_none_or(|c| c.keys().all(|k| k == "."));
        let (segment, next) = if let Some(field) = key.strip_prefix("f:") {
            (field.to_owned(), value.and_then(|v| v.get(field)))
        } else if let Some(item_key) = key.strip_prefix("k:") {
            let Ok(Value::Object(wanted)) = serde_json::from_str::<Value>(item_key) else {
                continue;
            };
            let items = value.and_then(Value::as_array);
            let found = items.and_then(|items| {
                items.iter().position(|item| {
                    wanted.iter().all(|(k, v)| {
                        item.get(k) == Some(v)
                            || (k == "protocol" && v == "TCP" && item.get(k).is_none())
                    })
                })
            });
            let Some(index) = found else { continue };
            (index.to_string(), items.and_then(|i| i.get(index)))
        } else if let Some(literal) = key.strip_prefix("v:") {
            let Ok(wanted) = serde_json::from_str::<Value>(literal) else {
                continue;
            };
            let items = value.and_then(Value::as_array);
            let Some(index) = items.and_then(|items| items.iter().position(|item| *item == wanted))
            else {
                continue;
            };
            (index.to_string(), None)
        } else {
            continue;
        };
        prefix.push(segment);
        if is_leaf {
            if next.is_some() || key.starts_with("v:") {
                out.push(prefix.clone());
            }
        } else {
            owned_paths(child, next, prefix, out);
        }
        prefix.pop();
    }
}

fn remove(value: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut current = value;
    for segment in parents {
        let next = match current {
            Value::Object(map) => map.get_mut(segment),
            Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
            _ => None,
        };
        match next {
            Some(next) => current = next,
            None => return,
        }
    }
    match current {
        Value::Object(map) => {
            map.remove(last);
        }
        Value::Array(items) => {
            if let Ok(index) = last.parse::<usize>()
                && index < items.len()
            {
                items.remove(index);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rule(pointers: &[&str], managers: &[&str]) -> IgnoreDifference {
        IgnoreDifference {
            group: Some("apps".into()),
            kind: "Deployment".into(),
            json_pointers: pointers.iter().map(|p| (*p).to_owned()).collect(),
            managed_fields_managers: managers.iter().map(|m| (*m).to_owned()).collect(),
            ..IgnoreDifference::default()
        }
    }

    fn deployment() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"a": "1", "b": "2"}},
            "spec": {"replicas": 3, "template": {"spec": {"containers": [
                {"name": "app", "image": "x", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                {"name": "sidecar", "image": "y"}]}}}})
    }

    #[test]
    fn rules_match_by_group_kind_name_and_namespace() {
        let manifest = Manifest {
            object: deployment(),
            source: "t".into(),
        };
        assert!(matches(&rule(&[], &[]), &manifest, "default"));
        let mut other = rule(&[], &[]);
        other.group = None;
        assert!(
            !matches(&other, &manifest, "default"),
            "no group means the core group"
        );
        other = rule(&[], &[]);
        other.namespace = Some("prod".into());
        assert!(!matches(&other, &manifest, "default"));
        assert!(matches(&other, &manifest, "prod"));
    }

    #[test]
    fn json_pointers_are_removed() {
        let stripped = strip(
            &deployment(),
            None,
            &[&rule(&["/spec/replicas", "/metadata/labels/b"], &[])],
        );
        assert!(stripped.pointer("/spec/replicas").is_none());
        assert_eq!(
            stripped.pointer("/metadata/labels"),
            Some(&json!({"a": "1"}))
        );
    }

    #[test]
    fn fields_owned_by_named_managers_are_removed() {
        let live = json!({"metadata": {"managedFields": [
            {"manager": "hpa-controller", "operation": "Update", "fieldsV1": {"f:spec": {"f:replicas": {}}}},
            {"manager": "injector", "operation": "Update", "fieldsV1": {"f:spec": {"f:template": {"f:spec": {"f:containers": {
                "k:{\"name\":\"sidecar\"}": {".": {}, "f:image": {}, "f:name": {}},
                "k:{\"name\":\"app\"}": {"f:env": {"k:{\"name\":\"B\"}": {".": {}, "f:name": {}, "f:value": {}}}}
            }}}}}},
            {"manager": "pushsync", "operation": "Apply", "fieldsV1": {"f:metadata": {"f:labels": {"f:a": {}}}}}
        ]}});
        let stripped = strip(
            &deployment(),
            Some(&live),
            &[&rule(&[], &["hpa-controller", "injector"])],
        );
        assert!(stripped.pointer("/spec/replicas").is_none());
        let containers = stripped
            .pointer("/spec/template/spec/containers")
            .unwrap()
            .as_array()
            .unwrap();
        assert_eq!(containers.len(), 1, "{containers:?}");
        assert_eq!(containers[0]["env"], json!([{"name": "A", "value": "1"}]));
        assert_eq!(
            stripped.pointer("/metadata/labels/a"),
            Some(&json!("1")),
            "other managers' fields stay"
        );
    }
}
