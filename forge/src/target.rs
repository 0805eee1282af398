//! What a hook is registered on: a repository (GitLab: a project) or an
//! organisation (GitLab: a group), and the API path segments naming it.

use std::fmt;
use std::str::FromStr;

use crate::{ForgeError, ForgeKind};

/// The repository or organisation whose hooks are managed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// `owner/name` on GitHub and Gitea; the project's full path on GitLab
    /// (`group/subgroup/project`), which is sent URL-encoded as one path
    /// segment (`group%2Fsubgroup%2Fproject`), as GitLab requires.
    Repo(String),
    /// A GitHub or Gitea organisation, or a GitLab group's full path
    /// (`group/subgroup`).
    Org(String),
}

impl Target {
    /// The path segments of the target's hook collection for `kind`, e.g.
    /// `["repos", "o", "r", "hooks"]` or `["projects", "g/p", "hooks"]`
    /// (each segment is percent-encoded when joined, so GitLab's `/` becomes
    /// `%2F`).
    pub(crate) fn hooks_segments(&self, kind: ForgeKind) -> Result<Vec<&str>, ForgeError> {
        let invalid = |reason: &'static str| ForgeError::InvalidTarget {
            target: self.to_string(),
            reason,
        };
        let segments = match (kind, self) {
            (ForgeKind::Github | ForgeKind::Gitea, Target::Repo(full)) => {
                let (owner, name) = full
                    .split_once('/')
                    .filter(|(o, n)| !o.is_empty() && !n.is_empty() && !n.contains('/'))
                    .ok_or_else(|| invalid("a repository is named owner/name"))?;
                vec!["repos", owner, name, "hooks"]
            }
            (ForgeKind::Github | ForgeKind::Gitea, Target::Org(org)) => {
                if org.is_empty() || org.contains('/') {
                    return Err(invalid("an organisation is named by one path segment"));
                }
                vec!["orgs", org.as_str(), "hooks"]
            }
            (ForgeKind::Gitlab, Target::Repo(path)) => {
                check_gitlab_path(path).map_err(invalid)?;
                vec!["projects", path.as_str(), "hooks"]
            }
            (ForgeKind::Gitlab, Target::Org(path)) => {
                check_gitlab_path(path).map_err(invalid)?;
                vec!["groups", path.as_str(), "hooks"]
            }
        };
        if segments.iter().any(|s| matches!(*s, "." | "..")) {
            return Err(invalid("`.` and `..` are not names"));
        }
        Ok(segments)
    }

    /// The name, without the kind.
    pub fn name(&self) -> &str {
        match self {
            Target::Repo(name) | Target::Org(name) => name,
        }
    }
}

fn check_gitlab_path(path: &str) -> Result<(), &'static str> {
    if path.is_empty() || path.split('/').any(str::is_empty) {
        return Err("a GitLab path is group/…/name without empty segments");
    }
    Ok(())
}

impl fmt::Display for Target {
    /// The form [`FromStr`] parses: `repo:owner/name`, `org:name`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Repo(name) => write!(f, "repo:{name}"),
            Target::Org(name) => write!(f, "org:{name}"),
        }
    }
}

impl FromStr for Target {
    type Err = ForgeError;

    /// `org:<name>` or `group:<path>` is an organisation (group);
    /// `repo:<path>`, `project:<path>` or a bare `<owner>/<name>` is a
    /// repository (project). Whether the name fits the forge is checked
    /// when it is used.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let target = match s.split_once(':') {
            Some(("org" | "group", name)) => Target::Org(name.to_owned()),
            Some(("repo" | "project", name)) => Target::Repo(name.to_owned()),
            Some(_) => {
                return Err(ForgeError::InvalidTarget {
                    target: s.to_owned(),
                    reason: "expected repo:<owner/name>, org:<name>, project:<path> or group:<path>",
                });
            }
            None if s.contains('/') => Target::Repo(s.to_owned()),
            None => {
                return Err(ForgeError::InvalidTarget {
                    target: s.to_owned(),
                    reason: "a bare name is ambiguous: write org:<name> or <owner>/<name>",
                });
            }
        };
        if target.name().is_empty() || target.name().trim() != target.name() {
            return Err(ForgeError::InvalidTarget {
                target: s.to_owned(),
                reason: "the name is empty or has surrounding spaces",
            });
        }
        Ok(target)
    }
}
