//! Kubernetes Leases (`coordination.k8s.io/v1`): one sync per Application at
//! a time across every worker process, and one active poller.
//!
//! # Sync locks with tickets
//!
//! Each Application has a Lease (`sync.<namespace>.<name>`). Besides the
//! holder, it carries three counters in annotations, changed only by
//! optimistic read-modify-write (a stale `resourceVersion` is refused with
//! 409 and the change is made again on the fresh object), so no clock is
//! compared across machines except for the holder's expiry:
//!
//! - `requested`: every sync job that reaches the lock takes the next ticket;
//! - `serving`: the value of `requested` when the holder's current sync began
//!   (that sync resolves the branch head after every one of those requests);
//! - `served`: the highest ticket a finished sync covered.
//!
//! A job that finds the lock held waits (polling the Lease, not the queue)
//! until `served` reaches its ticket — a newer sync covered it, and it is
//! dropped — or the lock is free or expired, and it takes it. The holder,
//! when it finishes, syncs again while `requested > serving`, so a burst of
//! pushes costs about one sync per sync duration and the last sync always
//! starts after the last push was requested. A holder that dies stops
//! renewing; its lock expires and a waiting job takes over.
//!
//! # Leader election
//!
//! The poller's Lease has a holder and nothing else: the holder renews it
//! every third of its duration; a standby takes it once it expired.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use pushsync_proto::AppRef;

/// Tickets taken.
pub const REQUESTED: &str = "pushsync.dev/requested";
/// `requested` when the current sync began.
pub const SERVING: &str = "pushsync.dev/serving";
/// The highest ticket a finished sync covered.
pub const SERVED: &str = "pushsync.dev/served";
/// The revision the newest request named, when it named one.
pub const REQUESTED_REVISION: &str = "pushsync.dev/requested-revision";
/// The Application a sync lock is for (`namespace/name`).
pub const APPLICATION: &str = "pushsync.dev/application";

/// A Lease could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("lease {namespace}/{name}: {what} failed")]
pub struct LeaseError {
    namespace: String,
    name: String,
    what: &'static str,
    #[source]
    source: kube::Error,
}

impl LeaseError {
    /// A bounded label for metrics and logs: the step that failed.
    pub fn kind(&self) -> &'static str {
        self.what
    }
}

/// Leases in one namespace, taken under one identity (one per process).
#[derive(Clone)]
pub struct Leases {
    api: Api<Lease>,
    namespace: String,
    identity: String,
    duration: Duration,
}

impl std::fmt::Debug for Leases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leases")
            .field("namespace", &self.namespace)
            .field("identity", &self.identity)
            .field("duration", &self.duration)
            .finish_non_exhaustive()
    }
}

/// What taking a ticket found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The lock is ours: sync now.
    Acquired,
    /// Someone else is syncing: wait for `served` to reach the ticket.
    Busy {
        /// Our ticket.
        ticket: u64,
    },
    /// Nobody is syncing, but we were not to take the lock (no free sync
    /// slot): take it once we can.
    Free,
    /// A sync that started after our request finished: nothing to do.
    Covered,
}

/// What the holder learns when it renews.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Renewal {
    /// Still ours; `newer` is set when a request arrived after the current
    /// sync began, with the revision it named (if any).
    Held {
        /// A newer request, and its revision.
        newer: Option<Option<String>>,
    },
    /// Someone else holds it now (ours expired): stop.
    Lost,
}

/// What finishing a sync leaves to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// Requests arrived during the sync: sync again (the lock is still ours).
    Again,
    /// Released.
    Released,
}

fn counter(lease: &Lease, key: &str) -> u64 {
    lease
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn set(lease: &mut Lease, key: &str, value: String) {
    lease
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(key.to_owned(), value);
}

/// A request that arrived after the current sync began, with the revision
/// it named (if any).
fn newer(lease: &Lease) -> Option<Option<String>> {
    (counter(lease, REQUESTED) > counter(lease, SERVING)).then(|| {
        lease
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REQUESTED_REVISION))
            .cloned()
    })
}

fn holder(lease: &Lease) -> Option<&str> {
    lease
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.as_deref())
        .filter(|h| !h.is_empty())
}

fn expired(lease: &Lease, now: jiff::Timestamp) -> bool {
    let Some(spec) = &lease.spec else {
        return true;
    };
    let Some(MicroTime(renewed)) = spec.renew_time else {
        return true;
    };
    let seconds = i64::from(spec.lease_duration_seconds.unwrap_or(0));
    renewed
        .checked_add(jiff::SignedDuration::from_secs(seconds))
        .is_ok_and(|until| until < now)
}

/// The Lease name for an Application's sync lock: namespaces hold no dots,
/// so `sync.<namespace>.<name>` is unambiguous; too long a name is hashed.
pub fn lock_name(app: &AppRef) -> String {
    let name = format!("sync.{}.{}", app.namespace, app.name);
    if name.len() <= 253 {
        return name;
    }
    let hash = crate::fnv1a(crate::FNV_OFFSET, name.as_bytes());
    format!("sync.{}.{hash:016x}", app.namespace)
}

impl Leases {
    /// Leases in `namespace`, held as `identity` for `duration` at a time.
    pub fn new(
        client: kube::Client,
        namespace: &str,
        identity: impl Into<String>,
        duration: Duration,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            identity: identity.into(),
            duration,
        }
    }

    /// This process's identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// How long a Lease is held without renewal.
    pub fn duration(&self) -> Duration {
        self.duration
    }

    fn error(&self, name: &str, what: &'static str, source: kube::Error) -> LeaseError {
        LeaseError {
            namespace: self.namespace.clone(),
            name: name.to_owned(),
            what,
            source,
        }
    }

    fn hold(&self, lease: &mut Lease, now: jiff::Timestamp, fresh: bool) {
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if fresh {
            spec.acquire_time = Some(MicroTime(now));
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.holder_identity = Some(self.identity.clone());
        spec.lease_duration_seconds =
            Some(i32::try_from(self.duration.as_secs().max(1)).unwrap_or(i32::MAX));
        spec.renew_time = Some(MicroTime(now));
    }

    /// Change Lease `name` with `change` until the write sticks (`change`
    /// sees the current object, or an empty one when there is none, and says
    /// whether to write). Returns what `change` returned last.
    async fn update<T>(
        &self,
        name: &str,
        mut change: impl FnMut(&mut Lease, jiff::Timestamp) -> (T, bool),
    ) -> Result<T, LeaseError> {
        loop {
            let current = self
                .api
                .get_opt(name)
                .await
                .map_err(|e| self.error(name, "reading", e))?;
            let now = jiff::Timestamp::now();
            let exists = current.is_some();
            let mut lease = current.unwrap_or_else(|| Lease {
                metadata: ObjectMeta {
                    name: Some(name.to_owned()),
                    namespace: Some(self.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec::default()),
            });
            let (result, write) = change(&mut lease, now);
            if !write {
                return Ok(result);
            }
            let written = if exists {
                self.api.replace(name, &PostParams::default(), &lease).await
            } else {
                self.api.create(&PostParams::default(), &lease).await
            };
            match written {
                Ok(_) => return Ok(result),
                // Someone changed it first: decide again on the fresh object.
                Err(kube::Error::Api(status)) if status.code == 409 => continue,
                Err(error) => return Err(self.error(name, "writing", error)),
            }
        }
    }

    /// Take a ticket for a sync of `app` (naming `revision` when known), and
    /// the lock with it when it is free and `acquire` says we can sync now.
    pub async fn request(
        &self,
        app: &AppRef,
        revision: Option<&str>,
        acquire: bool,
    ) -> Result<(Claim, u64), LeaseError> {
        self.update(&lock_name(app), |lease, now| {
            let ticket = counter(lease, REQUESTED) + 1;
            set(lease, REQUESTED, ticket.to_string());
            set(lease, APPLICATION, app.to_string());
            if let Some(revision) = revision {
                set(lease, REQUESTED_REVISION, revision.to_owned());
            } else if let Some(annotations) = lease.metadata.annotations.as_mut() {
                annotations.remove(REQUESTED_REVISION);
            }
            let claim = if holder(lease).is_some() && !expired(lease, now) {
                Claim::Busy { ticket }
            } else if acquire {
                self.hold(lease, now, true);
                set(lease, SERVING, ticket.to_string());
                Claim::Acquired
            } else {
                Claim::Free
            };
            ((claim, ticket), true)
        })
        .await
    }

    /// For a waiting `ticket`: covered by now, still busy, or ours to take
    /// (when `acquire` says we can sync now).
    pub async fn check(
        &self,
        app: &AppRef,
        ticket: u64,
        acquire: bool,
    ) -> Result<Claim, LeaseError> {
        self.update(&lock_name(app), |lease, now| {
            if counter(lease, SERVED) >= ticket {
                (Claim::Covered, false)
            } else if holder(lease).is_some() && !expired(lease, now) {
                (Claim::Busy { ticket }, false)
            } else if !acquire {
                (Claim::Free, false)
            } else {
                self.hold(lease, now, true);
                let requested = counter(lease, REQUESTED);
                set(lease, SERVING, requested.to_string());
                (Claim::Acquired, true)
            }
        })
        .await
    }

    /// Renew the lock of `app`, learning whether a newer request waits.
    pub async fn renew(&self, app: &AppRef) -> Result<Renewal, LeaseError> {
        self.update(&lock_name(app), |lease, now| {
            if holder(lease) != Some(self.identity.as_str()) {
                return (Renewal::Lost, false);
            }
            self.hold(lease, now, false);
            (
                Renewal::Held {
                    newer: newer(lease),
                },
                true,
            )
        })
        .await
    }

    /// What [`Leases::renew`] would say, without writing: a read between
    /// renewals, so the holder hears of newer requests often without
    /// renewing more often.
    pub async fn peek(&self, app: &AppRef) -> Result<Renewal, LeaseError> {
        let name = lock_name(app);
        let lease = self
            .api
            .get_opt(&name)
            .await
            .map_err(|e| self.error(&name, "reading", e))?;
        Ok(match lease {
            Some(lease) if holder(&lease) == Some(self.identity.as_str()) => Renewal::Held {
                newer: newer(&lease),
            },
            _ => Renewal::Lost,
        })
    }

    /// The current sync of `app` finished (its status is written): mark its
    /// requests served, and keep the lock for another sync when newer
    /// requests arrived meanwhile.
    pub async fn finish(&self, app: &AppRef) -> Result<Finish, LeaseError> {
        self.update(&lock_name(app), |lease, now| {
            if holder(lease) != Some(self.identity.as_str()) {
                // Expired and taken over: the new holder syncs after us.
                return (Finish::Released, false);
            }
            let serving = counter(lease, SERVING);
            let requested = counter(lease, REQUESTED);
            set(
                lease,
                SERVED,
                counter(lease, SERVED).max(serving).to_string(),
            );
            if requested > serving {
                set(lease, SERVING, requested.to_string());
                self.hold(lease, now, false);
                (Finish::Again, true)
            } else {
                release(lease);
                (Finish::Released, true)
            }
        })
        .await
    }

    /// Give the lock of `app` up without serving anything (the sync failed
    /// transiently and will be retried).
    pub async fn abandon(&self, app: &AppRef) -> Result<(), LeaseError> {
        self.resign(&lock_name(app)).await
    }

    /// Delete the sync locks of Applications `exists` says are gone, unless
    /// held; returns how many. (A job for a deleted Application that still
    /// waits recreates its lock, finds the Application gone, and drops.)
    pub async fn collect(&self, exists: impl Fn(&AppRef) -> bool) -> Result<usize, LeaseError> {
        let leases = self
            .api
            .list(&kube::api::ListParams::default())
            .await
            .map_err(|e| self.error("*", "listing", e))?;
        let now = jiff::Timestamp::now();
        let mut removed = 0;
        for lease in leases.items {
            let Some(app) = lease
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(APPLICATION))
                .and_then(|v| v.split_once('/'))
                .map(|(namespace, name)| AppRef {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                })
            else {
                continue;
            };
            let held = holder(&lease).is_some() && !expired(&lease, now);
            if held || exists(&app) {
                continue;
            }
            let Some(name) = lease.metadata.name.as_deref() else {
                continue;
            };
            // Only this version: a Lease taken meanwhile is left alone.
            let params = kube::api::DeleteParams {
                preconditions: Some(kube::api::Preconditions {
                    resource_version: lease.metadata.resource_version.clone(),
                    uid: None,
                }),
                ..kube::api::DeleteParams::default()
            };
            match self.api.delete(name, &params).await {
                Ok(_) => removed += 1,
                Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {}
                Err(error) => return Err(self.error(name, "deleting", error)),
            }
        }
        Ok(removed)
    }

    /// Try to become or stay the holder of Lease `name` (leader election).
    /// True while we hold it.
    pub async fn lead(&self, name: &str) -> Result<bool, LeaseError> {
        self.update(name, |lease, now| {
            let ours = holder(lease) == Some(self.identity.as_str());
            if ours || holder(lease).is_none() || expired(lease, now) {
                self.hold(lease, now, !ours);
                (true, true)
            } else {
                (false, false)
            }
        })
        .await
    }

    /// Step down as holder of Lease `name` (a clean shutdown, or a sync
    /// given up), so someone else takes over at once instead of after the
    /// expiry; counters stay as they are.
    pub async fn resign(&self, name: &str) -> Result<(), LeaseError> {
        self.update(name, |lease, _| {
            if holder(lease) != Some(self.identity.as_str()) {
                return ((), false);
            }
            release(lease);
            ((), true)
        })
        .await
    }
}

fn release(lease: &mut Lease) {
    if let Some(spec) = lease.spec.as_mut() {
        spec.holder_identity = None;
        spec.renew_time = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_names_are_unambiguous_and_bounded() {
        let app = AppRef {
            namespace: "team-a".into(),
            name: "web".into(),
        };
        assert_eq!(lock_name(&app), "sync.team-a.web");
        let long = AppRef {
            namespace: "ns".into(),
            name: "x".repeat(253),
        };
        let name = lock_name(&long);
        assert!(name.len() <= 253 && name.starts_with("sync.ns."), "{name}");
        assert_eq!(name, lock_name(&long), "stable");
    }
}
