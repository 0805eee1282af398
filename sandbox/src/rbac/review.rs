//! The self-review APIs every authenticated user may call, answered for the
//! (possibly impersonated) requester and never stored:
//! `authorization.k8s.io/v1` SelfSubjectAccessReview (`kubectl auth can-i`)
//! and SelfSubjectRulesReview (`kubectl auth can-i --list`), and
//! `authentication.k8s.io/v1` SelfSubjectReview (`kubectl auth whoami`).

use serde_json::{Value, json};

use crate::auth::UserInfo;
use crate::registry::ResourceType;
use crate::status::ApiError;
use crate::store::{Store, string_at};

use super::policy::aggregate;
use super::{Attributes, Mode, authorize, rules_for};

/// Answer a review `body` posted to `rt` by `user`: the body with its
/// `status` filled in.
pub fn answer(
    mode: Mode,
    store: &Store,
    user: &UserInfo,
    rt: &ResourceType,
    body: Value,
) -> Result<Value, ApiError> {
    let spec = body.get("spec").cloned().unwrap_or(json!({}));
    let status = match rt.kind.as_str() {
        "SelfSubjectAccessReview" => access_status(mode, store, user, rt, &spec)?,
        "SelfSubjectRulesReview" => rules_status(mode, store, user, &spec)?,
        "SelfSubjectReview" => json!({"userInfo": {
            "username": user.name,
            "uid": (!user.uid.is_empty()).then_some(&user.uid),
            "groups": user.groups,
            "extra": (!user.extra.is_empty()).then_some(&user.extra),
        }}),
        other => {
            return Err(ApiError::method_not_allowed(format!(
                "{other} cannot be created"
            )));
        }
    };
    let mut status = status;
    strip_nulls(&mut status);
    let mut answer = json!({
        "kind": rt.kind,
        "apiVersion": rt.api_version(),
        "metadata": {"creationTimestamp": null},
        "status": status,
    });
    if rt.kind != "SelfSubjectReview" {
        answer["spec"] = spec;
    }
    Ok(answer)
}

/// `SubjectAccessReviewStatus`: `allowed`, the authorizer's `reason`, and any
/// evaluation error (RBAC never denies outright, so `denied` stays unset).
fn access_status(
    mode: Mode,
    store: &Store,
    user: &UserInfo,
    rt: &ResourceType,
    spec: &Value,
) -> Result<Value, ApiError> {
    let attrs = match (
        spec.get("resourceAttributes"),
        spec.get("nonResourceAttributes"),
    ) {
        (Some(r), None) => Attributes {
            verb: string_at(r, "/verb"),
            resource_request: true,
            api_group: string_at(r, "/group"),
            api_version: string_at(r, "/version"),
            resource: string_at(r, "/resource"),
            subresource: string_at(r, "/subresource"),
            namespace: string_at(r, "/namespace"),
            name: string_at(r, "/name"),
            path: String::new(),
        },
        (None, Some(n)) => Attributes {
            verb: string_at(n, "/verb"),
            path: string_at(n, "/path"),
            ..Attributes::default()
        },
        _ => {
            return Err(ApiError::invalid(
                &format!("{}.{}", rt.kind, rt.group),
                "",
                "spec.resourceAttributes: Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified",
            ));
        }
    };
    let decision = authorize(mode, store, user, &attrs);
    Ok(json!({
        "allowed": decision.allowed,
        "reason": (!decision.reason.is_empty()).then_some(decision.reason),
        "evaluationError": (!decision.errors.is_empty()).then(|| aggregate(&decision.errors)),
    }))
}

/// `SubjectRulesReviewStatus` for `spec.namespace`: every rule that applies,
/// split into resource and non-resource rules as the RBAC rule resolver does.
fn rules_status(
    mode: Mode,
    store: &Store,
    user: &UserInfo,
    spec: &Value,
) -> Result<Value, ApiError> {
    let namespace = string_at(spec, "/namespace");
    if namespace.is_empty() {
        return Err(ApiError::bad_request("no namespace on request"));
    }
    let (rules, errors) = rules_for(mode, store, user, &namespace);
    let resource_rules: Vec<Value> = rules
        .iter()
        .filter(|r| !r.resources.is_empty())
        .map(|r| {
            json!({
                "verbs": r.verbs,
                "apiGroups": r.api_groups,
                "resources": r.resources,
                "resourceNames": (!r.resource_names.is_empty()).then_some(&r.resource_names),
            })
        })
        .collect();
    let non_resource_rules: Vec<Value> = rules
        .iter()
        .filter(|r| !r.non_resource_urls.is_empty())
        .map(|r| json!({"verbs": r.verbs, "nonResourceURLs": r.non_resource_urls}))
        .collect();
    Ok(json!({
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        "incomplete": false,
        "evaluationError": (!errors.is_empty()).then(|| aggregate(&errors)),
    }))
}

/// Drop `null` members, as `omitempty` fields are left out.
fn strip_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}
