//! `POST /drain` (a suspended Stream) against a real RabbitMQ and
//! PostgreSQL, served over HTTP as the admin port serves it.
//!
//! Worker: the messages in hand are finished and acknowledged once, the
//! consumption stops (messages published afterwards wait in the queue,
//! which has no consumer left), and `GET /drain` says drained only then.
//! Web: commands are refused with 503 problem+json while reads still work,
//! and the drain reports the outbox until the relay has published it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{Router, routing::get};
use eventflow_contract::{Bindings, Topology, bindings::SubscriptionRequest, declare::declare};
use eventflow_runtime::{
    broker::BrokerLink,
    cloudevent::CloudEvent,
    config::Role,
    consumer::{Consumer, Handled, Handler, TransientRetry},
    drain::{self, Drain, DrainState},
    event::NewEvent,
    metrics::Metrics,
    relay::Relay,
    store::{Commit, EventStore, StreamWrite},
    testing::{amqp_uri, fresh_postgres, unique_namespace},
};
use lapin::{
    BasicProperties, Connection, ConnectionProperties,
    options::{BasicGetOptions, BasicPublishOptions, QueueDeclareOptions},
    types::FieldTable,
};
use serde_json::json;
use tokio::sync::{Notify, Semaphore};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

async fn until<T>(what: &str, timeout: Duration, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(start.elapsed() < timeout, "{what}: not after {timeout:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Serves `router` on a fresh local port; returns its base URL.
async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

async fn drain_state(base: &str, post: bool) -> DrainState {
    let client = reqwest::Client::new();
    let url = format!("{base}/drain");
    let request = if post {
        client.post(url)
    } else {
        client.get(url)
    };
    let response = request.send().await.unwrap();
    assert!(response.status().is_success());
    response.json().await.unwrap()
}

async fn declared() -> (Arc<Connection>, Bindings) {
    let request = SubscriptionRequest {
        destination: "things",
        group: "g",
        routing_keys: vec!["#".into()],
        max_attempts: 3,
        backoff_ms: 100,
    };
    let bindings = Bindings::standalone(&unique_namespace(), &["things"], &[request]);
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

async fn publish(connection: &Connection, bindings: &Bindings, id: &str) {
    let ce = json!({ "specversion": "1.0", "id": id, "source": "test", "type": "dev.eventflow.thing.MADE", "data": {} });
    connection
        .create_channel()
        .await
        .unwrap()
        .basic_publish(
            bindings.publishes[0].exchange.as_str().into(),
            "thing.MADE".into(),
            BasicPublishOptions::default(),
            ce.to_string().as_bytes(),
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
}

/// (ready messages, consumers) of `queue`.
async fn queue_state(connection: &Connection, queue: &str) -> (u32, u32) {
    let ch = connection.create_channel().await.unwrap();
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let q = ch
        .queue_declare(queue.into(), passive, FieldTable::default())
        .await
        .unwrap();
    (q.message_count(), q.consumer_count())
}

/// The ids of the messages in `queue`, taken off it; with the redelivered flag.
async fn take_all(connection: &Connection, queue: &str) -> Vec<(String, bool)> {
    let ch = connection.create_channel().await.unwrap();
    let mut out = Vec::new();
    while let Some(m) = ch
        .basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
    {
        let ce: CloudEvent = serde_json::from_slice(&m.delivery.data).unwrap();
        out.push((ce.id, m.delivery.redelivered));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq"]
async fn a_draining_worker_finishes_and_acks_what_it_holds_once_and_takes_nothing_more() {
    let (connection, bindings) = declared().await;
    let queue = bindings.subscribes[0].queue.clone();
    let total = 30;
    for i in 0..total {
        publish(&connection, &bindings, &format!("e{i}")).await;
    }
    let gate = Arc::new(Semaphore::new(0));
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let handler: Handler = {
        let (gate, seen) = (gate.clone(), seen.clone());
        Arc::new(move |ce: CloudEvent| {
            let (gate, seen) = (gate.clone(), seen.clone());
            Box::pin(async move {
                gate.acquire().await.unwrap().forget();
                seen.lock().unwrap().push(ce.id);
                Ok(Handled::Done)
            })
        })
    };
    let metrics = Metrics::default();
    let stop = CancellationToken::new();
    let consumers = TaskTracker::new();
    let consumer = Consumer {
        subscription: bindings.subscribes[0].clone(),
        handler,
        prefetch: 8,
        concurrency: 4,
        metrics: metrics.clone(),
        transient: TransientRetry::default(),
    };
    consumers.spawn(consumer.run(BrokerLink::of(connection.clone()), stop.clone()));
    consumers.close();
    let d = Drain::new(
        Role::Worker,
        vec![stop.clone()],
        consumers.clone(),
        Arc::default(),
        metrics.clone(),
    );
    let admin = serve(drain::routes(d)).await;
    until("4 in hand", Duration::from_secs(20), async || {
        (metrics.messages_in_hand.get() == 4).then_some(())
    })
    .await;
    let before = drain_state(&admin, false).await;
    assert!(!before.draining && !before.drained, "{before:?}");

    let s = drain_state(&admin, true).await;
    assert!(s.draining && !s.drained, "{s:?}");
    assert_eq!(s.holding, 4);
    assert!(s.detail.contains("4 message(s) in hand"), "{}", s.detail);
    assert_eq!(
        drain_state(&admin, true).await.holding,
        4,
        "POST again: a no-op"
    );
    // Published while draining: waits in the queue.
    for i in total..total + 5 {
        publish(&connection, &bindings, &format!("e{i}")).await;
    }
    gate.add_permits(1_000);
    let drained = until("drained", Duration::from_secs(30), async || {
        let s = drain_state(&admin, false).await;
        s.drained.then_some(s)
    })
    .await;
    assert_eq!((drained.holding, drained.detail.as_str()), (0, "drained"));

    let handled = seen.lock().unwrap().clone();
    assert_eq!(handled.len(), 4, "exactly the four in hand: {handled:?}");
    let (ready, consumers) = queue_state(&connection, &queue).await;
    assert_eq!(consumers, 0, "consumption stopped");
    assert_eq!(
        ready as usize,
        total + 5 - 4,
        "nothing unacked, nothing lost"
    );
    let left = take_all(&connection, &queue).await;
    let left_ids: BTreeSet<&String> = left.iter().map(|(id, _)| id).collect();
    assert!(
        handled.iter().all(|id| !left_ids.contains(id)),
        "every message in hand acked (none back in the queue)"
    );
    assert_eq!(left_ids.len() + handled.len(), total + 5);
    // Published during the drain: never delivered.
    for i in total..total + 5 {
        let (_, redelivered) = left.iter().find(|(id, _)| *id == format!("e{i}")).unwrap();
        assert!(!redelivered, "e{i} was never delivered");
    }
}

fn write(id: &str) -> Commit {
    Commit {
        writes: vec![StreamWrite {
            aggregate_type: "thing".into(),
            aggregate_id: id.into(),
            expected_version: 0,
            events: vec![NewEvent::new("MADE", json!({ "id": id }))],
            snapshot: json!({ "id": id }),
            lookup: None,
            in_flight: None,
        }],
        ..Commit::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq and postgresql"]
async fn a_draining_web_role_refuses_commands_and_is_drained_once_its_outbox_is_relayed() {
    let (connection, bindings) = declared().await;
    let store = EventStore::connect(&fresh_postgres().await).await.unwrap();
    for id in ["t1", "t2", "t3"] {
        store.append(&write(id)).await.unwrap();
    }
    let metrics = Metrics::default();
    let redrive_stop = CancellationToken::new();
    let consumers = TaskTracker::new();
    consumers.close();
    let cell = Arc::new(std::sync::OnceLock::new());
    let _ = cell.set(store.clone());
    let d = Drain::new(
        Role::Web,
        vec![redrive_stop.clone()],
        consumers,
        cell,
        metrics.clone(),
    );
    let admin = serve(drain::routes(d.clone())).await;
    let api = serve(
        Router::new()
            .route("/things", get(|| async { "[]" }).post(|| async { "made" }))
            .layer(axum::middleware::from_fn_with_state(
                d,
                drain::refuse_commands,
            )),
    )
    .await;
    let client = reqwest::Client::new();
    let things = format!("{api}/things");
    assert_eq!(client.post(&things).send().await.unwrap().status(), 200);

    let s = drain_state(&admin, true).await;
    assert!(s.draining && !s.drained, "{s:?}");
    assert_eq!(s.outbox, Some(3));
    assert!(
        s.detail.contains("3 event(s) in the outbox"),
        "{}",
        s.detail
    );
    assert!(redrive_stop.is_cancelled(), "the re-driver stops");
    let refused = client.post(&things).send().await.unwrap();
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    let problem: serde_json::Value = refused.json().await.unwrap();
    assert!(
        problem["detail"].as_str().unwrap().contains("suspended"),
        "{problem}"
    );
    assert_eq!(
        client.get(&things).send().await.unwrap().status(),
        200,
        "reads still work"
    );

    let relay_stop = CancellationToken::new();
    let relay = Relay {
        store: store.clone(),
        link: BrokerLink::of(connection.clone()),
        exchange: bindings.publishes[0].exchange.clone(),
        self_url: api.clone(),
        collection_of: |_| "things",
        notify: Arc::new(Notify::new()),
        metrics,
        fault_exit_after_commit: false,
    };
    tokio::spawn(relay.run(relay_stop.clone()));
    let drained = until("outbox relayed", Duration::from_secs(30), async || {
        let s = drain_state(&admin, false).await;
        s.drained.then_some(s)
    })
    .await;
    assert_eq!(drained.outbox, Some(0));
    let queue = &bindings.subscribes[0].queue;
    until("3 published", Duration::from_secs(10), async || {
        (queue_state(&connection, queue).await.0 == 3).then_some(())
    })
    .await;
    relay_stop.cancel();
}
