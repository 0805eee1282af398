//! From JSON to [`Schemas`]: the built-in definitions (JSON Schema 2020-12,
//! as kubernetes-validate writes Kubernetes' OpenAPI) and CRD schemas
//! (OpenAPI v3 with Kubernetes' extensions).

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::{Additional, Data, ListType, Schemas, Types};

/// Where ObjectMeta's definition is: every object's `metadata`, including a
/// custom resource's, whatever its CRD says.
pub(super) const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// The dialect being compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    /// The built-in definitions: Go types, where an object that declares
    /// nothing (RawExtension, FieldsV1, JSON) holds anything.
    Builtin,
    /// A CRD's structural schema: an object that declares nothing holds
    /// nothing, unless it preserves unknown fields.
    Crd,
}

struct Compiler<'d> {
    nodes: Vec<Data>,
    names: HashMap<String, usize>,
    definitions: &'d Map<String, Value>,
}

/// Every built-in definition, with its kinds indexed.
pub(super) fn builtin(definitions: &Map<String, Value>) -> Schemas {
    let mut compiler = Compiler::new(definitions);
    for name in definitions.keys() {
        // Built-in definitions are the project's own vendored file: a node
        // the compiler cannot read is left permissive rather than failing.
        let _ = compiler.named(name);
    }
    let mut kinds = HashMap::new();
    for (name, definition) in definitions {
        let Some(id) = compiler.names.get(name) else {
            continue;
        };
        for gvk in definition
            .get("x-kubernetes-group-version-kind")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let text = |key: &str| gvk.get(key).and_then(Value::as_str).unwrap_or_default();
            kinds.insert(
                (
                    text("group").to_owned(),
                    text("version").to_owned(),
                    text("kind").to_owned(),
                ),
                *id,
            );
        }
    }
    Schemas {
        nodes: compiler.nodes,
        kinds,
        names: compiler.names,
    }
}

/// One CRD version's `openAPIV3Schema` (node 0 is its root).
pub(super) fn crd(schema: &Value, definitions: &Map<String, Value>) -> Result<Schemas, String> {
    let mut compiler = Compiler::new(definitions);
    if schema.get("$ref").is_some() {
        return Err("openAPIV3Schema: $ref is not allowed in a CRD schema".to_owned());
    }
    let root = compiler.reserve();
    let mut data = compiler.data(schema, Dialect::Crd, "openAPIV3Schema")?;
    compiler.implicit_resource_fields(&mut data)?;
    compiler.nodes[root] = data;
    Ok(Schemas {
        nodes: compiler.nodes,
        kinds: HashMap::new(),
        names: compiler.names,
    })
}

impl<'d> Compiler<'d> {
    fn new(definitions: &'d Map<String, Value>) -> Self {
        Self {
            nodes: Vec::new(),
            names: HashMap::new(),
            definitions,
        }
    }

    fn reserve(&mut self) -> usize {
        self.nodes.push(Data::default());
        self.nodes.len() - 1
    }

    /// A built-in definition, compiled once (recursive definitions refer to
    /// the node being compiled).
    fn named(&mut self, name: &str) -> Result<usize, String> {
        if let Some(id) = self.names.get(name) {
            return Ok(*id);
        }
        let definitions = self.definitions;
        let definition = definitions
            .get(name)
            .ok_or_else(|| format!("no definition {name}"))?;
        let id = self.reserve();
        self.names.insert(name.to_owned(), id);
        let data = self.data(definition, Dialect::Builtin, name)?;
        self.nodes[id] = data;
        Ok(id)
    }

    fn node(&mut self, json: &Value, dialect: Dialect, path: &str) -> Result<usize, String> {
        if let Some(reference) = json.get("$ref").and_then(Value::as_str) {
            let name = reference
                .strip_prefix("#/$defs/")
                .or_else(|| reference.strip_prefix("#/definitions/"))
                .or_else(|| reference.strip_prefix("#/components/schemas/"))
                .ok_or_else(|| format!("{path}: $ref {reference:?} is not supported"))?;
            if dialect == Dialect::Crd {
                return Err(format!("{path}: $ref is not allowed in a CRD schema"));
            }
            return self.named(name);
        }
        let id = self.reserve();
        let data = self.data(json, dialect, path)?;
        self.nodes[id] = data;
        Ok(id)
    }

    /// The apiVersion, kind and metadata every resource (a CRD's root, an
    /// embedded resource) has whether its schema says so or not.
    fn implicit_resource_fields(&mut self, data: &mut Data) -> Result<(), String> {
        let meta = self.named(OBJECT_META)?;
        let string = self.reserve();
        self.nodes[string].types = Types::STRING;
        data.properties.insert("metadata".to_owned(), meta);
        for field in ["apiVersion", "kind"] {
            data.properties.entry(field.to_owned()).or_insert(string);
        }
        Ok(())
    }

    fn data(&mut self, json: &Value, dialect: Dialect, path: &str) -> Result<Data, String> {
        let Some(object) = json.as_object() else {
            return Err(format!("{path}: a schema must be an object"));
        };
        let mut data = Data::default();
        let text = |key: &str| {
            object
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let flag = |key: &str| object.get(key).and_then(Value::as_bool).unwrap_or(false);
        let number = |key: &str| object.get(key).and_then(Value::as_f64);
        let count = |key: &str| object.get(key).and_then(Value::as_u64);

        match object.get("type") {
            Some(Value::String(name)) => data.types = Types::from_name(name),
            Some(Value::Array(names)) => {
                for name in names.iter().filter_map(Value::as_str) {
                    if name == "null" {
                        data.nullable = true;
                    } else {
                        data.types = data.types.with(Types::from_name(name));
                    }
                }
            }
            _ => {}
        }
        data.nullable |= flag("nullable");
        data.description = text("description");
        data.format = text("format");
        data.patch_strategy = text("x-kubernetes-patch-strategy");
        data.patch_merge_key = text("x-kubernetes-patch-merge-key");
        data.preserve_unknown = flag("x-kubernetes-preserve-unknown-fields");
        data.embedded_resource = flag("x-kubernetes-embedded-resource");
        data.atomic_map = text("x-kubernetes-map-type") == "atomic";
        data.int_or_string = flag("x-kubernetes-int-or-string");
        data.unique_items = flag("uniqueItems");
        data.default = object.get("default").cloned();
        data.required = strings(object.get("required"));
        if dialect == Dialect::Crd {
            // The built-in file injects apiVersion/kind enums of its own; a
            // CRD's enum is the author's.
            data.enumeration = object
                .get("enum")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
        }
        let pattern = text("pattern");
        if !pattern.is_empty() {
            let compiled = regex::Regex::new(&pattern)
                .map_err(|e| format!("{path}.pattern: {pattern:?} is not a valid regex: {e}"))?;
            data.pattern = Some((pattern, compiled));
        }
        data.minimum = number("minimum").map(|m| (m, flag("exclusiveMinimum")));
        data.maximum = number("maximum").map(|m| (m, flag("exclusiveMaximum")));
        data.min_length = count("minLength");
        data.max_length = count("maxLength");
        data.min_items = count("minItems");
        data.max_items = count("maxItems");
        data.min_properties = count("minProperties");
        data.max_properties = count("maxProperties");
        if data.int_or_string {
            data.types = Types::STRING.with(Types::INTEGER);
        }

        data.list = match text("x-kubernetes-list-type").as_str() {
            "set" => ListType::Set,
            "map" => ListType::Map(
                Some(strings(object.get("x-kubernetes-list-map-keys")))
                    .filter(|keys| !keys.is_empty())
                    .ok_or_else(|| {
                        format!(
                            "{path}: x-kubernetes-list-type map needs x-kubernetes-list-map-keys"
                        )
                    })?,
            ),
            _ => ListType::Atomic,
        };
        data.cel_rules = object
            .get("x-kubernetes-validations")
            .and_then(Value::as_array)
            .map(|rules| {
                rules
                    .iter()
                    .filter_map(|rule| rule.get("rule").and_then(Value::as_str))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();

        if let Some(Value::Object(properties)) = object.get("properties") {
            for (name, schema) in properties {
                let child = self.node(schema, dialect, &format!("{path}.properties[{name}]"))?;
                data.properties.insert(name.clone(), child);
            }
        }
        data.additional = match object.get("additionalProperties") {
            Some(Value::Bool(true)) => Additional::Any,
            Some(Value::Bool(false)) | None => Additional::Forbidden,
            Some(schema) => Additional::Schema(self.node(
                schema,
                dialect,
                &format!("{path}.additionalProperties"),
            )?),
        };
        if dialect == Dialect::Builtin
            && data.properties.is_empty()
            && data.additional == Additional::Forbidden
        {
            // A Go type without declared fields (RawExtension, FieldsV1,
            // JSON) decodes whatever it is given.
            data.additional = Additional::Any;
        }
        if let Some(items) = object.get("items") {
            data.items = Some(self.node(items, dialect, &format!("{path}.items"))?);
        }
        for (keyword, target) in [("allOf", 0), ("anyOf", 1), ("oneOf", 2)] {
            let Some(branches) = object.get(keyword).and_then(Value::as_array) else {
                continue;
            };
            let mut ids = Vec::new();
            for (i, branch) in branches.iter().enumerate() {
                ids.push(self.node(branch, dialect, &format!("{path}.{keyword}[{i}]"))?);
            }
            if dialect == Dialect::Builtin && keyword == "oneOf" {
                // IntOrString and Quantity: a value of either type.
                for id in &ids {
                    let branch = self.nodes[*id].types;
                    data.types = data.types.with(branch);
                }
                data.int_or_string = data.types == Types::STRING.with(Types::INTEGER);
                continue;
            }
            match target {
                0 => data.all_of = ids,
                1 => data.any_of = ids,
                _ => data.one_of = ids,
            }
        }
        if let Some(not) = object.get("not") {
            data.not = Some(self.node(not, dialect, &format!("{path}.not"))?);
        }
        if data.embedded_resource {
            self.implicit_resource_fields(&mut data)?;
        }
        Ok(data)
    }
}

/// The strings of a JSON list (none when it is not one).
fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}
