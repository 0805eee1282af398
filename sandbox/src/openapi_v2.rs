//! The OpenAPI v2 (Swagger 2.0) document in the protobuf form kubectl asks for.
//!
//! kubectl (1.32) sends `GET /openapi/v2` with
//! `Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf` and
//! unmarshals the body as gnostic's `openapi.v2.Document`
//! (github.com/google/gnostic-models, `openapiv2/OpenAPIv2.proto`). The real
//! API server makes that body with `openapi_v2.ParseDocument(json)` and
//! `proto.Marshal` (kube-openapi `pkg/handler`). [`encode`] does the same
//! from the JSON document, writing the protobuf wire format by hand.
//!
//! # What kubectl reads, and so what the JSON document must satisfy
//!
//! - `k8s.io/kube-openapi/pkg/util/proto` `NewOpenAPIData` parses every entry
//!   of `definitions`; one bad definition fails the whole document (then
//!   `kubectl explain`, client-side validation and apply's OpenAPI patch
//!   lookups fail or fall back):
//!   - a `$ref` must be `#/definitions/<a definition that exists>`, and a
//!     schema with `$ref` may carry neither `properties` nor `type`;
//!   - `type` has at most one value; `array` needs exactly one `items`
//!     schema; any other type must be `string`, `number`, `integer` or
//!     `boolean` (no `null`, no `file`);
//!   - `properties` present (even `{}`) with `type` `object` or no type makes
//!     a kind with fields and `required`; `object` without `properties` is a
//!     map of the `additionalProperties` schema (or of anything); no type and
//!     no `properties` is an arbitrary value;
//!   - `default` and every `x-…` vendor extension are read back with
//!     `yaml.Unmarshal(Any.yaml)` (go.yaml.in/yaml/v2); an extension that
//!     does not parse is silently dropped.
//! - `k8s.io/kubectl/pkg/util/openapi` `NewOpenAPIData` maps
//!   group/version/kind to a model through each definition's
//!   `x-kubernetes-group-version-kind`: a list of maps with string `group`
//!   (`""` for core), `version` and `kind`. A kind without one is not found
//!   by `LookupResource`, and client-side validation then skips it.
//! - `GetConsumes(gvk, "PATCH")` (`kubectl apply`): the path whose `patch`
//!   operation has the vendor extension `x-kubernetes-group-version-kind` (a
//!   single map, read with sigs.k8s.io/yaml into `map[string]string`) equal
//!   to the kind; strategic merge patch is used only if that operation's
//!   `consumes` lists `application/strategic-merge-patch+json`. The patch
//!   itself then follows the string extensions `x-kubernetes-patch-strategy`
//!   and `x-kubernetes-patch-merge-key` on the model's properties.
//! - cli-runtime's `QueryParamVerifier` (used when `/openapi/v3` is
//!   unavailable) treats a kind as supporting server-side field validation
//!   when that same `patch` operation has a query parameter named
//!   `fieldValidation`, inline or as `$ref: "#/parameters/<name>"` into the
//!   top-level `parameters`. Without it, `--validate=strict` makes kubectl's
//!   `validation.NewSchemaValidation` check objects itself against
//!   `LookupResource(gvk)`: types, required fields and unknown fields.
//! - `kubectl explain --output plaintext-openapiv2` prints the
//!   descriptions, types and required fields of the models.
//!
//! # Encoding
//!
//! - As Go's `proto.Marshal` does for proto3, zero scalars (empty strings,
//!   `false`, `0`) are left out, while a sub-message is written whenever its
//!   JSON key is present, even if empty: `properties: {}` must stay distinct
//!   from no `properties` (a kind versus a map, above). Oneof members are
//!   always written, so `additionalProperties: false` survives.
//! - gnostic's `NewAny` stores `compiler.Marshal(node)`, the value as block
//!   YAML text, in `Any.yaml` and leaves `Any.value` unset; vendor extensions
//!   go the same way into `NamedAny`. Here the YAML is written by
//!   `yaml_text`: block style with two-space indentation, strings plain
//!   when that cannot be misread and double-quoted otherwise. The text is not
//!   byte-for-byte what yaml.v3 prints, but reads back as the same value.
//! - gnostic rejects a document with keys the schema does not allow; here
//!   unknown keys are skipped instead, as are parameters with an unknown
//!   `in`. An `items` array (also refused by gnostic) becomes several
//!   `ItemsItem` schemas.

mod yaml;

use serde_json::{Map, Value};
use yaml::yaml_text;

type Object = Map<String, Value>;

/// Encode a Swagger 2.0 document (JSON, as the real API server serves at
/// `/openapi/v2` in JSON) as gnostic's protobuf `openapi.v2.Document`.
pub fn encode(document: &Value) -> Vec<u8> {
    let mut w = Writer::default();
    if let Some(d) = document.as_object() {
        write_document(&mut w, d);
    }
    w.buf
}

// ---------------------------------------------------------------------------
// Protobuf wire format.

/// Wire type of varint fields (bool, int64).
const VARINT: u64 = 0;
/// Wire type of 64-bit fields (double).
const FIXED64: u64 = 1;
/// Wire type of length-delimited fields (string, message).
const LEN: u64 = 2;

/// Appends protobuf fields to a buffer.
#[derive(Default)]
struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    fn varint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.buf.push((value & 0x7f) as u8 | 0x80);
            value >>= 7;
        }
        self.buf.push(value as u8);
    }

    fn key(&mut self, field: u32, wire: u64) {
        self.varint((u64::from(field) << 3) | wire);
    }

    fn bytes(&mut self, field: u32, data: &[u8]) {
        self.key(field, LEN);
        self.varint(data.len() as u64);
        self.buf.extend_from_slice(data);
    }

    /// A singular `string`: left out when empty.
    fn string(&mut self, field: u32, value: &str) {
        if !value.is_empty() {
            self.bytes(field, value.as_bytes());
        }
    }

    /// One element of a `repeated string`: always written.
    fn element(&mut self, field: u32, value: &str) {
        self.bytes(field, value.as_bytes());
    }

    /// A singular `bool`: left out when false.
    fn bool(&mut self, field: u32, value: bool) {
        if value {
            self.oneof_bool(field, true);
        }
    }

    /// A `bool` member of a oneof: written even when false.
    fn oneof_bool(&mut self, field: u32, value: bool) {
        self.key(field, VARINT);
        self.varint(u64::from(value));
    }

    /// A `double`: left out when zero.
    fn double(&mut self, field: u32, value: f64) {
        if value.to_bits() != 0 {
            self.key(field, FIXED64);
            self.buf.extend_from_slice(&value.to_le_bytes());
        }
    }

    /// An `int64`: left out when zero; negatives take ten bytes.
    fn int64(&mut self, field: u32, value: i64) {
        if value != 0 {
            self.key(field, VARINT);
            self.varint(value as u64);
        }
    }

    /// A sub-message, written (possibly empty) whatever `body` adds.
    fn message(&mut self, field: u32, body: impl FnOnce(&mut Writer)) {
        let mut inner = Writer::default();
        body(&mut inner);
        self.bytes(field, &inner.buf);
    }
}

// ---------------------------------------------------------------------------
// Reading the JSON side.

fn object<'a>(o: &'a Object, key: &str) -> Option<&'a Object> {
    o.get(key).and_then(Value::as_object)
}

fn array<'a>(o: &'a Object, key: &str) -> &'a [Value] {
    o.get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn put_str(w: &mut Writer, field: u32, o: &Object, key: &str) {
    if let Some(s) = o.get(key).and_then(Value::as_str) {
        w.string(field, s);
    }
}

fn put_strings(w: &mut Writer, field: u32, o: &Object, key: &str) {
    for s in array(o, key).iter().filter_map(Value::as_str) {
        w.element(field, s);
    }
}

fn put_bool(w: &mut Writer, field: u32, o: &Object, key: &str) {
    if let Some(b) = o.get(key).and_then(Value::as_bool) {
        w.bool(field, b);
    }
}

fn put_double(w: &mut Writer, field: u32, o: &Object, key: &str) {
    if let Some(n) = o.get(key).and_then(Value::as_f64) {
        w.double(field, n);
    }
}

/// An `int64` from a JSON integer (gnostic takes no fractions here).
fn put_int(w: &mut Writer, field: u32, o: &Object, key: &str) {
    if let Some(n) = o.get(key).and_then(Value::as_i64) {
        w.int64(field, n);
    }
}

fn put_any(w: &mut Writer, field: u32, o: &Object, key: &str) {
    if let Some(v) = o.get(key) {
        w.message(field, |w| any(w, v));
    }
}

fn put_anys(w: &mut Writer, field: u32, o: &Object, key: &str) {
    for v in array(o, key) {
        w.message(field, |w| any(w, v));
    }
}

/// Every `x-…` key of `o` as a `repeated NamedAny` field.
fn put_extensions(w: &mut Writer, field: u32, o: &Object) {
    for (name, value) in o.iter().filter(|(k, _)| k.starts_with("x-")) {
        w.message(field, |w| named_any(w, name, value));
    }
}

/// A `Named…` map entry: `name = 1` and the message `value = 2`.
fn named(w: &mut Writer, field: u32, name: &str, value: impl FnOnce(&mut Writer)) {
    w.message(field, |w| {
        w.string(1, name);
        w.message(2, value);
    });
}

// ---------------------------------------------------------------------------
// Messages of openapi.v2.

/// `openapi.v2.Document`
fn write_document(w: &mut Writer, d: &Object) {
    put_str(w, 1, d, "swagger");
    if let Some(i) = object(d, "info") {
        w.message(2, |w| info(w, i));
    }
    put_str(w, 3, d, "host");
    put_str(w, 4, d, "basePath");
    put_strings(w, 5, d, "schemes");
    put_strings(w, 6, d, "consumes");
    put_strings(w, 7, d, "produces");
    if let Some(p) = object(d, "paths") {
        w.message(8, |w| paths(w, p));
    }
    if let Some(defs) = object(d, "definitions") {
        // `openapi.v2.Definitions`: repeated NamedSchema.
        w.message(9, |w| {
            for (name, s) in defs {
                named(w, 1, name, |w| schema(w, s));
            }
        });
    }
    if let Some(params) = object(d, "parameters") {
        // `openapi.v2.ParameterDefinitions`: repeated NamedParameter.
        w.message(10, |w| {
            for (name, p) in params {
                if let Some((p, place)) = p.as_object().and_then(|p| Some((p, place(p)?))) {
                    named(w, 1, name, |w| parameter(w, p, place));
                }
            }
        });
    }
    if let Some(responses) = object(d, "responses") {
        // `openapi.v2.ResponseDefinitions`: repeated NamedResponse.
        w.message(11, |w| {
            for (name, r) in responses {
                if let Some(r) = r.as_object() {
                    named(w, 1, name, |w| response(w, r));
                }
            }
        });
    }
    security(w, 12, d);
    if let Some(defs) = object(d, "securityDefinitions") {
        w.message(13, |w| security_definitions(w, defs));
    }
    for t in array(d, "tags").iter().filter_map(Value::as_object) {
        w.message(14, |w| tag(w, t));
    }
    if let Some(e) = object(d, "externalDocs") {
        w.message(15, |w| external_docs(w, e));
    }
    put_extensions(w, 16, d);
}

/// `openapi.v2.Info`
fn info(w: &mut Writer, i: &Object) {
    put_str(w, 1, i, "title");
    put_str(w, 2, i, "version");
    put_str(w, 3, i, "description");
    put_str(w, 4, i, "termsOfService");
    if let Some(c) = object(i, "contact") {
        // `openapi.v2.Contact`
        w.message(5, |w| {
            put_str(w, 1, c, "name");
            put_str(w, 2, c, "url");
            put_str(w, 3, c, "email");
            put_extensions(w, 4, c);
        });
    }
    if let Some(l) = object(i, "license") {
        // `openapi.v2.License`
        w.message(6, |w| {
            put_str(w, 1, l, "name");
            put_str(w, 2, l, "url");
            put_extensions(w, 3, l);
        });
    }
    put_extensions(w, 7, i);
}

/// `openapi.v2.Tag`
fn tag(w: &mut Writer, t: &Object) {
    put_str(w, 1, t, "name");
    put_str(w, 2, t, "description");
    if let Some(e) = object(t, "externalDocs") {
        w.message(3, |w| external_docs(w, e));
    }
    put_extensions(w, 4, t);
}

/// `openapi.v2.ExternalDocs`
fn external_docs(w: &mut Writer, e: &Object) {
    put_str(w, 1, e, "description");
    put_str(w, 2, e, "url");
    put_extensions(w, 3, e);
}

/// `openapi.v2.Paths`: extensions, then one `NamedPathItem` per `/…` key.
fn paths(w: &mut Writer, p: &Object) {
    put_extensions(w, 1, p);
    for (name, item) in p.iter().filter(|(k, _)| k.starts_with('/')) {
        if let Some(item) = item.as_object() {
            named(w, 2, name, |w| path_item(w, item));
        }
    }
}

/// `openapi.v2.PathItem`
fn path_item(w: &mut Writer, p: &Object) {
    put_str(w, 1, p, "$ref");
    let methods = [
        (2, "get"),
        (3, "put"),
        (4, "post"),
        (5, "delete"),
        (6, "options"),
        (7, "head"),
        (8, "patch"),
    ];
    for (field, method) in methods {
        if let Some(op) = object(p, method) {
            w.message(field, |w| operation(w, op));
        }
    }
    parameters(w, 9, p);
    put_extensions(w, 10, p);
}

/// `openapi.v2.Operation`
fn operation(w: &mut Writer, o: &Object) {
    put_strings(w, 1, o, "tags");
    put_str(w, 2, o, "summary");
    put_str(w, 3, o, "description");
    if let Some(e) = object(o, "externalDocs") {
        w.message(4, |w| external_docs(w, e));
    }
    put_str(w, 5, o, "operationId");
    put_strings(w, 6, o, "produces");
    put_strings(w, 7, o, "consumes");
    parameters(w, 8, o);
    if let Some(r) = object(o, "responses") {
        w.message(9, |w| responses(w, r));
    }
    put_strings(w, 10, o, "schemes");
    put_bool(w, 11, o, "deprecated");
    security(w, 12, o);
    put_extensions(w, 13, o);
}

/// `repeated SecurityRequirement` from the `security` list of `o`; each
/// `openapi.v2.SecurityRequirement` is a repeated `NamedStringArray`.
fn security(w: &mut Writer, field: u32, o: &Object) {
    for requirement in array(o, "security").iter().filter_map(Value::as_object) {
        w.message(field, |w| {
            for (name, scopes) in requirement {
                let scopes = scopes.as_array().map_or(&[][..], Vec::as_slice);
                // `openapi.v2.StringArray`
                named(w, 1, name, |w| {
                    for s in scopes.iter().filter_map(Value::as_str) {
                        w.element(1, s);
                    }
                });
            }
        });
    }
}

/// Where a parameter goes: its `in`.
#[derive(Clone, Copy)]
enum Place {
    Body,
    Header,
    FormData,
    Query,
    Path,
}

fn place(p: &Object) -> Option<Place> {
    Some(match p.get("in")?.as_str()? {
        "body" => Place::Body,
        "header" => Place::Header,
        "formData" => Place::FormData,
        "query" => Place::Query,
        "path" => Place::Path,
        _ => return None,
    })
}

/// `repeated ParametersItem` from the `parameters` list of `o`.
fn parameters(w: &mut Writer, field: u32, o: &Object) {
    for p in array(o, "parameters").iter().filter_map(Value::as_object) {
        if p.contains_key("$ref") {
            // `openapi.v2.ParametersItem` oneof `json_reference`.
            w.message(field, |w| w.message(2, |w| json_reference(w, p)));
        } else if let Some(place) = place(p) {
            // `openapi.v2.ParametersItem` oneof `parameter`.
            w.message(field, |w| w.message(1, |w| parameter(w, p, place)));
        }
    }
}

/// `openapi.v2.JsonReference`
fn json_reference(w: &mut Writer, r: &Object) {
    put_str(w, 1, r, "$ref");
    put_str(w, 2, r, "description");
}

/// `openapi.v2.Parameter`: a `BodyParameter`, or a `NonBodyParameter`
/// holding the sub-schema for its place.
fn parameter(w: &mut Writer, p: &Object, place: Place) {
    let (sub, allow_empty) = match place {
        Place::Body => {
            w.message(1, |w| body_parameter(w, p));
            return;
        }
        Place::Header => (1, false),
        Place::FormData => (2, true),
        Place::Query => (3, true),
        Place::Path => (4, false),
    };
    w.message(2, |w| {
        w.message(sub, |w| parameter_sub_schema(w, p, allow_empty))
    });
}

/// `openapi.v2.BodyParameter`
fn body_parameter(w: &mut Writer, p: &Object) {
    put_str(w, 1, p, "description");
    put_str(w, 2, p, "name");
    put_str(w, 3, p, "in");
    put_bool(w, 4, p, "required");
    if let Some(s) = p.get("schema") {
        w.message(5, |w| schema(w, s));
    }
    put_extensions(w, 6, p);
}

/// `openapi.v2.HeaderParameterSubSchema` and `PathParameterSubSchema`, or
/// with `allowEmptyValue` (which shifts the later fields by one)
/// `FormDataParameterSubSchema` and `QueryParameterSubSchema`.
fn parameter_sub_schema(w: &mut Writer, p: &Object, allow_empty: bool) {
    put_bool(w, 1, p, "required");
    put_str(w, 2, p, "in");
    put_str(w, 3, p, "description");
    put_str(w, 4, p, "name");
    let first = if allow_empty {
        put_bool(w, 5, p, "allowEmptyValue");
        6
    } else {
        5
    };
    primitive_fields(w, p, first);
    put_extensions(w, first + 17, p);
}

/// The run of fields `type` … `multiple_of` that `PrimitivesItems`,
/// `Header` and the non-body parameter sub-schemas share, numbered from
/// `first`.
fn primitive_fields(w: &mut Writer, p: &Object, first: u32) {
    put_str(w, first, p, "type");
    put_str(w, first + 1, p, "format");
    if let Some(items) = object(p, "items") {
        w.message(first + 2, |w| primitives_items(w, items));
    }
    put_str(w, first + 3, p, "collectionFormat");
    put_any(w, first + 4, p, "default");
    put_double(w, first + 5, p, "maximum");
    put_bool(w, first + 6, p, "exclusiveMaximum");
    put_double(w, first + 7, p, "minimum");
    put_bool(w, first + 8, p, "exclusiveMinimum");
    put_int(w, first + 9, p, "maxLength");
    put_int(w, first + 10, p, "minLength");
    put_str(w, first + 11, p, "pattern");
    put_int(w, first + 12, p, "maxItems");
    put_int(w, first + 13, p, "minItems");
    put_bool(w, first + 14, p, "uniqueItems");
    put_anys(w, first + 15, p, "enum");
    put_double(w, first + 16, p, "multipleOf");
}

/// `openapi.v2.PrimitivesItems`
fn primitives_items(w: &mut Writer, p: &Object) {
    primitive_fields(w, p, 1);
    put_extensions(w, 18, p);
}

/// `openapi.v2.Header`
fn header(w: &mut Writer, h: &Object) {
    primitive_fields(w, h, 1);
    put_str(w, 18, h, "description");
    put_extensions(w, 19, h);
}

/// `openapi.v2.Responses`: one `NamedResponseValue` per status code (three
/// digits, or `default`), then extensions.
fn responses(w: &mut Writer, r: &Object) {
    let is_code =
        |k: &str| k == "default" || (k.len() == 3 && k.bytes().all(|b| b.is_ascii_digit()));
    for (code, value) in r.iter().filter(|(k, _)| is_code(k)) {
        if let Some(value) = value.as_object() {
            named(w, 1, code, |w| response_value(w, value));
        }
    }
    put_extensions(w, 2, r);
}

/// `openapi.v2.ResponseValue`: a `JsonReference` or a `Response`.
fn response_value(w: &mut Writer, r: &Object) {
    if r.contains_key("$ref") {
        w.message(2, |w| json_reference(w, r));
    } else {
        w.message(1, |w| response(w, r));
    }
}

/// `openapi.v2.Response`
fn response(w: &mut Writer, r: &Object) {
    put_str(w, 1, r, "description");
    if let Some(s) = r.get("schema") {
        // `openapi.v2.SchemaItem`: gnostic takes a `type: file` schema as a
        // `FileSchema`.
        let file = s.get("type").and_then(Value::as_str) == Some("file");
        w.message(2, |w| match s.as_object() {
            Some(f) if file => w.message(2, |w| file_schema(w, f)),
            _ => w.message(1, |w| schema(w, s)),
        });
    }
    if let Some(headers) = object(r, "headers") {
        // `openapi.v2.Headers`: repeated NamedHeader.
        w.message(3, |w| {
            for (name, h) in headers {
                if let Some(h) = h.as_object() {
                    named(w, 1, name, |w| header(w, h));
                }
            }
        });
    }
    if let Some(examples) = object(r, "examples") {
        // `openapi.v2.Examples`: repeated NamedAny.
        w.message(4, |w| {
            for (name, value) in examples {
                w.message(1, |w| named_any(w, name, value));
            }
        });
    }
    put_extensions(w, 5, r);
}

/// `openapi.v2.FileSchema`
fn file_schema(w: &mut Writer, s: &Object) {
    put_str(w, 1, s, "format");
    put_str(w, 2, s, "title");
    put_str(w, 3, s, "description");
    put_any(w, 4, s, "default");
    put_strings(w, 5, s, "required");
    put_str(w, 6, s, "type");
    put_bool(w, 7, s, "readOnly");
    if let Some(e) = object(s, "externalDocs") {
        w.message(8, |w| external_docs(w, e));
    }
    put_any(w, 9, s, "example");
    put_extensions(w, 10, s);
}

/// `openapi.v2.Schema`
fn schema(w: &mut Writer, value: &Value) {
    let Some(s) = value.as_object() else {
        return;
    };
    put_str(w, 1, s, "$ref");
    put_str(w, 2, s, "format");
    put_str(w, 3, s, "title");
    put_str(w, 4, s, "description");
    put_any(w, 5, s, "default");
    put_double(w, 6, s, "multipleOf");
    put_double(w, 7, s, "maximum");
    put_bool(w, 8, s, "exclusiveMaximum");
    put_double(w, 9, s, "minimum");
    put_bool(w, 10, s, "exclusiveMinimum");
    put_int(w, 11, s, "maxLength");
    put_int(w, 12, s, "minLength");
    put_str(w, 13, s, "pattern");
    put_int(w, 14, s, "maxItems");
    put_int(w, 15, s, "minItems");
    put_bool(w, 16, s, "uniqueItems");
    put_int(w, 17, s, "maxProperties");
    put_int(w, 18, s, "minProperties");
    put_strings(w, 19, s, "required");
    put_anys(w, 20, s, "enum");
    match s.get("additionalProperties") {
        // `openapi.v2.AdditionalPropertiesItem` oneof `boolean` / `schema`.
        Some(Value::Bool(b)) => w.message(21, |w| w.oneof_bool(2, *b)),
        Some(more @ Value::Object(_)) => w.message(21, |w| w.message(1, |w| schema(w, more))),
        _ => {}
    }
    match s.get("type") {
        // `openapi.v2.TypeItem`: repeated string.
        Some(Value::String(t)) => w.message(22, |w| w.element(1, t)),
        Some(Value::Array(types)) => w.message(22, |w| {
            for t in types.iter().filter_map(Value::as_str) {
                w.element(1, t);
            }
        }),
        _ => {}
    }
    match s.get("items") {
        // `openapi.v2.ItemsItem`: repeated Schema.
        Some(item @ Value::Object(_)) => w.message(23, |w| w.message(1, |w| schema(w, item))),
        Some(Value::Array(items)) => w.message(23, |w| {
            for item in items.iter().filter(|i| i.is_object()) {
                w.message(1, |w| schema(w, item));
            }
        }),
        _ => {}
    }
    for part in array(s, "allOf").iter().filter(|p| p.is_object()) {
        w.message(24, |w| schema(w, part));
    }
    if let Some(properties) = object(s, "properties") {
        // `openapi.v2.Properties`: repeated NamedSchema.
        w.message(25, |w| {
            for (name, property) in properties {
                named(w, 1, name, |w| schema(w, property));
            }
        });
    }
    put_str(w, 26, s, "discriminator");
    put_bool(w, 27, s, "readOnly");
    if let Some(x) = object(s, "xml") {
        // `openapi.v2.Xml`
        w.message(28, |w| {
            put_str(w, 1, x, "name");
            put_str(w, 2, x, "namespace");
            put_str(w, 3, x, "prefix");
            put_bool(w, 4, x, "attribute");
            put_bool(w, 5, x, "wrapped");
            put_extensions(w, 6, x);
        });
    }
    if let Some(e) = object(s, "externalDocs") {
        w.message(29, |w| external_docs(w, e));
    }
    put_any(w, 30, s, "example");
    put_extensions(w, 31, s);
}

/// `openapi.v2.SecurityDefinitions`: repeated NamedSecurityDefinitionsItem.
fn security_definitions(w: &mut Writer, defs: &Object) {
    for (name, def) in defs {
        let Some(def) = def.as_object() else {
            continue;
        };
        let Some(member) = security_member(def) else {
            continue;
        };
        // `openapi.v2.SecurityDefinitionsItem`, a oneof over the schemes.
        named(w, 1, name, |w| {
            w.message(member, |w| security_scheme(w, def, member))
        });
    }
}

/// Which `SecurityDefinitionsItem` oneof member a definition is, by `type`
/// and, for OAuth2, `flow`.
fn security_member(def: &Object) -> Option<u32> {
    let text = |key| def.get(key).and_then(Value::as_str);
    match (text("type")?, text("flow")) {
        ("basic", _) => Some(1),
        ("apiKey", _) => Some(2),
        ("oauth2", Some("implicit")) => Some(3),
        ("oauth2", Some("password")) => Some(4),
        ("oauth2", Some("application")) => Some(5),
        ("oauth2", Some("accessCode")) => Some(6),
        _ => None,
    }
}

/// `openapi.v2.BasicAuthenticationSecurity`, `ApiKeySecurity`,
/// `Oauth2ImplicitSecurity`, `Oauth2PasswordSecurity`,
/// `Oauth2ApplicationSecurity` or `Oauth2AccessCodeSecurity`, for
/// `SecurityDefinitionsItem` member 1 to 6.
fn security_scheme(w: &mut Writer, def: &Object, member: u32) {
    put_str(w, 1, def, "type");
    match member {
        1 => {
            put_str(w, 2, def, "description");
            put_extensions(w, 3, def);
        }
        2 => {
            put_str(w, 2, def, "name");
            put_str(w, 3, def, "in");
            put_str(w, 4, def, "description");
            put_extensions(w, 5, def);
        }
        _ => {
            put_str(w, 2, def, "flow");
            if let Some(scopes) = object(def, "scopes") {
                // `openapi.v2.Oauth2Scopes`: repeated NamedString.
                w.message(3, |w| {
                    for (name, text) in scopes {
                        w.message(1, |w| {
                            w.string(1, name);
                            w.string(2, text.as_str().unwrap_or_default());
                        });
                    }
                });
            }
            // After the scopes: the URLs this flow has, then the rest.
            let urls: &[&str] = match member {
                3 => &["authorizationUrl"],
                6 => &["authorizationUrl", "tokenUrl"],
                _ => &["tokenUrl"],
            };
            let mut field = 4;
            for url in urls {
                put_str(w, field, def, url);
                field += 1;
            }
            put_str(w, field, def, "description");
            put_extensions(w, field + 1, def);
        }
    }
}

/// `openapi.v2.NamedAny`
fn named_any(w: &mut Writer, name: &str, value: &Value) {
    w.string(1, name);
    w.message(2, |w| any(w, value));
}

/// `openapi.v2.Any`: the value as YAML text in `yaml = 2`.
fn any(w: &mut Writer, value: &Value) {
    w.string(2, &yaml_text(value));
}

// ---------------------------------------------------------------------------
// YAML text for `Any.yaml`.

#[cfg(test)]
mod tests;
