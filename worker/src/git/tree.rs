//! Reading files from a commit's tree without a checkout, confined to the
//! repository (paths and symlink targets that climb out are refused) and
//! bounded in count and size.

use std::path::Path;

use git2::{ObjectType, Oid, Repository, TreeWalkMode};

use super::{GitError, Limits, SourceFile, open_cache};

pub(super) fn read_files(
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
    let base = crate::paths::normalise(path.trim_start_matches('/')).ok_or_else(|| {
        GitError::PathEscapes {
            path: path.to_owned(),
        }
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
        let resolved =
            crate::paths::normalise(&format!("{parent}/{target}")).ok_or_else(escapes)?;
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
