//! Validation and defaulting, as the real API server does it for the cases that matter to clients.

use serde_json::{Value, json};

use crate::registry::ResourceType;
use crate::status::ApiError;

fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && name
            .as_bytes()
            .first()
            .is_some_and(u8::is_ascii_alphanumeric)
        && name
            .as_bytes()
            .last()
            .is_some_and(u8::is_ascii_alphanumeric)
}

fn is_dns_subdomain(name: &str) -> bool {
    name.len() <= 253 && name.split('.').all(is_dns_label)
}

/// The kind's name in messages: `Deployment.apps`, `Service`.
pub fn qualified_kind(rt: &ResourceType) -> String {
    if rt.group.is_empty() {
        rt.kind.clone()
    } else {
        format!("{}.{}", rt.kind, rt.group)
    }
}

/// Check identity fields of an object written to `rt` in `namespace`.
pub fn identity(
    rt: &ResourceType,
    object: &Value,
    namespace: Option<&str>,
) -> Result<(), ApiError> {
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if kind.is_empty() {
        return Err(ApiError::bad_request(
            "Object 'Kind' is missing in the request body",
        ));
    }
    if api_version.is_empty() {
        return Err(ApiError::bad_request(
            "Object 'apiVersion' is missing in the request body",
        ));
    }
    if kind != rt.kind {
        return Err(ApiError::bad_request(format!(
            "the kind of the provided object ({kind}) does not match the kind of the request ({})",
            rt.kind
        )));
    }
    if api_version != rt.api_version() {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({})",
            rt.api_version()
        )));
    }
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let qualified = qualified_kind(rt);
    if name.is_empty() {
        return Err(ApiError::invalid(
            &qualified,
            "",
            "metadata.name: Required value: name or generateName is required",
        ));
    }
    if rt.group == "rbac.authorization.k8s.io" {
        // RBAC names are path segments (`system:discovery` is valid).
        return path_segment(&qualified, name)
            .and_then(|()| namespace_matches(rt, object, namespace));
    }
    let needs_label = matches!(rt.kind.as_str(), "Namespace" | "Service");
    let valid = if needs_label {
        is_dns_label(name)
    } else {
        is_dns_subdomain(name)
    };
    if !valid {
        let rule = if needs_label {
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"
        } else {
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
        };
        return Err(ApiError::invalid(
            &qualified,
            name,
            format!("metadata.name: Invalid value: {name:?}: {rule}"),
        ));
    }
    namespace_matches(rt, object, namespace)
}

/// `ValidatePathSegmentName`: no `.` or `..`, no `/` or `%`.
fn path_segment(qualified: &str, name: &str) -> Result<(), ApiError> {
    let problem = if name == "." || name == ".." {
        Some(format!("may not be '{name}'"))
    } else {
        ['/', '%']
            .into_iter()
            .find(|c| name.contains(*c))
            .map(|c| format!("may not contain '{c}'"))
    };
    match problem {
        Some(problem) => Err(ApiError::invalid(
            qualified,
            name,
            format!("metadata.name: Invalid value: {name:?}: {problem}"),
        )),
        None => Ok(()),
    }
}

/// The namespace in the body, if any, must be the request's.
fn namespace_matches(
    rt: &ResourceType,
    object: &Value,
    namespace: Option<&str>,
) -> Result<(), ApiError> {
    let body_namespace = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str);
    match (rt.namespaced, namespace, body_namespace) {
        (true, Some(path), Some(body)) if path != body => Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
        (true, None, _) => Err(ApiError::bad_request(
            "a namespaced object needs a namespace",
        )),
        _ => Ok(()),
    }
}

/// A create or update body must decode as its kind: a Role or ClusterRole
/// whose `rules` do not read as PolicyRules is a 400, worded as the real
/// server's decoder words it.
pub fn decodes(rt: &ResourceType, object: &Value) -> Result<(), ApiError> {
    match unreadable_rules(rt, object) {
        Some(why) => Err(ApiError::bad_request(format!(
            "{kind} in version {:?} cannot be handled as a {kind}: {why}",
            rt.version,
            kind = rt.kind
        ))),
        None => Ok(()),
    }
}

/// What a patch produced must decode as its kind: 422 Invalid on `patch`
/// when a Role's or ClusterRole's `rules` do not read, as the real server
/// answers a patch whose result it cannot decode.
pub fn patched(rt: &ResourceType, name: &str, object: &Value) -> Result<(), ApiError> {
    match unreadable_rules(rt, object) {
        Some(why) => Err(ApiError::invalid(
            &qualified_kind(rt),
            name,
            format!(
                "patch: Invalid value: {:?}: {why}",
                object
                    .get("rules")
                    .map(Value::to_string)
                    .unwrap_or_default()
            ),
        )),
        None => Ok(()),
    }
}

/// Why the rules of a Role or ClusterRole do not read (`None` for other kinds).
fn unreadable_rules(rt: &ResourceType, object: &Value) -> Option<String> {
    let role = rt.group == crate::rbac::GROUP && matches!(rt.kind.as_str(), "Role" | "ClusterRole");
    if !role {
        return None;
    }
    crate::rbac::rules::listed(object)
        .err()
        .map(|e| e.to_string())
}

/// Fields that may not change once set: 422 Invalid, as the real server says it.
pub fn immutable(rt: &ResourceType, old: &Value, new: &Value) -> Result<(), ApiError> {
    let name = new
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let fields: &[&str] = match (rt.group.as_str(), rt.kind.as_str()) {
        ("apps", "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet") => &["/spec/selector"],
        ("batch", "Job") => &["/spec/selector", "/spec/template"],
        ("", "Service") => &["/spec/clusterIP"],
        ("", "PersistentVolumeClaim") => &[
            "/spec/storageClassName",
            "/spec/accessModes",
            "/spec/volumeName",
        ],
        _ => &[],
    };
    for pointer in fields {
        let (before, after) = (old.pointer(pointer), new.pointer(pointer));
        // Job templates get a controller-uid label added by the server; compare what the user controls.
        if before.is_some() && before != after {
            if *pointer == "/spec/clusterIP" && after.is_none_or(|v| v.as_str() == Some("")) {
                continue;
            }
            let field = pointer.trim_start_matches('/').replace('/', ".");
            let value = after.map_or_else(|| "null".to_owned(), Value::to_string);
            return Err(ApiError::invalid(
                &qualified_kind(rt),
                name,
                format!("{field}: Invalid value: {value}: field is immutable"),
            ));
        }
    }
    if matches!(rt.kind.as_str(), "ConfigMap" | "Secret")
        && old.get("immutable").and_then(Value::as_bool) == Some(true)
        && (old.get("data") != new.get("data")
            || old.get("binaryData") != new.get("binaryData")
            || old.get("stringData") != new.get("stringData"))
    {
        return Err(ApiError::invalid(
            &qualified_kind(rt),
            name,
            "data: Forbidden: field is immutable when `immutable` is set",
        ));
    }
    Ok(())
}

/// Server-side defaults that show up in every real object (so a client that
/// diffs against a dry-run apply sees them, as against a real cluster).
pub fn default(
    rt: &ResourceType,
    object: &mut Value,
    old: Option<&Value>,
    next_ip: impl FnOnce() -> String,
) {
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "Secret") => {
            // As the real server: `stringData` is write-only, merged into
            // `data` (base64) over what `data` says, and never stored.
            let Some(map) = object.as_object_mut() else {
                return;
            };
            if let Some(Value::Object(strings)) = map.remove("stringData") {
                let data = map.entry("data").or_insert_with(|| json!({}));
                if let Some(data) = data.as_object_mut() {
                    for (key, value) in strings {
                        let text = value.as_str().unwrap_or_default().to_owned();
                        data.insert(
                            key,
                            json!(base64::engine::Engine::encode(
                                &base64::engine::general_purpose::STANDARD,
                                text
                            )),
                        );
                    }
                }
            }
            map.entry("type").or_insert_with(|| json!("Opaque"));
        }
        ("", "Service") => {
            let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) else {
                return;
            };
            spec.entry("type").or_insert_with(|| json!("ClusterIP"));
            spec.entry("sessionAffinity")
                .or_insert_with(|| json!("None"));
            if spec.get("type").and_then(Value::as_str) != Some("ExternalName")
                && spec.get("clusterIP").is_none_or(|v| v == "")
            {
                let ip = old
                    .and_then(|o| o.pointer("/spec/clusterIP"))
                    .and_then(Value::as_str)
                    .map_or_else(next_ip, str::to_owned);
                spec.insert("clusterIP".to_owned(), json!(ip));
                spec.insert("clusterIPs".to_owned(), json!([ip]));
            }
            if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
                for port in ports.iter_mut().filter_map(Value::as_object_mut) {
                    port.entry("protocol").or_insert_with(|| json!("TCP"));
                    if let Some(number) = port.get("port").cloned() {
                        port.entry("targetPort").or_insert(number);
                    }
                }
            }
        }
        ("apps", "Deployment" | "StatefulSet" | "ReplicaSet") => {
            if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
                spec.entry("replicas").or_insert_with(|| json!(1));
                spec.entry("revisionHistoryLimit")
                    .or_insert_with(|| json!(10));
                if rt.kind == "Deployment" {
                    spec.entry("progressDeadlineSeconds")
                        .or_insert_with(|| json!(600));
                }
            }
            default_pod_template(object.pointer_mut("/spec/template/spec"));
        }
        ("apps", "DaemonSet") | ("batch", "Job") => {
            default_pod_template(object.pointer_mut("/spec/template/spec"))
        }
        ("batch", "CronJob") => {
            default_pod_template(object.pointer_mut("/spec/jobTemplate/spec/template/spec"))
        }
        ("", "Pod") => default_pod_template(object.get_mut("spec")),
        _ => {}
    }
}

fn default_pod_template(spec: Option<&mut Value>) {
    let Some(spec) = spec.and_then(Value::as_object_mut) else {
        return;
    };
    for list in ["containers", "initContainers"] {
        if let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for container in containers.iter_mut().filter_map(Value::as_object_mut) {
                if let Some(ports) = container.get_mut("ports").and_then(Value::as_array_mut) {
                    for port in ports.iter_mut().filter_map(Value::as_object_mut) {
                        port.entry("protocol").or_insert_with(|| json!("TCP"));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_rfc_1123() {
        for good in ["a", "web-1", "x.y"] {
            assert!(is_dns_subdomain(good), "{good}");
        }
        for bad in ["", "Web", "-a", "a-", "a_b", &"a".repeat(254)] {
            assert!(!is_dns_subdomain(bad), "{bad}");
        }
        assert!(!is_dns_label("x.y"));
    }
}
