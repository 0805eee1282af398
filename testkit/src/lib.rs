//! Test support for pushsync: webhook fixtures and signatures, RabbitMQ helpers,
//! real git repositories served by `git daemon`, and a TCP proxy a test can
//! cut. Only ever a dev-dependency.

pub mod amqp;
pub mod git;
pub mod proxy;
pub mod sign;

use std::path::PathBuf;

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// The bytes of a webhook fixture in `testdata/webhooks/` (payloads published
/// by the forges or long-lived webhook libraries, kept verbatim).
pub fn webhook_fixture(name: &str) -> Vec<u8> {
    let path = repo_root().join("testdata/webhooks").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("read fixture {}: {e}", path.display()))
}
