//! The consumer of one subscription (worker role): manual acks, a prefetch
//! window, at most `concurrency` messages handled at once, retries through
//! the group's retry queue and dead-lettering once `maxAttempts` is reached,
//! and a graceful drain (stop taking messages, finish the ones in hand).
//!
//! A failed message is republished — with publisher confirm — to the retry
//! queue with `x-eventflow-attempt` incremented, then acked; the retry queue's
//! TTL returns it to the group queue after the backoff. The attempt that
//! reaches `maxAttempts` is nacked without requeue, so the broker moves it to
//! the dead-letter exchange and queue (names from the contract crate).
//!
//! The consumer takes its connection from the process's [`BrokerLink`] and
//! outlives it: a lost channel is opened again on the link's next
//! connection (see [`Consumer::run`]).

use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use eventflow_contract::{Subscription, names::ATTEMPT_HEADER};
use futures_lite::StreamExt;
use lapin::{
    BasicProperties, Channel, Connection,
    message::Delivery,
    options::{
        BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions,
        BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions, QueueDeclareOptions,
    },
    types::{AMQPValue, FieldTable, ShortString},
};
use tokio::sync::Semaphore;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    broker::{Backoff, BrokerLink},
    cloudevent::CloudEvent,
    metrics::Metrics,
};

/// Longest wait for in-flight messages on shutdown.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(25);
/// How long closing the channel (and the connection) may take after the drain.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);

/// Why handling failed; the message is retried, then dead-lettered.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("not a CloudEvent: {0}")]
    Malformed(String),
    #[error("{0}")]
    Failed(String),
}

#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    #[error("broker: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("the broker stopped delivering from {0}")]
    Ended(String),
}

/// What handling did (`Ignored` when no function subscribes to the event).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Handled {
    Done,
    Ignored,
}

pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Handled, HandlerError>> + Send>>;
/// Handles one event; must tolerate redelivery.
pub type Handler = Arc<dyn Fn(CloudEvent) -> HandlerFuture + Send + Sync>;

pub struct Consumer {
    pub subscription: Subscription,
    pub handler: Handler,
    pub prefetch: u16,
    pub concurrency: usize,
    pub metrics: Metrics,
}

/// The attempts already made, from the message header (0 on first delivery).
pub fn attempts(properties: &BasicProperties) -> u32 {
    let value = properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(ATTEMPT_HEADER).cloned());
    match value {
        Some(AMQPValue::LongUInt(n)) => n,
        Some(AMQPValue::LongInt(n)) => u32::try_from(n).unwrap_or(0),
        Some(AMQPValue::LongLongInt(n)) => u32::try_from(n).unwrap_or(0),
        Some(AMQPValue::ShortUInt(n)) => n.into(),
        Some(AMQPValue::ShortInt(n)) => u32::try_from(n).unwrap_or(0),
        _ => 0,
    }
}

impl Consumer {
    /// Consumes until `cancel`, then drains. The channel lives as long as
    /// the link's connection: when it dies (a broker restart, the network),
    /// the consumer waits for the link's next connection and consumes again
    /// on a new channel; the messages in hand on the dead channel cannot be
    /// settled (logged) and the broker redelivers them (handlers tolerate
    /// redelivery). Ends with an error only when the broker stops
    /// delivering on a live connection because the queue is gone (deleted
    /// and not declared again): the process ends, and its restart waits
    /// until the topology is declared again.
    pub async fn run(
        self,
        link: BrokerLink,
        cancel: CancellationToken,
    ) -> Result<(), ConsumerError> {
        let permits = Arc::new(Semaphore::new(self.concurrency));
        let tracker = TaskTracker::new();
        let this = Arc::new(self);
        let queue = this.subscription.queue.clone();
        let mut backoff = Backoff::default();
        let mut ended: Option<ConsumerError> = None;
        let mut session: Option<(Channel, String)> = None;
        'connection: while let Some(connection) = link.connection(&cancel).await {
            let (channel, tag, mut deliveries) = match this.consume(&connection).await {
                Ok(consuming) => consuming,
                Err(e) if queue_missing(&e) && connection.status().connected() => {
                    ended = Some(ConsumerError::Ended(queue.clone()));
                    break;
                }
                Err(e) => {
                    let pause = backoff.next_pause();
                    tracing::warn!(error = %e, %queue, retry_in_ms = pause.as_millis() as u64, "cannot consume yet");
                    tokio::select! {
                        () = cancel.cancelled() => break,
                        () = tokio::time::sleep(pause) => continue,
                    }
                }
            };
            backoff.reset();
            session = Some((channel.clone(), tag));
            loop {
                let permit = tokio::select! {
                    () = cancel.cancelled() => break 'connection,
                    p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break 'connection },
                };
                let delivery = tokio::select! {
                    () = cancel.cancelled() => break 'connection,
                    d = deliveries.next() => d,
                };
                let why = match delivery {
                    Some(Ok(delivery)) => {
                        let (this, channel) = (this.clone(), channel.clone());
                        tracker.spawn(async move {
                            this.handle(&channel, delivery).await;
                            drop(permit);
                        });
                        continue;
                    }
                    Some(Err(e)) => ConsumerError::Amqp(e),
                    None => ConsumerError::Ended(queue.clone()),
                };
                if !channel.status().connected() || !connection.status().connected() {
                    tracing::warn!(error = %why, %queue, "lost the channel; consuming again on the next broker connection");
                    continue 'connection;
                }
                // The broker cancelled the consumer on a live channel: the
                // queue was deleted — or went away with its node and is back.
                match queue_exists(&connection, &queue).await {
                    Ok(true) => {
                        tracing::warn!(error = %why, %queue, "the broker cancelled the consumer; consuming again");
                        let _ = tokio::time::timeout(
                            CLOSE_TIMEOUT,
                            channel.close(200, "cancelled".into()),
                        )
                        .await;
                        continue 'connection;
                    }
                    Ok(false) => {
                        ended = Some(why);
                        break 'connection;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, %queue, "lost the broker while checking the queue; consuming again on the next connection");
                        continue 'connection;
                    }
                }
            }
        }
        if let Some((channel, tag)) = &session
            && channel.status().connected()
        {
            let _ = channel
                .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
                .await;
        }
        tracker.close();
        if tokio::time::timeout(DRAIN_TIMEOUT, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("drain timed out; unacknowledged messages return to the queue");
        }
        // Closing returns prefetched, unhandled messages to the queue. Bounded:
        // lapin can miss the close-ok when prefetched deliveries arrive on the
        // closing channel ("invalid channel state: Closing"), and a stopping
        // process must never wait on the broker for good; what stays
        // unacknowledged returns to the queue when the connection closes.
        if let Some((channel, _)) = session
            && channel.status().connected()
        {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, channel.close(200, "drained".into())).await;
        }
        ended.map_or(Ok(()), Err)
    }

    /// A new channel consuming the queue: prefetch, publisher confirms (for
    /// the retry queue), `basic.consume` with a fresh consumer tag.
    async fn consume(
        &self,
        connection: &Connection,
    ) -> lapin::Result<(Channel, String, lapin::Consumer)> {
        let channel = connection.create_channel().await?;
        channel
            .basic_qos(self.prefetch, BasicQosOptions::default())
            .await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let tag = format!("{}-{}", self.subscription.group, uuid::Uuid::new_v4());
        let deliveries = channel
            .basic_consume(
                self.subscription.queue.as_str().into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        tracing::info!(queue = %self.subscription.queue, prefetch = self.prefetch, concurrency = self.concurrency, "consuming");
        Ok((channel, tag, deliveries))
    }

    async fn handle(&self, channel: &Channel, delivery: Delivery) {
        let delivered = crate::inbound::Delivered {
            exchange: delivery.exchange.as_str(),
            routing_key: delivery.routing_key.as_str(),
            properties: &delivery.properties,
            body: &delivery.data,
        };
        let result = match crate::inbound::cloudevent(&delivered) {
            Ok(ce) => (self.handler)(ce).await,
            Err(e) => Err(HandlerError::Malformed(e)),
        };
        let outcome = match result {
            Ok(Handled::Done) => self.ack(&delivery, "ok").await,
            Ok(Handled::Ignored) => self.ack(&delivery, "ignored").await,
            Err(e) => self.fail(channel, &delivery, &e).await,
        };
        if let Err(e) = outcome {
            tracing::error!(error = %e, "could not settle a message; the broker will redeliver it");
        }
    }

    async fn ack(&self, delivery: &Delivery, outcome: &'static str) -> lapin::Result<()> {
        delivery.ack(BasicAckOptions::default()).await?;
        self.metrics.message(outcome);
        Ok(())
    }

    async fn fail(
        &self,
        channel: &Channel,
        delivery: &Delivery,
        error: &HandlerError,
    ) -> lapin::Result<()> {
        let attempt = attempts(&delivery.properties) + 1;
        let max = self.subscription.max_attempts;
        if attempt >= max {
            tracing::warn!(%error, attempt, max, routing_key = %delivery.routing_key, "dead-lettering");
            delivery
                .nack(BasicNackOptions {
                    requeue: false,
                    ..Default::default()
                })
                .await?;
            self.metrics.message("dead_lettered");
            return Ok(());
        }
        tracing::info!(%error, attempt, max, routing_key = %delivery.routing_key, "retrying after backoff");
        let mut headers = delivery.properties.headers().clone().unwrap_or_default();
        headers.insert(
            ShortString::from(ATTEMPT_HEADER),
            AMQPValue::LongUInt(attempt),
        );
        let props = delivery.properties.clone().with_headers(headers);
        let confirmed = channel
            .basic_publish(
                "".into(),
                self.subscription.retry_queue.as_str().into(),
                BasicPublishOptions::default(),
                &delivery.data,
                props,
            )
            .await?
            .await?;
        if confirmed.is_ack() {
            delivery.ack(BasicAckOptions::default()).await?;
            self.metrics.message("retried");
        } else {
            delivery
                .nack(BasicNackOptions {
                    requeue: true,
                    ..Default::default()
                })
                .await?;
        }
        Ok(())
    }
}

/// The broker refused because the queue does not exist (`NOT_FOUND`).
fn queue_missing(e: &lapin::Error) -> bool {
    matches!(e.kind(), lapin::ErrorKind::ProtocolError(amqp) if amqp.get_id() == 404)
}

/// Whether `queue` exists (a passive declare on a channel of its own); an
/// error when the broker cannot say (the connection is going).
async fn queue_exists(connection: &Connection, queue: &str) -> lapin::Result<bool> {
    let channel = connection.create_channel().await?;
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    match channel
        .queue_declare(queue.into(), passive, FieldTable::default())
        .await
    {
        Ok(_) => {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, channel.close(200, "checked".into())).await;
            Ok(true)
        }
        Err(e) if queue_missing(&e) && connection.status().connected() => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_first_delivery_has_made_no_attempt_yet() {
        assert_eq!(attempts(&BasicProperties::default()), 0);
    }

    #[test]
    fn the_attempt_header_is_read_whatever_integer_type_carries_it() {
        let mut h = FieldTable::default();
        h.insert(ATTEMPT_HEADER.into(), AMQPValue::LongLongInt(3));
        assert_eq!(attempts(&BasicProperties::default().with_headers(h)), 3);
    }
}
