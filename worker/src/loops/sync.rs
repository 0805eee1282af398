//! The sync loop: sync jobs from the queue, each run under its
//! Application's lock (see [`crate::lease`]), at most `max_syncs` at a time
//! in this process, the status written before the job is acknowledged.
//!
//! A job's life:
//! 1. take a sync slot, then a ticket on the Application's lock;
//! 2. lock busy (another worker, or another job here, is syncing it): give
//!    the slot back and check the lock every `lock_poll` until a newer sync
//!    covered the ticket (acknowledge: coalesced) or the lock is free;
//! 3. lock held: read the Application afresh, sync, write status, and sync
//!    again while requests arrived meanwhile; a renewal task keeps the Lease
//!    and tells the running sync about newer commits, so a wait for health
//!    that a newer commit makes pointless is abandoned;
//! 4. a transient failure gives the lock up and retries after the
//!    Application's backoff (`syncPolicy.retry`, or the worker's default);
//!    once the attempts are spent the job is dead-lettered and the
//!    Application says why.

mod deleting;
mod renew;
mod report;

use std::sync::Arc;
use std::time::Duration;

use kube::api::Api;
use pushsync_api::{Application, OperationPhase, SyncStatusCode};
use pushsync_broker::Delivery;
use pushsync_proto::{AppRef, Message, SyncJob, SyncTrigger};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use pushsync_service::error_chain;

use crate::context::Shared;
use crate::lease::{Claim, Finish, LeaseError};
use crate::retry::RetryPolicy;
use crate::status::StatusError;
use crate::sync::{Request, SyncContext, Transient, sync_with};

use renew::{GaugeGuard, Running, renew};

/// How the sync side runs.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// Syncs running at once in this process.
    pub max_syncs: usize,
    /// Jobs held at once: running, waiting for a lock, or waiting to retry.
    pub prefetch: u16,
    /// How often a job waiting for another sync of its Application checks.
    pub lock_poll: Duration,
    /// Retries for Applications that name no `syncPolicy.retry`.
    pub retry: RetryPolicy,
    /// On shutdown, how long running syncs may take to finish.
    pub drain: Duration,
    /// Longest a job waits for its Application's lock while holding its
    /// delivery; then it is published again to come back later. Keeps
    /// deliveries well within RabbitMQ's `consumer_timeout` (30 min).
    pub max_wait: Duration,
}

impl Default for SyncSettings {
    fn default() -> Self {
        Self {
            max_syncs: 4,
            prefetch: 32,
            lock_poll: Duration::from_secs(1),
            retry: RetryPolicy::default(),
            drain: Duration::from_secs(30),
            max_wait: Duration::from_secs(600),
        }
    }
}

/// Why an attempt failed (all transient: worth another attempt).
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("the Application's lock")]
    Lease(#[from] LeaseError),
    #[error("reading the Application failed")]
    Read(#[source] kube::Error),
    #[error("the sync failed")]
    Sync(#[from] Transient),
    #[error("writing the status failed")]
    Status(#[from] StatusError),
    #[error("the Application's lock expired during the sync (renewals failed)")]
    LockLost,
    #[error("deleting the Application's objects is not finished: {0}")]
    Finalizing(String),
}

impl Failure {
    /// What the Application's status may say about it (a git failure's
    /// cause stays in the log; see [`crate::git::GitError::public_message`]).
    fn public_message(&self) -> String {
        match self {
            Self::Sync(Transient::Git(error)) => error.public_message(),
            other => error_chain(other),
        }
    }

    /// A bounded label for logs.
    fn kind(&self) -> &'static str {
        match self {
            Self::Lease(_) => "lease",
            Self::Read(_) => "read",
            Self::Sync(error) => error.kind(),
            Self::Status(_) => "status",
            Self::LockLost => "lock_lost",
            Self::Finalizing(_) => "finalizing",
        }
    }
}

/// How a job ended, when it did not fail.
enum Done {
    /// Synced (and followed by syncs for requests made meanwhile).
    Synced,
    /// A sync that started after the job was requested finished.
    Covered,
    /// The Application no longer exists.
    Gone,
    /// The pushed commit is already synced.
    Stale,
    /// Waited for the Application's lock longer than `max_wait`: published
    /// again to come back later, so no delivery is held for long.
    Deferred,
    /// Shutting down: the job stays unacknowledged and is redelivered.
    Stopped,
}

/// The sync loop; cheap to clone.
#[derive(Clone)]
pub struct Syncer {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Shared,
    ctx: SyncContext,
    settings: SyncSettings,
    slots: Arc<Semaphore>,
    /// Jobs of this process waiting for an Application's lock, woken when a
    /// sync of it here finishes (other workers' syncs are seen by polling).
    waiters: std::sync::Mutex<std::collections::HashMap<AppRef, Arc<tokio::sync::Notify>>>,
    /// The running syncs of this process, by Application: a job that finds
    /// its Application's lock held here tells the sync of its revision at
    /// once (a wait for health it makes pointless ends now, not at the next
    /// renewal).
    running: std::sync::Mutex<std::collections::HashMap<AppRef, Announce>>,
}

/// Where newer revisions are announced to a running sync.
type Announce = tokio::sync::watch::Sender<Option<String>>;

/// Whether `app` is already synced at `revision`: a push job for it is stale.
fn deployed(app: &Application, revision: &str) -> bool {
    app.status.as_ref().is_some_and(|status| {
        status.sync.as_ref().is_some_and(|s| {
            s.status == SyncStatusCode::Synced && s.revision.as_deref() == Some(revision)
        }) && status
            .operation_state
            .as_ref()
            .is_none_or(|o| o.phase == OperationPhase::Succeeded)
    })
}

impl std::fmt::Debug for Syncer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Syncer")
            .field("settings", &self.inner.settings)
            .field("leases", &self.inner.shared.leases)
            .finish_non_exhaustive()
    }
}

impl Syncer {
    /// A sync loop over `shared`'s queue and cluster; `ctx` is what each
    /// sync needs.
    pub fn new(shared: Shared, ctx: SyncContext, settings: SyncSettings) -> Self {
        let slots = Arc::new(Semaphore::new(settings.max_syncs.max(1)));
        Self {
            inner: Arc::new(Inner {
                shared,
                ctx,
                settings,
                slots,
                waiters: Default::default(),
                running: Default::default(),
            }),
        }
    }

    /// Consume sync jobs until `stop`; jobs in hand then stop at their next
    /// wait and stay unacknowledged, so the broker hands them to another worker.
    pub async fn run(self, stop: CancellationToken) {
        let inner = &self.inner;
        let mut consumer = inner.shared.broker.consume(
            &inner.shared.topology.sync_jobs_queue(),
            &inner.shared.topology.jobs_exchange(),
            inner.settings.prefetch.max(1),
        );
        let mut jobs = tokio::task::JoinSet::new();
        loop {
            let delivery = tokio::select! {
                () = stop.cancelled() => break,
                delivery = consumer.next() => match delivery { Some(d) => d, None => break },
                Some(_) = jobs.join_next(), if !jobs.is_empty() => continue,
            };
            jobs.spawn(self.clone().handle(delivery, stop.clone()));
        }
        while jobs.join_next().await.is_some() {}
    }

    async fn handle(self, delivery: Delivery, stop: CancellationToken) {
        let inner = &self.inner;
        let job = match Message::decode(&delivery.body) {
            Ok(Message::SyncJobV1(job)) => job,
            other => {
                tracing::warn!(decoded = ?other.map(|m| m.schema()), "not a sync job; dead-lettering it");
                self.dead_letter(delivery).await;
                return;
            }
        };
        // Failures before this delivery (a job re-published to wait out its
        // backoff carries them), so the limit holds across re-publishes.
        let mut failures = job.failures;
        loop {
            let error = match self.attempt(&job, &stop).await {
                Ok(Done::Stopped) => return,
                Ok(done) => {
                    let result = match done {
                        Done::Synced => "synced",
                        Done::Covered => "coalesced",
                        Done::Stale => "stale",
                        Done::Deferred => "deferred",
                        _ => "gone",
                    };
                    inner
                        .shared
                        .metrics
                        .sync_jobs
                        .with_label_values(&[result])
                        .inc();
                    if let Err(error) = delivery.ack().await {
                        tracing::warn!(error = %error, "acknowledging failed; the job will be redelivered");
                    }
                    return;
                }
                Err(error) => error,
            };
            failures += 1;
            // The policy is spec: the index has it without asking the API.
            let default = inner.settings.retry;
            let policy = inner
                .shared
                .index
                .get(&job.application)
                .map_or(default, |app| RetryPolicy::of(&app, default));
            let message = error_chain(&error);
            let error_kind = error.kind();
            let Some(delay) = policy.delay(failures) else {
                tracing::error!(application = %job.application, failures, error_kind, error = %message, "giving up on this job; dead-lettering it");
                self.give_up(&job.application, failures, &error.public_message())
                    .await;
                self.dead_letter(delivery).await;
                return;
            };
            // Wait out the backoff in the broker, not here: a held delivery
            // counts against the prefetch and RabbitMQ's consumer timeout.
            match self.later(&job, failures, delay).await {
                Ok(waits) => {
                    tracing::warn!(application = %job.application, failures, error_kind, retry_in_ms = waits.as_millis() as u64, error = %message, "sync attempt failed; the job waits in a retry queue");
                    inner
                        .shared
                        .metrics
                        .sync_jobs
                        .with_label_values(&["retried"])
                        .inc();
                    if let Err(error) = delivery.ack().await {
                        tracing::warn!(error = %error, "acknowledging failed; the job will be redelivered (and also comes back from the retry queue)");
                    }
                    return;
                }
                Err(publish) => {
                    tracing::warn!(application = %job.application, failures, error_kind, retry_in_ms = delay.as_millis() as u64, error = %message, publish_error = %publish, "sync attempt failed; the retry queue is unavailable, retrying in place");
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    /// Where this process's jobs for `app` wait to be woken.
    fn waiter(&self, app: &AppRef) -> Arc<tokio::sync::Notify> {
        let Ok(mut waiters) = self.inner.waiters.lock() else {
            return Arc::default();
        };
        // Drop entries nobody else holds, so the map stays as small as the
        // set of Applications with jobs in flight here.
        if waiters.len() > 1024 {
            waiters.retain(|_, notify| Arc::strong_count(notify) > 1);
        }
        waiters.entry(app.clone()).or_default().clone()
    }

    /// The Application as the API server has it now (the index may lag).
    async fn read(&self, app: &AppRef) -> Result<Option<Application>, Failure> {
        Api::<Application>::namespaced(self.inner.shared.client.clone(), &app.namespace)
            .get_opt(&app.name)
            .await
            .map_err(Failure::Read)
    }

    /// Wait for a slot and the lock, then sync; or find the job covered.
    async fn attempt(&self, job: &SyncJob, stop: &CancellationToken) -> Result<Done, Failure> {
        let inner = &self.inner;
        let revision = match &job.trigger {
            SyncTrigger::Push { revision, .. } => revision.as_deref(),
            _ => None,
        };
        if let Some(revision) = revision
            && inner
                .shared
                .index
                .get(&job.application)
                .is_some_and(|app| deployed(&app, revision))
        {
            return Ok(Done::Stale);
        }
        // The ticket is taken on arrival, slot or not, so requests that
        // arrive while every slot is busy are still covered by a sync that
        // starts later; the lock itself is taken only with a slot in hand.
        let mut ticket = None;
        let mut slot = None;
        let waiting_since = tokio::time::Instant::now();
        loop {
            if slot.is_none() {
                slot = inner.slots.clone().try_acquire_owned().ok();
            }
            let acquire = slot.is_some();
            let claim = match ticket {
                None => {
                    let (claim, taken) = inner
                        .shared
                        .leases
                        .request(&job.application, revision, acquire)
                        .await?;
                    ticket = Some(taken);
                    claim
                }
                Some(ticket) => {
                    inner
                        .shared
                        .leases
                        .check(&job.application, ticket, acquire)
                        .await?
                }
            };
            match claim {
                Claim::Covered => return Ok(Done::Covered),
                Claim::Acquired => {
                    let _slot = slot;
                    return self.hold(job, stop).await;
                }
                // Free but no slot: wait for one, then try at once.
                Claim::Free => {
                    slot = tokio::select! {
                        () = stop.cancelled() => return Ok(Done::Stopped),
                        slot = inner.slots.clone().acquire_owned() => match slot {
                            Ok(slot) => Some(slot),
                            Err(_) => return Ok(Done::Stopped),
                        },
                    };
                }
                Claim::Busy { .. } => {
                    slot = None;
                    if waiting_since.elapsed() >= inner.settings.max_wait
                        && self
                            .later(job, job.failures, inner.settings.lock_poll)
                            .await
                            .is_ok()
                    {
                        return Ok(Done::Deferred);
                    }
                    if let Some(revision) = revision {
                        self.announce(&job.application, revision);
                    }
                    let local = self.waiter(&job.application);
                    tokio::select! {
                        () = stop.cancelled() => return Ok(Done::Stopped),
                        () = local.notified() => {}
                        () = tokio::time::sleep(inner.settings.lock_poll) => {}
                    }
                }
            }
        }
    }

    /// Holding the lock: sync until no request is left, renewing meanwhile.
    async fn hold(&self, job: &SyncJob, stop: &CancellationToken) -> Result<Done, Failure> {
        let inner = &self.inner;
        let app_ref = &job.application;
        let (announce, newer, lost, _renewer) = renew(
            inner.shared.leases.clone(),
            app_ref.clone(),
            inner.settings.lock_poll,
        );
        if let Ok(mut running) = inner.running.lock() {
            running.insert(app_ref.clone(), announce.clone());
        }
        let _running = Running {
            inner: inner.clone(),
            app: app_ref.clone(),
            announce,
        };
        let mut manual = matches!(
            job.trigger,
            SyncTrigger::Manual {
                refresh_only: false,
                ..
            }
        );
        let push_received_at = match &job.trigger {
            SyncTrigger::Push { received_at, .. } => Some(*received_at),
            _ => None,
        };
        let (mut revision, rollback, resources, prune) = match &job.trigger {
            SyncTrigger::Manual {
                revision,
                rollback,
                resources,
                prune,
                ..
            } => (revision.clone(), *rollback, resources.clone(), *prune),
            _ => (None, false, Vec::new(), None),
        };
        inner.shared.metrics.syncs_running.inc();
        let _running = GaugeGuard(inner.shared.metrics.syncs_running.clone());
        // The push-to-sync lag is the first sync's; follow-ups serve others.
        let mut follow_up = false;
        loop {
            let app = match self.read(app_ref).await {
                Ok(Some(app)) => app,
                Ok(None) => {
                    tracing::info!(application = %app_ref, "the Application no longer exists; dropping its job");
                    inner.shared.leases.finish(app_ref).await?;
                    return Ok(Done::Gone);
                }
                Err(error) => {
                    let _ = inner.shared.leases.abandon(app_ref).await;
                    return Err(error);
                }
            };
            if crate::sync::finalize::deleting(&app) {
                return self.finalize(&app, &lost, stop).await;
            }
            let app = match crate::rollback::prepare(
                &inner.shared.client,
                app,
                // A follow-up serves later requests, which name no revision.
                revision.as_deref().filter(|_| !follow_up),
                rollback && !follow_up,
            )
            .await
            {
                Ok(crate::rollback::Prepared::Go(app, resolved)) => {
                    if resolved.is_some() {
                        revision = resolved;
                    }
                    app
                }
                Ok(crate::rollback::Prepared::Refused(app, reason, why)) => {
                    self.events()
                        .record(&app, crate::events::Kind::Warning, reason, &why)
                        .await;
                    inner.shared.leases.finish(app_ref).await?;
                    return Ok(Done::Synced);
                }
                Err(error) => {
                    let _ = inner.shared.leases.abandon(app_ref).await;
                    return Err(Failure::Read(error));
                }
            };
            if let Some(received_at) = push_received_at
                && !follow_up
            {
                let lag = jiff::Timestamp::now()
                    .duration_since(received_at)
                    .as_secs_f64();
                inner
                    .shared
                    .metrics
                    .push_to_sync_start
                    .observe(lag.max(0.0));
            }
            let named = revision.is_some() && !follow_up;
            let request = Request {
                manual,
                push_received_at,
                // A sync of a named revision (a rollback) is not superseded
                // by the branch moving on: it finishes first.
                newer: if named {
                    crate::sync::Newer::default()
                } else {
                    newer.clone()
                },
                // The asked-for revision is the first sync's; follow-ups
                // serve later requests, which name none.
                revision: revision.clone().filter(|_| !follow_up),
                resources: if follow_up {
                    Vec::new()
                } else {
                    resources.clone()
                },
                prune: prune.filter(|_| !follow_up),
            };
            let started = std::time::Instant::now();
            let outcome = tokio::select! {
                outcome = sync_with(&inner.ctx, &app, &request) => outcome,
                () = lost.cancelled() => return Err(Failure::LockLost),
                // Shutting down: a running sync gets `drain` to finish, then
                // stops; the lock is given up and the job redelivered.
                () = async {
                    stop.cancelled().await;
                    tokio::time::sleep(inner.settings.drain).await;
                } => {
                    tracing::warn!(application = %app_ref, "shutting down mid-sync; the job goes back to the queue");
                    let _ = inner.shared.leases.abandon(app_ref).await;
                    return Ok(Done::Stopped);
                }
            };
            inner
                .shared
                .metrics
                .sync_duration
                .observe(started.elapsed().as_secs_f64());
            let outcome = match outcome {
                Ok(outcome) => outcome,
                Err(error) => {
                    inner
                        .shared
                        .metrics
                        .syncs
                        .with_label_values(&["transient"])
                        .inc();
                    let _ = inner.shared.leases.abandon(app_ref).await;
                    return Err(error.into());
                }
            };
            self.observe(app_ref, &outcome);
            // The job is done only once its status is written.
            if let Err(error) = crate::status::write(&inner.shared.client, &app, &outcome).await {
                let _ = inner.shared.leases.abandon(app_ref).await;
                return Err(error.into());
            }
            self.events().outcome(&app, &outcome).await;
            let finished = inner.shared.leases.finish(app_ref).await?;
            self.waiter(app_ref).notify_waiters();
            match finished {
                Finish::Released => return Ok(Done::Synced),
                Finish::Again => {
                    tracing::debug!(application = %app_ref, "requests arrived during the sync; syncing again");
                    manual = false;
                    follow_up = true;
                }
            }
        }
    }
}
