//! Holding an object to its schema, as the real server does on every write:
//! unknown fields are dropped (with the `fieldValidation` the request asks
//! for deciding whether that is silent, a warning or an error); a custom
//! resource then has nulls pruned, its schema's defaults filled in, and is
//! validated against its OpenAPI v3 schema.

use serde_json::Value;

use super::{Additional, ListType, Node, Types};

/// What to do with unknown fields (the `fieldValidation` query parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    /// Drop them silently.
    Ignore,
    /// Drop them and say so in a `Warning` header (the API's default).
    Warn,
    /// Refuse the request, naming them. The default for the sandbox's own
    /// writes (controllers, tests), so that its code cannot store what a
    /// real server would drop.
    #[default]
    Strict,
}

impl FieldValidation {
    /// The query parameter's value; `None` for one the server does not know.
    pub fn parse(value: Option<&str>) -> Option<FieldValidation> {
        match value {
            None | Some("") | Some("Warn") => Some(FieldValidation::Warn),
            Some("Ignore") => Some(FieldValidation::Ignore),
            Some("Strict") => Some(FieldValidation::Strict),
            Some(_) => None,
        }
    }
}

/// One validation failure, as a Status `details.causes` entry carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// `FieldValueInvalid`, `FieldValueRequired`, `FieldValueNotSupported`,
    /// `FieldValueTypeInvalid`, `FieldValueDuplicate`, `FieldValueTooLong`, …
    pub reason: &'static str,
    /// The field's path (`spec.replicas`, `spec.items[0].name`).
    pub field: String,
    /// What is wrong (`Required value`, `Invalid value: …`).
    pub message: String,
}

impl Cause {
    /// `field: message`, as the Status message lists causes.
    pub fn line(&self) -> String {
        format!("{}: {}", self.field, self.message)
    }
}

fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// Remove the fields of `value` that `node` does not declare; their paths
/// (`spec.template.spec.containers[0].bogus`) are returned in document order.
pub fn prune_unknown(node: Node<'_>, value: &mut Value) -> Vec<String> {
    let mut unknown = Vec::new();
    prune_at(node, value, "", &mut unknown);
    unknown
}

fn prune_at(node: Node<'_>, value: &mut Value, path: &str, unknown: &mut Vec<String>) {
    if node.is_any() {
        return;
    }
    match value {
        Value::Object(map) => {
            let types = node.types();
            if !(types.is_any() || types.has(Types::OBJECT)) {
                return;
            }
            map.retain(|name, child_value| match node.property(name) {
                Some(field) => {
                    prune_at(field, child_value, &child(path, name), unknown);
                    true
                }
                None => {
                    unknown.push(child(path, name));
                    false
                }
            });
        }
        Value::Array(items) => {
            let item = node.items();
            for (i, value) in items.iter_mut().enumerate() {
                prune_at(item, value, &format!("{path}[{i}]"), unknown);
            }
        }
        _ => {}
    }
}

/// What server-side apply says of fields `node` does not declare (it
/// refuses them whatever `fieldValidation` asks): the first unknown field of
/// each object, in structured-merge-diff's path syntax
/// (`.spec.template.spec.containers[name="app"].bogus`), joined as it joins
/// several errors; `None` when every field is declared.
pub fn undeclared_for_apply(node: Node<'_>, value: &Value) -> Option<String> {
    let mut errors = Vec::new();
    undeclared_at(node, value, &mut String::new(), &mut errors);
    match errors.as_slice() {
        [] => None,
        [one] => Some(one.clone()),
        many => Some(format!("errors:\n  {}", many.join("\n  "))),
    }
}

fn undeclared_at(node: Node<'_>, value: &Value, path: &mut String, errors: &mut Vec<String>) {
    if node.is_any() {
        return;
    }
    match value {
        Value::Object(map) => {
            let types = node.types();
            if !(types.is_any() || types.has(Types::OBJECT)) {
                return;
            }
            if let Some(name) = map.keys().find(|name| node.property(name).is_none()) {
                errors.push(format!("{path}.{name}: field not declared in schema"));
                return;
            }
            for (name, child_value) in map {
                let length = path.len();
                path.push('.');
                path.push_str(name);
                undeclared_at(node.field(name), child_value, path, errors);
                path.truncate(length);
            }
        }
        Value::Array(items) => {
            let item = node.items();
            for (i, value) in items.iter().enumerate() {
                let element = match node.list_type() {
                    ListType::Map(keys) => {
                        let pairs: Vec<String> = keys
                            .iter()
                            .filter_map(|k| value.get(k).map(|v| format!("{k}={v}")))
                            .collect();
                        format!("[{}]", pairs.join(","))
                    }
                    ListType::Set => format!("[={value}]"),
                    ListType::Atomic => format!("[{i}]"),
                };
                let length = path.len();
                path.push_str(&element);
                undeclared_at(item, value, path, errors);
                path.truncate(length);
            }
        }
        _ => {}
    }
}

/// Drop `null` where the schema does not allow it (a custom resource's
/// non-nullable fields), before defaults are applied.
pub fn prune_nulls(node: Node<'_>, value: &mut Value) {
    if let Value::Object(map) = value {
        map.retain(|name, child| {
            let field = node.field(name);
            !child.is_null() || field.data().nullable || field.is_any()
        });
    }
    for_children(node, value, prune_nulls);
}

/// Fill in the schema's defaults for absent fields of objects that exist.
pub fn apply_defaults(node: Node<'_>, value: &mut Value) {
    if let Value::Object(map) = value {
        for (name, id) in &node.data().properties {
            if !map.contains_key(name)
                && let Some(default) = &node.follow(*id).data().default
            {
                map.insert(name.clone(), default.clone());
            }
        }
    }
    for_children(node, value, apply_defaults);
}

/// `visit` each field of an object, or each item of a list, with its schema.
fn for_children(node: Node<'_>, value: &mut Value, visit: fn(Node<'_>, &mut Value)) {
    match value {
        Value::Object(map) => {
            for (name, child) in map.iter_mut() {
                visit(node.field(name), child);
            }
        }
        Value::Array(items) => {
            let item = node.items();
            for value in items {
                visit(item, value);
            }
        }
        _ => {}
    }
}

/// Validate `value` against `node` (OpenAPI v3 as a custom resource's schema
/// is: types, nullable, required, enum, pattern, bounds, lengths, item
/// counts, uniqueness, list types, allOf/anyOf/oneOf/not), appending what
/// fails to `causes`.
pub fn validate(node: Node<'_>, value: &Value, path: &str, causes: &mut Vec<Cause>) {
    if node.is_any() {
        return;
    }
    let data = node.data();
    let shown = || display(value);
    let at = |reason: &'static str, message: String| Cause {
        reason,
        field: path.to_owned(),
        message,
    };
    if value.is_null() {
        if !data.nullable && !data.types.is_any() {
            causes.push(at(
                "FieldValueTypeInvalid",
                format!(
                    "Invalid value: \"null\": {path} in body must be of type {}: \"null\"",
                    data.types.name()
                ),
            ));
        }
        return;
    }
    if !data.types.admits(value) {
        causes.push(at(
            "FieldValueTypeInvalid",
            format!(
                "Invalid value: \"{}\": {path} in body must be of type {}: \"{}\"",
                json_type(value),
                type_list(data.types, data.int_or_string),
                json_type(value)
            ),
        ));
        return;
    }
    if !data.enumeration.is_empty() && !data.enumeration.contains(value) {
        let supported: Vec<String> = data
            .enumeration
            .iter()
            .map(|v| match v {
                Value::String(text) => format!("{text:?}"),
                other => format!("{:?}", other.to_string()),
            })
            .collect();
        causes.push(at(
            "FieldValueNotSupported",
            format!(
                "Unsupported value: {}: supported values: {}",
                shown(),
                supported.join(", ")
            ),
        ));
    }
    match value {
        Value::String(text) => {
            let length = text.chars().count() as u64;
            if let Some(max) = data.max_length.filter(|max| length > *max) {
                causes.push(at(
                    "FieldValueTooLong",
                    format!("Too long: may not be more than {max} bytes"),
                ));
            }
            if let Some(min) = data.min_length.filter(|min| length < *min) {
                causes.push(at(
                    "FieldValueInvalid",
                    format!(
                        "Invalid value: {}: {path} in body should be at least {min} chars long",
                        shown()
                    ),
                ));
            }
            if let Some((source, pattern)) = &data.pattern
                && !pattern.is_match(text)
            {
                causes.push(at(
                    "FieldValueInvalid",
                    format!(
                        "Invalid value: {}: {path} in body should match '{source}'",
                        shown()
                    ),
                ));
            }
        }
        Value::Number(number) => {
            let n = number.as_f64().unwrap_or_default();
            if let Some((min, exclusive)) = data.minimum
                && (n < min || (exclusive && n == min))
            {
                let relation = if exclusive {
                    "greater than"
                } else {
                    "greater than or equal to"
                };
                causes.push(at(
                    "FieldValueInvalid",
                    format!(
                        "Invalid value: {}: {path} in body should be {relation} {}",
                        shown(),
                        display_number(min)
                    ),
                ));
            }
            if let Some((max, exclusive)) = data.maximum
                && (n > max || (exclusive && n == max))
            {
                let relation = if exclusive {
                    "less than"
                } else {
                    "less than or equal to"
                };
                causes.push(at(
                    "FieldValueInvalid",
                    format!(
                        "Invalid value: {}: {path} in body should be {relation} {}",
                        shown(),
                        display_number(max)
                    ),
                ));
            }
        }
        Value::Array(items) => {
            let count = items.len() as u64;
            causes.extend(counted(
                count,
                data.min_items,
                data.max_items,
                "items",
                path,
            ));
            duplicates(node, items, path, causes);
            let item = node.items();
            for (i, value) in items.iter().enumerate() {
                validate(item, value, &format!("{path}[{i}]"), causes);
            }
        }
        Value::Object(map) => {
            for name in &data.required {
                if !map.contains_key(name) {
                    causes.push(Cause {
                        reason: "FieldValueRequired",
                        field: child(path, name),
                        message: "Required value".to_owned(),
                    });
                }
            }
            let count = map.len() as u64;
            causes.extend(counted(
                count,
                data.min_properties,
                data.max_properties,
                "properties",
                path,
            ));
            for (name, child_value) in map {
                let field = match (data.properties.get(name), data.additional) {
                    (Some(id), _) => node.follow(*id),
                    (None, Additional::Schema(id)) => node.follow(id),
                    _ => continue,
                };
                validate(field, child_value, &child(path, name), causes);
            }
        }
        _ => {}
    }
    combinators(node, value, path, causes);
}

/// What `minItems`/`maxItems` (or `minProperties`/`maxProperties`) say of
/// `count` entries at `path`. The real server words "too many" the same way
/// for both ("items"), "too few" with the entries' name.
fn counted(
    count: u64,
    min: Option<u64>,
    max: Option<u64>,
    entries: &str,
    path: &str,
) -> Vec<Cause> {
    let mut causes = Vec::new();
    if let Some(max) = max.filter(|max| count > *max) {
        causes.push(Cause {
            reason: "FieldValueTooMany",
            field: path.to_owned(),
            message: format!("Too many: {count}: must have at most {max} items"),
        });
    }
    if let Some(min) = min.filter(|min| count < *min) {
        causes.push(Cause {
            reason: "FieldValueInvalid",
            field: path.to_owned(),
            message: format!(
                "Invalid value: {count}: {path} in body should have at least {min} {entries}"
            ),
        });
    }
    causes
}

/// allOf / anyOf / oneOf / not: value checks only (structural schemas allow
/// no types or properties there that the node itself does not declare).
fn combinators(node: Node<'_>, value: &Value, path: &str, causes: &mut Vec<Cause>) {
    let data = node.data();
    let passes = |id: usize| {
        let mut inner = Vec::new();
        validate_branch(node.follow(id), value, path, &mut inner);
        inner
    };
    for id in &data.all_of {
        causes.extend(passes(*id));
    }
    if !data.any_of.is_empty() && data.any_of.iter().all(|id| !passes(*id).is_empty()) {
        let mut first = passes(data.any_of[0]);
        causes.append(&mut first);
        if !data.int_or_string {
            causes.push(Cause {
                reason: "FieldValueInvalid",
                field: path.to_owned(),
                message: format!(
                    "Invalid value: {}: {path} in body must validate at least one schema (anyOf)",
                    display(value)
                ),
            });
        }
    }
    if !data.one_of.is_empty() {
        let matching = data
            .one_of
            .iter()
            .filter(|id| passes(**id).is_empty())
            .count();
        if matching != 1 {
            causes.push(Cause {
                reason: "FieldValueInvalid",
                field: path.to_owned(),
                message: format!(
                    "Invalid value: {}: {path} in body must validate one and only one schema (oneOf)",
                    display(value)
                ),
            });
        }
    }
    if let Some(id) = data.not
        && passes(id).is_empty()
    {
        causes.push(Cause {
            reason: "FieldValueInvalid",
            field: path.to_owned(),
            message: format!(
                "Invalid value: {}: {path} in body must not validate the schema (not)",
                display(value)
            ),
        });
    }
}

/// A combinator branch: it may omit `type` (it then constrains values of
/// the node's type).
fn validate_branch(node: Node<'_>, value: &Value, path: &str, causes: &mut Vec<Cause>) {
    validate(node, value, path, causes);
}

/// Items that a set or map list, or `uniqueItems`, forbids twice.
fn duplicates(node: Node<'_>, items: &[Value], path: &str, causes: &mut Vec<Cause>) {
    let key_of = |item: &Value| -> Option<Value> {
        match node.list_type() {
            ListType::Atomic if node.data().unique_items => Some(item.clone()),
            ListType::Atomic => None,
            ListType::Set => Some(item.clone()),
            ListType::Map(keys) => Some(Value::Object(
                keys.iter()
                    .filter_map(|k| item.get(k).map(|v| (k.clone(), v.clone())))
                    .collect(),
            )),
        }
    };
    let mut seen: Vec<Value> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Some(key) = key_of(item) else {
            return;
        };
        if seen.contains(&key) {
            causes.push(Cause {
                reason: "FieldValueDuplicate",
                field: format!("{path}[{i}]"),
                message: format!("Duplicate value: {}", display(&key)),
            });
        } else {
            seen.push(key);
        }
    }
}

/// A value as Go's `%#v`-ish error messages quote it: strings quoted, the
/// rest as JSON.
fn display(value: &Value) -> String {
    match value {
        Value::String(text) => format!("{text:?}"),
        other => other.to_string(),
    }
}

fn display_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Object(_) => "object",
        Value::Array(_) => "array",
        Value::String(_) => "string",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::Null => "null",
    }
}

fn type_list(types: Types, int_or_string: bool) -> String {
    if int_or_string {
        return "integer,string".to_owned();
    }
    types.name().to_owned()
}
