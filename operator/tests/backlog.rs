//! Backlog and dead letters in status (tier 2: real kube-apiserver, real
//! RabbitMQ with the management plugin). Messages are put on a Stream's
//! group queues and dead-letter queue by hand (no pods run in this tier, so
//! nothing consumes them), one queue is held by a consumer that never
//! acks; the Stream's status.groups, backlog and deadLetters, the
//! operator's gauges and the DeadLetters Event must show the broker's own
//! figures — with the management API and over AMQP only.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Operator, eventually, require_env};
use eventflow_operator::api::{GroupStatus, Stream, StreamStatus};
use eventflow_runtime::testing::ReservedPort;
use k8s_openapi::api::{core::v1::Secret, events::v1::Event};
use kube::{
    Api, Client,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use lapin::{
    Connection,
    options::{BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions},
    types::FieldTable,
};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

fn management_uri() -> String {
    require_env(
        "EVENTFLOW_TEST_MANAGEMENT_URI",
        "the private RabbitMQ's management API (services.sh up enables it)",
    )
}

/// Two groups on destination `orders`: `billing` (app billing) and `audit`
/// (app audit); no pods run, so no app consumes them.
fn stream() -> Stream {
    serde_json::from_value(json!({
        "apiVersion": "eventflow.dev/v1alpha1", "kind": "Stream",
        "metadata": {"name": "shop"},
        "spec": {"broker": "rabbit", "apps": [
            {"name": "billing", "image": "eventflow/billing:0.1.0", "worker": {},
             "subscribes": [{"destination": "orders"}]},
            {"name": "audit", "image": "eventflow/audit:0.1.0", "worker": {},
             "subscribes": [{"destination": "orders", "group": "audit"}]}
        ]}
    }))
    .unwrap()
}

struct Setup {
    client: Client,
    ns: String,
    operator: Operator,
    metrics: String,
    _admin: ReservedPort,
}

async fn setup(prefix: &str, with_management: bool) -> Setup {
    let client = common::client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, prefix).await;
    common::external_broker(&client, &ns, &common::amqp_uri()).await;
    if with_management {
        common::with_management_api(&client, &ns).await;
    }
    let admin = ReservedPort::new();
    let settings = eventflow_operator::context::Settings {
        // Figures are read on every reconcile: a short resync keeps the test short.
        resync: Duration::from_secs(2),
        ..common::test_settings()
    };
    let operator = Operator::start_on(&client, &ns, settings, admin.addr()).await;
    Api::<Stream>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &stream())
        .await
        .unwrap();
    Setup {
        metrics: format!("http://{}/metrics", admin.addr()),
        client,
        ns,
        operator,
        _admin: admin,
    }
}

/// A consumer of `queue` that takes `hold` messages and never acks them.
async fn hold_unacked(queue: &str, hold: u16) -> (Connection, lapin::Consumer) {
    let (conn, ch) = common::amqp_channel().await;
    ch.basic_qos(hold, BasicQosOptions::default())
        .await
        .unwrap();
    let consumer = ch
        .basic_consume(
            queue.into(),
            "backlog-test-holder".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    (conn, consumer)
}

/// The broker's own figures of `queue` over AMQP: (ready, consumers).
async fn amqp_figures(queue: &str) -> (i64, i64) {
    let (conn, ch) = common::amqp_channel().await;
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let q = ch
        .queue_declare(queue.into(), passive, FieldTable::default())
        .await
        .unwrap();
    let _ = conn.close(200, "bye".into()).await;
    (i64::from(q.message_count()), i64::from(q.consumer_count()))
}

/// The broker's own figures of `queue` from the management API: (ready, unacked, consumers).
async fn management_figures(queue: &str) -> Option<(i64, i64, i64)> {
    let base = reqwest::Url::parse(&management_uri()).unwrap();
    let url = format!(
        "http://{}:{}/api/queues/%2F/{queue}",
        base.host_str().unwrap(),
        base.port().unwrap()
    );
    let doc: serde_json::Value = reqwest::Client::new()
        .get(url)
        .basic_auth(base.username(), base.password())
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    Some((
        doc["messages_ready"].as_i64()?,
        doc["messages_unacknowledged"].as_i64()?,
        doc["consumers"].as_i64()?,
    ))
}

async fn status(client: &Client, ns: &str) -> StreamStatus {
    Api::<Stream>::namespaced(client.clone(), ns)
        .get("shop")
        .await
        .unwrap()
        .status
        .unwrap_or_default()
}

fn group<'a>(s: &'a StreamStatus, name: &str) -> &'a GroupStatus {
    s.groups
        .iter()
        .find(|g| g.group == name)
        .unwrap_or_else(|| panic!("no group {name} in {:?}", s.groups))
}

async fn queues_declared(ns: &str) {
    let uri = common::amqp_uri();
    for q in ["billing", "billing.dlq", "audit", "audit.dlq"] {
        let name = format!("{ns}.orders.{q}");
        eventually(WAIT, &format!("queue {name} declared"), || async {
            common::queue_exists(&uri, &name).await.then_some(())
        })
        .await;
    }
}

async fn dead_letter_event(client: &Client, ns: &str) -> Event {
    eventually(WAIT, "a DeadLetters Warning Event", || async {
        Api::<Event>::namespaced(client.clone(), ns)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("DeadLetters"))
    })
    .await
}

async fn metrics(url: &str) -> String {
    reqwest::get(url).await.unwrap().text().await.unwrap()
}

/// Stream reconciles the operator started so far.
async fn reconciles(url: &str) -> u64 {
    metrics(url)
        .await
        .lines()
        .find_map(|l| l.strip_prefix(r#"eventflow_operator_reconciles_total{kind="Stream"} "#))
        .map_or(0, |n| n.trim().parse().unwrap())
}

fn gauge(ns: &str, group: &str, metric: &str, value: i64) -> String {
    format!(
        r#"eventflow_operator_{metric}{{namespace="{ns}",stream="shop",destination="orders",group="{group}"}} {value}"#
    )
}

#[tokio::test]
#[ignore = "needs kube-apiserver and rabbitmq with the management plugin"]
async fn with_the_management_api_each_group_shows_the_brokers_ready_unacked_consumers_and_dead_letters()
 {
    let s = setup("backlog-mgmt", true).await;
    let (client, ns) = (&s.client, s.ns.as_str());
    queues_declared(ns).await;
    // Nothing queued yet: every figure known (once the API has statistics
    // of the new queues) and zero, no dead letters.
    let empty = eventually(WAIT, "zero figures for both groups", || async {
        let st = status(client, ns).await;
        // The API's first statistics of a new queue may lack some figures:
        // wait until every one is there, consumers included.
        let known = st.groups.len() == 2
            && st
                .groups
                .iter()
                .all(|g| g.unacknowledged.is_some() && g.consumers.is_some());
        (known && st.backlog == Some(0) && st.dead_letters == Some(0)).then_some(st)
    })
    .await;
    assert!(empty.groups.iter().all(|g| g.consumers == Some(0)));
    assert!(empty.groups_observed_at.is_some());

    let (conn, ch) = common::amqp_channel().await;
    common::put_messages(&ch, &format!("{ns}.orders.billing"), 7).await;
    common::put_messages(&ch, &format!("{ns}.orders.billing.dlq"), 3).await;
    common::put_messages(&ch, &format!("{ns}.orders.audit"), 5).await;
    let (holder, _consumer) = hold_unacked(&format!("{ns}.orders.audit"), 2).await;

    // The broker's own numbers, once its statistics have caught up.
    let audit = format!("{ns}.orders.audit");
    let broker = eventually(
        WAIT,
        "the management API to count 3 ready, 2 unacked on audit",
        || async { management_figures(&audit).await.filter(|f| *f == (3, 2, 1)) },
    )
    .await;
    assert_eq!(amqp_figures(&audit).await, (broker.0, broker.2));
    assert_eq!(amqp_figures(&format!("{ns}.orders.billing")).await, (7, 0));
    assert_eq!(amqp_figures(&format!("{ns}.orders.billing.dlq")).await.0, 3);

    let st = eventually(
        WAIT,
        "status.groups to show the broker's figures",
        || async {
            let st = status(client, ns).await;
            (st.backlog == Some(12)
                && st.dead_letters == Some(3)
                && group(&st, "audit").unacknowledged == Some(2))
            .then_some(st)
        },
    )
    .await;
    let billing = group(&st, "billing");
    assert_eq!(billing.app, "billing");
    assert_eq!(billing.queue, format!("{ns}.orders.billing"));
    assert_eq!(
        billing.dead_letter_queue,
        format!("{ns}.orders.billing.dlq")
    );
    assert_eq!(
        (
            billing.ready,
            billing.unacknowledged,
            billing.consumers,
            billing.dead_letters
        ),
        (Some(7), Some(0), Some(0), Some(3))
    );
    let audit_group = group(&st, "audit");
    assert_eq!(
        (
            audit_group.ready,
            audit_group.unacknowledged,
            audit_group.consumers,
            audit_group.dead_letters
        ),
        (Some(3), Some(2), Some(1), Some(0))
    );
    assert!(
        billing.publish_rate.is_some() && billing.deliver_rate.is_some(),
        "{billing:?}"
    );

    let event = dead_letter_event(client, ns).await;
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    let note = event.note.unwrap_or_default();
    assert!(
        note.contains("group billing") && note.contains("3 message"),
        "{note}"
    );
    assert!(note.contains("kubectl eventflow dlq list"), "{note}");

    let text = eventually(WAIT, "the group gauges", || async {
        let text = metrics(&s.metrics).await;
        text.contains(&gauge(ns, "audit", "group_messages_unacknowledged", 2))
            .then_some(text)
    })
    .await;
    for line in [
        gauge(ns, "billing", "group_messages_ready", 7),
        gauge(ns, "billing", "group_messages_unacknowledged", 0),
        gauge(ns, "billing", "group_consumers", 0),
        gauge(ns, "billing", "group_dead_letters", 3),
        gauge(ns, "audit", "group_messages_ready", 3),
        gauge(ns, "audit", "group_consumers", 1),
        gauge(ns, "audit", "group_dead_letters", 0),
    ] {
        assert!(text.contains(&line), "no `{line}` in\n{text}");
    }

    // The figures follow the broker: the holder goes, its 2 messages are ready again.
    let _ = holder.close(200, "bye".into()).await;
    eventually(
        WAIT,
        "audit back to 5 ready, 0 unacked, no consumer",
        || async {
            let st = status(client, ns).await;
            let a = group(&st, "audit");
            (a.ready == Some(5) && a.unacknowledged == Some(0) && a.consumers == Some(0))
                .then_some(())
        },
    )
    .await;
    let _ = conn.close(200, "bye".into()).await;

    // A deleted Stream's series go with it.
    common::teardown(client, ns).await;
    let text = metrics(&s.metrics).await;
    assert!(!text.contains(&format!("namespace=\"{ns}\"")), "{text}");
    s.operator.stop().await;
}

#[tokio::test]
#[ignore = "needs kube-apiserver and rabbitmq"]
async fn over_amqp_only_ready_consumers_and_dead_letters_show_and_the_rest_stays_unknown() {
    let s = setup("backlog-amqp", false).await;
    let (client, ns) = (&s.client, s.ns.as_str());
    queues_declared(ns).await;
    let (conn, ch) = common::amqp_channel().await;
    common::put_messages(&ch, &format!("{ns}.orders.billing"), 4).await;
    common::put_messages(&ch, &format!("{ns}.orders.audit"), 6).await;
    common::put_messages(&ch, &format!("{ns}.orders.audit.dlq"), 2).await;
    let audit = format!("{ns}.orders.audit");
    let (holder, _consumer) = hold_unacked(&audit, 1).await;
    // The broker's own ready count leaves out the held message.
    let broker = eventually(WAIT, "the broker to count 5 ready on audit", || async {
        let f = amqp_figures(&audit).await;
        (f == (5, 1)).then_some(f)
    })
    .await;

    let st = eventually(WAIT, "status.groups from AMQP", || async {
        let st = status(client, ns).await;
        (group(&st, "audit").ready == Some(broker.0) && st.dead_letters == Some(2)).then_some(st)
    })
    .await;
    let a = group(&st, "audit");
    assert_eq!(
        (a.ready, a.consumers, a.dead_letters),
        (Some(5), Some(1), Some(2))
    );
    let b = group(&st, "billing");
    assert_eq!(
        (b.ready, b.consumers, b.dead_letters),
        (Some(4), Some(0), Some(0))
    );
    for g in [a, b] {
        // Not given over AMQP: unknown, never 0.
        assert_eq!(
            (g.unacknowledged, g.publish_rate, g.deliver_rate),
            (None, None, None),
            "{g:?}"
        );
    }
    // Ready messages only: the held one is not counted.
    assert_eq!(st.backlog, Some(9));
    let event = dead_letter_event(client, ns).await;
    assert!(event.note.unwrap_or_default().contains("group audit"));

    let text = metrics(&s.metrics).await;
    assert!(
        text.contains(&gauge(ns, "audit", "group_messages_ready", 5)),
        "{text}"
    );
    assert!(
        text.contains(&gauge(ns, "audit", "group_dead_letters", 2)),
        "{text}"
    );
    assert!(
        !text.contains(&format!(
            r#"group_messages_unacknowledged{{namespace="{ns}""#
        )),
        "unknown unacked has no series: {text}"
    );

    // The broker cannot be read any more: the last known figures stay, with
    // the time they were read, and a Warning Event says so.
    let secrets = Api::<Secret>::namespaced(client.clone(), ns);
    let set_uri = |uri: String| {
        let secrets = secrets.clone();
        async move {
            let patch = json!({"stringData": {"uri": uri}});
            secrets
                .patch("rabbit-uri", &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .unwrap();
        }
    };
    set_uri("amqp://eventflow:eventflow@127.0.0.1:1/%2f".into()).await;
    eventually(WAIT, "a BrokerFiguresUnknown Warning Event", || async {
        Api::<Event>::namespaced(client.clone(), ns)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("BrokerFiguresUnknown"))
    })
    .await;
    let stale = status(client, ns).await;
    assert_eq!(stale.groups, st.groups);
    assert_eq!((stale.backlog, stale.dead_letters), (Some(9), Some(2)));
    let observed_at = stale.groups_observed_at.clone();
    assert!(observed_at.is_some());
    // Two more reconciles (the resync is 2 s), and still nothing is read.
    let before = reconciles(&s.metrics).await;
    eventually(WAIT, "two more reconciles", || async {
        (reconciles(&s.metrics).await >= before + 2).then_some(())
    })
    .await;
    let later = status(client, ns).await;
    assert_eq!(
        later.groups_observed_at, observed_at,
        "figures kept with the time they were read"
    );
    assert_eq!(later.groups, stale.groups);

    set_uri(common::amqp_uri()).await;
    let _ = holder.close(200, "bye".into()).await;
    let _ = conn.close(200, "bye".into()).await;
    eventually(
        WAIT,
        "figures read again after the broker is back",
        || async {
            let st = status(client, ns).await;
            (st.groups_observed_at != observed_at && group(&st, "audit").ready == Some(6))
                .then_some(())
        },
    )
    .await;
    common::teardown(client, ns).await;
    s.operator.stop().await;
}
