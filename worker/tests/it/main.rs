//! The worker against real parts: RabbitMQ, repositories served by `git
//! daemon`, and the Kubernetes API sandbox (or a real cluster where a test
//! says so). Unit tests beside the code need none of these.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed step fails the test"
)]

mod annotations;
mod apply;
mod dispatch;
mod index;
mod lease;
mod poll;
mod reconcile;
mod status;
mod support;
mod sync;
mod sync_loop;
mod tenancy;
