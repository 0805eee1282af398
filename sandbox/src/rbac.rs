//! Authorization, as kube-apiserver does it in one of two modes:
//! `AlwaysAllow`, or the privileged `system:masters` group followed by the
//! RBAC authorizer, which evaluates the store's Roles, ClusterRoles and
//! bindings at request time. Also RBAC's escalation prevention, the
//! self-review APIs and the bootstrap policy.

mod attributes;
pub mod bootstrap;
pub mod escalation;
mod policy;
pub mod review;
pub mod rules;

pub use attributes::{Attributes, is_watch};
pub use policy::{Policy, RoleRef};
pub use rules::PolicyRule;

use crate::auth::{MASTERS, UserInfo};
use crate::store::Store;

/// The RBAC API group.
pub const GROUP: &str = "rbac.authorization.k8s.io";

/// How requests are authorized.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    /// `--authorization-mode=AlwaysAllow`: everything, for everyone.
    #[default]
    AlwaysAllow,
    /// `--authorization-mode=RBAC`: `system:masters`, then RBAC rules.
    Rbac,
}

/// An authorizer's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// Why (the RBAC authorizer names the binding that allowed it, or the
    /// role references it could not resolve).
    pub reason: String,
    /// Role references that could not be resolved.
    pub errors: Vec<String>,
}

impl Decision {
    fn allow() -> Self {
        Self {
            allowed: true,
            ..Self::default()
        }
    }
}

/// Whether `user` may do what `attrs` describe.
pub fn authorize(mode: Mode, store: &Store, user: &UserInfo, attrs: &Attributes) -> Decision {
    match mode {
        Mode::AlwaysAllow => Decision::allow(),
        Mode::Rbac if user.in_group(MASTERS) => Decision::allow(),
        Mode::Rbac => Policy::new(store).authorize(user, attrs),
    }
}

/// Every rule that applies to `user` in `namespace`, and the role
/// references that could not be resolved (what a SelfSubjectRulesReview lists).
pub fn rules_for(
    mode: Mode,
    store: &Store,
    user: &UserInfo,
    namespace: &str,
) -> (Vec<PolicyRule>, Vec<String>) {
    match mode {
        Mode::AlwaysAllow => (
            vec![
                PolicyRule::resource(&["*"], &["*"], &["*"]),
                PolicyRule::urls(&["*"], &["*"]),
            ],
            Vec::new(),
        ),
        Mode::Rbac => Policy::new(store).rules_for(user, namespace),
    }
}

#[cfg(test)]
mod tests;
