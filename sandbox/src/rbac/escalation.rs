//! RBAC's escalation prevention, as the real server's role and binding
//! storage enforces it: a Role or ClusterRole may only be written by someone
//! who holds every permission it grants (or may `escalate` it), and a
//! binding only by someone who may `bind` its role or holds every
//! permission of it. `system:masters` is exempt.

use serde_json::Value;

use crate::auth::{MASTERS, UserInfo};
use crate::registry::ResourceType;
use crate::status::ApiError;
use crate::store::Store;
use crate::validate;

use super::policy::{aggregate, aggregation_selectors};
use super::{Attributes, GROUP, Mode, Policy, PolicyRule, RoleRef, authorize, rules};

/// A write of an RBAC object, as the check sees it.
#[derive(Debug, Clone, Copy)]
pub struct RbacWrite<'a> {
    /// The written resource.
    pub rt: &'a ResourceType,
    /// The request's namespace (empty for cluster scope).
    pub namespace: &'a str,
    /// The name in the URL (empty on a POST create).
    pub name: &'a str,
    /// The object as it would be stored.
    pub object: &'a Value,
    /// The stored object it replaces, if any.
    pub old: Option<&'a Value>,
}

/// Whether writes of `rt` by `user` must be checked: RBAC objects, in RBAC
/// mode, by anyone outside `system:masters`.
pub fn required(mode: Mode, user: &UserInfo, rt: &ResourceType) -> bool {
    mode == Mode::Rbac
        && !user.in_group(MASTERS)
        && rt.group == GROUP
        && matches!(
            rt.plural.as_str(),
            "roles" | "clusterroles" | "rolebindings" | "clusterrolebindings"
        )
}

/// Refuse the write if it would grant `user` (or anyone) permissions `user`
/// does not hold, in the real server's words.
pub fn confirm(
    mode: Mode,
    store: &Store,
    user: &UserInfo,
    write: &RbacWrite<'_>,
) -> Result<(), ApiError> {
    if !required(mode, user, write.rt) {
        return Ok(());
    }
    let policy = Policy::new(store);
    let object_name = write
        .object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or(write.name);
    let forbidden = |why: String| ApiError::forbidden(GROUP, &write.rt.plural, object_name, &why);
    match write.rt.plural.as_str() {
        "roles" | "clusterroles" => {
            let escalate = Attributes::resource(
                "escalate",
                GROUP,
                &write.rt.plural,
                write.namespace,
                write.name,
            );
            if authorize(mode, store, user, &escalate).allowed {
                return Ok(());
            }
            let rules = rules::listed(write.object).map_err(|unreadable| {
                ApiError::invalid(
                    &validate::qualified_kind(write.rt),
                    object_name,
                    unreadable.to_string(),
                )
            })?;
            held(&policy, user, write.namespace, &rules).map_err(forbidden)?;
            let aggregated =
                |o: Option<&Value>| o.is_some_and(|o| !aggregation_selectors(o).is_empty());
            if write.rt.plural == "clusterroles"
                && (aggregated(Some(write.object)) || aggregated(write.old))
            {
                let everything = [
                    PolicyRule::resource(&["*"], &["*"], &["*"]),
                    PolicyRule::urls(&["*"], &["*"]),
                ];
                held(&policy, user, write.namespace, &everything).map_err(|_| {
                    forbidden(
                        "must have cluster-admin privileges to use the aggregationRule".to_owned(),
                    )
                })?;
            }
            Ok(())
        }
        _ => {
            let role_ref: RoleRef = write
                .object
                .get("roleRef")
                .and_then(|r| serde_json::from_value(r.clone()).ok())
                .unwrap_or_default();
            let resource = if role_ref.kind == "Role" {
                "roles"
            } else {
                "clusterroles"
            };
            let bind = Attributes::resource(
                "bind",
                &role_ref.api_group,
                resource,
                write.namespace,
                &role_ref.name,
            );
            if matches!(role_ref.kind.as_str(), "Role" | "ClusterRole")
                && authorize(mode, store, user, &bind).allowed
            {
                return Ok(());
            }
            let rules = policy.role_ref_rules(&role_ref, write.namespace)?;
            held(&policy, user, write.namespace, &rules).map_err(forbidden)
        }
    }
}

/// `ConfirmNoEscalation`: `Err` with the real message unless `user`'s rules
/// in `namespace` cover every one of `wanted`.
fn held(
    policy: &Policy<'_>,
    user: &UserInfo,
    namespace: &str,
    wanted: &[PolicyRule],
) -> Result<(), String> {
    let (owned, errors) = policy.rules_for(user, namespace);
    let missing = rules::uncovered(&owned, wanted);
    if missing.is_empty() {
        return Ok(());
    }
    let mut lines: Vec<String> = rules::compact(&missing)
        .iter()
        .map(PolicyRule::compact_string)
        .collect();
    lines.sort();
    lines.dedup();
    let groups: Vec<String> = user.groups.iter().map(|g| format!("{g:?}")).collect();
    let mut message = format!(
        "user {:?} (groups=[{}]) is attempting to grant RBAC permissions not currently held:\n{}",
        user.name,
        groups.join(" "),
        lines.join("\n")
    );
    if !errors.is_empty() {
        message.push_str(&format!("; resolution errors: [{}]", aggregate(&errors)));
    }
    Err(message)
}
