//! The autoscaler (engine Operator) on a real kube-apiserver and a real
//! RabbitMQ with its management API. No pods run in this tier: messages are
//! put on the worker's group queue by hand and, where a test needs a message
//! in hand, a consumer of the test takes it without acknowledging it. What
//! a user sees is checked: the Deployment's replicas, `status.autoscale`,
//! the `Scaled` Events and the gauges.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Operator, eventually};
use eventflow_operator::api::{AutoscaleStatus, Stream};
use eventflow_runtime::testing::ReservedPort;
use k8s_openapi::api::{apps::v1::Deployment, events::v1::Event};
use kube::{
    Api, Client,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use lapin::{
    options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueuePurgeOptions},
    types::FieldTable,
};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);
const DEPLOYMENT: &str = "scaled-audit-worker";

fn stream(autoscale: Value) -> Stream {
    serde_json::from_value(json!({
        "apiVersion": "eventflow.dev/v1alpha1", "kind": "Stream",
        "metadata": {"name": "scaled"},
        "spec": {"broker": "rabbit", "apps": [
            {"name": "audit", "image": "eventflow/audit:0.1.0",
             "worker": {"autoscale": autoscale},
             "subscribes": [{"destination": "orders"}]}
        ]}
    }))
    .unwrap()
}

struct Setup {
    client: Client,
    ns: String,
    operator: Operator,
    metrics: String,
    queue: String,
    _admin: ReservedPort,
}

async fn setup(prefix: &str, autoscale: Value) -> Setup {
    let client = common::client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, prefix).await;
    common::external_broker(&client, &ns, &common::amqp_uri()).await;
    common::with_management_api(&client, &ns).await;
    let admin = ReservedPort::new();
    let settings = eventflow_operator::context::Settings {
        autoscale_interval: Duration::from_millis(500),
        ..common::test_settings()
    };
    let operator = Operator::start_on(&client, &ns, settings, admin.addr()).await;
    Api::<Stream>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &stream(autoscale))
        .await
        .unwrap();
    let queue = format!("{ns}.orders.audit");
    let s = Setup {
        metrics: format!("http://{}/metrics", admin.addr()),
        client,
        ns,
        operator,
        queue,
        _admin: admin,
    };
    // The topology is declared: the group queue exists.
    eventually(WAIT, "the Stream's topology", || async {
        let st = s.stream().await.status?;
        st.conditions
            .iter()
            .any(|c| c.type_ == "TopologyReady" && c.status == "True")
            .then_some(())
    })
    .await;
    s
}

impl Setup {
    async fn stream(&self) -> Stream {
        Api::<Stream>::namespaced(self.client.clone(), &self.ns)
            .get("scaled")
            .await
            .unwrap()
    }

    async fn replicas(&self) -> Option<i32> {
        Api::<Deployment>::namespaced(self.client.clone(), &self.ns)
            .get_opt(DEPLOYMENT)
            .await
            .unwrap()?
            .spec?
            .replicas
    }

    async fn entry(&self) -> Option<AutoscaleStatus> {
        self.stream()
            .await
            .status?
            .autoscale
            .into_iter()
            .find(|e| e.app == "audit")
    }

    /// Waits for the Deployment to have `n` replicas; every count seen on the way.
    async fn await_replicas(&self, n: i32, timeout: Duration) -> Vec<i32> {
        let mut seen: Vec<i32> = Vec::new();
        let deadline = Instant::now() + timeout;
        loop {
            let r = self.replicas().await;
            if let Some(r) = r
                && seen.last() != Some(&r)
            {
                seen.push(r);
            }
            if r == Some(n) {
                return seen;
            }
            assert!(
                Instant::now() < deadline,
                "{DEPLOYMENT} never had {n} replicas in {timeout:?}: saw {seen:?}, status {:?}",
                self.entry().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn scaled_events(&self) -> Vec<String> {
        Api::<Event>::namespaced(self.client.clone(), &self.ns)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some("Scaled"))
            .filter_map(|e| e.note)
            .collect()
    }

    async fn teardown(self) {
        // The operator releases the Stream's finalizer: stopped after.
        common::teardown(&self.client, &self.ns).await;
        self.operator.stop().await;
    }
}

#[tokio::test]
#[ignore = "needs kube-apiserver and RabbitMQ"]
async fn a_backlog_scales_the_worker_up_in_steps_a_reconcile_keeps_it_and_it_returns_after_the_window()
 {
    let s = setup(
        "autoscale-up",
        json!({"minReplicas": 1, "maxReplicas": 6, "backlogPerReplica": 10,
               "scaleUp": {"maxStep": 2}, "scaleDown": {"windowSeconds": 4, "maxStep": 5}}),
    )
    .await;
    assert_eq!(
        s.await_replicas(1, WAIT).await,
        [1],
        "starts at minReplicas"
    );

    // 45 messages ask for 5 replicas: 1 -> 3 -> 5, two at a time.
    let (_conn, ch) = common::amqp_channel().await;
    common::put_messages(&ch, &s.queue, 45).await;
    let climb = s.await_replicas(5, WAIT).await;
    assert_eq!(climb, [1, 3, 5], "steps of at most 2");
    let entry = eventually(WAIT, "status.autoscale with the decision", || async {
        s.entry().await.filter(|e| e.desired_replicas == Some(5))
    })
    .await;
    assert_eq!(entry.backlog, Some(45), "{entry:?}");
    assert_eq!(entry.recommended_replicas, Some(5), "{entry:?}");
    let reason = entry.reason.clone().unwrap();
    assert!(
        reason.contains("backlog 45") && reason.contains("10/replica asks 5"),
        "{reason}"
    );
    assert!(entry.last_scale_time.is_some(), "{entry:?}");
    let events = eventually(WAIT, "two Scaled Events", || async {
        let e = s.scaled_events().await;
        (e.len() >= 2).then_some(e)
    })
    .await;
    assert!(
        events.iter().any(|e| e.contains("1 -> 3 (step 2)")),
        "{events:?}"
    );
    let metrics = reqwest::get(&s.metrics)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let desired = format!(
        "eventflow_operator_autoscale_desired_replicas{{namespace=\"{}\",stream=\"scaled\",app=\"audit\"}} 5",
        s.ns
    );
    assert!(metrics.contains(&desired), "{desired} not in:\n{metrics}");

    // A spec change re-applies the Deployment: the replicas stay the autoscaler's.
    let streams = Api::<Stream>::namespaced(s.client.clone(), &s.ns);
    streams
        .patch(
            "scaled",
            &PatchParams::default(),
            &Patch::Json::<()>(
                serde_json::from_value(json!([{"op": "add", "path": "/spec/apps/0/env",
                    "value": [{"name": "TRACE", "value": "1"}]}]))
                .unwrap(),
            ),
        )
        .await
        .unwrap();
    let generation = streams.get("scaled").await.unwrap().metadata.generation;
    eventually(WAIT, "the changed spec applied", || async {
        let st = s.stream().await.status?;
        (st.observed_generation == generation).then_some(())
    })
    .await;
    let deployment = Api::<Deployment>::namespaced(s.client.clone(), &s.ns)
        .get(DEPLOYMENT)
        .await
        .unwrap();
    let env = serde_json::to_string(&deployment.spec.as_ref().unwrap().template).unwrap();
    assert!(env.contains("TRACE"), "the new env is applied: {env}");
    assert_eq!(
        deployment.spec.unwrap().replicas,
        Some(5),
        "a reconcile kept the replicas"
    );

    // Empty again: back to 1 (minReplicas), not before the 4 s window.
    ch.queue_purge(s.queue.as_str().into(), QueuePurgeOptions::default())
        .await
        .unwrap();
    let emptied = Instant::now();
    assert_eq!(s.await_replicas(1, WAIT).await, [5, 1]);
    // The window runs from the last look that saw the backlog: at most one
    // interval (0.5 s) before the purge.
    assert!(
        emptied.elapsed() >= Duration::from_millis(3500),
        "scaled down {:?} after the queue emptied, within the 4 s window",
        emptied.elapsed()
    );

    // Autoscale removed: the Deployment gets worker.replicas again, the entry goes.
    streams
        .patch(
            "scaled",
            &PatchParams::default(),
            &Patch::Json::<()>(
                serde_json::from_value(json!([
                    {"op": "remove", "path": "/spec/apps/0/worker/autoscale"},
                    {"op": "add", "path": "/spec/apps/0/worker/replicas", "value": 2}
                ]))
                .unwrap(),
            ),
        )
        .await
        .unwrap();
    s.await_replicas(2, WAIT).await;
    eventually(WAIT, "status.autoscale emptied", || async {
        s.stream()
            .await
            .status
            .is_some_and(|st| st.autoscale.is_empty())
            .then_some(())
    })
    .await;
    s.teardown().await;
}

#[tokio::test]
#[ignore = "needs kube-apiserver and RabbitMQ"]
async fn a_message_in_hand_keeps_one_replica_and_a_message_wakes_the_worker_from_zero() {
    let s = setup(
        "autoscale-zero",
        json!({"minReplicas": 0, "maxReplicas": 3, "backlogPerReplica": 10,
               "scaleDown": {"windowSeconds": 2}}),
    )
    .await;
    // The starting point: 1 (worker.replicas default), then nothing to do: zero.
    s.await_replicas(0, WAIT).await;

    // One message wakes it.
    let (_conn, ch) = common::amqp_channel().await;
    let published = Instant::now();
    common::put_messages(&ch, &s.queue, 1).await;
    s.await_replicas(1, WAIT).await;
    eprintln!(
        "woken {:?} after the message was published",
        published.elapsed()
    );
    assert!(
        s.scaled_events()
            .await
            .iter()
            .any(|e| e.contains("0 -> 1 (wake)")),
        "{:?}",
        s.scaled_events().await
    );

    // A consumer of ours takes it and holds it unacknowledged: the queue is
    // empty, the message is in hand — the worker keeps a replica.
    ch.basic_qos(1, BasicQosOptions::default()).await.unwrap();
    let mut consumer = ch
        .basic_consume(
            s.queue.as_str().into(),
            "holder".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let delivery = {
        use futures::StreamExt;
        consumer.next().await.unwrap().unwrap()
    };
    let held = eventually(
        WAIT,
        "the message in hand seen by the autoscaler",
        || async { s.entry().await.filter(|e| e.unacknowledged == Some(1)) },
    )
    .await;
    assert_eq!(held.desired_replicas, Some(1), "{held:?}");
    // Seen in hand: for four times the down window, one replica stays.
    let until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < until {
        assert_eq!(s.replicas().await, Some(1), "{:?}", s.entry().await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let entry = s.entry().await.unwrap();
    assert!(
        entry
            .reason
            .as_deref()
            .unwrap()
            .contains("0 ready, 1 unacked"),
        "{entry:?}"
    );

    // Acknowledged: nothing left anywhere, back to zero.
    delivery.ack(BasicAckOptions::default()).await.unwrap();
    s.await_replicas(0, WAIT).await;
    let events = s.scaled_events().await;
    assert!(
        events.iter().any(|e| e.contains("1 -> 0, pods drained")),
        "{events:?}"
    );
    s.teardown().await;
}
