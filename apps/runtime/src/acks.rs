//! Coalesced acknowledgements of one consuming channel: the messages a
//! consumer handled are acknowledged together, with one `basic.ack` and
//! `multiple` set up to the highest delivery tag below every message still
//! in hand — one frame, and on a quorum queue one settle command, for
//! several messages. An ack waits at most [`ACK_DELAY`], or until half the
//! prefetch window is waiting; an acked message above one still in hand
//! (a slow handler) is acknowledged alone, so nothing waits on another
//! message. Negative acknowledgements (retry, dead-letter, requeue) are never
//! coalesced: the consumer sends them at once, then [`Acks::settled`].
//!
//! What is not acknowledged yet when the channel dies is redelivered, as a
//! message in hand would be (handlers tolerate redelivery); a consumer that
//! stops [`Acks::flush`]es before it closes its channel.

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use lapin::{Channel, options::BasicAckOptions};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Longest wait of a handled message for its acknowledgement.
pub const ACK_DELAY: Duration = Duration::from_millis(20);

#[derive(Default)]
struct Tags {
    /// Delivered and not settled yet.
    in_hand: BTreeSet<u64>,
    /// Handled, their ack not sent yet.
    acked: BTreeSet<u64>,
}

/// The acknowledgements of one channel.
pub struct Acks {
    channel: Channel,
    tags: Mutex<Tags>,
    /// Acks waiting before a flush is due without waiting for [`ACK_DELAY`].
    batch: usize,
    wake: Notify,
}

/// What one flush sends: a multiple ack up to a tag, then single acks.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Flush {
    pub multiple: Option<u64>,
    pub single: Vec<u64>,
}

impl Tags {
    fn take_flush(&mut self) -> Flush {
        let floor = self.in_hand.first().copied();
        let mut flush = Flush::default();
        for tag in std::mem::take(&mut self.acked) {
            if floor.is_none_or(|f| tag < f) {
                flush.multiple = Some(tag);
            } else {
                flush.single.push(tag);
            }
        }
        flush
    }
}

impl Acks {
    /// The acks of `channel`, whose prefetch window is `prefetch`.
    pub fn new(channel: Channel, prefetch: u16) -> Arc<Self> {
        Arc::new(Self {
            channel,
            tags: Mutex::default(),
            batch: usize::from(prefetch / 2).max(1),
            wake: Notify::new(),
        })
    }

    fn tags(&self) -> std::sync::MutexGuard<'_, Tags> {
        self.tags.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A delivery was taken (in delivery order, before it is handled).
    pub fn delivered(&self, tag: u64) {
        self.tags().in_hand.insert(tag);
    }

    /// A delivery was handled: its ack goes with the next flush.
    pub fn ack(&self, tag: u64) {
        {
            let mut tags = self.tags();
            tags.in_hand.remove(&tag);
            tags.acked.insert(tag);
        }
        self.wake.notify_one();
    }

    /// A delivery was settled another way (a nack, an ack of its own).
    pub fn settled(&self, tag: u64) {
        self.tags().in_hand.remove(&tag);
    }

    /// Sends the acks waiting now.
    pub async fn flush(&self) -> lapin::Result<()> {
        let flush = self.tags().take_flush();
        if let Some(tag) = flush.multiple {
            self.channel
                .basic_ack(tag, BasicAckOptions { multiple: true })
                .await?;
        }
        for tag in flush.single {
            self.channel
                .basic_ack(tag, BasicAckOptions::default())
                .await?;
        }
        Ok(())
    }

    /// Flushes until `stop`: at most [`ACK_DELAY`] after the first waiting
    /// ack, at once when half the prefetch window waits; a last flush when
    /// stopped.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                () = self.wake.notified() => {}
            }
            let delay = tokio::time::sleep(ACK_DELAY);
            tokio::pin!(delay);
            while self.tags().acked.len() < self.batch {
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = &mut delay => break,
                    () = self.wake.notified() => {}
                }
            }
            self.flush_logged().await;
        }
        self.flush_logged().await;
    }

    async fn flush_logged(&self) {
        if let Err(e) = self.flush().await {
            tracing::warn!(error = %e, "could not acknowledge messages; the broker will redeliver them");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(in_hand: &[u64], acked: &[u64]) -> Tags {
        Tags {
            in_hand: in_hand.iter().copied().collect(),
            acked: acked.iter().copied().collect(),
        }
    }

    #[test]
    fn handled_messages_below_every_one_in_hand_go_as_one_multiple_ack() {
        let mut t = tags(&[7], &[1, 2, 3, 5]);
        assert_eq!(
            t.take_flush(),
            Flush {
                multiple: Some(5),
                single: vec![]
            }
        );
        assert!(t.acked.is_empty());
    }

    #[test]
    fn a_handled_message_above_one_in_hand_is_acked_alone() {
        // 4 is still being handled: a multiple ack up to 6 would settle it.
        let mut t = tags(&[4], &[2, 3, 5, 6]);
        assert_eq!(
            t.take_flush(),
            Flush {
                multiple: Some(3),
                single: vec![5, 6]
            }
        );
    }

    #[test]
    fn with_nothing_in_hand_every_handled_message_goes_in_the_multiple_ack() {
        let mut t = tags(&[], &[8, 9]);
        assert_eq!(
            t.take_flush(),
            Flush {
                multiple: Some(9),
                single: vec![]
            }
        );
        assert_eq!(t.take_flush(), Flush::default());
    }
}
