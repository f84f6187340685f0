//! Declares a [`Topology`] on a broker with lapin. Declarations are
//! idempotent, so declaring again is how missing objects are restored.

use lapin::{
    Channel,
    options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions},
    types::{AMQPValue, FieldTable, LongString, ShortString},
};

use crate::{
    bindings::QueueType,
    topology::{ExchangeKind, QueueArgs, Topology},
};

/// The queue arguments exactly as sent on the wire.
///
/// A quorum queue that dead-letters does so at least once
/// (`x-dead-letter-strategy`, which needs `x-overflow: reject-publish`): a
/// message leaving a retry queue for its group queue, or a group queue for
/// its DLQ, stays where it is until the target has it, so a broker node
/// lost at that moment loses no message. The default (at most once) would
/// drop it. Understood by RabbitMQ 3.10 and later.
pub fn queue_arguments(args: &QueueArgs) -> FieldTable {
    let mut t = FieldTable::default();
    let s = |v: &str| AMQPValue::LongString(LongString::from(v.to_owned()));
    if args.queue_type == QueueType::Quorum {
        t.insert(ShortString::from("x-queue-type"), s("quorum"));
    }
    if let Some(dlx) = &args.dead_letter_exchange {
        t.insert(ShortString::from("x-dead-letter-exchange"), s(dlx));
        if args.queue_type == QueueType::Quorum {
            t.insert(
                ShortString::from("x-dead-letter-strategy"),
                s("at-least-once"),
            );
            t.insert(ShortString::from("x-overflow"), s("reject-publish"));
        }
    }
    if let Some(key) = &args.dead_letter_routing_key {
        t.insert(ShortString::from("x-dead-letter-routing-key"), s(key));
    }
    if let Some(ttl) = args.message_ttl_ms {
        t.insert(ShortString::from("x-message-ttl"), AMQPValue::LongUInt(ttl));
    }
    t
}

/// Declares (or, with `passive`, only checks) every object of `topology`.
pub async fn declare(channel: &Channel, topology: &Topology, passive: bool) -> lapin::Result<()> {
    for e in &topology.exchanges {
        let kind = match e.kind {
            ExchangeKind::Topic => lapin::ExchangeKind::Topic,
            ExchangeKind::Fanout => lapin::ExchangeKind::Fanout,
        };
        let options = ExchangeDeclareOptions {
            durable: true,
            passive,
            ..Default::default()
        };
        channel
            .exchange_declare(e.name.as_str().into(), kind, options, FieldTable::default())
            .await?;
    }
    for q in &topology.queues {
        let options = QueueDeclareOptions {
            durable: true,
            passive,
            ..Default::default()
        };
        channel
            .queue_declare(q.name.as_str().into(), options, queue_arguments(&q.args))
            .await?;
    }
    if !passive {
        for b in &topology.bindings {
            channel
                .queue_bind(
                    b.queue.as_str().into(),
                    b.exchange.as_str().into(),
                    b.routing_key.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(args: &QueueArgs) -> Vec<String> {
        let mut keys: Vec<String> = queue_arguments(args)
            .inner()
            .keys()
            .map(|k| k.to_string())
            .collect();
        keys.sort();
        keys
    }

    fn retry_queue(queue_type: QueueType) -> QueueArgs {
        QueueArgs {
            queue_type,
            dead_letter_exchange: Some(String::new()),
            dead_letter_routing_key: Some("ns.orders.w".into()),
            message_ttl_ms: Some(250),
        }
    }

    #[test]
    fn a_quorum_queue_that_dead_letters_does_so_at_least_once() {
        assert_eq!(
            keys(&retry_queue(QueueType::Quorum)),
            [
                "x-dead-letter-exchange",
                "x-dead-letter-routing-key",
                "x-dead-letter-strategy",
                "x-message-ttl",
                "x-overflow",
                "x-queue-type"
            ]
        );
        let t = queue_arguments(&retry_queue(QueueType::Quorum));
        let text = |k: &str| match t.inner().get(k) {
            Some(AMQPValue::LongString(v)) => v.to_string(),
            other => panic!("{k}: {other:?}"),
        };
        assert_eq!(text("x-dead-letter-strategy"), "at-least-once");
        assert_eq!(text("x-overflow"), "reject-publish");
    }

    #[test]
    fn classic_queues_and_queues_without_a_dead_letter_exchange_keep_their_arguments() {
        assert_eq!(
            keys(&retry_queue(QueueType::Classic)),
            [
                "x-dead-letter-exchange",
                "x-dead-letter-routing-key",
                "x-message-ttl"
            ]
        );
        let dlq = QueueArgs {
            queue_type: QueueType::Quorum,
            ..QueueArgs::default()
        };
        assert_eq!(keys(&dlq), ["x-queue-type"]);
    }
}
