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
pub fn queue_arguments(args: &QueueArgs) -> FieldTable {
    let mut t = FieldTable::default();
    let s = |v: &str| AMQPValue::LongString(LongString::from(v.to_owned()));
    if args.queue_type == QueueType::Quorum {
        t.insert(ShortString::from("x-queue-type"), s("quorum"));
    }
    if let Some(dlx) = &args.dead_letter_exchange {
        t.insert(ShortString::from("x-dead-letter-exchange"), s(dlx));
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
