//! The normalised push event: what every forge's push webhook becomes.

use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::RepoId;

/// One ref update in one repository, as reported by a forge's push webhook and
/// normalised so that workers never look at provider-specific payloads.
///
/// A webhook that reports several ref updates at once (Bitbucket does) becomes
/// several events sharing one `delivery_id` and distinguished by `git_ref`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushEvent {
    /// The forge that sent the webhook.
    pub provider: Provider,
    /// The forge's delivery id (`X-GitHub-Delivery`, `Idempotency-Key`, …), or
    /// one the receiver made up when the forge sent none. Used to drop
    /// redeliveries; consumers must still tolerate duplicates.
    pub delivery_id: String,
    /// The repository that was pushed to.
    pub repository: Repository,
    /// The ref that moved.
    #[serde(rename = "ref")]
    pub git_ref: GitRef,
    /// The commit the ref pointed at before the push; `None` when it was created.
    pub before: Option<String>,
    /// The commit the ref points at now; `None` when it was deleted.
    pub after: Option<String>,
    /// The ref did not exist before this push.
    pub created: bool,
    /// The ref was deleted by this push.
    pub deleted: bool,
    /// The push rewrote history (only GitHub and Bitbucket Cloud report this;
    /// `false` elsewhere, which is why `changed_paths` is marked incomplete
    /// whenever a forge cannot list every change).
    pub forced: bool,
    /// The files this push changed, as far as the payload tells.
    pub changed_paths: ChangedPaths,
    /// Who pushed, as the forge names them (for logs and status only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pusher: Option<String>,
    /// When the receiver accepted the webhook.
    pub received_at: Timestamp,
}

/// A forge (or forge flavour) that sends push webhooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Provider {
    /// github.com and GitHub Enterprise Server.
    Github,
    /// gitlab.com and self-managed GitLab (project, group and system hooks).
    Gitlab,
    /// Gitea.
    Gitea,
    /// Forgejo (a Gitea fork with its own headers).
    Forgejo,
    /// Gogs.
    Gogs,
    /// Bitbucket Cloud (bitbucket.org).
    BitbucketCloud,
    /// Bitbucket Server and Data Center.
    BitbucketServer,
}

impl Provider {
    /// Every provider.
    pub const ALL: [Self; 7] = [
        Self::Github,
        Self::Gitlab,
        Self::Gitea,
        Self::Forgejo,
        Self::Gogs,
        Self::BitbucketCloud,
        Self::BitbucketServer,
    ];

    /// A short stable name, used in logs, routing keys and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Github => "github",
            Self::Gitlab => "gitlab",
            Self::Gitea => "gitea",
            Self::Forgejo => "forgejo",
            Self::Gogs => "gogs",
            Self::BitbucketCloud => "bitbucket-cloud",
            Self::BitbucketServer => "bitbucket-server",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The repository a push went to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repository {
    /// Normalised identity, the key workers match Applications by.
    pub id: RepoId,
    /// The forge's own name for it, e.g. `org/repo` or `group/sub/project`.
    pub full_name: String,
    /// Every clone URL the payload lists (HTTPS, SSH, git). Workers match an
    /// Application's `repoURL` against the identities of all of them, because
    /// some forges serve one repository under different paths per protocol
    /// (Bitbucket Server's `/scm/` prefix).
    pub clone_urls: Vec<String>,
    /// The repository's web page, when the payload has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_url: Option<String>,
}

impl Repository {
    /// Whether `id` names this repository under any of its URLs.
    pub fn is(&self, id: &RepoId) -> bool {
        self.id == *id
            || self
                .clone_urls
                .iter()
                .filter_map(|url| RepoId::parse(url).ok())
                .any(|candidate| candidate == *id)
    }
}

/// A Git ref, split into its kind and short name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GitRef {
    /// Branch, tag or something else.
    pub kind: RefKind,
    /// The short name: `main` for `refs/heads/main`, `v1.2` for `refs/tags/v1.2`.
    pub name: String,
    /// The full ref name, e.g. `refs/heads/main`.
    pub full: String,
}

impl GitRef {
    /// Split a full ref name (`refs/heads/main`) into kind and short name.
    pub fn from_full(full: &str) -> Self {
        let (kind, name) = if let Some(name) = full.strip_prefix("refs/heads/") {
            (RefKind::Branch, name)
        } else if let Some(name) = full.strip_prefix("refs/tags/") {
            (RefKind::Tag, name)
        } else {
            (RefKind::Other, full)
        };
        Self {
            kind,
            name: name.to_owned(),
            full: full.to_owned(),
        }
    }

    /// A branch ref from its short name.
    pub fn branch(name: &str) -> Self {
        Self::from_full(&format!("refs/heads/{name}"))
    }

    /// A tag ref from its short name.
    pub fn tag(name: &str) -> Self {
        Self::from_full(&format!("refs/tags/{name}"))
    }
}

/// What a ref is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RefKind {
    /// `refs/heads/*`.
    Branch,
    /// `refs/tags/*`.
    Tag,
    /// Anything else (`refs/notes/*`, `refs/pull/*`, …).
    Other,
}

/// The paths a push changed, as far as the webhook payload tells.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangedPaths {
    /// Repository-relative paths added, modified or removed, sorted and unique.
    pub paths: Vec<String>,
    /// The payload could not list every change (commit list capped or missing,
    /// new ref, forced push, provider without file lists). Consumers must then
    /// treat every path as possibly changed.
    pub incomplete: bool,
}

impl ChangedPaths {
    /// A complete list from any iterator of paths; sorts and de-duplicates.
    pub fn complete<I, S>(paths: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut paths: Vec<String> = paths.into_iter().map(Into::into).collect();
        paths.sort_unstable();
        paths.dedup();
        Self {
            paths,
            incomplete: false,
        }
    }

    /// Nothing is known about what changed.
    pub fn unknown() -> Self {
        Self {
            paths: Vec::new(),
            incomplete: true,
        }
    }

    /// Most bytes of paths an event carries; past this the list is dropped
    /// and marked incomplete (every Application on the ref is then woken,
    /// which is always safe), so an event stays far below the broker's
    /// message size limit.
    pub const MAX_BYTES: usize = 64 * 1024;

    /// This list, or [`ChangedPaths::unknown`] when it holds more than
    /// [`ChangedPaths::MAX_BYTES`] of paths.
    pub fn bounded(self) -> Self {
        let bytes: usize = self.paths.iter().map(|p| p.len() + 1).sum();
        if bytes > Self::MAX_BYTES {
            Self::unknown()
        } else {
            self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_path_list_is_dropped_and_marked_incomplete() {
        let small = ChangedPaths::complete(["a/b.yaml", "c.yaml"]).bounded();
        assert_eq!((small.paths.len(), small.incomplete), (2, false));
        let huge = ChangedPaths::complete((0..10_000).map(|n| format!("dir/{n:08}/file.yaml")));
        let bounded = huge.bounded();
        assert!(bounded.incomplete && bounded.paths.is_empty());
    }

    #[test]
    fn full_refs_split_into_kind_and_name() {
        let cases = [
            ("refs/heads/main", RefKind::Branch, "main"),
            ("refs/heads/feature/wip", RefKind::Branch, "feature/wip"),
            ("refs/tags/v1.2.3", RefKind::Tag, "v1.2.3"),
            ("refs/notes/commits", RefKind::Other, "refs/notes/commits"),
        ];
        for (full, kind, name) in cases {
            let r = GitRef::from_full(full);
            assert_eq!(
                (r.kind, r.name.as_str(), r.full.as_str()),
                (kind, name, full)
            );
        }
        assert_eq!(GitRef::branch("main"), GitRef::from_full("refs/heads/main"));
        assert_eq!(GitRef::tag("v1"), GitRef::from_full("refs/tags/v1"));
    }

    #[test]
    fn changed_paths_are_sorted_and_unique() {
        let paths = ChangedPaths::complete(["b/x.yaml", "a.yaml", "b/x.yaml"]);
        assert_eq!(paths.paths, ["a.yaml", "b/x.yaml"]);
        assert!(!paths.incomplete);
        assert!(ChangedPaths::unknown().incomplete);
    }

    #[test]
    fn a_repository_is_matched_under_any_of_its_urls() {
        let repo = Repository {
            id: RepoId::parse("https://bitbucket.example.com/scm/proj/app.git").unwrap(),
            full_name: "proj/app".into(),
            clone_urls: vec![
                "https://bitbucket.example.com/scm/proj/app.git".into(),
                "ssh://git@bitbucket.example.com:7999/proj/app.git".into(),
            ],
            web_url: None,
        };
        assert!(repo.is(&RepoId::parse("git@bitbucket.example.com:proj/app").unwrap()));
        assert!(repo.is(&RepoId::parse("https://bitbucket.example.com/scm/PROJ/app").unwrap()));
        assert!(!repo.is(&RepoId::parse("https://bitbucket.example.com/proj/other").unwrap()));
    }
}
