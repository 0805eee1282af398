//! RBAC policy rules: whether one allows a request (the RBAC authorizer's
//! `RuleAllows`), whether some rules cover others (escalation prevention's
//! `Covers`), the compact form escalation errors print, and the one reader
//! of a role's `rules` that the authorizer, escalation prevention and
//! validation share.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::Attributes;

/// `*`: every verb, group, resource or URL.
const ALL: &str = "*";

/// One `rbac.authorization.k8s.io/v1` PolicyRule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRule {
    /// Verbs (`get`, `*`, …).
    #[serde(default, deserialize_with = "nullable")]
    pub verbs: Vec<String>,
    /// API groups (`""` for core, `*`).
    #[serde(
        rename = "apiGroups",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub api_groups: Vec<String>,
    /// Resources (`deployments`, `deployments/scale`, `*/scale`, `*`).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub resources: Vec<String>,
    /// Object names the rule is limited to (empty: any).
    #[serde(
        rename = "resourceNames",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub resource_names: Vec<String>,
    /// Non-resource paths (`/healthz`, `/apis/*`, `*`).
    #[serde(
        rename = "nonResourceURLs",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub non_resource_urls: Vec<String>,
}

/// Why a role's `rules` do not read as PolicyRules (the real server cannot
/// decode such a role, so it never stores one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct UnreadableRules {
    /// `rules`, or `rules[i]` for the first rule that does not read.
    pub field: String,
    /// What the decoder said.
    pub reason: String,
}

/// The rules a Role or ClusterRole object lists, read rule by rule; absent
/// or `null` `rules` are none. Any rule that does not read makes the whole
/// list unreadable: a role is taken as written or not at all.
pub fn listed(role: &Value) -> Result<Vec<PolicyRule>, UnreadableRules> {
    let items = match role.get("rules") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(UnreadableRules {
                field: "rules".to_owned(),
                reason: format!("expected an array of rules, got {other}"),
            });
        }
    };
    items
        .iter()
        .enumerate()
        .map(|(i, rule)| {
            PolicyRule::deserialize(rule).map_err(|e| UnreadableRules {
                field: format!("rules[{i}]"),
                reason: e.to_string(),
            })
        })
        .collect()
}

/// A list field that may be absent or `null`.
pub(super) fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

/// Owned copies of `items`.
fn owned(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn has(set: &[String], value: &str) -> bool {
    set.iter().any(|s| s == value)
}

fn has_all(set: &[String], values: &[String]) -> bool {
    values.iter().all(|v| has(set, v))
}

/// Whether the URL pattern `rule` (exact, `*`, or a prefix ending in `*`) matches `path`.
fn url_matches(rule: &str, path: &str) -> bool {
    rule == ALL
        || rule == path
        || rule
            .strip_suffix('*')
            .is_some_and(|prefix| path.starts_with(prefix.trim_end_matches('*')))
}

impl PolicyRule {
    /// A rule of `verbs` on `resources` in `groups`.
    pub fn resource(verbs: &[&str], groups: &[&str], resources: &[&str]) -> Self {
        Self {
            verbs: owned(verbs),
            api_groups: owned(groups),
            resources: owned(resources),
            ..Self::default()
        }
    }

    /// A rule of `verbs` on the non-resource `urls`.
    pub fn urls(verbs: &[&str], urls: &[&str]) -> Self {
        Self {
            verbs: owned(verbs),
            non_resource_urls: owned(urls),
            ..Self::default()
        }
    }

    /// Whether the rule allows the request `attrs` describes.
    pub fn allows(&self, attrs: &Attributes) -> bool {
        let verb = has(&self.verbs, ALL) || has(&self.verbs, &attrs.verb);
        if !attrs.resource_request {
            return verb
                && self
                    .non_resource_urls
                    .iter()
                    .any(|url| url_matches(url, &attrs.path));
        }
        let group = has(&self.api_groups, ALL) || has(&self.api_groups, &attrs.api_group);
        let name = self.resource_names.is_empty() || has(&self.resource_names, &attrs.name);
        verb && group && name && self.matches_resource(&attrs.resource, &attrs.subresource)
    }

    /// `*`, the exact `resource[/subresource]`, or `*/subresource`.
    fn matches_resource(&self, resource: &str, subresource: &str) -> bool {
        let combined = if subresource.is_empty() {
            resource.to_owned()
        } else {
            format!("{resource}/{subresource}")
        };
        self.resources.iter().any(|r| {
            r == ALL
                || *r == combined
                || (!subresource.is_empty() && r.strip_prefix("*/") == Some(subresource))
        })
    }

    /// One rule per group, resource, verb and name (or URL and verb): the
    /// units escalation checks one at a time.
    fn breakdown(&self) -> Vec<PolicyRule> {
        let one = |s: &String| vec![s.clone()];
        let mut out = Vec::new();
        for group in &self.api_groups {
            for resource in &self.resources {
                for verb in &self.verbs {
                    let base = PolicyRule {
                        verbs: one(verb),
                        api_groups: one(group),
                        resources: one(resource),
                        ..PolicyRule::default()
                    };
                    if self.resource_names.is_empty() {
                        out.push(base);
                    } else {
                        out.extend(self.resource_names.iter().map(|name| PolicyRule {
                            resource_names: one(name),
                            ..base.clone()
                        }));
                    }
                }
            }
        }
        for url in &self.non_resource_urls {
            for verb in &self.verbs {
                out.push(PolicyRule::urls(&[verb], &[url]));
            }
        }
        out
    }

    /// Whether this rule grants at least everything `sub` does.
    fn covers(&self, sub: &PolicyRule) -> bool {
        let verbs = has(&self.verbs, ALL) || has_all(&self.verbs, &sub.verbs);
        let groups = has(&self.api_groups, ALL) || has_all(&self.api_groups, &sub.api_groups);
        let resources = has(&self.resources, ALL)
            || sub.resources.iter().all(|wanted| {
                has(&self.resources, wanted)
                    || wanted.split_once('/').is_some_and(|(_, subresource)| {
                        has(&self.resources, &format!("*/{subresource}"))
                    })
            });
        let urls = sub.non_resource_urls.iter().all(|wanted| {
            self.non_resource_urls
                .iter()
                .any(|u| url_matches(u, wanted))
        });
        let names = self.resource_names.is_empty()
            || (!sub.resource_names.is_empty()
                && has_all(&self.resource_names, &sub.resource_names));
        verbs && groups && resources && urls && names
    }

    /// The compact form escalation errors print:
    /// `{APIGroups:["apps"], Resources:["deployments"], Verbs:["delete"]}`.
    pub fn compact_string(&self) -> String {
        let quoted = |items: &[String]| {
            let inner: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
            format!("[{}]", inner.join(" "))
        };
        let parts: Vec<String> = [
            ("APIGroups", &self.api_groups),
            ("Resources", &self.resources),
            ("NonResourceURLs", &self.non_resource_urls),
            ("ResourceNames", &self.resource_names),
            ("Verbs", &self.verbs),
        ]
        .into_iter()
        .filter(|(_, items)| !items.is_empty())
        .map(|(label, items)| format!("{label}:{}", quoted(items)))
        .collect();
        format!("{{{}}}", parts.join(", "))
    }
}

/// The parts of `wanted` that no rule of `owner` covers, one unit each.
pub fn uncovered(owner: &[PolicyRule], wanted: &[PolicyRule]) -> Vec<PolicyRule> {
    wanted
        .iter()
        .flat_map(PolicyRule::breakdown)
        .filter(|unit| !owner.iter().any(|rule| rule.covers(unit)))
        .collect()
}

/// Merge units that differ only in their verbs (one group, one resource, at
/// most one name, no URLs), as the real server does before printing them.
pub fn compact(rules: &[PolicyRule]) -> Vec<PolicyRule> {
    let mut simple: Vec<PolicyRule> = Vec::new();
    let mut out = Vec::new();
    for rule in rules {
        let is_simple = rule.api_groups.len() == 1
            && rule.resources.len() == 1
            && rule.resource_names.len() <= 1
            && rule.non_resource_urls.is_empty();
        if !is_simple {
            out.push(rule.clone());
            continue;
        }
        let same = simple.iter_mut().find(|s| {
            s.api_groups == rule.api_groups
                && s.resources == rule.resources
                && s.resource_names == rule.resource_names
        });
        match same {
            Some(existing) => existing.verbs.extend(rule.verbs.iter().cloned()),
            None => simple.push(rule.clone()),
        }
    }
    out.extend(simple);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource_request(
        verb: &str,
        group: &str,
        resource: &str,
        sub: &str,
        name: &str,
    ) -> Attributes {
        Attributes {
            verb: verb.into(),
            resource_request: true,
            api_group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            name: name.into(),
            namespace: "team-a".into(),
            ..Attributes::default()
        }
    }

    fn named(mut rule: PolicyRule, names: &[&str]) -> PolicyRule {
        rule.resource_names = names.iter().map(|n| (*n).to_owned()).collect();
        rule
    }

    #[track_caller]
    fn check(rule: &PolicyRule, cases: &[(&str, &str, &str, &str, &str, bool)]) {
        for &(verb, group, resource, sub, name, expected) in cases {
            let attrs = resource_request(verb, group, resource, sub, name);
            assert_eq!(rule.allows(&attrs), expected, "{rule:?} vs {attrs:?}");
        }
    }

    #[test]
    fn rules_match_verbs_groups_and_resources() {
        let deploy = PolicyRule::resource(&["get", "list"], &["apps"], &["deployments"]);
        check(
            &deploy,
            &[
                ("get", "apps", "deployments", "", "web", true),
                ("list", "apps", "deployments", "", "", true),
                ("delete", "apps", "deployments", "", "web", false),
                ("get", "", "deployments", "", "web", false),
                ("get", "apps", "statefulsets", "", "web", false),
                // A subresource needs its own grant.
                ("get", "apps", "deployments", "scale", "web", false),
            ],
        );
        let wildcard = PolicyRule::resource(&["*"], &["*"], &["*"]);
        check(
            &wildcard,
            &[(
                "escalate",
                "rbac.authorization.k8s.io",
                "roles",
                "",
                "",
                true,
            )],
        );
    }

    #[test]
    fn subresources_match_exactly_or_through_star_slash() {
        let scale = PolicyRule::resource(&["get", "update"], &["apps"], &["deployments/scale"]);
        check(
            &scale,
            &[
                ("get", "apps", "deployments", "scale", "web", true),
                ("get", "apps", "deployments", "", "web", false),
                ("get", "apps", "deployments", "status", "web", false),
            ],
        );
        let any_status = PolicyRule::resource(&["patch"], &["apps"], &["*/status"]);
        check(
            &any_status,
            &[
                ("patch", "apps", "deployments", "status", "web", true),
                ("patch", "apps", "statefulsets", "status", "db", true),
                ("patch", "apps", "deployments", "", "web", false),
                ("patch", "apps", "deployments", "scale", "web", false),
            ],
        );
    }

    #[test]
    fn resource_names_limit_named_requests_and_never_allow_unnamed_ones() {
        let rule = named(
            PolicyRule::resource(&["*"], &[""], &["configmaps"]),
            &["settings"],
        );
        check(
            &rule,
            &[
                ("get", "", "configmaps", "", "settings", true),
                ("delete", "", "configmaps", "", "settings", true),
                ("get", "", "configmaps", "", "other", false),
                // list, watch and create carry no name.
                ("list", "", "configmaps", "", "", false),
                ("create", "", "configmaps", "", "", false),
                // A list with fieldSelector=metadata.name=settings carries it.
                ("list", "", "configmaps", "", "settings", true),
            ],
        );
    }

    #[test]
    fn non_resource_urls_match_exactly_or_by_trailing_star() {
        let rule = PolicyRule::urls(&["get"], &["/healthz", "/apis/*"]);
        let path = |verb: &str, path: &str| Attributes {
            verb: verb.into(),
            path: path.into(),
            ..Attributes::default()
        };
        assert!(rule.allows(&path("get", "/healthz")));
        assert!(!rule.allows(&path("get", "/healthz/ping")));
        assert!(rule.allows(&path("get", "/apis/apps/v1")));
        assert!(rule.allows(&path("get", "/apis/")));
        assert!(!rule.allows(&path("get", "/apis")));
        assert!(!rule.allows(&path("post", "/healthz")));
        assert!(PolicyRule::urls(&["*"], &["*"]).allows(&path("delete", "/anything")));
        // URL rules never allow resource requests, and resource rules never paths.
        assert!(!rule.allows(&resource_request("get", "", "pods", "", "")));
        assert!(!PolicyRule::resource(&["*"], &["*"], &["*"]).allows(&path("get", "/healthz")));
    }

    #[test]
    fn coverage_is_checked_unit_by_unit() {
        let owner = vec![
            PolicyRule::resource(&["get", "list", "create"], &["apps"], &["deployments"]),
            PolicyRule::resource(&["get"], &[""], &["*/status"]),
            named(
                PolicyRule::resource(&["update"], &[""], &["configmaps"]),
                &["a", "b"],
            ),
            PolicyRule::urls(&["get"], &["/metrics/*"]),
        ];
        let wanted = |rule: PolicyRule| uncovered(&owner, &[rule]);
        assert!(
            wanted(PolicyRule::resource(
                &["get", "create"],
                &["apps"],
                &["deployments"]
            ))
            .is_empty()
        );
        assert!(wanted(PolicyRule::resource(&["get"], &[""], &["pods/status"])).is_empty());
        assert!(
            wanted(named(
                PolicyRule::resource(&["update"], &[""], &["configmaps"]),
                &["a"]
            ))
            .is_empty()
        );
        assert!(wanted(PolicyRule::urls(&["get"], &["/metrics/cadvisor"])).is_empty());
        // A rule without names asks for every name, which a named grant does not cover.
        assert_eq!(
            wanted(PolicyRule::resource(&["update"], &[""], &["configmaps"])).len(),
            1
        );
        assert_eq!(
            wanted(PolicyRule::resource(
                &["get", "delete", "patch"],
                &["apps"],
                &["deployments"]
            )),
            vec![
                PolicyRule::resource(&["delete"], &["apps"], &["deployments"]),
                PolicyRule::resource(&["patch"], &["apps"], &["deployments"]),
            ]
        );
        assert_eq!(wanted(PolicyRule::urls(&["get"], &["/metrics"])).len(), 1);
    }

    #[test]
    fn missing_rules_print_compactly_like_the_real_server() {
        let missing = uncovered(
            &[],
            &[
                PolicyRule::resource(&["get", "delete"], &["apps"], &["deployments"]),
                PolicyRule::urls(&["get"], &["/healthz"]),
                named(PolicyRule::resource(&["get"], &[""], &["secrets"]), &["a"]),
            ],
        );
        let printed: Vec<String> = compact(&missing)
            .iter()
            .map(PolicyRule::compact_string)
            .collect();
        assert_eq!(
            printed,
            [
                r#"{NonResourceURLs:["/healthz"], Verbs:["get"]}"#,
                r#"{APIGroups:["apps"], Resources:["deployments"], Verbs:["get" "delete"]}"#,
                r#"{APIGroups:[""], Resources:["secrets"], ResourceNames:["a"], Verbs:["get"]}"#,
            ],
            "non-simple units first, then the merged simple ones"
        );
        assert_eq!(
            PolicyRule::resource(&["*"], &["*"], &["*"]).compact_string(),
            r#"{APIGroups:["*"], Resources:["*"], Verbs:["*"]}"#
        );
    }

    #[test]
    fn rules_read_null_and_missing_lists_as_empty() {
        let rule: PolicyRule = serde_json::from_value(serde_json::json!({
            "verbs": ["get"], "apiGroups": null, "nonResourceURLs": ["/x"]
        }))
        .unwrap();
        assert_eq!(rule, PolicyRule::urls(&["get"], &["/x"]));
    }

    #[test]
    fn roles_are_read_rule_by_rule_and_one_unreadable_rule_spoils_them_all() {
        let secrets =
            serde_json::json!({"apiGroups": [""], "resources": ["secrets"], "verbs": ["*"]});
        let read = |rules: serde_json::Value| listed(&serde_json::json!({"rules": rules}));
        assert_eq!(
            read(serde_json::json!([secrets])),
            Ok(vec![PolicyRule::resource(&["*"], &[""], &["secrets"])])
        );
        let error = read(serde_json::json!([secrets, {"verbs": "get"}])).unwrap_err();
        assert_eq!(error.field, "rules[1]");
        assert!(error.reason.contains("invalid type"), "{error}");
        assert_eq!(read(serde_json::json!("all")).unwrap_err().field, "rules");
        assert_eq!(read(serde_json::Value::Null), Ok(Vec::new()));
        assert_eq!(listed(&serde_json::json!({})), Ok(Vec::new()));
    }
}
