//! The consumer against a real RabbitMQ: never more than `concurrency`
//! messages in hand, and a drain on shutdown that finishes what it started
//! and leaves the rest in the queue — nothing handled twice, nothing lost.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use eventflow_contract::{Bindings, Topology, bindings::SubscriptionRequest, declare::declare};
use eventflow_runtime::{
    cloudevent::CloudEvent,
    consumer::{Consumer, Handled, Handler, TransientRetry},
    metrics::Metrics,
    testing::{amqp_uri, unique_namespace},
};
use lapin::{
    BasicProperties, Connection, ConnectionProperties,
    options::{BasicPublishOptions, QueueDeclareOptions},
    types::FieldTable,
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct Counters {
    started: AtomicUsize,
    finished: AtomicUsize,
    in_hand: AtomicUsize,
    most_in_hand: AtomicUsize,
}

fn slow_handler(counters: Arc<Counters>) -> Handler {
    Arc::new(move |_ce: CloudEvent| {
        let c = counters.clone();
        Box::pin(async move {
            c.started.fetch_add(1, Ordering::SeqCst);
            let now = c.in_hand.fetch_add(1, Ordering::SeqCst) + 1;
            c.most_in_hand.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(100)).await;
            c.in_hand.fetch_sub(1, Ordering::SeqCst);
            c.finished.fetch_add(1, Ordering::SeqCst);
            Ok(Handled::Done)
        })
    })
}

async fn depth(connection: &Connection, queue: &str) -> u32 {
    let ch = connection.create_channel().await.unwrap();
    let options = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    ch.queue_declare(queue.into(), options, FieldTable::default())
        .await
        .unwrap()
        .message_count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq"]
async fn the_consumer_bounds_its_concurrency_and_drains_without_losing_a_message() {
    let ns = unique_namespace();
    let request = SubscriptionRequest {
        destination: "things",
        group: "g",
        routing_keys: vec!["#".into()],
        max_attempts: 3,
        backoff_ms: 100,
    };
    let bindings = Bindings::standalone(&ns, &["things"], &[request]);
    let connection = Arc::new(
        Connection::connect(&amqp_uri(), ConnectionProperties::default())
            .await
            .unwrap(),
    );
    let channel = connection.create_channel().await.unwrap();
    declare(&channel, &Topology::of(&bindings), false)
        .await
        .unwrap();
    let total = 60;
    for i in 0..total {
        let ce = json!({ "specversion": "1.0", "id": format!("e{i}"), "source": "test", "type": "dev.eventflow.thing.MADE", "data": {} });
        channel
            .basic_publish(
                bindings.publishes[0].exchange.as_str().into(),
                "thing.MADE".into(),
                BasicPublishOptions::default(),
                ce.to_string().as_bytes(),
                BasicProperties::default(),
            )
            .await
            .unwrap();
    }
    let queue = bindings.subscribes[0].queue.clone();
    while depth(&connection, &queue).await < total {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let counters = Arc::new(Counters::default());
    let consumer = Consumer {
        subscription: bindings.subscribes[0].clone(),
        handler: slow_handler(counters.clone()),
        prefetch: 8,
        concurrency: 4,
        metrics: Metrics::default(),
        transient: TransientRetry::default(),
    };
    let cancel = CancellationToken::new();
    let running = tokio::spawn(consumer.run(connection.clone(), cancel.clone()));
    while counters.finished.load(Ordering::SeqCst) < 10 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cancel.cancel();
    running.await.unwrap().unwrap();

    let (started, finished) = (
        counters.started.load(Ordering::SeqCst),
        counters.finished.load(Ordering::SeqCst),
    );
    assert_eq!(
        counters.most_in_hand.load(Ordering::SeqCst),
        4,
        "concurrency is the bound, and reached"
    );
    assert_eq!(
        started, finished,
        "the drain finished every message it had started"
    );
    assert!(
        finished < total as usize,
        "shutdown stopped the consumption early"
    );
    assert_eq!(
        depth(&connection, &queue).await as usize,
        total as usize - finished,
        "unhandled messages are back in the queue"
    );
}
