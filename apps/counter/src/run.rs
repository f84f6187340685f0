//! Runs the counter: the admin endpoints, the web role, one consumer per
//! tapped destination and one reader per feed of `COUNTER_FEEDS` in one
//! process, until SIGTERM/SIGINT. A lost broker
//! connection does not end it: the runtime's broker link reconnects and the
//! consumers resume (the counts live on in memory). `POST /drain` on the
//! admin port (a suspended Stream) stops the consumers only: the web API
//! only reads, and the counter has no outbox.

use std::sync::{Arc, OnceLock};

use eventflow_runtime::{
    admin::{self, Readiness},
    app,
    broker::{BrokerLink, Target},
    config::{Config, Role},
    consumer::{Consumer, TransientRetry},
    drain::{self, Drain},
    metrics::Metrics,
};
use tokio::{net::TcpListener, task::JoinSet};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{Counts, FeedStates, feeds, handler, rebuild::rebuild, router};

#[derive(Debug, thiserror::Error)]
pub enum CounterError {
    #[error("the counter has no functions role: run it as all (Combined)")]
    FunctionsRole,
}

async fn serve(
    listener: TcpListener,
    app: axum::Router,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { cancel.cancelled().await })
        .await?;
    Ok(())
}

/// Counts and serves until stopped. Roles `web`, `worker` and `all` all
/// run both halves: the counts live in this process's memory.
pub async fn run(config: Config) -> anyhow::Result<()> {
    if config.role == Role::Functions {
        return Err(CounterError::FunctionsRole.into());
    }
    // A malformed COUNTER_FEEDS stops the start, naming its entry.
    let feeds = feeds::parse(
        &std::env::var(feeds::VAR).unwrap_or_default(),
        &config.bindings.subscribes,
    )?;
    let cancel = CancellationToken::new();
    tokio::spawn(app::shutdown_signal(cancel.clone()));
    let metrics = Metrics::default();
    let link = BrokerLink::new();
    let readiness = Readiness {
        needs_store: false,
        needs_broker: true,
        broker: Some(link.clone()),
        ..Readiness::default()
    };
    let counts = Counts::default();
    let feed_states = FeedStates::default();
    for feed in &feeds {
        feed_states.start(feed);
    }
    let mut tasks: JoinSet<anyhow::Result<()>> = JoinSet::new();
    // Drained like a worker: its consumers stop and settle what they hold.
    let consume_stop = cancel.child_token();
    let consumers = TaskTracker::new();
    let drain = Drain::new(
        Role::Worker,
        vec![consume_stop.clone()],
        consumers.clone(),
        Arc::new(OnceLock::new()),
        metrics.clone(),
    );
    let admin = TcpListener::bind(config.admin_addr).await?;
    tasks.spawn(serve(
        admin,
        admin::routes(readiness.clone(), metrics.clone()).merge(drain::routes(drain)),
        cancel.clone(),
    ));
    let http = TcpListener::bind(config.http_addr).await?;
    tracing::info!(addr = %config.http_addr, "counts served");
    tasks.spawn(serve(
        http,
        router(counts.clone(), feed_states.clone()),
        cancel.clone(),
    ));

    let target = Target {
        uri: config.broker_uri.clone(),
        ca: config.broker_ca.clone(),
        name: "counter-all".into(),
        bindings: config.bindings.clone(),
        passive: config.bindings_from_operator,
    };
    {
        let (link, metrics, cancel) = (link.clone(), metrics.clone(), cancel.clone());
        tasks.spawn(async move { Ok(link.maintain(&target, &metrics, &cancel).await?) });
    }
    for subscription in &config.bindings.subscribes {
        tracing::info!(destination = %subscription.destination, queue = %subscription.queue, "tapping");
        let consumer = Consumer {
            subscription: subscription.clone(),
            handler: handler(counts.clone(), &subscription.destination),
            prefetch: config.prefetch,
            concurrency: config.concurrency,
            metrics: metrics.clone(),
            transient: TransientRetry::for_subscription(subscription, config.transient_retry),
        };
        let (link, stop) = (link.clone(), consume_stop.clone());
        tasks.spawn(consumers.track_future(async move { Ok(consumer.run(link, stop).await?) }));
    }
    consumers.close();
    // The past, from the contexts' feeds, while the consumers count the
    // present; readiness does not wait for it (`/v1/counts` tells).
    let client = eventflow_runtime::hypermedia::HalClient::new();
    for feed in feeds {
        tracing::info!(destination = %feed.destination, url = %feed.url, "reading the feed");
        let task = rebuild(
            feed,
            counts.clone(),
            feed_states.clone(),
            client.clone(),
            cancel.clone(),
        );
        tasks.spawn(async move {
            task.await;
            Ok(())
        });
    }
    let _ = readiness.started.set(());
    tracing::info!("ready");
    let mut result = Ok(());
    while let Some(joined) = tasks.join_next().await {
        if let Err(e) = joined.map_err(anyhow::Error::from).and_then(|r| r) {
            tracing::error!(error = %e, "a task failed; stopping");
            cancel.cancel();
            if result.is_ok() {
                result = Err(e);
            }
        }
    }
    if let Some(connection) = link.current() {
        let _ = tokio::time::timeout(
            eventflow_runtime::consumer::CLOSE_TIMEOUT,
            connection.close(200, "bye".into()),
        )
        .await;
    }
    result
}
