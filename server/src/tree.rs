//! An Application's resources as a tree: the objects it manages (from its
//! status, with their sync and health) and what the cluster made of them
//! (Deployment → ReplicaSet → Pod, CronJob → Job → Pod, Service →
//! EndpointSlice), found by owner references; one object's live manifest;
//! the Application's Events. Secret values never leave the server.

use std::collections::{BTreeSet, HashMap};

use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::core::GroupVersionKind;
use pushsync_api::Application;
use serde::Serialize;
use serde_json::Value;

use crate::error::ServerError;

/// One node of the tree.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    /// API group (`""`: core).
    pub group: String,
    /// Version.
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Namespace (`""`: cluster-scoped).
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The object's uid, when it exists.
    pub uid: String,
    /// The uid of the node it hangs under (`""`: the Application itself).
    pub parent: String,
    /// Sync status, for objects the Application manages (`Synced`, `OutOfSync`, …).
    pub sync: String,
    /// Health, where known.
    pub health: String,
    /// Whether the Application manages it (as opposed to the cluster having made it).
    pub managed: bool,
    /// A short status line (a Pod's phase, a ReplicaSet's ready replicas).
    pub info: String,
    /// The worker's diff for this resource, when it is out of sync.
    pub diff: String,
}

/// Kinds the cluster makes on behalf of others, looked up by owner.
const CHILDREN: [(&str, &str, &str); 4] = [
    ("apps", "v1", "ReplicaSet"),
    ("", "v1", "Pod"),
    ("batch", "v1", "Job"),
    ("discovery.k8s.io", "v1", "EndpointSlice"),
];

fn resource(group: &str, version: &str, kind: &str) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind))
}

/// The resource tree of `app`. Objects it manages come first, in the
/// order of its status; children follow their owners.
pub async fn tree(client: &kube::Client, app: &Application) -> Result<Vec<Node>, ServerError> {
    let Some(status) = &app.status else {
        return Ok(Vec::new());
    };
    let mut nodes: Vec<Node> = Vec::new();
    let mut namespaces = BTreeSet::new();
    for managed in &status.resources {
        let r = &managed.resource;
        let mut node = Node {
            group: r.group.clone(),
            version: r.version.clone(),
            kind: r.kind.clone(),
            namespace: r.namespace.clone(),
            name: r.name.clone(),
            uid: String::new(),
            parent: String::new(),
            sync: managed.status.as_str().to_owned(),
            health: managed
                .health
                .map(|h| h.as_str().to_owned())
                .unwrap_or_default(),
            managed: true,
            info: String::new(),
            diff: managed.diff.clone().unwrap_or_default(),
        };
        // The uid ties children to it; reading it costs one GET per managed
        // object that can have children (the kinds below).
        if owns_children(&r.kind) && !r.namespace.is_empty() {
            let api: Api<DynamicObject> = Api::namespaced_with(
                client.clone(),
                &r.namespace,
                &resource(&r.group, &r.version, &r.kind),
            );
            if let Ok(Some(live)) = api.get_opt(&r.name).await {
                node.uid = live.metadata.uid.unwrap_or_default();
            }
            namespaces.insert(r.namespace.clone());
        }
        nodes.push(node);
    }
    // Children, level by level, in each namespace the Application touches.
    let mut by_owner: HashMap<String, Vec<Node>> = HashMap::new();
    for namespace in &namespaces {
        for (group, version, kind) in CHILDREN {
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), namespace, &resource(group, version, kind));
            let Ok(list) = api.list(&ListParams::default()).await else {
                continue;
            };
            for object in list.items {
                let Some(owner) = object.metadata.owner_references.as_ref().and_then(|refs| {
                    refs.iter()
                        .find(|r| r.controller == Some(true))
                        .or_else(|| refs.first())
                }) else {
                    continue;
                };
                by_owner.entry(owner.uid.clone()).or_default().push(Node {
                    group: group.to_owned(),
                    version: version.to_owned(),
                    kind: kind.to_owned(),
                    namespace: namespace.clone(),
                    name: object.metadata.name.clone().unwrap_or_default(),
                    uid: object.metadata.uid.clone().unwrap_or_default(),
                    parent: owner.uid.clone(),
                    sync: String::new(),
                    health: String::new(),
                    managed: false,
                    info: info(kind, &object.data),
                    diff: String::new(),
                });
            }
        }
    }
    let mut queue: Vec<String> = nodes
        .iter()
        .map(|n| n.uid.clone())
        .filter(|u| !u.is_empty())
        .collect();
    while let Some(uid) = queue.pop() {
        if let Some(children) = by_owner.remove(&uid) {
            for child in children {
                queue.push(child.uid.clone());
                nodes.push(child);
            }
        }
    }
    Ok(nodes)
}

fn owns_children(kind: &str) -> bool {
    matches!(
        kind,
        "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" | "CronJob" | "Job" | "Service"
    )
}

/// A short status line for a child object.
fn info(kind: &str, data: &Value) -> String {
    let int = |pointer: &str| data.pointer(pointer).and_then(Value::as_i64).unwrap_or(0);
    match kind {
        "Pod" => data
            .pointer("/status/phase")
            .and_then(Value::as_str)
            .unwrap_or("Pending")
            .to_owned(),
        "ReplicaSet" => format!(
            "{}/{} ready",
            int("/status/readyReplicas"),
            int("/spec/replicas")
        ),
        "Job" => format!("{} succeeded", int("/status/succeeded")),
        _ => String::new(),
    }
}

/// What a manifest view shows: the live object, Secret values hidden and
/// `managedFields` left out.
pub async fn live(
    client: &kube::Client,
    app: &Application,
    group: &str,
    kind: &str,
    namespace: &str,
    name: &str,
) -> Result<Value, ServerError> {
    let status = app.status.as_ref();
    // Only objects the Application manages, or their children in its
    // namespaces: the server must not become a way to read anything.
    let managed = status.into_iter().flat_map(|s| &s.resources).find(|r| {
        r.resource.group == group
            && r.resource.kind == kind
            && r.resource.namespace == namespace
            && r.resource.name == name
    });
    let version = match managed {
        Some(r) => Some(r.resource.version.clone()),
        // A child only when it is in this Application's tree (a Pod of
        // another team in the same namespace is not), since Pods and Jobs
        // can carry credentials in their environment.
        None => tree(client, app)
            .await?
            .into_iter()
            .find(|n| {
                !n.managed
                    && n.group == group
                    && n.kind == kind
                    && n.namespace == namespace
                    && n.name == name
            })
            .map(|n| n.version),
    };
    let Some(version) = version else {
        return Err(ServerError::NotFound(format!(
            "{kind} {namespace}/{name} in this Application"
        )));
    };
    let resource = resource(group, &version, kind);
    let api: Api<DynamicObject> = if namespace.is_empty() {
        Api::all_with(client.clone(), &resource)
    } else {
        Api::namespaced_with(client.clone(), namespace, &resource)
    };
    let object = api
        .get_opt(name)
        .await
        .map_err(ServerError::kube(format!("reading {kind} {name}")))?
        .ok_or_else(|| ServerError::NotFound(format!("{kind} {namespace}/{name}")))?;
    let mut value =
        serde_json::to_value(&object).map_err(|e| ServerError::Internal(e.to_string()))?;
    redact(&mut value);
    Ok(value)
}

/// Hide what must not be shown: Secret values (sizes kept), managedFields,
/// and the last-applied annotation (which holds a Secret's data too).
pub fn redact(object: &mut Value) {
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("managedFields");
        if let Some(annotations) = metadata
            .get_mut("annotations")
            .and_then(Value::as_object_mut)
        {
            annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
        }
    }
    if object.get("kind").and_then(Value::as_str) == Some("Secret")
        && object.get("apiVersion").and_then(Value::as_str) == Some("v1")
    {
        for field in ["data", "stringData"] {
            if let Some(values) = object.get_mut(field).and_then(Value::as_object_mut) {
                for value in values.values_mut() {
                    let size = value.as_str().map_or(0, str::len);
                    *value = Value::String(format!("<hidden: {size} bytes>"));
                }
            }
        }
    }
}

/// The Application's Events, newest first.
pub async fn events(client: &kube::Client, app: &Application) -> Result<Vec<Value>, ServerError> {
    let namespace = app.metadata.namespace.clone().unwrap_or_default();
    let name = app.metadata.name.clone().unwrap_or_default();
    let api: Api<Event> = Api::namespaced(client.clone(), &namespace);
    let selector = format!("involvedObject.kind=Application,involvedObject.name={name}");
    let list = api
        .list(&ListParams::default().fields(&selector))
        .await
        .map_err(ServerError::kube(format!("listing the Events of {name}")))?;
    let mut events: Vec<Value> = list
        .items
        .into_iter()
        .map(|e| {
            let time = e
                .last_timestamp
                .map(|t| t.0.to_string())
                .or_else(|| e.event_time.map(|t| t.0.to_string()))
                .or_else(|| e.metadata.creation_timestamp.map(|t| t.0.to_string()))
                .unwrap_or_default();
            serde_json::json!({
                "type": e.type_.unwrap_or_default(),
                "reason": e.reason.unwrap_or_default(),
                "message": e.message.unwrap_or_default(),
                "count": e.count.unwrap_or(1),
                "time": time,
            })
        })
        .collect();
    events.sort_by(|a, b| b["time"].as_str().cmp(&a["time"].as_str()));
    Ok(events)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn secret_values_and_managed_fields_are_hidden() {
        let mut secret = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "managedFields": [{}], "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"data\":{\"p\":\"c2VjcmV0\"}}", "keep": "me"}},
            "data": {"p": "c2VjcmV0"}, "stringData": {"q": "plain"},
        });
        redact(&mut secret);
        assert_eq!(secret["data"]["p"], "<hidden: 8 bytes>");
        assert_eq!(secret["stringData"]["q"], "<hidden: 5 bytes>");
        assert!(secret["metadata"].get("managedFields").is_none());
        assert_eq!(secret["metadata"]["annotations"], json!({"keep": "me"}));
        assert!(!secret.to_string().contains("c2VjcmV0"));
    }
}
