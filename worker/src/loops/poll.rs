//! The fallback poll and manual triggers, run by one worker at a time (the
//! holder of a Lease; the others stand by and take over within the Lease's
//! duration when it dies).
//!
//! Every interval (with jitter) the leader asks each repository once for its
//! refs (`ls-remote`: one round trip, nothing fetched) and enqueues a sync
//! job for the Applications whose branch head moved past their synced
//! revision, whose last sync did not succeed, or that self-heal. A lost
//! webhook is so caught within one interval, and a cycle costs one remote
//! call per repository however many Applications share it.
//!
//! Manual triggers: the annotation `pushsync.dev/sync` (sync now, even
//! without automated sync; its value may name resources, pruning and a
//! revision, see [`pushsync_proto::SyncRequest`]), `pushsync.dev/refresh` (compare now, apply as
//! the policy says) or `pushsync.dev/rollback: <revision>` (back to a
//! revision of `status.history`, automated sync off) on an Application
//! becomes a job on the same queue; the leader then removes the annotation.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use kube::api::{Api, Patch, PatchParams};
use pushsync_api::{Application, OperationPhase};
use pushsync_proto::{AppRef, SyncTrigger};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::context::{Shared, app_ref, job};
use crate::git::RemoteHeads;

pub use pushsync_api::{REFRESH_ANNOTATION, ROLLBACK_ANNOTATION, SYNC_ANNOTATION};

/// How the poller runs.
#[derive(Debug, Clone)]
pub struct PollSettings {
    /// Time between poll cycles; zero turns polling off (manual triggers
    /// still work).
    pub interval: Duration,
    /// Up to this fraction of the interval is added at random, so several
    /// installations do not poll a Git host in step.
    pub jitter: f64,
    /// The leader-election Lease.
    pub lease: String,
    /// How often the leader renews and looks for manual triggers, and a
    /// standby tries to take over.
    pub tick: Duration,
    /// Applications not compared with the cluster for this long are
    /// refreshed by the poll, so drift is reported even without selfHeal
    /// (selfHeal Applications are compared every cycle).
    pub drift_interval: Duration,
}

impl Default for PollSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(600),
            jitter: 0.1,
            lease: "pushsync-poller".to_owned(),
            tick: Duration::from_secs(1),
            drift_interval: Duration::from_secs(1800),
        }
    }
}

/// What a poll cycle did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cycle {
    /// Repositories asked.
    pub repositories: usize,
    /// Repositories that could not be asked (retried next cycle).
    pub unreachable: usize,
    /// Applications considered.
    pub applications: usize,
    /// Sync jobs enqueued.
    pub enqueued: usize,
    /// Whether the jobs were published (confirmed by the broker).
    pub published: bool,
}

/// The poller.
#[derive(Clone)]
pub struct Poller {
    shared: Shared,
    settings: PollSettings,
    /// The resourceVersion of each Application whose trigger was handled, so
    /// an index that has not yet seen the annotation's removal does not
    /// enqueue it twice.
    handled: Arc<std::sync::Mutex<std::collections::HashMap<AppRef, String>>>,
}

impl std::fmt::Debug for Poller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poller")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Whether the poll should enqueue a sync of `app`, given its remote's refs:
/// never synced, the head moved, the last sync did not succeed, selfHeal, or
/// not compared with the cluster for `drift_interval`.
pub fn needs_sync(app: &Application, heads: &RemoteHeads, drift_interval: Duration) -> bool {
    let Some(status) = &app.status else {
        return true;
    };
    let head = heads.commit_of(&app.spec.source.target_revision);
    let synced = status.sync.as_ref().and_then(|s| s.revision.as_ref());
    let failed = status
        .operation_state
        .as_ref()
        .is_some_and(|o| o.phase != OperationPhase::Succeeded);
    let self_heal = app.spec.self_heals();
    let stale = status
        .reconciled_at
        .as_deref()
        .and_then(|at| at.parse::<jiff::Timestamp>().ok())
        .is_none_or(|at| {
            jiff::Timestamp::now()
                .duration_since(at)
                .unsigned_abs()
                .ge(&drift_interval)
        });
    head.is_none() || head.as_ref() != synced || failed || self_heal || stale
}

impl Poller {
    /// A poller over `shared`'s index, git cache and queue.
    pub fn new(shared: Shared, settings: PollSettings) -> Self {
        Self {
            shared,
            settings,
            handled: Arc::default(),
        }
    }

    /// Campaign, and while leading poll and handle manual triggers, until
    /// `stop` (a leader then resigns so a standby takes over at once).
    pub async fn run(self, stop: CancellationToken) {
        let mut leading = false;
        let mut next_poll = Instant::now();
        loop {
            let now_leading = match self.shared.leases.lead(&self.settings.lease).await {
                Ok(leading) => leading,
                // Unknown: keep the last answer rather than flap (a Lease
                // that really expired shows as "not ours" once the API answers;
                // meanwhile two pollers only mean duplicate, harmless jobs).
                Err(error) => {
                    tracing::warn!(error = %error, "the poller's Lease could not be read or renewed");
                    leading
                }
            };
            if now_leading != leading {
                leading = now_leading;
                self.shared.metrics.poll_leader.set(i64::from(leading));
                self.shared.leadership.set(leading);
                if leading {
                    tracing::info!(
                        identity = self.shared.leases.identity(),
                        "this worker is now the poller"
                    );
                    // Catch what was missed while nobody polled.
                    next_poll = Instant::now();
                } else {
                    tracing::info!("this worker is no longer the poller");
                }
            }
            if leading {
                self.triggers().await;
                if !self.settings.interval.is_zero() && Instant::now() >= next_poll {
                    // Keep renewing while the cycle runs: a slow Git host must
                    // not cost the leadership.
                    let cycle = self.cycle();
                    tokio::pin!(cycle);
                    let cycle = loop {
                        tokio::select! {
                            cycle = &mut cycle => break cycle,
                            () = tokio::time::sleep(self.settings.tick) => {
                                if let Err(error) = self.shared.leases.lead(&self.settings.lease).await {
                                    tracing::warn!(error = %error, "renewing the poller's Lease during a cycle failed");
                                }
                            }
                        }
                    };
                    // Jobs that could not be published are worth another try soon.
                    next_poll = Instant::now()
                        + if cycle.published {
                            self.jittered()
                        } else {
                            (self.settings.tick * 5).min(self.settings.interval)
                        };
                    tracing::info!(
                        repositories = cycle.repositories,
                        unreachable = cycle.unreachable,
                        applications = cycle.applications,
                        enqueued = cycle.enqueued,
                        published = cycle.published,
                        "poll cycle done"
                    );
                }
            }
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(self.settings.tick) => {}
            }
        }
        if leading {
            if let Err(error) = self.shared.leases.resign(&self.settings.lease).await {
                tracing::warn!(error = %error, "resigning as the poller failed; a standby takes over when the Lease expires");
            }
            self.shared.metrics.poll_leader.set(0);
            self.shared.leadership.set(false);
        }
    }

    fn jittered(&self) -> Duration {
        let nanos = u64::from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos()),
        );
        let fraction = (nanos % 1000) as f64 / 1000.0 * self.settings.jitter.clamp(0.0, 1.0);
        self.settings.interval.mul_f64(1.0 + fraction)
    }

    /// One poll cycle: one ls-remote per repository, jobs for what moved.
    pub async fn cycle(&self) -> Cycle {
        let apps = self.shared.index.applications();
        let mut by_url: BTreeMap<String, Vec<Arc<Application>>> = BTreeMap::new();
        for app in &apps {
            by_url
                .entry(app.spec.source.repo_url.clone())
                .or_default()
                .push(app.clone());
        }
        let mut cycle = Cycle {
            repositories: by_url.len(),
            applications: apps.len(),
            ..Cycle::default()
        };
        let id = format!("poll-{}", jiff::Timestamp::now().as_millisecond());
        let asks: Vec<_> = by_url
            .into_iter()
            .map(|(url, apps)| async move {
                let heads = self.shared.git.heads(&url).await;
                (url, apps, heads)
            })
            .collect();
        let mut answers = futures_util::stream::iter(asks).buffer_unordered(8);
        let mut jobs = Vec::new();
        while let Some((url, apps, heads)) = answers.next().await {
            let heads = match heads {
                Ok(heads) => heads,
                Err(error) => {
                    tracing::warn!(repository = %pushsync_proto::redact_url(&url), error = %error, "the poll could not reach a repository");
                    cycle.unreachable += 1;
                    continue;
                }
            };
            jobs.extend(
                apps.iter()
                    .filter(|app| needs_sync(app, &heads, self.settings.drift_interval))
                    .filter_map(|app| {
                        job(app_ref(app)?, SyncTrigger::Poll, &id, &self.shared.topology)
                    }),
            );
        }
        drop(answers);
        cycle.enqueued = jobs.len();
        // Sync locks of Applications that were deleted.
        let known: std::collections::HashSet<AppRef> =
            apps.iter().filter_map(|app| app_ref(app)).collect();
        match self.shared.leases.collect(|app| known.contains(app)).await {
            Ok(0) => {}
            Ok(removed) => {
                tracing::info!(removed, "removed the sync locks of deleted Applications")
            }
            Err(error) => tracing::warn!(error = %error, "collecting stale sync locks failed"),
        }
        cycle.published = self.shared.enqueue(&jobs).await;
        self.shared
            .metrics
            .polls
            .with_label_values(&[if cycle.published && cycle.unreachable == 0 {
                "ran"
            } else {
                "failed"
            }])
            .inc();
        cycle
    }

    /// Turn `pushsync.dev/sync` and `pushsync.dev/refresh` annotations into
    /// jobs, then remove them.
    pub async fn triggers(&self) {
        for app in self.shared.index.applications() {
            let annotations = app.metadata.annotations.as_ref();
            let asked = annotations.and_then(|a| a.get(SYNC_ANNOTATION));
            let sync = asked.is_some();
            let refresh = annotations.is_some_and(|a| a.contains_key(REFRESH_ANNOTATION));
            let rollback = annotations
                .and_then(|a| a.get(ROLLBACK_ANNOTATION))
                .cloned();
            if !(sync || refresh || rollback.is_some()) {
                continue;
            }
            let Some(target) = app_ref(&app) else {
                continue;
            };
            let version = app.metadata.resource_version.clone().unwrap_or_default();
            if let Ok(handled) = self.handled.lock()
                && handled.get(&target) == Some(&version)
            {
                continue;
            }
            match asked
                .map(|value| pushsync_proto::SyncRequest::parse(value))
                .transpose()
            {
                Ok(asked) => {
                    let asked = asked.unwrap_or_default();
                    let trigger = SyncTrigger::Manual {
                        requested_by: Some("annotation".to_owned()),
                        refresh_only: !sync && rollback.is_none(),
                        rollback: rollback.is_some(),
                        resources: asked.resources,
                        prune: asked.prune,
                        revision: rollback.or(asked.revision),
                    };
                    let id = format!("manual-{}", jiff::Timestamp::now().as_millisecond());
                    let Some(outgoing) = job(target.clone(), trigger, &id, &self.shared.topology)
                    else {
                        continue;
                    };
                    if !self.shared.enqueue(&[outgoing]).await {
                        return;
                    }
                    tracing::info!(application = %target, sync, "manual trigger enqueued");
                }
                // Bad input changes nothing but the annotation, which goes,
                // so it is not refused again every cycle.
                Err(why) => {
                    let why = format!("{SYNC_ANNOTATION} refused: {why}");
                    tracing::warn!(application = %target, "{why}");
                    crate::events::Recorder::new(
                        self.shared.client.clone(),
                        self.shared.leases.identity(),
                    )
                    .record(&app, crate::events::Kind::Warning, "SyncRefused", &why)
                    .await;
                }
            }
            if let Ok(mut handled) = self.handled.lock() {
                handled.insert(target.clone(), version);
            }
            let api = Api::<Application>::namespaced(self.shared.client.clone(), &target.namespace);
            if let Err(error) = remove_triggers(&api, &app).await {
                // The job is out; the annotation will ask again (a harmless duplicate).
                tracing::warn!(application = %target, error = %error, "removing the trigger annotation failed");
            }
        }
    }
}

/// Remove the trigger annotations `app` carried, and only those: the removal
/// is a compare-and-set on the resourceVersion, retried after a conflict
/// only while the annotations still say what was read (a status write
/// meanwhile); a request made since (a changed value) is left for the next
/// cycle, never dropped.
async fn remove_triggers(api: &Api<Application>, app: &Application) -> Result<(), kube::Error> {
    let keys = [SYNC_ANNOTATION, REFRESH_ANNOTATION, ROLLBACK_ANNOTATION];
    let triggers = |app: &Application| -> Vec<Option<String>> {
        let annotations = app.metadata.annotations.as_ref();
        keys.iter()
            .map(|k| annotations.and_then(|a| a.get(*k)).cloned())
            .collect()
    };
    let read = triggers(app);
    let name = app.metadata.name.clone().unwrap_or_default();
    let mut version = app.metadata.resource_version.clone();
    for _ in 0..3 {
        let patch = json!({"metadata": {
            "resourceVersion": version,
            "annotations": {SYNC_ANNOTATION: null, REFRESH_ANNOTATION: null, ROLLBACK_ANNOTATION: null},
        }});
        match api
            .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Err(kube::Error::Api(status)) if status.code == 409 => {
                let Some(now) = api.get_opt(&name).await? else {
                    return Ok(());
                };
                if triggers(&now) != read {
                    return Ok(());
                }
                version = now.metadata.resource_version.clone();
            }
            other => return other.map(drop),
        }
    }
    Ok(())
}
