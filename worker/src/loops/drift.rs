//! The drift watch, fast self-heal: the poll leader watches the kinds that self-healing
//! Applications manage, and when someone other than pushsync changes (or
//! deletes) one of their objects, enqueues a sync of its Application at
//! once instead of waiting for the next poll.
//!
//! Watches are opened per kind, cluster-wide, only for kinds in the
//! inventory of an Application with `selfHeal`, and only on the poll leader.
//! Events are matched against the inventories; changes whose newest field
//! manager is pushsync itself (its own applies) or that touch only the
//! `status` subresource (controllers reporting) are ignored, and one
//! Application is enqueued at most once per debounce interval.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::{WatchStreamExt, watcher};
use pushsync_proto::{AppRef, SyncTrigger};
use tokio_util::sync::CancellationToken;

use crate::context::{Shared, job};
use crate::index::Index;

/// (group, kind, namespace, name) of a managed object.
type Key = (String, String, String, String);

/// Managed objects of self-healing Applications, and who owns each.
#[derive(Default)]
struct Owners {
    by_object: HashMap<Key, AppRef>,
    kinds: HashSet<(String, String, String)>,
}

fn collect_owners(index: &Index) -> Owners {
    let mut owners = Owners::default();
    for app in index.applications() {
        let self_heal = app.spec.self_heals();
        let (Some(status), Some(namespace), Some(name)) = (
            app.status.as_ref(),
            app.metadata.namespace.clone(),
            app.metadata.name.clone(),
        ) else {
            continue;
        };
        if !self_heal {
            continue;
        }
        let owner = AppRef { namespace, name };
        for r in &status.inventory {
            owners
                .kinds
                .insert((r.group.clone(), r.version.clone(), r.kind.clone()));
            owners.by_object.insert(
                (
                    r.group.clone(),
                    r.kind.clone(),
                    r.namespace.clone(),
                    r.name.clone(),
                ),
                owner.clone(),
            );
        }
    }
    owners
}

/// Whether the newest change to `object` (status reports aside) was
/// pushsync's own.
fn changed_by_us(object: &DynamicObject) -> bool {
    object
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|entry| entry.subresource.as_deref().is_none_or(str::is_empty))
        .max_by_key(|entry| entry.time.as_ref().map(|t| t.0))
        .and_then(|entry| entry.manager.as_deref())
        .is_some_and(|manager| manager.starts_with("pushsync"))
}

/// The drift watcher.
#[derive(Clone)]
pub struct DriftWatch {
    shared: Shared,
    /// At most one job per Application per this interval.
    debounce: Duration,
}

impl std::fmt::Debug for DriftWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriftWatch")
            .field("debounce", &self.debounce)
            .finish_non_exhaustive()
    }
}

impl DriftWatch {
    /// A watcher that acts while `shared.leadership` says this worker leads.
    pub fn new(shared: Shared) -> Self {
        Self {
            shared,
            debounce: Duration::from_secs(2),
        }
    }

    /// Keep one watch per needed kind while leading, until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        let owners: Arc<Mutex<Owners>> = Arc::default();
        let last: Arc<Mutex<HashMap<AppRef, (Instant, bool)>>> = Arc::default();
        let mut watches: HashMap<(String, String, String), CancellationToken> = HashMap::new();
        loop {
            let needed = if self.shared.leadership.is_leading() {
                let fresh = collect_owners(&self.shared.index);
                let kinds = fresh.kinds.clone();
                if let Ok(mut current) = owners.lock() {
                    *current = fresh;
                }
                kinds
            } else {
                HashSet::new()
            };
            watches.retain(|kind, token| {
                let keep = needed.contains(kind);
                if !keep {
                    token.cancel();
                }
                keep
            });
            for kind in needed {
                if watches.contains_key(&kind) {
                    continue;
                }
                let token = stop.child_token();
                watches.insert(kind.clone(), token.clone());
                tokio::spawn(
                    self.clone()
                        .watch(kind, owners.clone(), last.clone(), token),
                );
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
        }
    }

    async fn watch(
        self,
        (group, version, kind): (String, String, String),
        owners: Arc<Mutex<Owners>>,
        last: Arc<Mutex<HashMap<AppRef, (Instant, bool)>>>,
        stop: CancellationToken,
    ) {
        let gvk = GroupVersionKind::gvk(&group, &version, &kind);
        let resource = match kube::discovery::pinned_kind(&self.shared.client, &gvk).await {
            Ok((resource, _)) => resource,
            Err(error) => {
                tracing::debug!(kind = %kind, error = %error, "cannot watch this kind for drift");
                return;
            }
        };
        let api: Api<DynamicObject> = Api::all_with(self.shared.client.clone(), &resource);
        let stream = watcher(api, watcher::Config::default()).default_backoff();
        let mut stream = std::pin::pin!(stream);
        tracing::debug!(kind = %kind, "watching for drift");
        loop {
            let event = tokio::select! {
                () = stop.cancelled() => return,
                event = stream.next() => match event { Some(event) => event, None => return },
            };
            let (object, deleted) = match event {
                Ok(watcher::Event::Apply(object)) => (object, false),
                Ok(watcher::Event::Delete(object)) => (object, true),
                // The initial listing: drift from before is the poll's to find.
                Ok(_) => continue,
                Err(error) => {
                    tracing::debug!(kind = %kind, error = %error, "drift watch interrupted; resuming");
                    continue;
                }
            };
            if !deleted && changed_by_us(&object) {
                continue;
            }
            let key = (
                group.clone(),
                kind.clone(),
                object.metadata.namespace.clone().unwrap_or_default(),
                object.metadata.name.clone().unwrap_or_default(),
            );
            let Some(owner) = owners
                .lock()
                .ok()
                .and_then(|o| o.by_object.get(&key).cloned())
            else {
                continue;
            };
            self.enqueue(owner, &resource, &last).await;
        }
    }

    /// Enqueue a self-heal of `owner` now, or — within the debounce interval
    /// of the last one — once at its end (a change is never dropped, only
    /// folded into the next job).
    async fn enqueue(
        &self,
        owner: AppRef,
        resource: &ApiResource,
        last: &Arc<Mutex<HashMap<AppRef, (Instant, bool)>>>,
    ) {
        let wait = {
            let Ok(mut last) = last.lock() else {
                return;
            };
            match last.get_mut(&owner) {
                Some((_, true)) => return,
                Some((at, scheduled)) if at.elapsed() < self.debounce => {
                    *scheduled = true;
                    Some(self.debounce.saturating_sub(at.elapsed()))
                }
                _ => {
                    last.insert(owner.clone(), (Instant::now(), false));
                    None
                }
            }
        };
        if let Some(wait) = wait {
            let (this, last, resource) = (self.clone(), last.clone(), resource.clone());
            tokio::spawn(async move {
                tokio::time::sleep(wait).await;
                if let Ok(mut last) = last.lock() {
                    last.insert(owner.clone(), (Instant::now(), false));
                }
                this.publish(owner, &resource).await;
            });
            return;
        }
        self.publish(owner, resource).await;
    }

    async fn publish(&self, owner: AppRef, resource: &ApiResource) {
        let id = format!("drift-{}", jiff::Timestamp::now().as_millisecond());
        let Some(outgoing) = job(
            owner.clone(),
            SyncTrigger::SelfHeal,
            &id,
            &self.shared.topology,
        ) else {
            return;
        };
        if self.shared.enqueue(&[outgoing]).await {
            tracing::info!(application = %owner, kind = %resource.kind, "a managed object changed in the cluster; self-healing");
        } else {
            tracing::warn!(application = %owner, "enqueueing a self-heal failed; the poll will catch it");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(entries: serde_json::Value) -> DynamicObject {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "managedFields": entries},
        }))
        .unwrap()
    }

    #[test]
    fn the_newest_change_outside_status_decides_whose_it_was() {
        let ours = object(serde_json::json!([
            {"manager": "kubectl-edit", "operation": "Update", "time": "2026-01-01T00:00:00Z"},
            {"manager": "pushsync", "operation": "Apply", "time": "2026-01-01T00:01:00Z"},
            {"manager": "kube-controller-manager", "operation": "Update", "subresource": "status", "time": "2026-01-01T00:02:00Z"},
        ]));
        assert!(
            changed_by_us(&ours),
            "a controller's status report is not a change"
        );
        let edited = object(serde_json::json!([
            {"manager": "pushsync", "operation": "Apply", "time": "2026-01-01T00:01:00Z"},
            {"manager": "kubectl-edit", "operation": "Update", "time": "2026-01-01T00:03:00Z"},
        ]));
        assert!(!changed_by_us(&edited));
        assert!(!changed_by_us(&object(serde_json::json!([]))));
    }
}
