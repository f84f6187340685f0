//! Everything of a process that needs the broker: the broker link (one
//! connection, re-established in-process after a loss, its topology
//! checked each time), the consumers of the worker role and the outbox
//! relay of the web role, both of which outlive any one connection. Losing
//! the broker never ends the process; a configuration error does.

use std::sync::Arc;

use eventflow_contract::Bindings;
use tokio::sync::Notify;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use super::{AppSpec, supervise::Failure};
use crate::{
    broker::{BrokerError, BrokerLink, Target},
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
    #[error("EVENTFLOW_BINDINGS does not publish to destination {0:?}")]
    NoExchange(String),
}

/// Everything that needs the broker: the relay (web), the consumers (worker).
pub(super) struct BrokerPart {
    pub(super) spec: AppSpec,
    pub(super) config: Config,
    pub(super) store: Option<EventStore>,
    pub(super) relay_notify: Arc<Notify>,
    pub(super) metrics: Metrics,
    pub(super) link: BrokerLink,
    /// Stops the consumers: the process stopping, or a drain.
    pub(super) consume_stop: CancellationToken,
}

impl BrokerPart {
    /// Runs the link, the consumers and the relay until `cancel` (the relay
    /// until `web_stop`, after the consumers drained).
    pub(super) async fn run(
        self,
        cancel: &CancellationToken,
        web_stop: &CancellationToken,
        consumers: &TaskTracker,
        failure: &Failure,
    ) -> Result<(), BrokerRunError> {
        let c = &self.config;
        let exchange = match &self.store {
            Some(_) => Some(exchange_of(&c.bindings, self.spec.destination)?),
            None => None,
        };
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
                let (link, cancel) = (self.link.clone(), cancel.clone());
                let stop = self.consume_stop.clone();
                let failure = failure.clone();
                consumers.spawn(async move {
                    if let Err(e) = consumer.run(link, stop).await {
                        failure.record(e.into(), &cancel);
                    }
                });
            }
        }
        consumers.close();
        let relay = match (&self.store, exchange) {
            (Some(store), Some(exchange)) => {
                let relay = Relay {
                    store: store.clone(),
                    link: self.link.clone(),
                    exchange,
                    self_url: c.self_url.clone(),
                    collection_of: self.spec.collection_of,
                    notify: self.relay_notify.clone(),
                    metrics: self.metrics.clone(),
                    fault_exit_after_commit: c.fault_exit_after_commit,
                };
                Some(tokio::spawn(relay.run(web_stop.clone())))
            }
            _ => None,
        };
        let target = Target {
            uri: c.broker_uri.clone(),
            ca: c.broker_ca.clone(),
            name: format!("{}-{}", self.spec.name, c.role.as_str()),
            bindings: c.bindings.clone(),
            passive: c.bindings_from_operator,
        };
        let linked = self.link.maintain(&target, &self.metrics, cancel).await;
        if linked.is_err() {
            // Stop the consumers, then (web_stop) the relay.
            cancel.cancel();
        }
        if let Some(relay) = relay {
            let _ = relay.await;
        }
        Ok(linked?)
    }
}

fn exchange_of(bindings: &Bindings, destination: &str) -> Result<String, BrokerRunError> {
    bindings
        .exchange_for(destination)
        .map(str::to_owned)
        .ok_or_else(|| BrokerRunError::NoExchange(destination.to_owned()))
}
