//! Git sources: one bare cache repository per URL, fetching only the commit a
//! sync needs, and reading files from a commit's tree without a checkout.
//!
//! Invariants:
//! - Nothing outside the repository is read: an Application path that climbs
//!   above the root, or a symlink whose target leaves the repository, is an
//!   error, never followed.
//! - A resolve first asks the remote which commit the ref points at (one
//!   round trip, no pack); it fetches only when that commit is not in the
//!   cache yet, and then only that ref, shallow.
//! - Concurrent resolves of one URL in this process are serialised, and a
//!   resolve that waited for another one reuses its answer when it is fresh.
//! - Every git2 call runs on the blocking pool; fetches stop at a deadline.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod budget;
mod credentials;
mod local;
mod policy;
mod remote;
mod tree;
mod url;

use git2::Repository;

pub use credentials::{Credential, Credentials, CredentialsError};
pub use local::local_files;
pub use policy::{Refusal, RemotePolicy};
pub use remote::RemoteHeads;

use remote::{Transfer, list_blocking, resolve_blocking};
use tree::read_files;

/// Why a git step failed. [`GitError::is_transient`] tells a retry apart from
/// a user error to report on the Application.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// Talking to the remote failed (network, authentication, server).
    #[error("fetching from {url} failed")]
    FetchFailed {
        /// The remote, without credentials.
        url: String,
        /// What libgit2 said.
        #[source]
        source: git2::Error,
    },
    /// The remote did not answer in time.
    #[error("fetching from {url} took longer than {timeout:?}")]
    FetchTimedOut {
        /// The remote, without credentials.
        url: String,
        /// The bound.
        timeout: Duration,
    },
    /// The branch, tag or commit does not exist on the remote.
    #[error("revision {revision:?} not found in {url}")]
    RevisionNotFound {
        /// The remote, without credentials.
        url: String,
        /// What was asked for.
        revision: String,
    },
    /// The Application path climbs out of the repository.
    #[error("path {path:?} escapes the repository")]
    PathEscapes {
        /// The offending path.
        path: String,
    },
    /// The Application path does not exist at the commit.
    #[error("path {path:?} does not exist at commit {commit}")]
    PathNotFound {
        /// The path.
        path: String,
        /// The commit.
        commit: String,
    },
    /// A symlink points outside the repository (or loops).
    #[error("symlink {path:?} points outside the repository ({target:?})")]
    SymlinkEscapes {
        /// The link.
        path: String,
        /// Where it points.
        target: String,
    },
    /// The source holds more than the limits allow.
    #[error("{what} exceeds the limit of {limit}")]
    TooLarge {
        /// What was counted.
        what: String,
        /// The limit.
        limit: u64,
    },
    /// The local cache is unusable (disk, corruption).
    #[error("the git cache at {path} failed")]
    Cache {
        /// The cache repository.
        path: PathBuf,
        /// What failed.
        #[source]
        source: git2::Error,
    },
    /// The blocking task died.
    #[error("a git task panicked or was cancelled")]
    TaskFailed,
    /// The worker's remote policy refuses the URL; nothing was contacted.
    #[error("repository {url} is not allowed: {refusal}")]
    NotAllowed {
        /// The remote, without credentials.
        url: String,
        /// Which rule.
        refusal: Refusal,
    },
    /// The remote refused the configured credentials, or wants some and none
    /// are configured for it.
    #[error("{url} refused access: {reason}")]
    AuthenticationFailed {
        /// The remote, without credentials.
        url: String,
        /// What went wrong (never the secret itself).
        reason: String,
    },
    /// A file of a local checkout could not be read (`pushsync app diff --local`).
    #[error("reading {path} failed")]
    Local {
        /// The file or directory.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl GitError {
    /// A bounded label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::FetchFailed { .. } => "fetch_failed",
            Self::FetchTimedOut { .. } => "fetch_timed_out",
            Self::RevisionNotFound { .. } => "revision_not_found",
            Self::PathEscapes { .. } => "path_escapes",
            Self::PathNotFound { .. } => "path_not_found",
            Self::SymlinkEscapes { .. } => "symlink_escapes",
            Self::TooLarge { .. } => "too_large",
            Self::Cache { .. } => "cache",
            Self::TaskFailed => "task_failed",
            Self::AuthenticationFailed { .. } => "authentication_failed",
            Self::NotAllowed { .. } => "not_allowed",
            Self::Local { .. } => "local",
        }
    }
}

impl GitError {
    /// What the Application's status may say: for network failures only
    /// that the remote could not be reached, never libgit2's reason
    /// (refused, timed out, reset, TLS), which would make the worker a port
    /// scanner for whoever can write an Application; the log has the detail.
    pub fn public_message(&self) -> String {
        match self {
            Self::FetchFailed { url, .. } | Self::FetchTimedOut { url, .. } => {
                format!("fetching from {url} failed (the worker's log has the cause)")
            }
            other => other.to_string(),
        }
    }

    /// Whether retrying later can succeed (network, cache) rather than the
    /// source being wrong (missing revision or path, escapes, limits).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::FetchFailed { .. }
                | Self::FetchTimedOut { .. }
                | Self::Cache { .. }
                | Self::TaskFailed
        )
    }
}

/// Limits on what one sync may read.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest single file.
    pub max_file_bytes: u64,
    /// Most files under the Application path.
    pub max_files: usize,
    /// Largest total.
    pub max_total_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_file_bytes: 4 * 1024 * 1024,
            max_files: 5_000,
            max_total_bytes: 64 * 1024 * 1024,
        }
    }
}

/// A file of the source, read from the commit's tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Path relative to the Application path.
    pub path: String,
    /// Contents.
    pub data: Vec<u8>,
}

/// The cache of bare repositories.
#[derive(Clone)]
pub struct GitCache {
    root: PathBuf,
    timeout: Duration,
    slots: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<Slot>>>>>,
    /// Round trips to remotes so far (for metrics and tests).
    remote_calls: Arc<std::sync::atomic::AtomicU64>,
    /// Told the duration and received bytes of every fetch.
    on_fetch: Option<FetchObserver>,
    /// Told the cache's size and evictions after every fetch.
    on_cache: Option<CacheObserver>,
    /// For remotes that ask.
    credentials: Arc<Credentials>,
    /// Bounds the remote operations (ls-remote, fetch) running at once.
    remote_slots: Arc<tokio::sync::Semaphore>,
    /// Which remotes may be contacted.
    policy: Arc<RemotePolicy>,
    /// Most bytes one fetch may receive.
    max_fetch_bytes: u64,
    /// Most bytes the cache may hold on disk (`None`: unbounded).
    budget: Option<u64>,
    usage: Arc<Mutex<budget::Usage>>,
}

impl std::fmt::Debug for GitCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitCache")
            .field("root", &self.root)
            .field("timeout", &self.timeout)
            .field("remote_calls", &self.remote_calls())
            .field("policy", &self.policy)
            .field("max_fetch_bytes", &self.max_fetch_bytes)
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

/// Called with the duration and the bytes received of each fetch.
pub type FetchObserver = Arc<dyn Fn(Duration, u64) + Send + Sync>;

/// Called after each fetch with the cache's bytes on disk and how many
/// repositories were just evicted to stay within the budget.
pub type CacheObserver = Arc<dyn Fn(u64, u64) + Send + Sync>;

#[derive(Debug, Default)]
struct Slot {
    /// (revision → commit, when resolved) of the last resolves.
    resolved: HashMap<String, (String, Instant)>,
}

/// How long past its own deadline a remote operation is waited for before
/// it is abandoned (its thread left to libgit2's socket timeouts).
const ABANDON_AFTER: Duration = Duration::from_secs(15);

impl GitCache {
    /// A cache under `root`; fetches give up after `timeout`. Remotes are
    /// held to [`RemotePolicy::default`] unless [`GitCache::with_policy`]
    /// says otherwise.
    pub fn new(root: impl Into<PathBuf>, timeout: Duration) -> Self {
        socket_timeouts(SocketTimeouts::default());
        Self {
            root: root.into(),
            timeout,
            slots: Arc::new(Mutex::new(HashMap::new())),
            remote_calls: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            on_fetch: None,
            on_cache: None,
            credentials: Arc::default(),
            remote_slots: Arc::new(tokio::sync::Semaphore::new(Self::DEFAULT_REMOTE_SLOTS)),
            policy: Arc::default(),
            max_fetch_bytes: Self::DEFAULT_MAX_FETCH_BYTES,
            budget: None,
            usage: Arc::default(),
        }
    }

    /// Remote operations at once unless [`GitCache::with_remote_slots`] says otherwise.
    pub const DEFAULT_REMOTE_SLOTS: usize = 4;

    /// Bytes one fetch may receive unless [`GitCache::with_max_fetch_bytes`] says otherwise.
    pub const DEFAULT_MAX_FETCH_BYTES: u64 = 1 << 30;

    /// At most `slots` remote operations (ls-remote, fetch) at once.
    pub fn with_remote_slots(mut self, slots: usize) -> Self {
        self.remote_slots = Arc::new(tokio::sync::Semaphore::new(slots.max(1)));
        self
    }

    /// Answer remotes that ask for credentials with these.
    pub fn with_credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Arc::new(credentials);
        self
    }

    /// Contact only the remotes `policy` allows.
    pub fn with_policy(mut self, policy: RemotePolicy) -> Self {
        self.policy = Arc::new(policy);
        self
    }

    /// Abort a fetch once it received more than `bytes`.
    pub fn with_max_fetch_bytes(mut self, bytes: u64) -> Self {
        self.max_fetch_bytes = bytes;
        self
    }

    /// Keep the cache under `bytes` on disk, evicting the least recently
    /// used repositories after a fetch (never the one just fetched).
    pub fn with_budget(mut self, bytes: u64) -> Self {
        self.budget = Some(bytes);
        self
    }

    /// Report every fetch (duration, bytes received) to `observer`.
    pub fn observe_fetches(mut self, observer: FetchObserver) -> Self {
        self.on_fetch = Some(observer);
        self
    }

    /// Report the cache's size and evictions to `observer`.
    pub fn observe_cache(mut self, observer: CacheObserver) -> Self {
        self.on_cache = Some(observer);
        self
    }

    /// How many resolves did the work rather than reuse another's answer: each
    /// asks the remote (ls-remote, plus a fetch when needed) unless the
    /// revision is a commit id already cached.
    pub fn remote_calls(&self) -> u64 {
        self.remote_calls.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn slot(&self, url: &str) -> Arc<tokio::sync::Mutex<Slot>> {
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        slots.entry(url.to_owned()).or_default().clone()
    }

    fn usage(&self) -> std::sync::MutexGuard<'_, budget::Usage> {
        self.usage
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn repo_path(&self, url: &str) -> PathBuf {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        url.hash(&mut hasher);
        self.root.join(format!("{:016x}.git", hasher.finish()))
    }

    /// Run a remote operation on the blocking pool under the policy, a
    /// remote slot and a watchdog: an operation that outlives its deadline
    /// by [`ABANDON_AFTER`] (a transport without socket timeouts, such as
    /// SSH, stuck on a host that never answers) is answered as timed out and
    /// its slot freed.
    async fn remote<T: Send + 'static>(
        &self,
        url: &str,
        operation: impl FnOnce(&Transfer, Option<&Credential>) -> Result<T, GitError> + Send + 'static,
    ) -> Result<T, GitError> {
        let credential = self.credentials.for_url(url).cloned();
        self.remote_calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let _slot = self
            .remote_slots
            .acquire()
            .await
            .map_err(|_| GitError::TaskFailed)?;
        let transfer = Transfer::new(url, self.timeout, self.max_fetch_bytes);
        let (policy, owned) = (self.policy.clone(), url.to_owned());
        let task = tokio::task::spawn_blocking(move || {
            policy
                .check(&owned)
                .map_err(|refusal| GitError::NotAllowed {
                    url: pushsync_proto::redact_url(&owned),
                    refusal,
                })?;
            operation(&transfer, credential.as_ref())
        });
        match tokio::time::timeout(self.timeout + ABANDON_AFTER, task).await {
            Ok(joined) => joined.map_err(|_| GitError::TaskFailed)?,
            Err(_) => {
                let url = pushsync_proto::redact_url(url);
                tracing::warn!(%url, "a git operation outlived its deadline; abandoned (its thread ends when the connection does)");
                Err(GitError::FetchTimedOut {
                    url,
                    timeout: self.timeout,
                })
            }
        }
    }

    /// The commit `revision` (branch, tag, full ref, `HEAD` or commit id)
    /// points at on `url`, fetched into the cache.
    pub async fn resolve(&self, url: &str, revision: &str) -> Result<String, GitError> {
        let asked = Instant::now();
        let slot = self.slot(url);
        let mut slot = slot.lock().await;
        // Someone resolved this while we waited: their answer is newer than our question.
        if let Some((commit, at)) = slot.resolved.get(revision)
            && *at >= asked
        {
            return Ok(commit.clone());
        }
        let path = self.repo_path(url);
        self.usage().touch(&path, url);
        let revision_owned = revision.to_owned();
        let (owned, repo) = (url.to_owned(), path.clone());
        let (commit, fetched) = self
            .remote(url, move |transfer, credential| {
                resolve_blocking(&repo, &owned, &revision_owned, transfer, credential)
            })
            .await?;
        if let Some(fetched) = fetched {
            if let Some(observer) = &self.on_fetch {
                observer(fetched.duration, fetched.bytes);
            }
            self.account(path).await;
        }
        slot.resolved
            .insert(revision.to_owned(), (commit.clone(), Instant::now()));
        Ok(commit)
    }

    /// After a fetch into `fetched`: measure it, and evict the least
    /// recently used repositories (not busy in a resolve) while the cache
    /// is over its budget.
    async fn account(&self, fetched: PathBuf) {
        let cache = self.clone();
        let counted = tokio::task::spawn_blocking(move || {
            let bytes = budget::dir_size(&fetched);
            let victims = {
                let mut usage = cache.usage();
                usage.scan_once(&cache.root);
                usage.measured(&fetched, bytes);
                cache
                    .budget
                    .map(|budget| usage.over_budget(budget, &fetched))
                    .unwrap_or_default()
            };
            let mut evicted = 0;
            for victim in victims {
                // Hold the victim's slot while it goes, so no resolve of its
                // URL runs meanwhile; a busy one stays.
                let slot = victim.url.as_deref().map(|url| cache.slot(url));
                let guard = match &slot {
                    Some(slot) => match slot.clone().try_lock_owned() {
                        Ok(guard) => Some(guard),
                        Err(_) => {
                            let bytes = budget::dir_size(&victim.path);
                            cache.usage().restore(victim, bytes);
                            continue;
                        }
                    },
                    None => None,
                };
                match budget::remove(&victim.path) {
                    Ok(()) => evicted += 1,
                    Err(error) => {
                        tracing::warn!(path = %victim.path.display(), error = %error, "evicting a cached repository failed");
                    }
                }
                drop(guard);
            }
            (cache.usage().total(), evicted)
        })
        .await;
        if let (Ok((bytes, evicted)), Some(observer)) = (counted, &self.on_cache) {
            observer(bytes, evicted);
        }
    }

    /// The remote's refs and their commits: one round trip, nothing fetched
    /// (what the fallback poll asks once per repository).
    pub async fn heads(&self, url: &str) -> Result<RemoteHeads, GitError> {
        let (path, owned) = (self.repo_path(url), url.to_owned());
        self.remote(url, move |transfer, credential| {
            list_blocking(&path, &owned, transfer, credential)
        })
        .await
    }

    /// Every file under `path` at `commit` (already in the cache via
    /// [`GitCache::resolve`]), symlinks inside the repository followed.
    pub async fn files(
        &self,
        url: &str,
        commit: &str,
        path: &str,
        limits: Limits,
    ) -> Result<Vec<SourceFile>, GitError> {
        let repo_path = self.repo_path(url);
        self.usage().touch(&repo_path, url);
        let (commit, path) = (commit.to_owned(), path.to_owned());
        tokio::task::spawn_blocking(move || read_files(&repo_path, &commit, &path, limits))
            .await
            .map_err(|_| GitError::TaskFailed)?
    }
}

/// libgit2's socket timeouts, process-wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketTimeouts {
    /// Longest TCP connect.
    pub connect: Duration,
    /// Longest wait for a read or write on an open connection.
    pub io: Duration,
}

impl Default for SocketTimeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            io: Duration::from_secs(60),
        }
    }
}

/// Set libgit2's connect and read/write timeouts (HTTP(S) and git://; SSH
/// streams belong to libssh2 and are bounded by [`GitCache`]'s watchdog
/// instead). The first call in a process wins: the binaries call this with
/// their configuration before building a [`GitCache`], whose constructor
/// calls it with the defaults.
pub fn socket_timeouts(timeouts: SocketTimeouts) {
    static SET: std::sync::Once = std::sync::Once::new();
    let millis = |d: Duration| i32::try_from(d.as_millis()).unwrap_or(i32::MAX).max(1);
    SET.call_once(|| {
        #[allow(
            unsafe_code,
            reason = "libgit2's global options have no safe setter; see the SAFETY note"
        )]
        // SAFETY: the setters write a C global that libgit2 reads when it
        // opens a socket. Every remote operation of this process goes
        // through a `GitCache`, and each `GitCache` is built after this
        // `Once` completed (its constructor calls it), so no socket is being
        // opened while the value is written; `Once` orders the write before
        // every later read. The setters cannot fail (libgit2 returns 0).
        unsafe {
            let _ =
                git2::opts::set_server_connect_timeout_in_milliseconds(millis(timeouts.connect));
            let _ = git2::opts::set_server_timeout_in_milliseconds(millis(timeouts.io));
        }
    });
}

pub(super) fn open_cache(path: &Path) -> Result<Repository, GitError> {
    let cache_error = |source| GitError::Cache {
        path: path.to_path_buf(),
        source,
    };
    let repo = match Repository::open_bare(path) {
        Ok(repo) => repo,
        Err(_) => Repository::init_bare(path).map_err(cache_error)?,
    };
    // No remote operation follows a redirect, the first request's included
    // (libgit2 follows an initial one by default): refs, packs and
    // credentials stay with the host the Application names.
    repo.config()
        .and_then(|mut config| config.set_str("http.followRedirects", "false"))
        .map_err(cache_error)?;
    Ok(repo)
}

#[cfg(test)]
mod tests;
