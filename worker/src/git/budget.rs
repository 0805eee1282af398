//! The git cache's disk budget: the size of each cached repository, and
//! the least recently used ones removed when the total is over budget.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What the cache holds on disk, by repository directory.
#[derive(Debug, Default)]
pub(super) struct Usage {
    repos: HashMap<PathBuf, Entry>,
    /// Whether the directories present at start were counted.
    scanned: bool,
}

#[derive(Debug)]
struct Entry {
    bytes: u64,
    /// Found on disk at start (an earlier run's): older than anything
    /// this process used.
    earlier_run: bool,
    used: Instant,
    /// The URL it caches, when this process used it (directories found at
    /// start are known only by their hashed name).
    url: Option<String>,
}

/// A repository chosen for eviction.
#[derive(Debug)]
pub(super) struct Victim {
    pub(super) path: PathBuf,
    pub(super) url: Option<String>,
}

impl Usage {
    /// Count what is under `root` from an earlier run (once), as least
    /// recently used of all.
    pub(super) fn scan_once(&mut self, root: &Path) {
        if std::mem::replace(&mut self.scanned, true) {
            return;
        }
        let Ok(entries) = std::fs::read_dir(root) else {
            return;
        };
        let long_ago = Instant::now();
        for entry in entries.flatten() {
            let path = entry.path();
            // Left by an eviction that did not finish.
            if path
                .extension()
                .is_some_and(|e| e.to_string_lossy().starts_with("evicted-"))
            {
                let _ = std::fs::remove_dir_all(&path);
                continue;
            }
            if path.extension().is_some_and(|e| e == "git") && !self.repos.contains_key(&path) {
                let bytes = dir_size(&path);
                self.repos.insert(
                    path,
                    Entry {
                        bytes,
                        earlier_run: true,
                        used: long_ago,
                        url: None,
                    },
                );
            }
        }
    }

    /// `path` (caching `url`) was used now.
    pub(super) fn touch(&mut self, path: &Path, url: &str) {
        let entry = self.repos.entry(path.to_path_buf()).or_insert(Entry {
            bytes: 0,
            earlier_run: false,
            used: Instant::now(),
            url: None,
        });
        entry.earlier_run = false;
        entry.used = Instant::now();
        entry.url = Some(url.to_owned());
    }

    /// `path` now takes `bytes`.
    pub(super) fn measured(&mut self, path: &Path, bytes: u64) {
        if let Some(entry) = self.repos.get_mut(path) {
            entry.bytes = bytes;
        }
    }

    /// Bytes on disk in all.
    pub(super) fn total(&self) -> u64 {
        self.repos.values().map(|e| e.bytes).sum()
    }

    /// Least recently used first, never `keep`, until what is left fits
    /// `budget`; the chosen ones are no longer counted.
    pub(super) fn over_budget(&mut self, budget: u64, keep: &Path) -> Vec<Victim> {
        let mut total = self.total();
        if total <= budget {
            return Vec::new();
        }
        // An earlier run's first, then least recently used.
        let mut candidates: Vec<(bool, Instant, PathBuf)> = self
            .repos
            .iter()
            .filter(|(path, _)| path.as_path() != keep)
            .map(|(path, entry)| (!entry.earlier_run, entry.used, path.clone()))
            .collect();
        candidates.sort();
        let mut victims = Vec::new();
        for (_, _, path) in candidates {
            if total <= budget {
                break;
            }
            if let Some(entry) = self.repos.remove(&path) {
                total = total.saturating_sub(entry.bytes);
                victims.push(Victim {
                    path,
                    url: entry.url,
                });
            }
        }
        victims
    }

    /// Count `victim` again: it could not be removed (in use).
    pub(super) fn restore(&mut self, victim: Victim, bytes: u64) {
        self.repos.insert(
            victim.path,
            Entry {
                bytes,
                earlier_run: false,
                used: Instant::now(),
                url: victim.url,
            },
        );
    }
}

/// Bytes of the files under `path` (symlinks not followed; unreadable
/// entries count as nothing).
pub(super) fn dir_size(path: &Path) -> u64 {
    let mut total = 0;
    let mut pending = vec![path.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                pending.push(entry.path());
            } else {
                total += meta.len();
            }
        }
    }
    total
}

/// Remove a cached repository: renamed away first, so a resolve that
/// starts now finds no half-deleted repository but an empty slot.
pub(super) fn remove(path: &Path) -> std::io::Result<()> {
    let doomed = path.with_extension(format!("evicted-{}", std::process::id()));
    std::fs::rename(path, &doomed)?;
    std::fs::remove_dir_all(&doomed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_go_first_and_the_one_in_use_stays() {
        let mut usage = Usage::default();
        let (a, b, c) = (
            Path::new("/c/a.git"),
            Path::new("/c/b.git"),
            Path::new("/c/c.git"),
        );
        for (path, bytes) in [(a, 40), (b, 40), (c, 40)] {
            usage.touch(path, path.to_str().unwrap());
            usage.measured(path, bytes);
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        assert_eq!(usage.total(), 120);
        // `a` is the oldest but is the one just fetched: b goes.
        let victims = usage.over_budget(90, a);
        assert_eq!(
            victims.iter().map(|v| v.path.as_path()).collect::<Vec<_>>(),
            [b]
        );
        assert_eq!(usage.total(), 80);
        assert!(usage.over_budget(80, a).is_empty());
        // Nothing but the kept one left to evict: the budget is exceeded, not violated by deleting it.
        assert_eq!(usage.over_budget(10, a).len(), 1);
        assert!(usage.over_budget(10, a).is_empty());
    }
}
