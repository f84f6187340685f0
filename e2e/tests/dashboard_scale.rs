//! The dashboard's overview of 100 Streams in a real browser (as
//! dashboard_browser.rs): all rows rendered, the time to the frame that
//! paints them and the page weight printed (never asserted), and one of
//! them opened with a click.

use std::time::Duration;

use eventflow_e2e::*;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use serde_json::json;

const SECS_30: Duration = Duration::from_secs(30);

const STREAMS: usize = 100;

#[tokio::test]
#[ignore = "needs a cluster"]
async fn the_overview_of_100_streams_renders_all_of_them_and_opens_one() {
    example_system();
    let client = client().await;
    let ns = TestNamespace::create(&client, "dash-many").await.unwrap();
    let namespace = ns.name.clone();
    let test = async {
        apply_json(&idle_streams(&namespace, STREAMS)).unwrap();
        let base = dashboard_url(&client).await;
        // The dashboard's cache holds them all before the page is timed.
        let http = reqwest::Client::new();
        wait_for(
            Duration::from_secs(120),
            "the API to list every Stream",
            || async {
                let o = get_json(&http, &format!("{base}/api/overview")).await?;
                let mine = o["streams"].as_array().map_or(0, |s| {
                    s.iter()
                        .filter(|s| s["namespace"] == json!(namespace))
                        .count()
                });
                Ok(mine == STREAMS)
            },
        )
        .await
        .unwrap();

        let browser = Browser::open().await;
        let prefix = format!("{namespace}/");
        browser
            .on_new_document(&render_clock(&prefix, STREAMS))
            .await
            .unwrap();
        browser.goto(&format!("{base}/")).await.unwrap();
        let count = format!(
            r#"document.querySelectorAll('#streams tbody tr[data-stream^="{prefix}"]').length"#
        );
        let all = format!("window.__frameAt !== undefined || {count}");
        browser.wait_for_js(&all, SECS_30, "all 100 rows").await;
        assert_eq!(browser.eval(&count).await.unwrap(), json!(STREAMS));
        let ms = |v: serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
        let frame = ms(browser.eval("window.__frameAt").await.unwrap());
        let rows = ms(browser.eval("window.__rowsAt").await.unwrap());
        let weight = browser.eval(PAGE_WEIGHT).await.unwrap();
        let total: u64 = weight
            .as_object()
            .map(|paths| paths.values().filter_map(|p| p["body"].as_u64()).sum())
            .unwrap_or_default();
        assert!(
            weight["/api/overview"]["body"].as_u64() > Some(0),
            "{weight}"
        );
        println!(
            "dashboard first render, {STREAMS} Streams: {frame:.0} ms (rows in the page at {rows:.0} ms)"
        );
        println!("dashboard page weight: {total} bytes ({weight})");
        browser.save("dashboard-100-streams").await;

        // One of them opens on a click, with its graph.
        let key = format!("{namespace}/s-042");
        let opened = detail_open(&key, "app", "d042");
        // The table is drawn anew on every update (100 Streams: about once
        // a second), which may swallow a click: a user clicks again.
        let row = format!(r#"#streams tr[data-stream="{key}"]"#);
        let lost = browser
            .click_until(&row, &opened, "the detail of s-042")
            .await;
        println!("clicks on a row lost to a redraw of the table: {lost}");
        // Below the 100 rows: the detail alone.
        browser
            .save_of("#detail", "dashboard-100-streams-detail")
            .await;
        let pods = ns.api::<Pod>().list(&ListParams::default()).await.unwrap();
        assert!(
            pods.items.is_empty(),
            "Streams without a broker started pods"
        );
        browser.close().await.unwrap();
    };
    with_cleanup(test, || delete_streams_and_namespace(&namespace)).await;
}
