//! Field ownership (`metadata.managedFields`) and server-side apply.
//!
//! A field set is a set of paths into an object. Associative lists (those
//! Kubernetes merges by key: containers by name, ports by port and protocol,
//! …) are addressed by key (`k:{"name":"app"}`), other lists are atomic and
//! owned as a whole. The serialised form is the API's `FieldsV1` tree.

use std::collections::{BTreeMap, BTreeSet};

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
fn is_set_list(field: &str) -> bool {
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

/// Merge an applied configuration into a live object: maps key by key,
/// associative lists item by item, everything else replaced.
pub fn merge_applied(live: &mut Value, applied: &Value, field: &str) {
    match (live, applied) {
        (Value::Object(live), Value::Object(applied)) => {
            for (name, value) in applied {
                match live.get_mut(name) {
                    Some(existing) => merge_applied(existing, value, name),
                    None => {
                        live.insert(name.clone(), value.clone());
                    }
                }
            }
        }
        (Value::Array(live), Value::Array(applied)) => {
            let keys = merge_keys(field, applied).or_else(|| merge_keys(field, live));
            match keys.filter(|_| applied.iter().chain(live.iter()).all(Value::is_object)) {
                Some(keys) => {
                    for item in applied {
                        let key = item_key(item, &keys);
                        match live.iter_mut().find(|l| item_key(l, &keys) == key) {
                            Some(existing) => merge_applied(existing, item, ""),
                            None => live.push(item.clone()),
                        }
                    }
                }
                None if is_set_list(field) => {
                    for item in applied {
                        if !live.contains(item) {
                            live.push(item.clone());
                        }
                    }
                }
                None => *live = applied.clone(),
            }
        }
        (live, applied) => *live = applied.clone(),
    }
}

/// Serialise a field set as a `FieldsV1` tree.
pub fn to_fields_v1(set: &FieldSet) -> Value {
    #[derive(Default)]
    struct Node {
        member: bool,
        children: BTreeMap<String, Node>,
    }
    fn seg_name(seg: &Seg) -> String {
        match seg {
            Seg::Field(name) => format!("f:{name}"),
            Seg::Key(key) => format!("k:{key}"),
            Seg::Value(value) => format!("v:{value}"),
        }
    }
    fn render(node: &Node) -> Value {
        let mut map = Map::new();
        if node.member && !node.children.is_empty() {
            map.insert(".".to_owned(), Value::Object(Map::new()));
        }
        for (name, child) in &node.children {
            map.insert(name.clone(), render(child));
        }
        Value::Object(map)
    }
    let mut root = Node::default();
    for path in set {
        let mut node = &mut root;
        for seg in path {
            node = node.children.entry(seg_name(seg)).or_default();
        }
        node.member = true;
    }
    render(&root)
}

/// Parse a `FieldsV1` tree back into a field set.
pub fn from_fields_v1(tree: &Value) -> FieldSet {
    fn walk(node: &Value, path: &mut Path, set: &mut FieldSet) {
        let Some(map) = node.as_object() else { return };
        if (map.is_empty() || map.contains_key(".")) && !path.is_empty() {
            set.insert(path.clone());
        }
        for (name, child) in map {
            let seg = if let Some(field) = name.strip_prefix("f:") {
                Seg::Field(field.to_owned())
            } else if let Some(key) = name.strip_prefix("k:") {
                Seg::Key(key.to_owned())
            } else if let Some(value) = name.strip_prefix("v:") {
                Seg::Value(value.to_owned())
            } else {
                continue;
            };
            path.push(seg);
            walk(child, path, set);
            path.pop();
        }
    }
    let mut set = FieldSet::new();
    walk(tree, &mut Vec::new(), &mut set);
    set
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

/// One entry of `metadata.managedFields`.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The field manager.
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// The apiVersion the manager used.
    pub api_version: String,
    /// Last time this entry changed (RFC 3339).
    pub time: String,
    /// `""` or `status`.
    pub subresource: String,
    /// The owned fields.
    pub fields: FieldSet,
}

/// Read `metadata.managedFields`.
pub fn entries(object: &Value) -> Vec<Entry> {
    object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|e| Entry {
                    manager: e
                        .get("manager")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    operation: e
                        .get("operation")
                        .and_then(Value::as_str)
                        .unwrap_or("Update")
                        .to_owned(),
                    api_version: e
                        .get("apiVersion")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    time: e
                        .get("time")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    subresource: e
                        .get("subresource")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    fields: e.get("fieldsV1").map(from_fields_v1).unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Write `metadata.managedFields` (entries with no fields are dropped).
pub fn set_entries(object: &mut Value, entries: &[Entry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut entry = serde_json::json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": to_fields_v1(&e.fields),
            });
            if !e.subresource.is_empty() {
                entry["subresource"] = Value::String(e.subresource.clone());
            }
            entry
        })
        .collect();
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            metadata.remove("managedFields");
        } else {
            metadata.insert("managedFields".to_owned(), Value::Array(list));
        }
    }
}

/// Leaves of `set` (paths that are not a prefix of another path): the ones
/// whose values can conflict.
fn is_leaf(set: &FieldSet, path: &Path) -> bool {
    !set.range(path.clone()..)
        .nth(1)
        .is_some_and(|next| next.len() > path.len() && next.starts_with(path))
}

/// A field another manager owns with a different value.
#[derive(Debug, Clone)]
pub struct Conflict {
    /// The other manager.
    pub manager: String,
    /// The field.
    pub path: Path,
}

/// Server-side apply of `applied` by `manager` onto `live` (`None` when the
/// object does not exist yet). Returns the new object, or the conflicts when
/// `force` is false and another manager owns a field with a different value.
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    api_version: &str,
    subresource: &str,
    force: bool,
    now: &str,
) -> Result<Value, Vec<Conflict>> {
    let applied_fields = field_set(applied);
    let mut result = live.cloned().unwrap_or_else(|| serde_json::json!({}));
    let mut managers = live.map(entries).unwrap_or_default();

    // Conflicts: someone else owns a leaf we set, with another value.
    let mut conflicts = Vec::new();
    for entry in managers.iter_mut().filter(|e| {
        !(e.manager == manager && e.operation == "Apply") && e.subresource == subresource
    }) {
        let overlapping: Vec<Path> = applied_fields
            .iter()
            .filter(|p| entry.fields.contains(*p) && is_leaf(&applied_fields, p))
            .filter(|p| live.and_then(|l| value_at(l, p)) != value_at(applied, p))
            .cloned()
            .collect();
        if overlapping.is_empty() {
            continue;
        }
        if force {
            for path in &overlapping {
                entry.fields.remove(path);
            }
        } else {
            conflicts.extend(overlapping.into_iter().map(|path| Conflict {
                manager: entry.manager.clone(),
                path,
            }));
        }
    }
    if !conflicts.is_empty() {
        return Err(conflicts);
    }

    // Fields this manager applied before and no longer does: removed unless
    // someone else still owns them.
    let previous = managers
        .iter()
        .find(|e| e.manager == manager && e.operation == "Apply" && e.subresource == subresource)
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let mut dropped: Vec<&Path> = previous
        .iter()
        .filter(|p| !applied_fields.contains(*p))
        .filter(|p| {
            !managers
                .iter()
                .filter(|e| {
                    !(e.manager == manager
                        && e.operation == "Apply"
                        && e.subresource == subresource)
                })
                .any(|e| e.fields.iter().any(|owned| owned.starts_with(p)))
        })
        .collect();
    // Shallowest first: an item goes whole (removing its key fields first
    // would make it unfindable), and paths under it then find nothing.
    dropped.sort_by_key(|p| p.len());
    for path in dropped {
        remove_path(&mut result, path);
    }

    merge_applied(&mut result, applied, "");

    // Record ownership.
    managers.retain(|e| {
        !(e.manager == manager && e.operation == "Apply" && e.subresource == subresource)
    });
    managers.push(Entry {
        manager: manager.to_owned(),
        operation: "Apply".to_owned(),
        api_version: api_version.to_owned(),
        time: now.to_owned(),
        subresource: subresource.to_owned(),
        fields: applied_fields,
    });
    set_entries(&mut result, &managers);
    Ok(result)
}

/// Ownership after a non-apply write (create, update, patch) by `manager`:
/// it takes the fields it changed; fields that disappeared leave every set.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    api_version: &str,
    subresource: &str,
    now: &str,
) {
    let new_fields = field_set(new);
    let mut managers = old.map(entries).unwrap_or_default();
    let changed: FieldSet = new_fields
        .iter()
        .filter(|p| is_leaf(&new_fields, p) || matches!(p.last(), Some(Seg::Key(_))))
        .filter(|p| old.and_then(|o| value_at(o, p)) != value_at(new, p))
        .cloned()
        .collect();
    for entry in &mut managers {
        entry.fields.retain(|p| new_fields.contains(p));
        if !(entry.manager == manager && entry.operation == "Update") {
            entry.fields.retain(|p| !changed.contains(p));
        }
    }
    if !changed.is_empty() {
        match managers.iter_mut().find(|e| {
            e.manager == manager && e.operation == "Update" && e.subresource == subresource
        }) {
            Some(entry) => {
                entry.fields.extend(changed);
                entry.time = now.to_owned();
                entry.api_version = api_version.to_owned();
            }
            None => managers.push(Entry {
                manager: manager.to_owned(),
                operation: "Update".to_owned(),
                api_version: api_version.to_owned(),
                time: now.to_owned(),
                subresource: subresource.to_owned(),
                fields: changed,
            }),
        }
    }
    set_entries(new, &managers);
}

#[cfg(test)]
mod tests;
