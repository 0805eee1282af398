//! Renders of commits already seen: a commit's content never changes, so a
//! re-sync of an unchanged revision skips reading the tree and running
//! Kustomize or Helm.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use super::Manifest;

/// One render of a source at a commit, and the digest of its manifests
/// (computed once, not at every re-sync).
#[derive(Debug)]
pub struct Rendered {
    /// The validated manifests.
    pub manifests: Vec<Manifest>,
    /// FNV-1a over the manifests, in order.
    pub digest: u64,
}

impl Rendered {
    /// Wrap `manifests`, computing their digest.
    pub fn new(manifests: Vec<Manifest>) -> Self {
        let digest = manifests.iter().fold(crate::FNV_OFFSET, |hash, m| {
            crate::fnv1a(hash, m.object.to_string().as_bytes())
        });
        Self { manifests, digest }
    }
}

/// Rendered manifests per key (repository, commit, source, name,
/// destination), the oldest evicted past a fixed capacity.
#[derive(Debug, Clone, Default)]
pub struct RenderCache {
    entries: Arc<Mutex<Renders>>,
}

/// Renders by key, and the keys oldest first (for eviction).
type Renders = (HashMap<String, Arc<Rendered>>, VecDeque<String>);

impl RenderCache {
    const CAPACITY: usize = 256;

    /// The render stored under `key`.
    pub fn get(&self, key: &str) -> Option<Arc<Rendered>> {
        let entries = self.entries.lock().ok()?;
        entries.0.get(key).cloned()
    }

    /// Store a render under `key`.
    pub fn put(&self, key: String, rendered: Arc<Rendered>) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        let (map, order) = &mut *entries;
        if map.insert(key.clone(), rendered).is_none() {
            order.push_back(key);
        }
        while order.len() > Self::CAPACITY {
            if let Some(oldest) = order.pop_front() {
                map.remove(&oldest);
            }
        }
    }
}
