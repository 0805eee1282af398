//! Field ownership (`metadata.managedFields`) and server-side apply.
//!
//! A field set is a set of paths into an object (`fieldset`); its
//! serialised form is the API's `FieldsV1` tree (`fields_v1`). This module
//! merges applied configurations and records who owns what after a write.

mod fields_v1;
mod fieldset;

use serde_json::Value;

pub use fields_v1::{Entry, entries, from_fields_v1, set_entries, to_fields_v1};
pub use fieldset::{
    FieldSet, Path, Seg, display_path, field_set, item_key, map_keys, remove_path, value_at,
};

use fieldset::is_leaf;

use crate::schema::{ListType, Node};

/// Merge an applied configuration into a live object as `schema` says:
/// maps key by key (unless atomic), map lists item by item, set lists by
/// value, everything else replaced.
pub fn merge_applied(live: &mut Value, applied: &Value, schema: Node<'_>) {
    match (live, applied) {
        (Value::Object(live), Value::Object(applied)) if !schema.is_atomic_map() => {
            for (name, value) in applied {
                match live.get_mut(name) {
                    Some(existing) => merge_applied(existing, value, schema.field(name)),
                    None => {
                        live.insert(name.clone(), value.clone());
                    }
                }
            }
        }
        (Value::Array(live), Value::Array(applied)) => {
            let keys = map_keys(schema, applied).filter(|_| live.iter().all(Value::is_object));
            match (keys, schema.list_type()) {
                (Some(keys), _) => {
                    for item in applied {
                        let key = item_key(item, keys);
                        match live.iter_mut().find(|l| item_key(l, keys) == key) {
                            Some(existing) => merge_applied(existing, item, schema.items()),
                            None => live.push(item.clone()),
                        }
                    }
                }
                (None, ListType::Set) => {
                    for item in applied {
                        if !live.contains(item) {
                            live.push(item.clone());
                        }
                    }
                }
                (None, _) => *live = applied.clone(),
            }
        }
        (live, applied) => *live = applied.clone(),
    }
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
/// object does not exist yet), lists merged as `schema` declares them.
/// Returns the new object, or the conflicts when `force` is false and
/// another manager owns a field with a different value.
#[allow(clippy::too_many_arguments, reason = "one apply, every input it has")]
pub fn apply(
    schema: Node<'_>,
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    api_version: &str,
    subresource: &str,
    force: bool,
    now: &str,
) -> Result<Value, Vec<Conflict>> {
    let applied_fields = field_set(applied, schema);
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
            .filter(|p| live.and_then(|l| value_at(l, schema, p)) != value_at(applied, schema, p))
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
        remove_path(&mut result, schema, path);
    }

    merge_applied(&mut result, applied, schema);

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
    schema: Node<'_>,
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    api_version: &str,
    subresource: &str,
    now: &str,
) {
    let new_fields = field_set(new, schema);
    let mut managers = old.map(entries).unwrap_or_default();
    let changed: FieldSet = new_fields
        .iter()
        .filter(|p| is_leaf(&new_fields, p) || matches!(p.last(), Some(Seg::Key(_))))
        .filter(|p| old.and_then(|o| value_at(o, schema, p)) != value_at(new, schema, p))
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
