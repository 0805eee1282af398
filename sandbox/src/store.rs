//! In-memory object storage: one global resourceVersion, watch history, writes
//! with the real server's metadata rules, garbage collection and finalizers.

mod delete;
mod write;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::managed;
use crate::registry::{self, ResourceType};
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::validate;

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

/// Live changes, as a watch receives them.
pub type EventReceiver = broadcast::Receiver<Arc<WatchEvent>>;

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
    objects: HashMap<String, BTreeMap<(String, String), Value>>,
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

fn name_of(object: &Value) -> String {
    object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn namespace_of(object: &Value) -> String {
    object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
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
            return Err(ApiError::conflict(format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                rt.qualified()
            )));
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

    /// Patch an object. `apply` is server-side apply (creating the object if
    /// needed, which the flag reports); the other kinds are merge, JSON and
    /// strategic-merge patches.
    pub fn patch(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        kind: PatchKind,
        patch: Value,
        options: &WriteOptions,
    ) -> Result<(Value, bool), ApiError> {
        let mut state = self.lock();
        let old = state.get(rt, namespace, name).cloned();
        let now = now();
        match kind {
            PatchKind::Apply => {
                let mut applied = patch;
                if let Some(ns) = namespace
                    && rt.namespaced
                {
                    metadata(&mut applied).insert("namespace".to_owned(), json!(ns));
                }
                validate::identity(rt, &applied, namespace.filter(|_| rt.namespaced))?;
                if name_of(&applied) != name {
                    return Err(ApiError::bad_request(
                        "the name of the object does not match the name on the URL",
                    ));
                }
                if old.is_none() && options.status {
                    return Err(ApiError::not_found(&rt.qualified(), name));
                }
                let subresource = if options.status { "status" } else { "" };
                let merged = managed::apply(
                    old.as_ref(),
                    &applied,
                    &options.manager,
                    &rt.api_version(),
                    subresource,
                    options.force,
                    &now,
                )
                .map_err(|conflicts| conflict_error(rt, name, &conflicts))?;
                match old {
                    Some(old) => {
                        let updated = state.finish_write(
                            &self.events,
                            rt,
                            namespace,
                            old,
                            merged,
                            options,
                            Some(()),
                        )?;
                        Ok((updated, false))
                    }
                    None => {
                        drop(state);
                        Ok((self.create_applied(rt, namespace, merged, options)?, true))
                    }
                }
            }
            _ => {
                let old = old.ok_or_else(|| ApiError::not_found(&rt.qualified(), name))?;
                let mut patched = old.clone();
                match kind {
                    PatchKind::Merge => json_patch::merge(&mut patched, &patch),
                    PatchKind::Strategic => crate::patch::strategic_merge(&mut patched, &patch, ""),
                    PatchKind::Json => {
                        let operations: json_patch::Patch =
                            serde_json::from_value(patch).map_err(|e| {
                                ApiError::bad_request(format!("invalid JSON patch: {e}"))
                            })?;
                        json_patch::patch(&mut patched, &operations).map_err(|e| {
                            ApiError::invalid(&validate::qualified_kind(rt), name, e.to_string())
                        })?;
                    }
                    PatchKind::Apply => {}
                }
                Ok((
                    state.finish_write(&self.events, rt, namespace, old, patched, options, None)?,
                    false,
                ))
            }
        }
    }

    fn create_applied(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        merged: Value,
        options: &WriteOptions,
    ) -> Result<Value, ApiError> {
        // Keep the ownership apply computed; create() would record an Update.
        let managed_fields = merged.pointer("/metadata/managedFields").cloned();
        let mut created = {
            let mut dry = options.clone();
            dry.dry_run = true;
            self.create(rt, namespace, merged, &dry)?
        };
        if let Some(fields) = managed_fields {
            metadata(&mut created).insert("managedFields".to_owned(), fields);
        }
        if options.dry_run {
            return Ok(created);
        }
        let mut state = self.lock();
        if state.get(rt, namespace, &name_of(&created)).is_some() {
            return Err(ApiError::conflict(
                "the object was created concurrently; retry the apply",
            ));
        }
        let stored = state.commit(&self.events, rt, created, "ADDED");
        Ok(with_version(&stored, rt))
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

    /// Apply `f` to the state under the lock (controllers).
    pub(crate) fn with_state<T>(&self, f: impl FnOnce(&mut Access<'_>) -> T) -> T {
        let mut state = self.lock();
        let mut access = Access {
            state: &mut state,
            events: &self.events,
        };
        f(&mut access)
    }
}

/// Locked access for simulated controllers.
pub(crate) struct Access<'a> {
    state: &'a mut State,
    events: &'a broadcast::Sender<Arc<WatchEvent>>,
}

impl Access<'_> {
    /// Every object of the type `group/kind`.
    pub fn objects(&self, group: &str, kind: &str) -> Vec<(ResourceType, Value)> {
        let Some(rt) = self
            .state
            .types
            .iter()
            .find(|t| t.group == group && t.kind == kind)
            .cloned()
        else {
            return Vec::new();
        };
        self.state
            .objects
            .get(&rt.storage_key())
            .map(|objects| objects.values().map(|o| (rt.clone(), o.clone())).collect())
            .unwrap_or_default()
    }

    /// Replace an object's status (as a controller would, via /status).
    pub fn set_status(&mut self, rt: &ResourceType, object: &Value, status: Value) {
        let mut new = object.clone();
        new["status"] = status;
        if comparable(&new) == comparable(object) {
            return;
        }
        let manager = format!("{}-controller", rt.kind.to_ascii_lowercase());
        let now = now();
        managed::record_update(
            Some(object),
            &mut new,
            &manager,
            &rt.api_version(),
            "status",
            &now,
        );
        self.state.commit(self.events, rt, new, "MODIFIED");
    }
}

/// The kinds of PATCH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/apply-patch+yaml`.
    Apply,
    /// `application/merge-patch+json`.
    Merge,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/json-patch+json`.
    Json,
}

fn conflict_error(rt: &ResourceType, name: &str, conflicts: &[managed::Conflict]) -> ApiError {
    let lines: Vec<String> = conflicts
        .iter()
        .map(|c| {
            format!(
                "conflict with \"{}\": {}",
                c.manager,
                managed::display_path(&c.path)
            )
        })
        .collect();
    let mut error = ApiError::conflict(if lines.len() == 1 {
        format!("Apply failed with 1 conflict: {}", lines[0])
    } else {
        format!(
            "Apply failed with {} conflicts: {}",
            lines.len(),
            lines.join("\n")
        )
    });
    error.details = Some(json!({
        "name": name,
        "group": rt.group,
        "kind": rt.plural,
        "causes": conflicts.iter().map(|c| json!({
            "reason": "FieldManagerConflict",
            "message": format!("conflict with \"{}\"", c.manager),
            "field": managed::display_path(&c.path),
        })).collect::<Vec<_>>(),
    }));
    error
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

impl State {
    fn get(&self, rt: &ResourceType, namespace: Option<&str>, name: &str) -> Option<&Value> {
        let ns = if rt.namespaced {
            namespace.unwrap_or_default()
        } else {
            ""
        };
        self.objects
            .get(&rt.storage_key())?
            .get(&(ns.to_owned(), name.to_owned()))
    }

    fn check_namespace(&self, rt: &ResourceType, namespace: Option<&str>) -> Result<(), ApiError> {
        if !rt.namespaced {
            return Ok(());
        }
        let ns = namespace.unwrap_or_default();
        let exists = self
            .objects
            .get("/namespaces")
            .and_then(|n| n.get(&(String::new(), ns.to_owned())))
            .is_some_and(|n| n.pointer("/metadata/deletionTimestamp").is_none());
        if exists {
            Ok(())
        } else {
            Err(ApiError::not_found("namespaces", ns))
        }
    }

    fn default_object(&mut self, rt: &ResourceType, object: &mut Value, old: Option<&Value>) {
        let next = &mut self.next_ip;
        validate::default(rt, object, old, || {
            *next += 1;
            format!("10.96.{}.{}", *next / 250, *next % 250 + 1)
        });
    }

    fn register_crd(&mut self, crd: &Value) {
        let Ok(types) = registry::from_crd(crd) else {
            return;
        };
        let (group, plural) = match types.first() {
            Some(t) => (t.group.clone(), t.plural.clone()),
            None => return,
        };
        self.types
            .retain(|t| !(t.custom && t.group == group && t.plural == plural));
        self.types.extend(types);
    }
}
