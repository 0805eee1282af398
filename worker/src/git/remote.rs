//! Talking to remotes on the blocking pool: ls-remote, shallow fetches of
//! one ref, credentials offered once per connection, a deadline on every
//! transfer.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use git2::{Direction, FetchOptions, Oid, RemoteCallbacks, RemoteRedirect};

use super::{Credential, GitError, open_cache};

/// Marks our own refusals in the credentials callback, so they are told
/// apart from network failures.
const AUTH_MARK: &str = "pushsync-auth: ";

/// What a resolve did beyond asking the remote for its refs.
pub(super) struct Fetched {
    pub(super) duration: Duration,
    pub(super) bytes: u64,
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
        if crate::routing::is_commit(revision) {
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

fn auth_error(reason: &str) -> git2::Error {
    git2::Error::new(
        git2::ErrorCode::Auth,
        git2::ErrorClass::Callback,
        format!("{AUTH_MARK}{reason}"),
    )
}

/// One remote operation's bounds and what tripped them: the deadline and
/// the received-bytes cap are enforced in libgit2's transfer callbacks
/// (returning false aborts), and a libgit2 error is read back in their light.
pub(super) struct Transfer {
    /// The remote, without credentials.
    shown: String,
    deadline: Instant,
    timeout: Duration,
    max_bytes: u64,
    too_large: AtomicBool,
}

impl Transfer {
    pub(super) fn new(url: &str, timeout: Duration, max_bytes: u64) -> Self {
        Self {
            shown: pushsync_proto::redact_url(url),
            deadline: Instant::now() + timeout,
            timeout,
            max_bytes,
            too_large: AtomicBool::new(false),
        }
    }

    /// Turns a libgit2 error into ours: the cap or the deadline when one
    /// aborted the transfer, an authentication failure when credentials
    /// were refused or missing, else a failure.
    fn failed(&self, source: git2::Error) -> GitError {
        let shown = self.shown.clone();
        if self.too_large.load(Ordering::Relaxed) {
            GitError::TooLarge {
                what: format!("the fetch from {shown}"),
                limit: self.max_bytes,
            }
        } else if source.code() == git2::ErrorCode::Auth || source.message().contains(AUTH_MARK) {
            let message = source.message();
            let reason = message
                .split_once(AUTH_MARK)
                .map_or(message, |(_, reason)| reason);
            GitError::AuthenticationFailed {
                url: shown,
                reason: reason.to_owned(),
            }
        } else if Instant::now() >= self.deadline {
            GitError::FetchTimedOut {
                url: shown,
                timeout: self.timeout,
            }
        } else {
            GitError::FetchFailed { url: shown, source }
        }
    }

    /// Whether a transfer that received `bytes` so far may go on.
    fn proceed(&self, bytes: usize) -> bool {
        if bytes as u64 > self.max_bytes {
            self.too_large.store(true, Ordering::Relaxed);
            return false;
        }
        Instant::now() < self.deadline
    }
}

pub(super) fn list_blocking(
    path: &Path,
    url: &str,
    transfer: &Transfer,
    credential: Option<&Credential>,
) -> Result<RemoteHeads, GitError> {
    let repo = open_cache(path)?;
    let mut remote = repo.remote_anonymous(url).map_err(|e| transfer.failed(e))?;
    Ok(RemoteHeads(ls_remote(&mut remote, transfer, credential)?))
}

/// The remote's refs and their commits: one round trip, no objects.
fn ls_remote(
    remote: &mut git2::Remote<'_>,
    transfer: &Transfer,
    credential: Option<&Credential>,
) -> Result<Vec<(String, Oid)>, GitError> {
    let failed = |e| transfer.failed(e);
    let connection = remote
        .connect_auth(
            Direction::Fetch,
            Some(callbacks(transfer, credential)),
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

pub(super) fn resolve_blocking(
    path: &Path,
    url: &str,
    revision: &str,
    transfer: &Transfer,
    credential: Option<&Credential>,
) -> Result<(String, Option<Fetched>), GitError> {
    let repo = open_cache(path)?;
    let failed = |e| transfer.failed(e);
    let is_commit = crate::routing::is_commit(revision);
    if is_commit
        && let Ok(oid) = Oid::from_str(revision)
        && repo.find_commit(oid).is_ok()
    {
        return Ok((revision.to_ascii_lowercase(), None));
    }

    let mut remote = repo.remote_anonymous(url).map_err(failed)?;
    // Which ref, and which commit it points at: one round trip, no objects.
    let (ref_name, oid) = {
        let heads = ls_remote(&mut remote, transfer, credential)?;
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
        url: transfer.shown.clone(),
        revision: revision.to_owned(),
    })?;

    if repo.find_commit(oid).is_ok() {
        return Ok((oid.to_string(), None));
    }
    // A ref: fetch just that ref, shallow. A commit id: servers speaking the
    // protocol libgit2 uses refuse wants that are not ref tips, so fetch the
    // branches and tags (whole history, unshallowing the cache, within the
    // byte cap) and look for it.
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
    options.remote_callbacks(callbacks(transfer, credential));
    options.download_tags(git2::AutotagOption::None);
    // Never follow a fetch to another host.
    options.follow_redirects(RemoteRedirect::None);
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
            url: transfer.shown.clone(),
            revision: revision.to_owned(),
        })?;
    Ok((commit.id().to_string(), Some(fetched)))
}

fn callbacks<'a>(
    transfer: &'a Transfer,
    credential: Option<&'a Credential>,
) -> RemoteCallbacks<'a> {
    let mut callbacks = RemoteCallbacks::new();
    // libgit2 asks again after a refusal: answer once, then give up.
    let mut asked = false;
    callbacks.credentials(move |url, user_from_url, allowed| {
        use git2::{Cred, CredentialType};
        if std::mem::replace(&mut asked, true) {
            return Err(auth_error("the configured credentials were refused"));
        }
        let Some(credential) = credential else {
            return Err(auth_error(
                "the remote asks for credentials and none are configured for it",
            ));
        };
        // The asking URL is not the configured one after a redirect: a
        // credential is only ever offered where it was configured for.
        if !credential.covers(url) {
            return Err(auth_error(
                "the remote redirected elsewhere; the configured credentials were withheld",
            ));
        }
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
    // Returning false aborts the transfer: that is how a fetch stops at its
    // deadline or its byte cap.
    callbacks.transfer_progress(|progress| transfer.proceed(progress.received_bytes()));
    callbacks.sideband_progress(|_| transfer.proceed(0));
    callbacks
}
