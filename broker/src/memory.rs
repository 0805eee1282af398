//! The in-memory backend: a bounded FIFO for `make run` and tests without a broker.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::{Outgoing, PublishError};

/// A bounded in-process FIFO of published messages. Nothing survives the
/// process; use it only where losing queued messages on exit is acceptable.
#[derive(Debug, Clone)]
pub struct MemoryQueue {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    capacity: usize,
    messages: Mutex<VecDeque<Outgoing>>,
    available: Notify,
}

impl MemoryQueue {
    /// A queue that refuses publishes once it holds `capacity` messages.
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                capacity,
                messages: Mutex::new(VecDeque::new()),
                available: Notify::new(),
            }),
        }
    }

    pub(crate) fn push_all(&self, messages: &[Outgoing]) -> Result<(), PublishError> {
        {
            let mut queue = self.lock();
            if queue.len() + messages.len() > self.inner.capacity {
                return Err(PublishError::QueueFull);
            }
            queue.extend(messages.iter().cloned());
        }
        // Wakes every `pop` that created its `Notified` before this point,
        // polled or not, so a pop racing with this push cannot miss it.
        self.inner.available.notify_waiters();
        Ok(())
    }

    /// Take the oldest message, waiting for one if the queue is empty.
    pub async fn pop(&self) -> Outgoing {
        loop {
            let notified = self.inner.available.notified();
            if let Some(message) = self.try_pop() {
                return message;
            }
            notified.await;
        }
    }

    /// Take the oldest message published to `exchange`, waiting for one.
    pub async fn pop_from(&self, exchange: &str) -> Outgoing {
        loop {
            let notified = self.inner.available.notified();
            {
                let mut queue = self.lock();
                if let Some(index) = queue.iter().position(|m| m.exchange == exchange)
                    && let Some(message) = queue.remove(index)
                {
                    return message;
                }
            }
            notified.await;
        }
    }

    /// Take the oldest message if there is one.
    pub fn try_pop(&self) -> Option<Outgoing> {
        self.lock().pop_front()
    }

    /// How many messages are waiting.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no message is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Outgoing>> {
        // A poisoned lock only means another thread panicked mid-push; the
        // VecDeque itself is still consistent, so keep using it.
        self.inner
            .messages
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: &str) -> Outgoing {
        Outgoing {
            exchange: "x".into(),
            routing_key: "push.github".into(),
            message_id: id.into(),
            schema: "push/v1",
            body: b"{}".to_vec(),
        }
    }

    #[tokio::test]
    async fn messages_come_out_in_order() {
        let queue = MemoryQueue::new(10);
        queue.push_all(&[msg("a"), msg("b")]).unwrap();
        assert_eq!(queue.pop().await.message_id, "a");
        assert_eq!(queue.pop().await.message_id, "b");
        assert!(queue.is_empty());
    }

    #[tokio::test]
    async fn a_batch_that_does_not_fit_is_refused_whole() {
        let queue = MemoryQueue::new(2);
        queue.push_all(&[msg("a")]).unwrap();
        let err = queue.push_all(&[msg("b"), msg("c")]).unwrap_err();
        assert!(matches!(err, PublishError::QueueFull));
        assert_eq!(queue.len(), 1);
    }

    #[tokio::test]
    async fn pop_waits_for_a_publish() {
        let queue = MemoryQueue::new(2);
        let waiter = tokio::spawn({
            let queue = queue.clone();
            async move { queue.pop().await.message_id }
        });
        tokio::task::yield_now().await;
        queue.push_all(&[msg("late")]).unwrap();
        assert_eq!(waiter.await.unwrap(), "late");
    }
}
