//! Just enough of Kubernetes' protobuf encoding to read what kubectl's typed
//! clients send for built-in kinds (`kubectl create namespace|configmap|secret`,
//! `kubectl create role|clusterrole|rolebinding|clusterrolebinding`,
//! `kubectl auth can-i|whoami`): the `k8s\0` envelope, `runtime.Unknown`,
//! `ObjectMeta` and a few simple kinds.

use serde_json::{Map, Value, json};

use crate::status::ApiError;

/// A protobuf field value.
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

/// Iterate `(field number, value)` over a message.
fn fields(mut data: &[u8]) -> Result<Vec<(u64, Field<'_>)>, ApiError> {
    let bad = || ApiError::bad_request("malformed protobuf body");
    let mut out = Vec::new();
    while !data.is_empty() {
        let (key, rest) = varint(data).ok_or_else(bad)?;
        data = rest;
        let (number, wire) = (key >> 3, key & 7);
        match wire {
            0 => {
                let (value, rest) = varint(data).ok_or_else(bad)?;
                data = rest;
                out.push((number, Field::Varint(value)));
            }
            2 => {
                let (len, rest) = varint(data).ok_or_else(bad)?;
                let len = usize::try_from(len).map_err(|_| bad())?;
                if rest.len() < len {
                    return Err(bad());
                }
                out.push((number, Field::Bytes(&rest[..len])));
                data = &rest[len..];
            }
            1 => data = data.get(8..).ok_or_else(bad)?,
            5 => data = data.get(4..).ok_or_else(bad)?,
            _ => return Err(bad()),
        }
    }
    Ok(out)
}

fn varint(data: &[u8]) -> Option<(u64, &[u8])> {
    let mut value = 0u64;
    for (i, byte) in data.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, &data[i + 1..]));
        }
    }
    None
}

fn string(bytes: &[u8]) -> Result<String, ApiError> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| ApiError::bad_request("protobuf string is not UTF-8"))
}

fn map_entry(bytes: &[u8]) -> Result<(String, Vec<u8>), ApiError> {
    let mut key = String::new();
    let mut value = Vec::new();
    for (number, field) in fields(bytes)? {
        if let Field::Bytes(b) = field {
            match number {
                1 => key = string(b)?,
                2 => value = b.to_vec(),
                _ => {}
            }
        }
    }
    Ok((key, value))
}

fn object_meta(bytes: &[u8]) -> Result<Value, ApiError> {
    let mut meta = Map::new();
    let mut labels = Map::new();
    let mut annotations = Map::new();
    let mut finalizers = Vec::new();
    for (number, field) in fields(bytes)? {
        match (number, field) {
            (1, Field::Bytes(b)) if !b.is_empty() => {
                meta.insert("name".into(), json!(string(b)?));
            }
            (2, Field::Bytes(b)) if !b.is_empty() => {
                meta.insert("generateName".into(), json!(string(b)?));
            }
            (3, Field::Bytes(b)) if !b.is_empty() => {
                meta.insert("namespace".into(), json!(string(b)?));
            }
            (6, Field::Bytes(b)) if !b.is_empty() => {
                meta.insert("resourceVersion".into(), json!(string(b)?));
            }
            (11, Field::Bytes(b)) => {
                let (k, v) = map_entry(b)?;
                labels.insert(k, json!(string(&v)?));
            }
            (12, Field::Bytes(b)) => {
                let (k, v) = map_entry(b)?;
                annotations.insert(k, json!(string(&v)?));
            }
            (14, Field::Bytes(b)) => finalizers.push(json!(string(b)?)),
            _ => {}
        }
    }
    if !labels.is_empty() {
        meta.insert("labels".into(), Value::Object(labels));
    }
    if !annotations.is_empty() {
        meta.insert("annotations".into(), Value::Object(annotations));
    }
    if !finalizers.is_empty() {
        meta.insert("finalizers".into(), Value::Array(finalizers));
    }
    Ok(Value::Object(meta))
}

fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(TABLE[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A message of string fields numbered from 1 in the order of `names`
/// (other fields are skipped). Those also named in `repeated` become lists;
/// the others are single strings (the last occurrence wins, as in
/// protobuf), absent when the message does not carry them.
fn strings(bytes: &[u8], names: &[&str], repeated: &[&str]) -> Result<Value, ApiError> {
    let mut out = json!({});
    for (number, field) in fields(bytes)? {
        let name = usize::try_from(number)
            .ok()
            .and_then(|n| n.checked_sub(1))
            .and_then(|i| names.get(i));
        if let (Field::Bytes(b), Some(name)) = (field, name) {
            let value = json!(string(b)?);
            if repeated.contains(name) {
                push(&mut out, name, value);
            } else {
                out[*name] = value;
            }
        }
    }
    Ok(out)
}

/// `rbac/v1.Subject`'s string fields, in field order.
const SUBJECT: [&str; 4] = ["kind", "apiGroup", "name", "namespace"];

/// Append `item` to the array `object[key]`, creating it.
fn push(object: &mut Value, key: &str, item: Value) {
    if !object[key].is_array() {
        object[key] = json!([]);
    }
    if let Some(items) = object[key].as_array_mut() {
        items.push(item);
    }
}

/// `rbac/v1.PolicyRule`'s fields, in field order (all repeated strings).
const POLICY_RULE: [&str; 5] = [
    "verbs",
    "apiGroups",
    "resources",
    "resourceNames",
    "nonResourceURLs",
];

/// `meta/v1.LabelSelectorRequirement`'s fields, in field order.
const REQUIREMENT: [&str; 3] = ["key", "operator", "values"];

/// `rbac/v1.AggregationRule`: label selectors (`matchLabels`, `matchExpressions`).
fn aggregation_rule(bytes: &[u8]) -> Result<Value, ApiError> {
    let mut rule = json!({});
    for (number, field) in fields(bytes)? {
        let (1, Field::Bytes(selector_bytes)) = (number, field) else {
            continue;
        };
        let mut selector = json!({});
        for (n, f) in fields(selector_bytes)? {
            match (n, f) {
                (1, Field::Bytes(b)) => {
                    let (key, value) = map_entry(b)?;
                    selector["matchLabels"][key] = json!(string(&value)?);
                }
                (2, Field::Bytes(b)) => {
                    let expression = strings(b, &REQUIREMENT, &["values"])?;
                    push(&mut selector, "matchExpressions", expression);
                }
                _ => {}
            }
        }
        push(&mut rule, "clusterRoleSelectors", selector);
    }
    Ok(rule)
}

/// `SelfSubjectAccessReviewSpec`: resource or non-resource attributes.
fn access_review_spec(bytes: &[u8]) -> Result<Value, ApiError> {
    const RESOURCE: [&str; 7] = [
        "namespace",
        "verb",
        "group",
        "version",
        "resource",
        "subresource",
        "name",
    ];
    let mut spec = Map::new();
    for (number, field) in fields(bytes)? {
        match (number, field) {
            (1, Field::Bytes(b)) => {
                spec.insert("resourceAttributes".to_owned(), strings(b, &RESOURCE, &[])?);
            }
            (2, Field::Bytes(b)) => {
                spec.insert(
                    "nonResourceAttributes".to_owned(),
                    strings(b, &["path", "verb"], &[])?,
                );
            }
            _ => {}
        }
    }
    Ok(Value::Object(spec))
}

/// Decode a `k8s\0`-prefixed protobuf body into the JSON object it encodes.
/// Only the kinds kubectl creates with its generators are understood; others
/// get 415 so the caller knows to send JSON.
pub fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let unknown = body
        .strip_prefix(b"k8s\0")
        .ok_or_else(|| ApiError::bad_request("protobuf body without the k8s envelope"))?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    for (number, field) in fields(unknown)? {
        match (number, field) {
            (1, Field::Bytes(type_meta)) => {
                for (n, f) in fields(type_meta)? {
                    match (n, f) {
                        (1, Field::Bytes(b)) => api_version = string(b)?,
                        (2, Field::Bytes(b)) => kind = string(b)?,
                        _ => {}
                    }
                }
            }
            (2, Field::Bytes(b)) => raw = b,
            _ => {}
        }
    }
    let mut object = json!({"apiVersion": api_version, "kind": kind});
    for (number, field) in fields(raw)? {
        let Field::Bytes(bytes) = field else {
            let immutable =
                (kind == "ConfigMap" && number == 4) || (kind == "Secret" && number == 5);
            if let (true, Field::Varint(v)) = (immutable, field) {
                object["immutable"] = json!(v != 0);
            }
            continue;
        };
        match (kind.as_str(), number) {
            (_, 1) => object["metadata"] = object_meta(bytes)?,
            ("Namespace", 2) => {
                let mut finalizers = Vec::new();
                for (n, f) in fields(bytes)? {
                    if let (1, Field::Bytes(b)) = (n, f) {
                        finalizers.push(json!(string(b)?));
                    }
                }
                object["spec"] = json!({"finalizers": finalizers});
            }
            ("ConfigMap", 2) => {
                let (k, v) = map_entry(bytes)?;
                object["data"][k] = json!(string(&v)?);
            }
            ("ConfigMap", 3) | ("Secret", 2) => {
                let (k, v) = map_entry(bytes)?;
                let field = if kind == "Secret" {
                    "data"
                } else {
                    "binaryData"
                };
                object[field][k] = json!(base64(&v));
            }
            ("Secret", 3) => object["type"] = json!(string(bytes)?),
            ("Secret", 4) => {
                let (k, v) = map_entry(bytes)?;
                object["stringData"][k] = json!(string(&v)?);
            }
            ("Role" | "ClusterRole", 2) => {
                push(
                    &mut object,
                    "rules",
                    strings(bytes, &POLICY_RULE, &POLICY_RULE)?,
                );
            }
            ("ClusterRole", 3) => object["aggregationRule"] = aggregation_rule(bytes)?,
            ("RoleBinding" | "ClusterRoleBinding", 2) => {
                push(&mut object, "subjects", strings(bytes, &SUBJECT, &[])?);
            }
            ("RoleBinding" | "ClusterRoleBinding", 3) => {
                object["roleRef"] = strings(bytes, &["apiGroup", "kind", "name"], &[])?;
            }
            ("SelfSubjectAccessReview", 2) => object["spec"] = access_review_spec(bytes)?,
            ("SelfSubjectRulesReview", 2) => object["spec"] = strings(bytes, &["namespace"], &[])?,
            (
                "Namespace"
                | "ConfigMap"
                | "Secret"
                | "ServiceAccount"
                | "Role"
                | "ClusterRole"
                | "RoleBinding"
                | "ClusterRoleBinding"
                | "SelfSubjectAccessReview"
                | "SelfSubjectRulesReview"
                | "SelfSubjectReview",
                _,
            ) => {}
            _ => {
                return Err(ApiError::unsupported_media_type(&format!(
                    "application/vnd.kubernetes.protobuf ({kind} is only served as JSON)"
                )));
            }
        }
    }
    Ok(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(number: u64, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![
            u8::try_from(number << 3 | 2).unwrap_or(0),
            u8::try_from(bytes.len()).unwrap_or(0),
        ];
        out.extend_from_slice(bytes);
        out
    }

    #[test]
    fn a_namespace_decodes() {
        let meta = [
            field(1, b"demo"),
            field(11, &[field(1, b"team"), field(2, b"a")].concat()),
        ]
        .concat();
        let raw = field(1, &meta);
        let type_meta = [field(1, b"v1"), field(2, b"Namespace")].concat();
        let mut body = b"k8s\0".to_vec();
        body.extend([field(1, &type_meta), field(2, &raw)].concat());
        let object = decode(&body).unwrap();
        assert_eq!(
            object,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo", "labels": {"team": "a"}}})
        );
        assert_eq!(base64(b"hello"), "aGVsbG8=");
    }

    #[test]
    fn a_self_subject_access_review_decodes() {
        let attributes = [
            field(1, b"team-a"),
            field(2, b"create"),
            field(3, b"apps"),
            field(5, b"deployments"),
        ]
        .concat();
        let raw = [field(1, b""), field(2, &field(1, &attributes))].concat();
        let type_meta = [
            field(1, b"authorization.k8s.io/v1"),
            field(2, b"SelfSubjectAccessReview"),
        ]
        .concat();
        let mut body = b"k8s\0".to_vec();
        body.extend([field(1, &type_meta), field(2, &raw)].concat());
        let object = decode(&body).unwrap();
        assert_eq!(
            object["spec"],
            json!({"resourceAttributes": {"namespace": "team-a", "verb": "create", "group": "apps", "resource": "deployments"}})
        );
    }

    #[test]
    fn roles_and_bindings_decode() {
        let decode_kind = |kind: &[u8], raw: Vec<u8>| {
            let type_meta = [field(1, b"rbac.authorization.k8s.io/v1"), field(2, kind)].concat();
            let mut body = b"k8s\0".to_vec();
            body.extend([field(1, &type_meta), field(2, &raw)].concat());
            decode(&body).unwrap()
        };
        let rule = [
            field(1, b"get"),
            field(1, b"list"),
            field(2, b""),
            field(3, b"pods"),
        ]
        .concat();
        let labels = field(1, &[field(1, b"team"), field(2, b"a")].concat());
        let role = decode_kind(
            b"ClusterRole",
            [
                field(1, &field(1, b"r")),
                field(2, &rule),
                field(3, &field(1, &labels)),
            ]
            .concat(),
        );
        assert_eq!(
            role["rules"],
            json!([{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}])
        );
        assert_eq!(
            role["aggregationRule"],
            json!({"clusterRoleSelectors": [{"matchLabels": {"team": "a"}}]})
        );
        let subject = [
            field(1, b"User"),
            field(2, b"rbac.authorization.k8s.io"),
            field(3, b"alice"),
        ]
        .concat();
        let role_ref = [
            field(1, b"rbac.authorization.k8s.io"),
            field(2, b"Role"),
            field(3, b"r"),
        ]
        .concat();
        let binding = decode_kind(
            b"RoleBinding",
            [
                field(1, &field(1, b"b")),
                field(2, &subject),
                field(3, &role_ref),
            ]
            .concat(),
        );
        assert_eq!(
            binding["subjects"],
            json!([{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"}])
        );
        assert_eq!(binding["roleRef"]["kind"], "Role");
    }

    #[test]
    fn a_match_expression_without_key_or_operator_decodes_without_panicking() {
        let aggregated = |expression: Vec<u8>| {
            let selector = field(2, &expression);
            let raw = [field(1, &field(1, b"agg")), field(3, &field(1, &selector))].concat();
            let type_meta = [
                field(1, b"rbac.authorization.k8s.io/v1"),
                field(2, b"ClusterRole"),
            ]
            .concat();
            let mut body = b"k8s\0".to_vec();
            body.extend([field(1, &type_meta), field(2, &raw)].concat());
            decode(&body).map(|role| role["aggregationRule"].clone())
        };
        assert_eq!(
            aggregated(Vec::new()).unwrap(),
            json!({"clusterRoleSelectors": [{"matchExpressions": [{}]}]})
        );
        assert_eq!(
            aggregated(field(3, b"x")).unwrap(),
            json!({"clusterRoleSelectors": [{"matchExpressions": [{"values": ["x"]}]}]})
        );
        let whole = [
            field(1, b"team"),
            field(2, b"In"),
            field(3, b"a"),
            field(3, b"b"),
        ]
        .concat();
        assert_eq!(
            aggregated(whole).unwrap(),
            json!({"clusterRoleSelectors": [{"matchExpressions": [
                {"key": "team", "operator": "In", "values": ["a", "b"]}
            ]}]})
        );
    }
}
