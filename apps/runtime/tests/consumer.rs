//! The consumer against a real RabbitMQ: never more than `concurrency`
//! messages in hand, and a drain on shutdown that finishes what it started
//! and leaves the rest in the queue — nothing handled twice, nothing lost.
//! A message the app rejects (refused, undecodable) is dead-lettered after
//! exactly `maxAttempts`; one whose dependency is unavailable spends no
//! attempt while it waits in process (within its bound), and goes back to
//! its queue unspent on shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use eventflow_contract::{Bindings, Topology, bindings::SubscriptionRequest, declare::declare};
use eventflow_runtime::{
    broker::BrokerLink,
    cloudevent::CloudEvent,
    consumer::{Consumer, Handled, Handler, HandlerError, TransientRetry, attempts},
    metrics::Metrics,
    testing::{amqp_uri, unique_namespace},
};
use lapin::{
    BasicProperties, Connection, ConnectionProperties,
    options::{BasicGetOptions, BasicPublishOptions, QueueDeclareOptions},
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
    let running = tokio::spawn(consumer.run(BrokerLink::of(connection.clone()), cancel.clone()));
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

/// A subscription of its own (`max_attempts`, backoff 100 ms), declared.
async fn subscribed(max_attempts: u32) -> (Arc<Connection>, Bindings) {
    let ns = unique_namespace();
    let request = SubscriptionRequest {
        destination: "things",
        group: "g",
        routing_keys: vec!["#".into()],
        max_attempts,
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
    (connection, bindings)
}

async fn publish(connection: &Connection, bindings: &Bindings, body: &[u8], content_type: &str) {
    let channel = connection.create_channel().await.unwrap();
    channel
        .basic_publish(
            bindings.publishes[0].exchange.as_str().into(),
            "thing.MADE".into(),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default().with_content_type(content_type.into()),
        )
        .await
        .unwrap()
        .await
        .unwrap();
}

async fn publish_event(connection: &Connection, bindings: &Bindings, id: &str) {
    let ce = json!({ "specversion": "1.0", "id": id, "source": "test", "type": "dev.eventflow.thing.MADE", "data": {} });
    publish(
        connection,
        bindings,
        ce.to_string().as_bytes(),
        "application/cloudevents+json",
    )
    .await;
}

/// Calls per event id; `poison` is refused for good (a 4xx), `flaky` finds
/// its dependency unavailable `unavailable` times, then succeeds; `down`
/// always finds it unavailable.
fn scripted(calls: Arc<Mutex<HashMap<String, u32>>>, unavailable: u32) -> Handler {
    Arc::new(move |ce: CloudEvent| {
        let calls = calls.clone();
        Box::pin(async move {
            let n = {
                let mut calls = calls.lock().unwrap();
                let n = calls.entry(ce.id.clone()).or_default();
                *n += 1;
                *n
            };
            match ce.id.as_str() {
                "poison" => Err(HandlerError::Failed(
                    "POST http://peer/v1/things: 400 Bad Request".into(),
                )),
                "flaky" if n <= unavailable => Err(HandlerError::Unavailable(
                    "GET http://peer/v1/things/1: 503 Service Unavailable".into(),
                )),
                "down" => Err(HandlerError::Unavailable("connection refused".into())),
                _ => Ok(Handled::Done),
            }
        })
    })
}

async fn until(what: &str, deadline: Duration, mut done: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !done().await {
        assert!(start.elapsed() < deadline, "{what} within {deadline:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn count(metrics: &Metrics, outcome: &str) -> f64 {
    let text = metrics.render();
    let line = format!("eventflow_messages_total{{outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(line.as_str()))
        .map_or(0.0, |v| v.parse().unwrap())
}

fn gauge(metrics: &Metrics, name: &str) -> f64 {
    let text = metrics.render();
    let line = format!("{name} ");
    text.lines()
        .find_map(|l| l.strip_prefix(line.as_str()))
        .map_or(0.0, |v| v.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq"]
async fn a_refused_or_undecodable_message_is_dead_lettered_after_exactly_max_attempts_and_an_unavailable_dependency_spends_none()
 {
    let max_attempts = 3;
    let (connection, bindings) = subscribed(max_attempts).await;
    publish_event(&connection, &bindings, "poison").await;
    publish(
        &connection,
        &bindings,
        b"{\"not\": \"a cloudevent\"}",
        "application/cloudevents+json",
    )
    .await;
    publish_event(&connection, &bindings, "flaky").await;
    publish_event(&connection, &bindings, "fine").await;

    let calls = Arc::new(Mutex::new(HashMap::new()));
    // Unavailable more often than maxAttempts: were each a spent attempt, it would die.
    let unavailable = 2 * max_attempts;
    let metrics = Metrics::default();
    let consumer = Consumer {
        subscription: bindings.subscribes[0].clone(),
        handler: scripted(calls.clone(), unavailable),
        prefetch: 8,
        concurrency: 4,
        metrics: metrics.clone(),
        transient: TransientRetry {
            first: Duration::from_millis(20),
            cap: Duration::from_millis(100),
            bound: Duration::from_secs(60),
        },
    };
    let cancel = CancellationToken::new();
    let running = tokio::spawn(consumer.run(BrokerLink::of(connection.clone()), cancel.clone()));
    let dlq = bindings.subscribes[0].dead_letter_queue.clone();
    until(
        "two dead letters and the flaky message done",
        Duration::from_secs(30),
        async || depth(&connection, &dlq).await == 2 && count(&metrics, "ok") == 2.0,
    )
    .await;
    cancel.cancel();
    running.await.unwrap().unwrap();

    let calls = calls.lock().unwrap().clone();
    assert_eq!(
        calls["poison"], max_attempts,
        "refused: exactly maxAttempts tries"
    );
    assert_eq!(
        calls["flaky"],
        unavailable + 1,
        "retried in process until it ran"
    );
    assert_eq!(calls["fine"], 1);
    assert_eq!(
        count(&metrics, "dead_lettered"),
        2.0,
        "the refused and the undecodable one"
    );
    assert_eq!(
        count(&metrics, "retried"),
        f64::from(2 * (max_attempts - 1)),
        "only the two rejected messages went through the retry queue"
    );
    assert_eq!(count(&metrics, "transient_retry"), f64::from(unavailable));
    assert_eq!(gauge(&metrics, "eventflow_messages_waiting"), 0.0);
    let channel = connection.create_channel().await.unwrap();
    for _ in 0..2 {
        let dead = channel
            .basic_get(dlq.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
            .expect("a dead letter");
        assert_eq!(
            attempts(&dead.delivery.properties),
            max_attempts - 1,
            "dead-lettered at the attempt that reached maxAttempts"
        );
    }
    for queue in [
        &bindings.subscribes[0].queue,
        &bindings.subscribes[0].retry_queue,
    ] {
        assert_eq!(depth(&connection, queue).await, 0, "{queue}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq"]
async fn a_dependency_unavailable_past_the_bound_spends_one_attempt_each_time() {
    let max_attempts = 2;
    let (connection, bindings) = subscribed(max_attempts).await;
    publish_event(&connection, &bindings, "down").await;
    let calls = Arc::new(Mutex::new(HashMap::new()));
    let metrics = Metrics::default();
    let consumer = Consumer {
        subscription: bindings.subscribes[0].clone(),
        handler: scripted(calls.clone(), 0),
        prefetch: 8,
        concurrency: 4,
        metrics: metrics.clone(),
        transient: TransientRetry {
            first: Duration::from_millis(20),
            cap: Duration::from_millis(50),
            bound: Duration::from_millis(300),
        },
    };
    let cancel = CancellationToken::new();
    let running = tokio::spawn(consumer.run(BrokerLink::of(connection.clone()), cancel.clone()));
    let dlq = bindings.subscribes[0].dead_letter_queue.clone();
    until(
        "the message dead-lettered",
        Duration::from_secs(30),
        async || depth(&connection, &dlq).await == 1,
    )
    .await;
    cancel.cancel();
    running.await.unwrap().unwrap();
    assert_eq!(count(&metrics, "retried"), 1.0, "one attempt per bound");
    assert_eq!(count(&metrics, "dead_lettered"), 1.0);
    let calls = calls.lock().unwrap()["down"];
    assert!(
        calls > 2 * max_attempts,
        "retried in process within each attempt: {calls}"
    );
    assert_eq!(
        count(&metrics, "transient_retry"),
        f64::from(calls - max_attempts)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq"]
async fn a_message_waiting_on_a_dependency_goes_back_to_its_queue_unspent_on_shutdown() {
    let (connection, bindings) = subscribed(3).await;
    publish_event(&connection, &bindings, "down").await;
    let metrics = Metrics::default();
    let consumer = Consumer {
        subscription: bindings.subscribes[0].clone(),
        handler: scripted(Arc::default(), 0),
        prefetch: 8,
        concurrency: 4,
        metrics: metrics.clone(),
        transient: TransientRetry::default(),
    };
    let cancel = CancellationToken::new();
    let running = tokio::spawn(consumer.run(BrokerLink::of(connection.clone()), cancel.clone()));
    until(
        "the message waits on its dependency",
        Duration::from_secs(30),
        async || gauge(&metrics, "eventflow_messages_waiting") == 1.0,
    )
    .await;
    let stopping = Instant::now();
    cancel.cancel();
    running.await.unwrap().unwrap();
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "the wait ends with the shutdown, not with the backoff or the drain timeout"
    );
    assert_eq!(count(&metrics, "requeued"), 1.0);
    assert_eq!(gauge(&metrics, "eventflow_messages_waiting"), 0.0);
    let queue = bindings.subscribes[0].queue.clone();
    let channel = connection.create_channel().await.unwrap();
    let back = loop {
        if let Some(m) = channel
            .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
        {
            break m;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(attempts(&back.delivery.properties), 0, "no attempt spent");
    assert!(back.delivery.redelivered);
    for queue in [
        &bindings.subscribes[0].retry_queue,
        &bindings.subscribes[0].dead_letter_queue,
    ] {
        assert_eq!(depth(&connection, queue).await, 0, "{queue}");
    }
}
