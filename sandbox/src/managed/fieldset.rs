//! Field sets: the paths into an object a manager owns. Lists are read as
//! the object's schema declares them (`x-kubernetes-list-type`): map lists
//! (containers by name, container ports by `containerPort` and `protocol`,
//! …) are addressed by key (`k:{"name":"app"}`), set lists by value
//! (`v:"x"`), atomic lists and maps (`x-kubernetes-map-type: atomic`) are
//! owned as a whole.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::schema::{ListType, Node};

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Seg {
    /// A map field.
    Field(String),
    /// An associative-list item, by its key fields (canonical JSON object).
    Key(String),
    /// A set-list item, by value (canonical JSON), e.g. finalizers.
    Value(String),
}

/// A path into an object.
pub type Path = Vec<Seg>;

/// The fields one manager owns.
pub type FieldSet = BTreeSet<Path>;

/// The key fields of a list's items, when the schema makes it a map list
/// whose items are all objects.
pub fn map_keys<'s>(node: Node<'s>, items: &[Value]) -> Option<&'s [String]> {
    match node.list_type() {
        ListType::Map(keys) if items.iter().all(Value::is_object) => Some(keys),
        _ => None,
    }
}

/// The canonical key of `item` under `keys` (missing `protocol` means TCP, as
/// the API server defaults it).
pub fn item_key(item: &Value, keys: &[String]) -> String {
    let mut key = Map::new();
    for name in keys {
        match item.get(name) {
            Some(value) => {
                key.insert(name.clone(), value.clone());
            }
            None if *name == "protocol" => {
                key.insert("protocol".to_owned(), Value::String("TCP".to_owned()));
            }
            None => {}
        }
    }
    Value::Object(key).to_string()
}

/// Fields never recorded as owned: identity, server-managed and status.
fn ignored_top(path: &[String]) -> bool {
    match path {
        [first] => matches!(first.as_str(), "apiVersion" | "kind" | "status"),
        [meta, field] if meta == "metadata" => matches!(
            field.as_str(),
            "name"
                | "namespace"
                | "uid"
                | "resourceVersion"
                | "generation"
                | "creationTimestamp"
                | "managedFields"
                | "deletionTimestamp"
                | "deletionGracePeriodSeconds"
                | "selfLink"
        ),
        _ => false,
    }
}

/// Every owned path of `object` (leaves and list items), lists read as
/// `schema` declares them.
pub fn field_set(object: &Value, schema: Node<'_>) -> FieldSet {
    let mut set = FieldSet::new();
    let mut names = Vec::new();
    collect(object, schema, &mut Vec::new(), &mut names, &mut set);
    set
}

fn collect(
    value: &Value,
    node: Node<'_>,
    path: &mut Path,
    names: &mut Vec<String>,
    set: &mut FieldSet,
) {
    match value {
        Value::Object(map) if !map.is_empty() && !node.is_atomic_map() => {
            for (name, child) in map {
                names.push(name.clone());
                if !ignored_top(names) {
                    path.push(Seg::Field(name.clone()));
                    collect_field(child, node.field(name), path, names, set);
                    path.pop();
                }
                names.pop();
            }
        }
        _ => {
            set.insert(path.clone());
        }
    }
}

fn collect_field(
    value: &Value,
    node: Node<'_>,
    path: &mut Path,
    names: &mut Vec<String>,
    set: &mut FieldSet,
) {
    let Value::Array(items) = value else {
        collect(value, node, path, names, set);
        return;
    };
    if let Some(keys) = map_keys(node, items) {
        for item in items {
            path.push(Seg::Key(item_key(item, keys)));
            set.insert(path.clone());
            collect(item, node.items(), path, names, set);
            path.pop();
        }
        if items.is_empty() {
            set.insert(path.clone());
        }
        return;
    }
    if *node.list_type() == ListType::Set {
        for item in items {
            path.push(Seg::Value(item.to_string()));
            set.insert(path.clone());
            path.pop();
        }
        if items.is_empty() {
            set.insert(path.clone());
        }
        return;
    }
    set.insert(path.clone());
}

/// Whether `item` is the value a `v:` path segment names (canonical JSON).
fn is_value(item: &Value, text: &str) -> bool {
    serde_json::from_str::<Value>(text).is_ok_and(|value| value == *item)
}

/// The value at `path`, if present.
pub fn value_at<'v>(object: &'v Value, schema: Node<'_>, path: &[Seg]) -> Option<&'v Value> {
    let mut current = object;
    let mut node = schema;
    for seg in path {
        match seg {
            Seg::Field(name) => {
                current = current.get(name)?;
                node = node.field(name);
            }
            Seg::Key(key) => {
                let items = current.as_array()?;
                let keys = map_keys(node, items)?;
                current = items.iter().find(|item| item_key(item, keys) == *key)?;
                node = node.items();
            }
            Seg::Value(value) => {
                let items = current.as_array()?;
                current = items.iter().find(|item| is_value(item, value))?;
                node = node.items();
            }
        }
    }
    Some(current)
}

/// Remove what `path` names from `object` (a field, or a list item).
pub fn remove_path(object: &mut Value, schema: Node<'_>, path: &[Seg]) {
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    let mut current = object;
    let mut node = schema;
    for seg in parent_path {
        let next = match seg {
            Seg::Field(name) => {
                node = node.field(name);
                current.get_mut(name)
            }
            Seg::Key(key) => {
                let list = node;
                node = node.items();
                match current.as_array_mut() {
                    Some(items) => match map_keys(list, items) {
                        Some(keys) => items.iter_mut().find(|item| item_key(item, keys) == *key),
                        None => None,
                    },
                    None => None,
                }
            }
            Seg::Value(value) => {
                node = node.items();
                current
                    .as_array_mut()
                    .and_then(|items| items.iter_mut().find(|item| is_value(item, value)))
            }
        };
        match next {
            Some(next) => current = next,
            None => return,
        }
    }
    match last {
        Seg::Field(name) => {
            if let Some(map) = current.as_object_mut() {
                map.remove(name);
            }
        }
        Seg::Key(key) => {
            if let Some(items) = current.as_array_mut()
                && let Some(keys) = map_keys(node, items)
            {
                let keys = keys.to_vec();
                items.retain(|item| item_key(item, &keys) != *key);
            }
        }
        Seg::Value(value) => {
            if let Some(items) = current.as_array_mut() {
                items.retain(|item| !is_value(item, value));
            }
        }
    }
}

/// `.spec.replicas`, `.spec.template.spec.containers[name="app"].image`: how
/// conflicts name a field.
pub fn display_path(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Field(name) => {
                out.push('.');
                out.push_str(name);
            }
            Seg::Key(key) => {
                let pairs: Vec<String> = serde_json::from_str::<Map<String, Value>>(key)
                    .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect())
                    .unwrap_or_default();
                out.push_str(&format!("[{}]", pairs.join(",")));
            }
            Seg::Value(value) => out.push_str(&format!("[={value}]")),
        }
    }
    out
}

/// Leaves of `set` (paths that are not a prefix of another path): the ones
/// whose values can conflict.
pub(super) fn is_leaf(set: &FieldSet, path: &Path) -> bool {
    !set.range(path.clone()..)
        .nth(1)
        .is_some_and(|next| next.len() > path.len() && next.starts_with(path))
}
