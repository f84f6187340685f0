//! The outbox relay (web role): publishes committed events to the app's
//! destination exchange with publisher confirms, and deletes their outbox
//! rows only once the broker confirmed them — with the next batch read, in
//! one statement (`EventStore::outbox_next`). It starts from whatever is left
//! in the outbox, so events committed before a crash are delivered after the
//! restart; a crash between publish and delete re-publishes (at-least-once:
//! consumers tolerate duplicates). Of several web replicas on one
//! PostgreSQL store, one relays at a time (`EventStore::relay_lease`).
//!
//! Neither a broker restart nor a store restart stops it: it publishes on a
//! channel of the process's [`BrokerLink`] connection and opens a new one on
//! the link's next connection; it checks its lease and takes it again once
//! the lease's connection died (see [`Relay::run`]).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use lapin::{
    BasicProperties, Channel, options::BasicPublishOptions, options::ConfirmSelectOptions,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{
    broker::BrokerLink,
    cloudevent::CloudEvent,
    metrics::Metrics,
    store::{EventStore, RelayLease},
};

const BATCH: i64 = 256;
/// Poll interval when nobody notifies (other replicas' commits, restarts).
const IDLE_POLL: Duration = Duration::from_millis(500);
/// How often the relay makes sure it still holds its lease (one `SELECT 1`
/// on the lease's connection), and at once after a store error.
const LEASE_CHECK: Duration = Duration::from_millis(500);
/// How often the relay compacts the outbox while it publishes
/// (`EventStore::compact_outbox`).
const COMPACT_EVERY: Duration = Duration::from_secs(2);
/// Longest wait for the broker's confirms of one batch; past it the channel
/// is given up and the batch published again on a new one.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Relay {
    pub store: EventStore,
    /// The process's broker connection; the relay opens its channel on it.
    pub link: BrokerLink,
    pub exchange: String,
    pub self_url: String,
    pub collection_of: fn(&str) -> &'static str,
    pub notify: Arc<Notify>,
    pub metrics: Metrics,
    /// Test hook: exit the process before publishing anything.
    pub fault_exit_after_commit: bool,
}

#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("broker: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("broker refused event at position {0}")]
    Nacked(i64),
    #[error("no confirm from the broker within {0:?}")]
    Unconfirmed(Duration),
}

impl Relay {
    /// Relays until `cancel`. Survives the broker and the store going away:
    /// without a broker connection it waits for the link's next one (the
    /// outbox keeps what is committed meanwhile, and the relay drains it in
    /// position order once the broker is back); it checks its lease every
    /// [`LEASE_CHECK`] and takes it again when its connection died.
    pub async fn run(self, cancel: CancellationToken) {
        let mut lease: Option<RelayLease> = None;
        let mut lease_checked = Instant::now();
        let mut channel: Option<Channel> = None;
        let mut compacted = Instant::now();
        let mut published_since_compact = false;
        // Positions the broker confirmed and the outbox still holds: deleted
        // by the next batch read (`EventStore::outbox_next`), or on the way out.
        let mut confirmed: Vec<i64> = Vec::new();
        loop {
            if cancel.is_cancelled() {
                self.flush(&confirmed).await;
                return;
            }
            if let Some(held) = &mut lease
                && lease_checked.elapsed() >= LEASE_CHECK
            {
                lease_checked = Instant::now();
                if !held.holds().await {
                    tracing::warn!(
                        "lost the relay lease (its store connection closed); taking it again"
                    );
                    lease = None;
                }
            }
            if lease.is_none() {
                lease = match self.store.relay_lease().await {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot take the relay lease");
                        None
                    }
                };
                lease_checked = Instant::now();
            }
            if lease.is_none() {
                // Another replica relays; take over if it goes away.
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(IDLE_POLL) => {}
                }
                continue;
            }
            let Some(open) = channel.as_ref().filter(|c| c.status().connected()) else {
                channel = self.open_channel(&cancel).await;
                continue;
            };
            let published = match self.publish_batch(open, &mut confirmed).await {
                Ok(n) => n,
                Err(e) if !open.status().connected() => {
                    tracing::warn!(error = %e, "the relay lost its channel; publishing again on the next broker connection");
                    channel = None;
                    continue;
                }
                Err(e) => {
                    tracing::error!(error = %e, "outbox relay failed; retrying");
                    if matches!(e, RelayError::Unconfirmed(_)) {
                        channel = None;
                    }
                    // Maybe the store went away with the lease: check it now.
                    lease_checked = Instant::now()
                        .checked_sub(LEASE_CHECK)
                        .unwrap_or(lease_checked);
                    0
                }
            };
            published_since_compact |= published > 0;
            if published_since_compact && compacted.elapsed() >= COMPACT_EVERY {
                compacted = Instant::now();
                published_since_compact = false;
                if let Err(e) = self.store.compact_outbox().await {
                    tracing::warn!(error = %e, "could not compact the outbox");
                }
            }
            // Only a full batch may have left more behind it; after a shorter
            // one, what was committed meanwhile has notified (a stored
            // permit wakes the wait at once), so no read comes back empty
            // just to learn that nothing is left.
            if (published as i64) < BATCH {
                tokio::select! {
                    () = cancel.cancelled() => {
                        self.flush(&confirmed).await;
                        return;
                    }
                    () = self.notify.notified() => {}
                    () = tokio::time::sleep(IDLE_POLL) => {}
                }
            }
        }
    }

    /// A channel with publisher confirms on the link's connection, waiting
    /// for one; `None` when cancelled or when opening failed (the caller
    /// loops: the next attempt waits for a live connection again).
    async fn open_channel(&self, cancel: &CancellationToken) -> Option<Channel> {
        let connection = self.link.connection(cancel).await?;
        let opened = async {
            let channel = connection.create_channel().await?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
            lapin::Result::Ok(channel)
        };
        match opened.await {
            Ok(channel) => Some(channel),
            Err(e) => {
                tracing::warn!(error = %e, "the relay cannot open a channel yet");
                tokio::select! {
                    () = cancel.cancelled() => {}
                    () = tokio::time::sleep(IDLE_POLL) => {}
                }
                None
            }
        }
    }

    /// Deletes what the broker confirmed before the relay stops, so that a
    /// replica taking over does not publish it again.
    async fn flush(&self, confirmed: &[i64]) {
        if let Err(e) = self.store.outbox_done(confirmed).await {
            tracing::warn!(error = %e, "could not mark the last confirmed events published");
        }
    }

    /// Publishes the next batch. `confirmed` holds what the broker confirmed
    /// last time: the batch read deletes it in the same statement, and the
    /// batch's own confirmed positions take its place.
    async fn publish_batch(
        &self,
        channel: &Channel,
        confirmed: &mut Vec<i64>,
    ) -> Result<usize, RelayError> {
        let batch = self.store.outbox_next(confirmed, BATCH).await?;
        confirmed.clear();
        if batch.is_empty() {
            self.metrics.outbox_pending.set(0);
            return Ok(0);
        }
        if self.fault_exit_after_commit {
            tracing::error!(
                position = batch[0].position,
                "fault hook: exiting after commit, before publish"
            );
            std::process::exit(86);
        }
        let mut confirms = Vec::with_capacity(batch.len());
        for e in &batch {
            let ce = CloudEvent::of(e, (self.collection_of)(&e.aggregate_type), &self.self_url);
            let props = BasicProperties::default()
                .with_content_type(crate::cloudevent::CONTENT_TYPE.into())
                .with_message_id(ce.id.as_str().into())
                .with_type(ce.event_type.as_str().into())
                .with_delivery_mode(2);
            let confirm = channel
                .basic_publish(
                    self.exchange.as_str().into(),
                    ce.routing_key().as_str().into(),
                    BasicPublishOptions::default(),
                    &ce.to_json(),
                    props,
                )
                .await?;
            confirms.push((e.position, confirm));
        }
        let outcome = tokio::time::timeout(CONFIRM_TIMEOUT, async {
            for (position, confirm) in confirms {
                if !confirm.await?.is_ack() {
                    return Err(RelayError::Nacked(position));
                }
                confirmed.push(position);
            }
            Ok(())
        })
        .await
        .unwrap_or(Err(RelayError::Unconfirmed(CONFIRM_TIMEOUT)));
        // What the broker confirmed is done, even when the rest failed (a
        // lost channel): the next read deletes it, so fewer duplicates when
        // the rest is published again.
        outcome?;
        let done = confirmed.len();
        self.metrics.events_published.inc_by(done as u64);
        // A full batch may have left more: count them (one statement; the
        // rows just confirmed are still there); after a shorter one the next
        // read finds what was committed meanwhile.
        let pending = if batch.len() as i64 == BATCH {
            (self.store.outbox_pending().await? - done as i64).max(0)
        } else {
            0
        };
        self.metrics.outbox_pending.set(pending);
        Ok(done)
    }
}
