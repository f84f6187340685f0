//! The saga's process harness: the broker prepared as the operator would
//! (one destination per context, one worker group each), the real `order`,
//! `payment` and `warehouse` binaries as web + worker processes, and the
//! invariants of DOMAIN.md checked over what their web roles report.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::{HashMap, HashSet},
    path::PathBuf,
    time::{Duration, Instant},
};

use eventflow_contract::{Bindings, Topology, bindings::SubscriptionRequest, declare::declare};
use eventflow_runtime::testing::{
    AppProcess, amqp_uri, fresh_fault_postgres, fresh_postgres, fresh_sqlite, unique_namespace,
};
use lapin::{Connection, ConnectionProperties};
use serde_json::{Value, json};

pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Tests share two cores: one saga system at a time.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

static BUILT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// A binary of this workspace, built now (once per test process) with
/// `cargo build -p eventflow-<name> --bin <name>` into this test's target
/// directory. `CARGO_BIN_EXE_order` alone is not enough: cargo does not
/// always refresh that uplifted path when it builds the binary for a test,
/// and the other contexts' binaries belong to other packages.
pub fn binary(name: &str) -> String {
    let debug = PathBuf::from(env!("CARGO_BIN_EXE_order"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = debug.join(name);
    let mut built = BUILT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !built.iter().any(|b| b == name) {
        let package = format!("eventflow-{name}");
        let target_dir = debug.parent().unwrap();
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", &package, "--bin", name, "--target-dir"])
            .arg(target_dir)
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build -p {package} failed");
        built.push(name.to_owned());
    }
    path.display().to_string()
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Store {
    Sqlite,
    Postgres,
    /// The fault-test PostgreSQL, which a test may stop and start.
    FaultPostgres,
}

async fn store(kind: Store) -> String {
    match kind {
        Store::Sqlite => fresh_sqlite(),
        Store::Postgres => fresh_postgres().await,
        Store::FaultPostgres => fresh_fault_postgres().await,
    }
}

pub fn subscription(app: &'static str, max_attempts: u32) -> SubscriptionRequest<'static> {
    let mut s = match app {
        "order" => eventflow_order::subscription(),
        "payment" => eventflow_payment::subscription(),
        _ => eventflow_warehouse::subscription(),
    };
    // Short backoff keeps waits for another context brief in tests.
    s.backoff_ms = 200;
    s.max_attempts = max_attempts;
    s
}

/// One context: its bindings, store and processes.
pub struct Context {
    pub app: &'static str,
    pub env: Vec<(&'static str, String)>,
    pub web: AppProcess,
    pub workers: Vec<AppProcess>,
}

/// order, payment and warehouse wired like a Stream would wire them.
pub struct Saga {
    pub namespace: String,
    pub order: Context,
    pub payment: Context,
    pub warehouse: Context,
    pub extra: Vec<AppProcess>,
}

pub async fn declare_bindings(bindings: &Bindings) {
    let connection = Connection::connect(&amqp_uri(), ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    declare(&channel, &Topology::of(bindings), false)
        .await
        .unwrap();
    let _ = connection.close(200, "bye".into()).await;
}

impl Saga {
    /// Starts every web role, then `workers` worker processes per context.
    pub async fn start(kind: Store, workers: usize) -> Self {
        Self::start_with(kind, workers, &["order", "payment", "warehouse"]).await
    }

    /// Like [`Saga::start`], with workers only for the contexts named.
    pub async fn start_with(kind: Store, workers: usize, with_workers: &[&str]) -> Self {
        Self::start_full([kind; 3], workers, with_workers, false, 100, None).await
    }

    /// Like [`Saga::start_with`], with every web role re-driving a saga
    /// step that waited `secs` seconds (`EVENTFLOW_STALL_AFTER`).
    pub async fn start_stalling_after(
        kind: Store,
        workers: usize,
        with_workers: &[&str],
        secs: u32,
    ) -> Self {
        Self::start_full([kind; 3], workers, with_workers, false, 100, Some(secs)).await
    }

    /// Like [`Saga::start_with`], with order, payment and warehouse on the
    /// `stores` named in that order, and every worker giving up on an event
    /// (dead-lettering it) after `max_attempts`.
    pub async fn start_giving_up_after(
        stores: [Store; 3],
        workers: usize,
        with_workers: &[&str],
        max_attempts: u32,
    ) -> Self {
        Self::start_full(stores, workers, with_workers, false, max_attempts, None).await
    }

    /// Like [`Saga::start`], with payment as one `all` process (Combined
    /// packaging: web and worker in one) and no separate payment worker.
    pub async fn start_with_combined_payment(kind: Store, workers: usize) -> Self {
        Self::start_full([kind; 3], workers, &["order", "warehouse"], true, 100, None).await
    }

    async fn start_full(
        stores: [Store; 3],
        workers: usize,
        with_workers: &[&str],
        combined_payment: bool,
        max_attempts: u32,
        stall_after_secs: Option<u32>,
    ) -> Self {
        let namespace = unique_namespace();
        let mut envs = Vec::new();
        for (app, kind) in ["order", "payment", "warehouse"].into_iter().zip(stores) {
            let bindings =
                Bindings::standalone(&namespace, &[app], &[subscription(app, max_attempts)]);
            declare_bindings(&bindings).await;
            let mut env = vec![
                ("EVENTFLOW_BROKER_URI", amqp_uri()),
                ("EVENTFLOW_BINDINGS", bindings.to_json()),
                ("DATABASE_URL", store(kind).await),
                ("EVENTFLOW_CONCURRENCY", "8".to_owned()),
            ];
            if let Some(secs) = stall_after_secs {
                env.push(("EVENTFLOW_STALL_AFTER", secs.to_string()));
            }
            envs.push(env);
        }
        let mut webs: Vec<AppProcess> = ["order", "payment", "warehouse"]
            .iter()
            .zip(&envs)
            .map(|(app, env)| {
                let role = if combined_payment && *app == "payment" {
                    "all"
                } else {
                    "web"
                };
                AppProcess::spawn(&binary(app), role, env)
            })
            .collect();
        for w in &mut webs {
            w.wait_ready(READY_TIMEOUT).await;
        }
        let peers = [
            ("EVENTFLOW_PEER_ORDER_URL", webs[0].http.clone()),
            ("EVENTFLOW_PEER_PAYMENT_URL", webs[1].http.clone()),
            ("EVENTFLOW_PEER_WAREHOUSE_URL", webs[2].http.clone()),
        ];
        let mut contexts = Vec::new();
        for ((app, mut env), web) in ["order", "payment", "warehouse"]
            .into_iter()
            .zip(envs)
            .zip(webs)
        {
            env.extend(peers.iter().cloned());
            let mut ctx = Context {
                app,
                env,
                web,
                workers: vec![],
            };
            if with_workers.contains(&app) {
                for _ in 0..workers {
                    ctx.add_worker().await;
                }
            }
            contexts.push(ctx);
        }
        let warehouse = contexts.pop().unwrap();
        let payment = contexts.pop().unwrap();
        let order = contexts.pop().unwrap();
        Self {
            namespace,
            order,
            payment,
            warehouse,
            extra: vec![],
        }
    }

    pub fn logs(&self) -> String {
        let mut out = String::new();
        for c in [&self.order, &self.payment, &self.warehouse] {
            out.push_str(&format!(
                "==== {} web\n{}\n",
                c.app,
                tail(&c.web.log_text())
            ));
            for w in &c.workers {
                out.push_str(&format!("==== {} worker\n{}\n", c.app, tail(&w.log_text())));
            }
        }
        out
    }

    pub async fn warehouse_with(&self, stock: &[(&str, u32)]) -> Value {
        let w = post(
            &format!("{}/v1/warehouses", self.warehouse.web.http),
            &json!({ "address": "1 Dock Road" }),
        )
        .await;
        let inventory = w["_links"]["inventory"]["href"]
            .as_str()
            .unwrap()
            .to_owned();
        for (product, quantity) in stock {
            post(
                &inventory,
                &json!({ "productId": product, "quantity": quantity }),
            )
            .await;
        }
        w
    }

    /// Posts an order of `(productId, quantity)` lines for account `acc-1`;
    /// returns its URL.
    pub async fn order(&self, lines: &[(&str, u32)], payment_method: &str) -> String {
        self.order_for("acc-1", lines, payment_method).await
    }

    /// [`Saga::order`] for another account.
    pub async fn order_for(
        &self,
        account: &str,
        lines: &[(&str, u32)],
        payment_method: &str,
    ) -> String {
        let items: Vec<Value> = lines
            .iter()
            .map(|(p, q)| json!({ "name": format!("{p} widget"), "productId": p, "quantity": q, "price": 10.0, "tax": 1.0 }))
            .collect();
        let body = json!({ "accountId": account, "lineItems": items, "shippingAddress": "2 Home Lane", "paymentMethod": payment_method });
        let o = post(&format!("{}/v1/orders", self.order.web.http), &body).await;
        o["_links"]["self"]["href"].as_str().unwrap().to_owned()
    }

    /// Waits until the order is final; panics with the logs after `timeout`.
    pub async fn final_state(&self, url: &str, timeout: Duration) -> Value {
        let start = Instant::now();
        loop {
            let o = get(url).await;
            if o["status"] == "ORDER_SUCCEEDED" || o["status"] == "ORDER_FAILED" {
                return o;
            }
            if start.elapsed() > timeout {
                panic!("{url} not final after {timeout:?}: {o}\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every reservation of the warehouse context.
    pub async fn reservations(&self) -> Vec<Value> {
        all(
            &format!("{}/v1/reservations?limit=100", self.warehouse.web.http),
            "reservations",
        )
        .await
    }

    pub async fn orders(&self) -> Vec<Value> {
        all(
            &format!("{}/v1/orders?limit=100", self.order.web.http),
            "orders",
        )
        .await
    }

    pub async fn payments(&self) -> Vec<Value> {
        all(
            &format!("{}/v1/payments?limit=100", self.payment.web.http),
            "payments",
        )
        .await
    }
}

impl Context {
    pub async fn add_worker(&mut self) {
        let mut w = AppProcess::spawn(&binary(self.app), "worker", &self.env);
        w.wait_ready(READY_TIMEOUT).await;
        self.workers.push(w);
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

pub async fn get(url: &str) -> Value {
    let r = reqwest::get(url).await.unwrap();
    assert!(r.status().is_success(), "GET {url}: {}", r.status());
    r.json().await.unwrap()
}

pub async fn post(url: &str, body: &Value) -> Value {
    let r = reqwest::Client::new()
        .post(url)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert!(status.is_success(), "POST {url}: {status} {v}");
    v
}

/// Follows `next` links through a paged collection.
pub async fn all(first: &str, key: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut url = Some(first.to_owned());
    while let Some(u) = url {
        let page = get(&u).await;
        out.extend(
            page["_embedded"][key]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        );
        url = page["_links"]["next"]["href"].as_str().map(str::to_owned);
    }
    out
}

pub fn event_types(log: &Value) -> Vec<String> {
    log["_embedded"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["eventType"].as_str().unwrap().to_owned())
        .collect()
}

/// The invariants of DOMAIN.md over the whole system, once every order is final:
/// every item is available or held by exactly one reservation of a
/// non-failed order (held + available + sold = created per product), a
/// failed order holds nothing, a succeeded order has one reservation per
/// unit, each holding its own item, now INVENTORY_RESERVED. Returns
/// `(succeeded, failed)`.
pub async fn assert_invariants(saga: &Saga, warehouse: &Value) -> (usize, usize) {
    let orders = saga.orders().await;
    let by_id: HashMap<String, &Value> = orders
        .iter()
        .map(|o| (o["orderId"].as_str().unwrap().to_owned(), o))
        .collect();
    let inventory = get(warehouse["_links"]["inventory"]["href"].as_str().unwrap()).await;
    let items = inventory["_embedded"]["inventory"]
        .as_array()
        .unwrap()
        .clone();
    let reservations = saga.reservations().await;
    let res_by_id: HashMap<&str, &Value> = reservations
        .iter()
        .map(|r| (r["reservationId"].as_str().unwrap(), r))
        .collect();
    for o in &orders {
        let status = o["status"].as_str().unwrap();
        assert!(
            status == "ORDER_SUCCEEDED" || status == "ORDER_FAILED",
            "not final: {o}"
        );
    }
    for (product, counts) in inventory["products"].as_object().unwrap() {
        let n = |k: &str| counts[k].as_u64().unwrap();
        assert_eq!(
            n("available") + n("held") + n("sold"),
            n("created"),
            "{product}: {counts}"
        );
        let created = items
            .iter()
            .filter(|i| i["productId"] == product.as_str())
            .count() as u64;
        assert_eq!(n("created"), created, "{product}");
    }
    let mut holders = HashSet::new();
    for item in &items {
        let status = item["status"].as_str().unwrap();
        if status == "RESERVATION_PENDING" || status == "INVENTORY_RELEASED" {
            assert!(
                item["reservationId"].is_null(),
                "available yet held: {item}"
            );
            continue;
        }
        let holder = item["reservationId"]
            .as_str()
            .unwrap_or_else(|| panic!("held by nobody: {item}"));
        assert!(
            holders.insert(holder.to_owned()),
            "{holder} holds two items"
        );
        let r = res_by_id[holder];
        assert_eq!(r["inventoryId"], item["inventoryId"], "{r} vs {item}");
        let order = by_id[r["orderId"].as_str().unwrap()];
        assert_eq!(
            order["status"], "ORDER_SUCCEEDED",
            "item {item} held for {order}"
        );
        assert_eq!(
            status, "INVENTORY_RESERVED",
            "a succeeded order's item is sold: {item}"
        );
    }
    let mut succeeded = 0;
    let mut failed = 0;
    for o in &orders {
        let id = o["orderId"].as_str().unwrap();
        let mine: Vec<&&Value> = res_by_id.values().filter(|r| r["orderId"] == id).collect();
        if o["status"] == "ORDER_FAILED" {
            failed += 1;
            for r in &mine {
                let s = r["status"].as_str().unwrap();
                assert!(
                    s == "RESERVATION_FAILED" || s == "RESERVATION_RELEASED",
                    "failed order {id} holds {r}"
                );
            }
        } else {
            succeeded += 1;
            let units: u64 = o["lineItems"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["quantity"].as_u64().unwrap())
                .sum();
            assert_eq!(mine.len() as u64, units, "one reservation per unit of {o}");
            for r in &mine {
                assert!(
                    holders.contains(r["reservationId"].as_str().unwrap()),
                    "{r} holds no item"
                );
            }
        }
    }
    (succeeded, failed)
}
