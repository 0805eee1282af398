//! Field sets: the paths into an object a manager owns. Associative lists
//! (those Kubernetes merges by key: containers by name, ports by port and
//! protocol, …) are addressed by key (`k:{"name":"app"}`), set lists by
//! value, other lists are atomic and owned as a whole.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

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

/// The key fields of the items of list `field`, if Kubernetes merges it by key.
pub fn merge_keys(field: &str, items: &[Value]) -> Option<Vec<&'static str>> {
    let first = items.first();
    let has = |key: &str| first.is_some_and(|item| item.get(key).is_some());
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets" => Some(vec!["name"]),
        "volumeMounts" | "volumeDevices" => Some(vec!["mountPath"]),
        "ports" if has("containerPort") => Some(vec!["containerPort", "protocol"]),
        "ports" if has("port") => Some(vec!["port", "protocol"]),
        "conditions" if has("type") => Some(vec!["type"]),
        "ownerReferences" => Some(vec!["uid"]),
        "hostAliases" => Some(vec!["ip"]),
        _ => None,
    }
}

/// Lists whose items are identified by their value.
pub(super) fn is_set_list(field: &str) -> bool {
    matches!(field, "finalizers")
}

/// The canonical key of `item` under `keys` (missing `protocol` means TCP, as
/// the API server defaults it).
pub fn item_key(item: &Value, keys: &[&str]) -> String {
    let mut key = Map::new();
    for name in keys {
        match item.get(*name) {
            Some(value) => {
                key.insert((*name).to_owned(), value.clone());
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

/// Every owned path of `object` (leaves and associative-list items).
pub fn field_set(object: &Value) -> FieldSet {
    let mut set = FieldSet::new();
    let mut names = Vec::new();
    collect(object, &mut Vec::new(), &mut names, &mut set);
    set
}

fn collect(value: &Value, path: &mut Path, names: &mut Vec<String>, set: &mut FieldSet) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (name, child) in map {
                names.push(name.clone());
                if !ignored_top(names) {
                    path.push(Seg::Field(name.clone()));
                    collect_field(name, child, path, names, set);
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
    name: &str,
    value: &Value,
    path: &mut Path,
    names: &mut Vec<String>,
    set: &mut FieldSet,
) {
    if let Value::Array(items) = value {
        if let Some(keys) = merge_keys(name, items).filter(|_| items.iter().all(Value::is_object)) {
            for item in items {
                path.push(Seg::Key(item_key(item, &keys)));
                set.insert(path.clone());
                collect(item, path, names, set);
                path.pop();
            }
            if items.is_empty() {
                set.insert(path.clone());
            }
            return;
        }
        if is_set_list(name) {
            for item in items {
                path.push(Seg::Value(item.to_string()));
                set.insert(path.clone());
                path.pop();
            }
            return;
        }
        set.insert(path.clone());
        return;
    }
    collect(value, path, names, set);
}

/// Whether `item` is the value a `v:` path segment names (canonical JSON).
fn is_value(item: &Value, text: &str) -> bool {
    serde_json::from_str::<Value>(text).is_ok_and(|value| value == *item)
}

/// The value at `path`, if present.
pub fn value_at<'v>(object: &'v Value, path: &[Seg]) -> Option<&'v Value> {
    let mut current = object;
    let mut last_field = "";
    for seg in path {
        match seg {
            Seg::Field(name) => {
                current = current.get(name)?;
                last_field = name;
            }
            Seg::Key(key) => {
                let items = current.as_array()?;
                let keys = merge_keys(last_field, items)?;
                current = items.iter().find(|item| item_key(item, &keys) == *key)?;
            }
            Seg::Value(value) => {
                let items = current.as_array()?;
                current = items.iter().find(|item| is_value(item, value))?;
            }
        }
    }
    Some(current)
}

/// Remove what `path` names from `object` (a field, or a list item).
pub fn remove_path(object: &mut Value, path: &[Seg]) {
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    let mut field_of_parent = String::new();
    let mut current = object;
    for seg in parent_path {
        let next = match seg {
            Seg::Field(name) => {
                field_of_parent.clone_from(name);
                current.get_mut(name)
            }
            Seg::Key(key) => {
                let keys = current
                    .as_array()
                    .and_then(|items| merge_keys(&field_of_parent, items));
                match (current.as_array_mut(), keys) {
                    (Some(items), Some(keys)) => {
                        items.iter_mut().find(|item| item_key(item, &keys) == *key)
                    }
                    _ => None,
                }
            }
            Seg::Value(value) => current
                .as_array_mut()
                .and_then(|items| items.iter_mut().find(|item| is_value(item, value))),
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
            let keys = current
                .as_array()
                .and_then(|items| merge_keys(&field_of_parent, items));
            if let (Some(items), Some(keys)) = (current.as_array_mut(), keys) {
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
