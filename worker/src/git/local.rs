//! The files of a local checkout, read as a commit's would be: the same
//! paths relative to the Application path, the same limits, symlinks
//! followed only inside the checkout, `.git` left out. What `pushsync app
//! diff --local` renders.

use std::path::{Path, PathBuf};

use super::{GitError, Limits, SourceFile};

/// Read the files under `path` of the checkout at `root`.
pub fn local_files(root: &Path, path: &str, limits: Limits) -> Result<Vec<SourceFile>, GitError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| GitError::Local { path, source }
    };
    let root = root.canonicalize().map_err(io(root))?;
    let base = crate::paths::normalise(path.trim_start_matches('/')).ok_or_else(|| {
        GitError::PathEscapes {
            path: path.to_owned(),
        }
    })?;
    let git_dir = root.join(".git");
    // Where a path really is must be inside the checkout and outside `.git`
    // (which holds remote URLs with credentials, hooks and the index).
    let inside = |real: &Path| real.starts_with(&root) && !real.starts_with(&git_dir);
    let not_found = || GitError::PathNotFound {
        path: path.to_owned(),
        commit: "the local checkout".to_owned(),
    };
    let start = root.join(&base).canonicalize().map_err(|_| not_found())?;
    if !inside(&start) {
        return Err(GitError::PathEscapes {
            path: path.to_owned(),
        });
    }
    if !start.is_dir() {
        return Err(not_found());
    }
    let mut files = Vec::new();
    let mut total = 0u64;
    let mut pending: Vec<(PathBuf, String)> = vec![(start, String::new())];
    while let Some((dir, prefix)) = pending.pop() {
        let mut entries = std::fs::read_dir(&dir)
            .map_err(io(&dir))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(io(&dir))?;
        entries.sort_by_key(std::fs::DirEntry::file_name);
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == ".git" {
                continue;
            }
            let relative = format!("{prefix}{name}");
            let entry_path = entry.path();
            // Where it really is: a symlink must stay inside the checkout.
            let real = entry_path.canonicalize().map_err(io(&entry_path))?;
            if !inside(&real) {
                return Err(GitError::SymlinkEscapes {
                    path: relative,
                    target: real.display().to_string(),
                });
            }
            let metadata = std::fs::metadata(&real).map_err(io(&real))?;
            if metadata.is_dir() {
                // A directory symlink is not followed (git records the
                // link itself, which names no files).
                if !entry.file_type().map_err(io(&entry_path))?.is_symlink() {
                    pending.push((real, format!("{relative}/")));
                }
                continue;
            }
            // Sockets, FIFOs, devices: nothing a commit could hold, and a
            // FIFO would block the read.
            if !metadata.is_file() {
                continue;
            }
            if files.len() >= limits.max_files {
                return Err(GitError::TooLarge {
                    what: format!("the number of files under {path:?}"),
                    limit: limits.max_files as u64,
                });
            }
            let size = metadata.len();
            if size > limits.max_file_bytes {
                return Err(GitError::TooLarge {
                    what: format!("{relative} ({size} bytes)"),
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
            // Read at most the limit, whatever the file grew to since.
            let mut data = Vec::new();
            std::io::Read::read_to_end(
                &mut std::io::Read::take(
                    std::fs::File::open(&real).map_err(io(&real))?,
                    limits.max_file_bytes + 1,
                ),
                &mut data,
            )
            .map_err(io(&real))?;
            if data.len() as u64 > limits.max_file_bytes {
                return Err(GitError::TooLarge {
                    what: format!("{relative} (more than {} bytes)", limits.max_file_bytes),
                    limit: limits.max_file_bytes,
                });
            }
            files.push(SourceFile {
                path: relative,
                data,
            });
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkout_reads_like_a_commit_and_nothing_leaves_it() {
        let root = tempfile::tempdir().unwrap();
        let app = root.path().join("apps/web");
        std::fs::create_dir_all(app.join("base")).unwrap();
        std::fs::create_dir_all(root.path().join(".git")).unwrap();
        std::fs::write(root.path().join(".git/config"), "x").unwrap();
        std::fs::write(app.join("a.yaml"), "a").unwrap();
        std::fs::write(app.join("base/b.yaml"), "b").unwrap();
        std::os::unix::fs::symlink("a.yaml", app.join("link.yaml")).unwrap();
        let files = local_files(root.path(), "apps/web", Limits::default()).unwrap();
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["a.yaml", "base/b.yaml", "link.yaml"]);
        assert_eq!(files[2].data, b"a");
        let whole = local_files(root.path(), "", Limits::default()).unwrap();
        assert!(whole.iter().all(|f| !f.path.starts_with(".git")));

        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "s").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), app.join("leak.yaml")).unwrap();
        assert!(matches!(
            local_files(root.path(), "apps/web", Limits::default()),
            Err(GitError::SymlinkEscapes { .. })
        ));
        std::fs::remove_file(app.join("leak.yaml")).unwrap();
        // Nor into `.git` (remote URLs with credentials live there).
        std::os::unix::fs::symlink("../../.git/config", app.join("config.yaml")).unwrap();
        assert!(matches!(
            local_files(root.path(), "apps/web", Limits::default()),
            Err(GitError::SymlinkEscapes { .. })
        ));
        std::fs::remove_file(app.join("config.yaml")).unwrap();
        std::os::unix::fs::symlink(".git", root.path().join("gitdir")).unwrap();
        assert!(matches!(
            local_files(root.path(), "gitdir", Limits::default()),
            Err(GitError::PathEscapes { .. })
        ));
        // A FIFO is skipped, not read (the read would block).
        let fifo = app.join("pipe.yaml");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        let files = local_files(root.path(), "apps/web", Limits::default()).unwrap();
        assert!(files.iter().all(|f| f.path != "pipe.yaml"));
        std::fs::remove_file(&fifo).unwrap();
        assert!(matches!(
            local_files(root.path(), "../elsewhere", Limits::default()),
            Err(GitError::PathEscapes { .. })
        ));
        assert!(matches!(
            local_files(root.path(), "apps/none", Limits::default()),
            Err(GitError::PathNotFound { .. })
        ));
        let small = Limits {
            max_files: 1,
            ..Limits::default()
        };
        assert!(matches!(
            local_files(root.path(), "apps/web", small),
            Err(GitError::TooLarge { .. })
        ));
    }
}
