//! Deletion: finalizers and deletionTimestamp, tombstones for watches,
//! garbage collection of dependents, and emptying a namespace.

use super::*;

impl State {
    /// Delete, honouring finalizers, then collect dependents.
    pub(super) fn delete_object(
        &mut self,
        events: &broadcast::Sender<Arc<WatchEvent>>,
        rt: &ResourceType,
        old: Value,
        propagation: Propagation,
    ) -> Value {
        let has_finalizers = old
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        if has_finalizers {
            if old.pointer("/metadata/deletionTimestamp").is_some() {
                return old;
            }
            let mut marked = old.clone();
            metadata(&mut marked).insert("deletionTimestamp".to_owned(), json!(now()));
            metadata(&mut marked).insert("deletionGracePeriodSeconds".to_owned(), json!(0));
            // As the real server does: the controllers of an object being
            // deleted see a new generation (apiserver rest.BeforeDelete).
            if let Some(generation) = old.pointer("/metadata/generation").and_then(Value::as_i64)
                && generation > 0
            {
                metadata(&mut marked).insert("generation".to_owned(), json!(generation + 1));
            }
            return self.commit(events, rt, marked, "MODIFIED");
        }
        let removed = self.remove(events, rt, &old);
        let uid = old
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        self.collect_dependents(events, &uid, propagation);
        if rt.kind == "Namespace" {
            self.empty_namespace(events, &name_of(&old));
        }
        if rt.kind == "CustomResourceDefinition"
            && let Ok(types) = registry::from_crd(&old)
            && let Some(first) = types.first()
        {
            let (group, plural) = (first.group.clone(), first.plural.clone());
            self.types
                .retain(|t| !(t.custom && t.group == group && t.plural == plural));
            let key = format!("{group}/{plural}");
            if let Some(objects) = self.objects.remove(&key) {
                for object in objects.values() {
                    self.tombstone(events, first, object);
                }
            }
        }
        removed
    }

    pub(super) fn remove(
        &mut self,
        events: &broadcast::Sender<Arc<WatchEvent>>,
        rt: &ResourceType,
        object: &Value,
    ) -> Value {
        let key = (
            if rt.namespaced {
                namespace_of(object)
            } else {
                String::new()
            },
            name_of(object),
        );
        if let Some(objects) = self.objects.get_mut(&rt.storage_key()) {
            Arc::make_mut(objects).remove(&key);
        }
        self.tombstone(events, rt, object)
    }

    /// Announce `object` as deleted, with a new resourceVersion.
    pub(super) fn tombstone(
        &mut self,
        events: &broadcast::Sender<Arc<WatchEvent>>,
        rt: &ResourceType,
        object: &Value,
    ) -> Value {
        self.rv += 1;
        let mut gone = object.clone();
        metadata(&mut gone).insert("resourceVersion".to_owned(), json!(self.rv.to_string()));
        self.announce(events, rt, "DELETED", &gone);
        gone
    }

    /// Garbage collection: dependents of a deleted owner.
    pub(super) fn collect_dependents(
        &mut self,
        events: &broadcast::Sender<Arc<WatchEvent>>,
        owner_uid: &str,
        propagation: Propagation,
    ) {
        if owner_uid.is_empty() {
            return;
        }
        let mut dependents = Vec::new();
        for rt in self.types.clone() {
            if let Some(objects) = self.objects.get(&rt.storage_key()) {
                for object in objects.values() {
                    let owned = object
                        .pointer("/metadata/ownerReferences")
                        .and_then(Value::as_array)
                        .is_some_and(|refs| {
                            refs.iter()
                                .any(|r| r.get("uid").and_then(Value::as_str) == Some(owner_uid))
                        });
                    if owned
                        && !dependents.iter().any(|(t, o): &(ResourceType, Value)| {
                            t.storage_key() == rt.storage_key() && o == object
                        })
                    {
                        dependents.push((rt.clone(), object.clone()));
                    }
                }
            }
        }
        for (rt, dependent) in dependents {
            if propagation == Propagation::Orphan {
                let mut orphan = dependent.clone();
                if let Some(refs) = orphan
                    .pointer_mut("/metadata/ownerReferences")
                    .and_then(Value::as_array_mut)
                {
                    refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(owner_uid));
                }
                self.commit(events, &rt, orphan, "MODIFIED");
            } else {
                self.delete_object(events, &rt, dependent, propagation);
            }
        }
    }

    pub(super) fn empty_namespace(
        &mut self,
        events: &broadcast::Sender<Arc<WatchEvent>>,
        namespace: &str,
    ) {
        for rt in self.types.clone().into_iter().filter(|t| t.namespaced) {
            let doomed: Vec<Value> = self
                .objects
                .get(&rt.storage_key())
                .map(|objects| {
                    objects
                        .iter()
                        .filter(|((ns, _), _)| ns == namespace)
                        .map(|(_, o)| o.clone())
                        .collect()
                })
                .unwrap_or_default();
            for object in doomed {
                // Namespace deletion does not wait for finalizers here.
                self.remove(events, &rt, &object);
            }
        }
    }
}
