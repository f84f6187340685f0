//! The broker objects of the run (`Broker`: our topology, publishing, queue
//! depth, the cleanup) and our bindings.

use eventflow_contract::{Bindings, Topology, bindings::SubscriptionRequest, declare::declare};
use eventflow_runtime::testing::{AMQP_VAR, amqp_uri};
use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties,
    options::{
        BasicPublishOptions, ConfirmSelectOptions, ExchangeDeleteOptions, QueueDeclareOptions,
        QueueDeleteOptions,
    },
    types::FieldTable,
};

/// The broker objects of this run, deleted at its end.
pub(crate) struct Broker {
    conn: Connection,
    pub(crate) ch: Channel,
    pub(crate) queues: Vec<String>,
    pub(crate) exchanges: Vec<String>,
}

impl Broker {
    pub(crate) async fn connect() -> Self {
        let conn = Connection::connect(&amqp_uri(), ConnectionProperties::default())
            .await
            .unwrap_or_else(|e| panic!("cannot reach RabbitMQ at {AMQP_VAR}: {e}"));
        let ch = conn.create_channel().await.unwrap();
        Self {
            conn,
            ch,
            queues: Vec::new(),
            exchanges: Vec::new(),
        }
    }

    /// Declares our topology for `b` and remembers it for the cleanup.
    pub(crate) async fn declare_ours(&mut self, b: &Bindings) {
        let t = Topology::of(b);
        declare(&self.ch, &t, false).await.unwrap();
        self.queues.extend(t.queues.into_iter().map(|q| q.name));
        self.exchanges
            .extend(t.exchanges.into_iter().map(|e| e.name));
    }

    /// Messages ready in `queue` (passive declare).
    pub(crate) async fn depth(&self, queue: &str) -> u32 {
        self.ch
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap_or_else(|e| panic!("queue {queue}: {e}"))
            .message_count()
    }

    /// Publishes `count` copies of `body` with confirms, persistent, as our relay does.
    pub(crate) async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        count: usize,
    ) {
        let ch = self.conn.create_channel().await.unwrap();
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        let mut confirms = Vec::new();
        for _ in 0..count {
            confirms.push(
                ch.basic_publish(
                    exchange.into(),
                    routing_key.into(),
                    BasicPublishOptions::default(),
                    body,
                    BasicProperties::default()
                        .with_content_type("application/cloudevents+json".into())
                        .with_delivery_mode(2),
                )
                .await
                .unwrap(),
            );
            if confirms.len() == 256 {
                for c in confirms.drain(..) {
                    assert!(c.await.unwrap().is_ack(), "broker nacked a message");
                }
            }
        }
        for c in confirms {
            assert!(c.await.unwrap().is_ack(), "broker nacked a message");
        }
        let _ = ch.close(200, "published".into()).await;
    }

    pub(crate) async fn cleanup(self) {
        for q in &self.queues {
            let _ = self
                .ch
                .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
        for e in &self.exchanges {
            let _ = self
                .ch
                .exchange_delete(e.as_str().into(), ExchangeDeleteOptions::default())
                .await;
        }
        let _ = self.conn.close(200, "bye".into()).await;
    }
}

pub(crate) fn bindings(ns: &str) -> Bindings {
    Bindings::standalone(
        ns,
        &["account"],
        &[SubscriptionRequest {
            destination: "account",
            group: "account-worker",
            routing_keys: vec!["account.*".into()],
            max_attempts: 5,
            backoff_ms: 1000,
        }],
    )
}
