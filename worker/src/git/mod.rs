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

mod credentials;
mod remote;
mod tree;

use git2::Repository;

pub use credentials::{Credential, Credentials, CredentialsError};
pub use remote::RemoteHeads;

use remote::{list_blocking, resolve_blocking};
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
    /// The remote refused the configured credentials, or wants some and none
    /// are configured for it.
    #[error("{url} refused access: {reason}")]
    AuthenticationFailed {
        /// The remote, without credentials.
        url: String,
        /// What went wrong (never the secret itself).
        reason: String,
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
        }
    }
}

impl GitError {
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
    /// For remotes that ask.
    credentials: Arc<Credentials>,
    /// Bounds the remote operations (ls-remote, fetch) running at once.
    remote_slots: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for GitCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitCache")
            .field("root", &self.root)
            .field("timeout", &self.timeout)
            .field("remote_calls", &self.remote_calls())
            .finish_non_exhaustive()
    }
}

/// Called with the duration and the bytes received of each fetch.
pub type FetchObserver = Arc<dyn Fn(Duration, u64) + Send + Sync>;

#[derive(Debug, Default)]
struct Slot {
    /// (revision → commit, when resolved) of the last resolves.
    resolved: HashMap<String, (String, Instant)>,
}

impl GitCache {
    /// A cache under `root`; fetches give up after `timeout`.
    pub fn new(root: impl Into<PathBuf>, timeout: Duration) -> Self {
        Self {
            root: root.into(),
            timeout,
            slots: Arc::new(Mutex::new(HashMap::new())),
            remote_calls: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            on_fetch: None,
            credentials: Arc::default(),
            remote_slots: Arc::new(tokio::sync::Semaphore::new(Self::DEFAULT_REMOTE_SLOTS)),
        }
    }

    /// Remote operations at once unless [`GitCache::with_remote_slots`] says otherwise.
    pub const DEFAULT_REMOTE_SLOTS: usize = 4;

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

    /// Report every fetch (duration, bytes received) to `observer`.
    pub fn observe_fetches(mut self, observer: FetchObserver) -> Self {
        self.on_fetch = Some(observer);
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

    fn repo_path(&self, url: &str) -> PathBuf {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        url.hash(&mut hasher);
        self.root.join(format!("{:016x}.git", hasher.finish()))
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
        let (path, url_owned, revision_owned, timeout) = (
            self.repo_path(url),
            url.to_owned(),
            revision.to_owned(),
            self.timeout,
        );
        let credential = self.credentials.for_url(url).cloned();
        self.remote_calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let _slot = self
            .remote_slots
            .acquire()
            .await
            .map_err(|_| GitError::TaskFailed)?;
        let (commit, fetched) = tokio::task::spawn_blocking(move || {
            resolve_blocking(
                &path,
                &url_owned,
                &revision_owned,
                timeout,
                credential.as_ref(),
            )
        })
        .await
        .map_err(|_| GitError::TaskFailed)??;
        if let (Some(fetched), Some(observer)) = (fetched, &self.on_fetch) {
            observer(fetched.duration, fetched.bytes);
        }
        slot.resolved
            .insert(revision.to_owned(), (commit.clone(), Instant::now()));
        Ok(commit)
    }

    /// The remote's refs and their commits: one round trip, nothing fetched
    /// (what the fallback poll asks once per repository).
    pub async fn heads(&self, url: &str) -> Result<RemoteHeads, GitError> {
        let (path, timeout) = (self.repo_path(url), self.timeout);
        let credential = self.credentials.for_url(url).cloned();
        let url = url.to_owned();
        self.remote_calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let _slot = self
            .remote_slots
            .acquire()
            .await
            .map_err(|_| GitError::TaskFailed)?;
        tokio::task::spawn_blocking(move || {
            list_blocking(&path, &url, timeout, credential.as_ref())
        })
        .await
        .map_err(|_| GitError::TaskFailed)?
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
        let (repo_path, commit, path) = (self.repo_path(url), commit.to_owned(), path.to_owned());
        tokio::task::spawn_blocking(move || read_files(&repo_path, &commit, &path, limits))
            .await
            .map_err(|_| GitError::TaskFailed)?
    }
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
