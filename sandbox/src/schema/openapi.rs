//! The OpenAPI documents the sandbox serves, built from the same schemas it
//! enforces: `/openapi/v3` (an index and one document per group-version,
//! which `kubectl explain` and kubectl's field-validation check read) and
//! `/openapi/v2` (one Swagger 2.0 document, which kubectl reads to validate
//! a `kind: List` file on the client).

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};

use serde_json::{Map, Value, json};

use super::builtin_definitions;
use crate::registry::ResourceType;

/// Which OpenAPI a document is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// OpenAPI 3.0 (`#/components/schemas/…`).
    V3,
    /// Swagger 2.0 (`#/definitions/…`).
    V2,
}

impl Version {
    fn reference(self, name: &str) -> String {
        match self {
            Version::V3 => format!("#/components/schemas/{name}"),
            Version::V2 => format!("#/definitions/{name}"),
        }
    }
}

/// `core/v1`-style key of a group-version in the v3 index (`api/v1`, `apis/apps/v1`).
fn index_key(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// The definition name of a custom kind, as the real server names it:
/// the group reversed, then version and kind (`dev.pushsync.v1alpha1.Application`).
pub fn custom_definition_name(rt: &ResourceType) -> String {
    let reversed: Vec<&str> = rt.group.split('.').rev().collect();
    format!("{}.{}.{}", reversed.join("."), rt.version, rt.kind)
}

/// `/openapi/v3`: where each group-version's document is. The hash changes
/// when a document's content can (a CRD changed), so kubectl's cache of an
/// older document is not used.
pub fn v3_index(types: &[ResourceType]) -> Value {
    let mut hashes: BTreeMap<String, std::collections::hash_map::DefaultHasher> = BTreeMap::new();
    for t in types {
        let hasher = hashes.entry(index_key(&t.group, &t.version)).or_default();
        t.kind.hash(hasher);
        t.plural.hash(hasher);
        if let Some(schema) = &t.schema {
            schema.source().to_string().hash(hasher);
        }
    }
    let paths: Map<String, Value> = hashes
        .into_iter()
        .map(|(key, hasher)| {
            let url = format!(
                "/openapi/v3/{key}?hash={:016X}{}",
                hasher.finish(),
                crate::api::KUBE_MINOR
            );
            (key, json!({ "serverRelativeURL": url }))
        })
        .collect();
    json!({ "paths": paths })
}

/// The OpenAPI v3 document of one group-version, or `None` when nothing is
/// served there.
pub fn v3_document(types: &[ResourceType], group: &str, version: &str) -> Option<Value> {
    let served: Vec<&ResourceType> = types
        .iter()
        .filter(|t| t.group == group && t.version == version)
        .collect();
    if served.is_empty() {
        return None;
    }
    let (paths, schemas) = paths_and_schemas(&served, Version::V3);
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v1.{}.0", crate::api::KUBE_MINOR)},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"BearerToken": {"type": "apiKey", "description": "Bearer Token authentication", "name": "authorization", "in": "header"}},
        },
    }))
}

/// The Swagger 2.0 document of everything served.
pub fn v2_document(types: &[ResourceType]) -> Value {
    let served: Vec<&ResourceType> = types.iter().filter(|t| !t.create_only).collect();
    let (paths, definitions) = paths_and_schemas(&served, Version::V2);
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": format!("v1.{}.0", crate::api::KUBE_MINOR)},
        "paths": paths,
        "definitions": definitions,
        "securityDefinitions": {"BearerToken": {"type": "apiKey", "description": "Bearer Token authentication", "name": "authorization", "in": "header"}},
        "security": [{"BearerToken": []}],
    })
}

/// The paths of `served` types and every schema they need.
fn paths_and_schemas(
    served: &[&ResourceType],
    version: Version,
) -> (Map<String, Value>, Map<String, Value>) {
    let builtin = builtin_definitions();
    let by_gvk = builtin_kinds(builtin);
    let mut paths = Map::new();
    let mut schemas = Map::new();
    let mut wanted: BTreeSet<String> = BTreeSet::new();
    for t in served {
        let name = if t.custom {
            let name = custom_definition_name(t);
            if let Some(schema) = &t.schema {
                schemas.insert(name.clone(), custom_schema(t, schema.source(), version));
            }
            wanted.insert(super::compile::OBJECT_META.to_owned());
            name
        } else {
            match by_gvk.get(&(t.group.clone(), t.version.clone(), t.kind.clone())) {
                Some(name) => {
                    wanted.insert((*name).to_owned());
                    (*name).to_owned()
                }
                None => continue,
            }
        };
        let list = format!("{name}List");
        if !t.custom {
            wanted.insert(list.clone());
        } else {
            schemas.insert(list.clone(), custom_list_schema(t, &name, version));
            wanted.insert("io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta".to_owned());
        }
        add_paths(&mut paths, t, &name, &list, version);
    }
    wanted.insert("io.k8s.apimachinery.pkg.apis.meta.v1.Status".to_owned());
    wanted.insert("io.k8s.apimachinery.pkg.apis.meta.v1.Patch".to_owned());
    wanted.insert("io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions".to_owned());
    // The closure of what is wanted.
    let mut queue: Vec<String> = wanted.into_iter().collect();
    while let Some(name) = queue.pop() {
        if schemas.contains_key(&name) {
            continue;
        }
        let Some(definition) = builtin.get(&name) else {
            continue;
        };
        let mut refs = Vec::new();
        references(definition, &mut refs);
        schemas.insert(name.clone(), translate(definition, version, true));
        queue.extend(refs.into_iter().filter(|r| !schemas.contains_key(r)));
    }
    (paths, schemas)
}

fn builtin_kinds(definitions: &Map<String, Value>) -> BTreeMap<(String, String, String), &str> {
    let mut kinds = BTreeMap::new();
    for (name, definition) in definitions {
        for gvk in definition
            .get("x-kubernetes-group-version-kind")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let text = |key: &str| {
                gvk.get(key)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            kinds.insert(
                (text("group"), text("version"), text("kind")),
                name.as_str(),
            );
        }
    }
    kinds
}

/// Names every `$ref` in `schema` points at.
fn references(schema: &Value, out: &mut Vec<String>) {
    match schema {
        Value::Object(map) => {
            for (key, value) in map {
                if key == "$ref"
                    && let Some(name) = value.as_str().and_then(|r| r.rsplit('/').next())
                {
                    out.push(name.to_owned());
                } else {
                    references(value, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| references(item, out)),
        _ => {}
    }
}

/// A built-in definition (JSON Schema 2020-12 as vendored) in OpenAPI's
/// dialect: nullable types collapsed, references retargeted, a reference
/// with siblings wrapped in `allOf` (v3, as the real server writes it), and
/// the `apiVersion`/`kind` enums the vendored file adds removed.
fn translate(schema: &Value, version: Version, top: bool) -> Value {
    let Value::Object(map) = schema else {
        return schema.clone();
    };
    let mut out = Map::new();
    let is_kind = top && map.contains_key("x-kubernetes-group-version-kind");
    for (key, value) in map {
        match key.as_str() {
            "$ref" => {
                let name = value
                    .as_str()
                    .and_then(|r| r.rsplit('/').next())
                    .unwrap_or_default();
                out.insert("$ref".to_owned(), json!(version.reference(name)));
            }
            "type" => match value {
                Value::Array(types) => {
                    let types: Vec<&Value> = types.iter().filter(|t| *t != "null").collect();
                    if let [only] = types.as_slice() {
                        out.insert("type".to_owned(), (*only).clone());
                    }
                }
                other => {
                    out.insert("type".to_owned(), other.clone());
                }
            },
            "properties" => {
                let properties: Map<String, Value> = value
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(name, property)| {
                        let mut translated = translate(property, version, false);
                        if is_kind
                            && (name == "apiVersion" || name == "kind")
                            && let Some(property) = translated.as_object_mut()
                        {
                            property.remove("enum");
                        }
                        (name.clone(), translated)
                    })
                    .collect();
                out.insert(key.clone(), Value::Object(properties));
            }
            "oneOf" if version == Version::V2 => {
                // Swagger 2.0 has no oneOf: IntOrString and Quantity are strings there.
                out.insert("type".to_owned(), json!("string"));
                let int_or_string = value.as_array().is_some_and(|branches| {
                    branches.iter().any(|b| {
                        b.get("type")
                            .is_some_and(|t| t.to_string().contains("integer"))
                    })
                });
                if int_or_string {
                    out.insert("format".to_owned(), json!("int-or-string"));
                }
            }
            _ => {
                out.insert(key.clone(), translate(value, version, false));
            }
        }
    }
    if version == Version::V3
        && out.len() > 1
        && let Some(reference) = out.remove("$ref")
    {
        out.insert("allOf".to_owned(), json!([{ "$ref": reference }]));
    }
    Value::Object(out)
}

/// A custom kind's schema as the real server publishes it: the CRD's
/// schema, with apiVersion, kind and metadata (ObjectMeta) declared and the
/// kind's group-version-kind.
fn custom_schema(rt: &ResourceType, source: &Value, version: Version) -> Value {
    let mut schema = source.clone();
    if let Some(map) = schema.as_object_mut() {
        let properties = map.entry("properties").or_insert_with(|| json!({}));
        if let Some(properties) = properties.as_object_mut() {
            properties.insert("apiVersion".to_owned(), json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."}));
            properties.insert("kind".to_owned(), json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents."}));
            properties.insert("metadata".to_owned(), metadata_reference(version));
        }
        map.entry("type").or_insert_with(|| json!("object"));
        map.insert(
            "x-kubernetes-group-version-kind".to_owned(),
            json!([{"group": rt.group, "version": rt.version, "kind": rt.kind}]),
        );
    }
    schema
}

fn metadata_reference(version: Version) -> Value {
    let reference = version.reference(super::compile::OBJECT_META);
    match version {
        Version::V3 => {
            json!({"allOf": [{"$ref": reference}], "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"})
        }
        Version::V2 => json!({"$ref": reference, "description": "Standard object's metadata."}),
    }
}

fn custom_list_schema(rt: &ResourceType, item: &str, version: Version) -> Value {
    let list_meta = version.reference("io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta");
    json!({
        "description": format!("{}List is a list of {}", rt.kind, rt.kind),
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "items": {"type": "array", "items": {"$ref": version.reference(item)}},
            "metadata": if version == Version::V3 { json!({"allOf": [{"$ref": list_meta}]}) } else { json!({"$ref": list_meta}) },
        },
        "x-kubernetes-group-version-kind": [{"group": rt.group, "version": rt.version, "kind": format!("{}List", rt.kind)}],
    })
}

/// The REST paths of one type with their operations, each carrying the
/// parameters and extensions kubectl looks for (`fieldValidation` on PATCH
/// tells it the server validates fields itself).
fn add_paths(
    paths: &mut Map<String, Value>,
    rt: &ResourceType,
    name: &str,
    list: &str,
    version: Version,
) {
    let prefix = if rt.group.is_empty() {
        format!("/api/{}", rt.version)
    } else {
        format!("/apis/{}/{}", rt.group, rt.version)
    };
    let scope = if rt.namespaced {
        "/namespaces/{namespace}"
    } else {
        ""
    };
    let collection = format!("{prefix}{scope}/{}", rt.plural);
    let object = format!("{collection}/{{name}}");
    let gvk = json!({"group": rt.group, "version": rt.version, "kind": rt.kind});
    let query = |param: &str, kind: &str| match version {
        Version::V3 => {
            json!({"name": param, "in": "query", "schema": {"type": kind, "uniqueItems": true}})
        }
        Version::V2 => json!({"name": param, "in": "query", "type": kind, "uniqueItems": true}),
    };
    let path_param = |param: &str| match version {
        Version::V3 => {
            json!({"name": param, "in": "path", "required": true, "schema": {"type": "string", "uniqueItems": true}})
        }
        Version::V2 => {
            json!({"name": param, "in": "path", "required": true, "type": "string", "uniqueItems": true})
        }
    };
    let body = |schema: &str| match version {
        Version::V3 => {
            json!({"content": {"*/*": {"schema": {"$ref": version.reference(schema)}}}, "required": true})
        }
        Version::V2 => {
            json!({"name": "body", "in": "body", "required": true, "schema": {"$ref": version.reference(schema)}})
        }
    };
    let response = |schema: &str| match version {
        Version::V3 => {
            json!({"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": version.reference(schema)}}}}})
        }
        Version::V2 => {
            json!({"200": {"description": "OK", "schema": {"$ref": version.reference(schema)}}})
        }
    };
    let writes = [
        query("dryRun", "string"),
        query("fieldManager", "string"),
        query("fieldValidation", "string"),
    ];
    let operation = |action: &str,
                     id: &str,
                     parameters: Vec<Value>,
                     request: Option<&str>,
                     reply: &str| {
        let mut op = json!({
            "operationId": id,
            "tags": [if rt.group.is_empty() { format!("core_{}", rt.version) } else { format!("{}_{}", rt.group.replace('.', "_"), rt.version) }],
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk,
            "parameters": parameters,
            "responses": response(reply),
        });
        if let Some(schema) = request {
            match version {
                Version::V3 => op["requestBody"] = body(schema),
                Version::V2 => {
                    if let Some(list) = op["parameters"].as_array_mut() {
                        list.push(body(schema));
                    }
                }
            }
        }
        op
    };
    let kind = &rt.kind;
    let ns = if rt.namespaced { "Namespaced" } else { "" };
    let mut common = vec![path_param("name")];
    if rt.namespaced {
        common.push(path_param("namespace"));
    }
    let mut patch_params = writes.to_vec();
    patch_params.push(query("force", "boolean"));
    // Custom resources take no strategic merge patch: kubectl reads that here.
    let mut patch_types = vec![
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/apply-patch+yaml",
    ];
    if !rt.custom {
        patch_types.push("application/strategic-merge-patch+json");
    }
    let mut patch = operation(
        "patch",
        &format!("patch{ns}{kind}"),
        patch_params,
        Some("io.k8s.apimachinery.pkg.apis.meta.v1.Patch"),
        name,
    );
    match version {
        Version::V3 => {
            let reference = json!({"schema": {"$ref": version.reference("io.k8s.apimachinery.pkg.apis.meta.v1.Patch")}});
            let content: Map<String, Value> = patch_types
                .iter()
                .map(|t| ((*t).to_owned(), reference.clone()))
                .collect();
            patch["requestBody"] = json!({"content": content, "required": true});
        }
        Version::V2 => {
            patch["consumes"] = json!(patch_types);
            patch["produces"] = json!(["application/json", "application/yaml"]);
        }
    }
    paths.insert(
        object,
        json!({
            "get": operation("get", &format!("read{ns}{kind}"), vec![], None, name),
            "put": operation("put", &format!("replace{ns}{kind}"), writes.to_vec(), Some(name), name),
            "patch": patch,
            "delete": operation("delete", &format!("delete{ns}{kind}"), vec![query("dryRun", "string")], Some("io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions"), "io.k8s.apimachinery.pkg.apis.meta.v1.Status"),
            "parameters": common,
        }),
    );
    let mut collection_params = vec![];
    if rt.namespaced {
        collection_params.push(path_param("namespace"));
    }
    let list_params = [
        "continue",
        "fieldSelector",
        "labelSelector",
        "limit",
        "resourceVersion",
        "watch",
    ]
    .iter()
    .map(|p| {
        query(
            p,
            if *p == "limit" {
                "integer"
            } else if *p == "watch" {
                "boolean"
            } else {
                "string"
            },
        )
    })
    .collect();
    paths.insert(
        collection,
        json!({
            "get": operation("list", &format!("list{ns}{kind}"), list_params, None, list),
            "post": operation("post", &format!("create{ns}{kind}"), writes.to_vec(), Some(name), name),
            "parameters": collection_params,
        }),
    );
}
