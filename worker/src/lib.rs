//! The pushsync worker library. From the bottom up: the parts
//! ([`git`] sources, [`render`], [`plan`], [`apply`], [`health`],
//! [`ignore`], [`routing`] rules, the Application [`index`], [`lease`]s,
//! [`retry`], [`metrics`]); one Application's [`sync`], stage by stage, and
//! its [`status`]; the [`context`] the loops share; and the [`loops`]
//! themselves, side by side. `main.rs` wires them to the [`config`];
//! `pushsync-local` runs them in one process for `make run`.

pub mod apply;
pub mod config;
pub mod context;
pub mod events;
pub mod git;
pub mod health;
pub mod http;
pub mod ignore;
pub mod index;
pub mod lease;
pub mod loops;
pub mod metrics;
pub mod paths;
pub mod plan;
pub mod render;
pub mod retry;
pub mod rollback;
pub mod routing;
pub mod status;
pub mod sync;
pub mod tenancy;

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
