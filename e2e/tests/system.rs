//! The whole system on a real cluster, the way a user meets it: the Helm
//! chart installs the operator, `kubectl apply -f examples/` brings up the
//! broker, PostgreSQL and the Streams, and traffic goes through the web
//! roles by port-forward. The same binary runs on the local node and on kind.

use std::collections::BTreeMap;
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
    let _no_restart = COUNTER_RESTART.read().await;
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
        // BrokerUsers True: every app connects as its own broker user.
        for t in [
            "BrokerReady",
            "TopologyReady",
            "AppsReady",
            "Ready",
            "BrokerUsers",
        ] {
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
    let _no_restart = COUNTER_RESTART.read().await;
    let ns = Api::<Namespace>::all(client.clone()).get(NS).await.unwrap();
    let labels = ns.metadata.labels.unwrap_or_default();
    assert_eq!(
        labels
            .get("pod-security.kubernetes.io/enforce")
            .map(String::as_str),
        Some("restricted")
    );
    // Every pod but the network test's short-lived probes.
    let pods = Api::<Pod>::namespaced(client, NS)
        .list(&kube::api::ListParams::default().labels("app.kubernetes.io/name!=network-probe"))
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

/// The broker's answer to one operation: `Ok`, or its reply code (403 = ACCESS_REFUSED).
async fn answer<T>(op: impl std::future::Future<Output = lapin::Result<T>>) -> Result<(), u16> {
    match op.await {
        Ok(_) => Ok(()),
        Err(e) => match e.kind() {
            lapin::ErrorKind::ProtocolError(amqp) => Err(amqp.get_id()),
            other => panic!("not a broker refusal: {other:?}"),
        },
    }
}

#[tokio::test]
#[ignore = "needs a cluster"]
async fn every_app_runs_as_its_own_broker_user_and_the_broker_refuses_it_other_streams_objects() {
    let client = client().await;
    example_system();
    // Every example Deployment reads its broker credentials from its app's own Secret.
    let deployments = Api::<Deployment>::namespaced(client.clone(), NS)
        .list(&Default::default())
        .await
        .unwrap();
    for d in &deployments.items {
        let labels = d.metadata.labels.clone().unwrap_or_default();
        let (Some(stream), Some(app)) = (
            labels.get("eventflow.dev/stream"),
            labels.get("eventflow.dev/app"),
        ) else {
            continue;
        };
        let container = &d
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0];
        let secrets: Vec<_> = container
            .env
            .iter()
            .flatten()
            .filter(|e| e.name == "EVENTFLOW_BROKER_URI" || e.name.starts_with("SPRING_RABBITMQ_"))
            .filter_map(|e| e.value_from.as_ref()?.secret_key_ref.as_ref())
            .map(|s| s.name.as_str())
            .collect();
        assert!(
            !secrets.is_empty()
                && secrets
                    .iter()
                    .all(|s| *s == format!("{stream}-{app}-broker")),
            "{}: {secrets:?}",
            d.metadata.name.as_deref().unwrap_or_default()
        );
    }
    // The audit Stream's app, as its own user: it may check its own queue,
    // and the broker refuses it ecommerce's exchange and ecommerce's group
    // queue of the very destination it taps (a refusal changes nothing).
    let conn = app_broker_connection(&client, "audit", "order-audit").await;
    let ch = || async { conn.create_channel().await.unwrap() };
    let passive = lapin::options::QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let table = lapin::types::FieldTable::default;
    let own = ch().await;
    assert_eq!(
        answer(own.queue_declare(
            format!("{NS}.order.audit").as_str().into(),
            passive,
            table()
        ))
        .await,
        Ok(())
    );
    let publish = ch().await;
    publish.confirm_select(Default::default()).await.unwrap();
    let refused = async {
        publish
            .basic_publish(
                format!("{NS}.order").as_str().into(),
                "order.ORDER_CREATED".into(),
                Default::default(),
                b"{}",
                Default::default(),
            )
            .await?
            .await
    };
    assert_eq!(
        answer(refused).await,
        Err(403),
        "publish to ecommerce's exchange"
    );
    let consume = ch().await;
    assert_eq!(
        answer(consume.basic_consume(
            format!("{NS}.order.order").as_str().into(),
            "e2e-refused".into(),
            Default::default(),
            table(),
        ))
        .await,
        Err(403),
        "consume ecommerce's order group"
    );
    let _ = conn.close(200, "bye".into()).await;
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
    let counter = counter_base(&client).await.unwrap();
    // The counter reads every context's feed at start (COUNTER_FEEDS), so
    // whatever it missed while away (an earlier installation's events
    // included) it counts: once every feed is read, it matches them.
    wait_counter_matches_feeds(&client, &http, &counter, SETTLE)
        .await
        .unwrap();
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
    // counted every event the feeds hold, by routing key, once.
    let before = wait_counter_matches_feeds(&client, &http, &counter, SETTLE)
        .await
        .unwrap();
    for key in [
        "order.ORDER_CREATED",
        "order.ORDER_SUCCEEDED",
        "order.ORDER_FAILED",
    ] {
        assert!(
            before.get(key).copied().unwrap_or(0) > 0,
            "no {key}: {before:?}"
        );
    }

    // A restarted counter starts from nothing and reads the feeds again: it
    // shows the same totals (more only if other tests added events meanwhile,
    // which it must then count too). No snapshot test looks at the example
    // pods while the counter's is replaced.
    let restarted = {
        let _restarting = COUNTER_RESTART.write().await;
        let pod = restart_counter(&client, Duration::from_secs(180))
            .await
            .unwrap();
        await_stream(&client, NS, "ecommerce", "Ready", SETTLE, |s| {
            Ok(every_condition_true(s))
        })
        .await
        .unwrap();
        let counter = counter_base(&client).await.unwrap();
        wait_counter_matches_feeds(&client, &http, &counter, SETTLE)
            .await
            .unwrap_or_else(|e| panic!("the restarted counter ({pod}): {e:#}"))
    };
    for (key, n) in &before {
        let now = restarted.get(key).copied().unwrap_or(0);
        assert!(
            now >= *n,
            "the restarted counter lost {key}: {now} < {n}\nbefore:    {before:?}\nrestarted: {restarted:?}"
        );
    }
    let total = |m: &BTreeMap<String, u64>| m.values().sum::<u64>();
    println!(
        "counter restarted: {} events before, {} after (the feeds' totals both times)",
        total(&before),
        total(&restarted)
    );
}

/// How long the counter may take to match the feeds: a counter that has
/// just started reads every feed whole first (about 100 events a request),
/// and the node's PostgreSQL keeps the events of earlier runs.
const SETTLE: Duration = Duration::from_secs(300);

/// Held (write) while the counter's pod is replaced; the tests that look at
/// every example pod or Stream condition at one moment hold it (read).
static COUNTER_RESTART: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// Every condition of a Stream True at its generation, as a settled Stream.
fn every_condition_true(s: &kube::api::DynamicObject) -> bool {
    let generation = s.metadata.generation;
    s.data["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .all(|c| c["status"] == "True" && c["observedGeneration"].as_i64() == generation)
    })
}

/// A one-shot pod in `namespace` (the account image: Debian's bash) that
/// tries three times to open a TCP connection to `host:port`; whether it could.
async fn can_connect(
    client: &kube::Client,
    namespace: &str,
    pod: &str,
    host: &str,
    port: u16,
) -> bool {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let _ = pods.delete(pod, &Default::default()).await;
    wait_for(
        Duration::from_secs(60),
        "the previous probe pod to go",
        || async { Ok(pods.get_opt(pod).await?.is_none()) },
    )
    .await
    .unwrap();
    let script = format!(
        "for i in 1 2 3; do if timeout 3 bash -c 'exec 3<>/dev/tcp/{host}/{port}'; then echo OPEN; exit 0; fi; sleep 1; done; echo CLOSED; exit 1"
    );
    let probe: Pod = serde_json::from_value(json!({
        "metadata": {"name": pod, "labels": {"app.kubernetes.io/name": "network-probe"}},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{
                "name": "probe",
                "image": image("account"),
                "imagePullPolicy": "IfNotPresent",
                "command": ["bash", "-c", script],
                "securityContext": restricted_container_security(),
            }]
        }
    }))
    .unwrap();
    pods.create(&Default::default(), &probe).await.unwrap();
    let (phase, log) = wait_pod_finished(&pods, pod, Duration::from_secs(120))
        .await
        .unwrap();
    let _ = pods.delete(pod, &Default::default()).await;
    assert!(
        log.contains("OPEN") || log.contains("CLOSED"),
        "probe {namespace}/{pod} ended {phase} without a verdict: {log}"
    );
    phase == "Succeeded"
}

#[tokio::test]
#[ignore = "needs a cluster"]
async fn a_pod_outside_the_stream_cannot_reach_its_web_role_and_the_operators_namespace_can() {
    let client = client().await;
    example_system();
    // The Stream's NetworkPolicy, as the operator wrote it.
    let policy = kubectl(&[
        "-n",
        NS,
        "get",
        "networkpolicy",
        "ecommerce",
        "-o",
        "jsonpath={.spec.podSelector.matchLabels}",
    ]);
    assert!(
        policy.contains("\"eventflow.dev/stream\":\"ecommerce\""),
        "{policy}"
    );
    let web = format!("ecommerce-account-web.{NS}.svc");
    assert!(
        !can_connect(&client, NS, "outsider", &web, 8080).await,
        "a pod of the namespace that belongs to no Stream reached the account web role"
    );
    assert!(
        can_connect(&client, SYSTEM_NS, "operator-side", &web, 8080).await,
        "the operator's namespace (the dashboard's passage) must reach it"
    );
    // A Stream that names the web role in its environment (the load
    // simulator) is let in: its runs complete (the other tests), and the
    // policy lists it.
    let from = kubectl(&[
        "-n",
        NS,
        "get",
        "networkpolicy",
        "ecommerce",
        "-o",
        "jsonpath={.spec.ingress}",
    ]);
    assert!(from.contains("\"eventflow.dev/stream\":\"load\""), "{from}");
}
