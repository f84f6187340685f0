//! Everything of a process that needs the broker: the connection and its
//! topology, the consumers of the worker role, the outbox relay of the web
//! role, and the watch that ends the process when the connection or the
//! relay is lost.

use std::{sync::Arc, time::Duration};

use eventflow_contract::Bindings;
use lapin::Connection;
use tokio::sync::Notify;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use super::{AppSpec, supervise::Failure};
use crate::{
    admin::Readiness,
    broker::{self, BrokerError},
    config::Config,
    consumer::{Consumer, TransientRetry},
    metrics::Metrics,
    relay::Relay,
    store::EventStore,
};

#[derive(Debug, thiserror::Error)]
pub(super) enum BrokerRunError {
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error("broker: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("EVENTFLOW_BINDINGS does not publish to destination {0:?}")]
    NoExchange(String),
    #[error("lost the broker connection")]
    Lost,
    #[error("the outbox relay stopped")]
    RelayStopped,
}

/// Everything that needs the broker: the relay (web), the consumers (worker).
pub(super) struct BrokerPart {
    pub(super) spec: AppSpec,
    pub(super) config: Config,
    pub(super) store: Option<EventStore>,
    pub(super) relay_notify: Arc<Notify>,
    pub(super) metrics: Metrics,
    pub(super) readiness: Readiness,
}

impl BrokerPart {
    pub(super) async fn run(
        self,
        cancel: &CancellationToken,
        web_stop: &CancellationToken,
        consumers: &TaskTracker,
        failure: &Failure,
    ) -> Result<(), BrokerRunError> {
        let c = &self.config;
        let name = format!("{}-{}", self.spec.name, c.role.as_str());
        let connection = Arc::new(broker::connect(&c.broker_uri, &name, cancel).await?);
        broker::declare_topology(&connection, &c.bindings, c.bindings_from_operator, cancel)
            .await?;
        let _ = self.readiness.broker.set(connection.clone());
        if c.role.runs_worker() {
            for subscription in &c.bindings.subscribes {
                let consumer = Consumer {
                    subscription: subscription.clone(),
                    handler: (self.spec.functions)().handler(),
                    prefetch: c.prefetch,
                    concurrency: c.concurrency,
                    metrics: self.metrics.clone(),
                    transient: TransientRetry::for_subscription(subscription, c.transient_retry),
                };
                let (connection, cancel) = (connection.clone(), cancel.clone());
                let failure = failure.clone();
                consumers.spawn(async move {
                    if let Err(e) = consumer.run(connection, cancel.clone()).await {
                        failure.record(e.into(), &cancel);
                    }
                });
            }
        }
        consumers.close();
        let relay = match &self.store {
            Some(store) => {
                let exchange = exchange_of(&c.bindings, self.spec.destination)?;
                let relay = Relay {
                    store: store.clone(),
                    channel: connection.create_channel().await?,
                    exchange,
                    self_url: c.self_url.clone(),
                    collection_of: self.spec.collection_of,
                    notify: self.relay_notify.clone(),
                    metrics: self.metrics.clone(),
                    fault_exit_after_commit: c.fault_exit_after_commit,
                };
                let stop = web_stop.clone();
                Some(tokio::spawn(async move { relay.run(stop).await }))
            }
            None => None,
        };
        let lost = watch_connection(&connection, cancel, relay).await;
        match lost {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }
}

/// Watches the connection and the relay until `cancel`; returns why they
/// stopped first, if they did.
async fn watch_connection(
    connection: &Connection,
    cancel: &CancellationToken,
    mut relay: Option<tokio::task::JoinHandle<lapin::Result<()>>>,
) -> Option<BrokerRunError> {
    let failed = loop {
        tokio::select! {
            () = cancel.cancelled() => break None,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        if !connection.status().connected() {
            break Some(BrokerRunError::Lost);
        }
        if relay.as_ref().is_some_and(|r| r.is_finished()) && !cancel.is_cancelled() {
            let outcome = match relay.take() {
                Some(r) => r.await,
                None => Ok(Ok(())),
            };
            break Some(match outcome {
                Ok(Err(e)) => BrokerRunError::Amqp(e),
                _ => BrokerRunError::RelayStopped,
            });
        }
    };
    if failed.is_some() {
        cancel.cancel();
    }
    if let Some(relay) = relay {
        let _ = relay.await;
    }
    failed
}

fn exchange_of(bindings: &Bindings, destination: &str) -> Result<String, BrokerRunError> {
    bindings
        .exchange_for(destination)
        .map(str::to_owned)
        .ok_or_else(|| BrokerRunError::NoExchange(destination.to_owned()))
}
