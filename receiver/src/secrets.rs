//! Webhook secrets: where they come from, how they are reloaded, how they are checked.
//!
//! Several secrets may be valid at once per provider, so a secret can be
//! rotated without dropping deliveries: add the new one, switch the forge,
//! remove the old one. Files are re-read periodically (a mounted Kubernetes
//! Secret changes in place). Secrets are held in [`SecretSlice`]s, compared in
//! constant time, and never formatted.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::ConfigError;

/// Where one provider's secrets come from.
#[derive(Debug, Clone, Default)]
pub struct SecretSource {
    /// The variable name, for error messages.
    pub name: &'static str,
    /// A secret given directly (flag or variable).
    pub inline: Option<SecretString>,
    /// Files holding secrets, one per line.
    pub files: Vec<PathBuf>,
}

impl SecretSource {
    /// A source from an optional inline secret and a list of files.
    pub fn new(name: &'static str, inline: Option<String>, files: Vec<PathBuf>) -> Self {
        Self {
            name,
            inline: inline.map(SecretString::from),
            files,
        }
    }

    /// A source with one inline secret (handy in tests).
    pub fn inline(name: &'static str, secret: &str) -> Self {
        Self::new(name, Some(secret.to_owned()), Vec::new())
    }

    fn load(&self) -> Result<Vec<SecretString>, ConfigError> {
        let mut secrets = Vec::new();
        if let Some(inline) = &self.inline {
            let trimmed = inline.expose_secret().trim();
            if trimmed.is_empty() {
                return Err(ConfigError::BadSecret {
                    name: self.name,
                    reason: "the secret is empty".to_owned(),
                });
            }
            secrets.push(SecretString::from(trimmed));
        }
        for path in &self.files {
            let contents = match std::fs::read_to_string(path) {
                Ok(contents) => SecretString::from(contents),
                // A Secret key mounted as optional and absent: that forge is
                // off (as if no file were named), not a broken install.
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(ConfigError::UnreadableFile {
                        name: file_variable(self.name),
                        path: path.clone(),
                        source,
                    });
                }
            };
            let before = secrets.len();
            secrets.extend(
                contents
                    .expose_secret()
                    .lines()
                    .map(str::trim)
                    .filter(|line| !line.is_empty())
                    .map(SecretString::from),
            );
            if secrets.len() == before {
                return Err(ConfigError::BadSecret {
                    name: file_variable(self.name),
                    reason: format!("{} holds no secret", path.display()),
                });
            }
        }
        Ok(secrets)
    }
}

fn keys(source: &SecretSource) -> Result<Keys, ConfigError> {
    Ok(Keys(
        source
            .load()?
            .iter()
            .map(|s| SecretSlice::from(s.expose_secret().as_bytes().to_vec()))
            .collect(),
    ))
}

fn signing_keys(source: &SecretSource) -> Result<Keys, ConfigError> {
    let keys = source
        .load()?
        .iter()
        .map(|token| decode_signing_token(source.name, token))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Keys(keys))
}

fn file_variable(name: &'static str) -> &'static str {
    match name {
        "PUSHSYNC_GITHUB_SECRET" => "PUSHSYNC_GITHUB_SECRET_FILE",
        "PUSHSYNC_GITLAB_TOKEN" => "PUSHSYNC_GITLAB_TOKEN_FILE",
        "PUSHSYNC_GITLAB_SIGNING_TOKEN" => "PUSHSYNC_GITLAB_SIGNING_TOKEN_FILE",
        "PUSHSYNC_GITEA_SECRET" => "PUSHSYNC_GITEA_SECRET_FILE",
        "PUSHSYNC_BITBUCKET_SECRET" => "PUSHSYNC_BITBUCKET_SECRET_FILE",
        other => other,
    }
}

/// Where every provider's secrets come from.
#[derive(Debug, Clone, Default)]
pub struct SecretSources {
    /// GitHub HMAC secrets.
    pub github: SecretSource,
    /// GitLab plain tokens (`X-Gitlab-Token`).
    pub gitlab_token: SecretSource,
    /// GitLab signing tokens (`whsec_…`, Standard Webhooks signature).
    pub gitlab_signing: SecretSource,
    /// Gitea / Forgejo / Gogs HMAC secrets.
    pub gitea: SecretSource,
    /// Bitbucket HMAC secrets.
    pub bitbucket: SecretSource,
}

impl SecretSources {
    /// Read every source now.
    pub fn load(&self) -> Result<Secrets, ConfigError> {
        Ok(Secrets {
            github: keys(&self.github)?,
            gitlab_token: keys(&self.gitlab_token)?,
            gitlab_signing: signing_keys(&self.gitlab_signing)?,
            gitea: keys(&self.gitea)?,
            bitbucket: keys(&self.bitbucket)?,
        })
    }

    /// Load each forge's secrets on its own: a forge whose source fails keeps
    /// its `previous` keys (a half-written file must not lock it out), and
    /// the others take their new ones. The errors are returned for logging.
    pub fn reload(&self, previous: &Secrets) -> (Secrets, Vec<ConfigError>) {
        let mut errors = Vec::new();
        let mut pick = |loaded: Result<Keys, ConfigError>, old: &Keys| match loaded {
            Ok(keys) => keys,
            Err(error) => {
                errors.push(error);
                old.clone()
            }
        };
        let secrets = Secrets {
            github: pick(keys(&self.github), &previous.github),
            gitlab_token: pick(keys(&self.gitlab_token), &previous.gitlab_token),
            gitlab_signing: pick(signing_keys(&self.gitlab_signing), &previous.gitlab_signing),
            gitea: pick(keys(&self.gitea), &previous.gitea),
            bitbucket: pick(keys(&self.bitbucket), &previous.bitbucket),
        };
        (secrets, errors)
    }

    fn has_files(&self) -> bool {
        self.each().iter().any(|s| !s.files.is_empty())
    }

    /// Every forge's source.
    fn each(&self) -> [&SecretSource; 5] {
        [
            &self.github,
            &self.gitlab_token,
            &self.gitlab_signing,
            &self.gitea,
            &self.bitbucket,
        ]
    }
}

/// A Standard Webhooks signing token is `whsec_` followed by the base64 of
/// the HMAC key.
fn decode_signing_token(
    name: &'static str,
    token: &SecretString,
) -> Result<SecretSlice<u8>, ConfigError> {
    let bad = |reason: &str| ConfigError::BadSecret {
        name,
        reason: reason.to_owned(),
    };
    let encoded = token
        .expose_secret()
        .strip_prefix("whsec_")
        .ok_or_else(|| bad("a GitLab signing token starts with whsec_"))?;
    let key = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| bad("a GitLab signing token is whsec_ followed by base64"))?;
    if key.is_empty() {
        return Err(bad("the GitLab signing token's key is empty"));
    }
    Ok(SecretSlice::from(key))
}

/// The secrets of one provider (possibly several during a rotation).
#[derive(Debug, Default, Clone)]
pub struct Keys(Vec<SecretSlice<u8>>);

impl Keys {
    /// Whether no secret is configured (the provider then accepts nothing).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `signature` is the HMAC-SHA256 of `parts` (concatenated) under
    /// any of the keys. Every key is tried, so the time taken depends on the
    /// number of keys only; each comparison is constant-time.
    pub fn verify_hmac_sha256(&self, parts: &[&[u8]], signature: &[u8]) -> bool {
        let mut valid = subtle::Choice::from(0);
        for key in &self.0 {
            let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key.expose_secret()) else {
                continue;
            };
            for part in parts {
                mac.update(part);
            }
            let computed = mac.finalize().into_bytes();
            valid |= computed.as_slice().ct_eq(signature);
        }
        valid.into()
    }

    /// Whether `token` equals any key. Both sides are hashed first so the
    /// comparison takes the same time whatever the token's length.
    pub fn matches_token(&self, token: &[u8]) -> bool {
        let given = Sha256::digest(token);
        let mut valid = subtle::Choice::from(0);
        for key in &self.0 {
            let expected = Sha256::digest(key.expose_secret());
            valid |= given.as_slice().ct_eq(expected.as_slice());
        }
        valid.into()
    }
}

/// Every provider's current secrets.
#[derive(Debug, Default)]
pub struct Secrets {
    /// GitHub HMAC keys.
    pub github: Keys,
    /// GitLab plain tokens.
    pub gitlab_token: Keys,
    /// GitLab signing keys (already base64-decoded).
    pub gitlab_signing: Keys,
    /// Gitea / Forgejo / Gogs HMAC keys.
    pub gitea: Keys,
    /// Bitbucket HMAC keys.
    pub bitbucket: Keys,
}

impl Secrets {
    /// Whether no provider has any secret.
    pub fn is_empty(&self) -> bool {
        self.each().iter().all(|(_, keys)| keys.is_empty())
    }

    /// Every forge's keys, with the forge's name for logs.
    fn each(&self) -> [(&'static str, &Keys); 5] {
        [
            ("github", &self.github),
            ("gitlab token", &self.gitlab_token),
            ("gitlab signing", &self.gitlab_signing),
            ("gitea", &self.gitea),
            ("bitbucket", &self.bitbucket),
        ]
    }
}

/// The secrets in use, swapped atomically when files change.
#[derive(Debug, Clone)]
pub struct SecretStore {
    sources: SecretSources,
    current: Arc<RwLock<Arc<Secrets>>>,
}

impl SecretStore {
    /// Load every source once.
    pub fn load(sources: SecretSources) -> Result<Self, ConfigError> {
        let secrets = sources.load()?;
        for source in sources.each() {
            for path in source.files.iter().filter(|path| !path.exists()) {
                tracing::warn!(
                    variable = file_variable(source.name),
                    path = %path.display(),
                    "secret file absent: its secrets are off until it appears"
                );
            }
        }
        Ok(Self {
            sources,
            current: Arc::new(RwLock::new(Arc::new(secrets))),
        })
    }

    /// The secrets to check a request against.
    pub fn current(&self) -> Arc<Secrets> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Re-read the sources, forge by forge: a forge whose file fails to
    /// read keeps its old secrets (a half-written file must not lock it
    /// out), the others take their new ones, and a file that is gone turns
    /// its forge off. The errors are returned for logging.
    pub fn reload(&self) -> Result<(), Vec<ConfigError>> {
        let previous = self.current();
        let (secrets, errors) = self.sources.reload(&previous);
        for ((forge, before), (_, after)) in previous.each().into_iter().zip(secrets.each()) {
            if !before.is_empty() && after.is_empty() {
                tracing::warn!(
                    forge,
                    "its secret files are gone: its webhooks are refused until they return"
                );
            }
        }
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(secrets);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// Whether any secret comes from a file (otherwise reloading is pointless).
    pub fn has_files(&self) -> bool {
        self.sources.has_files()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secrets: &[&str]) -> Keys {
        Keys(
            secrets
                .iter()
                .map(|s| SecretSlice::from(s.as_bytes().to_vec()))
                .collect(),
        )
    }

    fn github_vector() -> Vec<u8> {
        hex::decode("757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17").unwrap()
    }

    #[test]
    fn githubs_published_test_vector_verifies() {
        let keys = keys(&["It's a Secret to Everybody"]);
        assert!(keys.verify_hmac_sha256(&[b"Hello, World!"], &github_vector()));
        assert!(!keys.verify_hmac_sha256(&[b"Hello, World?"], &github_vector()));
        assert!(!keys.verify_hmac_sha256(&[b"Hello, World!"], &github_vector()[..31]));
    }

    #[test]
    fn any_of_several_secrets_verifies_during_rotation() {
        let keys = keys(&["old", "It's a Secret to Everybody"]);
        assert!(keys.verify_hmac_sha256(&[b"Hello, ", b"World!"], &github_vector()));
        assert!(!Keys::default().verify_hmac_sha256(&[b"Hello, World!"], &github_vector()));
    }

    #[test]
    fn tokens_match_exactly() {
        let keys = keys(&["tok-1", "tok-2"]);
        assert!(keys.matches_token(b"tok-2"));
        assert!(!keys.matches_token(b"tok-"));
        assert!(!keys.matches_token(b"tok-22"));
        assert!(!keys.matches_token(b""));
    }

    #[test]
    fn files_hold_one_secret_per_line_and_are_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("github");
        std::fs::write(&path, "first\n\n  second  \n").unwrap();
        let sources = SecretSources {
            github: SecretSource::new("PUSHSYNC_GITHUB_SECRET", None, vec![path.clone()]),
            ..SecretSources::default()
        };
        let store = SecretStore::load(sources).unwrap();
        assert!(store.current().github.matches_token(b"second"));
        assert!(!store.current().github.matches_token(b"third"));

        std::fs::write(&path, "third\n").unwrap();
        store.reload().unwrap();
        assert!(store.current().github.matches_token(b"third"));
        assert!(!store.current().github.matches_token(b"first"));

        // A broken file keeps the secrets that worked.
        std::fs::write(&path, "\n").unwrap();
        assert!(store.reload().is_err());
        assert!(store.current().github.matches_token(b"third"));
    }

    #[test]
    fn a_missing_file_turns_its_forge_off_and_reloads_go_forge_by_forge() {
        let dir = tempfile::tempdir().unwrap();
        let (github, gitea) = (dir.path().join("github"), dir.path().join("gitea"));
        std::fs::write(&github, "gh-1\n").unwrap();
        // As deploy/receiver.yaml mounts them: every key optional, gitea's absent.
        let sources = SecretSources {
            github: SecretSource::new("PUSHSYNC_GITHUB_SECRET", None, vec![github.clone()]),
            gitea: SecretSource::new("PUSHSYNC_GITEA_SECRET", None, vec![gitea.clone()]),
            ..SecretSources::default()
        };
        let store = SecretStore::load(sources).expect("a missing optional key is not fatal");
        assert!(store.current().github.matches_token(b"gh-1"));
        assert!(store.current().gitea.is_empty(), "gitea is off");

        // Gitea's key appears while GitHub's file is half-written: gitea
        // takes its secret, GitHub keeps the one that worked.
        std::fs::write(&gitea, "gt-1\n").unwrap();
        std::fs::write(&github, "\n").unwrap();
        let errors = store.reload().unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0]
                .to_string()
                .contains("PUSHSYNC_GITHUB_SECRET_FILE")
        );
        assert!(store.current().gitea.matches_token(b"gt-1"));
        assert!(store.current().github.matches_token(b"gh-1"));

        // A key removed from the Secret turns that forge off.
        std::fs::remove_file(&github).unwrap();
        store.reload().unwrap();
        assert!(store.current().github.is_empty());
        assert!(store.current().gitea.matches_token(b"gt-1"));
    }

    #[test]
    fn gitlab_signing_tokens_must_be_whsec_base64() {
        let load = |token: &str| {
            SecretSources {
                gitlab_signing: SecretSource::inline("PUSHSYNC_GITLAB_SIGNING_TOKEN", token),
                ..SecretSources::default()
            }
            .load()
        };
        let secrets = load("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert!(!secrets.gitlab_signing.is_empty());
        for bad in [
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_not base64!",
            "whsec_",
        ] {
            let err = load(bad).unwrap_err().to_string();
            assert!(err.contains("PUSHSYNC_GITLAB_SIGNING_TOKEN"), "{err}");
            assert!(
                !err.contains(bad.trim_start_matches("whsec_")) || bad == "whsec_",
                "{err}"
            );
        }
    }
}
