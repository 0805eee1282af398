//! The serialised form of field sets, the API's `FieldsV1` tree, and the
//! `metadata.managedFields` entries that carry them.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::fieldset::{FieldSet, Path, Seg};

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
