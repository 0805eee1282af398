//! The pushsync worker library: dispatch (which Applications a push affects),
//! the git source cache, rendering, planning, applying, health, one
//! Application's sync and its status, the Application index, and the two
//! queue loops that tie them together (`pipeline`). `main.rs` wires them to
//! the configuration; `pushsync-local` runs them in one process for `make run`.

pub mod apply;
pub mod assemble;
pub mod dispatch;
pub mod drift;
pub mod git;
pub mod health;
pub mod ignore;
pub mod index;
pub mod lease;
pub mod metrics;
pub mod pipeline;
pub mod plan;
pub mod poll;
pub mod render;
pub mod status;
pub mod sync;
pub mod syncer;

/// FNV-1a over `bytes`, continuing from `hash` (start with [`FNV_OFFSET`]):
/// stable across processes and versions, unlike std's hasher. A change
/// detector and name shortener, not a security boundary.
pub(crate) fn fnv1a(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// FNV-1a's starting value.
pub(crate) const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
