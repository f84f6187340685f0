//! What the account app's benchmarks share (`hotpaths`, `spring-side-by-side`,
//! each including this file as a module): the broker objects a run declares
//! and deletes at its end, and where the cached tools live.

use std::{path::PathBuf, sync::Arc};

use eventflow_contract::{Bindings, Topology, declare::declare};
use eventflow_runtime::cloudevent::CONTENT_TYPE;
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

/// `$EVENTFLOW_CACHE`, else `$XDG_CACHE_HOME/eventflow`, else
/// `~/.cache/eventflow`: where `bench/build.sh` leaves jars and PerfTest.
pub(crate) fn cache_dir() -> PathBuf {
    std::env::var_os("EVENTFLOW_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache")
                })
                .join("eventflow")
        })
}

/// The broker objects of one run, deleted at its end.
pub(crate) struct Scratch {
    pub(crate) conn: Arc<Connection>,
    pub(crate) ch: Channel,
    pub(crate) queues: Vec<String>,
    pub(crate) exchanges: Vec<String>,
}

impl Scratch {
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

    /// Declares the topology of `b` and remembers it for [`Self::cleanup`].
    pub(crate) async fn declare(&mut self, b: &Bindings) {
        let t = Topology::of(b);
        declare(&self.ch, &t, false).await.unwrap();
        self.queues.extend(t.queues.into_iter().map(|q| q.name));
        self.exchanges
            .extend(t.exchanges.into_iter().map(|e| e.name));
    }

    /// Messages ready in `queue` (a passive declare).
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
    /// persistent, as a CloudEvent, with publisher confirms — as our relay
    /// publishes.
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

    /// Deletes what [`Self::declare`] declared and closes the connection.
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
