//! The broker tests, each on a managed EventBroker of its own namespace:
//! RabbitMQ 3.10 (the image the examples run) and 4.0 (the series the
//! operator's default image is from, built from Debian trixie's package)
//! with one node and classic queues, and a three-node 4.0 cluster with
//! quorum queues that loses a node — deleted, then killed — in the middle
//! of a run; and a 3.10 broker serving AMQPS only.
//!
//! Each deploys the Stream `bank`: the account app (web and worker in one
//! pod on SQLite; its worker drives every new account to ACTIVE through
//! the broker) and `audit`, a subscription of every account event whose
//! worker has no replicas, so its queue keeps each event for the test to
//! count.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Result, anyhow, bail};
use eventflow_e2e::*;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams},
};
use lapin::{
    BasicProperties, Connection,
    options::{BasicGetOptions, BasicPublishOptions, QueueDeclareOptions},
    types::FieldTable,
};
use serde_json::{Value, json};

const STREAM: &str = "bank";
/// Attempts of the account worker before a message is dead-lettered.
const MAX_ATTEMPTS: u64 = 3;
const BACKOFF_MS: u64 = 200;
/// The events of an account that the worker drives to ACTIVE, in order.
const LIFECYCLE: [&str; 4] = [
    "ACCOUNT_CREATED",
    "ACCOUNT_PENDING",
    "ACCOUNT_CONFIRMED",
    "ACCOUNT_ACTIVATED",
];

/// Installs the operator once per test binary (the tests run in parallel).
fn operator() {
    static DONE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    if let Err(e) = DONE.get_or_init(|| install_operator().map_err(|e| format!("{e:#}"))) {
        panic!("installing the operator: {e}");
    }
}

fn stream_manifest(namespace: &str) -> Value {
    let resources =
        json!({"requests": {"cpu": "20m", "memory": "32Mi"}, "limits": {"memory": "256Mi"}});
    json!({
        "apiVersion": "eventflow.dev/v1alpha1",
        "kind": "Stream",
        "metadata": {"name": STREAM, "namespace": namespace},
        "spec": {
            "broker": BROKER,
            "apps": [
                {
                    "name": "account",
                    "image": image("account"),
                    "packaging": "Combined",
                    "web": {"replicas": 1},
                    "worker": {},
                    "publishes": ["account"],
                    "subscribes": [{
                        "destination": "account",
                        "eventTypes": ["account.*"],
                        "maxAttempts": MAX_ATTEMPTS,
                        "backoffMs": BACKOFF_MS,
                    }],
                    "resources": resources,
                },
                {
                    "name": "audit",
                    "image": image("counter"),
                    "worker": {"replicas": 0},
                    "subscribes": [{"destination": "account", "group": "audit", "eventTypes": ["#"]}],
                    "resources": resources,
                },
            ],
        },
    })
}

/// The broker's names for this Stream's objects in `namespace`.
struct Names {
    exchange: String,
    queue: String,
    retry: String,
    dlx: String,
    dlq: String,
    audit: String,
}

impl Names {
    fn of(namespace: &str) -> Self {
        let queue = format!("{namespace}.account.account");
        Self {
            exchange: format!("{namespace}.account"),
            retry: format!("{queue}.retry"),
            dlx: format!("{queue}.dlx"),
            dlq: format!("{queue}.dlq"),
            audit: format!("{namespace}.account.audit"),
            queue,
        }
    }
}

/// Everything one test runs: its namespace, broker and Stream, Ready.
struct Setup {
    client: Client,
    ns: TestNamespace,
    broker: ManagedBroker,
    names: Names,
}

/// Applies `broker` and `stream` together, as a user does (on three nodes
/// the operator declares the quorum queues only once every node is ready),
/// and waits until both are Ready.
async fn deploy(client: &Client, namespace: &str, broker: &Value, stream: &Value) {
    apply_json(broker).unwrap();
    apply_json(stream).unwrap();
    if let Err(e) = wait_broker_ready(client, namespace, Duration::from_secs(300)).await {
        let pods = kubectl(&["-n", namespace, "get", "pods,eventbrokers", "-o", "wide"]);
        panic!("{e:#}\n{pods}");
    }
    kubectl(&[
        "-n",
        namespace,
        "wait",
        "--for=condition=Ready",
        &format!("stream/{STREAM}"),
        "--timeout=300s",
    ]);
}

async fn set_up(prefix: &str, image: &str, replicas: i32) -> Setup {
    let client = client().await;
    operator();
    let ns = TestNamespace::create(&client, prefix).await.unwrap();
    deploy(
        &client,
        &ns.name,
        &broker_manifest(&ns.name, image, replicas),
        &stream_manifest(&ns.name),
    )
    .await;
    let broker = ManagedBroker::open(&client, &ns.name).await.unwrap();
    let names = Names::of(&ns.name);
    Setup {
        client,
        ns,
        broker,
        names,
    }
}

impl Setup {
    /// A port-forward to the account pod's HTTP API.
    async fn account_api(&self) -> String {
        forward_service(&self.client, &self.ns.name, "bank-account", 8080)
            .await
            .unwrap()
    }

    /// Deletes the Stream (its queues go, per `deletionPolicy: Delete`),
    /// checks they are gone, then the namespace.
    async fn tear_down(self, conn: &Connection) {
        kubectl(&[
            "-n",
            &self.ns.name,
            "delete",
            "stream",
            STREAM,
            "--timeout=120s",
        ]);
        for q in [
            &self.names.queue,
            &self.names.retry,
            &self.names.dlq,
            &self.names.audit,
        ] {
            assert!(!queue_exists(conn, q).await, "{q} is still on the broker");
        }
        assert!(!exchange_exists(conn, &self.names.exchange).await);
        self.ns.delete().await.unwrap();
    }
}

/// Creates account `n` (retrying through app restarts: the Idempotency-Key
/// makes a retried POST answer the first one's result) and returns its id.
async fn create_account(http: &reqwest::Client, base: &str, tag: &str, n: usize) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let sent = http
            .post(format!("{base}/v1/accounts"))
            .header("Idempotency-Key", format!("{tag}-{n}"))
            .timeout(Duration::from_secs(10))
            .json(&json!({"firstName": "Broker", "lastName": format!("Test{n}"), "email": format!("{tag}-{n}@example.com")}))
            .send()
            .await;
        let last = match sent {
            Ok(r) if r.status() == 201 => {
                let doc: Value = r.json().await?;
                return doc["accountId"]
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| anyhow!("no accountId in {doc}"));
            }
            Ok(r) if r.status().is_client_error() => {
                bail!("POST account {n}: {} {}", r.status(), r.text().await?)
            }
            Ok(r) => format!("{}", r.status()),
            Err(e) => format!("{e}"),
        };
        if Instant::now() > deadline {
            bail!("POST account {n}: {last}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The account feed (`GET /v1/events`), as event types by account, in
/// version order, and every event id.
async fn lifecycles(
    http: &reqwest::Client,
    base: &str,
) -> Result<(BTreeMap<String, Vec<String>>, BTreeSet<String>)> {
    let mut by_account: BTreeMap<String, Vec<(i64, String)>> = BTreeMap::new();
    let mut ids = BTreeSet::new();
    for e in feed_events(http, base, 0).await? {
        let text = |f: &str| e[f].as_str().unwrap_or_default().to_owned();
        ids.insert(text("eventId"));
        by_account
            .entry(text("aggregateId"))
            .or_default()
            .push((e["version"].as_i64().unwrap_or_default(), text("eventType")));
    }
    let lifecycles = by_account
        .into_iter()
        .map(|(id, mut events)| {
            events.sort();
            (id, events.into_iter().map(|(_, t)| t).collect())
        })
        .collect();
    Ok((lifecycles, ids))
}

/// Waits until every account of `ids` is ACTIVE, then asserts that each
/// holds exactly its four lifecycle events; returns every event id of the feed.
async fn assert_every_account_active(
    http: &reqwest::Client,
    base: &str,
    ids: &[String],
    timeout: Duration,
) -> BTreeSet<String> {
    let feed = Mutex::new(None);
    let waited = wait_for(timeout, "every account to be ACTIVE", || async {
        let (by_account, event_ids) = lifecycles(http, base).await?;
        let active = ids
            .iter()
            .filter(|id| {
                by_account
                    .get(*id)
                    .is_some_and(|e| e.iter().any(|t| t == "ACCOUNT_ACTIVATED"))
            })
            .count();
        let done = active == ids.len();
        *feed.lock().unwrap() = Some((by_account, event_ids, active));
        Ok(done)
    })
    .await;
    let (by_account, event_ids, active) = feed.into_inner().unwrap().unwrap_or_default();
    if let Err(e) = waited {
        panic!("{e:#}: {active} of {} accounts ACTIVE", ids.len());
    }
    for id in ids {
        assert_eq!(by_account[id], LIFECYCLE, "the events of account {id}");
    }
    event_ids
}

/// Takes messages of `queue` (acknowledged) until every id of `expected`
/// was seen; returns how often each message id came.
async fn drain_until_all(
    conn: &Connection,
    queue: &str,
    expected: &BTreeSet<String>,
    timeout: Duration,
) -> BTreeMap<String, u32> {
    let ch = conn.create_channel().await.unwrap();
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    let deadline = Instant::now() + timeout;
    loop {
        while let Some(m) = ch
            .basic_get(queue.into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
        {
            let id = m
                .delivery
                .properties
                .message_id()
                .as_ref()
                .map(|s| s.to_string())
                .unwrap_or_default();
            *seen.entry(id).or_default() += 1;
        }
        let missing = expected.iter().filter(|id| !seen.contains_key(*id)).count();
        if missing == 0 {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} of {} events never reached {queue}",
            expected.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Messages ready in `queue` (a passive declare).
async fn ready_messages(conn: &Connection, queue: &str) -> Result<u32> {
    let ch = conn.create_channel().await?;
    let q = ch
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    Ok(q.message_count())
}

/// `type` and the `x-` arguments of every queue of the Stream, checked
/// against what the operator declares for `queue_type`.
async fn assert_topology(mgmt: &Management, names: &Names, queue_type: &str) {
    let group = mgmt.queue(&names.queue).await.unwrap();
    assert_eq!(group["type"], queue_type, "{group}");
    assert_eq!(group["arguments"]["x-dead-letter-exchange"], names.dlx);
    let retry = mgmt.queue(&names.retry).await.unwrap();
    assert_eq!(retry["type"], queue_type);
    assert_eq!(retry["arguments"]["x-message-ttl"], BACKOFF_MS);
    assert_eq!(retry["arguments"]["x-dead-letter-exchange"], "");
    assert_eq!(retry["arguments"]["x-dead-letter-routing-key"], names.queue);
    for q in [&names.dlq, &names.audit] {
        assert_eq!(mgmt.queue(q).await.unwrap()["type"], queue_type, "{q}");
    }
    let exchange = mgmt
        .get(&format!("exchanges/%2f/{}", names.exchange))
        .await
        .unwrap();
    assert_eq!(exchange["type"], "topic");
    let dlx = mgmt
        .get(&format!("exchanges/%2f/{}", names.dlx))
        .await
        .unwrap();
    assert_eq!(dlx["type"], "fanout");
}

/// Sent as a CloudEvent, it is none.
const POISON: &str = "{ this is not a CloudEvent";

/// A message on the account destination that is no CloudEvent: the worker
/// tries it `maxAttempts` times through the retry queue, then it lands in
/// the group's DLQ; the next account is still served.
async fn assert_poison_is_dead_lettered(
    conn: &Connection,
    names: &Names,
    http: &reqwest::Client,
    base: &str,
    tag: &str,
) {
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    ch.basic_publish(
        names.exchange.as_str().into(),
        "account.ACCOUNT_CREATED".into(),
        BasicPublishOptions::default(),
        POISON.as_bytes(),
        BasicProperties::default().with_content_type("application/cloudevents+json".into()),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    wait_for(
        Duration::from_secs(60),
        "the poison message in the DLQ",
        || async { Ok(ready_messages(conn, &names.dlq).await? == 1) },
    )
    .await
    .unwrap();
    let dead = drain_queue(conn, &names.dlq).await;
    assert_eq!(dead, [POISON]);
    let id = create_account(http, base, tag, 1_000_000).await.unwrap();
    assert_every_account_active(http, base, &[id], Duration::from_secs(60)).await;
}

/// One node of `image`: the version, the topology (classic queues), five
/// accounts through the broker with every event in the tap's queue exactly
/// once, poison dead-lettered, and the queues removed with the Stream.
async fn one_node_broker_runs_the_stream(prefix: &str, image: &str, version: &str) {
    let setup = set_up(prefix, image, 1).await;
    let mgmt = setup.broker.management("rabbit-0").await.unwrap();
    let running = mgmt.version().await.unwrap();
    assert!(running.starts_with(version), "RabbitMQ {running}");
    assert_topology(&mgmt, &setup.names, "classic").await;

    let http = reqwest::Client::new();
    let base = setup.account_api().await;
    let tag = setup.ns.name.clone();
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(create_account(&http, &base, &tag, n).await.unwrap());
    }
    let events = assert_every_account_active(&http, &base, &ids, Duration::from_secs(90)).await;
    let conn = setup.broker.amqp("rabbit-0").await.unwrap();
    let seen = drain_until_all(&conn, &setup.names.audit, &events, Duration::from_secs(30)).await;
    assert_eq!(
        seen,
        events
            .iter()
            .map(|id| (id.clone(), 1))
            .collect::<BTreeMap<_, _>>(),
        "the tap's queue holds every event once"
    );
    assert_poison_is_dead_lettered(&conn, &setup.names, &http, &base, &tag).await;
    setup.tear_down(&conn).await;
}

#[tokio::test]
#[ignore = "needs a cluster"]
async fn rabbitmq_3_10_runs_a_stream_declares_its_topology_and_dead_letters_poison() {
    one_node_broker_runs_the_stream("rmq310", RABBITMQ_IMAGE, "3.10.").await;
}

#[tokio::test]
#[ignore = "needs a cluster"]
async fn rabbitmq_4_0_runs_a_stream_declares_its_topology_and_dead_letters_poison() {
    one_node_broker_runs_the_stream("rmq40", RABBITMQ4_IMAGE, "4.0.").await;
}

/// The management API of a Ready node other than `avoid`.
/// A broker serving AMQPS only (`managed.tls`, with the CA and server
/// certificate the operator generates): the Stream runs on it. The account
/// app connects with `amqps` as its own user and verifies the certificate;
/// the operator declares the topology and checks the broker over TLS too;
/// and no plain AMQP listener is left.
#[tokio::test]
#[ignore = "needs a cluster"]
async fn a_tls_broker_runs_the_stream_over_amqps_only() {
    let client = client().await;
    operator();
    let ns = TestNamespace::create(&client, "tls").await.unwrap();
    let mut broker = broker_manifest(&ns.name, RABBITMQ_IMAGE, 1);
    broker["spec"]["managed"]["tls"] = json!({});
    deploy(&client, &ns.name, &broker, &stream_manifest(&ns.name)).await;

    // The certificates and what the apps are given.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    let text =
        |s: &Secret, k: &str| String::from_utf8(s.data.as_ref().unwrap()[k].0.clone()).unwrap();
    let ca = text(&secrets.get("rabbit-ca").await.unwrap(), "ca.crt");
    let server = secrets.get("rabbit-tls").await.unwrap();
    assert_eq!(text(&server, "ca.crt"), ca, "the server certificate's CA");
    let credentials = secrets.get("rabbit-credentials").await.unwrap();
    let uri = text(&credentials, "uri");
    assert!(
        uri.starts_with("amqps://") && uri.ends_with(&format!("@rabbit.{}.svc:5671/%2f", ns.name)),
        "the operator's URI: amqps on 5671 ({})",
        uri.split('@').next_back().unwrap_or_default()
    );
    for app in ["account", "audit"] {
        let own = secrets
            .get(&format!("{STREAM}-{app}-broker"))
            .await
            .unwrap();
        assert!(text(&own, "uri").starts_with("amqps://"), "{app}'s URI");
        assert_eq!(
            text(&own, "ca.crt"),
            ca,
            "{app} verifies with the broker's CA"
        );
    }

    // Accounts go through the broker: the worker drives each to ACTIVE.
    let http = reqwest::Client::new();
    let base = forward_service(&client, &ns.name, "bank-account", 8080)
        .await
        .unwrap();
    let tag = ns.name.clone();
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(create_account(&http, &base, &tag, n).await.unwrap());
    }
    assert_every_account_active(&http, &base, &ids, Duration::from_secs(90)).await;

    // What the broker says: AMQPS its only AMQP listener, and every
    // connection TLS — the apps' as their own users.
    let managed = ManagedBroker::open(&client, &ns.name).await.unwrap();
    let mgmt = managed.management("rabbit-0").await.unwrap();
    let overview = mgmt.get("overview").await.unwrap();
    let listeners: BTreeSet<String> = overview["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| format!("{}:{}", l["protocol"].as_str().unwrap(), l["port"]))
        .filter(|l| l.starts_with("amqp"))
        .collect();
    assert_eq!(
        listeners,
        BTreeSet::from(["amqp/ssl:5671".to_owned()]),
        "no plain AMQP listener"
    );
    let app_users = [format!("eventflow.{}.{STREAM}.account", ns.name)];
    let seen = Mutex::new(Value::Null);
    wait_for(
        Duration::from_secs(60),
        "the broker to list the apps' connections",
        || async {
            let connections = mgmt.get("connections").await?;
            let users: BTreeSet<&str> = connections
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["user"].as_str())
                .collect();
            let all = app_users.iter().all(|u| users.contains(u.as_str()));
            *seen.lock().unwrap() = connections.clone();
            Ok(all)
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}: {}", seen.lock().unwrap()));
    let connections = seen.into_inner().unwrap();
    for c in connections.as_array().unwrap() {
        assert_eq!(c["ssl"], true, "{} connects in plain text: {c}", c["user"]);
    }
    ns.delete().await.unwrap();
}

async fn management_avoiding(broker: &ManagedBroker, avoid: &str) -> Result<Management> {
    let nodes = broker.ready_nodes().await?;
    let pod = nodes
        .iter()
        .find(|p| *p != avoid)
        .ok_or_else(|| anyhow!("no Ready broker node but {avoid}: {nodes:?}"))?;
    broker.management(pod).await
}

/// The pod of the node leading the group queue.
async fn leader_pod(broker: &ManagedBroker, queue: &str) -> Result<String> {
    let mgmt = management_avoiding(broker, "").await?;
    let q = mgmt.queue(queue).await?;
    let leader = q["leader"]
        .as_str()
        .ok_or_else(|| anyhow!("{queue} has no leader: {q}"))?;
    Ok(pod_of_node(leader).to_owned())
}

/// The pod of the node the account app's broker connection is on (not the
/// operator's: the only other client while the run goes).
async fn app_connection_pod(broker: &ManagedBroker) -> Result<String> {
    let mgmt = management_avoiding(broker, "").await?;
    let connections = mgmt.get("connections").await?;
    connections
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["client_properties"]["connection_name"] != "eventflow-operator")
        .and_then(|c| c["node"].as_str())
        .map(|node| pod_of_node(node).to_owned())
        .ok_or_else(|| anyhow!("no connection of the app: {connections}"))
}

/// [`app_connection_pod`], once the app is connected (again).
async fn wait_app_connection(broker: &ManagedBroker) -> String {
    let found = Mutex::new(String::new());
    wait_for(
        Duration::from_secs(120),
        "the app's broker connection",
        || async {
            let pod = app_connection_pod(broker).await?;
            *found.lock().unwrap() = pod;
            Ok(true)
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
    found.into_inner().unwrap()
}

/// Waits until the broker has three Ready pods, `pod` recreated after
/// `deleted_uid`, every node running in the cluster and the EventBroker Ready.
async fn wait_three_nodes_back(setup: &Setup, pod: &str, deleted_uid: &str) {
    let pods: Api<Pod> = setup.ns.api();
    let what = format!("{pod} back and three running nodes");
    wait_for(Duration::from_secs(240), &what, || async {
        let p = pods.get(pod).await?;
        if p.metadata.uid.as_deref() == Some(deleted_uid) || !is_ready(&p) {
            return Ok(false);
        }
        if setup.broker.ready_nodes().await?.len() != 3 {
            return Ok(false);
        }
        let mgmt = management_avoiding(&setup.broker, "").await?;
        Ok(mgmt.running_nodes().await?.len() == 3
            && broker_phase(&setup.client, &setup.ns.name).await? == "Ready")
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
}

/// Deletes `pod` with `grace` seconds to stop (`None`: its own 60 s, a
/// clean shutdown; `Some(1)`: killed a second after SIGTERM); returns its uid.
async fn delete_node(setup: &Setup, pod: &str, grace: Option<u32>) -> String {
    let pods: Api<Pod> = setup.ns.api();
    let uid = pods.get(pod).await.unwrap().metadata.uid.unwrap();
    let params = DeleteParams {
        grace_period_seconds: grace,
        ..Default::default()
    };
    pods.delete(pod, &params).await.unwrap();
    uid
}

/// Restarts of the containers of the Stream's pods, by pod.
async fn app_restarts(client: &Client, namespace: &str) -> BTreeMap<String, i32> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = pods
        .list(&ListParams::default().labels(&format!("eventflow.dev/stream={STREAM}")))
        .await
        .unwrap();
    list.items
        .into_iter()
        .map(|p| {
            let restarts = p
                .status
                .and_then(|s| s.container_statuses)
                .unwrap_or_default()
                .iter()
                .map(|c| c.restart_count)
                .sum();
            (p.metadata.name.unwrap_or_default(), restarts)
        })
        .collect()
}

/// Accounts posted one after the other at about `per_second` until `stop`.
struct Run {
    posted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<String>>,
}

impl Run {
    fn start(base: String, tag: String, per_second: u32) -> Self {
        let posted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (posted.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut tick = tokio::time::interval(Duration::from_secs(1) / per_second);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut ids = Vec::new();
            while !s.load(Ordering::SeqCst) {
                tick.tick().await;
                let id = create_account(&http, &base, &tag, ids.len())
                    .await
                    .unwrap_or_else(|e| panic!("{e:#}"));
                ids.push(id);
                p.store(ids.len(), Ordering::SeqCst);
            }
            ids
        });
        Self { posted, stop, task }
    }

    /// Waits until `n` more accounts than now were posted.
    async fn more(&self, n: usize) {
        let target = self.posted.load(Ordering::SeqCst) + n;
        let deadline = Instant::now() + Duration::from_secs(240);
        while self.posted.load(Ordering::SeqCst) < target {
            assert!(
                !self.task.is_finished(),
                "the run stopped (its panic is above)"
            );
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {target} accounts posted"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn finish(self) -> Vec<String> {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap()
    }
}

#[tokio::test]
#[ignore = "needs a cluster"]
async fn a_three_node_rabbitmq_4_0_broker_loses_no_event_when_a_node_is_deleted_and_one_killed_mid_run()
 {
    let started = Instant::now();
    let setup = set_up("rmq3n", RABBITMQ4_IMAGE, 3).await;
    let up = started.elapsed();
    {
        let mgmt = setup.broker.management("rabbit-0").await.unwrap();
        assert!(mgmt.version().await.unwrap().starts_with("4.0."));
        assert_eq!(mgmt.running_nodes().await.unwrap().len(), 3);
        assert_topology(&mgmt, &setup.names, "quorum").await;
        for q in [&setup.names.queue, &setup.names.audit] {
            let members = mgmt.queue(q).await.unwrap()["members"].clone();
            assert_eq!(members.as_array().map(Vec::len), Some(3), "{q}: {members}");
        }
    }

    let base = setup.account_api().await;
    let run = Run::start(base.clone(), setup.ns.name.clone(), 8);
    run.more(40).await;
    // A clean shutdown of the node leading the worker's queue...
    let victim = leader_pod(&setup.broker, &setup.names.queue).await.unwrap();
    eprintln!("deleting {victim} (leader of {})", setup.names.queue);
    let uid = delete_node(&setup, &victim, None).await;
    run.more(20).await;
    wait_three_nodes_back(&setup, &victim, &uid).await;
    run.more(20).await;
    // ... then the node the app is connected to, killed a second after SIGTERM.
    let victim = wait_app_connection(&setup.broker).await;
    eprintln!("killing {victim} (the account app's connection)");
    let uid = delete_node(&setup, &victim, Some(1)).await;
    run.more(20).await;
    wait_three_nodes_back(&setup, &victim, &uid).await;
    run.more(20).await;
    let ids = run.finish().await;

    let http = reqwest::Client::new();
    let events = assert_every_account_active(&http, &base, &ids, Duration::from_secs(300)).await;
    assert_eq!(events.len(), ids.len() * LIFECYCLE.len());
    let pod = setup.broker.ready_nodes().await.unwrap()[0].clone();
    let conn = setup.broker.amqp(&pod).await.unwrap();
    let seen = drain_until_all(&conn, &setup.names.audit, &events, Duration::from_secs(120)).await;
    let unknown: Vec<_> = seen.keys().filter(|id| !events.contains(*id)).collect();
    assert!(unknown.is_empty(), "messages of no event: {unknown:?}");
    let again: u32 = seen.values().map(|n| n - 1).sum();
    eprintln!(
        "{} accounts, {} events, each in the tap's queue ({again} published again after a lost confirm); \
         broker and Stream up in {up:?}, whole test {:?}; app restarts {:?}",
        ids.len(),
        events.len(),
        started.elapsed(),
        app_restarts(&setup.client, &setup.ns.name).await,
    );
    assert_poison_is_dead_lettered(&conn, &setup.names, &http, &base, &setup.ns.name).await;
    setup.tear_down(&conn).await;
}
