//! DLQ redrive against the real API server and the real RabbitMQ: dead
//! letters made the way a worker makes them (rejected from the group queue,
//! after a round through the retry queue with `x-eventflow-attempt`), then
//! inspected and moved back by `DeadLetterRedrive`s — and a redrive whose
//! operator is killed half-way loses and duplicates nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    collections::BTreeMap,
    process::{Child, Command, Stdio},
    time::Duration,
};

use eventflow_contract::names::{self, ATTEMPT_HEADER};
use eventflow_operator::api::{DeadLetterRedrive, DeadLetterRedriveStatus, RedrivePhase, Stream};
use kube::{Api, Client, api::PostParams};
use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties,
    options::{
        BasicAckOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions, QueuePurgeOptions,
    },
    types::{AMQPValue, ShortString},
};
use serde_json::json;

const STREAM: &str = "shop";
const CREATED: &str = "account.ACCOUNT_CREATED";
const CLOSED: &str = "account.ACCOUNT_CLOSED";

struct Queues {
    exchange: String,
    group: String,
    retry: String,
    dlq: String,
    /// The other group of the same destination.
    audit: String,
}

fn queues(ns: &str) -> Queues {
    Queues {
        exchange: names::exchange(ns, "account"),
        group: names::queue(ns, "account", "account"),
        retry: names::retry_queue(ns, "account", "account"),
        dlq: names::dead_letter_queue(ns, "account", "account"),
        audit: names::queue(ns, "account", &format!("{STREAM}-audit")),
    }
}

/// Creates the shop Stream and waits until its topology is declared.
async fn deployed_shop(client: &Client, ns: &str) -> Queues {
    let streams = Api::<Stream>::namespaced(client.clone(), ns);
    streams
        .create(&PostParams::default(), &common::shop_stream(STREAM))
        .await
        .unwrap();
    let q = queues(ns);
    common::eventually(Duration::from_secs(60), "the Stream's DLQ declared", || {
        let (streams, dlq) = (streams.clone(), q.dlq.clone());
        async move {
            let s = streams.get(STREAM).await.ok()?;
            s.status?
                .destinations
                .iter()
                .any(|d| d.queues.contains(&dlq))
                .then_some(())
        }
    })
    .await;
    q
}

async fn channel() -> (Connection, Channel) {
    let conn = Connection::connect(&common::amqp_uri(), ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    (conn, ch)
}

/// Publishes structured CloudEvents like an eventflow relay: ids `<prefix>-<n>`.
async fn publish(ch: &Channel, exchange: &str, routing_key: &str, prefix: &str, n: usize) {
    let (aggregate, event) = routing_key.split_once('.').unwrap();
    let ce_type = names::cloudevent_type(aggregate, event);
    for i in 0..n {
        let id = format!("{prefix}-{i}");
        let body = json!({"specversion": "1.0", "id": id, "source": "/test", "type": ce_type, "data": {"n": i}});
        let props = BasicProperties::default()
            .with_content_type("application/cloudevents+json".into())
            .with_message_id(id.as_str().into())
            .with_type(ce_type.as_str().into())
            .with_delivery_mode(2);
        ch.basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions::default(),
            body.to_string().as_bytes(),
            props,
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
}

async fn depth(ch: &Channel, queue: &str) -> u32 {
    eventflow_operator::redrive::depth(ch, queue).await.unwrap()
}

async fn purge(ch: &Channel, queue: &str) {
    ch.queue_purge(queue.into(), QueuePurgeOptions::default())
        .await
        .unwrap();
}

/// Waits until `queue` holds `n` messages.
async fn await_depth(ch: &Channel, queue: &str, n: u32) {
    common::eventually(
        Duration::from_secs(30),
        &format!("{n} messages in {queue}"),
        || async { (depth(ch, queue).await == n).then_some(()) },
    )
    .await;
}

/// Rejects the next `n` messages of the group queue as a worker does on its
/// last attempt: `basic.nack` without requeue, so the broker dead-letters them.
async fn reject(ch: &Channel, queue: &str, n: usize) {
    for _ in 0..n {
        let got = ch
            .basic_get(queue.into(), BasicGetOptions { no_ack: false })
            .await
            .unwrap()
            .expect("a message to reject");
        ch.basic_nack(got.delivery.delivery_tag, BasicNackOptions::default())
            .await
            .unwrap();
    }
}

/// Fails the next `n` messages once the way a worker does (republished to
/// the retry queue with `x-eventflow-attempt` = 1, acked), waits until the
/// retry queue's TTL has put them back, then rejects them for good.
async fn retry_then_reject(ch: &Channel, q: &Queues, n: usize) {
    let before = depth(ch, &q.group).await;
    for _ in 0..n {
        let got = ch
            .basic_get(q.group.as_str().into(), BasicGetOptions { no_ack: false })
            .await
            .unwrap()
            .expect("a message to fail");
        let d = got.delivery;
        let mut headers = d.properties.headers().clone().unwrap_or_default();
        headers.insert(ShortString::from(ATTEMPT_HEADER), AMQPValue::LongUInt(1));
        ch.basic_publish(
            "".into(),
            q.retry.as_str().into(),
            BasicPublishOptions::default(),
            &d.data,
            d.properties.clone().with_headers(headers),
        )
        .await
        .unwrap()
        .await
        .unwrap();
        ch.basic_ack(d.delivery_tag, BasicAckOptions::default())
            .await
            .unwrap();
    }
    await_depth(ch, &q.group, before).await;
    // They are back at the tail of the group queue.
    let others = before as usize - n;
    for _ in 0..others {
        let got = ch
            .basic_get(q.group.as_str().into(), BasicGetOptions { no_ack: false })
            .await
            .unwrap()
            .unwrap();
        ch.basic_nack(
            got.delivery.delivery_tag,
            BasicNackOptions {
                requeue: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    }
    reject(ch, &q.group, n).await;
}

/// A message as a consumer of a queue receives it.
#[derive(Debug)]
struct Received {
    id: String,
    routing_key: String,
    exchange: String,
    props: BasicProperties,
}

/// Takes every message out of `queue`.
async fn drain(ch: &Channel, queue: &str) -> Vec<Received> {
    let mut out = Vec::new();
    while let Some(got) = ch
        .basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
    {
        let d = got.delivery;
        out.push(Received {
            id: d
                .properties
                .message_id()
                .as_ref()
                .map(|m| m.to_string())
                .unwrap_or_default(),
            routing_key: d.routing_key.to_string(),
            exchange: d.exchange.to_string(),
            props: d.properties,
        });
    }
    out
}

fn header<'a>(props: &'a BasicProperties, key: &str) -> Option<&'a AMQPValue> {
    props.headers().as_ref()?.inner().get(key)
}

fn redrive(name: &str, spec: serde_json::Value) -> DeadLetterRedrive {
    let mut spec = spec;
    spec["stream"] = json!(STREAM);
    spec["destination"] = json!("account");
    spec.as_object_mut()
        .unwrap()
        .entry("group")
        .or_insert(json!("account"));
    serde_json::from_value(json!({
        "apiVersion": "eventflow.dev/v1alpha1", "kind": "DeadLetterRedrive",
        "metadata": {"name": name}, "spec": spec
    }))
    .unwrap()
}

/// Creates a redrive and waits until it succeeded or failed.
async fn run_redrive(
    client: &Client,
    ns: &str,
    name: &str,
    spec: serde_json::Value,
) -> DeadLetterRedriveStatus {
    let api = Api::<DeadLetterRedrive>::namespaced(client.clone(), ns);
    api.create(&PostParams::default(), &redrive(name, spec))
        .await
        .unwrap();
    finished(&api, name, Duration::from_secs(60)).await
}

async fn finished(
    api: &Api<DeadLetterRedrive>,
    name: &str,
    within: Duration,
) -> DeadLetterRedriveStatus {
    common::eventually(within, &format!("redrive {name} finished"), || async {
        let r = api.get(name).await.ok()?;
        r.status.filter(|s| s.phase.finished())
    })
    .await
}

#[tokio::test]
#[ignore = "needs kube-apiserver and rabbitmq"]
async fn dead_letters_are_listed_then_go_back_to_their_group_alone_with_their_key_and_no_attempts()
{
    let (client, ns, operator) = common::operator_on_external_broker("redrive").await;
    let q = deployed_shop(&client, &ns).await;
    let (_conn, ch) = channel().await;
    publish(&ch, &q.exchange, CREATED, "created", 3).await;
    publish(&ch, &q.exchange, CLOSED, "closed", 2).await;
    await_depth(&ch, &q.group, 5).await;
    await_depth(&ch, &q.audit, 5).await;
    purge(&ch, &q.audit).await;
    // Two fail on their first attempt (maxAttempts 1), three after a retry.
    reject(&ch, &q.group, 2).await;
    retry_then_reject(&ch, &q, 3).await;
    await_depth(&ch, &q.dlq, 5).await;

    // Inspect: lists them, moves nothing.
    let seen = run_redrive(&client, &ns, "look", json!({"mode": "Inspect"})).await;
    assert_eq!(seen.phase, RedrivePhase::Succeeded, "{seen:?}");
    assert_eq!(seen.messages.len(), 5, "{seen:?}");
    assert_eq!(seen.moved, 0);
    let keys: Vec<&str> = seen
        .messages
        .iter()
        .map(|m| m.routing_key.as_str())
        .collect();
    assert_eq!(keys, [CREATED, CREATED, CREATED, CLOSED, CLOSED]);
    for m in &seen.messages {
        assert_eq!(m.reason.as_deref(), Some("rejected"), "{m:?}");
        assert_eq!(m.dead_lettered_from.as_deref(), Some(q.group.as_str()));
        assert!(m.dead_lettered_at.is_some());
        assert!(
            m.preview.contains(m.message_id.as_deref().unwrap()),
            "{m:?}"
        );
    }
    let retried = seen
        .messages
        .iter()
        .filter(|m| m.attempts == Some(2))
        .count();
    assert_eq!(retried, 3, "the retried ones show their attempts: {seen:?}");
    assert_eq!(depth(&ch, &q.dlq).await, 5, "inspect moved nothing");
    assert_eq!(depth(&ch, &q.group).await, 0);

    // Move them all.
    let done = run_redrive(&client, &ns, "all", json!({})).await;
    assert_eq!(done.phase, RedrivePhase::Succeeded, "{done:?}");
    assert_eq!(
        (done.moved, done.skipped, done.remaining),
        (5, 0, Some(0)),
        "{done:?}"
    );
    assert_eq!(depth(&ch, &q.dlq).await, 0);
    assert_eq!(depth(&ch, &q.audit).await, 0, "the other group got nothing");
    let back = drain(&ch, &q.group).await;
    let mut ids: Vec<&str> = back.iter().map(|r| r.id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        [
            "closed-0",
            "closed-1",
            "created-0",
            "created-1",
            "created-2"
        ]
    );
    for r in &back {
        let expected = if r.id.starts_with("created") {
            CREATED
        } else {
            CLOSED
        };
        assert_eq!(r.routing_key, expected, "delivered with its key: {r:?}");
        assert_eq!(r.exchange, "", "{r:?}");
        assert!(
            header(&r.props, ATTEMPT_HEADER).is_none(),
            "attempts reset: {r:?}"
        );
        assert!(header(&r.props, "x-death").is_none(), "{r:?}");
        assert!(header(&r.props, "BCC").is_none(), "{r:?}");
        assert_eq!(
            r.props.kind().as_ref().map(|t| t.to_string()),
            Some(names::cloudevent_type(
                "account",
                expected.split_once('.').unwrap().1
            ))
        );
        assert_eq!(
            header(&r.props, "x-eventflow-redrives"),
            Some(&AMQPValue::LongLongInt(1))
        );
    }

    let api = Api::<DeadLetterRedrive>::namespaced(client.clone(), &ns);
    let owned = api.get("all").await.unwrap();
    let owner = &owned.metadata.owner_references.unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Stream", STREAM)
    );

    common::teardown(&client, &ns).await;
    operator.stop().await;
}

#[tokio::test]
#[ignore = "needs kube-apiserver and rabbitmq"]
async fn routing_keys_and_max_messages_bound_what_goes_back() {
    let (client, ns, operator) = common::operator_on_external_broker("redrive-sel").await;
    let q = deployed_shop(&client, &ns).await;
    let (_conn, ch) = channel().await;
    publish(&ch, &q.exchange, CREATED, "created", 6).await;
    publish(&ch, &q.exchange, CLOSED, "closed", 4).await;
    await_depth(&ch, &q.group, 10).await;
    reject(&ch, &q.group, 10).await;
    await_depth(&ch, &q.dlq, 10).await;

    let closed = run_redrive(
        &client,
        &ns,
        "closed",
        json!({"routingKeys": ["*.ACCOUNT_CLOSED"]}),
    )
    .await;
    assert_eq!(
        (closed.phase, closed.moved, closed.skipped, closed.remaining),
        (RedrivePhase::Succeeded, 4, 6, Some(6)),
        "{closed:?}"
    );
    let back = drain(&ch, &q.group).await;
    assert!(back.iter().all(|r| r.routing_key == CLOSED), "{back:?}");
    assert_eq!(back.len(), 4);

    let two = run_redrive(&client, &ns, "two", json!({"maxMessages": 2})).await;
    assert_eq!((two.moved, two.remaining), (2, Some(4)), "{two:?}");
    let back = drain(&ch, &q.group).await;
    let ids: Vec<&str> = back.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["created-0", "created-1"], "the oldest first");
    // The rest stay in the DLQ, in their order.
    let left = drain(&ch, &q.dlq).await;
    let ids: Vec<&str> = left.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["created-2", "created-3", "created-4", "created-5"]);

    common::teardown(&client, &ns).await;
    operator.stop().await;
}

#[tokio::test]
#[ignore = "needs kube-apiserver and rabbitmq"]
async fn a_redrive_that_cannot_be_done_fails_and_says_why() {
    let (client, ns, operator) = common::operator_on_external_broker("redrive-bad").await;
    deployed_shop(&client, &ns).await;
    let api = Api::<DeadLetterRedrive>::namespaced(client.clone(), &ns);

    let group = run_redrive(&client, &ns, "nogroup", json!({"group": "nobody"})).await;
    assert_eq!(group.phase, RedrivePhase::Failed);
    let message = group.message.unwrap();
    assert!(
        message.contains("no consumer group nobody") && message.contains(".account.account"),
        "{message}"
    );

    let mut bad = redrive("nostream", json!({}));
    bad.spec.stream = "gone".into();
    api.create(&PostParams::default(), &bad).await.unwrap();
    let s = finished(&api, "nostream", Duration::from_secs(30)).await;
    assert_eq!(s.phase, RedrivePhase::Failed);
    assert!(s.message.unwrap().contains("Stream gone does not exist"));

    // Admission rejects what cannot mean anything.
    for (name, spec, says) in [
        ("zero", json!({"maxMessages": 0}), "maxMessages"),
        (
            "big",
            json!({"mode": "Inspect", "maxMessages": 101}),
            "at most 100",
        ),
        ("key", json!({"routingKeys": ["a..b"]}), "routingKeys"),
    ] {
        let err = api
            .create(&PostParams::default(), &redrive(name, spec))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(says), "{name}: {err}");
    }
    let mut changed = api.get("nogroup").await.unwrap();
    changed.spec.group = "account".into();
    let err = api
        .replace("nogroup", &PostParams::default(), &changed)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("spec is immutable"), "{err}");

    common::teardown(&client, &ns).await;
    operator.stop().await;
}

/// The operator binary as a child process, killed (SIGKILL) when dropped.
struct OperatorProcess(Child);

impl OperatorProcess {
    fn start(ns: &str, id: &str, batch: usize) -> Self {
        let log =
            std::fs::File::create(std::env::temp_dir().join(format!("{ns}-{id}.log"))).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_eventflow-operator"))
            .env("EVENTFLOW_OPERATOR_NAMESPACE", ns)
            .env("EVENTFLOW_OPERATOR_LEASE_NAMESPACE", ns)
            .env("EVENTFLOW_OPERATOR_ID", id)
            .env("EVENTFLOW_OPERATOR_LEASE_SECS", "3")
            .env("EVENTFLOW_OPERATOR_ADMIN_ADDR", "127.0.0.1:0")
            .env("EVENTFLOW_OPERATOR_REDRIVE_BATCH", batch.to_string())
            .env("RUST_LOG", "warn,eventflow_operator=info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Self(child)
    }

    /// Kills the process at once: no drain, no close, no Lease release.
    fn kill(mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
#[ignore = "needs kube-apiserver and rabbitmq"]
async fn a_redrive_whose_operator_is_killed_half_way_loses_and_duplicates_nothing() {
    const TOTAL: usize = 4000;
    const MAX: i64 = 3000;
    let client = common::client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, "redrive-kill").await;
    common::external_broker(&client, &ns, &common::amqp_uri()).await;
    let first = OperatorProcess::start(&ns, "first", 10);
    let q = deployed_shop(&client, &ns).await;
    let (_conn, ch) = channel().await;
    publish(&ch, &q.exchange, CREATED, "m", TOTAL).await;
    await_depth(&ch, &q.group, TOTAL as u32).await;
    purge(&ch, &q.audit).await;
    reject(&ch, &q.group, TOTAL).await;
    await_depth(&ch, &q.dlq, TOTAL as u32).await;

    let api = Api::<DeadLetterRedrive>::namespaced(client.clone(), &ns);
    api.create(
        &PostParams::default(),
        &redrive("big", json!({"maxMessages": MAX})),
    )
    .await
    .unwrap();
    // Half-way: some batches committed, most not.
    let at_kill = common::eventually(Duration::from_secs(60), "the redrive under way", || async {
        let s = api.get("big").await.ok()?.status?;
        (s.moved >= 500).then_some(s)
    })
    .await;
    first.kill();
    assert_eq!(at_kill.phase, RedrivePhase::Running);
    let in_group = depth(&ch, &q.group).await;
    assert!(
        (in_group as i64) < MAX,
        "killed half-way: {in_group} moved so far"
    );

    // A new operator takes the Lease over and finishes the redrive.
    let second = OperatorProcess::start(&ns, "second", 10);
    let done = finished(&api, "big", Duration::from_secs(120)).await;
    assert_eq!(done.phase, RedrivePhase::Succeeded, "{done:?}");
    assert_eq!(
        done.moved + done.in_doubt,
        MAX,
        "the budget is spent exactly, in-doubt included: {done:?}"
    );

    let back = drain(&ch, &q.group).await;
    let left = drain(&ch, &q.dlq).await;
    let moved = back.len() as i64;
    eprintln!(
        "killed at moved={} (committing {}); finished: moved={} inDoubt={} remaining={:?}; {moved} in the group queue",
        at_kill.moved, at_kill.committing, done.moved, done.in_doubt, done.remaining
    );
    assert!(
        done.moved <= moved && moved <= MAX,
        "{moved} in the group queue; status {done:?}"
    );
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for r in back.iter().chain(&left) {
        *seen.entry(r.id.as_str()).or_default() += 1;
    }
    let duplicated: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(duplicated.is_empty(), "duplicated: {duplicated:?}");
    assert_eq!(seen.len(), TOTAL, "lost: {}", TOTAL - seen.len());
    assert_eq!(depth(&ch, &q.audit).await, 0, "the other group got nothing");

    common::teardown(&client, &ns).await;
    drop(second);
}

/// The runtime's own consumer on the `account` group (maxAttempts 2, 200 ms
/// backoff); `handler` decides each delivery.
fn worker(
    ns: &str,
    handler: eventflow_runtime::consumer::Handler,
) -> eventflow_runtime::consumer::Consumer {
    let request = eventflow_contract::bindings::SubscriptionRequest {
        destination: "account",
        group: "account",
        routing_keys: vec!["account.*".into()],
        max_attempts: 2,
        backoff_ms: 200,
    };
    eventflow_runtime::consumer::Consumer {
        subscription: eventflow_contract::Subscription::new(
            ns,
            &request,
            eventflow_contract::QueueType::Classic,
        ),
        handler,
        prefetch: 10,
        concurrency: 4,
        metrics: eventflow_runtime::metrics::Metrics::default(),
        transient: eventflow_runtime::consumer::TransientRetry::within(Duration::ZERO),
    }
}

#[tokio::test]
#[ignore = "needs kube-apiserver and rabbitmq"]
async fn a_worker_gets_redriven_events_again_with_its_full_attempts() {
    use std::sync::{Arc, Mutex};

    use eventflow_runtime::consumer::{Handled, HandlerError};
    use tokio_util::sync::CancellationToken;

    let (client, ns, operator) = common::operator_on_external_broker("redrive-worker").await;
    let q = deployed_shop(&client, &ns).await;
    let (conn, ch) = channel().await;
    let link = eventflow_runtime::broker::BrokerLink::of(Arc::new(conn));

    // A worker whose handler fails every time: each event is retried once
    // through the retry queue, then dead-lettered — the real way.
    let failing = worker(
        &ns,
        Arc::new(|_| Box::pin(async { Err(HandlerError::Failed("boom".into())) })),
    );
    let cancel = CancellationToken::new();
    let run = tokio::spawn(failing.run(link.clone(), cancel.clone()));
    publish(&ch, &q.exchange, CREATED, "w", 3).await;
    await_depth(&ch, &q.dlq, 3).await;
    cancel.cancel();
    run.await.unwrap().unwrap();
    purge(&ch, &q.audit).await;

    let done = run_redrive(&client, &ns, "again", json!({})).await;
    assert_eq!((done.moved, done.remaining), (3, Some(0)), "{done:?}");

    // The fixed worker fails each event once more and then succeeds: with
    // the attempts not reset it would dead-letter them on that failure.
    let tries: Arc<Mutex<BTreeMap<String, u32>>> = Arc::default();
    let handler_tries = tries.clone();
    let fixed = worker(
        &ns,
        Arc::new(move |ce| {
            let tries = handler_tries.clone();
            Box::pin(async move {
                assert_eq!(ce.event_type, "dev.eventflow.account.ACCOUNT_CREATED");
                let mut t = tries.lock().unwrap();
                let n = t.entry(ce.id.clone()).or_default();
                *n += 1;
                if *n == 1 {
                    Err(HandlerError::Failed("once more".into()))
                } else {
                    Ok(Handled::Done)
                }
            })
        }),
    );
    let cancel = CancellationToken::new();
    let run = tokio::spawn(fixed.run(link.clone(), cancel.clone()));
    common::eventually(Duration::from_secs(30), "every event handled", || async {
        let t = tries.lock().unwrap();
        (t.len() == 3 && t.values().all(|n| *n == 2)).then_some(())
    })
    .await;
    await_depth(&ch, &q.group, 0).await;
    cancel.cancel();
    run.await.unwrap().unwrap();
    assert_eq!(depth(&ch, &q.dlq).await, 0, "nothing dead-lettered again");
    assert_eq!(depth(&ch, &q.audit).await, 0, "the other group got nothing");

    common::teardown(&client, &ns).await;
    operator.stop().await;
}
