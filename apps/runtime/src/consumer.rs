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
//!
//! Only a message the app rejects spends an attempt. A handler that could
//! not reach a dependency ([`HandlerError::Unavailable`]: a peer refusing
//! connections, timing out or answering 502/503/504/429/408, which includes a
//! peer whose store is down) is run again in process after a growing,
//! jittered backoff ([`TransientRetry`]), keeping the message and its
//! concurrency permit — back-pressure while the dependency is down — without
//! touching `x-eventflow-attempt`. On shutdown the wait ends and the message
//! is requeued as it was; past [`TransientRetry::bound`] the unavailability
//! counts as one ordinary failed attempt.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    time::{Duration, Instant},
};

use eventflow_contract::{
    Subscription,
    names::{ATTEMPT_HEADER, ROUTING_KEY_HEADER},
};
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
    acks::Acks,
    broker::{Backoff, BrokerLink},
    cloudevent::CloudEvent,
    metrics::Metrics,
};

/// Longest wait for in-flight messages on shutdown.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(25);
/// How long closing the channel (and the connection) may take after the drain.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);

/// Why handling failed.
///
/// `Malformed` and `Failed` are the app rejecting the message (it cannot be
/// decoded, a peer refused the command for good, a bug answered 500, a state
/// not reached yet): each spends one of the subscription's `maxAttempts`,
/// then the message is dead-lettered. `Unavailable` is a dependency that
/// could not be asked (transient): the message is retried in process and
/// spends no attempt (see the module documentation and [`TransientRetry`]).
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("not a CloudEvent: {0}")]
    Malformed(String),
    #[error("{0}")]
    Failed(String),
    #[error("unavailable: {0}")]
    Unavailable(String),
}

impl HandlerError {
    /// True for a failure that says nothing about the message (a dependency
    /// down): it is retried without spending an attempt.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// How long and how often a message is retried in process while a
/// dependency is unavailable: delays from `first`, doubling up to `cap`,
/// each jittered to between half and all of it, for at most `bound` from the
/// first failure. A zero `bound` turns the in-process retry off.
///
/// The cap is short on purpose. A message held in process keeps a
/// concurrency permit, so at most `concurrency` messages per replica retry
/// against a dependency that is down — little load even every few seconds —
/// and once the dependency is back a held message runs again within the cap,
/// before another saga step that waits for its effect (spending its own
/// attempts: `maxAttempts × backoffMs`) gives up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransientRetry {
    pub first: Duration,
    pub cap: Duration,
    pub bound: Duration,
}

impl Default for TransientRetry {
    /// [`TransientRetry::within`] the contract's default bound.
    fn default() -> Self {
        Self::within(Duration::from_secs(
            eventflow_contract::defaults::TRANSIENT_RETRY_SECONDS.into(),
        ))
    }
}

impl TransientRetry {
    /// First delay.
    pub const FIRST: Duration = Duration::from_millis(500);
    /// Longest delay.
    pub const CAP: Duration = Duration::from_secs(5);

    /// 500 ms doubling to 5 s, within `bound`.
    pub fn within(bound: Duration) -> Self {
        Self {
            first: Self::FIRST,
            cap: Self::CAP,
            bound,
        }
    }

    /// [`TransientRetry::within`] `bound`, with the cap lowered to half the
    /// subscription's own retry budget (`maxAttempts × backoffMs`) when that
    /// is shorter, but never under the first delay: a held message runs
    /// again well before a step waiting on it runs out of attempts.
    pub fn for_subscription(subscription: &Subscription, bound: Duration) -> Self {
        let budget = Duration::from_millis(
            u64::from(subscription.max_attempts) * u64::from(subscription.backoff_ms),
        );
        Self {
            cap: (budget / 2).clamp(Self::FIRST, Self::CAP),
            ..Self::within(bound)
        }
    }

    /// The delay before in-process retry `retry` (0 for the first), not
    /// jittered: `first * 2^retry`, at most `cap`.
    pub fn base_delay(&self, retry: u32) -> Duration {
        self.first
            .saturating_mul(2u32.saturating_pow(retry.min(31)))
            .min(self.cap)
    }

    /// The delay before retry `retry` when `waited` has passed since the
    /// first failure, jittered by `jitter` in `[0, 1]` (to between half and
    /// all of the base delay); `None` once it would pass the bound.
    pub fn next_delay(&self, retry: u32, waited: Duration, jitter: f64) -> Option<Duration> {
        let base = self.base_delay(retry);
        let delay = base / 2 + base.mul_f64(jitter.clamp(0.0, 1.0) / 2.0);
        (waited + delay <= self.bound).then_some(delay)
    }
}

/// A random fraction in `[0, 1)` for the jitter.
fn jitter() -> f64 {
    let bits = uuid::Uuid::new_v4().as_u128() >> 75; // 53 random bits
    bits as f64 / (1u64 << 53) as f64
}

/// Counts a message in the waiting gauge for as long as it lives.
struct Waiting<'a>(&'a Metrics);

impl<'a> Waiting<'a> {
    fn new(metrics: &'a Metrics) -> Self {
        metrics.messages_waiting.inc();
        Self(metrics)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.messages_waiting.dec();
    }
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
    /// The in-process retry of a message whose dependency is unavailable.
    pub transient: TransientRetry,
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
        // The acks of the current channel, and what stops their flusher.
        let mut acking: Option<(CancellationToken, tokio::task::JoinHandle<()>)> = None;
        'connection: while let Some(connection) = link.connection(&cancel).await {
            if let Some((stop, _)) = acking.take() {
                stop.cancel(); // a dead channel: its waiting acks cannot go
            }
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
            let acks = Acks::new(channel.clone(), this.prefetch);
            let stop_acks = CancellationToken::new();
            acking = Some((stop_acks.clone(), tokio::spawn(acks.clone().run(stop_acks))));
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
                        let (this, channel, acks) = (this.clone(), channel.clone(), acks.clone());
                        let cancel = cancel.clone();
                        this.metrics.messages_in_hand.inc();
                        acks.delivered(delivery.delivery_tag);
                        tracker.spawn(async move {
                            this.handle(&channel, &acks, delivery, &cancel).await;
                            this.metrics.messages_in_hand.dec();
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
        // The handled messages' acks go before the channel closes.
        if let Some((stop, flusher)) = acking {
            stop.cancel();
            let _ = flusher.await;
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

    async fn handle(
        &self,
        channel: &Channel,
        acks: &Acks,
        delivery: Delivery,
        cancel: &CancellationToken,
    ) {
        let delivered = crate::inbound::Delivered {
            exchange: delivery.exchange.as_str(),
            routing_key: delivery.routing_key.as_str(),
            properties: &delivery.properties,
            body: &delivery.data,
        };
        let result = match crate::inbound::cloudevent(&delivered) {
            Ok(ce) => self.run_handler(ce, &delivery, cancel).await,
            Err(e) => Some(Err(HandlerError::Malformed(e))),
        };
        let tag = delivery.delivery_tag;
        let outcome = match result {
            Some(Ok(Handled::Done)) => return self.ack(acks, tag, "ok"),
            Some(Ok(Handled::Ignored)) => return self.ack(acks, tag, "ignored"),
            Some(Err(e)) => self.fail(channel, &delivery, &e).await,
            None => self.requeue(&delivery).await,
        };
        match outcome {
            Ok(()) => acks.settled(tag),
            // Left in hand: no later multiple ack may settle it.
            Err(e) => {
                tracing::error!(error = %e, "could not settle a message; the broker will redeliver it");
            }
        }
    }

    /// Runs the handler, and again after a backoff for as long as it finds
    /// a dependency unavailable, within [`TransientRetry::bound`]; past the
    /// bound the last unavailability is returned as an ordinary failure.
    /// `None` when `cancel` ended the wait: the message goes back unspent.
    async fn run_handler(
        &self,
        ce: CloudEvent,
        delivery: &Delivery,
        cancel: &CancellationToken,
    ) -> Option<Result<Handled, HandlerError>> {
        let mut since: Option<Instant> = None;
        let mut retry = 0;
        loop {
            let why = match (self.handler)(ce.clone()).await {
                Err(HandlerError::Unavailable(why)) => why,
                other => return Some(other),
            };
            let waited = since.get_or_insert_with(Instant::now).elapsed();
            let Some(delay) = self.transient.next_delay(retry, waited, jitter()) else {
                tracing::warn!(error = %why, waited_ms = waited.as_millis() as u64, routing_key = %delivery.routing_key,
                    "a dependency stayed unavailable past the in-process retry bound; counting a failed attempt");
                return Some(Err(HandlerError::Failed(format!(
                    "unavailable for {} s: {why}",
                    waited.as_secs()
                ))));
            };
            tracing::warn!(error = %why, delay_ms = delay.as_millis() as u64, retry, routing_key = %delivery.routing_key,
                "a dependency is unavailable; retrying in process without spending an attempt");
            self.metrics.message("transient_retry");
            let _waiting = Waiting::new(&self.metrics);
            tokio::select! {
                () = cancel.cancelled() => return None,
                () = tokio::time::sleep(delay) => {}
            }
            retry += 1;
        }
    }

    /// Returns a message to its queue as it was (no attempt spent).
    async fn requeue(&self, delivery: &Delivery) -> lapin::Result<()> {
        tracing::info!(routing_key = %delivery.routing_key, "stopping: requeueing a message waiting on a dependency");
        delivery
            .nack(BasicNackOptions {
                requeue: true,
                ..Default::default()
            })
            .await?;
        self.metrics.message("requeued");
        Ok(())
    }

    /// A handled message: acknowledged with the channel's next flush.
    fn ack(&self, acks: &Acks, tag: u64, outcome: &'static str) {
        acks.ack(tag);
        self.metrics.message(outcome);
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
        // Back from the retry queue, the message has the group queue's name
        // as its routing key: the one it was published with goes along.
        let routing_key = match headers.inner().get(ROUTING_KEY_HEADER) {
            Some(AMQPValue::LongString(k)) => k.to_string(),
            _ => {
                let k = delivery.routing_key.to_string();
                headers.insert(
                    ShortString::from(ROUTING_KEY_HEADER),
                    AMQPValue::LongString(k.clone().into()),
                );
                k
            }
        };
        let props = delivery.properties.clone().with_headers(headers);
        let confirmed = channel
            .basic_publish(
                // The retry exchange (fanout) of the same name as the queue.
                self.subscription.retry_queue.as_str().into(),
                routing_key.as_str().into(),
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
    fn only_an_unavailable_dependency_is_transient() {
        assert!(HandlerError::Unavailable("down".into()).is_transient());
        assert!(!HandlerError::Failed("409".into()).is_transient());
        assert!(!HandlerError::Malformed("not json".into()).is_transient());
    }

    #[test]
    fn the_transient_backoff_grows_from_half_a_second_to_a_capped_five_seconds() {
        let r = TransientRetry::default();
        assert_eq!(r.base_delay(0), Duration::from_millis(500));
        assert_eq!(r.base_delay(1), Duration::from_secs(1));
        assert_eq!(r.base_delay(3), Duration::from_secs(4));
        let delays: Vec<_> = (0..100).map(|n| r.base_delay(n)).collect();
        assert!(delays.windows(2).all(|w| w[0] <= w[1]), "monotone");
        assert_eq!(delays.last(), Some(&Duration::from_secs(5)), "capped");
        assert!(delays.iter().all(|d| *d <= r.cap));
    }

    #[test]
    fn the_cap_stays_under_half_the_subscriptions_own_retry_budget() {
        let bindings = |max_attempts, backoff_ms| {
            let request = eventflow_contract::bindings::SubscriptionRequest {
                destination: "d",
                group: "g",
                routing_keys: vec!["#".into()],
                max_attempts,
                backoff_ms,
            };
            eventflow_contract::Bindings::standalone("ns", &[], &[request]).subscribes[0].clone()
        };
        let bound = Duration::from_secs(600);
        let cap = |a, b| TransientRetry::for_subscription(&bindings(a, b), bound).cap;
        assert_eq!(
            cap(30, 500),
            Duration::from_secs(5),
            "a saga step: the default cap"
        );
        assert_eq!(
            cap(5, 1_000),
            Duration::from_millis(2_500),
            "the default retry"
        );
        assert_eq!(cap(10, 200), Duration::from_secs(1));
        assert_eq!(
            cap(3, 200),
            Duration::from_millis(500),
            "never under the first delay"
        );
        assert_eq!(
            TransientRetry::for_subscription(&bindings(3, 200), bound).bound,
            bound
        );
    }

    #[test]
    fn the_jitter_keeps_a_delay_between_half_and_all_of_its_base() {
        let r = TransientRetry::default();
        for retry in 0..10 {
            let base = r.base_delay(retry);
            let low = r.next_delay(retry, Duration::ZERO, 0.0).unwrap();
            let high = r.next_delay(retry, Duration::ZERO, 1.0).unwrap();
            assert_eq!((low, high), (base / 2, base));
            let some = r.next_delay(retry, Duration::ZERO, jitter()).unwrap();
            assert!(low <= some && some <= high);
        }
        assert!((0..1000).map(|_| jitter()).all(|j| (0.0..1.0).contains(&j)));
    }

    #[test]
    fn the_in_process_retries_end_within_their_bound() {
        for (bound, jitter) in [(600, 1.0), (600, 0.0), (600, 0.5), (1, 1.0), (0, 0.0)] {
            let r = TransientRetry::within(Duration::from_secs(bound));
            let (mut waited, mut retries) = (Duration::ZERO, 0);
            while let Some(delay) = r.next_delay(retries, waited, jitter) {
                waited += delay;
                retries += 1;
                assert!(retries < 1000, "bounded");
            }
            assert!(waited <= r.bound, "{waited:?} within {bound} s");
            // Close to the bound: the next delay (at most the cap) would pass it.
            assert!(waited + r.cap > r.bound, "{waited:?} of {bound} s");
        }
        let off = TransientRetry::within(Duration::ZERO);
        assert_eq!(
            off.next_delay(0, Duration::ZERO, 0.0),
            None,
            "0 turns it off"
        );
    }

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
