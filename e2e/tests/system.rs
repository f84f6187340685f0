//! The whole system on a real cluster, the way a user meets it: the Helm
//! chart installs the operator, `kubectl apply -f examples/` brings up the
//! broker, PostgreSQL and the Streams, and traffic goes through the web
//! roles by port-forward. The same binary runs on the local node and on kind.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use eventflow_e2e::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Api;
use serde_json::{Value, json};

const NS: &str = EXAMPLES_NS;
const SYSTEM_NS: &str = OPERATOR_NS;

#[tokio::test]
#[ignore = "needs a cluster"]
async fn the_chart_runs_two_operator_replicas_and_one_holds_the_lease() {
    let client = client().await;
    example_system();
    let d = Api::<Deployment>::namespaced(client.clone(), SYSTEM_NS)
        .get("eventflow-operator")
        .await
        .unwrap();
    let status = d.status.unwrap();
    assert_eq!(status.available_replicas, Some(2), "{status:?}");
    let lease: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client.clone(), SYSTEM_NS);
    let holder = lease
        .get("eventflow-operator")
        .await
        .unwrap()
        .spec
        .unwrap()
        .holder_identity
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), SYSTEM_NS);
    assert!(
        pods.get_opt(&holder).await.unwrap().is_some(),
        "the lease holder {holder} is not an operator pod"
    );
    // A node drain may evict one replica, never both (the disruption
    // controller computes the budget's status a moment after the pods change).
    let pdbs: Api<k8s_openapi::api::policy::v1::PodDisruptionBudget> =
        Api::namespaced(client, SYSTEM_NS);
    wait_for(
        Duration::from_secs(60),
        "the PodDisruptionBudget to allow one disruption of two healthy replicas",
        || async {
            let status = pdbs
                .get("eventflow-operator")
                .await?
                .status
                .unwrap_or_default();
            let seen = (
                status.desired_healthy,
                status.current_healthy,
                status.disruptions_allowed,
            );
            anyhow::ensure!(
                seen == (1, 2, 1),
                "desired, current healthy, allowed: {seen:?}"
            );
            Ok(true)
        },
    )
    .await
    .unwrap();
}

#[tokio::test]
#[ignore = "needs a cluster"]
async fn every_example_stream_is_running_with_every_condition_true_at_its_generation() {
    let client = client().await;
    example_system();
    let list = example_streams(&client)
        .list(&Default::default())
        .await
        .unwrap();
    let names: Vec<_> = list
        .items
        .iter()
        .filter_map(|s| s.metadata.name.clone())
        .collect();
    assert_eq!(names, ["audit", "ecommerce", "load"]);
    for s in list.items {
        let name = s.metadata.name.clone().unwrap();
        let generation = s.metadata.generation.unwrap();
        let status = &s.data["status"];
        assert_eq!(status["phase"], "Running", "{name}: {status}");
        assert_eq!(status["observedGeneration"], generation, "{name}: {status}");
        let conditions = status["conditions"].as_array().unwrap();
        let types: Vec<_> = conditions
            .iter()
            .map(|c| c["type"].as_str().unwrap())
            .collect();
        for t in ["BrokerReady", "TopologyReady", "AppsReady", "Ready"] {
            assert!(types.contains(&t), "{name} has no {t} condition: {status}");
        }
        for c in conditions {
            assert_eq!(c["status"], "True", "{name}: {c}");
            assert_eq!(c["observedGeneration"], generation, "{name}: {c}");
        }
    }
}

#[tokio::test]
#[ignore = "needs a cluster"]
async fn the_examples_namespace_enforces_restricted_and_every_pod_is_admitted() {
    let client = client().await;
    example_system();
    let ns = Api::<Namespace>::all(client.clone()).get(NS).await.unwrap();
    let labels = ns.metadata.labels.unwrap_or_default();
    assert_eq!(
        labels
            .get("pod-security.kubernetes.io/enforce")
            .map(String::as_str),
        Some("restricted")
    );
    let pods = Api::<Pod>::namespaced(client, NS)
        .list(&Default::default())
        .await
        .unwrap();
    assert!(
        pods.items.len() >= 10,
        "expected the broker, PostgreSQL and every app role"
    );
    for p in pods.items {
        let name = p.metadata.name.clone().unwrap();
        let phase = p.status.and_then(|s| s.phase).unwrap_or_default();
        assert_eq!(phase, "Running", "{name}");
        let spec = p.spec.unwrap();
        for c in spec.containers {
            let sc = c.security_context.unwrap_or_default();
            assert_eq!(
                sc.allow_privilege_escalation,
                Some(false),
                "{name}/{}",
                c.name
            );
        }
    }
}

#[tokio::test]
#[ignore = "needs a cluster"]
async fn an_account_created_through_the_web_role_becomes_active_through_the_broker() {
    let client = client().await;
    example_system();
    let base = forward_service(&client, NS, "ecommerce-account-web", 8080)
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let email = format!("e2e-{}@example.com", std::process::id());
    let created = http
        .post(format!("{base}/v1/accounts"))
        .json(&json!({"firstName": "End", "lastName": "ToEnd", "email": email}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let account: Value = created.json().await.unwrap();
    let id = account["accountId"].as_str().unwrap().to_owned();
    let url = format!("{base}/v1/accounts/{id}");
    wait_for(
        Duration::from_secs(90),
        "the account to become ACTIVE",
        || async { Ok(get_json(&http, &url).await.unwrap()["status"] == "ACTIVE") },
    )
    .await
    .unwrap();
    let events = get_json(&http, &format!("{url}/events")).await.unwrap();
    let types: Vec<_> = events["_embedded"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["eventType"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "ACCOUNT_CREATED",
            "ACCOUNT_PENDING",
            "ACCOUNT_CONFIRMED",
            "ACCOUNT_ACTIVATED"
        ]
    );
}

#[tokio::test]
#[ignore = "needs a cluster"]
async fn the_load_simulator_drives_every_order_to_a_final_state_and_the_counters_match_the_events()
{
    let client = client().await;
    example_system();
    let http = reqwest::Client::new();
    let counter = forward_service(&client, NS, "ecommerce-counter", 8080)
        .await
        .unwrap();
    // The counter counts in memory what it consumed since it started. Its
    // gap to the feeds before the run: none on a fresh installation; the
    // events of an earlier installation (PostgreSQL data kept) otherwise.
    let before = settled_gap(&client, &http, &counter).await;
    assert!(
        before.values().all(|n| *n > 0),
        "the counter counted events no feed holds: {before:?}"
    );
    let stream = example_streams(&client).get("ecommerce").await.unwrap();
    let created = stream.metadata.creation_timestamp.unwrap();
    let oldest = oldest_event_time(&client, &http).await.unwrap();
    if oldest.is_none_or(|t| t.0 >= created.0) {
        assert!(
            before.is_empty(),
            "every event is younger than the Stream, yet the counter missed some: {before:?}"
        );
    }
    let report = run_example_orders(&client, &http, 20).await.unwrap();
    assert_eq!(report["status"], "COMPLETED", "{report}");
    assert_eq!(report["requestErrors"], 0, "{report}");
    assert_eq!(report["ordersPosted"], 20, "{report}");
    let outcomes = &report["outcomes"];
    assert_eq!(outcomes["pending"], 0, "{report}");
    assert_eq!(outcomes["unresolved"], 0, "{report}");
    let succeeded = outcomes["ORDER_SUCCEEDED"].as_u64().unwrap();
    let failed = outcomes["ORDER_FAILED"].as_u64().unwrap();
    assert_eq!(succeeded + failed, 20, "{report}");
    assert!(succeeded >= 1, "{report}");
    assert_eq!(
        failed,
        report["ordersDesignedToFail"].as_u64().unwrap(),
        "stock was ample: {report}"
    );

    // The counter taps every destination: once the system is quiet it has
    // counted every event the feeds gained, by routing key, once.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let (feeds, counted) = feeds_and_counter(&client, &http, &counter).await;
        let after = gap(&feeds, &counted);
        if !feeds.is_empty() && after == before {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the counter does not match the event feeds after 120 s (uncounted before the run: {before:?})\nfeeds:   {feeds:?}\ncounter: {counted:?}"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

async fn feeds_and_counter(
    client: &kube::Client,
    http: &reqwest::Client,
    counter: &str,
) -> (BTreeMap<String, u64>, BTreeMap<String, u64>) {
    // The counter first: an event it has counted is already in its feed, so
    // a reading never shows the counter ahead of the feeds.
    let counted = get_json(http, &format!("{counter}/v1/counts"))
        .await
        .unwrap();
    let feeds = feed_counts(client, http).await.unwrap();
    (
        feeds,
        serde_json::from_value(counted["byType"].clone()).unwrap(),
    )
}

/// Per routing key, the feeds' count minus the counter's (keys at 0 left out).
fn gap(feeds: &BTreeMap<String, u64>, counted: &BTreeMap<String, u64>) -> BTreeMap<String, i64> {
    let keys: BTreeSet<&String> = feeds.keys().chain(counted.keys()).collect();
    keys.into_iter()
        .map(|k| {
            let n = |m: &BTreeMap<String, u64>| i64::try_from(*m.get(k).unwrap_or(&0)).unwrap();
            (k.clone(), n(feeds) - n(counted))
        })
        .filter(|(_, d)| *d != 0)
        .collect()
}

/// [`gap`] once two readings 2 s apart agree (nothing in flight; other tests
/// of this binary may be adding events meanwhile).
async fn settled_gap(
    client: &kube::Client,
    http: &reqwest::Client,
    counter: &str,
) -> BTreeMap<String, i64> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let (feeds, counted) = feeds_and_counter(client, http, counter).await;
    let mut last = gap(&feeds, &counted);
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (feeds, counted) = feeds_and_counter(client, http, counter).await;
        let now = gap(&feeds, &counted);
        if now == last {
            return now;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the gap between the counter and the feeds did not settle in 120 s: {now:?}"
        );
        last = now;
    }
}
