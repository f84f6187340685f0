//! Tier 2: each Stream's NetworkPolicy, written by an in-process operator
//! against the real kube-apiserver (which stores and validates it; the
//! local node's kube-router enforces it in the e2e tier): created with the
//! Stream, opened to a Stream that starts calling its web role, restored
//! when deleted, removed with `isolate: false`. The last test is the
//! benchmark of `make bench`: what the network step adds to a reconcile.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::eventually;
use eventflow_operator::api::Stream;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::{
    Api, Client,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};

async fn create(client: &Client, ns: &str, stream: Value) {
    let stream: Stream = serde_json::from_value(stream).unwrap();
    Api::<Stream>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &stream)
        .await
        .unwrap();
}

fn caller(name: &str, url: &str) -> Value {
    json!({
        "apiVersion": "eventflow.dev/v1alpha1", "kind": "Stream",
        "metadata": {"name": name},
        "spec": {"broker": "rabbit", "apps": [
            {"name": "sim", "image": "eventflow/sim:0.1.0", "web": {},
             "env": [{"name": "TARGET_URL", "value": url}]}
        ]}
    })
}

/// The policy `name` once `check` holds for its JSON (within 60 s).
async fn policy_where(
    client: &Client,
    ns: &str,
    name: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let api = Api::<NetworkPolicy>::namespaced(client.clone(), ns);
    eventually(Duration::from_secs(60), what, || async {
        let p = api.get_opt(name).await.unwrap()?;
        let v = serde_json::to_value(p).unwrap();
        check(&v).then_some(v)
    })
    .await
}

fn admits_stream(policy: &Value, stream: &str) -> bool {
    policy["spec"]["ingress"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|rule| rule["from"].as_array().into_iter().flatten())
        .any(|peer| peer["podSelector"]["matchLabels"]["eventflow.dev/stream"] == stream)
}

#[tokio::test]
#[ignore = "needs the control plane and rabbitmq"]
async fn a_streams_policy_follows_its_callers_comes_back_when_deleted_and_goes_with_isolation_off()
{
    let (client, ns, operator) = common::operator_on_external_broker("netpol").await;
    create(
        &client,
        &ns,
        serde_json::to_value(common::shop_stream("shop")).unwrap(),
    )
    .await;
    let policy = policy_where(&client, &ns, "shop", "the Stream's NetworkPolicy", |p| {
        admits_stream(p, "shop")
    })
    .await;
    assert_eq!(
        policy["spec"]["podSelector"],
        json!({"matchLabels": {"eventflow.dev/stream": "shop"}})
    );
    assert_eq!(policy["metadata"]["ownerReferences"][0]["name"], "shop");
    // The external broker is reached on its URI's port, anywhere.
    let port = common::amqp_uri()
        .parse::<lapin::uri::AMQPUri>()
        .unwrap()
        .authority
        .port;
    assert!(
        policy["spec"]["egress"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["ports"] == json!([{"port": port, "protocol": "TCP"}]) && r["to"].is_null()),
        "{policy}"
    );
    assert!(!admits_stream(&policy, "load"));

    // A Stream that names shop's web role is let in (by the next reconcile
    // of shop: a resync at the latest).
    create(&client, &ns, caller("load", "http://shop-account-web:8080")).await;
    let api = Api::<Stream>::namespaced(client.clone(), &ns);
    // Touch shop so the test need not wait for the 30 s resync.
    api.patch(
        "shop",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"touch": "1"}}})),
    )
    .await
    .unwrap();
    policy_where(&client, &ns, "shop", "shop's policy to admit load", |p| {
        admits_stream(p, "load")
    })
    .await;
    // The caller may reach shop's pods (its egress names them).
    policy_where(&client, &ns, "load", "load's policy to reach shop", |p| {
        p["spec"]["egress"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|r| r["to"].as_array().into_iter().flatten())
            .any(|peer| peer["podSelector"]["matchLabels"]["eventflow.dev/stream"] == "shop")
    })
    .await;

    // Deleted by someone: written again.
    let policies = Api::<NetworkPolicy>::namespaced(client.clone(), &ns);
    let uid = policies.get("shop").await.unwrap().metadata.uid;
    policies
        .delete("shop", &DeleteParams::default())
        .await
        .unwrap();
    eventually(
        Duration::from_secs(60),
        "the deleted policy to be back",
        || async {
            let p = policies.get_opt("shop").await.unwrap()?;
            (p.metadata.uid != uid).then_some(())
        },
    )
    .await;

    // Isolation off: the policy goes.
    api.patch(
        "shop",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"network": {"isolate": false}}})),
    )
    .await
    .unwrap();
    eventually(
        Duration::from_secs(60),
        "the policy to be removed",
        || async {
            policies
                .get_opt("shop")
                .await
                .unwrap()
                .is_none()
                .then_some(())
        },
    )
    .await;
    common::teardown(&client, &ns).await;
    operator.stop().await;
}

/// Benchmark (`make bench`; `make test` skips `_versus_`): the network step
/// of a reconcile of a Stream of `APPS` apps in a namespace of `STREAMS`
/// Streams — the first apply (policy created) and a resync (the namespace's
/// Streams scanned, the policy built, nothing written) — beside the apply
/// of the same Stream's Deployments, the step every reconcile already had.
#[tokio::test]
#[ignore = "benchmark: needs the control plane"]
async fn network_step_versus_workload_apply() {
    use eventflow_operator::{
        apply, build::build_stream, context::Context, metrics::Metrics, users::Users,
        validate::validate,
    };
    use std::time::Instant;
    const APPS: usize = 10;
    const STREAMS: usize = 50;
    const ROUNDS: u32 = 20;
    let client = common::client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, "netpol-bench").await;
    common::external_broker(&client, &ns, &common::amqp_uri()).await;
    for i in 1..STREAMS {
        create(
            &client,
            &ns,
            caller(&format!("other{i}"), "http://elsewhere:8080"),
        )
        .await;
    }
    let (stream, wiring) = common::bench_stream(&client, &ns, APPS, true).await;
    let valid = validate(&stream).unwrap();
    let mut settings = common::test_settings();
    settings.operator_namespace = Some("eventflow-system".into());
    let ctx = Context::new(client.clone(), "bench", Metrics::new(), settings);
    let uri = common::amqp_uri();
    let per_app = |d: Duration| d.as_secs_f64() * 1000.0 / APPS as f64;

    let t = Instant::now();
    apply::network::converge(&ctx, &valid, &wiring, Some(&uri))
        .await
        .unwrap();
    let first = t.elapsed();
    // Without the controllers' watch cache every resync applies again (a
    // PATCH); the operator's cache skips that, so this is the upper bound.
    let t = Instant::now();
    for _ in 0..ROUNDS {
        apply::network::converge(&ctx, &valid, &wiring, Some(&uri))
            .await
            .unwrap();
    }
    let again = t.elapsed() / ROUNDS;
    let objects = build_stream(&valid, &wiring, &Users::Shared("bench".into()));
    let t = Instant::now();
    for _ in 0..ROUNDS {
        apply::stream::apply_stream(&ctx, &valid, &objects, false)
            .await
            .unwrap();
    }
    let workloads = t.elapsed() / ROUNDS;
    println!("network step, Stream of {APPS} apps among {STREAMS} Streams (per app):");
    println!(
        "  first reconcile (policy created):                {:.2} ms",
        per_app(first)
    );
    println!(
        "  again without the watch cache (policy re-applied): {:.2} ms",
        per_app(again)
    );
    println!(
        "  for comparison, applying the Stream's {} Deployments and {} Services: {:.2} ms",
        objects.deployments.len(),
        objects.services.len(),
        per_app(workloads)
    );
    println!(
        "  ratio network / workloads: {:.2}",
        again.as_secs_f64() / workloads.as_secs_f64()
    );
    common::teardown(&client, &ns).await;
}
