//! The broker link and a consumer through a restart of the fault broker
//! (`services.sh fault-broker stop|start`), with messages in hand when it
//! goes: the link reconnects in-process, the consumer consumes again on a
//! new channel, and every message is handled (those whose ack went with
//! the old channel, again).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use eventflow_contract::{Bindings, bindings::SubscriptionRequest};
use eventflow_runtime::{
    broker::{BrokerLink, Target},
    cloudevent::CloudEvent,
    consumer::{Consumer, Handled, Handler, TransientRetry},
    metrics::Metrics,
    testing::{FAULT_BROKER, fault_amqp_uri, fault_broker, unique_namespace},
};
use lapin::{
    BasicProperties, Connection, ConnectionProperties,
    options::{BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions},
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const MESSAGES: usize = 40;
/// Longest wait for anything after the broker is back (its backoff is capped at 10 s).
const CATCH_UP: Duration = Duration::from_secs(60);

type Seen = Arc<Mutex<HashMap<String, usize>>>;

/// Counts each event id, slowly enough that messages are in hand when the broker goes.
fn counting_handler(seen: Seen) -> Handler {
    Arc::new(move |ce: CloudEvent| {
        let seen = seen.clone();
        Box::pin(async move {
            *seen.lock().unwrap().entry(ce.id).or_default() += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
            Ok(Handled::Done)
        })
    })
}

async fn until(what: &str, timeout: Duration, mut condition: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !condition().await {
        assert!(start.elapsed() < timeout, "{what}: not after {timeout:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The ids of the messages left in `queue` (taken off it).
async fn leftovers(uri: &str, queue: &str) -> Vec<String> {
    let connection = Connection::connect(uri, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let mut ids = Vec::new();
    while let Some(m) = channel
        .basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
    {
        let ce: CloudEvent = serde_json::from_slice(&m.delivery.data).unwrap();
        ids.push(ce.id);
    }
    let _ = connection.close(200, "emptied".into()).await;
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the fault rabbitmq"]
async fn a_consumer_rides_out_a_broker_restart_with_messages_in_hand() {
    let _serial = FAULT_BROKER.lock().await;
    let uri = fault_amqp_uri();
    fault_broker("start");
    let request = SubscriptionRequest {
        destination: "things",
        group: "g",
        routing_keys: vec!["#".into()],
        max_attempts: 5,
        backoff_ms: 100,
    };
    let bindings = Bindings::standalone(&unique_namespace(), &["things"], &[request]);
    let queue = bindings.subscribes[0].queue.clone();
    let (link, metrics, cancel) = (
        BrokerLink::new(),
        Metrics::default(),
        CancellationToken::new(),
    );
    let target = Target {
        uri: uri.clone(),
        ca: None,
        name: "broker-restart-test".into(),
        bindings: bindings.clone(),
        passive: false,
    };
    let maintained = tokio::spawn({
        let (link, metrics, cancel) = (link.clone(), metrics.clone(), cancel.clone());
        async move { link.maintain(&target, &metrics, &cancel).await }
    });
    // The link declared the topology; publish persistent messages with confirms.
    let connection = link.connection(&cancel).await.unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    for i in 0..MESSAGES {
        let ce = json!({ "specversion": "1.0", "id": format!("e{i}"), "source": "test", "type": "dev.eventflow.thing.MADE", "data": {} });
        channel
            .basic_publish(
                bindings.publishes[0].exchange.as_str().into(),
                "thing.MADE".into(),
                BasicPublishOptions::default(),
                ce.to_string().as_bytes(),
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let _ = channel.close(200, "published".into()).await;

    let seen: Seen = Arc::default();
    let consumer = Consumer {
        subscription: bindings.subscribes[0].clone(),
        handler: counting_handler(seen.clone()),
        prefetch: 8,
        concurrency: 4,
        metrics: metrics.clone(),
        transient: TransientRetry::default(),
    };
    let consuming = tokio::spawn(consumer.run(link.clone(), cancel.clone()));
    until("messages in hand", CATCH_UP, async || {
        seen.lock().unwrap().len() >= 6
    })
    .await;

    fault_broker("stop");
    until("the link sees the broker gone", CATCH_UP, async || {
        metrics.broker_connected.get() == 0
    })
    .await;
    assert!(
        !consuming.is_finished(),
        "the consumer ended with the connection"
    );
    fault_broker("start");
    let back = Instant::now();
    until("every message handled", CATCH_UP, async || {
        seen.lock().unwrap().len() == MESSAGES
    })
    .await;
    let handled = back.elapsed();
    assert_eq!(metrics.broker_reconnects.get(), 1);
    assert_eq!(metrics.broker_connected.get(), 1);

    cancel.cancel();
    consuming.await.unwrap().unwrap();
    maintained.await.unwrap().unwrap();
    if let Some(c) = link.current() {
        let _ = c.close(200, "bye".into()).await;
    }
    // What the drain returned to the queue was handled already (a
    // redelivery of a message whose ack went with the old channel).
    let left = leftovers(&uri, &queue).await;
    let seen_ids = seen.lock().unwrap().clone();
    assert!(
        left.iter().all(|id| seen_ids.contains_key(id)),
        "never handled: {left:?}"
    );
    let again = seen.lock().unwrap().values().filter(|n| **n > 1).count();
    eprintln!(
        "consumer through a broker restart: {MESSAGES} messages, {again} handled again; \
         {} left in the queue, handled already; broker back -> all handled in {handled:?}",
        left.len()
    );
}
