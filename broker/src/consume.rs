//! Consuming: deliveries that are acknowledged only when the work is done.
//!
//! A [`Consumer`] survives broker reconnects: when its channel dies it waits
//! for the supervisor to reconnect and subscribes again. Deliveries that were
//! not acknowledged before a connection died come back (redelivered), so
//! handlers must be idempotent.

use std::sync::Arc;

use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::FieldTable;

use crate::amqp::Shared;
use crate::{ConnectionState, MemoryQueue, Outgoing};

/// Why acknowledging failed (the channel died: the message will come back).
#[derive(Debug, thiserror::Error)]
#[error("acknowledging a message failed")]
pub struct AckError(#[source] lapin::Error);

/// One message taken off a queue.
#[derive(Debug)]
pub struct Delivery {
    /// The body.
    pub body: Vec<u8>,
    /// The AMQP `message-id`, when set.
    pub message_id: Option<String>,
    /// Whether the broker delivered it before (a consumer died holding it).
    pub redelivered: bool,
    acker: Acker,
}

#[derive(Debug)]
enum Acker {
    Amqp(lapin::Acker),
    Memory {
        queue: MemoryQueue,
        message: Box<Outgoing>,
    },
}

impl Delivery {
    /// The work is done: forget the message.
    pub async fn ack(self) -> Result<(), AckError> {
        match self.acker {
            Acker::Amqp(acker) => acker
                .ack(BasicAckOptions::default())
                .await
                .map(|_| ())
                .map_err(AckError),
            Acker::Memory { .. } => Ok(()),
        }
    }

    /// Try again later: the message goes back to the queue.
    pub async fn retry(self) -> Result<(), AckError> {
        match self.acker {
            Acker::Amqp(acker) => acker
                .nack(BasicNackOptions {
                    requeue: true,
                    ..BasicNackOptions::default()
                })
                .await
                .map(|_| ())
                .map_err(AckError),
            Acker::Memory { queue, message } => {
                let _ = queue.push_all(std::slice::from_ref(&message));
                Ok(())
            }
        }
    }

    /// Never retry: the message goes to the dead-letter queue.
    pub async fn dead_letter(self) -> Result<(), AckError> {
        match self.acker {
            Acker::Amqp(acker) => acker
                .nack(BasicNackOptions {
                    requeue: false,
                    ..BasicNackOptions::default()
                })
                .await
                .map(|_| ())
                .map_err(AckError),
            Acker::Memory { message, .. } => {
                tracing::warn!(message_id = %message.message_id, "dropping a message the in-memory queue cannot dead-letter");
                Ok(())
            }
        }
    }
}

/// A subscription to one queue.
#[derive(Debug)]
pub struct Consumer {
    backend: Backend,
}

#[derive(Debug)]
enum Backend {
    Amqp {
        shared: Arc<Shared>,
        queue: String,
        prefetch: u16,
        current: Option<Box<(lapin::Channel, lapin::Consumer)>>,
    },
    Memory {
        queue: MemoryQueue,
        exchange: String,
    },
}

impl Consumer {
    pub(crate) fn amqp(shared: Arc<Shared>, queue: String, prefetch: u16) -> Self {
        Self {
            backend: Backend::Amqp {
                shared,
                queue,
                prefetch,
                current: None,
            },
        }
    }

    pub(crate) fn memory(queue: MemoryQueue, exchange: String) -> Self {
        Self {
            backend: Backend::Memory { queue, exchange },
        }
    }

    /// The next message; `None` once the broker was closed.
    pub async fn next(&mut self) -> Option<Delivery> {
        match &mut self.backend {
            Backend::Memory { queue, exchange } => {
                let message = queue.pop_from(exchange).await;
                Some(Delivery {
                    body: message.body.clone(),
                    message_id: Some(message.message_id.clone()),
                    redelivered: false,
                    acker: Acker::Memory {
                        queue: queue.clone(),
                        message: Box::new(message),
                    },
                })
            }
            Backend::Amqp {
                shared,
                queue,
                prefetch,
                current,
            } => loop {
                if current.is_none() {
                    let mut state = shared.state.subscribe();
                    let ready = state
                        .wait_for(|s| {
                            matches!(s, ConnectionState::Connected | ConnectionState::Closed)
                        })
                        .await
                        .map(|s| *s);
                    if !matches!(ready, Ok(ConnectionState::Connected)) {
                        return None;
                    }
                    let Some(connection) = shared.current_connection() else {
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    };
                    match subscribe(&connection, queue, *prefetch).await {
                        Ok(subscription) => *current = Some(Box::new(subscription)),
                        Err(error) => {
                            tracing::warn!(queue = %queue, error = %error, "subscribing failed; retrying");
                            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                            continue;
                        }
                    }
                }
                let Some(subscription) = current.as_mut() else {
                    continue;
                };
                let consumer = &mut subscription.1;
                match consumer.next().await {
                    Some(Ok(delivery)) => {
                        return Some(Delivery {
                            message_id: delivery
                                .properties
                                .message_id()
                                .as_ref()
                                .map(|id| id.to_string()),
                            redelivered: delivery.redelivered,
                            body: delivery.data,
                            acker: Acker::Amqp(delivery.acker),
                        });
                    }
                    Some(Err(error)) => {
                        tracing::warn!(queue = %queue, error = %error, "consumer failed; subscribing again");
                        *current = None;
                    }
                    None => *current = None,
                }
            },
        }
    }
}

async fn subscribe(
    connection: &lapin::Connection,
    queue: &str,
    prefetch: u16,
) -> Result<(lapin::Channel, lapin::Consumer), lapin::Error> {
    let channel = connection.create_channel().await?;
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    let consumer = channel
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok((channel, consumer))
}
