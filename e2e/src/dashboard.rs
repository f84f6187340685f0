//! The dashboard as the browser tests reach and read it: its address
//! through a port-forward, the JavaScript probes that read what the page
//! shows (by the `data-*` attributes of `dashboard/ui/app.js`), and the
//! Streams the tests show it.

use kube::Client;
use serde_json::{Value, json};

use crate::{
    broker::BROKER, browser::Browser, forward::forward_service, images::image, install::OPERATOR_NS,
};

/// The dashboard's Service (chart: `charts/eventflow/templates/dashboard.yaml`).
pub const DASHBOARD: &str = "eventflow-dashboard";

/// `http://127.0.0.1:<port>`, a port-forward to the dashboard's Service.
pub async fn dashboard_url(client: &Client) -> String {
    forward_service(client, OPERATOR_NS, DASHBOARD, 8080)
        .await
        .unwrap_or_else(|e| panic!("no port-forward to svc/{DASHBOARD}: {e:#}"))
}

/// A browser on the dashboard's page at `path` (`/`, or `/#namespace/name`
/// to open a Stream), through a port-forward.
pub async fn open_dashboard(client: &Client, path: &str) -> Browser {
    let base = dashboard_url(client).await;
    let browser = Browser::open().await;
    browser
        .goto(&format!("{base}{path}"))
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    browser
}

/// Opens Stream `key` (`namespace/name`) by a click on its row, as a user
/// does, until `panel` (a CSS selector) is on the page.
pub async fn open_stream(browser: &Browser, key: &str, panel: &str) {
    let row = format!(r#"#streams tr[data-stream="{key}"]"#);
    browser
        .wait_for_js(
            &format!("!!document.querySelector('{row}')"),
            std::time::Duration::from_secs(30),
            &format!("the row of {key}"),
        )
        .await;
    let shown = format!("!!document.querySelector('{panel}')");
    browser
        .click_until(&row, &shown, &format!("{panel} of {key}"))
        .await;
}

/// `template` with every `$KEY` replaced by its value as JSON (a JavaScript
/// literal).
pub fn js(template: &str, values: &[(&str, Value)]) -> String {
    let mut out = template.to_owned();
    for (key, value) in values {
        out = out.replace(&format!("${key}"), &value.to_string());
    }
    out
}

/// True once the graph of Stream `key` (`namespace/name`) draws every app of
/// `want` (`{"app": ["<roles line>", "<health>"]}`; `"!healthy"` means any
/// health but that) with that roles line (e.g. `web 1/1 · worker 0/1`) and
/// a box of some size; else what the graph shows.
pub fn apps_shown(key: &str, want: Value) -> String {
    js(
        r#"(() => {
  const svg = document.querySelector(`svg[data-graph="${$GRAPH}"]`);
  if (!svg) return "no graph of " + $GRAPH;
  const seen = {};
  for (const g of svg.querySelectorAll("g[data-app]")) {
    const box = g.getBoundingClientRect();
    seen[g.dataset.app] = { roles: g.querySelectorAll("text")[1]?.textContent, health: g.dataset.health,
      drawn: box.width > 0 && box.height > 0 };
  }
  const ok = Object.entries($WANT).every(([app, [roles, health]]) =>
    seen[app] && seen[app].roles === roles && seen[app].drawn &&
    (health.startsWith("!") ? seen[app].health !== health.slice(1) : seen[app].health === health));
  return ok || seen;
})()"#,
        &[("GRAPH", json!(key)), ("WANT", want)],
    )
}

/// True once the overview has a row for every Stream of `streams`
/// (`namespace/name`) and for EventBroker `broker`; else which it has.
pub fn rows_listed(streams: &[String], broker: &str) -> String {
    js(
        r#"(() => { const streams = $STREAMS.filter((k) => document.querySelector(`#streams tr[data-stream="${k}"]`));
  const broker = !!document.querySelector(`#brokers tr[data-broker="${$BROKER}"]`);
  return (streams.length === $STREAMS.length && broker) || { streams, broker }; })()"#,
        &[("STREAMS", json!(streams)), ("BROKER", json!(broker))],
    )
}

/// True once the detail of Stream `key` is shown, titled with it, its graph
/// drawing `app` and `destination`; else the detail's title.
pub fn detail_open(key: &str, app: &str, destination: &str) -> String {
    js(
        r#"(() => { const svg = document.querySelector(`svg[data-graph="${$KEY}"]`);
  const title = document.querySelector('#detail-title').textContent;
  return (!!svg && !!svg.querySelector(`g[data-app="${$APP}"]`) && !!svg.querySelector(`g[data-destination="${$DEST}"]`)
    && !document.querySelector('#detail').hidden && title.includes($KEY)) || title; })()"#,
        &[
            ("KEY", json!(key)),
            ("APP", json!(app)),
            ("DEST", json!(destination)),
        ],
    )
}

/// The `data-<field>` values of the elements matching `selector`, sorted.
pub fn data_of(selector: &str, field: &str) -> String {
    js(
        "[...document.querySelectorAll($SELECTOR)].map((e) => e.dataset[$FIELD]).sort()",
        &[("SELECTOR", json!(selector)), ("FIELD", json!(field))],
    )
}

/// True once the overview's row of Stream `key` is there and not healthy;
/// else its health.
pub fn row_not_healthy(key: &str) -> String {
    js(
        r#"(() => { const row = document.querySelector(`#streams tr[data-stream="${$KEY}"]`);
  return (row && row.dataset.health !== "healthy") || (row ? row.dataset.health : "no row"); })()"#,
        &[("KEY", json!(key))],
    )
}

/// A script for [`crate::Browser::on_new_document`]: once the overview holds
/// `want` rows of Streams whose key starts with `prefix`, it sets
/// `window.__rowsAt` (ms since the navigation started) and `__frameAt`
/// (the next animation frame: the rows painted).
pub fn render_clock(prefix: &str, want: usize) -> String {
    js(
        r#"(() => {
  new MutationObserver((_, observer) => {
    if (document.querySelectorAll(`#streams tbody tr[data-stream^="${$PREFIX}"]`).length < $WANT) return;
    observer.disconnect();
    window.__rowsAt = performance.now();
    requestAnimationFrame(() => { window.__frameAt = performance.now(); });
  }).observe(document, { childList: true, subtree: true });
})();"#,
        &[("PREFIX", json!(prefix)), ("WANT", json!(want))],
    )
}

/// Body and transfer bytes (and when each arrived, in ms since the
/// navigation) of the page and of the first request for each path it made
/// (its assets, the first `/api/overview`; not the endless `/api/updates`),
/// as the browser's Resource Timing saw them.
pub const PAGE_WEIGHT: &str = r#"(() => {
  const size = (e) => ({ body: e.decodedBodySize, transfer: e.transferSize, at: Math.round(e.responseEnd) });
  const out = { "/": size(performance.getEntriesByType("navigation")[0]) };
  for (const r of performance.getEntriesByType("resource")) {
    const path = new URL(r.name).pathname;
    if (path !== "/api/updates" && !(path in out)) out[path] = size(r);
  }
  return out;
})()"#;

/// Stream `tally` of `namespace` on its EventBroker `rabbit`: a counter
/// with a web role and a worker role of `worker_image`, consuming
/// destination `tally`.
pub fn tally_stream(namespace: &str, worker_image: &str) -> Value {
    json!({
        "apiVersion": "eventflow.dev/v1alpha1",
        "kind": "Stream",
        "metadata": {"name": "tally", "namespace": namespace},
        "spec": {
            "broker": BROKER,
            "apps": [{
                "name": "tally",
                "image": image("counter"),
                "web": {"replicas": 1},
                "worker": {"replicas": 1, "image": worker_image},
                "subscribes": [{"destination": "tally", "eventTypes": ["#"]}],
                "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
            }],
        },
    })
}

/// `count` Streams `s-000`, `s-001`, … of `namespace` (a `List`), each with
/// one worker consuming its own destination `d000`, `d001`, …, on an
/// EventBroker that does not exist: the operator leaves them Pending and
/// starts no pod, and `Retain` lets them go without a broker.
pub fn idle_streams(namespace: &str, count: usize) -> Value {
    let items: Vec<Value> = (0..count)
        .map(|i| {
            json!({
                "apiVersion": "eventflow.dev/v1alpha1",
                "kind": "Stream",
                "metadata": {"name": format!("s-{i:03}"), "namespace": namespace},
                "spec": {
                    "broker": "nowhere",
                    "deletionPolicy": "Retain",
                    "apps": [{
                        "name": "app",
                        "image": image("counter"),
                        "worker": {"replicas": 1},
                        "subscribes": [{"destination": format!("d{i:03}"), "eventTypes": ["#"]}],
                    }],
                },
            })
        })
        .collect();
    json!({"apiVersion": "v1", "kind": "List", "items": items})
}
