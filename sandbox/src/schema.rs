//! Schemas: what the real API server knows about the shape of every object.
//!
//! Built-in kinds come from Kubernetes 1.32's own OpenAPI definitions
//! (vendored in `third_party/kubernetes-json-schema`, see its README); custom
//! kinds from their CustomResourceDefinition's `openAPIV3Schema`. Both compile
//! to one form, a [`Schemas`] arena walked with a [`Node`] cursor, which
//! answers the questions the server asks while writing an object:
//!
//! - server-side apply and strategic merge: is this list atomic, a set, or a
//!   map keyed by which fields (`x-kubernetes-list-type`,
//!   `x-kubernetes-list-map-keys`, `x-kubernetes-patch-strategy`,
//!   `x-kubernetes-patch-merge-key`);
//! - decoding: which fields are unknown (dropped, warned about or refused,
//!   per `fieldValidation`; [`conform`]);
//! - custom resources: pruning, defaults and OpenAPI v3 validation
//!   ([`conform`]);
//! - the OpenAPI documents kubectl reads ([`openapi`]).

mod compile;
pub mod conform;
pub mod openapi;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

use serde_json::Value;

pub use conform::{Cause, FieldValidation};

/// Kubernetes 1.32's definitions, as JSON Schema 2020-12 (`$defs`).
const BUILTIN_DEFINITIONS: &str =
    include_str!("../../third_party/kubernetes-json-schema/v1.32.0/_definitions.json");

/// The value types a node accepts (an empty set accepts any).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Types(u8);

impl Types {
    /// `object`.
    pub const OBJECT: Types = Types(1);
    /// `array`.
    pub const ARRAY: Types = Types(2);
    /// `string`.
    pub const STRING: Types = Types(4);
    /// `integer`.
    pub const INTEGER: Types = Types(8);
    /// `number` (integers are numbers too).
    pub const NUMBER: Types = Types(16);
    /// `boolean`.
    pub const BOOLEAN: Types = Types(32);

    fn from_name(name: &str) -> Types {
        match name {
            "object" => Self::OBJECT,
            "array" => Self::ARRAY,
            "string" => Self::STRING,
            "integer" => Self::INTEGER,
            "number" => Self::NUMBER,
            "boolean" => Self::BOOLEAN,
            _ => Types(0),
        }
    }

    /// Whether no type is declared (anything goes).
    pub fn is_any(self) -> bool {
        self.0 == 0
    }

    /// Whether `other`'s bits are all here.
    pub fn has(self, other: Types) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }

    fn with(self, other: Types) -> Types {
        Types(self.0 | other.0)
    }

    /// Whether `value` is of one of these types.
    pub fn admits(self, value: &Value) -> bool {
        if self.is_any() {
            return true;
        }
        match value {
            Value::Object(_) => self.has(Self::OBJECT),
            Value::Array(_) => self.has(Self::ARRAY),
            Value::String(_) => self.has(Self::STRING),
            Value::Bool(_) => self.has(Self::BOOLEAN),
            Value::Number(n) => {
                self.has(Self::NUMBER) || (self.has(Self::INTEGER) && (n.is_i64() || n.is_u64()))
            }
            Value::Null => false,
        }
    }

    /// The first declared type's name, as messages name it.
    pub fn name(self) -> &'static str {
        [
            (Self::OBJECT, "object"),
            (Self::ARRAY, "array"),
            (Self::STRING, "string"),
            (Self::INTEGER, "integer"),
            (Self::NUMBER, "number"),
            (Self::BOOLEAN, "boolean"),
        ]
        .into_iter()
        .find(|(t, _)| self.has(*t))
        .map_or("", |(_, name)| name)
    }
}

/// How a list's items are identified.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ListType {
    /// The list is one value (the default).
    #[default]
    Atomic,
    /// Items are scalars, identified by value.
    Set,
    /// Items are objects, identified by these key fields.
    Map(Vec<String>),
}

/// What fields an object accepts beyond its declared properties.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Additional {
    /// None: anything else is unknown.
    #[default]
    Forbidden,
    /// Anything, kept as is.
    Any,
    /// Values of this node (a map).
    Schema(usize),
}

/// One compiled schema node.
#[derive(Debug, Default)]
struct Data {
    types: Types,
    nullable: bool,
    description: String,
    format: String,
    properties: BTreeMap<String, usize>,
    additional: Additional,
    preserve_unknown: bool,
    items: Option<usize>,
    list: ListType,
    /// `x-kubernetes-map-type: atomic`: the object is one value.
    atomic_map: bool,
    patch_strategy: String,
    patch_merge_key: String,
    required: Vec<String>,
    enumeration: Vec<Value>,
    pattern: Option<(String, regex::Regex)>,
    minimum: Option<(f64, bool)>,
    maximum: Option<(f64, bool)>,
    min_length: Option<u64>,
    max_length: Option<u64>,
    min_items: Option<u64>,
    max_items: Option<u64>,
    min_properties: Option<u64>,
    max_properties: Option<u64>,
    unique_items: bool,
    default: Option<Value>,
    int_or_string: bool,
    embedded_resource: bool,
    all_of: Vec<usize>,
    any_of: Vec<usize>,
    one_of: Vec<usize>,
    not: Option<usize>,
    /// `x-kubernetes-validations` rules (CEL), which the sandbox does not evaluate.
    cel_rules: Vec<String>,
}

/// A compiled set of schemas (all built-in definitions, or one CRD version's).
#[derive(Default)]
pub struct Schemas {
    nodes: Vec<Data>,
    /// Root of each kind, by group, version and kind.
    kinds: HashMap<(String, String, String), usize>,
    /// Definitions by name (`io.k8s.api.apps.v1.Deployment`).
    names: HashMap<String, usize>,
}

impl std::fmt::Debug for Schemas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schemas")
            .field("nodes", &self.nodes.len())
            .field("kinds", &self.kinds.len())
            .finish_non_exhaustive()
    }
}

/// The parsed built-in definitions (`$defs`), for serving OpenAPI.
pub(crate) fn builtin_definitions() -> &'static serde_json::Map<String, Value> {
    static DEFINITIONS: OnceLock<serde_json::Map<String, Value>> = OnceLock::new();
    DEFINITIONS.get_or_init(|| {
        serde_json::from_str::<Value>(BUILTIN_DEFINITIONS)
            .ok()
            .and_then(
                |mut document| match document.get_mut("$defs").map(Value::take) {
                    Some(Value::Object(defs)) => Some(defs),
                    _ => None,
                },
            )
            .unwrap_or_default()
    })
}

/// The built-in kinds' schemas.
pub fn builtin() -> &'static Schemas {
    static BUILTIN: OnceLock<Schemas> = OnceLock::new();
    BUILTIN.get_or_init(|| compile::builtin(builtin_definitions()))
}

/// A CRD version's schema, shared by the resource types that serve it: the
/// compiled form and the JSON it came from (served as OpenAPI).
#[derive(Clone)]
pub struct CrdSchema {
    compiled: Arc<Schemas>,
    source: Arc<Value>,
}

impl PartialEq for CrdSchema {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.compiled, &other.compiled) || self.source == other.source
    }
}

impl Eq for CrdSchema {}

impl std::fmt::Debug for CrdSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.compiled.fmt(f)
    }
}

impl CrdSchema {
    /// Compile a CRD version's `openAPIV3Schema`; the error says what the
    /// sandbox cannot read (the CRD is then refused, as a real server refuses
    /// a schema that is not structural).
    pub fn compile(schema: &Value) -> Result<CrdSchema, String> {
        let compiled = compile::crd(schema, builtin_definitions())?;
        Ok(CrdSchema {
            compiled: Arc::new(compiled),
            source: Arc::new(schema.clone()),
        })
    }

    /// The root node.
    pub fn root(&self) -> Node<'_> {
        Node::at(&self.compiled, 0)
    }

    /// The schema as the CRD wrote it.
    pub fn source(&self) -> &Value {
        &self.source
    }
}

impl Schemas {
    /// The root schema of a built-in kind.
    pub fn kind(&self, group: &str, version: &str, kind: &str) -> Node<'_> {
        match self
            .kinds
            .get(&(group.to_owned(), version.to_owned(), kind.to_owned()))
        {
            Some(id) => Node::at(self, *id),
            None => Node::ANY,
        }
    }

    /// A definition by name.
    pub fn named(&self, name: &str) -> Node<'_> {
        match self.names.get(name) {
            Some(id) => Node::at(self, *id),
            None => Node::ANY,
        }
    }
}

/// A place in a schema. [`Node::ANY`] stands for "no schema": any value,
/// unknown fields kept, lists atomic.
#[derive(Clone, Copy)]
pub struct Node<'s>(Option<(&'s Schemas, usize)>);

impl std::fmt::Debug for Node<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some((_, id)) => write!(f, "Node({id})"),
            None => write!(f, "Node(any)"),
        }
    }
}

static NO_DATA: Data = Data {
    types: Types(0),
    nullable: true,
    description: String::new(),
    format: String::new(),
    properties: BTreeMap::new(),
    additional: Additional::Any,
    preserve_unknown: true,
    items: None,
    list: ListType::Atomic,
    atomic_map: false,
    patch_strategy: String::new(),
    patch_merge_key: String::new(),
    required: Vec::new(),
    enumeration: Vec::new(),
    pattern: None,
    minimum: None,
    maximum: None,
    min_length: None,
    max_length: None,
    min_items: None,
    max_items: None,
    min_properties: None,
    max_properties: None,
    unique_items: false,
    default: None,
    int_or_string: false,
    embedded_resource: false,
    all_of: Vec::new(),
    any_of: Vec::new(),
    one_of: Vec::new(),
    not: None,
    cel_rules: Vec::new(),
};

impl<'s> Node<'s> {
    /// No schema.
    pub const ANY: Node<'static> = Node(None);

    fn at(schemas: &'s Schemas, id: usize) -> Self {
        Node(Some((schemas, id)))
    }

    fn data(self) -> &'s Data {
        match self.0 {
            Some((schemas, id)) => schemas.nodes.get(id).unwrap_or(&NO_DATA),
            None => &NO_DATA,
        }
    }

    fn follow(self, id: usize) -> Node<'s> {
        match self.0 {
            Some((schemas, _)) => Node::at(schemas, id),
            None => Node::ANY,
        }
    }

    /// Whether there is no schema here.
    pub fn is_any(self) -> bool {
        self.0.is_none()
    }

    /// The schema of field `name` of an object here, or `None` when the
    /// field is unknown (not declared, no additional properties, unknown
    /// fields not preserved).
    pub fn property(self, name: &str) -> Option<Node<'s>> {
        let data = self.data();
        if let Some(id) = data.properties.get(name) {
            return Some(self.follow(*id));
        }
        match data.additional {
            Additional::Schema(id) => Some(self.follow(id)),
            Additional::Any => Some(Node::ANY),
            Additional::Forbidden if data.preserve_unknown => Some(Node::ANY),
            Additional::Forbidden => None,
        }
    }

    /// The schema of field `name`, [`Node::ANY`] when unknown.
    pub fn field(self, name: &str) -> Node<'s> {
        self.property(name).unwrap_or(Node::ANY)
    }

    /// The schema of a list's items.
    pub fn items(self) -> Node<'s> {
        self.data().items.map_or(Node::ANY, |id| self.follow(id))
    }

    /// How a list here is merged by server-side apply.
    pub fn list_type(self) -> &'s ListType {
        &self.data().list
    }

    /// Whether an object here is one value (`x-kubernetes-map-type: atomic`).
    pub fn is_atomic_map(self) -> bool {
        self.data().atomic_map
    }

    /// The strategic-merge key of a list here (`x-kubernetes-patch-merge-key`).
    pub fn patch_merge_key(self) -> Option<&'s str> {
        Some(self.data().patch_merge_key.as_str()).filter(|k| !k.is_empty())
    }

    /// Whether strategic merge patch merges this list (`merge` strategy)
    /// rather than replacing it.
    pub fn patch_merges(self) -> bool {
        self.data()
            .patch_strategy
            .split(',')
            .any(|s| s.trim() == "merge")
    }

    /// Whether strategic merge honours `$retainKeys` here.
    pub fn patch_retains_keys(self) -> bool {
        self.data()
            .patch_strategy
            .split(',')
            .any(|s| s.trim() == "retainKeys")
    }

    /// The declared types.
    pub fn types(self) -> Types {
        self.data().types
    }

    /// The schema's description.
    pub fn description(self) -> &'s str {
        &self.data().description
    }
}

#[cfg(test)]
mod tests;
