//! The store's RBAC objects as the RBAC authorizer reads them at request
//! time: the bindings that apply to a user, the roles they reference
//! (aggregated ClusterRoles gathered from their selectors), and their rules.

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::UserInfo;
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::{Store, name_of, namespace_of};

use super::rules::{self, nullable};
use super::{Attributes, Decision, GROUP, PolicyRule};

/// A binding's `roleRef`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RoleRef {
    /// `rbac.authorization.k8s.io`.
    #[serde(rename = "apiGroup", default)]
    pub api_group: String,
    /// `Role` or `ClusterRole`.
    #[serde(default)]
    pub kind: String,
    /// The role's name.
    #[serde(default)]
    pub name: String,
}

/// One subject of a binding.
#[derive(Debug, Clone, Default, Deserialize)]
struct Subject {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: String,
}

/// A RoleBinding or ClusterRoleBinding.
#[derive(Debug, Clone, Default, Deserialize)]
struct Binding {
    #[serde(skip)]
    kind: &'static str,
    #[serde(skip)]
    name: String,
    #[serde(skip)]
    namespace: String,
    #[serde(rename = "roleRef", default)]
    role_ref: RoleRef,
    #[serde(default, deserialize_with = "nullable")]
    subjects: Vec<Subject>,
}

/// The label selectors of a ClusterRole's `aggregationRule`, as written
/// (none when it has no aggregation rule).
pub fn aggregation_selectors(role: &Value) -> &[Value] {
    role.pointer("/aggregationRule/clusterRoleSelectors")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The rules a stored role grants. The store refuses roles whose rules do
/// not read, so the error cannot happen here; were it to, the role would
/// grant nothing.
fn granted(role: &Value) -> Vec<PolicyRule> {
    rules::listed(role).unwrap_or_default()
}

impl Subject {
    /// `appliesToUser`: a ServiceAccount subject without a namespace means the
    /// binding's namespace (never matching from a ClusterRoleBinding).
    fn applies_to(&self, user: &UserInfo, binding_namespace: &str) -> bool {
        match self.kind.as_str() {
            "User" => user.name == self.name,
            "Group" => user.in_group(&self.name),
            "ServiceAccount" => {
                let namespace = self.namespace_or(binding_namespace);
                !namespace.is_empty()
                    && crate::auth::service_account(&user.name) == Some((namespace, &self.name))
            }
            _ => false,
        }
    }

    fn namespace_or<'a>(&'a self, binding_namespace: &'a str) -> &'a str {
        if self.namespace.is_empty() {
            binding_namespace
        } else {
            &self.namespace
        }
    }

    /// `User "alice"`, `ServiceAccount "deployer/team-a"`.
    fn describe(&self, binding_namespace: &str) -> String {
        match self.kind.as_str() {
            "ServiceAccount" => format!(
                "ServiceAccount {:?}",
                format!("{}/{}", self.name, self.namespace_or(binding_namespace))
            ),
            kind => format!("{kind} {:?}", self.name),
        }
    }
}

impl Binding {
    /// What an allowing reason names: `RoleBinding "b/team-a" of Role "r" to User "alice"`.
    fn describe(&self, subject: &Subject) -> String {
        let name = if self.namespace.is_empty() {
            self.name.clone()
        } else {
            format!("{}/{}", self.name, self.namespace)
        };
        format!(
            "{} {name:?} of {} {:?} to {}",
            self.kind,
            self.role_ref.kind,
            self.role_ref.name,
            subject.describe(&self.namespace)
        )
    }
}

/// Read access to the RBAC objects in a store.
#[derive(Debug, Clone, Copy)]
pub struct Policy<'s> {
    store: &'s Store,
}

impl<'s> Policy<'s> {
    /// The policy `store` holds.
    pub fn new(store: &'s Store) -> Self {
        Self { store }
    }

    /// Every object of an RBAC resource, in one namespace or all.
    fn objects(&self, plural: &str, namespace: Option<&str>) -> Vec<Value> {
        let Some(rt) = self.store.resolve(GROUP, "v1", plural) else {
            return Vec::new();
        };
        let fields = FieldSelector::default();
        self.store
            .list(&rt, namespace, &LabelSelector::default(), &fields)
            .0
    }

    fn object(&self, plural: &str, namespace: Option<&str>, name: &str) -> Option<Value> {
        let rt = self.store.resolve(GROUP, "v1", plural)?;
        self.store.get(&rt, namespace, name).ok()
    }

    fn bindings(&self, kind: &'static str, namespace: Option<&str>) -> Vec<Binding> {
        let plural = if kind == "RoleBinding" {
            "rolebindings"
        } else {
            "clusterrolebindings"
        };
        self.objects(plural, namespace)
            .into_iter()
            .filter_map(|object| {
                let mut binding: Binding = serde_json::from_value(object.clone()).ok()?;
                binding.kind = kind;
                binding.name = name_of(&object);
                binding.namespace = namespace_of(&object);
                Some(binding)
            })
            .collect()
    }

    /// The rules a `roleRef` grants (`GetRoleReferenceRules`); a missing role
    /// is a 404 worded as the real server's listers word it.
    pub fn role_ref_rules(
        &self,
        role_ref: &RoleRef,
        namespace: &str,
    ) -> Result<Vec<PolicyRule>, ApiError> {
        let not_found = |resource: &str| {
            let mut error = ApiError::not_found(&format!("{resource}.{GROUP}"), &role_ref.name);
            error.details = Some(json!({"name": role_ref.name, "group": GROUP, "kind": resource}));
            error
        };
        match role_ref.kind.as_str() {
            "Role" => self
                .object("roles", Some(namespace), &role_ref.name)
                .filter(|_| !namespace.is_empty())
                .map(|role| granted(&role))
                .ok_or_else(|| not_found("role")),
            "ClusterRole" => self
                .object("clusterroles", None, &role_ref.name)
                .map(|role| self.cluster_role_rules(&role))
                .ok_or_else(|| not_found("clusterrole")),
            other => Err(ApiError::bad_request(format!(
                "unsupported role reference kind: {other:?}"
            ))),
        }
    }

    /// A ClusterRole's rules; an aggregated one (a non-empty
    /// `aggregationRule.clusterRoleSelectors`) has the union of the rules of
    /// the other ClusterRoles its selectors match, as the aggregation
    /// controller would have written them.
    fn cluster_role_rules(&self, role: &Value) -> Vec<PolicyRule> {
        if aggregation_selectors(role).is_empty() {
            return granted(role);
        }
        let all = self.objects("clusterroles", None);
        let mut visited = BTreeSet::new();
        let mut rules = Vec::new();
        aggregate_rules(role, &all, &mut visited, &mut rules);
        rules
    }

    /// Call `visitor` with every rule that applies to `user` in `namespace`
    /// (ClusterRoleBindings first, then the namespace's RoleBindings) and the
    /// binding it came through, until it returns `false`. Returns the
    /// messages of the role references that could not be resolved.
    fn visit(
        &self,
        user: &UserInfo,
        namespace: &str,
        mut visitor: impl FnMut(&dyn Fn() -> String, &PolicyRule) -> bool,
    ) -> Vec<String> {
        let mut errors = Vec::new();
        let mut bindings = self.bindings("ClusterRoleBinding", None);
        if !namespace.is_empty() {
            bindings.extend(self.bindings("RoleBinding", Some(namespace)));
        }
        for binding in &bindings {
            let Some(subject) = binding
                .subjects
                .iter()
                .find(|s| s.applies_to(user, &binding.namespace))
            else {
                continue;
            };
            let rules = match self.role_ref_rules(&binding.role_ref, &binding.namespace) {
                Ok(rules) => rules,
                Err(error) => {
                    errors.push(error.message);
                    continue;
                }
            };
            let source = || binding.describe(subject);
            for rule in &rules {
                if !visitor(&source, rule) {
                    return errors;
                }
            }
        }
        errors
    }

    /// Every rule that applies to `user` in `namespace` (cluster-wide only
    /// when empty), and the role references that could not be resolved.
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> (Vec<PolicyRule>, Vec<String>) {
        let mut rules = Vec::new();
        let errors = self.visit(user, namespace, |_, rule| {
            rules.push(rule.clone());
            true
        });
        (rules, errors)
    }

    /// The RBAC authorizer's decision: allowed by the first rule that
    /// matches, with the binding named in the reason; otherwise no opinion,
    /// with unresolved role references as the reason.
    pub fn authorize(&self, user: &UserInfo, attrs: &Attributes) -> Decision {
        let mut allowed_by = None;
        let errors = self.visit(user, &attrs.namespace, |source, rule| {
            if rule.allows(attrs) {
                allowed_by = Some(source());
                return false;
            }
            true
        });
        match allowed_by {
            Some(source) => Decision {
                allowed: true,
                reason: format!("RBAC: allowed by {source}"),
                errors: Vec::new(),
            },
            None => Decision {
                allowed: false,
                reason: if errors.is_empty() {
                    String::new()
                } else {
                    format!("RBAC: {}", aggregate(&errors))
                },
                errors,
            },
        }
    }
}

/// Add to `rules` what `role` grants, out of `all` ClusterRoles: its own
/// rules, or for an aggregated role those of every ClusterRole its selectors
/// match. Each role is expanded once (`visited`), so roles that select each
/// other end the walk instead of repeating it.
fn aggregate_rules<'a>(
    role: &'a Value,
    all: &'a [Value],
    visited: &mut BTreeSet<&'a str>,
    rules: &mut Vec<PolicyRule>,
) {
    let name = role
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !visited.insert(name) {
        return;
    }
    let selectors: Vec<LabelSelector> = aggregation_selectors(role)
        .iter()
        .filter_map(|s| LabelSelector::from_json(s).ok())
        .collect();
    if selectors.is_empty() {
        for rule in granted(role) {
            if !rules.contains(&rule) {
                rules.push(rule);
            }
        }
        return;
    }
    for other in all
        .iter()
        .filter(|o| selectors.iter().any(|s| s.matches(o)))
    {
        aggregate_rules(other, all, visited, rules);
    }
}

/// Several errors as `utilerrors.NewAggregate` prints them.
pub fn aggregate(errors: &[String]) -> String {
    match errors {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}
