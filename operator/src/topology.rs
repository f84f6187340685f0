//! Broker topology over AMQP (lapin): declaring a Stream's exchanges, queues
//! and bindings through the contract crate (so apps and operator send the
//! very same arguments), deleting what a deleted Stream leaves unused, and
//! checking that an EventBroker's credentials open a connection.
//!
//! Connections are cached per URI and reopened when they fail; every
//! attempt is bounded by a timeout so an unreachable broker never blocks a
//! reconcile for long.

use std::{collections::HashMap, sync::Arc, time::Duration};

use eventflow_contract::{Topology, declare::declare};
use lapin::{
    Channel, Connection, ConnectionProperties,
    options::{ExchangeDeleteOptions, QueueDeleteOptions},
};
use tokio::sync::{Mutex, Semaphore};

/// Broker operations in flight at once: one connection multiplexes them,
/// and hundreds of channels opening together stall it.
const MAX_CONCURRENT_OPERATIONS: usize = 16;

use crate::{Error, Result};

/// `host:port/vhost` of an AMQP URI, without credentials (for messages).
pub fn redact(uri: &str) -> String {
    let rest = uri.split_once("://").map_or(uri, |(_, r)| r);
    rest.rsplit_once('@')
        .map_or(rest, |(_, host)| host)
        .to_owned()
}

pub struct Amqp {
    connections: Mutex<HashMap<String, Arc<Connection>>>,
    timeout: Duration,
    permits: Semaphore,
}

impl Amqp {
    pub fn new(timeout: Duration) -> Self {
        Self {
            connections: Mutex::new(HashMap::new()),
            timeout,
            permits: Semaphore::new(MAX_CONCURRENT_OPERATIONS),
        }
    }

    async fn connect(&self, uri: &str) -> Result<Connection> {
        let props =
            ConnectionProperties::default().with_connection_name("eventflow-operator".into());
        match tokio::time::timeout(self.timeout, Connection::connect(uri, props)).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(source)) => Err(Error::Amqp {
                uri_host: redact(uri),
                source,
            }),
            Err(_) => Err(Error::AmqpTimeout(redact(uri))),
        }
    }

    /// A fresh channel on the cached connection to `uri`, reconnecting when needed.
    pub async fn channel(&self, uri: &str) -> Result<Channel> {
        let cached = self.connections.lock().await.get(uri).cloned();
        if let Some(conn) = cached.filter(|c| c.status().connected())
            && let Ok(Ok(ch)) = tokio::time::timeout(self.timeout, conn.create_channel()).await
        {
            return Ok(ch);
        }
        self.connections.lock().await.remove(uri);
        let conn = self.connect(uri).await?;
        let channel = tokio::time::timeout(self.timeout, conn.create_channel())
            .await
            .map_err(|_| Error::AmqpTimeout(redact(uri)))?
            .map_err(|source| Error::Amqp {
                uri_host: redact(uri),
                source,
            })?;
        self.connections
            .lock()
            .await
            .insert(uri.to_owned(), Arc::new(conn));
        Ok(channel)
    }

    async fn close(&self, channel: &Channel) {
        if channel.status().connected() {
            let _ = tokio::time::timeout(self.timeout, channel.close(200, "done".into())).await;
        }
    }

    /// Opens and closes a new connection: proves the credentials work right now.
    pub async fn check(&self, uri: &str) -> Result<()> {
        let conn = self.connect(uri).await?;
        let _ = tokio::time::timeout(self.timeout, conn.close(200, "check".into())).await;
        Ok(())
    }

    /// Declares every object of `topology`; idempotent, so this is also how
    /// objects deleted on the broker come back.
    pub async fn declare(&self, uri: &str, topology: &Topology) -> Result<()> {
        let channel = self.channel(uri).await?;
        let result =
            tokio::time::timeout(self.timeout * 4, declare(&channel, topology, false)).await;
        self.close(&channel).await;
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(Error::Amqp {
                uri_host: redact(uri),
                source,
            }),
            Err(_) => Err(Error::AmqpTimeout(redact(uri))),
        }
    }

    /// Deletes the queues and exchanges of `topology` (deleting a missing one succeeds).
    pub async fn delete(&self, uri: &str, topology: &Topology) -> Result<()> {
        let _permit = self.permits.acquire().await;
        let channel = self.channel(uri).await?;
        let work = async {
            for q in &topology.queues {
                channel
                    .queue_delete(q.name.as_str().into(), QueueDeleteOptions::default())
                    .await?;
            }
            for e in &topology.exchanges {
                channel
                    .exchange_delete(e.name.as_str().into(), ExchangeDeleteOptions::default())
                    .await?;
            }
            lapin::Result::Ok(())
        };
        let result = tokio::time::timeout(self.timeout * 4, work).await;
        self.close(&channel).await;
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(Error::Amqp {
                uri_host: redact(uri),
                source,
            }),
            Err(_) => Err(Error::AmqpTimeout(redact(uri))),
        }
    }
}

/// What deleting `mine` may remove: every queue and exchange no topology in
/// `others` (the namespace's other Streams on the same broker) still has.
pub fn unshared(mine: &Topology, others: &Topology) -> Topology {
    let queues = mine
        .queues
        .iter()
        .filter(|q| !others.queues.iter().any(|o| o.name == q.name))
        .cloned()
        .collect();
    let exchanges = mine
        .exchanges
        .iter()
        .filter(|e| !others.exchanges.iter().any(|o| o.name == e.name))
        .cloned()
        .collect();
    Topology {
        exchanges,
        queues,
        bindings: Vec::new(),
    }
}

/// The topology a Stream declared, as recorded in its status: destination
/// exchanges and queues, and the dead-letter exchange of every `.dlq`.
/// Arguments are not recorded; this is only good for deleting by name.
pub fn from_destinations(destinations: &[crate::api::DestinationStatus]) -> Topology {
    use eventflow_contract::topology::{Exchange, ExchangeKind, Queue};
    let mut t = Topology::default();
    for d in destinations {
        t.exchanges.push(Exchange {
            name: d.exchange.clone(),
            kind: ExchangeKind::Topic,
        });
        for q in &d.queues {
            t.queues.push(Queue {
                name: q.clone(),
                args: Default::default(),
            });
            if let Some(group) = q.strip_suffix(".dlq") {
                t.exchanges.push(Exchange {
                    name: format!("{group}.dlx"),
                    kind: ExchangeKind::Fanout,
                });
            }
        }
    }
    Topology::merge([t])
}

#[cfg(test)]
mod tests {
    use eventflow_contract::{Bindings, bindings::SubscriptionRequest};

    use super::*;

    #[test]
    fn redacting_a_uri_drops_the_credentials() {
        assert_eq!(
            redact("amqp://user:secret@rabbit.demo.svc:5672/%2f"),
            "rabbit.demo.svc:5672/%2f"
        );
        assert_eq!(redact("amqp://rabbit:5672"), "rabbit:5672");
    }

    #[test]
    fn deleting_a_stream_keeps_a_destination_another_stream_still_uses() {
        let sub = |group| SubscriptionRequest {
            destination: "orders",
            group,
            routing_keys: vec![],
            max_attempts: 3,
            backoff_ms: 100,
        };
        let mine = Topology::of(&Bindings::standalone("ns", &["orders"], &[sub("billing")]));
        let other = Topology::of(&Bindings::standalone("ns", &[], &[sub("shipping")]));
        let left = unshared(&mine, &other);
        let exchanges: Vec<_> = left.exchanges.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            exchanges,
            ["ns.orders.billing.dlx"],
            "the shared destination exchange stays"
        );
        assert_eq!(
            left.queue_names().collect::<Vec<_>>(),
            [
                "ns.orders.billing",
                "ns.orders.billing.dlq",
                "ns.orders.billing.retry"
            ]
        );
    }

    #[test]
    fn a_status_gives_back_every_queue_and_exchange_it_recorded() {
        let d = crate::api::DestinationStatus {
            name: "orders".into(),
            exchange: "ns.orders".into(),
            queues: vec![
                "ns.orders.w".into(),
                "ns.orders.w.dlq".into(),
                "ns.orders.w.retry".into(),
            ],
        };
        let t = from_destinations(&[d]);
        let exchanges: Vec<_> = t.exchanges.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(exchanges, ["ns.orders", "ns.orders.w.dlx"]);
        assert_eq!(t.queue_names().count(), 3);
    }
}
