//! Path 2, the relay's publish rate: the runtime's outbox relay
//! (`relay::Relay`, as the web role runs it) started on the outbox path 1
//! left behind, timed from its start until the broker confirmed every
//! event (`eventflow_events_published`), then checked: the outbox empty,
//! the group queue holding them all. Its ceiling: PerfTest publishing the
//! same count of messages of the same size, persistent, with publisher
//! confirms (at most the relay's batch, 256, outstanding) to the same
//! kind of exchange (topic) and bound queue.

use std::{sync::Arc, time::Duration};

use eventflow_runtime::{
    broker::BrokerLink, cloudevent::CloudEvent, metrics::Metrics, relay::Relay,
};
use lapin::{Connection, ConnectionProperties};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{
    Run,
    broker::Ours,
    perftest,
    report::{PathFigures, Side},
};

/// The relay's batch (`relay.rs`): PerfTest's limit of unconfirmed messages.
const BATCH: usize = 256;
const DEADLINE: Duration = Duration::from_secs(600);

/// The relay publishing the outbox into `ours`; the path's figures, the
/// count and one published message body (the size PerfTest and path 3 use).
pub(crate) async fn path(r: &mut Run, ours: &Ours) -> (PathFigures, u64, Vec<u8>) {
    let store = r.web.store.clone();
    let (pending, first) =
        r.rt.spawn(async move {
            (
                store.outbox_pending().await.unwrap(),
                store.outbox_batch(1).await.unwrap(),
            )
        })
        .await
        .unwrap();
    let pending = u64::try_from(pending).unwrap();
    let spec = eventflow_account::spec();
    let e = first.first().expect("path 1 left events in the outbox");
    let body = CloudEvent::of(e, (spec.collection_of)(&e.aggregate_type), &r.web.url).to_json();
    println!(
        "2. relay publish rate: {pending} events from the outbox, {}-byte CloudEvents, persistent, confirms per batch of {BATCH}",
        body.len()
    );

    // The relay's own connection, made on the web role's runtime as the web role makes it.
    let uri = r.amqp.clone();
    let connection =
        r.rt.spawn(async move { Connection::connect(&uri, ConnectionProperties::default()).await })
            .await
            .unwrap()
            .unwrap();
    let connection = Arc::new(connection);
    let metrics = Metrics::default();
    let relay = Relay {
        store: r.web.store.clone(),
        link: BrokerLink::of(connection.clone()),
        exchange: ours.exchange.clone(),
        self_url: r.web.url.clone(),
        collection_of: spec.collection_of,
        notify: Arc::new(Notify::new()),
        metrics: metrics.clone(),
        fault_exit_after_commit: false,
    };
    let cancel = CancellationToken::new();
    let before = r.clocks.read(Some(&r.web.database)).await;
    let running = r.rt.spawn(relay.run(cancel.clone()));
    let start = std::time::Instant::now();
    while metrics.events_published.get() < pending {
        assert!(
            start.elapsed() < DEADLINE,
            "the relay published {} of {pending} events in {DEADLINE:?}",
            metrics.events_published.get()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let after = r.clocks.read(Some(&r.web.database)).await;
    cancel.cancel();
    running.await.unwrap();
    let _ = connection.close(200, "relayed".into()).await;
    let store = r.web.store.clone();
    let left =
        r.rt.spawn(async move { store.outbox_pending().await.unwrap() })
            .await
            .unwrap();
    assert_eq!(left, 0, "the outbox should be empty");
    assert_eq!(u64::from(r.broker.depth(&ours.queue).await), pending);
    let ours_side = Side::measured(
        "ours: outbox relay",
        pending,
        r.clocks.between(&before, &after),
    );

    let ceiling = perftest_publish(r, pending, body.len()).await;
    (
        PathFigures {
            title: "2. relay publish",
            ours: vec![ours_side],
            ceiling,
        },
        pending,
        body,
    )
}

/// PerfTest publishing `n` messages of `size` bytes into a fresh account
/// topology (it leaves them in the group queue, which path 3's ceiling drains).
async fn perftest_publish(r: &mut Run, n: u64, size: usize) -> Side {
    let q = r.broker.declare_account().await;
    let options: Vec<String> = [
        "--producers",
        "1",
        "--consumers",
        "0",
        "--pmessages",
        &n.to_string(),
        "--size",
        &size.to_string(),
        "--confirm",
        &BATCH.to_string(),
        "--flag",
        "persistent",
        "--exchange",
        &q.exchange,
        "--type",
        "topic",
        "--routing-key",
        "account.ACCOUNT_CREATED",
        "--queue",
        &q.queue,
        "--predeclared",
        "--skip-binding-queues",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let before = r.clocks.read(None).await;
    let out = perftest::run(&r.perftest, &r.amqp, "publish", &options).await;
    let after = r.clocks.read(None).await;
    let rate = perftest::rate(&out, "sending rate avg:")
        .unwrap_or_else(|| panic!("no sending rate in PerfTest's summary:\n{out}"));
    assert_eq!(
        u64::from(r.broker.depth(&q.queue).await),
        n,
        "PerfTest's messages should all be in {}",
        q.queue
    );
    r.drain = Some(q);
    Side::perftest(
        "ceiling: PerfTest publish",
        n,
        rate,
        r.clocks.between(&before, &after),
    )
}
