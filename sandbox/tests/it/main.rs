//! Sandbox acceptance: the real `kubectl` and the `kube` crate against it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed step fails the test"
)]

mod kube_client;
mod kubectl;
mod kubectl_rbac;
mod rbac;
mod rbac_rules;
mod schemas;
