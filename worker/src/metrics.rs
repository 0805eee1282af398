//! The worker's Prometheus metrics (served by [`crate::http`]).

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Push events by result (`dispatched`, `undecodable`, `publish_failed`).
pub const PUSH_EVENTS_TOTAL: &str = "pushsync_worker_push_events_total";
/// Sync jobs published.
pub const SYNC_JOBS_PUBLISHED_TOTAL: &str = "pushsync_worker_sync_jobs_published_total";
/// Syncs by outcome (`succeeded`, `failed`, `transient`).
pub const SYNCS_TOTAL: &str = "pushsync_worker_syncs_total";
/// Duration of a sync, start to outcome.
pub const SYNC_DURATION_SECONDS: &str = "pushsync_worker_sync_duration_seconds";
/// Time from the receiver accepting a push to the start of its sync.
pub const PUSH_TO_SYNC_START_SECONDS: &str = "pushsync_worker_push_to_sync_start_seconds";
/// Resources by result of a sync (`synced`, `pruned`, `prune_skipped`).
pub const RESOURCES_TOTAL: &str = "pushsync_worker_resources_total";
/// Messages sent to the dead-letter queue.
pub const DEAD_LETTERED_TOTAL: &str = "pushsync_worker_dead_lettered_total";
/// Time per sync phase (`fetch`, `render`, `diff`, `apply`, `health`).
pub const SYNC_PHASE_DURATION_SECONDS: &str = "pushsync_worker_sync_phase_duration_seconds";
/// Sync jobs by how they ended (`synced`, `coalesced`, `stale`, `gone`,
/// `retried` (sent to a retry queue), `deferred` (lock busy too long),
/// `dead_lettered`).
pub const SYNC_JOBS_TOTAL: &str = "pushsync_worker_sync_jobs_total";
/// Syncs running now in this worker.
pub const SYNCS_RUNNING: &str = "pushsync_worker_syncs_running";
/// Duration of git fetches (only when the remote had new commits).
pub const GIT_FETCH_DURATION_SECONDS: &str = "pushsync_worker_git_fetch_duration_seconds";
/// Bytes received by git fetches.
pub const GIT_FETCH_BYTES_TOTAL: &str = "pushsync_worker_git_fetch_bytes_total";
/// Bytes the git cache holds on disk (after the last fetch).
pub const GIT_CACHE_BYTES: &str = "pushsync_worker_git_cache_bytes";
/// Cached repositories evicted to keep the git cache within its budget.
pub const GIT_CACHE_EVICTIONS_TOTAL: &str = "pushsync_worker_git_cache_evictions_total";
/// Applications by sync and health status, as this worker's index sees them.
pub const APPLICATIONS: &str = "pushsync_worker_applications";
/// Fallback poll cycles by result (`ran`, `failed`).
pub const POLLS_TOTAL: &str = "pushsync_worker_polls_total";
/// Whether this worker is the active poller (1) or a standby (0).
pub const POLL_LEADER: &str = "pushsync_worker_poll_leader";
/// The renderers found at start-up, by tool and version (constant 1).
pub const TOOL_INFO: &str = "pushsync_worker_tool_info";
/// Constant 1, labelled with the worker's version.
pub const BUILD_INFO: &str = "pushsync_worker_build_info";

/// Handles to every metric, in a registry of their own.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// See [`PUSH_EVENTS_TOTAL`].
    pub push_events: IntCounterVec,
    /// See [`SYNC_JOBS_PUBLISHED_TOTAL`].
    pub sync_jobs_published: IntCounter,
    /// See [`SYNCS_TOTAL`].
    pub syncs: IntCounterVec,
    /// See [`SYNC_DURATION_SECONDS`].
    pub sync_duration: Histogram,
    /// See [`PUSH_TO_SYNC_START_SECONDS`].
    pub push_to_sync_start: Histogram,
    /// See [`RESOURCES_TOTAL`].
    pub resources: IntCounterVec,
    /// See [`DEAD_LETTERED_TOTAL`].
    pub dead_lettered: IntCounter,
    /// See [`SYNC_PHASE_DURATION_SECONDS`].
    pub sync_phase_duration: HistogramVec,
    /// See [`SYNC_JOBS_TOTAL`].
    pub sync_jobs: IntCounterVec,
    /// See [`SYNCS_RUNNING`].
    pub syncs_running: IntGauge,
    /// See [`GIT_FETCH_DURATION_SECONDS`].
    pub git_fetch_duration: Histogram,
    /// See [`GIT_FETCH_BYTES_TOTAL`].
    pub git_fetch_bytes: IntCounter,
    /// See [`GIT_CACHE_BYTES`].
    pub git_cache_bytes: IntGauge,
    /// See [`GIT_CACHE_EVICTIONS_TOTAL`].
    pub git_cache_evictions: IntCounter,
    /// See [`APPLICATIONS`].
    pub applications: IntGaugeVec,
    /// See [`POLLS_TOTAL`].
    pub polls: IntCounterVec,
    /// See [`POLL_LEADER`].
    pub poll_leader: IntGauge,
    /// See [`TOOL_INFO`].
    pub tool_info: IntGaugeVec,
}

impl Metrics {
    /// Create and register every metric.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let push_events = IntCounterVec::new(
            Opts::new(PUSH_EVENTS_TOTAL, "Push events consumed, by result."),
            &["result"],
        )?;
        let sync_jobs_published = IntCounter::new(
            SYNC_JOBS_PUBLISHED_TOTAL,
            "Sync jobs published for affected Applications.",
        )?;
        let syncs = IntCounterVec::new(Opts::new(SYNCS_TOTAL, "Syncs by outcome."), &["outcome"])?;
        let buckets = vec![
            0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
        ];
        let sync_duration = Histogram::with_opts(
            HistogramOpts::new(SYNC_DURATION_SECONDS, "Duration of a sync.")
                .buckets(buckets.clone()),
        )?;
        let push_to_sync_start = Histogram::with_opts(
            HistogramOpts::new(
                PUSH_TO_SYNC_START_SECONDS,
                "Time from the receiver accepting a push to the start of its sync.",
            )
            .buckets(buckets.clone()),
        )?;
        let resources = IntCounterVec::new(
            Opts::new(RESOURCES_TOTAL, "Resources handled by syncs, by result."),
            &["result"],
        )?;
        let dead_lettered = IntCounter::new(
            DEAD_LETTERED_TOTAL,
            "Messages sent to the dead-letter queue.",
        )?;
        let sync_phase_duration = HistogramVec::new(
            HistogramOpts::new(SYNC_PHASE_DURATION_SECONDS, "Time per sync phase.")
                .buckets(buckets.clone()),
            &["phase"],
        )?;
        let sync_jobs = IntCounterVec::new(
            Opts::new(SYNC_JOBS_TOTAL, "Sync jobs by how they ended."),
            &["result"],
        )?;
        let syncs_running = IntGauge::new(SYNCS_RUNNING, "Syncs running now in this worker.")?;
        let git_fetch_duration = Histogram::with_opts(
            HistogramOpts::new(
                GIT_FETCH_DURATION_SECONDS,
                "Duration of git fetches of new commits.",
            )
            .buckets(buckets.clone()),
        )?;
        let git_fetch_bytes =
            IntCounter::new(GIT_FETCH_BYTES_TOTAL, "Bytes received by git fetches.")?;
        let git_cache_bytes = IntGauge::new(
            GIT_CACHE_BYTES,
            "Bytes the git cache holds on disk, as measured after the last fetch.",
        )?;
        let git_cache_evictions = IntCounter::new(
            GIT_CACHE_EVICTIONS_TOTAL,
            "Cached repositories evicted (least recently used first) to keep the git cache within PUSHSYNC_GIT_CACHE_MAX_BYTES.",
        )?;
        let applications = IntGaugeVec::new(
            Opts::new(
                APPLICATIONS,
                "Applications by sync and health status (every worker reports the whole view: aggregate with max).",
            ),
            &["sync_status", "health_status"],
        )?;
        let polls = IntCounterVec::new(
            Opts::new(POLLS_TOTAL, "Fallback poll cycles by result."),
            &["result"],
        )?;
        let poll_leader = IntGauge::new(
            POLL_LEADER,
            "1 while this worker is the active poller, 0 on standby.",
        )?;
        let tool_info = IntGaugeVec::new(
            Opts::new(TOOL_INFO, "Renderers found at start-up (constant 1)."),
            &["tool", "version"],
        )?;
        let build_info = IntGaugeVec::new(
            Opts::new(
                BUILD_INFO,
                "Constant 1, labelled with the worker's version.",
            ),
            &["version"],
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        // Bounded label values start at zero, so a rate or an alert sees
        // the first event and dashboards show the series before it.
        for result in ["dispatched", "undecodable", "publish_failed"] {
            push_events.with_label_values(&[result]);
        }
        for outcome in [
            "succeeded",
            "failed",
            "superseded",
            "refreshed",
            "transient",
        ] {
            syncs.with_label_values(&[outcome]);
        }
        for result in ["synced", "pruned", "prune_skipped"] {
            resources.with_label_values(&[result]);
        }
        for phase in ["fetch", "render", "diff", "apply", "health"] {
            sync_phase_duration.with_label_values(&[phase]);
        }
        for result in [
            "synced",
            "coalesced",
            "stale",
            "gone",
            "retried",
            "deferred",
            "dead_lettered",
        ] {
            sync_jobs.with_label_values(&[result]);
        }
        for result in ["ran", "failed"] {
            polls.with_label_values(&[result]);
        }
        for metric in [
            Box::new(build_info) as Box<dyn prometheus::core::Collector>,
            Box::new(tool_info.clone()),
            Box::new(sync_phase_duration.clone()),
            Box::new(sync_jobs.clone()),
            Box::new(syncs_running.clone()),
            Box::new(git_fetch_duration.clone()),
            Box::new(git_fetch_bytes.clone()),
            Box::new(git_cache_bytes.clone()),
            Box::new(git_cache_evictions.clone()),
            Box::new(applications.clone()),
            Box::new(polls.clone()),
            Box::new(poll_leader.clone()),
        ] {
            registry.register(metric)?;
        }
        registry.register(Box::new(push_events.clone()))?;
        registry.register(Box::new(sync_jobs_published.clone()))?;
        registry.register(Box::new(syncs.clone()))?;
        registry.register(Box::new(sync_duration.clone()))?;
        registry.register(Box::new(push_to_sync_start.clone()))?;
        registry.register(Box::new(resources.clone()))?;
        registry.register(Box::new(dead_lettered.clone()))?;
        let metrics = Self {
            registry,
            push_events,
            sync_jobs_published,
            syncs,
            sync_duration,
            push_to_sync_start,
            resources,
            dead_lettered,
            sync_phase_duration,
            sync_jobs,
            syncs_running,
            git_fetch_duration,
            git_fetch_bytes,
            git_cache_bytes,
            git_cache_evictions,
            applications,
            polls,
            poll_leader,
            tool_info,
        };
        metrics.count_applications(std::iter::empty());
        Ok(metrics)
    }

    /// A fetch observer for [`crate::git::GitCache::observe_fetches`].
    pub fn fetch_observer(&self) -> crate::git::FetchObserver {
        let (duration, bytes) = (
            self.git_fetch_duration.clone(),
            self.git_fetch_bytes.clone(),
        );
        std::sync::Arc::new(move |took: std::time::Duration, received: u64| {
            duration.observe(took.as_secs_f64());
            bytes.inc_by(received);
        })
    }

    /// A cache observer for [`crate::git::GitCache::observe_cache`].
    pub fn cache_observer(&self) -> crate::git::CacheObserver {
        let (bytes, evictions) = (
            self.git_cache_bytes.clone(),
            self.git_cache_evictions.clone(),
        );
        std::sync::Arc::new(move |total: u64, evicted: u64| {
            bytes.set(i64::try_from(total).unwrap_or(i64::MAX));
            evictions.inc_by(evicted);
        })
    }

    /// Count Applications by their sync and health status.
    pub fn count_applications<'a>(
        &self,
        applications: impl IntoIterator<Item = &'a pushsync_api::Application>,
    ) {
        let mut counts: std::collections::BTreeMap<(String, String), i64> = Default::default();
        for app in applications {
            let status = app.status.as_ref();
            let sync = status
                .and_then(|s| s.sync.as_ref())
                .map_or("Unknown", |s| s.status.as_str());
            let health = status
                .and_then(|s| s.health.as_ref())
                .map_or("Unknown", |h| h.status.as_str());
            *counts
                .entry((sync.to_owned(), health.to_owned()))
                .or_default() += 1;
        }
        // Every combination is exported, at zero when no Application is in
        // it, so a series does not vanish when its last Application leaves.
        for sync in pushsync_api::SyncStatusCode::ALL {
            for health in pushsync_api::HealthStatusCode::ALL {
                let key = (sync.as_str().to_owned(), health.as_str().to_owned());
                self.applications
                    .with_label_values(&[sync.as_str(), health.as_str()])
                    .set(counts.get(&key).copied().unwrap_or(0));
            }
        }
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}
