//! Receiver integration tests: the real HTTP server on a loopback port, the
//! real RabbitMQ (see `pushsync_testkit::amqp`), real signed payloads.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed step fails the test"
)]

mod binary;
mod broker;
mod inputs;
mod limits;
mod support;
