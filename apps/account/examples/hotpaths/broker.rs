//! The broker objects of the run: each path's topology under a fresh
//! namespace (the account app's, as it declares it standalone), filling a
//! queue, its depth, and deleting everything at the end.

use std::sync::Arc;

use eventflow_contract::{Bindings, Topology, declare::declare};
use eventflow_runtime::{cloudevent::CONTENT_TYPE, testing::unique_namespace};
use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties,
    options::{
        BasicPublishOptions, ConfirmSelectOptions, ExchangeDeleteOptions, QueueDeclareOptions,
        QueueDeleteOptions,
    },
    types::FieldTable,
};

/// Confirms awaited at once when filling a queue (the relay's batch).
const WINDOW: usize = 256;

pub(crate) struct Broker {
    pub(crate) conn: Arc<Connection>,
    ch: Channel,
    queues: Vec<String>,
    exchanges: Vec<String>,
}

/// One path's topology: the account destination's exchange and the
/// account worker's group queue bound to it (`account.*`).
pub(crate) struct Ours {
    pub(crate) bindings: Bindings,
    pub(crate) exchange: String,
    pub(crate) queue: String,
}

impl Broker {
    pub(crate) async fn connect(uri: &str) -> Self {
        let conn = Connection::connect(uri, ConnectionProperties::default())
            .await
            .unwrap_or_else(|e| panic!("cannot reach RabbitMQ at {uri}: {e}"));
        let ch = conn.create_channel().await.unwrap();
        Self {
            conn: Arc::new(conn),
            ch,
            queues: Vec::new(),
            exchanges: Vec::new(),
        }
    }

    /// The account app's topology under a fresh namespace.
    pub(crate) async fn declare_account(&mut self) -> Ours {
        let spec = eventflow_account::spec();
        let bindings = Bindings::standalone(
            &unique_namespace(),
            &[spec.destination],
            &[spec.subscription()],
        );
        let t = Topology::of(&bindings);
        declare(&self.ch, &t, false).await.unwrap();
        self.queues.extend(t.queues.into_iter().map(|q| q.name));
        self.exchanges
            .extend(t.exchanges.into_iter().map(|e| e.name));
        Ours {
            exchange: bindings.exchange_for(spec.destination).unwrap().to_owned(),
            queue: bindings.subscribes[0].queue.clone(),
            bindings,
        }
    }

    /// Messages ready in `queue`.
    pub(crate) async fn depth(&self, queue: &str) -> u32 {
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        self.ch
            .queue_declare(queue.into(), passive, FieldTable::default())
            .await
            .unwrap_or_else(|e| panic!("queue {queue}: {e}"))
            .message_count()
    }

    /// `count` copies of `body` into `exchange` with `routing_key`:
    /// persistent, as a CloudEvent, with publisher confirms.
    pub(crate) async fn fill(&self, exchange: &str, routing_key: &str, body: &[u8], count: u64) {
        let ch = self.conn.create_channel().await.unwrap();
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        let mut confirms = Vec::with_capacity(WINDOW);
        for _ in 0..count {
            let props = BasicProperties::default()
                .with_content_type(CONTENT_TYPE.into())
                .with_delivery_mode(2);
            let confirm = ch
                .basic_publish(
                    exchange.into(),
                    routing_key.into(),
                    BasicPublishOptions::default(),
                    body,
                    props,
                )
                .await
                .unwrap();
            confirms.push(confirm);
            if confirms.len() == WINDOW {
                for c in confirms.drain(..) {
                    assert!(c.await.unwrap().is_ack(), "the broker nacked a message");
                }
            }
        }
        for c in confirms {
            assert!(c.await.unwrap().is_ack(), "the broker nacked a message");
        }
        let _ = ch.close(200, "filled".into()).await;
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
