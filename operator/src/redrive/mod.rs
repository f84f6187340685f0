//! Moving dead letters back on the broker (the AMQP side of a
//! `DeadLetterRedrive`; [`crate::controller::redrive`] drives it and keeps
//! its status).
//!
//! A pass runs on a connection of its own, on one channel in transaction
//! mode (`tx.select`). Per batch: `basic.get` (manual ack) from the DLQ;
//! each selected message is published back and acked; the progress is
//! written to status (`committing`); `tx.commit` makes the publishes and the
//! acks of the batch take effect together; the progress is written again
//! (`moved`). A connection or process lost before the commit rolls the
//! batch back: its messages were never published and return to the DLQ
//! unacked. Messages not selected stay unacked on the channel until the pass
//! ends (so `basic.get` moves on to the next one) and then go back to the DLQ
//! in their order. See operator/README.md, "Dead-letter redrive", for what
//! RabbitMQ guarantees and the one window it leaves.
//!
//! A message goes back to its group alone, with the routing key it was
//! published with: published to the default exchange with that routing key
//! and a `BCC` header naming the group queue (the broker routes to the BCC
//! queue, delivers the message with its original routing key and strips the
//! header). Should a queue be named like the routing key itself, the message
//! is published to the group queue by name instead (its routing key is then
//! the queue's; eventflow consumers dispatch on the CloudEvent type, which
//! the message still carries).

pub mod letter;
pub mod select;

use std::{collections::HashMap, time::Instant};

use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties,
    options::{
        BasicAckOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions,
        QueueDeclareOptions,
    },
    types::FieldTable,
};

use crate::api::DeadLetter;
use letter::{Group, Letter};
use select::Selector;

/// The queues of one consumer group and the redrive's identity.
pub struct Target<'a> {
    pub dead_letter_queue: &'a str,
    pub queue: &'a str,
    pub retry_queue: &'a str,
    /// The DeadLetterRedrive's uid: a message it already put back and that
    /// was dead-lettered again is not moved a second time by it.
    pub uid: &'a str,
}

impl Target<'_> {
    fn group(&self) -> Group<'_> {
        Group {
            queue: self.queue,
            retry_queue: self.retry_queue,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    #[error("{0}")]
    Amqp(#[from] lapin::Error),
    #[error("{0}")]
    Progress(crate::Error),
}

/// Where a pass stands, for status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Messages moved and committed in this pass.
    pub moved: i64,
    /// Messages left in the DLQ by this pass (not selected, or already moved once by this redrive).
    pub skipped: i64,
}

/// Where the pass writes its progress: before each commit with the size of
/// the batch being committed, and after it.
pub trait Progress {
    fn committing(
        &mut self,
        tally: Tally,
        batch: i64,
    ) -> impl Future<Output = crate::Result<()>> + Send;
    fn committed(&mut self, tally: Tally) -> impl Future<Output = crate::Result<()>> + Send;
}

/// How a pass ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PassOutcome {
    pub tally: Tally,
    /// The DLQ had nothing more to move (or the budget is spent): the redrive is done.
    pub finished: bool,
    /// Messages in the DLQ at the end of the pass.
    pub remaining: u32,
}

/// Opens a connection of the redrive's own (so what it holds unacked is the
/// redrive's alone, and ends with it).
pub async fn connect(
    uri: &str,
    ca: Option<&str>,
    timeout: std::time::Duration,
) -> crate::Result<Connection> {
    let props = ConnectionProperties::default().with_connection_name("eventflow-redrive".into());
    let connect = eventflow_contract::tls::connect(uri, ca, props);
    match tokio::time::timeout(timeout, connect).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(source)) => Err(crate::Error::Amqp {
            uri_host: crate::topology::redact(uri),
            source,
        }),
        Err(_) => Err(crate::Error::AmqpTimeout(crate::topology::redact(uri))),
    }
}

/// Messages in `queue`; a `NOT_FOUND` error when it does not exist (which
/// closes the channel).
pub async fn depth(channel: &Channel, queue: &str) -> lapin::Result<u32> {
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    Ok(channel
        .queue_declare(queue.into(), passive, FieldTable::default())
        .await?
        .message_count())
}

/// Whether the broker answered `NOT_FOUND`.
pub fn not_found(e: &lapin::Error) -> bool {
    matches!(e.kind(), lapin::ErrorKind::ProtocolError(amqp) if amqp.get_id() == 404)
}

/// Returns every message held unacked on `channel` up to `last_tag` to its queue.
async fn release(channel: &Channel, last_tag: Option<u64>) -> lapin::Result<()> {
    if let Some(tag) = last_tag {
        channel
            .basic_nack(
                tag,
                BasicNackOptions {
                    multiple: true,
                    requeue: true,
                },
            )
            .await?;
    }
    Ok(())
}

/// Lists up to `limit` selected dead letters, oldest first, and moves
/// nothing: every message read goes back to the DLQ, in its order.
pub async fn inspect(
    connection: &Connection,
    target: &Target<'_>,
    selector: &Selector,
    limit: usize,
) -> lapin::Result<(Vec<DeadLetter>, u32)> {
    let channel = connection.create_channel().await?;
    depth(&channel, target.dead_letter_queue).await?;
    let group = target.group();
    let (mut listed, mut last_tag) = (Vec::new(), None);
    while listed.len() < limit {
        let Some(got) = channel
            .basic_get(
                target.dead_letter_queue.into(),
                BasicGetOptions { no_ack: false },
            )
            .await?
        else {
            break;
        };
        let d = &got.delivery;
        last_tag = Some(d.delivery_tag);
        let letter = Letter::read(&d.properties, d.routing_key.as_str(), &d.data, &group);
        if selector.selects(&letter.routing_key) {
            listed.push(letter::describe(
                &d.properties,
                d.routing_key.as_str(),
                &d.data,
                &group,
            ));
        }
    }
    release(&channel, last_tag).await?;
    let remaining = depth(&channel, target.dead_letter_queue).await?;
    let _ = channel.close(200, "inspected".into()).await;
    Ok((listed, remaining))
}

/// Whether a message published to the default exchange with `routing_key`
/// would also reach a queue of that name (answered once per key and pass).
struct Routes<'c> {
    connection: &'c Connection,
    known: HashMap<String, bool>,
}

impl Routes<'_> {
    async fn collides(&mut self, routing_key: &str) -> lapin::Result<bool> {
        if let Some(c) = self.known.get(routing_key) {
            return Ok(*c);
        }
        // A failed passive declare closes its channel: a throwaway one.
        let probe = self.connection.create_channel().await?;
        let collides = match depth(&probe, routing_key).await {
            Ok(_) => true,
            Err(e) if not_found(&e) => false,
            Err(e) => return Err(e),
        };
        if collides {
            let _ = probe.close(200, "probed".into()).await;
        }
        self.known.insert(routing_key.to_owned(), collides);
        Ok(collides)
    }
}

/// One pass over the DLQ: moves selected messages in committed batches of
/// `batch` until the DLQ has no more, `budget` messages are moved (`None`:
/// no bound), or `until` passes (then `finished` is false: call again).
pub async fn move_pass<P: Progress>(
    connection: &Connection,
    target: &Target<'_>,
    selector: &Selector,
    budget: Option<i64>,
    batch: usize,
    until: Instant,
    progress: &mut P,
) -> Result<PassOutcome, MoveError> {
    let channel = connection.create_channel().await?;
    depth(&channel, target.dead_letter_queue).await?;
    channel.tx_select().await?;
    let group = target.group();
    let mut routes = Routes {
        connection,
        known: HashMap::new(),
    };
    let mut tally = Tally::default();
    let mut held: Option<u64> = None;
    let mut finished = false;
    while Instant::now() < until {
        let left = budget.map_or(i64::MAX, |b| b - tally.moved);
        let want = usize::try_from(left.max(0))
            .unwrap_or(usize::MAX)
            .min(batch);
        if want == 0 {
            finished = true;
            break;
        }
        let mut in_batch = 0usize;
        let mut drained = false;
        while in_batch < want {
            let Some(got) = channel
                .basic_get(
                    target.dead_letter_queue.into(),
                    BasicGetOptions { no_ack: false },
                )
                .await?
            else {
                drained = true;
                break;
            };
            let d = got.delivery;
            let letter = Letter::read(&d.properties, d.routing_key.as_str(), &d.data, &group);
            if !selector.selects(&letter.routing_key)
                || letter.redriven_by.as_deref() == Some(target.uid)
            {
                // Held unacked until the pass ends, so the next get moves on.
                held = Some(d.delivery_tag);
                tally.skipped += 1;
                continue;
            }
            let props = letter::redriven_properties(&d.properties, &letter.routing_key, target.uid);
            publish(
                &channel,
                &mut routes,
                target.queue,
                &letter.routing_key,
                &d.data,
                props,
            )
            .await?;
            channel
                .basic_ack(d.delivery_tag, BasicAckOptions::default())
                .await?;
            in_batch += 1;
        }
        if in_batch > 0 {
            let n = i64::try_from(in_batch).unwrap_or(i64::MAX);
            progress
                .committing(tally, n)
                .await
                .map_err(MoveError::Progress)?;
            channel.tx_commit().await?;
            tally.moved += n;
            progress
                .committed(tally)
                .await
                .map_err(MoveError::Progress)?;
        }
        if drained {
            finished = true;
            break;
        }
    }
    release(&channel, held).await?;
    channel.tx_commit().await?;
    let remaining = depth(&channel, target.dead_letter_queue).await?;
    let _ = channel.close(200, "redriven".into()).await;
    Ok(PassOutcome {
        tally,
        finished,
        remaining,
    })
}

/// Publishes one message back to the group queue alone (see the module doc).
async fn publish(
    channel: &Channel,
    routes: &mut Routes<'_>,
    queue: &str,
    routing_key: &str,
    body: &[u8],
    props: BasicProperties,
) -> lapin::Result<()> {
    let (key, props) = if routing_key == queue || routes.collides(routing_key).await? {
        (queue, props)
    } else {
        (routing_key, letter::addressed_to(props, queue))
    };
    channel
        .basic_publish(
            "".into(),
            key.into(),
            BasicPublishOptions::default(),
            body,
            props,
        )
        .await?;
    Ok(())
}
