//! End-to-end tests across pushsync's shipped binaries: the receiver and the
//! worker as separate processes, talking through the real RabbitMQ.
//!
//! The binaries are the ones `cargo test --workspace` (and `make test`) builds
//! next to this test executable.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed step fails the test"
)]

mod cli;
mod cluster;
mod deploy;
mod local;
mod monitoring;
mod process;
mod push_to_worker;
mod scale;
mod tenancy;
