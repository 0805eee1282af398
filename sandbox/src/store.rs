//! In-memory object storage: one global resourceVersion, watch history, writes
//! with the real server's metadata rules, garbage collection and finalizers.

mod access;
mod delete;
mod page;
mod patch;
mod schema;
mod state;
mod write;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::managed;
use crate::registry::{self, ResourceType};
use crate::schema::{FieldValidation, conform};
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::validate;

pub use page::Page;
pub use patch::PatchKind;

use page::Snapshot;
pub(crate) use schema::conform_to_schema;

/// How many past events a watch can resume from.
const HISTORY: usize = 20_000;

/// One change, as a watch reports it.
#[derive(Debug, Clone)]
pub struct WatchEvent {
    /// The resourceVersion the change produced.
    pub rv: u64,
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub kind: &'static str,
    /// Storage key of the object's resource.
    pub key: String,
    /// The object after the change (before, for deletions, with the new rv).
    pub object: Value,
}

/// One resource's objects, by namespace and name.
type Objects = BTreeMap<(String, String), Value>;

/// Live changes, as a watch receives them.
pub type EventReceiver = broadcast::Receiver<Arc<WatchEvent>>;

/// Warnings a write produced, for the response's `Warning` headers. Clones
/// share one list.
#[derive(Debug, Clone, Default)]
pub struct Warnings(Arc<Mutex<Vec<String>>>);

impl Warnings {
    /// Add one.
    pub fn push(&self, warning: String) {
        if let Ok(mut list) = self.0.lock()
            && !list.contains(&warning)
        {
            list.push(warning);
        }
    }

    /// Every warning so far, once each.
    pub fn list(&self) -> Vec<String> {
        self.0.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

/// Who writes, and how.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// The field manager recorded in managedFields.
    pub manager: String,
    /// `dryRun=All`: validate and answer, store nothing.
    pub dry_run: bool,
    /// Writing the `status` subresource.
    pub status: bool,
    /// Server-side apply: take fields from other managers.
    pub force: bool,
    /// What unknown fields do (the sandbox's own writes: Strict).
    pub validation: FieldValidation,
    /// Where `Warn` reports them.
    pub warnings: Warnings,
    /// A merge, JSON or strategic patch: Strict refuses its unknown fields
    /// as an invalid patch (422) rather than an undecodable body (400).
    pub patching: bool,
}

/// How dependents of a deleted object are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    /// Delete dependents after the owner (the default).
    Background,
    /// Delete dependents with the owner.
    Foreground,
    /// Leave dependents, removing their owner reference.
    Orphan,
}

/// The shared store.
#[derive(Debug)]
pub struct Store {
    state: Mutex<State>,
    events: broadcast::Sender<Arc<WatchEvent>>,
}

#[derive(Debug)]
struct State {
    types: Vec<ResourceType>,
    /// Objects by storage key, then namespace and name. Shared copy-on-write
    /// with the snapshots paged lists continue from.
    objects: HashMap<String, Arc<Objects>>,
    /// Lists being paged: the objects of one resource as they were at a
    /// resourceVersion, newest last.
    snapshots: VecDeque<Snapshot>,
    /// Continue tokens older than this resourceVersion are expired (410).
    compacted: u64,
    rv: u64,
    history: VecDeque<Arc<WatchEvent>>,
    next_ip: u32,
}

fn now() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// The string at `pointer` in `object`, or empty when there is none.
pub(crate) fn string_at(object: &Value, pointer: &str) -> String {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// An object's `metadata.name`, or empty.
pub(crate) fn name_of(object: &Value) -> String {
    string_at(object, "/metadata/name")
}

/// An object's `metadata.namespace`, or empty.
pub(crate) fn namespace_of(object: &Value) -> String {
    string_at(object, "/metadata/namespace")
}

fn metadata(object: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !object.get("metadata").is_some_and(Value::is_object) {
        object["metadata"] = json!({});
    }
    match object.get_mut("metadata").and_then(Value::as_object_mut) {
        Some(map) => map,
        None => unreachable!("metadata was just made an object"),
    }
}

/// Everything but metadata and status: a change here bumps `generation`.
fn spec_part(object: &Value) -> Value {
    let mut copy = object.clone();
    if let Some(map) = copy.as_object_mut() {
        map.remove("metadata");
        map.remove("status");
    }
    copy
}

/// The object with volatile bookkeeping removed, to detect no-op writes.
fn comparable(object: &Value) -> Value {
    let mut copy = object.clone();
    if let Some(entries) = copy
        .pointer_mut("/metadata/managedFields")
        .and_then(Value::as_array_mut)
    {
        for entry in entries.iter_mut().filter_map(Value::as_object_mut) {
            entry.remove("time");
        }
    }
    copy
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    /// A store serving the built-in kinds, with the `default` namespace.
    pub fn new() -> Self {
        let (events, _) = broadcast::channel(4096);
        let store = Self {
            state: Mutex::new(State {
                types: registry::builtins(),
                objects: HashMap::new(),
                rv: 1,
                history: VecDeque::new(),
                snapshots: VecDeque::new(),
                compacted: 0,
                next_ip: 10,
            }),
            events,
        };
        for ns in ["default", "kube-system", "kube-public"] {
            let namespaces = store.resolve("", "v1", "namespaces");
            if let Some(rt) = namespaces {
                let object =
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
                let _ = store.create(
                    &rt,
                    None,
                    object,
                    &WriteOptions {
                        manager: "sandbox".into(),
                        ..Default::default()
                    },
                );
            }
        }
        store
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every served type.
    pub fn types(&self) -> Vec<ResourceType> {
        self.lock().types.clone()
    }

    /// The type served at `group/version/plural`.
    pub fn resolve(&self, group: &str, version: &str, plural: &str) -> Option<ResourceType> {
        self.lock()
            .types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
            .cloned()
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    /// Subscribe to changes, and get the history after `since` (or an error
    /// when `since` is older than the kept history). Atomic: no change falls
    /// between the replay and the subscription.
    pub fn watch_from(
        &self,
        since: u64,
    ) -> Result<(Vec<Arc<WatchEvent>>, EventReceiver), ApiError> {
        let state = self.lock();
        let receiver = self.events.subscribe();
        if let Some(oldest) = state.history.front()
            && since + 1 < oldest.rv
        {
            return Err(ApiError::gone(format!(
                "too old resource version: {since} ({})",
                oldest.rv - 1
            )));
        }
        let replay = state
            .history
            .iter()
            .filter(|e| e.rv > since)
            .cloned()
            .collect();
        Ok((replay, receiver))
    }

    /// One object.
    pub fn get(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        let state = self.lock();
        state
            .get(rt, namespace, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&rt.qualified(), name))
    }

    /// Objects matching the selectors, and the list's resourceVersion.
    pub fn list(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> (Vec<Value>, u64) {
        let state = self.lock();
        let items = state
            .objects
            .get(&rt.storage_key())
            .map(|objects| {
                objects
                    .iter()
                    .filter(|((ns, _), _)| namespace.is_none_or(|n| n == ns))
                    .map(|(_, o)| o)
                    .filter(|o| labels.matches(o) && fields.matches(o))
                    .map(|o| with_version(o, rt))
                    .collect()
            })
            .unwrap_or_default();
        (items, state.rv)
    }

    /// Create an object.
    pub fn create(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        mut object: Value,
        options: &WriteOptions,
    ) -> Result<Value, ApiError> {
        validate::decodes(rt, &object)?;
        let mut state = self.lock();
        if let Some(ns) = namespace
            && rt.namespaced
        {
            metadata(&mut object).insert("namespace".to_owned(), json!(ns));
        }
        if object.pointer("/metadata/name").is_none_or(|n| n == "")
            && let Some(prefix) = object
                .pointer("/metadata/generateName")
                .and_then(Value::as_str)
        {
            let suffix: String = uuid::Uuid::new_v4()
                .simple()
                .to_string()
                .chars()
                .take(5)
                .collect();
            let name = format!("{prefix}{suffix}");
            metadata(&mut object).insert("name".to_owned(), json!(name));
        }
        validate::identity(rt, &object, namespace.filter(|_| rt.namespaced))?;
        let name = name_of(&object);
        if state.get(rt, namespace, &name).is_some() {
            return Err(ApiError::already_exists(&rt.qualified(), &name));
        }
        state.check_namespace(rt, namespace)?;
        if rt.status
            && let Some(map) = object.as_object_mut()
        {
            map.remove("status");
        }
        if rt.kind == "Namespace" {
            // The namespace controller's first act; `kubectl get ns` shows it.
            object["status"] = json!({"phase": "Active"});
        }
        conform_to_schema(rt, &mut object, options)?;
        state.default_object(rt, &mut object, None);
        let now = now();
        let meta = metadata(&mut object);
        meta.insert("uid".to_owned(), json!(uuid::Uuid::new_v4().to_string()));
        meta.insert("creationTimestamp".to_owned(), json!(now));
        meta.insert("generation".to_owned(), json!(1));
        meta.remove("resourceVersion");
        meta.remove("deletionTimestamp");
        meta.remove("managedFields");
        managed::record_update(
            rt.schema(),
            None,
            &mut object,
            &options.manager,
            &rt.api_version(),
            "",
            &now,
        );
        check_crd(rt, &object)?;
        if options.dry_run {
            return Ok(with_version(&object, rt));
        }
        let stored = state.commit(&self.events, rt, object, "ADDED");
        Ok(with_version(&stored, rt))
    }

    /// Replace an object (PUT), with optimistic concurrency on resourceVersion.
    pub fn update(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        object: Value,
        options: &WriteOptions,
    ) -> Result<Value, ApiError> {
        validate::decodes(rt, &object)?;
        let mut state = self.lock();
        let old = state
            .get(rt, namespace, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&rt.qualified(), name))?;
        if let Some(rv) = object
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            && !rv.is_empty()
            && Some(rv)
                != old
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
        {
            return Err(modified(rt, name));
        }
        let mut object = object;
        if let Some(ns) = namespace
            && rt.namespaced
        {
            metadata(&mut object).insert("namespace".to_owned(), json!(ns));
        }
        if name_of(&object) != name {
            return Err(ApiError::bad_request(
                "the name of the object does not match the name on the URL",
            ));
        }
        state.finish_write(&self.events, rt, namespace, old, object, options, None)
    }

    /// Delete an object (or mark it deleting while finalizers remain).
    pub fn delete(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        propagation: Propagation,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let mut state = self.lock();
        let old = state
            .get(rt, namespace, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&rt.qualified(), name))?;
        if dry_run {
            return Ok(with_version(&old, rt));
        }
        let result = state.delete_object(&self.events, rt, old, propagation);
        Ok(with_version(&result, rt))
    }
}

/// 409: the object changed since the resourceVersion the write was based on.
pub(crate) fn modified(rt: &ResourceType, name: &str) -> ApiError {
    ApiError::conflict(format!(
        "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
        rt.qualified()
    ))
}

/// A CustomResourceDefinition must define something servable.
fn check_crd(rt: &ResourceType, object: &Value) -> Result<(), ApiError> {
    if rt.kind != "CustomResourceDefinition" {
        return Ok(());
    }
    registry::from_crd(object).map(|_| ()).map_err(|e| {
        ApiError::invalid(
            "CustomResourceDefinition.apiextensions.k8s.io",
            &name_of(object),
            e,
        )
    })
}

/// Objects are stored once per group and kind; serve them as `rt`'s version.
fn with_version(object: &Value, rt: &ResourceType) -> Value {
    let mut out = object.clone();
    out["apiVersion"] = json!(rt.api_version());
    out
}
