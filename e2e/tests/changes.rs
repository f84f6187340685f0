//! The example system while it changes under a user's feet: a rolling update
//! of every saga worker to a second tag of its image in the middle of a load
//! run, then `kubectl eventflow rollback`, loses and doubles no event (and
//! the revision history tells the story), and a deleted web pod (then the
//! PostgreSQL pod itself) loses no data. The tests here take turns: each
//! disturbs what the other reads.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use eventflow_e2e::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, DynamicObject};
use kube::{Api, Client};
use serde_json::{Value, json};
use tokio::sync::Mutex;

const NS: &str = EXAMPLES_NS;
static TURN: Mutex<()> = Mutex::const_new(());

fn last_position(events: &[Value]) -> i64 {
    events
        .iter()
        .filter_map(|e| e["position"].as_i64())
        .max()
        .unwrap_or(0)
}

/// Event types per aggregate of `kind` that belongs to one of `orders` (one
/// of its events names the order), counted. Other traffic — a demo's load
/// run, say — may share the feeds.
fn by_aggregate(
    events: &[Value],
    kind: &str,
    orders: &BTreeSet<String>,
) -> BTreeMap<String, BTreeMap<String, u32>> {
    let of_kind = || events.iter().filter(|e| e["aggregateType"] == kind);
    let ours: BTreeSet<&str> = of_kind()
        .filter(|e| {
            let order = e["payload"]["orderId"].as_str().unwrap_or_default();
            orders.contains(order)
        })
        .filter_map(|e| e["aggregateId"].as_str())
        .collect();
    let mut out: BTreeMap<String, BTreeMap<String, u32>> = BTreeMap::new();
    for e in of_kind().filter(|e| ours.contains(e["aggregateId"].as_str().unwrap_or_default())) {
        let types = out
            .entry(e["aggregateId"].as_str().unwrap().to_owned())
            .or_default();
        *types
            .entry(e["eventType"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    out
}

/// Asserts no event type shows up twice in one aggregate, except `repeated`
/// which shows up exactly `times`.
fn assert_each_once(
    aggregates: &BTreeMap<String, BTreeMap<String, u32>>,
    repeated: Option<(&str, u32)>,
) {
    for (id, types) in aggregates {
        for (t, n) in types {
            let expected = match repeated {
                Some((r, times)) if r == t => times,
                _ => 1,
            };
            assert_eq!(*n, expected, "{id} has {t} {n} times: {types:?}");
        }
    }
}

const WORKERS: [(usize, &str); 3] = [(1, "order"), (2, "payment"), (3, "warehouse")];

/// A JSON patch moving the saga workers between the two tags of their image:
/// to `<tag>-next` when they run the app's image, back to it otherwise.
/// Returns the patch and the image each worker runs afterwards.
fn toggle_worker_images(stream: &DynamicObject) -> (Value, Vec<(&'static str, String)>) {
    let mut ops = Vec::new();
    let mut images = Vec::new();
    for (i, app) in WORKERS {
        let spec = &stream.data["spec"]["apps"][i];
        assert_eq!(spec["name"], app, "apps[{i}] of ecommerce");
        let path = format!("/spec/apps/{i}/worker/image");
        ops.push(json!({"op": "test", "path": format!("/spec/apps/{i}/name"), "value": app}));
        let base = spec["image"].as_str().unwrap().to_owned();
        if spec["worker"]["image"].is_string() {
            ops.push(json!({"op": "remove", "path": path}));
            images.push((app, base));
        } else {
            let next = format!("{base}-next");
            ops.push(json!({"op": "add", "path": path, "value": next}));
            images.push((app, next));
        }
    }
    (Value::Array(ops), images)
}

/// Whether the Stream's status shows the workers of this generation rolled
/// out; `progress` is set when it shows a rollout under way.
fn rolled_out(stream: &DynamicObject, progress: &mut Vec<String>) -> bool {
    let status = &stream.data["status"];
    if status["observedGeneration"] != json!(stream.metadata.generation) {
        return false;
    }
    let apps_ready = status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "AppsReady")
        .cloned()
        .unwrap_or_default();
    if apps_ready["status"] == "False" {
        progress.push(format!(
            "AppsReady False ({}): {}",
            apps_ready["reason"], apps_ready["message"]
        ));
    }
    let mut done = apps_ready["status"] == "True";
    for (_, app) in WORKERS {
        let w = status["workloads"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|w| w["app"] == app && w["role"] == "worker")
            .cloned()
            .unwrap_or_default();
        let (replicas, updated) = (w["replicas"].as_i64(), w["updatedReplicas"].as_i64());
        let old = w["oldReplicas"].as_i64().unwrap_or(0);
        if updated < replicas || old > 0 {
            progress.push(format!(
                "{app} worker: {updated:?} of {replicas:?} updated, {old} old"
            ));
            done = false;
        }
    }
    done
}

#[tokio::test]
#[ignore = "needs a cluster"]
async fn a_rolling_update_of_every_saga_worker_under_load_loses_and_doubles_no_event() {
    let _turn = TURN.lock().await;
    let client = client().await;
    example_system();
    let http = reqwest::Client::new();
    let mut bases = BTreeMap::new();
    let mut starts = BTreeMap::new();
    for app in ["order", "payment", "warehouse"] {
        let base = forward_service(&client, NS, &format!("ecommerce-{app}-web"), 8080)
            .await
            .unwrap();
        starts.insert(
            app,
            last_position(&feed_events(&http, &base, 0).await.unwrap()),
        );
        bases.insert(app, base);
    }

    let orders = 120;
    let units = 2;
    let plan = json!({"orders": orders, "ratePerSecond": 3, "failureShare": 0.25, "accounts": 3,
                      "products": 2, "stockPerProduct": 200, "unitsPerOrder": units,
                      "followSeconds": 240});
    let sim = forward_service(&client, NS, "load-simulator-web", 8080)
        .await
        .unwrap();
    let load = tokio::spawn({
        let http = http.clone();
        async move { run_load(&http, &sim, &plan, Duration::from_secs(300)).await }
    });
    // A few orders in flight, then the new tag.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let stream = example_streams(&client).get("ecommerce").await.unwrap();
    let first = current_revision(&stream);
    let (patch, images) = toggle_worker_images(&stream);
    let (_, back) = toggle_worker_images(&{
        let mut next = stream.clone();
        json_patch(&mut next.data, &patch);
        next
    });
    let cause = "e2e: saga workers to their other image tag";
    run_tool(
        "kubectl",
        &[
            "-n",
            NS,
            "annotate",
            "--overwrite",
            "stream",
            "ecommerce",
            &format!("eventflow.dev/change-cause={cause}"),
        ],
        None,
    )
    .unwrap();
    patch_example_stream("ecommerce", &patch).unwrap();
    let (rolled, _) = await_rollout(&client, &images, true).await;
    assert_eq!(
        current_revision(&rolled),
        first + 1,
        "the update is a new revision"
    );

    // Back with `kubectl eventflow rollback`: a new revision again (numbers
    // only grow), with the earlier spec, rolled out the same way.
    let started = std::time::Instant::now();
    println!("{}", eventflow(NS, &["rollback", "ecommerce"]).unwrap());
    let (rolled_back, _) = await_rollout(&client, &back, false).await;
    println!(
        "rollback -> Running: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(current_revision(&rolled_back), first + 2);
    for (i, app) in WORKERS {
        let image = |s: &DynamicObject| s.data["spec"]["apps"][i]["worker"]["image"].clone();
        assert_eq!(
            image(&rolled_back),
            image(&stream),
            "{app}: the stored spec is the rolled-back one"
        );
    }
    let history = eventflow(NS, &["history", "ecommerce"]).unwrap();
    println!("{history}");
    for told in [cause, &format!("rollback to revision {first}")] {
        assert!(
            history.contains(told),
            "history does not tell {told:?}:\n{history}"
        );
    }

    // Every order the run posted ended as designed.
    let report = load.await.unwrap().unwrap();
    assert_eq!(report["status"], "COMPLETED", "{report}");
    assert_eq!(report["ordersPosted"], orders, "{report}");
    assert_eq!(report["requestErrors"], 0, "{report}");
    assert_eq!(report["outcomes"]["pending"], 0, "{report}");
    assert_eq!(report["outcomes"]["unresolved"], 0, "{report}");
    let failed = report["outcomes"]["ORDER_FAILED"].as_u64().unwrap();
    let succeeded = report["outcomes"]["ORDER_SUCCEEDED"].as_u64().unwrap();
    assert_eq!(failed, report["ordersDesignedToFail"].as_u64().unwrap());
    assert_eq!(succeeded + failed, orders);

    // No event lost or applied twice: each order, payment and reservation
    // of the run holds every event of its saga exactly once.
    let events = |app: &'static str| {
        let (http, base, after) = (&http, bases[app].clone(), starts[app]);
        async move { feed_events(http, &base, after).await.unwrap() }
    };
    // The run's orders are those of its products, `sim-<first 8 of run id>-p<n>`.
    let product_prefix = format!("sim-{}-", &report["runId"].as_str().unwrap()[..8]);
    let order_events = events("order").await;
    let run_orders: BTreeSet<String> = order_events
        .iter()
        .filter(|e| e["eventType"] == "ORDER_CREATED")
        .filter(|e| {
            e["payload"]["lineItems"][0]["productId"]
                .as_str()
                .is_some_and(|p| p.starts_with(&product_prefix))
        })
        .filter_map(|e| e["aggregateId"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        run_orders.len() as u64,
        orders,
        "orders of the run in the feed"
    );
    let orders_seen = by_aggregate(&order_events, "order", &run_orders);
    assert_eq!(orders_seen.len() as u64, orders, "orders in the feed");
    assert_each_once(&orders_seen, Some(("RESERVATION_ADDED", units)));
    for (id, types) in &orders_seen {
        let ends = types.get("ORDER_SUCCEEDED").or(types.get("ORDER_FAILED"));
        assert_eq!(ends, Some(&1), "{id}: {types:?}");
    }
    let payments = by_aggregate(&events("payment").await, "payment", &run_orders);
    assert_eq!(payments.len() as u64, orders, "one payment per order");
    assert_each_once(&payments, None);
    let reservations = by_aggregate(&events("warehouse").await, "reservation", &run_orders);
    assert_eq!(reservations.len() as u64, orders * u64::from(units));
    assert_each_once(&reservations, None);

    // The warehouse sold exactly the units of the orders that succeeded.
    let warehouse = report["warehouseId"].as_str().unwrap();
    let stock = get_json(
        &http,
        &format!("{}/v1/warehouses/{warehouse}/inventory", bases["warehouse"]),
    )
    .await
    .unwrap();
    let total = |field: &str| -> u64 {
        stock["products"]
            .as_object()
            .unwrap()
            .values()
            .map(|p| p[field].as_u64().unwrap())
            .sum()
    };
    assert_eq!(total("held"), 0, "{stock}");
    assert_eq!(total("sold"), succeeded * u64::from(units), "{stock}");
    assert_eq!(
        total("created"),
        report["itemsStocked"].as_u64().unwrap(),
        "{stock}"
    );
}

fn current_revision(stream: &DynamicObject) -> i64 {
    stream.data["status"]["currentRevision"]
        .as_i64()
        .unwrap_or_else(|| panic!("no currentRevision: {}", stream.data["status"]))
}

/// Applies the `add`/`remove` operations of a JSON patch to `doc` (`test` ops are checks).
fn json_patch(doc: &mut Value, patch: &Value) {
    for op in patch.as_array().unwrap() {
        let path = op["path"].as_str().unwrap();
        let (parent, key) = path.rsplit_once('/').unwrap();
        let parent = doc.pointer_mut(parent).unwrap();
        match op["op"].as_str().unwrap() {
            "add" => parent[key] = op["value"].clone(),
            "remove" => {
                parent.as_object_mut().unwrap().remove(key);
            }
            _ => {}
        }
    }
}

/// Waits until the workers of the Stream's generation rolled out (the status
/// showing it under way first when `show_progress`), then checks each runs
/// its image; returns the Stream.
async fn await_rollout(
    client: &Client,
    images: &[(&'static str, String)],
    show_progress: bool,
) -> (DynamicObject, Vec<String>) {
    let mut progress = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    let rolled = loop {
        let s = example_streams(client).get("ecommerce").await.unwrap();
        if rolled_out(&s, &mut progress) {
            break s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the rollout did not finish in 180 s: {}",
            s.data["status"]
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    if show_progress {
        assert!(
            !progress.is_empty(),
            "the Stream's status never showed the rollout under way"
        );
    }
    eprintln!(
        "rollout as the status showed it: {:?}",
        progress.iter().take(5).collect::<Vec<_>>()
    );
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    for (app, image) in images {
        let d = deployments
            .get(&format!("ecommerce-{app}-worker"))
            .await
            .unwrap();
        let running = d.spec.unwrap().template.spec.unwrap().containers[0]
            .image
            .clone();
        assert_eq!(running.as_deref(), Some(image.as_str()), "{app} worker");
    }
    (rolled, progress)
}

/// Deletes the pods matching `selector` and waits until a new one (a new
/// uid: a StatefulSet's pod comes back under its old name) is Ready.
async fn replace_pods(client: &Client, selector: &str) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let old: Vec<(String, String)> = pods
        .list(&kube::api::ListParams::default().labels(selector))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|p| Some((p.metadata.name?, p.metadata.uid?)))
        .collect();
    assert!(!old.is_empty(), "no pod matches {selector}");
    for (name, _) in &old {
        pods.delete(name, &DeleteParams::default()).await.unwrap();
    }
    wait_for(
        Duration::from_secs(180),
        &format!("a new Ready pod for {selector}"),
        || async {
            let list = pods
                .list(&kube::api::ListParams::default().labels(selector))
                .await?;
            Ok(list.items.iter().any(|p| {
                !old.iter()
                    .any(|(_, uid)| p.metadata.uid.as_ref() == Some(uid))
                    && p.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            }))
        },
    )
    .await
    .unwrap();
}

/// The account as the web role serves it now, retried while the pods behind
/// it come back.
async fn account_now(client: &Client, http: &reqwest::Client, id: &str) -> (Value, Value) {
    let mut last = String::new();
    for _ in 0..60 {
        let read = async {
            let base = forward_service(client, NS, "ecommerce-account-web", 8080).await?;
            let account: Value = http
                .get(format!("{base}/v1/accounts/{id}"))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            let events: Value = http
                .get(format!("{base}/v1/accounts/{id}/events"))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            anyhow::Ok((account, events))
        };
        match read.await {
            Ok(found) => return found,
            Err(e) => last = format!("{e:#}"),
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    panic!("account {id} not readable after 120 s: {last}");
}

/// A representation without its links and its embedded commands document
/// (links too): they name the port-forward used.
fn without_links(doc: &Value) -> Value {
    let mut doc = doc.clone();
    if let Some(map) = doc.as_object_mut() {
        map.remove("_links");
        map.remove("_embedded");
    }
    doc
}

fn event_ids(events: &Value) -> Vec<String> {
    events["_embedded"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["eventId"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
#[ignore = "needs a cluster"]
async fn a_deleted_web_pod_and_a_deleted_postgres_pod_lose_no_account() {
    let _turn = TURN.lock().await;
    let client = client().await;
    example_system();
    let http = reqwest::Client::new();
    let base = forward_service(&client, NS, "ecommerce-account-web", 8080)
        .await
        .unwrap();
    let created = http
        .post(format!("{base}/v1/accounts"))
        .json(&json!({"firstName": "Durable", "lastName": "Data",
                      "email": format!("durable-{}@example.com", std::process::id())}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let id = created.json::<Value>().await.unwrap()["accountId"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_for(
        Duration::from_secs(90),
        "the account to become ACTIVE",
        || async {
            Ok(get_json(&http, &format!("{base}/v1/accounts/{id}")).await?["status"] == "ACTIVE")
        },
    )
    .await
    .unwrap();
    let (before, before_events) = account_now(&client, &http, &id).await;
    assert_eq!(event_ids(&before_events).len(), 4);

    // The web role keeps nothing of its own: a new pod serves the same account.
    replace_pods(
        &client,
        "eventflow.dev/stream=ecommerce,eventflow.dev/app=account,eventflow.dev/role=web",
    )
    .await;
    let (after, after_events) = account_now(&client, &http, &id).await;
    assert_eq!(without_links(&after), without_links(&before));
    assert_eq!(event_ids(&after_events), event_ids(&before_events));

    // PostgreSQL keeps it on its volume across its own pod's deletion.
    replace_pods(&client, "app.kubernetes.io/name=postgres").await;
    let (after, after_events) = account_now(&client, &http, &id).await;
    assert_eq!(after["status"], "ACTIVE");
    assert_eq!(after["email"], before["email"]);
    assert_eq!(event_ids(&after_events), event_ids(&before_events));
}
