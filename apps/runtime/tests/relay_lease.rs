//! The relay's lease on PostgreSQL when its connection dies (what a
//! PostgreSQL restart does to it): the relay notices and takes the lease
//! again, on a new connection, instead of believing it still holds it — and
//! goes on publishing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use eventflow_runtime::{
    broker::BrokerLink,
    metrics::Metrics,
    relay::Relay,
    store::{Commit, EventStore, NewEvent, StreamWrite},
    testing::{amqp_uri, fresh_postgres, unique_namespace},
};
use lapin::{
    Connection, ConnectionProperties, ExchangeKind,
    options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions},
    types::FieldTable,
};
use serde_json::json;
use sqlx::{Connection as _, PgConnection};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(10);

/// The backends holding an advisory lock in the store's database.
async fn lease_holders(admin: &mut PgConnection) -> Vec<i32> {
    sqlx::query_scalar(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_all(admin)
    .await
    .unwrap()
}

async fn commit(store: &EventStore, id: &str) {
    let write = StreamWrite {
        aggregate_type: "thing".into(),
        aggregate_id: id.into(),
        expected_version: 0,
        events: vec![NewEvent::new("MADE", json!({ "id": id }))],
        snapshot: json!({ "id": id }),
        lookup: None,
        in_flight: None,
    };
    store
        .append(&Commit {
            writes: vec![write],
            ..Commit::default()
        })
        .await
        .unwrap();
}

async fn depth(connection: &Connection, queue: &str) -> u32 {
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    connection
        .create_channel()
        .await
        .unwrap()
        .queue_declare(queue.into(), passive, FieldTable::default())
        .await
        .unwrap()
        .message_count()
}

async fn wait_depth(connection: &Connection, queue: &str, n: u32) {
    let start = Instant::now();
    while depth(connection, queue).await < n {
        assert!(start.elapsed() < DEADLINE, "{queue} has not {n} messages");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq and postgres"]
async fn a_relay_whose_lease_connection_died_takes_the_lease_again_and_goes_on_publishing() {
    let url = fresh_postgres().await;
    let store = EventStore::connect(&url).await.unwrap();
    let ns = unique_namespace();
    let (exchange, queue) = (format!("{ns}.things"), format!("{ns}.all"));
    let connection = Arc::new(
        Connection::connect(&amqp_uri(), ConnectionProperties::default())
            .await
            .unwrap(),
    );
    let channel = connection.create_channel().await.unwrap();
    let auto_delete = ExchangeDeclareOptions {
        auto_delete: true,
        ..Default::default()
    };
    channel
        .exchange_declare(
            exchange.as_str().into(),
            ExchangeKind::Topic,
            auto_delete,
            FieldTable::default(),
        )
        .await
        .unwrap();
    let exclusive = QueueDeclareOptions {
        exclusive: true,
        ..Default::default()
    };
    channel
        .queue_declare(queue.as_str().into(), exclusive, FieldTable::default())
        .await
        .unwrap();
    channel
        .queue_bind(
            queue.as_str().into(),
            exchange.as_str().into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();

    let notify = Arc::new(Notify::new());
    let relay = Relay {
        store: store.clone(),
        link: BrokerLink::of(connection.clone()),
        exchange,
        self_url: "http://relay.test".into(),
        collection_of: |_| "things",
        notify: notify.clone(),
        metrics: Metrics::default(),
        fault_exit_after_commit: false,
    };
    let cancel = CancellationToken::new();
    let running = tokio::spawn(relay.run(cancel.clone()));
    commit(&store, "a").await;
    notify.notify_one();
    wait_depth(&connection, &queue, 1).await;

    // The lease's backend goes, as in a PostgreSQL restart.
    let mut admin = PgConnection::connect(&url).await.unwrap();
    let holders = lease_holders(&mut admin).await;
    assert_eq!(holders.len(), 1, "the relay holds the lease");
    let terminated: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(holders[0])
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert!(terminated);

    // The relay takes it again on a new connection (a relay believing it
    // still held it would leave the lease free for a second relay).
    let start = Instant::now();
    loop {
        let now = lease_holders(&mut admin).await;
        if now.len() == 1 && now[0] != holders[0] {
            break;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "the lease was not taken again: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        store.relay_lease().await.unwrap().is_none(),
        "nobody else gets the lease"
    );
    commit(&store, "b").await;
    notify.notify_one();
    wait_depth(&connection, &queue, 2).await;
    let start = Instant::now();
    while store.outbox_pending().await.unwrap() > 0 {
        assert!(start.elapsed() < DEADLINE, "the outbox never drained");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    cancel.cancel();
    running.await.unwrap();
    let _ = connection.close(200, "bye".into()).await;
}
