//! The outbox relay (web role): publishes committed events to the app's
//! destination exchange with publisher confirms, and deletes their outbox
//! rows only once the broker confirmed them. It starts from whatever is left
//! in the outbox, so events committed before a crash are delivered after the
//! restart; a crash between publish and delete re-publishes (at-least-once:
//! consumers tolerate duplicates). Of several web replicas on one
//! PostgreSQL store, one relays at a time (`EventStore::relay_lease`).

use std::{sync::Arc, time::Duration};

use lapin::{
    BasicProperties, Channel, options::BasicPublishOptions, options::ConfirmSelectOptions,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{cloudevent::CloudEvent, metrics::Metrics, store::EventStore};

const BATCH: i64 = 256;
/// Poll interval when nobody notifies (other replicas' commits, restarts).
const IDLE_POLL: Duration = Duration::from_millis(500);

pub struct Relay {
    pub store: EventStore,
    pub channel: Channel,
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
}

impl Relay {
    pub async fn run(self, cancel: CancellationToken) -> lapin::Result<()> {
        self.channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let mut lease = None;
        loop {
            if lease.is_none() {
                lease = match self.store.relay_lease().await {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot take the relay lease");
                        None
                    }
                };
            }
            if lease.is_none() {
                // Another replica relays; take over if it goes away.
                tokio::select! {
                    () = cancel.cancelled() => return Ok(()),
                    () = tokio::time::sleep(IDLE_POLL) => {}
                }
                continue;
            }
            let published = match self.publish_batch().await {
                Ok(n) => n,
                // A closed channel cannot recover: stop, the process restarts.
                Err(RelayError::Amqp(e)) if !self.channel.status().connected() => return Err(e),
                Err(e) => {
                    tracing::error!(error = %e, "outbox relay failed; retrying");
                    if matches!(e, RelayError::Store(_)) {
                        // The lease's own connection may be gone with the
                        // store (a restart): take the lease again.
                        lease = None;
                    }
                    0
                }
            };
            if published == 0 {
                tokio::select! {
                    () = cancel.cancelled() => return Ok(()),
                    () = self.notify.notified() => {}
                    () = tokio::time::sleep(IDLE_POLL) => {}
                }
            } else if cancel.is_cancelled() {
                return Ok(());
            }
        }
    }

    async fn publish_batch(&self) -> Result<usize, RelayError> {
        let batch = self.store.outbox_batch(BATCH).await?;
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
            let confirm = self
                .channel
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
        let mut done = Vec::with_capacity(confirms.len());
        for (position, confirm) in confirms {
            if !confirm.await?.is_ack() {
                self.store.outbox_done(&done).await?;
                return Err(RelayError::Nacked(position));
            }
            done.push(position);
        }
        self.store.outbox_done(&done).await?;
        self.metrics.events_published.inc_by(done.len() as u64);
        self.metrics
            .outbox_pending
            .set(self.store.outbox_pending().await?);
        Ok(done.len())
    }
}
