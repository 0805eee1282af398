//! Renders of commits already seen: a commit's content never changes, so a
//! re-sync of an unchanged revision skips reading the tree and running
//! Kustomize or Helm.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use super::Manifest;
use super::budget::Footprint;

/// One render of a source at a commit, and the digest of its manifests
/// (computed once, not at every re-sync).
#[derive(Debug)]
pub struct Rendered {
    /// The validated manifests.
    pub manifests: Vec<Manifest>,
    /// FNV-1a over the manifests, in order.
    pub digest: u64,
    /// About how many bytes of memory the manifests take (what the cache
    /// counts).
    pub bytes: usize,
}

impl Rendered {
    /// Wrap `manifests`, computing their digest and size.
    pub fn new(manifests: Vec<Manifest>) -> Self {
        let digest = manifests.iter().fold(crate::FNV_OFFSET, |hash, m| {
            crate::fnv1a(hash, m.object.to_string().as_bytes())
        });
        // The in-memory estimate rather than the serialized length the
        // digest sees: a parsed manifest takes several times its JSON text
        // (a `Value` and a key `String` per node), and memory is what the
        // bound is for.
        let bytes = manifests
            .iter()
            .map(|m| {
                Footprint::of(&m.object)
                    .heap_bytes()
                    .saturating_add(m.source.len())
            })
            .fold(0, usize::saturating_add);
        Self {
            manifests,
            digest,
            bytes,
        }
    }
}

/// Rendered manifests per key (repository, commit, source, name,
/// destination), the oldest evicted past a number of entries or of bytes.
#[derive(Debug, Clone)]
pub struct RenderCache {
    entries: Arc<Mutex<Renders>>,
}

/// Renders by key, the keys oldest first (for eviction), and their bounds.
#[derive(Debug)]
struct Renders {
    map: HashMap<String, Arc<Rendered>>,
    order: VecDeque<String>,
    /// The sum of the entries' `Rendered::bytes`.
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
}

impl Default for RenderCache {
    fn default() -> Self {
        Self::bounded(Self::CAPACITY, Self::MAX_BYTES)
    }
}

impl RenderCache {
    const CAPACITY: usize = 256;
    /// An eighth of the worker's 1 GiB memory limit (`deploy/worker.yaml`),
    /// the rest left to the syncs running at once. 256 renders the size of
    /// sock-shop (29 manifests, ~240 KB each in memory) take ~60 MiB, so for
    /// ordinary sources the entry count still decides; a few huge renders
    /// evict the rest, and one larger than this is not kept.
    const MAX_BYTES: usize = 128 * 1024 * 1024;

    fn bounded(max_entries: usize, max_bytes: usize) -> Self {
        Self {
            entries: Arc::new(Mutex::new(Renders {
                map: HashMap::new(),
                order: VecDeque::new(),
                bytes: 0,
                max_entries,
                max_bytes,
            })),
        }
    }

    /// The render stored under `key`.
    pub fn get(&self, key: &str) -> Option<Arc<Rendered>> {
        let entries = self.entries.lock().ok()?;
        entries.map.get(key).cloned()
    }

    /// Store a render under `key`, unless it alone is larger than the cache.
    pub fn put(&self, key: String, rendered: Arc<Rendered>) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        let entries = &mut *entries;
        if rendered.bytes > entries.max_bytes {
            return;
        }
        entries.bytes = entries.bytes.saturating_add(rendered.bytes);
        match entries.map.insert(key.clone(), rendered) {
            Some(previous) => entries.bytes = entries.bytes.saturating_sub(previous.bytes),
            None => entries.order.push_back(key),
        }
        while entries.order.len() > entries.max_entries || entries.bytes > entries.max_bytes {
            let Some(oldest) = entries.order.pop_front() else {
                break;
            };
            if let Some(evicted) = entries.map.remove(&oldest) {
                entries.bytes = entries.bytes.saturating_sub(evicted.bytes);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A render of `count` ConfigMaps, each holding `data_bytes` of data.
    fn rendered(count: usize, data_bytes: usize) -> Arc<Rendered> {
        let manifests = (0..count)
            .map(|i| Manifest {
                object: serde_json::json!({
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": format!("c{i}")},
                    "data": {"blob": "x".repeat(data_bytes)},
                }),
                source: format!("c{i}.yaml#0"),
            })
            .collect();
        Arc::new(Rendered::new(manifests))
    }

    #[test]
    fn a_render_knows_about_how_much_memory_it_holds() {
        let small = rendered(1, 0);
        let large = rendered(1, 1024 * 1024);
        assert!(small.bytes > 0);
        assert!(small.bytes < 2048, "{}", small.bytes);
        assert!(large.bytes > 1024 * 1024, "{}", large.bytes);
        assert!(large.bytes < 1024 * 1024 + 2048, "{}", large.bytes);
    }

    #[test]
    fn a_few_huge_renders_cannot_fill_the_cache_past_its_bytes() {
        // Each render is ~1 MiB; the cache holds 3.5 MiB.
        let cache = RenderCache::bounded(256, 3 * 1024 * 1024 + 512 * 1024);
        for i in 0..10 {
            cache.put(format!("k{i}"), rendered(1, 1024 * 1024));
        }
        let kept: Vec<usize> = (0..10)
            .filter(|i| cache.get(&format!("k{i}")).is_some())
            .collect();
        assert_eq!(kept, [7, 8, 9], "the newest that fit are kept");
        let entries = cache.entries.lock().unwrap();
        assert!(entries.bytes <= entries.max_bytes);
        assert_eq!(
            entries.bytes,
            entries.map.values().map(|r| r.bytes).sum::<usize>()
        );
        drop(entries);

        // One render larger than the whole cache is not kept (and evicts nothing).
        cache.put("huge".into(), rendered(4, 1024 * 1024));
        assert!(cache.get("huge").is_none());
        assert!(cache.get("k9").is_some());

        // Storing a key again replaces its entry and its bytes.
        cache.put("k9".into(), rendered(1, 10));
        let entries = cache.entries.lock().unwrap();
        assert_eq!(entries.order.len(), 3);
        assert_eq!(
            entries.bytes,
            entries.map.values().map(|r| r.bytes).sum::<usize>()
        );
    }

    #[test]
    fn the_entry_count_still_bounds_the_cache() {
        let cache = RenderCache::bounded(2, usize::MAX);
        for i in 0..3 {
            cache.put(format!("k{i}"), rendered(1, 0));
        }
        assert!(cache.get("k0").is_none());
        assert!(cache.get("k1").is_some() && cache.get("k2").is_some());
    }
}
