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
