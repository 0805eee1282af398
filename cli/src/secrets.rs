//! The receiver's webhook secrets as the CLI keeps them: one Kubernetes
//! Secret, a key per forge, one valid secret per line (what the receiver
//! mounts and re-reads), changed only as a compare-and-set.

use std::path::Path;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use pushsync_forge::ForgeKind;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::CliError;
use crate::cluster::Cluster;
use crate::webhook::StoreArgs;

/// The key of the receiver Secret holding `kind`'s secrets (what
/// deploy/receiver.yaml mounts for each provider).
fn secret_key(kind: ForgeKind) -> &'static str {
    match kind {
        ForgeKind::Github => "github",
        ForgeKind::Gitlab => "gitlab",
        ForgeKind::Gitea => "gitea",
    }
}

/// The first line of the file at `path`, trimmed: a token or a secret.
pub(crate) fn read_first_line(path: &Path, what: &str) -> Result<SecretString, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Invalid(format!("reading {what} {}: {e}", path.display())))?;
    let line = text.lines().next().unwrap_or_default().trim().to_owned();
    if line.is_empty() {
        return Err(CliError::Invalid(format!(
            "{what} {} is empty",
            path.display()
        )));
    }
    Ok(SecretString::from(line))
}

/// 32 random bytes, hex.
pub(crate) fn generate() -> Result<SecretString, CliError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| CliError::Invalid(format!("no randomness for a secret: {e}")))?;
    Ok(SecretString::from(hex::encode(bytes)))
}

/// The receiver's Secret: one key per forge, one valid secret per line.
pub(crate) struct Store {
    api: Api<Secret>,
    pub(crate) name: String,
    pub(crate) namespace: String,
    pub(crate) key: &'static str,
}

impl Store {
    pub(crate) fn new(cluster: &Cluster, args: &StoreArgs, kind: ForgeKind) -> Self {
        Self {
            api: Api::namespaced(cluster.client.clone(), &args.secret_namespace),
            name: args.secret_name.clone(),
            namespace: args.secret_namespace.clone(),
            key: secret_key(kind),
        }
    }

    fn what(&self) -> String {
        format!("Secret {}/{}", self.namespace, self.name)
    }

    /// The secrets, oldest first.
    pub(crate) async fn lines(&self) -> Result<Vec<String>, CliError> {
        Ok(self.read().await?.0)
    }

    /// The lines and the Secret's resourceVersion (`None`: no Secret yet).
    async fn read(&self) -> Result<(Vec<String>, Option<String>), CliError> {
        let secret = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(CliError::kube(format!("reading {}", self.what())))?;
        let version = secret
            .as_ref()
            .and_then(|s| s.metadata.resource_version.clone());
        let bytes = secret
            .and_then(|s| s.data)
            .and_then(|mut d| d.remove(self.key))
            .map(|b| b.0)
            .unwrap_or_default();
        let lines = String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        Ok((lines, version))
    }

    /// Apply `change` to the lines as a compare-and-set on the Secret's
    /// resourceVersion, again on a conflict (another run wrote meanwhile),
    /// so concurrent runs never lose each other's secrets. `change` returns
    /// `None` when there is nothing to write; the result says whether
    /// something was written.
    async fn update(
        &self,
        change: impl Fn(Vec<String>) -> Option<Vec<String>>,
    ) -> Result<bool, CliError> {
        for _ in 0..8 {
            let (lines, version) = self.read().await?;
            let Some(lines) = change(lines) else {
                return Ok(false);
            };
            let mut value = lines.join("\n");
            value.push('\n');
            let data = json!({ self.key: ByteString(value.into_bytes()) });
            let written = match &version {
                Some(version) => {
                    let patch = json!({"metadata": {"resourceVersion": version}, "data": data});
                    self.api
                        .patch(&self.name, &PatchParams::default(), &Patch::Merge(patch))
                        .await
                        .map(drop)
                }
                None => {
                    let secret: Secret = serde_json::from_value(json!({
                        "metadata": {"name": self.name, "namespace": self.namespace},
                        "type": "Opaque",
                        "data": data,
                    }))
                    .map_err(|e| CliError::Invalid(e.to_string()))?;
                    self.api
                        .create(&PostParams::default(), &secret)
                        .await
                        .map(drop)
                }
            };
            match written {
                Ok(()) => return Ok(true),
                Err(kube::Error::Api(status)) if status.code == 409 => {}
                Err(error) => {
                    return Err(CliError::kube(format!("writing {}", self.what()))(error));
                }
            }
        }
        Err(CliError::Invalid(format!(
            "{} kept changing under this command; try again",
            self.what()
        )))
    }

    /// Add `secret` unless present; whether it was added.
    pub(crate) async fn add(&self, secret: &SecretString) -> Result<bool, CliError> {
        let secret = secret.expose_secret();
        self.update(|mut lines| {
            (!lines.iter().any(|l| l == secret)).then(|| {
                lines.push(secret.to_owned());
                lines
            })
        })
        .await
    }

    /// Keep `secret` only.
    pub(crate) async fn keep_only(&self, secret: &SecretString) -> Result<(), CliError> {
        let secret = secret.expose_secret();
        self.update(|lines| (lines != [secret]).then(|| vec![secret.to_owned()]))
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        reason = "test code: a failed step fails the test"
    )]

    use super::*;

    fn store(client: kube::Client) -> Store {
        Store {
            api: Api::namespaced(client, "default"),
            name: "pushsync-webhook-secrets".to_owned(),
            namespace: "default".to_owned(),
            key: "github",
        }
    }

    /// Concurrent `webhook register` runs (a CI matrix registering many
    /// repositories at once) each add their secret; none is lost, including
    /// when they race to create the Secret.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_additions_all_land() {
        let sandbox = pushsync_sandbox::Sandbox::start().await.unwrap();
        let secrets: Vec<String> = (0..6).map(|i| format!("secret-{i}")).collect();
        let runs = secrets.iter().map(|secret| {
            let store = store(sandbox.client());
            let secret = SecretString::from(secret.clone());
            async move { store.add(&secret).await }
        });
        let added = futures_util::future::join_all(runs).await;
        assert!(added.iter().all(|r| matches!(r, Ok(true))), "{added:?}");
        let mut lines = store(sandbox.client()).lines().await.unwrap();
        lines.sort();
        assert_eq!(lines, secrets);
        // Adding one that is there writes nothing.
        let again = store(sandbox.client())
            .add(&SecretString::from("secret-3".to_owned()))
            .await
            .unwrap();
        assert!(!again);
    }
}
