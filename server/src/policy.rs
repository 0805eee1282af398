//! Who may see and do what: the identity provider's groups mapped to a role
//! per Project.
//!
//! Argo CD's model (Casbin policy lines with subjects, resources, actions,
//! object globs, allow and deny, a default role) is the reference. This one
//! is smaller on purpose: a Project is pushsync's unit of tenancy, so a
//! grant names a Project, a role and the groups that hold it; roles are
//! ordered (read < sync < rollback < admin, each including the ones before),
//! a user's role in a Project is the highest any of their groups holds, and
//! `admins` hold admin everywhere. No deny rules and no globs: what a user
//! can do is read off one file without evaluating rules in order, which is
//! what makes a review of who-can-do-what possible.
//!
//! ```yaml
//! admins: [platform]
//! projects:
//!   team-a: {read: [viewers], sync: [team-a], rollback: [team-a-leads]}
//!   team-b: {sync: [team-b]}
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What a user may do in a Project; each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// See Applications, their resources, diffs, history and events.
    Read,
    /// Also sync and refresh.
    Sync,
    /// Also roll back to a deployed revision.
    Rollback,
    /// Also suspend and resume.
    Admin,
}

impl Role {
    /// `read`, `sync`, `rollback`, `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Sync => "sync",
            Role::Rollback => "rollback",
            Role::Admin => "admin",
        }
    }
}

/// The groups holding each role in one Project.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectGrants {
    /// Groups that may read.
    #[serde(default)]
    pub read: Vec<String>,
    /// Groups that may sync.
    #[serde(default)]
    pub sync: Vec<String>,
    /// Groups that may roll back.
    #[serde(default)]
    pub rollback: Vec<String>,
    /// Groups that may do everything.
    #[serde(default)]
    pub admin: Vec<String>,
}

/// The whole policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Groups that are admin in every Project.
    #[serde(default)]
    pub admins: Vec<String>,
    /// Grants by Project name.
    #[serde(default)]
    pub projects: BTreeMap<String, ProjectGrants>,
}

/// A user as the server knows them: a name and groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The name shown and logged (`alice`, `token:ci`).
    pub name: String,
    /// The groups the identity provider (or the token) gives them.
    pub groups: Vec<String>,
}

/// Why a policy file was refused.
#[derive(Debug, thiserror::Error)]
#[error("policy: {0}")]
pub struct PolicyError(String);

impl Policy {
    /// Parse a policy file (YAML); unknown keys are errors (a typo must not
    /// silently grant or withhold).
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let policy: Policy =
            serde_saphyr::from_str(text).map_err(|e| PolicyError(e.to_string()))?;
        let groups = policy
            .admins
            .iter()
            .chain(policy.projects.values().flat_map(|g| {
                g.read
                    .iter()
                    .chain(&g.sync)
                    .chain(&g.rollback)
                    .chain(&g.admin)
            }));
        for group in groups {
            if group.trim().is_empty() || group.len() > 256 {
                return Err(PolicyError(format!("{group:?} is not a group name")));
            }
        }
        Ok(policy)
    }

    /// `user`'s role in `project`, if any.
    pub fn role(&self, user: &User, project: &str) -> Option<Role> {
        let holds = |groups: &[String]| user.groups.iter().any(|g| groups.contains(g));
        if holds(&self.admins) {
            return Some(Role::Admin);
        }
        let grants = self.projects.get(project)?;
        [
            (Role::Admin, &grants.admin),
            (Role::Rollback, &grants.rollback),
            (Role::Sync, &grants.sync),
            (Role::Read, &grants.read),
        ]
        .into_iter()
        .find(|(_, groups)| holds(groups))
        .map(|(role, _)| role)
    }

    /// Whether `user` holds at least `needed` in `project`.
    pub fn allows(&self, user: &User, project: &str, needed: Role) -> bool {
        self.role(user, project).is_some_and(|role| role >= needed)
    }

    /// `user` with only the groups this policy names: what a session
    /// keeps (an identity provider may send hundreds of groups, more than a
    /// cookie holds, and the others grant nothing here).
    pub fn relevant(&self, user: User) -> User {
        let named = |group: &String| {
            self.admins.contains(group)
                || self.projects.values().any(|g| {
                    g.read.contains(group)
                        || g.sync.contains(group)
                        || g.rollback.contains(group)
                        || g.admin.contains(group)
                })
        };
        User {
            groups: user.groups.into_iter().filter(named).collect(),
            name: user.name,
        }
    }

    /// `user`'s role in every Project the policy names (admins: `*`).
    pub fn roles(&self, user: &User) -> BTreeMap<String, Role> {
        let mut roles = BTreeMap::new();
        if user.groups.iter().any(|g| self.admins.contains(g)) {
            roles.insert("*".to_owned(), Role::Admin);
        }
        for project in self.projects.keys() {
            if let Some(role) = self.role(user, project) {
                roles.insert(project.clone(), role);
            }
        }
        roles
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;

    fn user(groups: &[&str]) -> User {
        User {
            name: "u".to_owned(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        }
    }

    const POLICY: &str = r#"
admins: [platform]
projects:
  team-a: {read: [viewers], sync: [team-a], rollback: [team-a-leads], admin: [team-a-admins]}
  team-b: {sync: [team-b]}
"#;

    #[test]
    fn a_users_role_is_the_highest_their_groups_hold_in_that_project() {
        let policy = Policy::parse(POLICY).unwrap();
        assert_eq!(policy.role(&user(&["team-a"]), "team-a"), Some(Role::Sync));
        assert_eq!(policy.role(&user(&["team-a"]), "team-b"), None);
        assert_eq!(
            policy.role(&user(&["viewers", "team-a-leads"]), "team-a"),
            Some(Role::Rollback)
        );
        assert_eq!(
            policy.role(&user(&["platform"]), "anything"),
            Some(Role::Admin)
        );
        assert_eq!(policy.role(&user(&[]), "team-a"), None);
        assert!(policy.allows(&user(&["team-a-leads"]), "team-a", Role::Sync));
        assert!(!policy.allows(&user(&["team-a"]), "team-a", Role::Rollback));
        assert!(!policy.allows(&user(&["team-b"]), "team-a", Role::Read));
        let kept = policy.relevant(user(&["team-a", "unrelated", "platform"]));
        assert_eq!(kept.groups, ["team-a", "platform"]);
        let roles = policy.roles(&user(&["team-a", "team-b"]));
        assert_eq!(roles.get("team-a"), Some(&Role::Sync));
        assert_eq!(roles.get("team-b"), Some(&Role::Sync));
    }

    #[test]
    fn a_policy_with_a_typo_or_an_empty_group_is_refused() {
        let typo = Policy::parse("projects:\n  team-a: {synk: [team-a]}\n").unwrap_err();
        assert!(typo.to_string().contains("synk"), "{typo}");
        assert!(Policy::parse("admin: [platform]\n").is_err());
        assert!(Policy::parse("admins: [\"\"]\n").is_err());
        assert_eq!(Policy::parse("").unwrap(), Policy::default());
    }
}
