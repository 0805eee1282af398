//! The common tail of every write (update, patch, apply): status and
//! server-owned metadata, validation, defaults, ownership, generation,
//! no-op detection, then the commit and its one watch event.

use super::*;

impl State {
    /// The common tail of update, patch and apply.
    #[allow(clippy::too_many_arguments, reason = "one write pipeline")]
    pub(super) fn finish_write(
        &mut self,
        events: &broadcast::Sender<Arc<WatchEvent>>,
        rt: &ResourceType,
        namespace: Option<&str>,
        old: Value,
        mut new: Value,
        options: &WriteOptions,
        applied: Option<()>,
    ) -> Result<Value, ApiError> {
        if options.status {
            // Only status changes through /status.
            let status = new.get("status").cloned();
            let managed_fields = new.pointer("/metadata/managedFields").cloned();
            new = old.clone();
            match status {
                Some(status) => new["status"] = status,
                None => {
                    if let Some(map) = new.as_object_mut() {
                        map.remove("status");
                    }
                }
            }
            if let Some(fields) = managed_fields {
                metadata(&mut new).insert("managedFields".to_owned(), fields);
            }
        } else if rt.status {
            // Status is ignored on the main resource.
            match old.get("status") {
                Some(status) => new["status"] = status.clone(),
                None => {
                    if let Some(map) = new.as_object_mut() {
                        map.remove("status");
                    }
                }
            }
        }
        conform_to_schema(rt, &mut new, options)?;
        validate::identity(rt, &new, namespace.filter(|_| rt.namespaced))?;
        validate::immutable(rt, &old, &new)?;
        // Server-owned metadata comes from the stored object.
        for field in [
            "uid",
            "creationTimestamp",
            "generation",
            "resourceVersion",
            "deletionTimestamp",
        ] {
            match old.pointer(&format!("/metadata/{field}")) {
                Some(value) => {
                    metadata(&mut new).insert(field.to_owned(), value.clone());
                }
                None => {
                    metadata(&mut new).remove(field);
                }
            }
        }
        self.default_object(rt, &mut new, Some(&old));
        if applied.is_none() {
            let now = now();
            let subresource = if options.status { "status" } else { "" };
            managed::record_update(
                rt.schema(),
                Some(&old),
                &mut new,
                &options.manager,
                &rt.api_version(),
                subresource,
                &now,
            );
        }
        if spec_part(&new) != spec_part(&old) {
            let generation = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            metadata(&mut new).insert("generation".to_owned(), json!(generation + 1));
        }
        check_crd(rt, &new)?;
        // A write that changes nothing is not a write: same resourceVersion, no event.
        if comparable(&new) == comparable(&old) {
            return Ok(with_version(&old, rt));
        }
        if options.dry_run {
            return Ok(with_version(&new, rt));
        }
        let finalizers_done = new.pointer("/metadata/deletionTimestamp").is_some()
            && new
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty);
        let stored = self.commit(events, rt, new, "MODIFIED");
        if finalizers_done {
            self.remove(events, rt, &stored);
        }
        Ok(with_version(&stored, rt))
    }

    /// Store `object` with a new resourceVersion and announce it.
    pub(super) fn commit(
        &mut self,
        events: &broadcast::Sender<Arc<WatchEvent>>,
        rt: &ResourceType,
        mut object: Value,
        kind: &'static str,
    ) -> Value {
        self.rv += 1;
        metadata(&mut object).insert("resourceVersion".to_owned(), json!(self.rv.to_string()));
        let key = (
            if rt.namespaced {
                namespace_of(&object)
            } else {
                String::new()
            },
            name_of(&object),
        );
        Arc::make_mut(self.objects.entry(rt.storage_key()).or_default())
            .insert(key, object.clone());
        if rt.kind == "CustomResourceDefinition" {
            self.register_crd(&object);
        }
        self.announce(events, rt, kind, &object);
        object
    }

    pub(super) fn announce(
        &mut self,
        events: &broadcast::Sender<Arc<WatchEvent>>,
        rt: &ResourceType,
        kind: &'static str,
        object: &Value,
    ) {
        let event = Arc::new(WatchEvent {
            rv: self.rv,
            kind,
            key: rt.storage_key(),
            object: object.clone(),
        });
        self.history.push_back(event.clone());
        while self.history.len() > HISTORY {
            self.history.pop_front();
        }
        let _ = events.send(event);
    }
}
