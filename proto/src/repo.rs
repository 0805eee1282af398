//! Normalised repository identity: one key for every spelling of a repository URL.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The identity of a Git repository, independent of how its URL is spelled.
///
/// `https://github.com/Org/Repo`, `https://github.com/org/repo.git`,
/// `git@github.com:org/repo.git` and `ssh://git@github.com/org/repo` all
/// normalise to `github.com/org/repo`:
///
/// - the scheme, user name (and any password or token) and port are dropped,
///   because the same repository is reached over HTTPS, SSH and git on
///   different ports;
/// - the host and path are lower-cased, because GitHub, GitLab, Gitea and
///   Bitbucket treat owner and repository names case-insensitively;
/// - a trailing `/` and a trailing `.git` are removed.
///
/// Local repositories (`file://` URLs and absolute paths) keep their case and
/// become `file:///abs/path`, since file systems are case-sensitive.
///
/// A `RepoId` never contains credentials, so it is safe to log and to use as a
/// metric label source.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RepoId(String);

/// Why a string is not a repository URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RepoIdError {
    /// The string is empty or only whitespace.
    #[error("repository URL is empty")]
    Empty,
    /// The URL has no host (for example `https:///org/repo`).
    #[error("repository URL has no host")]
    MissingHost,
    /// The URL names a host but no repository path.
    #[error("repository URL has no repository path")]
    MissingPath,
    /// The URL contains whitespace or control characters.
    #[error("repository URL contains whitespace or control characters")]
    InvalidCharacters,
}

impl RepoId {
    /// Normalise a repository URL (HTTPS, SSH, scp-like `user@host:path`, `git://`,
    /// `file://` or an absolute path) into its identity.
    pub fn parse(url: &str) -> Result<Self, RepoIdError> {
        let url = url.trim();
        if url.is_empty() {
            return Err(RepoIdError::Empty);
        }
        if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(RepoIdError::InvalidCharacters);
        }
        if let Some(path) = url.strip_prefix("file://") {
            return local(path);
        }
        if url.starts_with('/') {
            return local(url);
        }
        let (authority, path) = match url.split_once("://") {
            Some((_scheme, rest)) => rest.split_once('/').unwrap_or((rest, "")),
            // scp-like syntax: [user@]host:path
            None => match url.split_once(':') {
                Some((authority, path)) if !authority.contains('/') => (authority, path),
                _ => return Err(RepoIdError::MissingHost),
            },
        };
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let host = strip_port(host_port);
        if host.is_empty() {
            return Err(RepoIdError::MissingHost);
        }
        let path = trim_repo_path(path);
        if path.is_empty() {
            return Err(RepoIdError::MissingPath);
        }
        Ok(Self(format!(
            "{}/{}",
            host.to_ascii_lowercase(),
            path.to_lowercase()
        )))
    }

    /// The normalised identity, e.g. `github.com/org/repo`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The host part (empty for local repositories).
    pub fn host(&self) -> &str {
        if self.0.starts_with("file://") {
            return "";
        }
        self.0.split_once('/').map_or(&self.0, |(host, _)| host)
    }
}

fn local(path: &str) -> Result<RepoId, RepoIdError> {
    let path = trim_repo_path(path);
    if path.is_empty() {
        return Err(RepoIdError::MissingPath);
    }
    Ok(RepoId(format!("file:///{path}")))
}

/// Remove a `:port` suffix, keeping bracketed IPv6 literals intact.
fn strip_port(host_port: &str) -> &str {
    if host_port.starts_with('[') {
        return host_port
            .find(']')
            .map_or(host_port, |end| &host_port[..=end]);
    }
    host_port.split_once(':').map_or(host_port, |(h, _)| h)
}

fn trim_repo_path(path: &str) -> &str {
    let path = path.trim_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    path.trim_end_matches('/')
}

impl fmt::Display for RepoId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for RepoId {
    type Err = RepoIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for RepoId {
    type Error = RepoIdError;
    /// Accepts an already normalised identity as well as any URL form.
    fn try_from(value: String) -> Result<Self, Self::Error> {
        // A normalised id ("host/path") has no scheme; read alone it would look
        // like a relative path, so give it one and keep it if nothing changes.
        if let Ok(id) = Self::parse(&format!("https://{value}"))
            && id.0 == value
        {
            return Ok(id);
        }
        Self::parse(&value)
    }
}

impl From<RepoId> for String {
    fn from(value: RepoId) -> Self {
        value.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(input: &str, expected: Result<&str, RepoIdError>) {
        let got = RepoId::parse(input);
        assert_eq!(
            got.as_ref().map(RepoId::as_str).map_err(Clone::clone),
            expected,
            "input: {input}"
        );
    }

    #[test]
    fn spellings_of_one_repository_are_equal() {
        for url in [
            "https://github.com/Org/Repo",
            "https://github.com/org/repo.git",
            "https://github.com/org/repo/",
            "https://github.com/org/repo.git/",
            "HTTPS://GitHub.COM/org/repo",
            "http://github.com/org/repo",
            "git@github.com:org/repo.git",
            "git@github.com:/org/repo.git",
            "github.com:org/repo",
            "ssh://git@github.com/org/repo",
            "ssh://git@github.com:22/org/repo.git",
            "git+ssh://git@github.com/org/repo",
            "git://github.com/org/repo.git",
            "https://x-access-token:s3cr3t@github.com/org/repo.git",
            "https://github.com:443/org/repo",
            "  https://github.com/org/repo  ",
        ] {
            check(url, Ok("github.com/org/repo"));
        }
    }

    #[test]
    fn nested_groups_and_ports_are_kept_apart_from_other_repositories() {
        check(
            "https://gitlab.example.com/group/sub/project.git",
            Ok("gitlab.example.com/group/sub/project"),
        );
        check(
            "ssh://git@gitlab.example.com:2222/group/sub/project.git",
            Ok("gitlab.example.com/group/sub/project"),
        );
        check("git://127.0.0.1:9418/repo", Ok("127.0.0.1/repo"));
        check("ssh://git@[::1]:2222/org/repo", Ok("[::1]/org/repo"));
        assert_ne!(
            RepoId::parse("https://github.com/org/repo").ok(),
            RepoId::parse("https://github.com/org/repo2").ok()
        );
        assert_ne!(
            RepoId::parse("https://github.com/org/repo").ok(),
            RepoId::parse("https://gitlab.com/org/repo").ok()
        );
    }

    #[test]
    fn local_repositories_keep_their_case() {
        check("file:///tmp/Repos/app.git", Ok("file:///tmp/Repos/app"));
        check("/tmp/Repos/app/", Ok("file:///tmp/Repos/app"));
    }

    #[test]
    fn credentials_never_survive_normalisation() {
        let id = RepoId::parse("https://user:hunter2@example.com/org/repo").ok();
        assert_eq!(
            id.as_ref().map(RepoId::as_str),
            Some("example.com/org/repo")
        );
        assert!(!id.map(String::from).unwrap_or_default().contains("hunter2"));
    }

    #[test]
    fn malformed_urls_are_rejected() {
        check("", Err(RepoIdError::Empty));
        check("   ", Err(RepoIdError::Empty));
        check("https:///org/repo", Err(RepoIdError::MissingHost));
        check("https://github.com", Err(RepoIdError::MissingPath));
        check("https://github.com/", Err(RepoIdError::MissingPath));
        check("git@github.com:", Err(RepoIdError::MissingPath));
        check("org/repo", Err(RepoIdError::MissingHost));
        check(
            "https://github.com/org/re po",
            Err(RepoIdError::InvalidCharacters),
        );
        check("file:///", Err(RepoIdError::MissingPath));
    }

    #[test]
    fn normalised_ids_round_trip_through_serde() {
        for url in [
            "github.com/org/repo",
            "file:///tmp/Repo",
            "127.0.0.1/repo",
            "[::1]/org/repo",
        ] {
            let id = RepoId::try_from(url.to_string());
            assert_eq!(id.map(String::from).as_deref(), Ok(url));
        }
        let json = serde_json::to_string(&RepoId::parse("git@github.com:Org/Repo.git").ok());
        assert_eq!(json.ok().as_deref(), Some("\"github.com/org/repo\""));
    }
}
