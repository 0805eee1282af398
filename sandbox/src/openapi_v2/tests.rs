use serde_json::json;

use super::yaml::LONG_KEY;
use super::*;

/// A field as read back: its number and varint, or its bytes.
#[derive(Debug, PartialEq)]
enum Field<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
}

fn read_varint(data: &mut &[u8]) -> u64 {
    let mut value = 0;
    for shift in (0..64).step_by(7) {
        let (byte, rest) = data.split_first().expect("truncated varint");
        *data = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return value;
        }
    }
    panic!("varint too long")
}

/// Every field of one message, in order.
fn fields(mut data: &[u8]) -> Vec<(u64, Field<'_>)> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let key = read_varint(&mut data);
        let field = match key & 7 {
            0 => Field::Varint(read_varint(&mut data)),
            1 => {
                let (bytes, rest) = data.split_at(8);
                data = rest;
                Field::Fixed64(u64::from_le_bytes(bytes.try_into().expect("8 bytes")))
            }
            2 => {
                let len = usize::try_from(read_varint(&mut data)).expect("length");
                let (bytes, rest) = data.split_at(len);
                data = rest;
                Field::Bytes(bytes)
            }
            wire => panic!("unexpected wire type {wire}"),
        };
        out.push((key >> 3, field));
    }
    out
}

/// The bytes of every occurrence of length-delimited `field`.
fn all(data: &[u8], field: u64) -> Vec<&[u8]> {
    fields(data)
        .into_iter()
        .filter_map(|(n, f)| match f {
            Field::Bytes(b) if n == field => Some(b),
            _ => None,
        })
        .collect()
}

/// The bytes of the one occurrence of length-delimited `field`.
fn one(data: &[u8], field: u64) -> &[u8] {
    let found = all(data, field);
    assert_eq!(found.len(), 1, "field {field} in {:?}", fields(data));
    found[0]
}

fn text(data: &[u8], field: u64) -> &str {
    std::str::from_utf8(one(data, field)).expect("utf-8")
}

/// The `value` of the `Named…` entry called `name` among `field`s.
fn entry<'a>(data: &'a [u8], field: u64, name: &str) -> &'a [u8] {
    let found: Vec<_> = all(data, field)
        .into_iter()
        .filter(|e| text(e, 1) == name)
        .map(|e| one(e, 2))
        .collect();
    assert_eq!(found.len(), 1, "entry {name}");
    found[0]
}

fn sample() -> Value {
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": {
            "/api/v1/namespaces/{namespace}/pods/{name}": {
                "parameters": [
                    {"name": "name", "in": "path", "required": true, "type": "string", "uniqueItems": true,
                     "description": "name of the Pod"},
                    {"$ref": "#/parameters/namespace-vgWSWtn3"}
                ],
                "patch": {
                    "description": "partially update the specified Pod",
                    "consumes": ["application/json-patch+json", "application/merge-patch+json",
                                 "application/strategic-merge-patch+json"],
                    "produces": ["application/json"],
                    "schemes": ["https"],
                    "tags": ["core_v1"],
                    "operationId": "patchCoreV1NamespacedPod",
                    "parameters": [
                        {"name": "body", "in": "body", "required": true,
                         "schema": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.Patch"}},
                        {"uniqueItems": true, "type": "string", "description": "fieldValidation",
                         "name": "fieldValidation", "in": "query"}
                    ],
                    "responses": {
                        "200": {"description": "OK", "schema": {"$ref": "#/definitions/io.k8s.api.core.v1.Pod"}},
                        "401": {"description": "Unauthorized"}
                    },
                    "x-kubernetes-action": "patch",
                    "x-kubernetes-group-version-kind": {"group": "", "kind": "Pod", "version": "v1"}
                }
            }
        },
        "definitions": {
            "io.k8s.api.core.v1.Pod": {
                "description": "Pod is a collection of containers.",
                "type": "object",
                "required": ["spec"],
                "properties": {
                    "apiVersion": {"type": "string"},
                    "spec": {"$ref": "#/definitions/io.k8s.api.core.v1.PodSpec", "default": {}},
                    "containers": {
                        "type": "array",
                        "items": {"type": "string"},
                        "x-kubernetes-patch-merge-key": "name",
                        "x-kubernetes-patch-strategy": "merge"
                    },
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "port": {"type": "integer", "format": "int32", "maximum": 65535, "minimum": 0}
                },
                "x-kubernetes-group-version-kind": [{"group": "", "kind": "Pod", "version": "v1"}]
            },
            "io.k8s.api.core.v1.PodSpec": {"type": "object", "properties": {}, "additionalProperties": false}
        },
        "parameters": {
            "namespace-vgWSWtn3": {"uniqueItems": true, "type": "string", "description": "object name and auth scope",
                                   "name": "namespace", "in": "path", "required": true}
        },
        "securityDefinitions": {
            "BearerToken": {"description": "Bearer Token authentication", "type": "apiKey",
                            "name": "authorization", "in": "header"}
        },
        "security": [{"BearerToken": []}]
    })
}

#[test]
fn top_level_fields_use_document_numbers() {
    let bytes = encode(&sample());
    let numbers: Vec<u64> = fields(&bytes).iter().map(|(n, _)| *n).collect();
    assert_eq!(numbers, [1, 2, 8, 9, 10, 12, 13]);
    // The first bytes: tag (1, LEN) = 0x0a, length 3, "2.0".
    assert_eq!(&bytes[..5], b"\x0a\x032.0");
    let info = one(&bytes, 2);
    assert_eq!(text(info, 1), "Kubernetes");
    assert_eq!(text(info, 2), "v1.32.0");
}

#[test]
fn definitions_are_named_schemas() {
    let bytes = encode(&sample());
    let definitions = one(&bytes, 9);
    let names: Vec<&str> = all(definitions, 1)
        .into_iter()
        .map(|e| text(e, 1))
        .collect();
    assert_eq!(
        names,
        ["io.k8s.api.core.v1.Pod", "io.k8s.api.core.v1.PodSpec"]
    );

    let pod = entry(definitions, 1, "io.k8s.api.core.v1.Pod");
    assert_eq!(text(pod, 4), "Pod is a collection of containers.");
    assert_eq!(text(one(pod, 22), 1), "object");
    assert_eq!(text(pod, 19), "spec");
    let gvk = one(pod, 31);
    assert_eq!(text(gvk, 1), "x-kubernetes-group-version-kind");
    assert_eq!(
        text(one(gvk, 2), 2),
        "- group: \"\"\n  kind: Pod\n  version: v1\n"
    );

    let properties = one(pod, 25);
    let spec = entry(properties, 1, "spec");
    assert_eq!(text(spec, 1), "#/definitions/io.k8s.api.core.v1.PodSpec");
    assert_eq!(text(one(spec, 5), 2), "{}\n");
    let containers = entry(properties, 1, "containers");
    assert_eq!(one(one(one(containers, 23), 1), 22), b"\x0a\x06string");
    let extensions: Vec<(&str, &str)> = all(containers, 31)
        .into_iter()
        .map(|e| (text(e, 1), text(one(e, 2), 2)))
        .collect();
    assert_eq!(
        extensions,
        [
            ("x-kubernetes-patch-merge-key", "name\n"),
            ("x-kubernetes-patch-strategy", "merge\n")
        ]
    );
    let labels = entry(properties, 1, "labels");
    assert_eq!(one(one(one(labels, 21), 1), 22), b"\x0a\x06string");
    let port = entry(properties, 1, "port");
    assert_eq!(text(port, 2), "int32");
    let maximum: Vec<_> = fields(port).into_iter().filter(|(n, _)| *n == 7).collect();
    assert_eq!(maximum, [(7, Field::Fixed64(65535f64.to_bits()))]);
    // A zero minimum is a proto3 default: not written.
    assert!(fields(port).iter().all(|(n, _)| *n != 9));

    // `properties: {}` is kept as an empty message; `false` as a oneof.
    let spec = entry(definitions, 1, "io.k8s.api.core.v1.PodSpec");
    assert_eq!(one(spec, 25), b"");
    assert_eq!(fields(one(spec, 21)), [(2, Field::Varint(0))]);
}

#[test]
fn paths_carry_operations_parameters_and_extensions() {
    let bytes = encode(&sample());
    let paths = one(&bytes, 8);
    let item = entry(paths, 2, "/api/v1/namespaces/{namespace}/pods/{name}");

    let path_params = all(item, 9);
    assert_eq!(path_params.len(), 2);
    let name = one(one(one(path_params[0], 1), 2), 4);
    assert_eq!(fields(name)[0], (1, Field::Varint(1)));
    assert_eq!(text(name, 2), "path");
    assert_eq!(text(name, 4), "name");
    assert_eq!(text(name, 5), "string");
    assert_eq!(text(name, 3), "name of the Pod");
    assert!(fields(name).contains(&(19, Field::Varint(1))));
    assert_eq!(
        text(one(path_params[1], 2), 1),
        "#/parameters/namespace-vgWSWtn3"
    );

    let patch = one(item, 8);
    assert_eq!(text(patch, 5), "patchCoreV1NamespacedPod");
    let consumes: Vec<&[u8]> = all(patch, 7);
    assert_eq!(consumes[2], b"application/strategic-merge-patch+json");
    assert_eq!(text(patch, 10), "https");
    assert_eq!(text(patch, 1), "core_v1");
    let params = all(patch, 8);
    let body = one(one(params[0], 1), 1);
    assert_eq!(text(body, 2), "body");
    assert_eq!(
        text(one(body, 5), 1),
        "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.Patch"
    );
    let query = one(one(one(params[1], 1), 2), 3);
    assert_eq!(text(query, 4), "fieldValidation");
    assert_eq!(text(query, 6), "string");
    assert!(fields(query).contains(&(20, Field::Varint(1))));

    let responses = one(patch, 9);
    let ok = one(entry(responses, 1, "200"), 1);
    assert_eq!(text(ok, 1), "OK");
    assert_eq!(
        text(one(one(ok, 2), 1), 1),
        "#/definitions/io.k8s.api.core.v1.Pod"
    );

    let extensions: Vec<(&str, &str)> = all(patch, 13)
        .into_iter()
        .map(|e| (text(e, 1), text(one(e, 2), 2)))
        .collect();
    assert_eq!(
        extensions,
        [
            ("x-kubernetes-action", "patch\n"),
            (
                "x-kubernetes-group-version-kind",
                "group: \"\"\nkind: Pod\nversion: v1\n"
            ),
        ]
    );
}

#[test]
fn parameters_security_definitions_and_requirements() {
    let bytes = encode(&sample());
    let namespace = one(one(entry(one(&bytes, 10), 1, "namespace-vgWSWtn3"), 2), 4);
    assert_eq!(text(namespace, 4), "namespace");

    let bearer = one(entry(one(&bytes, 13), 1, "BearerToken"), 2);
    assert_eq!(
        (text(bearer, 1), text(bearer, 2), text(bearer, 3)),
        ("apiKey", "authorization", "header")
    );

    let requirement = one(&bytes, 12);
    let named = one(requirement, 1);
    assert_eq!(text(named, 1), "BearerToken");
    assert_eq!(one(named, 2), b"");
}

#[test]
fn varints_and_negative_numbers() {
    let mut w = Writer::default();
    w.int64(1, 300);
    w.int64(2, -1);
    w.int64(3, 0);
    assert_eq!(w.buf[..3], [0x08, 0xac, 0x02]);
    assert_eq!(w.buf[3], 0x10);
    assert_eq!(
        w.buf[4..],
        [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
    );
}

#[test]
fn yaml_quotes_what_would_read_back_differently() {
    let cases = [
        (json!("Pod"), "Pod\n"),
        (json!("io.k8s.api.core.v1.Pod"), "io.k8s.api.core.v1.Pod\n"),
        (json!(""), "\"\"\n"),
        (json!("1"), "\"1\"\n"),
        (json!("yes"), "\"yes\"\n"),
        (json!("Off"), "\"Off\"\n"),
        (json!("retainKeys,merge"), "\"retainKeys,merge\"\n"),
        (
            json!("a: b\n\"c\"\t\u{1}\u{2028}é"),
            "\"a: b\\n\\\"c\\\"\\t\\u0001\\u2028é\"\n",
        ),
        (json!(null), "null\n"),
        (json!(false), "false\n"),
        (json!(-1.5), "-1.5\n"),
        (json!(1e300), "1.0e+300\n"),
        (json!(1.5e-7), "1.5e-7\n"),
        (json!(18446744073709551615u64), "18446744073709551615\n"),
        (json!([]), "[]\n"),
        (json!({}), "{}\n"),
        (
            json!({"a": {"b": [1, {"c": []}], "d": {}}}),
            "a:\n  b:\n    - 1\n    - c: []\n  d: {}\n",
        ),
        (json!([[1, 2], ["x"]]), "- - 1\n  - 2\n- - x\n"),
    ];
    for (value, want) in cases {
        assert_eq!(yaml_text(&value), want, "{value}");
    }
    let long = "k".repeat(LONG_KEY);
    assert_eq!(
        yaml_text(&json!({ long.clone(): 1 })),
        format!("? {long}\n: 1\n")
    );
}

#[test]
fn non_objects_and_unknown_parameters_are_skipped() {
    assert!(encode(&json!([1, 2])).is_empty());
    let doc = json!({"paths": {"/x": {"get": {"parameters": [{"in": "cookie", "name": "c"}, 3]}}}});
    let bytes = encode(&doc);
    let get = one(entry(one(&bytes, 8), 2, "/x"), 2);
    assert!(all(get, 8).is_empty());
}
