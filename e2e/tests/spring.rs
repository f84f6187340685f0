//! Spring Cloud Stream apps, unchanged, as apps of Streams on the real node
//! (`examples/spring/`, images from `apps/spring` built by `make images`):
//! Data Flow's `time | transform | log` reaches Running and messages flow end
//! to end; a tap under its own group gets a copy of every message; our counter
//! reads a Spring app's output; a poison message ends in the group's DLQ after
//! `maxAttempts` and the next one is served; a Spring consumer of the ecommerce
//! `order` destination receives every event of a 20-order load run once; and
//! deleting the Streams removes their queues.

use std::{
    cell::{Cell, RefCell},
    time::Duration,
};

use eventflow_e2e::*;
use serde_json::{Value, json};

const NS: &str = EXAMPLES_NS;
/// The Streams of the first test, in the order they are deleted.
const SPRING_FILES: [&str; 3] = [
    "70-ours-consumes-spring.yaml",
    "51-ticktock-tap.yaml",
    "50-ticktock.yaml",
];

fn apply(file: &str) {
    kubectl(&[
        "apply",
        "--server-side",
        "-f",
        &format!("examples/spring/{file}"),
    ]);
}

#[tokio::test]
#[ignore = "needs a cluster"]
async fn spring_ticktock_flows_a_tap_gets_every_message_poison_is_dead_lettered_and_delete_removes_the_queues()
 {
    let client = client().await;
    example_system();
    // From scratch (`make measure` leaves ticktock running): new pods count from 0.
    for file in SPRING_FILES {
        kubectl(&[
            "delete",
            "--ignore-not-found",
            "--wait=true",
            "-f",
            &format!("examples/spring/{file}"),
        ]);
    }
    // The tap first: its queue exists before the source's first message.
    apply("51-ticktock-tap.yaml");
    wait_stream_condition("ticktock-tap", "TopologyReady");
    apply("50-ticktock.yaml");
    apply("70-ours-consumes-spring.yaml");
    for s in ["ticktock", "ticktock-tap", "tick-count"] {
        wait_stream_condition(s, "Ready");
    }

    // Messages flow time -> transform -> log, and to the tap and our counter.
    wait_for(
        Duration::from_secs(120),
        "the sink counting ticks",
        || async {
            Ok(count(
                &actuator(&client, "ticktock", "log", "sink").await,
                "received",
            ) >= 3)
        },
    )
    .await
    .unwrap();
    let counter = forward_service(&client, NS, "tick-count-counter", 8080)
        .await
        .unwrap();
    let http = reqwest::Client::new();
    wait_for(
        Duration::from_secs(60),
        "our counter counting the Spring processor's output",
        || async {
            let counts = get_json(&http, &format!("{counter}/v1/counts")).await?;
            Ok(counts["byType"][format!("{NS}.upper")]
                .as_u64()
                .unwrap_or(0)
                >= 3)
        },
    )
    .await
    .unwrap();

    // Stop the source; once everything is delivered, the tap has had a copy of each message.
    kubectl(&[
        "-n",
        NS,
        "patch",
        "stream",
        "ticktock",
        "--type=json",
        "-p",
        &json!([{"op": "add", "path": "/spec/apps/0/worker/replicas", "value": 0}]).to_string(),
    ]);
    // Gone, not only unready: a stopping JVM may still send a tick.
    wait_no_pods(
        &client,
        "eventflow.dev/stream=ticktock,eventflow.dev/app=time",
    )
    .await;
    let received = same_messages(&client, ("ticktock", "log"), ("ticktock-tap", "tap")).await;
    eprintln!("log and tap each received {received} messages");

    // A poison message: tried maxAttempts times by each group, then in its DLQ.
    let conn = broker_connection(&client).await;
    let upper = format!("{NS}.upper");
    publish_text(&conn, &upper, "tick", "poison pill").await;
    publish_text(&conn, &upper, "tick", "the next message").await;
    for (stream, app, group) in [("ticktock", "log", "log"), ("ticktock-tap", "tap", "tap")] {
        let dlq = format!("{upper}.{group}.dlq");
        let dead = RefCell::new(Vec::new());
        wait_for(
            Duration::from_secs(90),
            &format!("the poison message in {dlq}"),
            || async {
                let taken = drain_queue(&conn, &dlq).await;
                dead.borrow_mut().extend(taken);
                Ok(!dead.borrow().is_empty())
            },
        )
        .await
        .unwrap();
        assert_eq!(dead.into_inner(), ["poison pill"], "{dlq}");
        let sink = RefCell::new(Value::Null);
        wait_for(
            Duration::from_secs(60),
            &format!("{stream}/{app} to serve the message after the poison"),
            || async {
                *sink.borrow_mut() = actuator(&client, stream, app, "sink").await;
                Ok(sink.borrow()["last"] == "the next message")
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e:#}; its sink: {}", sink.borrow()));
    }
    let sink = actuator(&client, "ticktock", "log", "sink").await;
    assert_eq!(
        count(&sink, "failedAttempts"),
        3,
        "maxAttempts of log is 3: {sink}"
    );

    // Deleting the Streams removes their queues and, unused by any other
    // Stream, their exchanges.
    for file in SPRING_FILES {
        kubectl(&[
            "delete",
            "--wait=true",
            "-f",
            &format!("examples/spring/{file}"),
        ]);
    }
    wait_pods_gone(&client, &["ticktock", "ticktock-tap", "tick-count"]).await;
    assert_removed(
        &conn,
        &[
            "ticks.transform",
            "ticks.transform.dlq",
            "upper.log",
            "upper.log.dlq",
            "upper.tap",
            "upper.tick-count",
        ],
        &["ticks", "upper"],
    )
    .await;
}

#[tokio::test]
#[ignore = "needs a cluster"]
async fn a_spring_consumer_of_the_order_destination_receives_every_event_of_a_load_run_once() {
    let client = client().await;
    example_system();
    apply("60-spring-consumes-ours.yaml");
    wait_stream_condition("spring-audit", "Ready");
    let http = reqwest::Client::new();
    let order = forward_service(&client, NS, "ecommerce-order-web", 8080)
        .await
        .unwrap();
    let feed_total = |counts: std::collections::BTreeMap<String, u64>| counts.values().sum::<u64>();

    // Quiet first: nothing in flight before the run.
    let settled = Cell::new(None);
    wait_for(
        Duration::from_secs(120),
        "the consumer to have caught up with the order feed",
        || async {
            let feed = feed_total(feed_counts_at(&http, &order).await?);
            let events = actuator(&client, "spring-audit", "order-events", "events").await;
            let now = (feed, count(&events, "distinct"), count(&events, "received"));
            let same = settled.get() == Some(now);
            settled.set(Some(now));
            Ok(same)
        },
    )
    .await
    .unwrap();
    let (feed_before, distinct_before, received_before) = settled.get().unwrap();

    let report = run_example_orders(&client, &http, 20).await.unwrap();
    assert_eq!(report["status"], "COMPLETED", "{report}");

    let last = RefCell::new(Value::Null);
    wait_for(
        Duration::from_secs(120),
        "the Spring consumer to receive every order event",
        || async {
            let feed = feed_total(feed_counts_at(&http, &order).await?) - feed_before;
            let events = actuator(&client, "spring-audit", "order-events", "events").await;
            let distinct = count(&events, "distinct") - distinct_before;
            *last.borrow_mut() =
                json!({"orderEvents": feed, "distinct": distinct, "consumer": events});
            Ok(feed > 0 && distinct == feed)
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}: {}", last.borrow()));
    let events = actuator(&client, "spring-audit", "order-events", "events").await;
    assert_eq!(
        count(&events, "received") - received_before,
        count(&events, "distinct") - distinct_before,
        "each event once: {events}"
    );
    assert!(
        events["byType"]["dev.eventflow.order.ORDER_CREATED"]
            .as_u64()
            .unwrap_or(0)
            >= 20,
        "{events}"
    );
    kubectl(&[
        "delete",
        "--wait=true",
        "-f",
        "examples/spring/60-spring-consumes-ours.yaml",
    ]);
    wait_pods_gone(&client, &["spring-audit"]).await;
    let conn = broker_connection(&client).await;
    let queue = format!("{NS}.order.spring-audit");
    assert!(
        !queue_exists(&conn, &queue).await,
        "{queue} is still on the broker"
    );
    assert!(
        exchange_exists(&conn, &format!("{NS}.order")).await,
        "ecommerce still uses order"
    );
}
