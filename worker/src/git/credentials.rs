//! Credentials for private repositories: per URL prefix, a user name and a
//! password file or an SSH key file (mounted Secrets), read when a remote
//! asks, never formatted.

use std::path::{Path, PathBuf};

use super::url::RemoteUrl;

/// Why the credentials file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// The file cannot be read.
    #[error("cannot read the git credentials file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a list of credentials.
    #[error("the git credentials file {path} is not valid: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl CredentialsError {
    /// A bounded label for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Read { .. } => "read",
            Self::Invalid { .. } => "invalid",
        }
    }
}

/// Credentials for one set of repositories. The secrets stay in files (a
/// mounted Kubernetes Secret), read when a remote asks, so a rotated Secret
/// needs no restart and no secret is held in memory longer than a fetch.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Credential {
    /// A prefix of the repository URLs they are for (the longest match wins).
    pub url: String,
    /// User name for HTTPS (default `git`; GitHub tokens take any).
    #[serde(default)]
    pub username: Option<String>,
    /// File holding the password or token (HTTPS).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// File holding an unencrypted private key (SSH).
    #[serde(default)]
    pub ssh_private_key_file: Option<PathBuf>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("url", &pushsync_proto::redact_url(&self.url))
            .field("username", &self.username)
            .field("password_file", &self.password_file)
            .field("ssh_private_key_file", &self.ssh_private_key_file)
            .finish()
    }
}

/// Every configured credential.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials(Vec<Credential>);

impl Credentials {
    /// These credentials.
    pub fn new(credentials: Vec<Credential>) -> Self {
        Self(credentials)
    }

    /// Read a YAML list of [`Credential`]s.
    pub fn load(path: &Path) -> Result<Self, CredentialsError> {
        let text = std::fs::read_to_string(path).map_err(|source| CredentialsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let invalid = |message: String| CredentialsError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let list: Vec<Credential> =
            serde_saphyr::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        for credential in &list {
            if credential.password_file.is_none() && credential.ssh_private_key_file.is_none() {
                return Err(invalid(format!(
                    "the entry for {} names neither passwordFile nor sshPrivateKeyFile",
                    pushsync_proto::redact_url(&credential.url)
                )));
            }
        }
        Ok(Self(list))
    }

    /// The credential for `url`: among those whose URL has the same scheme,
    /// host and port and a path that is a prefix of `url`'s at a segment
    /// boundary, the longest. Never a raw string prefix: a credential for
    /// `https://github.com` is not one for `https://github.com.evil.tld/`.
    pub fn for_url(&self, url: &str) -> Option<&Credential> {
        let target = RemoteUrl::parse(url)?;
        self.0
            .iter()
            .filter(|c| RemoteUrl::parse(&c.url).is_some_and(|scope| scope.covers(&target)))
            .max_by_key(|c| c.url.len())
    }
}

impl Credential {
    /// Whether this credential may be offered to `url` (the URL a remote
    /// asks from, which differs from the configured one after a redirect).
    pub fn covers(&self, url: &str) -> bool {
        match (RemoteUrl::parse(&self.url), RemoteUrl::parse(url)) {
            (Some(scope), Some(target)) => scope.covers(&target),
            _ => false,
        }
    }
}
