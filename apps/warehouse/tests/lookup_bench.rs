//! Figures, not assertions on time: what a reservation's item lookup
//! (`connectInventory`) and the product search (`findByProducts`) cost
//! before (every item snapshot read and parsed, then filtered) and after
//! (the store's lookup index), side by side on one store of N items with a
//! history (most of them sold). Run with
//! `cargo test -p eventflow-warehouse --test lookup_bench -- --ignored --nocapture`
//! (on PostgreSQL too when `EVENTFLOW_TEST_DATABASE_URL` is set).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use eventflow_runtime::{
    Aggregate,
    store::{Commit, EventStore, StreamWrite},
    testing::{DATABASE_VAR, fresh_postgres, fresh_sqlite},
};
use eventflow_warehouse::{
    InventoryItem,
    inventory::{INVENTORY_RESERVED, RESERVATION_CONNECTED},
};
const ITEMS: usize = 5_000;
const WAREHOUSES: usize = 5;
const PRODUCTS: usize = 50;
/// One item in this many is still available; the others were sold.
const AVAILABLE_ONE_IN: usize = 5;
const LOOKUPS: usize = 200;
const SEARCHES: usize = 50;

fn warehouse(i: usize) -> String {
    format!("w{}", i % WAREHOUSES)
}

fn product(i: usize) -> String {
    format!("p{}", (i / WAREHOUSES) % PRODUCTS)
}

/// The write that stocks item `i` (and sells it, unless it stays available).
fn item_write(i: usize) -> StreamWrite {
    let id = format!("item-{i:05}");
    let mut events = InventoryItem::stocked(&id, &warehouse(i), &product(i));
    let mut item = InventoryItem::default();
    for (v, e) in events.iter().enumerate() {
        item.apply(&e.at_version(InventoryItem::KIND, &id, v as i64 + 1));
    }
    if !i.is_multiple_of(AVAILABLE_ONE_IN) {
        let reservation = format!("r-{i}");
        for t in [RESERVATION_CONNECTED, INVENTORY_RESERVED] {
            let e = item.event(t, &reservation);
            item.apply(&e.at_version(InventoryItem::KIND, &id, events.len() as i64 + 1));
            events.push(e);
        }
    }
    StreamWrite {
        aggregate_type: InventoryItem::KIND.to_owned(),
        aggregate_id: id,
        expected_version: 0,
        events,
        snapshot: serde_json::to_value(&item).unwrap(),
        lookup: item.lookup(),
        in_flight: None,
    }
}

/// The old lookup: every item snapshot, parsed, filtered.
async fn full_scan(store: &EventStore) -> Vec<InventoryItem> {
    store
        .list(InventoryItem::KIND, 0, i64::MAX)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|(_, _, state)| serde_json::from_value::<InventoryItem>(state).ok())
        .collect()
}

fn per_op(total: Duration, n: usize) -> f64 {
    total.as_secs_f64() * 1000.0 / n as f64
}

async fn bench(backend: &str, url: &str) {
    let store = EventStore::connect(url).await.unwrap();
    let started = Instant::now();
    let writes: Vec<StreamWrite> = (0..ITEMS).map(item_write).collect();
    for chunk in writes.chunks(500) {
        store
            .append(&Commit {
                writes: chunk.to_vec(),
                ..Commit::default()
            })
            .await
            .unwrap();
    }
    println!(
        "[{backend}] stocked {ITEMS} items ({WAREHOUSES} warehouses x {PRODUCTS} products, 1 in {AVAILABLE_ONE_IN} available) in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // connectInventory: the available items of one product in one warehouse.
    let pairs: Vec<(String, String)> = (0..LOOKUPS)
        .map(|k| (warehouse(k * 7), product(k * 13)))
        .collect();
    let started = Instant::now();
    let mut old_found = Vec::new();
    for (w, p) in &pairs {
        let free: HashSet<String> = full_scan(&store)
            .await
            .into_iter()
            .filter(|i| &i.warehouse_id == w && &i.product_id == p && i.available())
            .map(|i| i.inventory_id)
            .collect();
        old_found.push(free);
    }
    let old = started.elapsed();
    let started = Instant::now();
    let mut new_found = Vec::new();
    for (w, p) in &pairs {
        let key = InventoryItem::stock_key(p, true);
        let free = store
            .lookup::<InventoryItem>(w, Some(&key), 32)
            .await
            .unwrap();
        new_found.push(free.into_iter().map(|(id, _)| id).collect::<HashSet<_>>());
    }
    let new = started.elapsed();
    assert_eq!(old_found, new_found, "both find the same free items");
    println!(
        "[{backend}] connectInventory lookup x{LOOKUPS}: full scan {:.2} ms/op, index {:.3} ms/op, {:.0}x",
        per_op(old, LOOKUPS),
        per_op(new, LOOKUPS),
        old.as_secs_f64() / new.as_secs_f64()
    );

    // findByProducts: per warehouse holding every product, available units.
    let wanted: Vec<Vec<String>> = (0..SEARCHES)
        .map(|k| vec![product(k * 5), product(k * 5 + 35)])
        .collect();
    let started = Instant::now();
    let mut old_found = Vec::new();
    for products in &wanted {
        let mut held: HashMap<String, (usize, HashSet<String>)> = HashMap::new();
        for i in full_scan(&store).await {
            if products.contains(&i.product_id) {
                let entry = held.entry(i.warehouse_id.clone()).or_default();
                entry.0 += usize::from(i.available());
                entry.1.insert(i.product_id);
            }
        }
        old_found.push(
            held.into_iter()
                .filter(|(_, (_, p))| p.len() == products.len())
                .map(|(w, (a, _))| (w, a as i64))
                .collect::<HashMap<_, _>>(),
        );
    }
    let old = started.elapsed();
    let started = Instant::now();
    let mut new_found = Vec::new();
    for products in &wanted {
        let keys: Vec<String> = products
            .iter()
            .flat_map(|p| [true, false].map(|a| InventoryItem::stock_key(p, a)))
            .collect();
        let counts = store.lookup_counts::<InventoryItem>(&keys).await.unwrap();
        let mut held: HashMap<String, (i64, HashSet<String>)> = HashMap::new();
        for c in counts {
            let (p, availability) = c.key.rsplit_once('\u{1f}').unwrap();
            let entry = held.entry(c.group).or_default();
            entry.1.insert(p.to_owned());
            if availability == "available" {
                entry.0 += c.count;
            }
        }
        new_found.push(
            held.into_iter()
                .filter(|(_, (_, p))| p.len() == products.len())
                .map(|(w, (a, _))| (w, a))
                .collect::<HashMap<_, _>>(),
        );
    }
    let new = started.elapsed();
    assert_eq!(old_found, new_found, "both find the same warehouses");
    println!(
        "[{backend}] findByProducts counts x{SEARCHES}: full scan {:.2} ms/op, index {:.3} ms/op, {:.0}x",
        per_op(old, SEARCHES),
        per_op(new, SEARCHES),
        old.as_secs_f64() / new.as_secs_f64()
    );

    // GET /v1/warehouses/{id}/inventory: one warehouse's items.
    let started = Instant::now();
    let mut old_n = 0;
    for k in 0..SEARCHES {
        let w = warehouse(k);
        old_n += full_scan(&store)
            .await
            .into_iter()
            .filter(|i| i.warehouse_id == w)
            .count();
    }
    let old = started.elapsed();
    let started = Instant::now();
    let mut new_n = 0;
    for k in 0..SEARCHES {
        new_n += store
            .lookup::<InventoryItem>(&warehouse(k), None, i64::MAX)
            .await
            .unwrap()
            .len();
    }
    let new = started.elapsed();
    assert_eq!(old_n, new_n);
    println!(
        "[{backend}] warehouse inventory x{SEARCHES} ({} items each): full scan {:.2} ms/op, index {:.2} ms/op, {:.1}x",
        ITEMS / WAREHOUSES,
        per_op(old, SEARCHES),
        per_op(new, SEARCHES),
        old.as_secs_f64() / new.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: prints figures; run with --ignored --nocapture"]
async fn item_lookups_full_scan_versus_index() {
    bench("sqlite", &fresh_sqlite()).await;
    if std::env::var(DATABASE_VAR).is_ok_and(|v| !v.is_empty()) {
        bench("postgres", &fresh_postgres().await).await;
    }
}
