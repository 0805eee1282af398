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
// The forge crate's fake forges and prism launcher, shared as source: one
// fake and one validating proxy serve both test suites.
#[allow(
    dead_code,
    reason = "shared with forge/tests: not every helper is used here"
)]
#[path = "../../forge/tests/fake/mod.rs"]
mod fake;
mod local;
mod monitoring;
#[allow(
    dead_code,
    reason = "shared with forge/tests: not every helper is used here"
)]
#[path = "../../forge/tests/it/prism.rs"]
mod prism;
mod process;
mod push_to_worker;
mod scale;
mod tenancy;
mod webhook;
