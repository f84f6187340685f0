//! A broker restart as the web APIs' clients see it: while one client per
//! web API keeps sending requests (creating accounts, orders and
//! warehouses, listing payments; one try each, no retries), the broker pod
//! is deleted. Measured: requests sent and failed and the longest
//! unavailability per API, restarts of the app pods, and the time from the
//! broker being Ready again until every web role's outbox is empty
//! (`eventflow_outbox_pending` on its admin port, read once its relay has
//! published since the broker came back, so the gauge is current).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, Client};
use serde_json::json;
use tokio::sync::Mutex;

use crate::broker::BROKER;
use crate::chaos::{STREAM, kill};
use crate::feeds::{CONTEXTS, web_base};
use crate::forward::port_forward;
use crate::pods::{is_ready, pod_of_service};

/// What one API's client saw.
#[derive(Clone, Debug, Default)]
pub struct ApiFigures {
    pub sent: u64,
    pub failed: u64,
    /// The longest time from a success to the next, with failures between.
    pub longest_unavailable: Duration,
    pub last_error: Option<String>,
}

/// The figures of one broker restart.
#[derive(Debug, Default)]
pub struct RestartFigures {
    pub apis: BTreeMap<String, ApiFigures>,
    pub broker_down: Duration,
    pub app_restarts: i64,
    /// From the broker Ready again until every outbox is empty (`None`: not within the bound).
    pub outbox_drain: Option<Duration>,
    /// The most events any web role's outbox held, per app.
    pub outbox_peak: BTreeMap<String, i64>,
}

impl std::fmt::Display for RestartFigures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "== broker restart ==")?;
        writeln!(
            f,
            "  {:<10} {:>6} {:>6} {:>7} {:>22}",
            "web API", "sent", "failed", "rate", "longest unavailable"
        )?;
        let (mut sent, mut failed) = (0, 0);
        for (api, a) in &self.apis {
            sent += a.sent;
            failed += a.failed;
            writeln!(
                f,
                "  {api:<10} {:>6} {:>6} {:>6.1}% {:>20.1} s",
                a.sent,
                a.failed,
                100.0 * a.failed as f64 / a.sent.max(1) as f64,
                a.longest_unavailable.as_secs_f64()
            )?;
        }
        writeln!(
            f,
            "  {:<10} {sent:>6} {failed:>6} {:>6.1}%",
            "all",
            100.0 * failed as f64 / sent.max(1) as f64
        )?;
        for (api, a) in &self.apis {
            if let Some(e) = &a.last_error {
                writeln!(f, "  last error of {api}: {e}")?;
            }
        }
        writeln!(
            f,
            "  broker pod deleted -> Ready again: {:.1} s",
            self.broker_down.as_secs_f64()
        )?;
        writeln!(
            f,
            "  app pod restarts meanwhile:       {}",
            self.app_restarts
        )?;
        match self.outbox_drain {
            Some(d) => writeln!(
                f,
                "  broker Ready -> every outbox empty: {:.1} s",
                d.as_secs_f64()
            )?,
            None => writeln!(
                f,
                "  broker Ready -> every outbox empty: not within the bound"
            )?,
        }
        writeln!(f, "  outbox peak per web role: {:?}", self.outbox_peak)
    }
}

/// Total container restarts of the example Stream's pods.
async fn app_restarts(client: &Client, ns: &str) -> Result<i64> {
    let pods = Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(&format!("eventflow.dev/stream={STREAM}")))
        .await?;
    Ok(pods
        .items
        .iter()
        .flat_map(|p| {
            p.status
                .iter()
                .flat_map(|s| s.container_statuses.iter().flatten())
        })
        .map(|c| i64::from(c.restart_count))
        .sum())
}

/// What the order client orders: an account and a product in stock, so
/// the saga runs through every context (each relay has events to publish).
#[derive(Clone, Debug, Default)]
struct Shop {
    account: String,
    product: String,
}

/// POSTs `body` (one try) and returns the answer's JSON.
async fn post_json(
    http: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
) -> Result<serde_json::Value> {
    let r = http.post(url).json(body).send().await?;
    anyhow::ensure!(r.status().is_success(), "POST {url}: {}", r.status());
    Ok(r.json().await?)
}

/// An account and a warehouse stocked with `units` of one product.
async fn open_shop(
    http: &reqwest::Client,
    bases: &BTreeMap<String, String>,
    tag: &str,
    units: u32,
) -> Result<Shop> {
    let account = post_json(http, &format!("{}/v1/accounts", bases["account"]),
        &json!({"firstName": "Broker", "lastName": "Restart", "email": format!("restart-{tag}@example.com")})).await?;
    let warehouse = post_json(
        http,
        &format!("{}/v1/warehouses", bases["warehouse"]),
        &json!({"address": format!("restart {tag}")}),
    )
    .await?;
    let id = warehouse["warehouseId"].as_str().unwrap_or_default();
    let product = format!("restart-{tag}");
    post_json(
        http,
        &format!("{}/v1/warehouses/{id}/inventory", bases["warehouse"]),
        &json!({"productId": product, "quantity": units}),
    )
    .await?;
    Ok(Shop {
        account: account["accountId"].as_str().unwrap_or_default().to_owned(),
        product,
    })
}

/// One try of the request each API's client sends, `i` making it unique.
async fn request(
    http: &reqwest::Client,
    api: &str,
    base: &str,
    i: u64,
    tag: &str,
    shop: &Shop,
) -> Result<()> {
    let r = match api {
        "account" => http.post(format!("{base}/v1/accounts")).json(&json!({
            "firstName": "Broker", "lastName": "Restart",
            "email": format!("restart-{tag}-{i}@example.com")})),
        "order" => http.post(format!("{base}/v1/orders")).json(&json!({
            "accountId": shop.account,
            "lineItems": [{"name": "restart item", "productId": shop.product,
                           "quantity": 1, "price": 1.0, "tax": 0.0}],
            "shippingAddress": "1 Restart Road", "paymentMethod": "CARD"})),
        "warehouse" => http
            .post(format!("{base}/v1/warehouses"))
            .json(&json!({"address": format!("restart {tag} {i}")})),
        _ => http.get(format!("{base}/v1/{api}s?limit=1")),
    };
    let r = r.send().await?;
    if r.status().is_success() {
        Ok(())
    } else {
        Err(anyhow!("{}", r.status()))
    }
}

/// One API's client: a request every `pause` until `stop`, one try each.
async fn client_loop(
    http: reqwest::Client,
    api: String,
    base: String,
    tag: String,
    shop: Shop,
    pause: Duration,
    stop: Arc<AtomicBool>,
) -> ApiFigures {
    let mut fig = ApiFigures::default();
    let mut last_ok = Instant::now();
    let mut failing = false;
    let mut i = 0;
    while !stop.load(Ordering::SeqCst) {
        i += 1;
        fig.sent += 1;
        match request(&http, &api, &base, i, &tag, &shop).await {
            Ok(()) => {
                if failing {
                    fig.longest_unavailable = fig.longest_unavailable.max(last_ok.elapsed());
                    failing = false;
                }
                last_ok = Instant::now();
            }
            Err(e) => {
                fig.failed += 1;
                failing = true;
                fig.last_error = Some(format!("{e:#}"));
            }
        }
        tokio::time::sleep(pause).await;
    }
    if failing {
        fig.longest_unavailable = fig.longest_unavailable.max(last_ok.elapsed());
    }
    fig
}

/// `eventflow_<name>` of a Prometheus text exposition (summed over labels).
fn metric(text: &str, name: &str) -> Option<f64> {
    let full = format!("eventflow_{name}");
    let values: Vec<f64> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(&full)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// `(outbox pending, events published)` of each context's web role, from
/// its admin port (9090) through a port-forward to its current pod.
async fn outboxes(
    client: &Client,
    http: &reqwest::Client,
    ns: &str,
    forwards: &Mutex<BTreeMap<String, String>>,
) -> Result<BTreeMap<String, (i64, f64)>> {
    let mut out = BTreeMap::new();
    for app in CONTEXTS {
        let pod = pod_of_service(client, ns, &format!("ecommerce-{app}-web")).await?;
        let addr = {
            let mut f = forwards.lock().await;
            match f.get(&pod) {
                Some(a) => a.clone(),
                None => {
                    let a = port_forward(Api::namespaced(client.clone(), ns), &pod, 9090)
                        .await?
                        .to_string();
                    f.insert(pod.clone(), a.clone());
                    a
                }
            }
        };
        let text = http
            .get(format!("http://{addr}/metrics"))
            .send()
            .await?
            .text()
            .await?;
        let pending = metric(&text, "outbox_pending")
            .ok_or_else(|| anyhow!("{app}: no eventflow_outbox_pending in /metrics"))?;
        let published = metric(&text, "events_published_total")
            .or_else(|| metric(&text, "events_published"))
            .unwrap_or(0.0);
        out.insert(app.to_owned(), (pending as i64, published));
    }
    Ok(out)
}

/// Whether the broker pod `<broker>-0` is Ready.
async fn broker_ready(client: &Client, ns: &str) -> bool {
    Api::<Pod>::namespaced(client.clone(), ns)
        .get_opt(&format!("{BROKER}-0"))
        .await
        .ok()
        .flatten()
        .is_some_and(|p| is_ready(&p))
}

/// Deletes the broker pod (`force`: `--force --grace-period=0`) while one
/// client per web API keeps sending requests; see the module docs. Every
/// wait is bounded by `bound`.
pub async fn broker_restart(
    client: &Client,
    ns: &str,
    force: bool,
    bound: Duration,
) -> Result<RestartFigures> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let tag = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis()
    );
    let restarts_before = app_restarts(client, ns).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut bases = BTreeMap::new();
    for app in CONTEXTS {
        bases.insert(app.to_owned(), web_base(client, ns, app).await?);
    }
    let shop = open_shop(&http, &bases, &tag, 1_000).await?;
    let mut clients = Vec::new();
    for (app, base) in bases {
        clients.push((
            app.clone(),
            tokio::spawn(client_loop(
                http.clone(),
                app.clone(),
                base,
                tag.clone(),
                shop.clone(),
                Duration::from_millis(200),
                stop.clone(),
            )),
        ));
    }
    let forwards = Mutex::new(BTreeMap::new());
    let mut figures = RestartFigures::default();
    let result = async {
        println!("  clients running; 10 s before the broker goes");
        tokio::time::sleep(Duration::from_secs(10)).await;
        let before = outboxes(client, &http, ns, &forwards).await?;
        println!("  outboxes before: {before:?}");
        let killed = Instant::now();
        kill(client, ns, &format!("{BROKER}-0"), force).await?;
        println!(
            "  deleted pod {BROKER}-0 ({})",
            if force { "forced" } else { "graceful" }
        );
        // The old pod goes (its name stays while it terminates), then the new one is Ready.
        while Api::<Pod>::namespaced(client.clone(), ns)
            .get_opt(&format!("{BROKER}-0"))
            .await?
            .is_some_and(|p| p.metadata.deletion_timestamp.is_some())
            && killed.elapsed() < bound
        {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        while !broker_ready(client, ns).await {
            if killed.elapsed() > bound {
                return Err(anyhow!("{BROKER}-0 not Ready again within {bound:?}"));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let ready = Instant::now();
        figures.broker_down = ready - killed;
        println!(
            "  {BROKER}-0 Ready again after {:.1} s",
            figures.broker_down.as_secs_f64()
        );
        // Drained: every web role's relay has published since (its gauge is
        // current) and its outbox is empty.
        let mut at_ready: Option<BTreeMap<String, (i64, f64)>> = None;
        while ready.elapsed() < bound {
            match outboxes(client, &http, ns, &forwards).await {
                Ok(now) => {
                    for (app, (pending, _)) in &now {
                        let peak = figures.outbox_peak.entry(app.clone()).or_default();
                        *peak = (*peak).max(*pending);
                    }
                    let base = at_ready.get_or_insert_with(|| now.clone());
                    let drained = now.iter().all(|(app, (pending, published))| {
                        *pending == 0 && base.get(app).is_some_and(|(_, p)| p != published)
                    });
                    if drained {
                        figures.outbox_drain = Some(ready.elapsed());
                        break;
                    }
                }
                Err(e) => println!("  (metrics: {e:#})"),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        // A few seconds more of requests after the drain.
        tokio::time::sleep(Duration::from_secs(5)).await;
        Ok(())
    }
    .await;
    stop.store(true, Ordering::SeqCst);
    for (app, task) in clients {
        figures.apis.insert(app, task.await?);
    }
    figures.app_restarts = app_restarts(client, ns).await? - restarts_before;
    result.map(|()| figures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_read_by_full_name_summed_over_labels() {
        let text = "# HELP eventflow_outbox_pending x\n\
                    eventflow_outbox_pending 3\n\
                    eventflow_outbox_pending_other 9\n\
                    eventflow_events_published_total 12\n\
                    eventflow_messages_total{outcome=\"acked\"} 2\n\
                    eventflow_messages_total{outcome=\"retried\"} 1\n";
        assert_eq!(metric(text, "outbox_pending"), Some(3.0));
        assert_eq!(metric(text, "events_published_total"), Some(12.0));
        assert_eq!(metric(text, "messages_total"), Some(3.0));
        assert_eq!(metric(text, "absent"), None);
    }
}
