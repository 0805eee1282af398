//! Lookups and checks on the locked state that every write shares: one
//! object, the namespace it goes in, server defaults, CRD registration.

use super::*;

impl State {
    pub(super) fn get(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<&Value> {
        let ns = if rt.namespaced {
            namespace.unwrap_or_default()
        } else {
            ""
        };
        self.objects
            .get(&rt.storage_key())?
            .get(&(ns.to_owned(), name.to_owned()))
    }

    pub(super) fn check_namespace(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
    ) -> Result<(), ApiError> {
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

    pub(super) fn default_object(
        &mut self,
        rt: &ResourceType,
        object: &mut Value,
        old: Option<&Value>,
    ) {
        let next = &mut self.next_ip;
        validate::default(rt, object, old, || {
            *next += 1;
            format!("10.96.{}.{}", *next / 250, *next % 250 + 1)
        });
    }

    pub(super) fn register_crd(&mut self, crd: &Value) {
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
