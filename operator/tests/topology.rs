//! The operator's AMQP side against the real RabbitMQ: many reconciles
//! declaring and deleting at once, as after a leader change, when every
//! Stream is reconciled together on an empty connection cache.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{sync::Arc, time::Duration};

use eventflow_contract::Topology;
use eventflow_operator::{build::stream::stream_topology, topology::Amqp};
use futures::future::join_all;

/// Topologies of `count` Streams in a namespace of their own (one exchange
/// shared by all, as Streams tapping the same destination have).
fn topologies(count: usize) -> Vec<Topology> {
    let ns = format!("topology-{}", std::process::id());
    (0..count)
        .map(|i| {
            let stream = common::shop_stream(&format!("s{i}"));
            stream_topology(&stream, &ns, eventflow_contract::QueueType::Classic)
        })
        .collect()
}

/// Runs `op` for every topology at once; fails the test if one of them has
/// not finished within `limit` (a hung reconcile blocks its Stream forever).
async fn all_at_once<F, Fut>(topologies: &[Topology], limit: Duration, what: &str, op: F)
where
    F: Fn(Topology) -> Fut,
    Fut: std::future::Future<Output = eventflow_operator::Result<()>> + Send + 'static,
{
    let tasks = topologies.iter().cloned().map(|t| tokio::spawn(op(t)));
    let results = tokio::time::timeout(limit, join_all(tasks))
        .await
        .unwrap_or_else(|_| panic!("{what}: an operation did not finish within {limit:?}"));
    for r in results {
        r.unwrap().unwrap_or_else(|e| panic!("{what}: {e}"));
    }
}

#[tokio::test]
#[ignore = "needs rabbitmq"]
async fn declares_and_deletes_started_together_on_an_empty_connection_cache_all_finish() {
    let uri = common::amqp_uri();
    let amqp = Arc::new(Amqp::new(Duration::from_secs(2)));
    let topologies = topologies(8);
    let limit = Duration::from_secs(30);

    let op = |amqp: Arc<Amqp>, uri: String, delete: bool| {
        move |t: Topology| {
            let (amqp, uri) = (amqp.clone(), uri.clone());
            async move {
                if delete {
                    amqp.delete(&uri, &t).await
                } else {
                    amqp.declare(&uri, &t).await
                }
            }
        }
    };
    all_at_once(
        &topologies,
        limit,
        "declare",
        op(amqp.clone(), uri.clone(), false),
    )
    .await;
    for t in &topologies {
        for q in &t.queues {
            assert!(
                common::queue_exists(&uri, &q.name).await,
                "{} was not declared",
                q.name
            );
        }
    }
    // The cache now holds a working connection: a second round reuses it.
    all_at_once(
        &topologies,
        limit,
        "declare again",
        op(amqp.clone(), uri.clone(), false),
    )
    .await;

    // A fresh cache again, for deleting (a new leader cleaning up).
    let amqp = Arc::new(Amqp::new(Duration::from_secs(2)));
    all_at_once(&topologies, limit, "delete", op(amqp, uri.clone(), true)).await;
    for t in &topologies {
        for q in &t.queues {
            assert!(
                !common::queue_exists(&uri, &q.name).await,
                "{} is still there",
                q.name
            );
        }
    }
}

/// The topology of a Stream on a three-node broker (quorum queues), on the
/// real RabbitMQ (3.10 in `make test`; run it against 4.0 by pointing
/// `EVENTFLOW_TEST_AMQP_URI` at one): declared twice without a
/// PRECONDITION_FAILED, a message in the retry queue expires back into the
/// group queue, and a rejected one reaches the DLQ.
#[tokio::test]
#[ignore = "needs rabbitmq"]
async fn a_quorum_topology_retries_through_its_retry_queue_and_dead_letters_into_its_dlq() {
    use lapin::{
        BasicProperties, Connection, ConnectionProperties,
        options::{BasicGetOptions, BasicNackOptions, BasicPublishOptions},
    };
    let uri = common::amqp_uri();
    let ns = format!("quorum-{}", std::process::id());
    let topology = stream_topology(
        &common::shop_stream("q"),
        &ns,
        eventflow_contract::QueueType::Quorum,
    );
    let amqp = Amqp::new(Duration::from_secs(5));
    amqp.declare(&uri, &topology).await.unwrap();
    amqp.declare(&uri, &topology).await.unwrap();

    let group = format!("{ns}.account.account");
    let conn = Connection::connect(&uri, ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    let get = |queue: String| {
        let ch = ch.clone();
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            loop {
                if let Some(m) = ch
                    .basic_get(queue.as_str().into(), BasicGetOptions::default())
                    .await
                    .unwrap()
                {
                    return m;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "nothing arrived in {queue}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    // Waiting out the backoff (200 ms) in the retry queue, back into the group queue.
    ch.basic_publish(
        "".into(),
        format!("{group}.retry").as_str().into(),
        BasicPublishOptions::default(),
        b"retried",
        BasicProperties::default(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let m = get(group.clone()).await;
    assert_eq!(m.delivery.data, b"retried");
    // The last attempt, rejected: into the DLQ through the DLX.
    m.delivery
        .nack(BasicNackOptions {
            requeue: false,
            ..Default::default()
        })
        .await
        .unwrap();
    let dead = get(format!("{group}.dlq")).await;
    assert_eq!(dead.delivery.data, b"retried");
    dead.delivery.ack(Default::default()).await.unwrap();
    let _ = conn.close(200, "bye".into()).await;
    amqp.delete(&uri, &topology).await.unwrap();
}
