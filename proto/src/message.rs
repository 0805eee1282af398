//! The versioned envelope every queue message travels in.

use serde::{Deserialize, Serialize};

use crate::{PushEvent, SyncJob};

/// MIME type of every message body.
pub const CONTENT_TYPE: &str = "application/json";

/// A queue message, tagged with its schema and version in the `schema` field.
///
/// ```json
/// {"schema": "push/v1", "provider": "github", "delivery_id": "…", …}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "schema")]
pub enum Message {
    /// A push event, version 1.
    #[serde(rename = "push/v1")]
    PushV1(PushEvent),
    /// A sync job, version 1.
    #[serde(rename = "sync-job/v1")]
    SyncJobV1(SyncJob),
}

/// Why bytes off the queue are not a message this build understands.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The body is not JSON, or not an object with a `schema` field.
    #[error("message is not a JSON object with a schema field")]
    NotAnEnvelope(#[source] serde_json::Error),
    /// The `schema` names a message kind or version this build does not know
    /// (published by a newer part during a rolling upgrade, or garbage).
    #[error("unknown message schema {schema:?}")]
    UnknownSchema {
        /// The schema the message claims.
        schema: String,
    },
    /// The schema is known but the fields do not match it.
    #[error("message of schema {schema:?} does not match that schema")]
    Invalid {
        /// The schema the message claims.
        schema: String,
        /// What serde found wrong.
        #[source]
        source: serde_json::Error,
    },
}

impl Message {
    /// The schema tag of this message (`push/v1`, …).
    pub fn schema(&self) -> &'static str {
        match self {
            Self::PushV1(_) => "push/v1",
            Self::SyncJobV1(_) => "sync-job/v1",
        }
    }

    /// Serialise to the JSON body put on the queue.
    ///
    /// Plain data with string keys: this fails only if a future field type
    /// cannot be represented in JSON, which the golden tests would catch.
    pub fn encode(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    /// Parse a body taken off the queue.
    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        #[derive(Deserialize)]
        struct Envelope {
            schema: String,
        }
        let envelope: Envelope =
            serde_json::from_slice(body).map_err(DecodeError::NotAnEnvelope)?;
        match serde_json::from_slice(body) {
            Ok(message) => Ok(message),
            Err(source) => {
                if KNOWN_SCHEMAS.contains(&envelope.schema.as_str()) {
                    Err(DecodeError::Invalid {
                        schema: envelope.schema,
                        source,
                    })
                } else {
                    Err(DecodeError::UnknownSchema {
                        schema: envelope.schema,
                    })
                }
            }
        }
    }
}

const KNOWN_SCHEMAS: &[&str] = &["push/v1", "sync-job/v1"];

#[cfg(test)]
mod tests;
