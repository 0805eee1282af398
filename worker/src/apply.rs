//! Talking to the cluster: resolving kinds, server-side apply (field manager
//! `pushsync`), reading and deleting objects, and readable diffs.
//!
//! Errors are classified: the API server refusing an object (400, 404 for an
//! unknown kind, 409 other than a conflict we forced, 422) is the source's
//! fault and is reported on the Application; 429, 5xx and transport failures
//! are transient and retried.

use std::collections::HashMap;
use std::sync::Arc;

use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiResource, Scope};
use serde_json::Value;
use similar::TextDiff;

use crate::render::Manifest;

/// The field manager pushsync applies as.
pub const FIELD_MANAGER: &str = "pushsync";

/// Why a cluster operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The cluster serves no such kind (a CRD missing, or a typo).
    #[error("{source_ref}: the cluster has no kind {kind} in {api_version}")]
    UnknownKind {
        /// Where the manifest came from.
        source_ref: String,
        /// `apiVersion`.
        api_version: String,
        /// `kind`.
        kind: String,
    },
    /// The API server rejected the object (its reason and message).
    #[error("{source_ref}: {kind} {name:?} was rejected ({code} {reason}): {message}")]
    Rejected {
        /// Where the manifest came from.
        source_ref: String,
        /// `kind`.
        kind: String,
        /// `metadata.name`.
        name: String,
        /// HTTP status.
        code: u16,
        /// `metav1.Status` reason.
        reason: String,
        /// `metav1.Status` message.
        message: String,
    },
    /// Writes cannot be made as the user a Project names.
    #[error("cannot act as {user}: {reason}")]
    Identity {
        /// The Kubernetes user (`system:serviceaccount:NS:NAME`).
        user: String,
        /// Why.
        reason: String,
    },
    /// The API server or the network failed; retry later.
    #[error("the API server call for {what} failed")]
    Transient {
        /// What was being done.
        what: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
}

impl ApplyError {
    /// A bounded label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::UnknownKind { .. } => "unknown_kind",
            Self::Rejected { .. } => "rejected",
            Self::Identity { .. } => "identity",
            Self::Transient { .. } => "transient",
        }
    }

    /// Whether retrying can succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient { .. })
    }

    /// Whether the API server said the identity may not do this (403).
    pub fn is_forbidden(&self) -> bool {
        matches!(self, Self::Rejected { code: 403, .. })
    }

    /// Whether this is an immutable-field rejection (422 naming "field is immutable"),
    /// which `Replace=true` answers by recreating the object.
    pub fn is_immutable_field(&self) -> bool {
        matches!(self, Self::Rejected { code: 422, message, .. } if message.contains("field is immutable"))
    }
}

/// Whether a 500 is server-side apply refusing the manifest itself: a field
/// the kind's schema does not declare (or a value of the wrong type) makes
/// the real API server fail to build the typed patch, which it reports as a
/// 500 without a reason. Retrying cannot help; the manifest must change.
fn is_undeclared_field(status: &kube::core::Status) -> bool {
    status.code == 500
        && status
            .message
            .starts_with("failed to create typed patch object")
}

/// Server-side apply options.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApplyOptions {
    /// Validate and compute the result without storing it.
    pub dry_run: bool,
}

/// A cluster, with the kinds it serves resolved once each; every call is
/// made as one identity (the client's own, or one it impersonates).
#[derive(Clone)]
pub struct Cluster {
    client: kube::Client,
    /// Discovery is the same for everyone: always read with the workers'
    /// own identity (an impersonated one may not even be allowed to act).
    discovery: kube::Client,
    /// The configuration impersonating clients are made from (none: this
    /// cluster cannot act as anyone else).
    config: Option<Arc<kube::Config>>,
    kinds: Arc<tokio::sync::RwLock<HashMap<GroupVersionKind, (ApiResource, bool)>>>,
    /// Clients acting as other users, made once each.
    users: Arc<std::sync::Mutex<HashMap<String, kube::Client>>>,
    /// Whether `client` impersonates.
    impersonating: bool,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").finish_non_exhaustive()
    }
}

fn gvk_of(manifest: &Manifest) -> GroupVersionKind {
    let (group, version) = manifest
        .api_version()
        .rsplit_once('/')
        .unwrap_or(("", manifest.api_version()));
    GroupVersionKind::gvk(group, version, manifest.kind())
}

impl Cluster {
    /// A cluster reached through `client`, which cannot impersonate.
    pub fn new(client: kube::Client) -> Self {
        Self {
            discovery: client.clone(),
            client,
            config: None,
            kinds: Default::default(),
            users: Default::default(),
            impersonating: false,
        }
    }

    /// A cluster reached with `config`, able to act as the users Projects
    /// name ([`Cluster::impersonating`]).
    pub fn from_config(config: kube::Config) -> Result<Self, kube::Error> {
        let client = kube::Client::try_from(config.clone())?;
        Ok(Self {
            config: Some(Arc::new(config)),
            ..Self::new(client)
        })
    }

    /// The same cluster, every call made as `user` (Kubernetes
    /// impersonation: the API server checks that this client may
    /// impersonate `user`, then authorizes each call as `user`). Resolved
    /// kinds are shared.
    pub fn impersonating(&self, user: &str) -> Result<Self, ApplyError> {
        let identity = |reason: String| ApplyError::Identity {
            user: user.to_owned(),
            reason,
        };
        let Some(config) = &self.config else {
            return Err(identity(
                "this worker's cluster client was built without a configuration to impersonate from".to_owned(),
            ));
        };
        let mut users = self
            .users
            .lock()
            .map_err(|_| identity("the client cache is poisoned".to_owned()))?;
        let client = match users.get(user) {
            Some(client) => client.clone(),
            None => {
                let mut config = config.as_ref().clone();
                config.auth_info.impersonate = Some(user.to_owned());
                config.auth_info.impersonate_groups = None;
                let client = kube::Client::try_from(config).map_err(|e| identity(e.to_string()))?;
                users.insert(user.to_owned(), client.clone());
                client
            }
        };
        Ok(Self {
            client,
            discovery: self.discovery.clone(),
            config: None,
            kinds: self.kinds.clone(),
            users: self.users.clone(),
            impersonating: true,
        })
    }

    /// Whether calls are made as another user (a Project's ServiceAccount).
    pub fn is_impersonating(&self) -> bool {
        self.impersonating
    }

    /// The client calls are made with.
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// Forget resolved kinds (after CRDs changed).
    pub async fn forget_kinds(&self) {
        self.kinds.write().await.clear();
    }

    /// The API resource serving `manifest`'s kind, and whether it is namespaced.
    pub async fn resolve(&self, manifest: &Manifest) -> Result<(ApiResource, bool), ApplyError> {
        let gvk = gvk_of(manifest);
        if let Some(found) = self.kinds.read().await.get(&gvk) {
            return Ok(found.clone());
        }
        match kube::discovery::pinned_kind(&self.discovery, &gvk).await {
            Ok((resource, capabilities)) => {
                let found = (resource, matches!(capabilities.scope, Scope::Namespaced));
                self.kinds.write().await.insert(gvk, found.clone());
                Ok(found)
            }
            Err(kube::Error::Api(status)) if status.code == 404 => Err(ApplyError::UnknownKind {
                source_ref: manifest.source.clone(),
                api_version: manifest.api_version().to_owned(),
                kind: manifest.kind().to_owned(),
            }),
            Err(kube::Error::Discovery(_)) => Err(ApplyError::UnknownKind {
                source_ref: manifest.source.clone(),
                api_version: manifest.api_version().to_owned(),
                kind: manifest.kind().to_owned(),
            }),
            Err(source) => Err(ApplyError::Transient {
                what: format!("discovering {}", manifest.kind()),
                source,
            }),
        }
    }

    async fn api(
        &self,
        manifest: &Manifest,
        default_namespace: &str,
    ) -> Result<(Api<DynamicObject>, Option<String>), ApplyError> {
        let (resource, namespaced) = self.resolve(manifest).await?;
        if namespaced {
            let namespace = manifest.namespace().unwrap_or(default_namespace).to_owned();
            Ok((
                Api::namespaced_with(self.client.clone(), &namespace, &resource),
                Some(namespace),
            ))
        } else {
            Ok((Api::all_with(self.client.clone(), &resource), None))
        }
    }

    fn classify(manifest: &Manifest, what: &str, error: kube::Error) -> ApplyError {
        match error {
            kube::Error::Api(status)
                if (status.code != 429 && (400..500).contains(&status.code))
                    || is_undeclared_field(&status) =>
            {
                ApplyError::Rejected {
                    source_ref: manifest.source.clone(),
                    kind: manifest.kind().to_owned(),
                    name: manifest.name().to_owned(),
                    code: status.code,
                    reason: status.reason.clone(),
                    message: status.message.clone(),
                }
            }
            source => ApplyError::Transient {
                what: format!("{what} {} {:?}", manifest.kind(), manifest.name()),
                source,
            },
        }
    }

    /// Server-side apply `manifest` (into `default_namespace` when it names
    /// none), taking ownership of conflicting fields: Git is the source of truth.
    pub async fn apply(
        &self,
        manifest: &Manifest,
        default_namespace: &str,
        options: ApplyOptions,
    ) -> Result<Value, ApplyError> {
        let (api, namespace) = self.api(manifest, default_namespace).await?;
        let mut object = manifest.object.clone();
        if let Some(namespace) = namespace {
            object["metadata"]["namespace"] = Value::String(namespace);
        }
        let applied = if manifest.name().is_empty() {
            // generateName (hooks that want a fresh object each sync): create.
            let object: DynamicObject =
                serde_json::from_value(object).map_err(|e| ApplyError::Rejected {
                    source_ref: manifest.source.clone(),
                    kind: manifest.kind().to_owned(),
                    name: manifest.generate_name().to_owned(),
                    code: 0,
                    reason: "Undecodable".to_owned(),
                    message: e.to_string(),
                })?;
            let params = PostParams {
                dry_run: options.dry_run,
                field_manager: Some(FIELD_MANAGER.to_owned()),
            };
            api.create(&params, &object)
                .await
                .map_err(|e| Self::classify(manifest, "creating", e))?
        } else {
            let mut params = PatchParams::apply(FIELD_MANAGER).force();
            params.dry_run = options.dry_run;
            api.patch(manifest.name(), &params, &Patch::Apply(&object))
                .await
                .map_err(|e| Self::classify(manifest, "applying", e))?
        };
        serde_json::to_value(applied).map_err(|e| ApplyError::Rejected {
            source_ref: manifest.source.clone(),
            kind: manifest.kind().to_owned(),
            name: manifest.name().to_owned(),
            code: 0,
            reason: "Undecodable".to_owned(),
            message: e.to_string(),
        })
    }

    /// The live object `manifest` describes, if it exists.
    pub async fn get(
        &self,
        manifest: &Manifest,
        default_namespace: &str,
    ) -> Result<Option<Value>, ApplyError> {
        let (api, _) = self.api(manifest, default_namespace).await?;
        let live = api
            .get_opt(manifest.name())
            .await
            .map_err(|e| Self::classify(manifest, "reading", e))?;
        Ok(live.and_then(|object| serde_json::to_value(object).ok()))
    }

    /// Every object of `manifest`'s kind in its namespace (or the cluster,
    /// for cluster-scoped kinds): one request for many objects.
    pub async fn list(
        &self,
        manifest: &Manifest,
        default_namespace: &str,
    ) -> Result<Vec<Value>, ApplyError> {
        let (api, _) = self.api(manifest, default_namespace).await?;
        let list = api
            .list(&kube::api::ListParams::default())
            .await
            .map_err(|e| Self::classify(manifest, "listing", e))?;
        Ok(list
            .items
            .into_iter()
            .filter_map(|object| serde_json::to_value(object).ok())
            .collect())
    }

    /// Delete the object `manifest` describes (absent is fine).
    pub async fn delete(
        &self,
        manifest: &Manifest,
        default_namespace: &str,
    ) -> Result<(), ApplyError> {
        self.delete_with(manifest, default_namespace, DeleteParams::background())
            .await
    }

    /// Delete the object `manifest` describes only while its uid is `uid`
    /// (the object that was read, not one recreated since; absent is fine).
    pub async fn delete_exact(
        &self,
        manifest: &Manifest,
        default_namespace: &str,
        uid: &str,
    ) -> Result<(), ApplyError> {
        let mut params = DeleteParams::background();
        params.preconditions = Some(kube::api::Preconditions {
            uid: Some(uid.to_owned()),
            resource_version: None,
        });
        self.delete_with(manifest, default_namespace, params).await
    }

    async fn delete_with(
        &self,
        manifest: &Manifest,
        default_namespace: &str,
        params: DeleteParams,
    ) -> Result<(), ApplyError> {
        let (api, _) = self.api(manifest, default_namespace).await?;
        match api.delete(manifest.name(), &params).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(error) => Err(Self::classify(manifest, "deleting", error)),
        }
    }
}

/// Fields that change without anyone changing the desired state.
fn normalise(object: &Value) -> Value {
    let mut copy = object.clone();
    if let Some(map) = copy.as_object_mut() {
        map.remove("status");
    }
    if let Some(metadata) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in [
            "managedFields",
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "generation",
            "selfLink",
        ] {
            metadata.remove(field);
        }
        if let Some(annotations) = metadata
            .get_mut("annotations")
            .and_then(Value::as_object_mut)
        {
            annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
            if annotations.is_empty() {
                metadata.remove("annotations");
            }
        }
    }
    copy
}

/// Replace the values of a core Secret's `data` and `stringData` on both
/// sides with masks: equal values get equal masks, different values
/// different ones.
fn mask_secret_values(desired: &mut Value, live: Option<&mut Value>) {
    let is_secret = |object: &Value| {
        object.get("kind").and_then(Value::as_str) == Some("Secret")
            && object.get("apiVersion").and_then(Value::as_str) == Some("v1")
    };
    let mut sides: Vec<&mut Value> = vec![desired];
    sides.extend(live);
    if !sides.iter().any(|side| is_secret(side)) {
        return;
    }
    let mut masks: Vec<Value> = Vec::new();
    for side in sides {
        for field in ["data", "stringData"] {
            let Some(values) = side.get_mut(field).and_then(Value::as_object_mut) else {
                continue;
            };
            for value in values.values_mut() {
                let index = match masks.iter().position(|seen| seen == value) {
                    Some(index) => index,
                    None => {
                        masks.push(value.clone());
                        masks.len() - 1
                    }
                };
                *value = Value::String("+".repeat(8 + index));
            }
        }
    }
}

/// Remove `pointers` (RFC 6901) from both sides before comparing.
fn without(object: &Value, pointers: &[String]) -> Value {
    let mut copy = object.clone();
    for pointer in pointers {
        let Some((parent, last)) = pointer.rsplit_once('/') else {
            continue;
        };
        let last = last.replace("~1", "/").replace("~0", "~");
        let target = if parent.is_empty() {
            Some(&mut copy)
        } else {
            copy.pointer_mut(parent)
        };
        match target {
            Some(Value::Object(map)) => {
                map.remove(&last);
            }
            Some(Value::Array(items)) => {
                if let Ok(index) = last.parse::<usize>()
                    && index < items.len()
                {
                    items.remove(index);
                }
            }
            _ => {}
        }
    }
    copy
}

/// A unified diff between the live object and what applying would make of it
/// (a server-side dry-run apply, so server defaults are not drift); `None`
/// when they agree once `ignored` pointers are removed.
///
/// A Secret's `data` and `stringData` values never appear: each distinct
/// value becomes a run of `+` of its own length (as Argo CD masks them), so
/// the diff still shows which keys changed, and status, logs and the CLI
/// never show a secret.
pub fn diff(live: Option<&Value>, desired: &Value, ignored: &[String]) -> Option<String> {
    let mut desired = without(&normalise(desired), ignored);
    let mut live = live.map(|live| without(&normalise(live), ignored));
    mask_secret_values(&mut desired, live.as_mut());
    let render = |value: &Value| serde_saphyr::to_string(value).unwrap_or_default();
    let desired_text = render(&desired);
    let live_text = live.as_ref().map(render).unwrap_or_default();
    if live_text == desired_text {
        return None;
    }
    Some(
        TextDiff::from_lines(&live_text, &desired_text)
            .unified_diff()
            .context_radius(3)
            .header("live", "desired")
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn secret_values_never_appear_in_a_diff_but_changed_keys_do() {
        let secret = |data: Value| json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": data});
        let live = secret(json!({"password": "aHVudGVyMg==", "user": "YWRtaW4="}));
        let desired = secret(json!({"password": "c3dvcmRmaXNo", "user": "YWRtaW4="}));
        let text = diff(Some(&live), &desired, &[]).expect("the password changed");
        for leaked in [
            "aHVudGVyMg==",
            "c3dvcmRmaXNo",
            "YWRtaW4=",
            "hunter2",
            "swordfish",
        ] {
            assert!(!text.contains(leaked), "{leaked} in\n{text}");
        }
        assert!(text.contains("-  password: ++++++++"), "{text}");
        assert!(text.contains("+  password: "), "{text}");
        assert!(
            !text.contains("-  user"),
            "an unchanged key is not a change:\n{text}"
        );
        // stringData in Git, and a Secret only on one side, are masked too.
        let created = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"token": "plain-text-token"}});
        let text = diff(None, &created, &[]).unwrap();
        assert!(!text.contains("plain-text-token"), "{text}");
        // Equal values: no diff at all.
        assert_eq!(diff(Some(&live), &live, &[]), None);
        // Other kinds keep their values.
        let map = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v1"}});
        let changed = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v2"}});
        assert!(diff(Some(&map), &changed, &[]).unwrap().contains("v2"));
    }
}
