//! Discovery documents and Table output.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::registry::ResourceType;

/// `/apis`: every non-core group with its versions.
pub fn groups(types: &[ResourceType]) -> Value {
    let mut by_group: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for t in types.iter().filter(|t| !t.group.is_empty()) {
        let versions = by_group.entry(t.group.as_str()).or_default();
        if !versions.contains(&t.version.as_str()) {
            versions.push(t.version.as_str());
        }
    }
    let groups: Vec<Value> = by_group
        .into_iter()
        .map(|(group, mut versions)| {
            // Preferred: the highest stable version (v2 over v1, v1 over v1beta1).
            versions.sort_by_key(|v| std::cmp::Reverse(version_rank(v)));
            let entries: Vec<Value> = versions
                .iter()
                .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
                .collect();
            json!({"name": group, "versions": entries, "preferredVersion": entries[0]})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn version_rank(version: &str) -> (u32, u32, u32) {
    let rest = version.trim_start_matches('v');
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let major = digits.parse().unwrap_or(0);
    let tail = &rest[digits.len()..];
    let (stability, minor) = if tail.is_empty() {
        (2, 0)
    } else if let Some(n) = tail.strip_prefix("beta") {
        (1, n.parse().unwrap_or(0))
    } else {
        (0, tail.trim_start_matches("alpha").parse().unwrap_or(0))
    };
    (stability, major, minor)
}

/// The types served in one group-version; `None` when there are none.
fn served<'t>(
    types: &'t [ResourceType],
    group: &str,
    version: &str,
) -> Option<Vec<&'t ResourceType>> {
    let served: Vec<&ResourceType> = types
        .iter()
        .filter(|t| t.group == group && t.version == version)
        .collect();
    (!served.is_empty()).then_some(served)
}

/// `/api/v1`, `/apis/<group>/<version>`: the APIResourceList.
pub fn resources(types: &[ResourceType], group: &str, version: &str) -> Option<Value> {
    let served = served(types, group, version)?;
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    let resources: Vec<Value> = served.iter().flat_map(|t| t.discovery()).collect();
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}),
    )
}

fn age(object: &Value) -> String {
    let Some(created) = object
        .pointer("/metadata/creationTimestamp")
        .and_then(Value::as_str)
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
    else {
        return "<unknown>".to_owned();
    };
    let seconds = jiff::Timestamp::now().as_second() - created.as_second();
    match seconds {
        s if s < 120 => format!("{}s", s.max(0)),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// A `meta.k8s.io/v1` Table, as `kubectl get` asks for.
pub fn table(rt: &ResourceType, objects: &[Value], rv: u64) -> Value {
    if !rt.printer_columns.is_empty() {
        return custom_table(rt, objects, rv);
    }
    let mut columns = vec![
        json!({"name": "Name", "type": "string", "format": "name", "description": "Name", "priority": 0}),
    ];
    let ready = matches!(rt.kind.as_str(), "Deployment" | "StatefulSet");
    if ready {
        columns.push(json!({"name": "Ready", "type": "string", "format": "", "description": "Ready replicas", "priority": 0}));
    }
    columns.push(
        json!({"name": "Age", "type": "string", "format": "", "description": "Age", "priority": 0}),
    );
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| {
            let mut cells = vec![name_cell(object)];
            if ready {
                let want = object
                    .pointer("/spec/replicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(1);
                let have = object
                    .pointer("/status/readyReplicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                cells.push(json!(format!("{have}/{want}")));
            }
            cells.push(json!(age(object)));
            json!({"cells": cells, "object": object})
        })
        .collect();
    table_of(&columns, &rows, rv)
}

/// The Table of a custom resource with printer columns: Name, then each
/// column's value as the API server's table convertor computes it (a date
/// as an age, several values joined by commas, nothing found as null).
fn custom_table(rt: &ResourceType, objects: &[Value], rv: u64) -> Value {
    let mut columns = vec![
        json!({"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace.", "priority": 0}),
    ];
    columns.extend(rt.printer_columns.iter().map(|c| {
        json!({"name": c.name, "type": c.kind, "format": c.format, "description": c.description, "priority": c.priority})
    }));
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| {
            let mut cells = vec![name_cell(object)];
            cells.extend(rt.printer_columns.iter().map(|column| {
                let found = column.path.find(object);
                match (column.kind.as_str(), found.as_slice()) {
                    (_, []) => Value::Null,
                    ("date", [first, ..]) => {
                        json!(age(&json!({"metadata": {"creationTimestamp": first}})))
                    }
                    ("string", values) if values.len() > 1 => json!(
                        values
                            .iter()
                            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                            .collect::<Vec<_>>()
                            .join(",")
                    ),
                    ("string", [Value::String(s)]) => json!(s),
                    ("string", [other]) => json!(other.to_string()),
                    (_, [first, ..]) => (*first).clone(),
                }
            }));
            json!({"cells": cells, "object": object})
        })
        .collect();
    table_of(&columns, &rows, rv)
}

/// The `meta.k8s.io/v1` Table envelope.
fn table_of(columns: &[Value], rows: &[Value], rv: u64) -> Value {
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv.to_string()},
        "columnDefinitions": columns,
        "rows": rows,
    })
}

/// A row's first cell: the object's name.
fn name_cell(object: &Value) -> Value {
    object
        .pointer("/metadata/name")
        .cloned()
        .unwrap_or(Value::Null)
}
