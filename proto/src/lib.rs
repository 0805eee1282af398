//! The pushsync wire contract.
//!
//! Everything that crosses the queue is defined here and nowhere else: the
//! normalised [`PushEvent`] the receiver publishes, the [`SyncJob`] workers hand
//! each other, the names of exchanges and queues ([`Topology`]), and the
//! normalised identity of a Git repository ([`RepoId`]).
//!
//! Invariants:
//! - This crate does no I/O and depends on no runtime, broker, HTTP or
//!   Kubernetes crate; it only describes data.
//! - Every message is wrapped in an envelope ([`Message`]) whose `schema` tag
//!   names its version. Consumers decode every version they know and reject the
//!   rest with [`DecodeError::UnknownSchema`]; producers publish the oldest version
//!   the fleet understands, so old and new workers coexist during a rolling
//!   upgrade. Fields are only ever added within a version (with defaults), never
//!   renamed or removed.

mod message;
mod push;
mod redact;
mod repo;
mod sync;
mod sync_request;
mod topology;

pub use message::{CONTENT_TYPE, DecodeError, Message};
pub use push::{ChangedPaths, GitRef, Provider, PushEvent, RefKind, Repository};
pub use redact::redact_url;
pub use repo::{RepoId, RepoIdError};
pub use sync::{AppRef, ResourceSelector, SyncJob, SyncTrigger};
pub use sync_request::SyncRequest;
pub use topology::Topology;
