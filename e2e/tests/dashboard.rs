//! The dashboard the chart installs, read the way the page reads it: over
//! a port-forward to its Service, its JSON API shows every example Stream
//! and EventBroker, the ecommerce Stream's graph with its apps, roles,
//! destinations and consumer groups carrying the broker's readings, and a
//! 404 problem naming a Stream that does not exist. The page itself is
//! served by the dashboard (no CDN).

use std::time::{Duration, Instant};

use eventflow_e2e::*;
use serde_json::Value;

const DASHBOARD: &str = "eventflow-dashboard";

async fn dashboard() -> (String, reqwest::Client) {
    example_system();
    let client = client().await;
    let base = forward_service(&client, OPERATOR_NS, DASHBOARD, 8080)
        .await
        .unwrap_or_else(|e| panic!("no port-forward to svc/{DASHBOARD}: {e:#}"));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    (base, http)
}

async fn get_json(http: &reqwest::Client, url: &str) -> (u16, Value) {
    let response = http
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

fn names(list: &Value, field: &str) -> Vec<String> {
    list.as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i[field].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
#[ignore = "needs a cluster"]
async fn the_dashboard_shows_every_example_stream_and_the_ecommerce_graph_with_its_readings() {
    let (base, http) = dashboard().await;
    let page = http
        .get(format!("{base}/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("app.js"), "{page}");
    assert!(
        !page.contains("https://"),
        "the page loads nothing from elsewhere"
    );

    let (status, overview) = get_json(&http, &format!("{base}/api/overview")).await;
    assert_eq!(status, 200, "{overview}");
    let streams = names(&overview["streams"], "name");
    for s in ["ecommerce", "audit", "load"] {
        assert!(
            streams.contains(&s.to_owned()),
            "{s} missing from {streams:?}"
        );
    }
    assert!(names(&overview["brokers"], "name").contains(&"rabbit".to_owned()));

    // The broker's readings reach status.groups on the operator's next
    // backlog pass (every few seconds): wait for them, bounded.
    let url = format!("{base}/api/streams/{EXAMPLES_NS}/ecommerce");
    let deadline = Instant::now() + Duration::from_secs(60);
    let detail = loop {
        let (status, detail) = get_json(&http, &url).await;
        assert_eq!(status, 200, "{detail}");
        let consuming: Vec<&Value> = detail["graph"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "consumes")
            .collect();
        if !consuming.is_empty()
            && consuming
                .iter()
                .all(|e| e["readings"]["consumers"].as_i64().is_some_and(|c| c > 0))
        {
            break detail;
        }
        assert!(
            Instant::now() < deadline,
            "consumer groups without readings after 60 s: {detail}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let graph = &detail["graph"];
    let apps = names(&graph["apps"], "name");
    for app in ["account", "order", "payment", "warehouse", "counter"] {
        assert!(
            apps.contains(&app.to_owned()),
            "{app} missing from {apps:?}"
        );
    }
    let destinations = names(&graph["destinations"], "name");
    assert_eq!(destinations, ["account", "order", "payment", "warehouse"]);
    let order = graph["apps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "order")
        .unwrap();
    let roles = names(&order["roles"], "role");
    assert_eq!(roles, ["web", "worker"]);
    assert_eq!(order["roles"][1]["replicas"], 2, "{order}");
    let counter_groups = graph["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["to"] == "app:counter")
        .count();
    assert_eq!(counter_groups, 4, "the counter taps all four destinations");
    assert_eq!(detail["row"]["phase"], "Running");

    let (status, problem) =
        get_json(&http, &format!("{base}/api/streams/{EXAMPLES_NS}/no-such")).await;
    assert_eq!(status, 404);
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("no-such")),
        "{problem}"
    );
}
