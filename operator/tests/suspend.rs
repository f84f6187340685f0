//! Tier 2: suspending and resuming Streams against the real kube-apiserver
//! and RabbitMQ. There is no kubelet here, so Deployments get no pods: a
//! suspend of a Stream whose roles have none (or zero replicas) is drained
//! at once. The drain of a worker that holds messages is shown with a Pod
//! object made by hand (status Running, IP 127.0.0.1) whose admin port is
//! a real consumer of the Stream's queue with the runtime's `/drain`, in
//! this process.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use common::eventually;
use eventflow_contract::Bindings;
use eventflow_operator::api::{Stream, StreamPhase};
use eventflow_runtime::{
    broker::BrokerLink,
    cloudevent::CloudEvent,
    config::Role,
    consumer::{Consumer, Handled, Handler, TransientRetry},
    drain::{self, Drain},
    metrics::Metrics,
};
use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        core::v1::{Pod, ServiceAccount},
    },
    apimachinery::pkg::apis::meta::v1::Condition,
};
use kube::{
    Api, Client,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use lapin::{
    BasicProperties, Connection, ConnectionProperties,
    options::{BasicGetOptions, BasicPublishOptions},
};
use serde_json::json;
use tokio::sync::Semaphore;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

/// The shop Stream with 2 web and 3 worker replicas for `account`.
fn shop(name: &str) -> Stream {
    let mut s = common::shop_stream(name);
    let account = &mut s.spec.apps[0];
    account.web.as_mut().unwrap().replicas = Some(2);
    account.worker.as_mut().unwrap().replicas = Some(3);
    s
}

async fn replicas(client: &Client, ns: &str) -> BTreeMap<String, i32> {
    Api::<Deployment>::namespaced(client.clone(), ns)
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|d| {
            (
                d.metadata.name.clone().unwrap(),
                d.spec.and_then(|s| s.replicas).unwrap(),
            )
        })
        .collect()
}

fn suspended(stream: &Stream) -> Option<Condition> {
    stream
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Suspended")
        .cloned()
}

async fn set_suspend(client: &Client, ns: &str, name: &str, on: bool) {
    Api::<Stream>::namespaced(client.clone(), ns)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"suspend": on}})),
        )
        .await
        .unwrap();
}

/// Waits for a status of the current generation whose Suspended condition passes `check`.
async fn until_suspended(
    client: &Client,
    ns: &str,
    name: &str,
    what: &str,
    check: impl Fn(&Stream, &Condition) -> bool,
) -> Stream {
    let api = Api::<Stream>::namespaced(client.clone(), ns);
    eventually(Duration::from_secs(60), what, || async {
        let s = api.get(name).await.ok()?;
        let fresh = s.status.as_ref()?.observed_generation == s.metadata.generation;
        let c = suspended(&s)?;
        (fresh && check(&s, &c)).then_some(s)
    })
    .await
}

fn expected(pairs: &[(&str, i32)]) -> BTreeMap<String, i32> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

#[tokio::test]
#[ignore = "needs kube-apiserver and rabbitmq"]
async fn a_stream_without_pods_is_drained_at_once_and_resumes_with_its_replicas() {
    let (client, ns, operator) = common::operator_on_external_broker("suspend-empty").await;
    let streams = Api::<Stream>::namespaced(client.clone(), &ns);
    let mut stream = shop("shop");
    // One role already at zero replicas.
    stream.spec.apps[1].worker.as_mut().unwrap().replicas = Some(0);
    streams
        .create(&PostParams::default(), &stream)
        .await
        .unwrap();
    let spec = expected(&[
        ("shop-account-web", 2),
        ("shop-account-worker", 3),
        ("shop-audit-worker", 0),
    ]);
    eventually(Duration::from_secs(60), "the Deployments", || async {
        (replicas(&client, &ns).await == spec).then_some(())
    })
    .await;

    set_suspend(&client, &ns, "shop", true).await;
    let s = until_suspended(&client, &ns, "shop", "Suspended/Drained", |_, c| {
        c.status == "True" && c.reason == "Drained"
    })
    .await;
    let status = s.status.unwrap();
    assert_eq!(status.phase, StreamPhase::Suspended);
    let c = suspended_condition(&status.conditions);
    assert!(
        c.message.contains("3 workload(s) scaled to zero"),
        "{}",
        c.message
    );
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "Suspended")
    );
    assert!(status.workloads.iter().all(|w| w.replicas == 0));
    assert_eq!(
        replicas(&client, &ns).await,
        expected(&[
            ("shop-account-web", 0),
            ("shop-account-worker", 0),
            ("shop-audit-worker", 0),
        ])
    );

    let drained_event = eventually(Duration::from_secs(20), "an Event Drained", || async {
        let events = Api::<k8s_openapi::api::events::v1::Event>::namespaced(client.clone(), &ns)
            .list(&Default::default())
            .await
            .ok()?;
        events
            .items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("Drained"))
    })
    .await;
    assert_eq!(drained_event.type_.as_deref(), Some("Normal"));

    set_suspend(&client, &ns, "shop", false).await;
    let s = until_suspended(&client, &ns, "shop", "Suspended False/Resumed", |_, c| {
        c.status == "False" && c.reason == "Resumed"
    })
    .await;
    assert_eq!(
        s.status.unwrap().phase,
        StreamPhase::Deploying,
        "no kubelet: the restored replicas never become ready"
    );
    assert_eq!(
        replicas(&client, &ns).await,
        spec,
        "the spec's replicas again"
    );
    common::teardown(&client, &ns).await;
    operator.stop().await;
}

fn suspended_condition(conditions: &[Condition]) -> &Condition {
    conditions.iter().find(|c| c.type_ == "Suspended").unwrap()
}

/// Handles each event once it gets a permit from `gate`, recording its id.
fn gated_handler(gate: Arc<Semaphore>, seen: Arc<Mutex<Vec<String>>>) -> Handler {
    Arc::new(move |ce: CloudEvent| {
        let (gate, seen) = (gate.clone(), seen.clone());
        Box::pin(async move {
            gate.acquire().await.unwrap().forget();
            seen.lock().unwrap().push(ce.id);
            Ok(Handled::Done)
        })
    })
}

/// The subscriptions the operator wired into a worker Deployment.
async fn bindings_of(client: &Client, ns: &str, deployment: &str) -> Bindings {
    let d = Api::<Deployment>::namespaced(client.clone(), ns)
        .get(deployment)
        .await
        .unwrap();
    let env = d.spec.unwrap().template.spec.unwrap().containers[0]
        .env
        .clone()
        .unwrap();
    let json = env
        .iter()
        .find(|e| e.name == eventflow_contract::env::BINDINGS)
        .and_then(|e| e.value.clone())
        .unwrap();
    Bindings::from_json(&json).unwrap()
}

/// A Pod of `deployment` as the kubelet would report it: Running on
/// 127.0.0.1, its admin port `admin`.
async fn fake_pod(client: &Client, ns: &str, deployment: &str, admin: u16) {
    let sa: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "default"}})).unwrap();
    let _ = Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &sa)
        .await;
    let d = Api::<Deployment>::namespaced(client.clone(), ns)
        .get(deployment)
        .await
        .unwrap();
    let labels = d.spec.unwrap().selector.match_labels.unwrap();
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": format!("{deployment}-0"), "labels": labels},
        "spec": {"automountServiceAccountToken": false, "containers": [{
            "name": "account", "image": "eventflow/account:0.1.0",
            "ports": [{"name": "admin", "containerPort": admin}]}]}
    }))
    .unwrap();
    let pods = Api::<Pod>::namespaced(client.clone(), ns);
    pods.create(&PostParams::default(), &pod).await.unwrap();
    pods.patch_status(
        &format!("{deployment}-0"),
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Running", "podIP": "127.0.0.1",
            "podIPs": [{"ip": "127.0.0.1"}]}})),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kube-apiserver and rabbitmq"]
async fn a_worker_holding_messages_is_drained_before_it_goes_to_zero_and_nothing_is_lost() {
    let (client, ns, operator) = common::operator_on_external_broker("suspend-drain").await;
    let streams = Api::<Stream>::namespaced(client.clone(), &ns);
    streams
        .create(&PostParams::default(), &shop("shop"))
        .await
        .unwrap();
    eventually(Duration::from_secs(60), "topology declared", || async {
        let s = streams.get("shop").await.ok()?;
        s.status?
            .conditions
            .iter()
            .any(|c| c.type_ == "TopologyReady" && c.status == "True")
            .then_some(())
    })
    .await;

    // The account worker: a real consumer of the Stream's queue, holding
    // what it takes until the gate opens, with the runtime's /drain.
    let bindings = bindings_of(&client, &ns, "shop-account-worker").await;
    let subscription = bindings.subscribes[0].clone();
    let connection = Arc::new(
        Connection::connect(&common::amqp_uri(), ConnectionProperties::default())
            .await
            .unwrap(),
    );
    let total = 20;
    let channel = connection.create_channel().await.unwrap();
    for i in 0..total {
        let ce = json!({"specversion": "1.0", "id": format!("e{i}"), "source": "test",
            "type": "dev.eventflow.account.OPENED", "data": {}});
        channel
            .basic_publish(
                subscription.exchange.as_str().into(),
                "account.OPENED".into(),
                BasicPublishOptions::default(),
                ce.to_string().as_bytes(),
                BasicProperties::default(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let gate = Arc::new(Semaphore::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let metrics = Metrics::default();
    let stop = CancellationToken::new();
    let consumers = TaskTracker::new();
    let consumer = Consumer {
        subscription: subscription.clone(),
        handler: gated_handler(gate.clone(), seen.clone()),
        prefetch: 8,
        concurrency: 4,
        metrics: metrics.clone(),
        transient: TransientRetry::default(),
    };
    consumers.spawn(consumer.run(BrokerLink::of(connection.clone()), stop.clone()));
    consumers.close();
    let worker_drain = Drain::new(
        Role::Worker,
        vec![stop.clone()],
        consumers.clone(),
        Arc::default(),
        metrics.clone(),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, drain::routes(worker_drain)).await });
    // Four in hand (the concurrency), the rest prefetched or queued.
    eventually(Duration::from_secs(20), "4 messages in hand", || async {
        (metrics.messages_in_hand.get() == 4).then_some(())
    })
    .await;
    fake_pod(&client, &ns, "shop-account-worker", port).await;

    set_suspend(&client, &ns, "shop", true).await;
    let s = until_suspended(&client, &ns, "shop", "Draining with 4 in hand", |_, c| {
        c.reason == "Draining" && c.message.contains("4 message(s) in hand")
    })
    .await;
    assert_eq!(s.status.unwrap().phase, StreamPhase::Suspended);
    let c = suspended(&streams.get("shop").await.unwrap()).unwrap();
    assert!(
        c.message.contains("shop-account-worker-0"),
        "names the pod: {}",
        c.message
    );
    assert_eq!(
        replicas(&client, &ns).await["shop-account-worker"],
        3,
        "a worker holding messages keeps its replicas"
    );
    assert_eq!(
        replicas(&client, &ns).await["shop-account-web"],
        2,
        "the web roles wait for the workers"
    );

    gate.add_permits(total);
    until_suspended(&client, &ns, "shop", "Drained", |_, c| {
        c.reason == "Drained"
    })
    .await;
    assert!(replicas(&client, &ns).await.values().all(|r| *r == 0));

    // Each message handled at most once, and the rest back in the queue.
    let handled: Vec<String> = seen.lock().unwrap().clone();
    let unique: BTreeSet<&String> = handled.iter().collect();
    assert_eq!(
        unique.len(),
        handled.len(),
        "none handled twice: {handled:?}"
    );
    assert_eq!(
        handled.len(),
        4,
        "the four in hand were finished: {handled:?}"
    );
    let ch = connection.create_channel().await.unwrap();
    let mut left = BTreeSet::new();
    while let Some(m) = ch
        .basic_get(
            subscription.queue.as_str().into(),
            BasicGetOptions { no_ack: true },
        )
        .await
        .unwrap()
    {
        let ce: CloudEvent = serde_json::from_slice(&m.delivery.data).unwrap();
        left.insert(ce.id);
    }
    assert_eq!(
        left.len() + handled.len(),
        total,
        "nothing lost: left {left:?}"
    );
    assert!(handled.iter().all(|id| !left.contains(id)), "acked once");

    Api::<Pod>::namespaced(client.clone(), &ns)
        .delete(
            "shop-account-worker-0",
            &DeleteParams::default().grace_period(0),
        )
        .await
        .unwrap();
    common::teardown(&client, &ns).await;
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kube-apiserver and rabbitmq"]
async fn a_drain_that_outlasts_its_timeout_scales_to_zero_anyway_naming_what_was_left() {
    let (client, ns, operator) = common::operator_on_external_broker("suspend-timeout").await;
    let streams = Api::<Stream>::namespaced(client.clone(), &ns);
    let mut stream = shop("shop");
    stream.spec.drain_timeout_seconds = Some(5);
    streams
        .create(&PostParams::default(), &stream)
        .await
        .unwrap();
    eventually(Duration::from_secs(60), "the Deployments", || async {
        (replicas(&client, &ns).await.len() == 3).then_some(())
    })
    .await;
    // A worker pod whose admin port nobody serves: it never says drained.
    let nobody = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let port = nobody.local_addr().unwrap().port();
    drop(nobody);
    fake_pod(&client, &ns, "shop-account-worker", port).await;

    set_suspend(&client, &ns, "shop", true).await;
    let draining = until_suspended(&client, &ns, "shop", "Draining", |_, c| {
        c.reason == "Draining"
    })
    .await;
    let c = suspended(&draining).unwrap();
    assert!(
        c.message
            .contains("shop-account-worker-0: /drain not reachable"),
        "{}",
        c.message
    );
    let s = until_suspended(&client, &ns, "shop", "DrainTimedOut", |_, c| {
        c.reason == "DrainTimedOut"
    })
    .await;
    let c = suspended(&s).unwrap();
    assert!(
        c.message.contains("not drained within 5 s"),
        "{}",
        c.message
    );
    assert!(c.message.contains("shop-account-worker-0"), "{}", c.message);
    assert!(replicas(&client, &ns).await.values().all(|r| *r == 0));
    let warning = eventually(
        Duration::from_secs(20),
        "a Warning Event DrainTimedOut",
        || async {
            let events =
                Api::<k8s_openapi::api::events::v1::Event>::namespaced(client.clone(), &ns)
                    .list(&Default::default())
                    .await
                    .ok()?;
            events
                .items
                .into_iter()
                .find(|e| e.reason.as_deref() == Some("DrainTimedOut"))
        },
    )
    .await;
    assert_eq!(warning.type_.as_deref(), Some("Warning"));
    // Final until the resume: the next reconciles keep it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let later = suspended(&streams.get("shop").await.unwrap()).unwrap();
    assert_eq!(later.reason, "DrainTimedOut");

    Api::<Pod>::namespaced(client.clone(), &ns)
        .delete(
            "shop-account-worker-0",
            &DeleteParams::default().grace_period(0),
        )
        .await
        .unwrap();
    common::teardown(&client, &ns).await;
    operator.stop().await;
}
