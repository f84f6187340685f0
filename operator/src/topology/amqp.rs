//! Broker operations over AMQP (lapin): declaring a topology through the
//! contract crate (so apps and operator send the very same arguments),
//! deleting queues and exchanges, and checking that an EventBroker's
//! credentials open a connection.
//!
//! Connections are cached per URI and reopened when they fail; every
//! attempt is bounded by a timeout so an unreachable broker never blocks a
//! reconcile for long.

use std::{collections::HashMap, sync::Arc, time::Duration};

use eventflow_contract::{Topology, declare::declare, tls};
use futures::future::try_join_all;
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

/// The result of a bounded AMQP operation, as the operator's error.
fn outcome(
    uri: &str,
    result: std::result::Result<lapin::Result<()>, tokio::time::error::Elapsed>,
) -> Result<()> {
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(source)) => Err(Error::Amqp {
            uri_host: redact(uri),
            source,
        }),
        Err(_) => Err(Error::AmqpTimeout(redact(uri))),
    }
}

pub struct Amqp {
    connections: Mutex<HashMap<String, Arc<Connection>>>,
    /// The CA each `amqps` URI is verified with, as read with the URI
    /// from its Secret (see [`Amqp::trust`]).
    cas: std::sync::Mutex<HashMap<String, String>>,
    timeout: Duration,
    permits: Semaphore,
}

impl Amqp {
    pub fn new(timeout: Duration) -> Self {
        Self {
            connections: Mutex::new(HashMap::new()),
            cas: std::sync::Mutex::new(HashMap::new()),
            timeout,
            permits: Semaphore::new(MAX_CONCURRENT_OPERATIONS),
        }
    }

    /// Remembers the CA (PEM, the `ca.crt` beside the URI in its Secret)
    /// that connections to `uri` verify the broker with; `None` forgets it.
    pub fn trust(&self, uri: &str, ca: Option<String>) {
        let mut cas = self
            .cas
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match ca {
            Some(ca) => cas.insert(uri.to_owned(), ca),
            None => cas.remove(uri),
        };
    }

    /// The CA connections to `uri` verify the broker with, if any.
    pub fn ca(&self, uri: &str) -> Option<String> {
        self.cas
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(uri)
            .cloned()
    }

    async fn connect(&self, uri: &str) -> Result<Connection> {
        let props =
            ConnectionProperties::default().with_connection_name("eventflow-operator".into());
        let ca = self.ca(uri);
        let connect = tls::connect(uri, ca.as_deref(), props);
        match tokio::time::timeout(self.timeout, connect).await {
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
        outcome(uri, result)
    }

    /// Deletes the queues and exchanges of `topology` (deleting a missing one succeeds).
    pub async fn delete(&self, uri: &str, topology: &Topology) -> Result<()> {
        let _permit = self.permits.acquire().await;
        let channel = self.channel(uri).await?;
        // Pipelined on the channel (replies come back in order): one round
        // trip for the queues, one for the exchanges, not one per object.
        let work = async {
            try_join_all(topology.queues.iter().map(|q| {
                channel.queue_delete(q.name.as_str().into(), QueueDeleteOptions::default())
            }))
            .await?;
            try_join_all(topology.exchanges.iter().map(|e| {
                channel.exchange_delete(e.name.as_str().into(), ExchangeDeleteOptions::default())
            }))
            .await?;
            lapin::Result::Ok(())
        };
        let result = tokio::time::timeout(self.timeout * 4, work).await;
        self.close(&channel).await;
        outcome(uri, result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacting_a_uri_drops_the_credentials() {
        assert_eq!(
            redact("amqp://user:secret@rabbit.demo.svc:5672/%2f"),
            "rabbit.demo.svc:5672/%2f"
        );
        assert_eq!(redact("amqp://rabbit:5672"), "rabbit:5672");
    }
}
