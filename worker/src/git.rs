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

use git2::{Direction, FetchOptions, ObjectType, Oid, RemoteCallbacks, Repository, TreeWalkMode};

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

/// Why the credentials file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// The file cannot be read.
    #[error("cannot read the git credentials file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a list of credentials.
    #[error("the git credentials file {path} is not valid: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Credentials for one set of repositories. The secrets stay in files (a
/// mounted Kubernetes Secret), read when a remote asks, so a rotated Secret
/// needs no restart and no secret is held in memory longer than a fetch.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Credential {
    /// A prefix of the repository URLs they are for (the longest match wins).
    pub url: String,
    /// User name for HTTPS (default `git`; GitHub tokens take any).
    #[serde(default)]
    pub username: Option<String>,
    /// File holding the password or token (HTTPS).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// File holding an unencrypted private key (SSH).
    #[serde(default)]
    pub ssh_private_key_file: Option<PathBuf>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("url", &display_url(&self.url))
            .field("username", &self.username)
            .field("password_file", &self.password_file)
            .field("ssh_private_key_file", &self.ssh_private_key_file)
            .finish()
    }
}

/// Every configured credential.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials(Vec<Credential>);

impl Credentials {
    /// These credentials.
    pub fn new(credentials: Vec<Credential>) -> Self {
        Self(credentials)
    }

    /// Read a YAML list of [`Credential`]s.
    pub fn load(path: &Path) -> Result<Self, CredentialsError> {
        let text = std::fs::read_to_string(path).map_err(|source| CredentialsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let invalid = |message: String| CredentialsError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let list: Vec<Credential> =
            serde_saphyr::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        for credential in &list {
            if credential.password_file.is_none() && credential.ssh_private_key_file.is_none() {
                return Err(invalid(format!(
                    "the entry for {} names neither passwordFile nor sshPrivateKeyFile",
                    display_url(&credential.url)
                )));
            }
        }
        Ok(Self(list))
    }

    /// The credential for `url`: the longest matching prefix.
    pub fn for_url(&self, url: &str) -> Option<&Credential> {
        self.0
            .iter()
            .filter(|c| url.starts_with(&c.url))
            .max_by_key(|c| c.url.len())
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

/// What a resolve did beyond asking the remote for its refs.
struct Fetched {
    duration: Duration,
    bytes: u64,
}

#[derive(Debug, Default)]
struct Slot {
    /// (revision → commit, when resolved) of the last resolves.
    resolved: HashMap<String, (String, Instant)>,
}

/// `scheme://user:secret@host/path` → `scheme://host/path`, for messages.
fn display_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let rest = rest
                .split_once('@')
                .filter(|(userinfo, _)| !userinfo.contains('/'))
                .map_or(rest, |(_, host)| host);
            format!("{scheme}://{rest}")
        }
        None => url.to_owned(),
    }
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

fn open_cache(path: &Path) -> Result<Repository, GitError> {
    let cache_error = |source| GitError::Cache {
        path: path.to_path_buf(),
        source,
    };
    match Repository::open_bare(path) {
        Ok(repo) => Ok(repo),
        Err(_) => Repository::init_bare(path).map_err(cache_error),
    }
}

/// The ref `revision` names among a remote's `heads` (as ls-remote lists
/// them), and its commit: a full ref or `HEAD` as is, else a branch, else a
/// tag (peeled to its commit).
fn pick(heads: &[(String, Oid)], revision: &str) -> Option<(String, Oid)> {
    let find = |name: &str| heads.iter().find(|(n, _)| n == name).cloned();
    if revision.starts_with("refs/") || revision == "HEAD" {
        return find(revision);
    }
    find(&format!("refs/heads/{revision}")).or_else(|| {
        let tag = format!("refs/tags/{revision}");
        find(&tag).map(|(name, oid)| {
            let peeled = find(&format!("{tag}^{{}}")).map_or(oid, |(_, oid)| oid);
            (name, peeled)
        })
    })
}

/// A remote's refs, as one ls-remote listed them.
#[derive(Debug, Clone, Default)]
pub struct RemoteHeads(Vec<(String, Oid)>);

impl RemoteHeads {
    /// The commit `revision` (branch, tag, full ref, `HEAD`) points at; a
    /// commit id is its own answer.
    pub fn commit_of(&self, revision: &str) -> Option<String> {
        if crate::dispatch::is_commit(revision) {
            return Some(revision.to_ascii_lowercase());
        }
        let revision = if revision.is_empty() {
            "HEAD"
        } else {
            revision
        };
        pick(&self.0, revision).map(|(_, oid)| oid.to_string())
    }
}

/// Marks our own refusals in the credentials callback, so they are told
/// apart from network failures.
const AUTH_MARK: &str = "pushsync-auth: ";

fn auth_error(reason: &str) -> git2::Error {
    git2::Error::new(
        git2::ErrorCode::Auth,
        git2::ErrorClass::Callback,
        format!("{AUTH_MARK}{reason}"),
    )
}

/// Turns a libgit2 error talking to `shown` into ours: past the deadline it
/// is a timeout (the transfer callbacks aborted it), an authentication
/// failure when credentials were refused or missing, else a failure.
fn remote_failure(
    shown: &str,
    deadline: Instant,
    timeout: Duration,
) -> impl Fn(git2::Error) -> GitError + Copy + '_ {
    move |source| {
        if source.code() == git2::ErrorCode::Auth || source.message().contains(AUTH_MARK) {
            let message = source.message();
            let reason = message
                .split_once(AUTH_MARK)
                .map_or(message, |(_, reason)| reason);
            GitError::AuthenticationFailed {
                url: shown.to_owned(),
                reason: reason.to_owned(),
            }
        } else if Instant::now() >= deadline {
            GitError::FetchTimedOut {
                url: shown.to_owned(),
                timeout,
            }
        } else {
            GitError::FetchFailed {
                url: shown.to_owned(),
                source,
            }
        }
    }
}

fn list_blocking(
    path: &Path,
    url: &str,
    timeout: Duration,
    credential: Option<&Credential>,
) -> Result<RemoteHeads, GitError> {
    let repo = open_cache(path)?;
    let shown = display_url(url);
    let deadline = Instant::now() + timeout;
    let failed = remote_failure(&shown, deadline, timeout);
    let mut remote = repo.remote_anonymous(url).map_err(failed)?;
    Ok(RemoteHeads(ls_remote(
        &mut remote,
        deadline,
        credential,
        failed,
    )?))
}

/// The remote's refs and their commits: one round trip, no objects.
fn ls_remote(
    remote: &mut git2::Remote<'_>,
    deadline: Instant,
    credential: Option<&Credential>,
    failed: impl Fn(git2::Error) -> GitError + Copy,
) -> Result<Vec<(String, Oid)>, GitError> {
    let connection = remote
        .connect_auth(
            Direction::Fetch,
            Some(callbacks(deadline, credential)),
            None,
        )
        .map_err(failed)?;
    Ok(connection
        .list()
        .map_err(failed)?
        .iter()
        .map(|h| (h.name().to_owned(), h.oid()))
        .collect())
}

fn resolve_blocking(
    path: &Path,
    url: &str,
    revision: &str,
    timeout: Duration,
    credential: Option<&Credential>,
) -> Result<(String, Option<Fetched>), GitError> {
    let repo = open_cache(path)?;
    let shown = display_url(url);
    let deadline = Instant::now() + timeout;
    let failed = remote_failure(&shown, deadline, timeout);
    let is_commit = crate::dispatch::is_commit(revision);
    if is_commit
        && let Ok(oid) = Oid::from_str(revision)
        && repo.find_commit(oid).is_ok()
    {
        return Ok((revision.to_ascii_lowercase(), None));
    }

    let mut remote = repo.remote_anonymous(url).map_err(failed)?;
    // Which ref, and which commit it points at: one round trip, no objects.
    let (ref_name, oid) = {
        let heads = ls_remote(&mut remote, deadline, credential, failed)?;
        let found = if is_commit {
            None
        } else {
            pick(&heads, revision)
        };
        found.map(|(name, oid)| (Some(name), oid))
    }
    .or_else(|| {
        is_commit
            .then(|| Oid::from_str(revision).ok().map(|oid| (None, oid)))
            .flatten()
    })
    .ok_or_else(|| GitError::RevisionNotFound {
        url: shown.clone(),
        revision: revision.to_owned(),
    })?;

    if repo.find_commit(oid).is_ok() {
        return Ok((oid.to_string(), None));
    }
    // A ref: fetch just that ref, shallow. A commit id: servers speaking the
    // protocol libgit2 uses refuse wants that are not ref tips, so fetch the
    // branches and tags (whole history, unshallowing the cache) and look for it.
    let refspecs: Vec<String> = match &ref_name {
        Some(name) => vec![format!(
            "+{name}:refs/pushsync/{}",
            name.trim_start_matches("refs/")
        )],
        None => vec![
            "+refs/heads/*:refs/pushsync/heads/*".to_owned(),
            "+refs/tags/*:refs/pushsync/tags/*".to_owned(),
        ],
    };
    let mut options = FetchOptions::new();
    options.remote_callbacks(callbacks(deadline, credential));
    options.download_tags(git2::AutotagOption::None);
    if ref_name.is_some() {
        options.depth(1);
    } else if repo.is_shallow() {
        // libgit2's "unshallow" depth.
        options.depth(i32::MAX);
    }
    let started = Instant::now();
    remote
        .fetch(&refspecs, Some(&mut options), None)
        .map_err(failed)?;
    let fetched = Fetched {
        duration: started.elapsed(),
        bytes: remote.stats().received_bytes() as u64,
    };
    let commit = repo
        .find_object(oid, None)
        .and_then(|object| object.peel_to_commit())
        .map_err(|_| GitError::RevisionNotFound {
            url: shown,
            revision: revision.to_owned(),
        })?;
    Ok((commit.id().to_string(), Some(fetched)))
}

fn callbacks(deadline: Instant, credential: Option<&Credential>) -> RemoteCallbacks<'_> {
    let mut callbacks = RemoteCallbacks::new();
    // libgit2 asks again after a refusal: answer once, then give up.
    let mut asked = false;
    callbacks.credentials(move |_, user_from_url, allowed| {
        use git2::{Cred, CredentialType};
        if std::mem::replace(&mut asked, true) {
            return Err(auth_error("the configured credentials were refused"));
        }
        let Some(credential) = credential else {
            return Err(auth_error(
                "the remote asks for credentials and none are configured for it",
            ));
        };
        let user = credential
            .username
            .as_deref()
            .or(user_from_url)
            .unwrap_or("git");
        if allowed.contains(CredentialType::SSH_KEY)
            && let Some(key) = &credential.ssh_private_key_file
        {
            return Cred::ssh_key(user_from_url.unwrap_or(user), None, key, None);
        }
        if allowed.contains(CredentialType::USER_PASS_PLAINTEXT)
            && let Some(file) = &credential.password_file
        {
            let password = std::fs::read_to_string(file).map_err(|e| {
                auth_error(&format!(
                    "cannot read the password file {}: {e}",
                    file.display()
                ))
            })?;
            return Cred::userpass_plaintext(user, password.trim_end_matches(['\r', '\n']));
        }
        Err(auth_error(
            "no configured credential is of a kind the remote accepts",
        ))
    });
    // Returning false aborts the transfer: that is how a fetch stops at its deadline.
    callbacks.transfer_progress(move |_| Instant::now() < deadline);
    callbacks.sideband_progress(move |_| Instant::now() < deadline);
    callbacks
}

/// Resolve `.` and `..` in a repository path; `None` when it climbs above the root.
fn normalise(path: &str) -> Option<String> {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop()?;
            }
            other => segments.push(other),
        }
    }
    Some(segments.join("/"))
}

fn read_files(
    repo_path: &Path,
    commit: &str,
    path: &str,
    limits: Limits,
) -> Result<Vec<SourceFile>, GitError> {
    let repo = open_cache(repo_path)?;
    let cache_error = |source| GitError::Cache {
        path: repo_path.to_path_buf(),
        source,
    };
    let base = normalise(path.trim_start_matches('/')).ok_or_else(|| GitError::PathEscapes {
        path: path.to_owned(),
    })?;
    let oid = Oid::from_str(commit).map_err(cache_error)?;
    let tree = repo
        .find_commit(oid)
        .and_then(|c| c.tree())
        .map_err(cache_error)?;
    let not_found = || GitError::PathNotFound {
        path: path.to_owned(),
        commit: commit.to_owned(),
    };
    let subtree = if base.is_empty() {
        tree.clone()
    } else {
        let entry = tree.get_path(Path::new(&base)).map_err(|_| not_found())?;
        if entry.kind() != Some(ObjectType::Tree) {
            return Err(not_found());
        }
        repo.find_tree(entry.id()).map_err(cache_error)?
    };

    let mut entries = Vec::new();
    subtree
        .walk(TreeWalkMode::PreOrder, |dir, entry| {
            if entry.kind() == Some(ObjectType::Blob) {
                entries.push((
                    format!("{dir}{}", entry.name().unwrap_or_default()),
                    entry.id(),
                    entry.filemode(),
                ));
            }
            git2::TreeWalkResult::Ok
        })
        .map_err(cache_error)?;
    if entries.len() > limits.max_files {
        return Err(GitError::TooLarge {
            what: format!("the number of files under {path:?}"),
            limit: limits.max_files as u64,
        });
    }
    let mut files = Vec::with_capacity(entries.len());
    let mut total = 0u64;
    for (relative, id, mode) in entries {
        let full = if base.is_empty() {
            relative.clone()
        } else {
            format!("{base}/{relative}")
        };
        let blob_id = if mode == 0o120000 {
            follow_symlink(&repo, &tree, &full, id)?
        } else {
            id
        };
        let blob = repo.find_blob(blob_id).map_err(cache_error)?;
        let size = blob.size() as u64;
        if size > limits.max_file_bytes {
            return Err(GitError::TooLarge {
                what: format!("{full} ({size} bytes)"),
                limit: limits.max_file_bytes,
            });
        }
        total += size;
        if total > limits.max_total_bytes {
            return Err(GitError::TooLarge {
                what: format!("the files under {path:?}"),
                limit: limits.max_total_bytes,
            });
        }
        files.push(SourceFile {
            path: relative,
            data: blob.content().to_vec(),
        });
    }
    Ok(files)
}

/// The blob a symlink at `link` (blob `id`) resolves to inside the tree.
fn follow_symlink(
    repo: &Repository,
    tree: &git2::Tree<'_>,
    link: &str,
    id: Oid,
) -> Result<Oid, GitError> {
    let (mut link, mut id) = (link.to_owned(), id);
    for _ in 0..8 {
        let target = repo
            .find_blob(id)
            .map(|b| String::from_utf8_lossy(b.content()).into_owned())
            .map_err(|source| GitError::Cache {
                path: repo.path().to_path_buf(),
                source,
            })?;
        let escapes = || GitError::SymlinkEscapes {
            path: link.clone(),
            target: target.clone(),
        };
        if target.starts_with('/') {
            return Err(escapes());
        }
        let parent = link.rsplit_once('/').map_or("", |(p, _)| p);
        let resolved = normalise(&format!("{parent}/{target}")).ok_or_else(escapes)?;
        let entry = tree.get_path(Path::new(&resolved)).map_err(|_| escapes())?;
        match (entry.kind(), entry.filemode()) {
            (Some(ObjectType::Blob), 0o120000) => {
                link = resolved;
                id = entry.id();
            }
            (Some(ObjectType::Blob), _) => return Ok(entry.id()),
            _ => return Err(escapes()),
        }
    }
    Err(GitError::SymlinkEscapes {
        path: link,
        target: "(too many levels of symbolic links)".to_owned(),
    })
}

#[cfg(test)]
mod tests;
