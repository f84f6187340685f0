//! A load run started from the dashboard in a real browser, and the
//! counter's charts growing with it: a user opens the `load` Stream, fills
//! the run form, starts the run, follows it to COMPLETED in the runs table,
//! then opens `ecommerce` and sees the run's orders in the counter's charts
//! (by type and by destination) and its grand total. Screenshots of both
//! panels are saved under `<log dir>/screenshots/`.

use std::time::Duration;

use eventflow_e2e::*;
use serde_json::{Value, json};

const ORDERS: u64 = 20;

/// The counter panel's grand total, or what the panel says instead.
const COUNTER_TOTAL: &str = r#"(() => {
  const status = document.querySelector('[data-counter] [data-counter-total]');
  return status ? Number(status.dataset.counterTotal) : null;
})()"#;

/// True once the chart `kind` has series `name` with at least `$AT_LEAST`
/// events; else what it shows.
fn series_at_least(kind: &str, name: &str, at_least: u64) -> String {
    js(
        r#"(() => {
  const line = document.querySelector(`[data-chart="${$KIND}"] [data-series="${$NAME}"]`);
  const total = line ? Number(line.dataset.total) : null;
  return (total !== null && total >= $AT_LEAST) || { total, button: document.querySelector('button.on')?.dataset.window };
})()"#,
        &[
            ("KIND", json!(kind)),
            ("NAME", json!(name)),
            ("AT_LEAST", json!(at_least)),
        ],
    )
}

#[tokio::test]
#[ignore = "needs a cluster"]
async fn a_load_run_started_from_the_page_completes_and_the_counter_charts_grow_with_it() {
    example_system();
    let client = client().await;
    let browser = open_dashboard(&client, "/").await;

    // The counter's total before the run, read on the ecommerce page.
    open_stream(
        &browser,
        &format!("{EXAMPLES_NS}/ecommerce"),
        "[data-counter] [data-counter-total]",
    )
    .await;
    let before = browser.eval(COUNTER_TOTAL).await.unwrap();
    let before = before
        .as_u64()
        .unwrap_or_else(|| panic!("no counter total on the page: {before}"));

    // The run, started from the load simulator's panel.
    open_stream(&browser, &format!("{EXAMPLES_NS}/load"), "form.run-form").await;
    browser
        .fill("form.run-form input[name=orders]", &ORDERS.to_string())
        .await
        .unwrap();
    browser
        .fill("form.run-form input[name=ratePerSecond]", "10")
        .await
        .unwrap();
    browser
        .fill("form.run-form input[name=failureShare]", "0")
        .await
        .unwrap();
    browser.click("[data-action=start-run]").await.unwrap();
    let started = "document.querySelector('[data-run-message]')?.dataset.started ?? document.querySelector('[data-run-message]')?.textContent";
    browser
        .wait_for_js(
            &format!("typeof ({started}) === 'string' && ({started}).length === 36 || ({started})"),
            Duration::from_secs(15),
            "the run to start",
        )
        .await;
    let run = browser.eval(started).await.unwrap();
    let run = run.as_str().unwrap().to_owned();
    let row = format!(r#"tr[data-run="{run}"]"#);
    let completed = js(
        r#"(() => { const r = document.querySelector($ROW); return (r && r.dataset.status === "COMPLETED") || (r ? r.textContent : "no row"); })()"#,
        &[("ROW", json!(row))],
    );
    browser
        .wait_for_js(
            &completed,
            Duration::from_secs(180),
            "the run to complete in the runs table",
        )
        .await;
    let cells: Value = browser
        .eval(&js(
            r#"(() => { const r = document.querySelector($ROW);
  return { posted: r.querySelector("[data-posted]").textContent, succeeded: Number(r.querySelector("[data-succeeded]").dataset.succeeded) }; })()"#,
            &[("ROW", json!(row))],
        ))
        .await
        .unwrap();
    assert_eq!(cells["posted"], format!("{ORDERS} / {ORDERS}"), "{cells}");
    assert_eq!(
        cells["succeeded"], ORDERS,
        "stock is ample and no order is designed to fail: {cells}"
    );
    browser
        .save_of("[data-load-simulator]", "dashboard-load-run")
        .await;

    // Back on ecommerce, the counter has counted the run: every order is an
    // order.ORDER_CREATED in the last 5 minutes, in the chart by type and
    // on destination order in the chart by destination.
    open_stream(
        &browser,
        &format!("{EXAMPLES_NS}/ecommerce"),
        "[data-counter] [data-counter-total]",
    )
    .await;
    browser
        .click("[data-counter] button[data-window='5m']")
        .await
        .unwrap();
    let grown = format!(
        "({COUNTER_TOTAL}) >= {} || ({COUNTER_TOTAL})",
        before + ORDERS
    );
    browser
        .wait_for_js(
            &grown,
            Duration::from_secs(60),
            "the counter's total to grow by the run's orders",
        )
        .await;
    browser
        .wait_for_js(
            &series_at_least("type", "order.ORDER_CREATED", ORDERS),
            Duration::from_secs(60),
            "the run's orders in the chart by type",
        )
        .await;
    browser
        .wait_for_js(
            &series_at_least("destination", "order", ORDERS),
            Duration::from_secs(60),
            "the run's orders in the chart by destination",
        )
        .await;
    browser
        .save_of("[data-counter]", "dashboard-counters")
        .await;
    browser
        .save_of("#detail", "dashboard-ecommerce-detail")
        .await;
    browser.close().await.unwrap();
}
