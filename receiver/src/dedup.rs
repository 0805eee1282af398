//! Redelivery detection: remembers recent delivery ids for a bounded time and count.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

/// Delivery ids seen recently. A forge redelivers with the same id (manually,
/// or after a timeout); such a delivery is answered "duplicate" and not
/// published again.
///
/// Only deliveries that were published are remembered, so a delivery that got
/// 503 is published when it comes back. The memory is per process: with
/// several receiver replicas a redelivery can reach another one and be
/// published twice, which consumers tolerate (sync jobs are idempotent).
#[derive(Debug)]
pub struct Dedup {
    window: Duration,
    capacity: usize,
    seen: Mutex<Seen>,
}

/// Ids are kept as 128-bit digests: a fixed 16 bytes however long the id, so
/// the memory bound is `capacity` × ~80 bytes (8 MB at the default 100,000),
/// and a false "duplicate" would need a SHA-256 collision in 128 bits.
type Digest = u128;

fn digest(key: &str) -> Digest {
    let hash = Sha256::digest(key.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hash[..16]);
    u128::from_le_bytes(bytes)
}

#[derive(Debug, Default)]
struct Seen {
    at: HashMap<Digest, Instant>,
    order: VecDeque<(Instant, Digest)>,
}

impl Dedup {
    /// Remember ids for `window`, at most `capacity` of them (oldest dropped first).
    pub fn new(window: Duration, capacity: usize) -> Self {
        Self {
            window,
            capacity,
            seen: Mutex::new(Seen::default()),
        }
    }

    /// Whether `key` was recorded within the window.
    pub fn contains(&self, key: &str, now: Instant) -> bool {
        let key = digest(key);
        let mut seen = self.lock();
        seen.expire(now, self.window);
        seen.at.contains_key(&key)
    }

    /// Remember `key` as published at `now`.
    pub fn record(&self, key: &str, now: Instant) {
        if self.window.is_zero() {
            return;
        }
        let key = digest(key);
        let mut seen = self.lock();
        seen.expire(now, self.window);
        while seen.order.len() >= self.capacity {
            if let Some((_, oldest)) = seen.order.pop_front() {
                seen.at.remove(&oldest);
            }
        }
        if seen.at.insert(key, now).is_none() {
            seen.order.push_back((now, key));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Seen {
    fn expire(&mut self, now: Instant, window: Duration) {
        while let Some((at, _)) = self.order.front() {
            if now.duration_since(*at) < window {
                break;
            }
            if let Some((_, key)) = self.order.pop_front() {
                self.at.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_remembered_for_the_window_only() {
        let dedup = Dedup::new(Duration::from_secs(60), 10);
        let t0 = Instant::now();
        assert!(!dedup.contains("a", t0));
        dedup.record("a", t0);
        assert!(dedup.contains("a", t0 + Duration::from_secs(59)));
        assert!(!dedup.contains("a", t0 + Duration::from_secs(60)));
    }

    #[test]
    fn the_oldest_ids_make_room_when_full() {
        let dedup = Dedup::new(Duration::from_secs(60), 2);
        let t0 = Instant::now();
        for id in ["a", "b", "c"] {
            dedup.record(id, t0);
        }
        assert!(!dedup.contains("a", t0));
        assert!(dedup.contains("b", t0));
        assert!(dedup.contains("c", t0));
    }
}
