//! Locked access to the whole state, for the simulated controllers.

use super::*;

impl Store {
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
        // A controller's status is held to the schema like any write.
        crate::schema::conform::prune_unknown(rt.schema(), &mut new);
        if comparable(&new) == comparable(object) {
            return;
        }
        let manager = format!("{}-controller", rt.kind.to_ascii_lowercase());
        let now = now();
        managed::record_update(
            rt.schema(),
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
