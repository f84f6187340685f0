//! The dashboard in a real browser (Debian's headless Chromium over
//! WebDriver, `eventflow_e2e::browser`), reached the way a user reaches it:
//! through a port-forward to its Service. What a user sees: the ecommerce
//! Stream's graph with its apps, roles, ready counts and destinations; a
//! worker that cannot run, and a deleted worker, shown not ready within
//! seconds (the overview of 100 Streams is in dashboard_scale.rs).
//! Each test saves screenshots under `<log dir>/screenshots/`.

use std::time::{Duration, Instant};

use eventflow_e2e::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, ResourceQuota};
use kube::api::{DeleteParams, ListParams, PostParams};
use serde_json::json;

const SECS_30: Duration = Duration::from_secs(30);

#[tokio::test]
#[ignore = "needs a cluster"]
async fn the_ecommerce_stream_page_draws_its_apps_roles_ready_counts_and_destinations() {
    example_system();
    let client = client().await;
    let browser = open_dashboard(&client, "/").await;
    let rows: Vec<String> = ["audit", "ecommerce", "load"]
        .iter()
        .map(|s| format!("{EXAMPLES_NS}/{s}"))
        .collect();
    let listed = rows_listed(&rows, &format!("{EXAMPLES_NS}/{BROKER}"));
    browser
        .wait_for_js(&listed, SECS_30, "the example Streams and broker rabbit")
        .await;
    let live = "document.querySelector('#live').textContent";
    browser
        .wait_for_js(
            &format!("{live} === 'live' || {live}"),
            Duration::from_secs(15),
            "live updates (server-sent events)",
        )
        .await;

    // As a user opens a Stream: a click on its row.
    let key = format!("{EXAMPLES_NS}/ecommerce");
    let graph = format!(r#"svg[data-graph="{key}"]"#);
    open_stream(&browser, &key, &graph).await;
    let ready = |web: u8, worker: u8| format!("web {web}/{web} · worker {worker}/{worker}");
    let shown = apps_shown(
        &key,
        json!({
            "account": [ready(1, 1), "healthy"], "order": [ready(1, 2), "healthy"],
            "payment": [ready(1, 1), "healthy"], "warehouse": [ready(1, 2), "healthy"],
            "counter": ["all 1/1", "healthy"],
        }),
    );
    // Other tests may scale or delete an example worker for a while.
    browser
        .wait_for_js(
            &shown,
            Duration::from_secs(120),
            "every ecommerce app ready",
        )
        .await;
    let destinations = data_of(&format!("{graph} g[data-destination]"), "destination");
    assert_eq!(
        browser.eval(&destinations).await.unwrap(),
        json!(["account", "order", "payment", "warehouse"])
    );
    let mut groups: Vec<String> = Vec::new();
    for d in ["account", "order", "payment", "warehouse"] {
        groups.extend([format!("{d}/counter"), format!("{d}/{d}")]);
    }
    groups.sort();
    assert_eq!(
        browser
            .eval(&data_of("#groups tr[data-group]", "group"))
            .await
            .unwrap(),
        json!(groups),
        "one row per consumer group, the counter's taps included"
    );
    let edges = format!("document.querySelectorAll('{graph} path[data-edge]').length");
    assert_eq!(
        browser.eval(&edges).await.unwrap(),
        json!(12),
        "4 publishing edges and 8 consuming ones"
    );
    assert_eq!(
        browser.eval("location.hash").await.unwrap(),
        json!(format!("#{key}"))
    );
    browser.save("dashboard-ecommerce").await;
    browser.save_of("#graph", "dashboard-ecommerce-graph").await;

    // The address is a link to the Stream: reloading it opens the graph.
    browser.client().refresh().await.unwrap();
    browser
        .wait_for_js(&shown, SECS_30, "the ecommerce graph after a reload")
        .await;
    browser.close().await.unwrap();
}

#[tokio::test]
#[ignore = "needs a cluster"]
async fn a_worker_whose_image_cannot_be_pulled_is_shown_not_ready_within_seconds() {
    example_system();
    let client = client().await;
    let ns = TestNamespace::create(&client, "dash-pull").await.unwrap();
    let namespace = ns.name.clone();
    let test = async {
        borrow_example_broker(&client, &namespace).await.unwrap();
        let browser = open_dashboard(&client, "/").await;
        let any_row = "document.querySelectorAll('#streams tbody tr').length > 0";
        browser.wait_for_js(any_row, SECS_30, "the overview").await;

        // The node has no registry: this image can never be pulled.
        let created = Instant::now();
        apply_json(&tally_stream(
            &namespace,
            "docker.io/eventflow/no-such-image:dev",
        ))
        .unwrap();
        let key = format!("{namespace}/tally");
        open_stream(&browser, &key, &format!(r#"svg[data-graph="{key}"]"#)).await;
        let worker_down = |web: &str| {
            apps_shown(
                &key,
                json!({"tally": [format!("web {web} · worker 0/1"), "!healthy"]}),
            )
        };
        let (starting, web_up) = (worker_down("0/1"), worker_down("1/1"));
        browser
            .wait_for_js(
                &format!("({starting}) === true || ({web_up})"),
                SECS_30.saturating_sub(created.elapsed()),
                "the worker shown 0/1 and its app not healthy, 30 s after the Stream was made",
            )
            .await;
        let after = created.elapsed().as_millis();
        println!(
            "a worker that cannot pull its image: shown 0/1 {after} ms after the Stream was made"
        );
        let row_bad = row_not_healthy(&key);
        browser
            .wait_for_js(
                &row_bad,
                Duration::from_secs(5),
                "the Stream's row not healthy",
            )
            .await;

        // The web role is fine and shown so; the worker still is not.
        browser
            .wait_for_js(
                &web_up,
                Duration::from_secs(180),
                "web 1/1 beside worker 0/1",
            )
            .await;
        let pods: Vec<Pod> = ns
            .api::<Pod>()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items;
        let waiting: Vec<String> = pods
            .iter()
            .flat_map(|p| {
                p.status
                    .iter()
                    .flat_map(|s| s.container_statuses.iter().flatten())
            })
            .filter_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
            .collect();
        assert!(
            waiting.iter().any(|r| r.contains("ImagePull")),
            "the worker is not waiting for its image: {waiting:?}"
        );
        browser
            .wait_for_js(
                &row_bad,
                Duration::from_secs(5),
                "the Stream's row not healthy",
            )
            .await;
        browser.save("dashboard-worker-image-missing").await;
        browser.close().await.unwrap();
    };
    with_cleanup(test, || delete_streams_and_namespace(&namespace)).await;
}

/// A deleted worker's Deployment is back within a second or two (the
/// operator restores it) and its new pod is ready a few seconds later: too
/// short a window to catch without a race. So a quota first stops any new
/// pod in the namespace (the running ones stay): the restored worker then
/// stays unready while the test looks, and is ready again once the quota
/// goes — what a user sees when a worker is deleted and cannot come back.
#[tokio::test]
#[ignore = "needs a cluster"]
async fn a_deleted_worker_is_shown_not_ready_within_seconds_and_ready_again_once_it_runs() {
    example_system();
    let client = client().await;
    let ns = TestNamespace::create(&client, "dash-deleted")
        .await
        .unwrap();
    let namespace = ns.name.clone();
    let test = async {
        borrow_example_broker(&client, &namespace).await.unwrap();
        apply_json(&tally_stream(&namespace, &image("counter"))).unwrap();
        let key = format!("{namespace}/tally");
        let browser = open_dashboard(&client, &format!("/#{key}")).await;
        let running = apps_shown(&key, json!({"tally": ["web 1/1 · worker 1/1", "healthy"]}));
        browser
            .wait_for_js(
                &running,
                Duration::from_secs(180),
                "the tally Stream running",
            )
            .await;

        let quotas = ns.api::<ResourceQuota>();
        let quota = json!({"metadata": {"name": "no-new-pods"}, "spec": {"hard": {"pods": "1"}}});
        let quota: ResourceQuota = serde_json::from_value(quota).unwrap();
        quotas.create(&PostParams::default(), &quota).await.unwrap();
        wait_for(SECS_30, "the quota's usage", || async {
            let status = quotas.get("no-new-pods").await?.status;
            Ok(status
                .and_then(|s| s.used)
                .is_some_and(|u| u.contains_key("pods")))
        })
        .await
        .unwrap();

        let deployments = ns.api::<Deployment>();
        let deleted = Instant::now();
        deployments
            .delete("tally-tally-worker", &DeleteParams::default())
            .await
            .unwrap();
        let down = apps_shown(&key, json!({"tally": ["web 1/1 · worker 0/1", "!healthy"]}));
        browser
            .wait_for_js(&down, SECS_30, "the deleted worker shown 0/1")
            .await;
        let after = deleted.elapsed().as_millis();
        println!("a deleted worker: shown 0/1 {after} ms after the deletion");
        let row_bad = row_not_healthy(&key);
        browser
            .wait_for_js(
                &row_bad,
                Duration::from_secs(5),
                "the Stream's row not healthy",
            )
            .await;
        let restored = deployments.get_opt("tally-tally-worker").await.unwrap();
        assert!(
            restored.is_some_and(|d| d.metadata.deletion_timestamp.is_none()),
            "the operator has not restored the worker's Deployment"
        );
        browser.save("dashboard-worker-deleted").await;

        quotas
            .delete("no-new-pods", &DeleteParams::default())
            .await
            .unwrap();
        let lifted = Instant::now();
        browser
            .wait_for_js(
                &running,
                Duration::from_secs(180),
                "the worker shown ready again",
            )
            .await;
        let after = lifted.elapsed().as_millis();
        println!("the restored worker: shown ready {after} ms after the quota went");
        browser.close().await.unwrap();
    };
    with_cleanup(test, || delete_streams_and_namespace(&namespace)).await;
}
