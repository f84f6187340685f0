//! The counter process rebuilding its counts from a real context feed: the
//! runtime's `GET /v1/events` over a real SQLite store, while the private
//! RabbitMQ delivers some of the same events (what the relay published
//! while the counter was away). Its totals, by type and by destination,
//! are the feed's, each event counted once, and a restarted counter shows
//! the same. A feed that cannot be read is tried again without holding the
//! counter back; a malformed `COUNTER_FEEDS` stops the start naming its entry.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use eventflow_contract::{Bindings, Topology, bindings::SubscriptionRequest, declare::declare};
use eventflow_runtime::{
    NewEvent, RecordedEvent,
    cloudevent::{CONTENT_TYPE, CloudEvent},
    metrics::Metrics,
    store::{Commit, EventStore, StreamWrite},
    testing::{AppProcess, ReservedPort, amqp_uri, fresh_sqlite, unique_namespace},
    web::{WebContext, feed_routes},
};
use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties,
    options::{BasicPublishOptions, ConfirmSelectOptions},
};
use serde_json::{Value, json};
use tokio::net::TcpListener;

const READY: Duration = Duration::from_secs(30);
const SETTLED: Duration = Duration::from_secs(60);

fn counter_binary() -> &'static str {
    env!("CARGO_BIN_EXE_counter")
}

/// The account context's store, its feed served on `listener` by the
/// runtime's own routes.
async fn serve_feed(store: &EventStore, listener: TcpListener) -> String {
    let url = format!("http://{}/v1/events", listener.local_addr().unwrap());
    let app = feed_routes(|_| "accounts").with_state(WebContext {
        store: store.clone(),
        metrics: Metrics::default(),
        relay: Arc::new(tokio::sync::Notify::new()),
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// Appends `event_type` to each of `ids` (at `version` − 1 before).
async fn append(
    store: &EventStore,
    ids: &[String],
    version: i64,
    event_type: &str,
) -> Vec<RecordedEvent> {
    let writes = ids
        .iter()
        .map(|id| StreamWrite {
            aggregate_type: "account".into(),
            aggregate_id: id.clone(),
            expected_version: version - 1,
            events: vec![NewEvent::new(event_type, json!({ "id": id }))],
            snapshot: json!({}),
            lookup: None,
            in_flight: None,
        })
        .collect();
    store
        .append(&Commit {
            writes,
            ..Commit::default()
        })
        .await
        .unwrap()
}

/// New accounts `from..to`, created.
async fn created(store: &EventStore, from: usize, to: usize) -> Vec<RecordedEvent> {
    let ids: Vec<String> = (from..to).map(|i| format!("a-{i}")).collect();
    append(store, &ids, 1, "ACCOUNT_CREATED").await
}

/// Every event of the store, counted by routing key.
async fn store_counts(store: &EventStore) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for e in store.feed(0, i64::MAX).await.unwrap() {
        *counts
            .entry(format!("{}.{}", e.aggregate_type, e.event_type))
            .or_default() += 1;
    }
    counts
}

/// The broker as the operator prepares it for the counter's tap on
/// `account`, and a channel that publishes there as the relay does.
struct Broker {
    bindings: Bindings,
    channel: Channel,
    _connection: Connection,
}

impl Broker {
    async fn new() -> Self {
        let tap = SubscriptionRequest {
            destination: "account",
            group: "counter",
            routing_keys: vec!["#".into()],
            max_attempts: 3,
            backoff_ms: 200,
        };
        let bindings = Bindings::standalone(&unique_namespace(), &["account"], &[tap]);
        let connection = Connection::connect(&amqp_uri(), ConnectionProperties::default())
            .await
            .expect("the private RabbitMQ (EVENTFLOW_TEST_AMQP_URI)");
        let channel = connection.create_channel().await.unwrap();
        declare(&channel, &Topology::of(&bindings), false)
            .await
            .unwrap();
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        Self {
            bindings,
            channel,
            _connection: connection,
        }
    }

    /// Publishes `events` as the relay does (CloudEvents, confirmed).
    async fn publish(&self, events: &[RecordedEvent]) {
        for e in events {
            let ce = CloudEvent::of(e, "accounts", "http://account.test");
            let props = BasicProperties::default()
                .with_content_type(CONTENT_TYPE.into())
                .with_message_id(ce.id.as_str().into())
                .with_delivery_mode(2);
            self.channel
                .basic_publish(
                    self.bindings.publishes[0].exchange.as_str().into(),
                    ce.routing_key().as_str().into(),
                    BasicPublishOptions::default(),
                    &ce.to_json(),
                    props,
                )
                .await
                .unwrap()
                .await
                .unwrap();
        }
    }

    /// A counter tapping `account`, reading `feeds` (`COUNTER_FEEDS`).
    async fn counter(&self, feeds: &str) -> AppProcess {
        let env = [
            ("EVENTFLOW_BROKER_URI", amqp_uri()),
            ("EVENTFLOW_BINDINGS", self.bindings.to_json()),
            ("COUNTER_FEEDS", feeds.to_owned()),
        ];
        let mut counter = AppProcess::spawn(counter_binary(), "all", &env);
        counter.wait_ready(READY).await;
        counter
    }
}

async fn counts(counter: &AppProcess) -> Value {
    reqwest::get(format!("{}/v1/counts", counter.http))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// `/v1/counts` once `done` holds of it; a panic with the last answer and
/// the counter's log after [`SETTLED`].
async fn until(counter: &AppProcess, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let body = counts(counter).await;
        if done(&body) {
            return body;
        }
        assert!(
            start.elapsed() < SETTLED,
            "{what}: not after {SETTLED:?}\n{body:#}\n{}",
            counter.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Events that reached the counter, counted or not.
fn arrivals(body: &Value) -> u64 {
    body["total"].as_u64().unwrap() + body["duplicatesIgnored"].as_u64().unwrap()
}

fn by_type(body: &Value) -> BTreeMap<String, u64> {
    serde_json::from_value(body["byType"].clone()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq"]
async fn a_restarted_counter_shows_the_feeds_totals_with_every_event_counted_once() {
    let store = EventStore::connect(&fresh_sqlite()).await.unwrap();
    // Three pages of history: 150 accounts created, 100 of them confirmed.
    created(&store, 0, 150).await;
    let confirmed: Vec<String> = (0..100).map(|i| format!("a-{i}")).collect();
    let history = append(&store, &confirmed, 2, "ACCOUNT_CONFIRMED").await;
    let feed = serve_feed(&store, TcpListener::bind("127.0.0.1:0").await.unwrap()).await;
    let broker = Broker::new().await;
    // The newest 30 also wait in the counter's queue, as when the relay
    // published them while the counter was away.
    broker.publish(&history[70..]).await;

    let counter = broker.counter(&format!("account={feed}")).await;
    // 280 arrivals: 250 from the feed, 30 from the queue.
    let body = until(&counter, "the feed read and the queue drained", |b| {
        b["feeds"]["account"]["state"] == "caught-up" && arrivals(b) >= 280
    })
    .await;
    let expected = store_counts(&store).await;
    assert_eq!(
        expected,
        BTreeMap::from([
            ("account.ACCOUNT_CREATED".into(), 150),
            ("account.ACCOUNT_CONFIRMED".into(), 100)
        ])
    );
    assert_eq!(by_type(&body), expected, "{body:#}");
    assert_eq!(body["total"], 250, "{body:#}");
    assert_eq!(body["duplicatesIgnored"], 30, "{body:#}");
    assert_eq!(body["byDestination"], json!({ "account": 250 }), "{body:#}");
    assert_eq!(body["feeds"]["account"]["events"], 250, "{body:#}");
    assert_eq!(
        body["windows"]["1h"], body["byType"],
        "every event was recorded in the last hour, and is placed at its time: {body:#}"
    );
    assert_eq!(
        body["windowsByDestination"]["1h"],
        json!({ "account": 250 })
    );

    // After catching up, new events come from the broker alone.
    let live = created(&store, 150, 151).await;
    broker.publish(&live).await;
    let body = until(&counter, "the live event counted", |b| b["total"] == 251).await;
    assert_eq!(by_type(&body), store_counts(&store).await, "{body:#}");
    let before_restart = body;

    // The counter restarts; meanwhile two more events are published.
    let mut counter = counter;
    counter.terminate(Duration::from_secs(10));
    let away = created(&store, 151, 153).await;
    broker.publish(&away).await;
    let counter = broker.counter(&format!("account={feed}")).await;
    let body = until(&counter, "the restarted counter caught up", |b| {
        b["feeds"]["account"]["state"] == "caught-up" && arrivals(b) >= 253 + 2
    })
    .await;
    assert_eq!(body["duplicatesIgnored"], 2, "{body:#}");
    let mut expected = by_type(&before_restart);
    *expected.get_mut("account.ACCOUNT_CREATED").unwrap() += 2;
    assert_eq!(by_type(&body), expected, "{body:#}");
    assert_eq!(by_type(&body), store_counts(&store).await);
    assert_eq!(body["total"], 253, "{body:#}");
    assert_eq!(body["byDestination"], json!({ "account": 253 }), "{body:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq"]
async fn a_feed_that_cannot_be_read_is_tried_again_while_the_counter_serves() {
    let store = EventStore::connect(&fresh_sqlite()).await.unwrap();
    created(&store, 0, 120).await;
    // Nobody listens on the feed's port yet: connections are refused.
    let port = ReservedPort::new();
    let url = format!("http://{}/v1/events", port.addr());
    let broker = Broker::new().await;
    let counter = broker.counter(&format!("account={url}")).await;
    let body = until(&counter, "the feed reported failing", |b| {
        b["feeds"]["account"]["state"] == "failing"
    })
    .await;
    let error = body["feeds"]["account"]["error"].as_str().unwrap();
    assert!(error.contains(&url), "the error names the page: {body:#}");
    assert_eq!(body["total"], 0);

    // The context comes up: the counter reads it on its next try.
    serve_feed(&store, TcpListener::bind(port.addr()).await.unwrap()).await;
    let body = until(&counter, "the feed read once up", |b| {
        b["feeds"]["account"]["state"] == "caught-up"
    })
    .await;
    assert_eq!(body["total"], 120, "{body:#}");
    assert_eq!(by_type(&body), store_counts(&store).await);
    assert!(body["feeds"]["account"].get("error").is_none(), "{body:#}");
}

#[tokio::test]
async fn a_malformed_counter_feeds_entry_stops_the_start_naming_it() {
    let mut counter = AppProcess::spawn(
        counter_binary(),
        "all",
        &[(
            "COUNTER_FEEDS",
            "account=http://a:8080/v1/events,order:http://o:8080/v1/events".into(),
        )],
    );
    let start = Instant::now();
    let status = loop {
        if let Some(status) = counter.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < READY,
            "still running:\n{}",
            counter.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!status.success(), "{status}");
    let log = counter.log_text();
    assert!(
        log.contains(
            r#"COUNTER_FEEDS entry \"order:http://o:8080/v1/events\" is not destination=url"#
        ),
        "{log}"
    );
}
