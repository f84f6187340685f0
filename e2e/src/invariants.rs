//! The final accounting of a chaos run: from what the system holds once it
//! settled (every context's feed since the run began, the warehouse's
//! inventory, the broker's queues) and what the load simulator was told,
//! the figures of the run and the invariants it broke:
//!
//! - every order of the run is final (ORDER_SUCCEEDED or ORDER_FAILED);
//! - the order context holds exactly the orders the simulator was
//!   acknowledged for (2xx), and no more than those plus the POSTs that got
//!   no answer;
//! - no event is in a feed twice (by event id, or by stream and version) and
//!   no saga step was applied twice (two final events for an order, two
//!   payments for an order);
//! - per product: every unit stocked is there once (available + held + sold
//!   = created = stocked), the units sold are those of the succeeded orders,
//!   and no unit is held or sold for an order that failed;
//! - every dead-letter queue is empty.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use serde_json::Value;

use crate::chaos::{Kill, Kind};

/// What a chaos run gathered.
pub struct Facts {
    pub namespace: String,
    /// The load simulator's final report of the run.
    pub report: Value,
    /// The order ids the simulator was acknowledged for (`None`: a
    /// simulator that does not list them; counts are compared instead).
    pub acknowledged: Option<Vec<String>>,
    /// Per context, every event of its feed appended since the run began.
    pub feeds: BTreeMap<String, Vec<Value>>,
    /// `GET /v1/warehouses/{id}/inventory` of the run's warehouse.
    pub inventory: Value,
    /// Every queue of the broker with the messages it holds.
    pub queues: BTreeMap<String, u64>,
    pub kills: Vec<Kill>,
    pub load_seconds: f64,
    /// Whether the system settled before the accounting.
    pub settled: bool,
}

/// Units of one product, as the warehouse API counts them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Units {
    pub stocked: u64,
    pub created: u64,
    pub available: u64,
    pub held: u64,
    pub sold: u64,
    /// Units the succeeded orders bought.
    pub bought: u64,
    /// Units held or sold for orders that failed.
    pub held_for_failed: u64,
    pub sold_to_failed: u64,
}

/// The figures of a run and the invariants it broke.
#[derive(Debug, Default)]
pub struct Accounting {
    pub namespace: String,
    pub events_by_context: BTreeMap<String, usize>,
    pub load_seconds: f64,
    pub kills: BTreeMap<&'static str, (u32, u32)>,
    pub posted: u64,
    pub acknowledged: u64,
    pub refused: u64,
    pub unanswered: u64,
    pub stored: u64,
    pub missing: Vec<String>,
    pub not_acknowledged: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// Orders of the run not final, by the last event they reached.
    pub stuck: BTreeMap<String, u64>,
    /// The simulator's own outcomes (followed live).
    pub simulator_outcomes: Value,
    pub duplicate_event_ids: u64,
    pub duplicate_versions: u64,
    pub ended_twice: u64,
    pub paid_twice: u64,
    pub units: BTreeMap<String, Units>,
    pub dlq: BTreeMap<String, u64>,
    pub settled: bool,
    pub violations: Vec<String>,
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn str_of<'a>(e: &'a Value, field: &str) -> &'a str {
    e[field].as_str().unwrap_or_default()
}

/// The order an id of a reservation (`<orderId>-<line>-<unit>`) belongs to.
fn order_of_reservation(reservation: &str) -> &str {
    reservation.rsplitn(3, '-').nth(2).unwrap_or(reservation)
}

/// Accounts for a run from what it gathered.
pub fn account(f: &Facts) -> Accounting {
    let mut a = Accounting {
        namespace: f.namespace.clone(),
        load_seconds: f.load_seconds,
        settled: f.settled,
        simulator_outcomes: f.report["outcomes"].clone(),
        ..Accounting::default()
    };
    let run_id = str_of(&f.report, "runId");
    let prefix = format!("sim-{}-p", &run_id[..8.min(run_id.len())]);
    for k in &f.kills {
        let e = a.kills.entry(k.kind.name()).or_default();
        if k.force { e.1 += 1 } else { e.0 += 1 }
    }
    for kind in Kind::ALL {
        a.kills.entry(kind.name()).or_default();
    }
    let empty = Vec::new();
    let feed = |c: &str| f.feeds.get(c).unwrap_or(&empty);
    for (c, events) in &f.feeds {
        a.events_by_context.insert(c.clone(), events.len());
        let mut ids = HashSet::new();
        let mut versions = HashSet::new();
        for e in events {
            if !ids.insert(str_of(e, "eventId")) {
                a.duplicate_event_ids += 1;
            }
            let version = (
                str_of(e, "aggregateType"),
                str_of(e, "aggregateId"),
                n(&e["version"]),
            );
            if !versions.insert(version) {
                a.duplicate_versions += 1;
            }
        }
    }

    // The run's orders: created for its products.
    struct Order<'a> {
        units: Vec<(&'a str, u64)>,
        ends: Vec<&'a str>,
        last: &'a str,
    }
    let mut orders: BTreeMap<&str, Order> = BTreeMap::new();
    for e in feed("order")
        .iter()
        .filter(|e| e["aggregateType"] == "order")
    {
        let id = str_of(e, "aggregateId");
        let kind = str_of(e, "eventType");
        if kind == "ORDER_CREATED" {
            let lines = e["payload"]["lineItems"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if !lines
                .iter()
                .any(|l| str_of(l, "productId").starts_with(&prefix))
            {
                continue;
            }
            let units = e["payload"]["lineItems"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|l| (str_of(l, "productId"), n(&l["quantity"])))
                .collect();
            orders.insert(
                id,
                Order {
                    units,
                    ends: Vec::new(),
                    last: kind,
                },
            );
        } else if let Some(o) = orders.get_mut(id) {
            o.last = kind;
            if kind == "ORDER_SUCCEEDED" || kind == "ORDER_FAILED" {
                o.ends.push(kind);
            }
        }
    }
    let mut outcome: HashMap<&str, &str> = HashMap::new();
    for (id, o) in &orders {
        match o.ends.first() {
            Some(end) => {
                outcome.insert(id, end);
                if *end == "ORDER_SUCCEEDED" {
                    a.succeeded += 1;
                } else {
                    a.failed += 1;
                }
            }
            None => *a.stuck.entry(o.last.to_owned()).or_default() += 1,
        }
        a.ended_twice += u64::from(o.ends.len() > 1);
    }
    a.stored = orders.len() as u64;

    // What the simulator was told.
    let r = &f.report;
    a.acknowledged = r
        .get("ordersAcknowledged")
        .map_or_else(|| n(&r["ordersPosted"]), n);
    a.refused = n(&r["ordersRefused"]);
    a.unanswered = n(&r["ordersUnanswered"]);
    a.posted = n(&r["ordersPosted"]);
    match &f.acknowledged {
        Some(ids) => {
            let told: HashSet<&str> = ids.iter().map(String::as_str).collect();
            a.missing = ids
                .iter()
                .filter(|id| !orders.contains_key(id.as_str()))
                .cloned()
                .collect();
            a.not_acknowledged = orders.keys().filter(|id| !told.contains(*id)).count() as u64;
        }
        None => {
            a.not_acknowledged = a.stored.saturating_sub(a.acknowledged);
            if a.acknowledged > a.stored {
                a.missing = vec![format!(
                    "{} orders (ids unknown)",
                    a.acknowledged - a.stored
                )];
            }
        }
    }

    // Payments per order.
    let mut payments: HashMap<&str, u64> = HashMap::new();
    for e in feed("payment") {
        if e["eventType"] == "PAYMENT_CREATED" {
            let order = str_of(&e["payload"], "orderId");
            if orders.contains_key(order) {
                *payments.entry(order).or_default() += 1;
            }
        }
    }
    a.paid_twice = payments.values().filter(|p| **p > 1).count() as u64;

    // Units per product: the warehouse API's counts, and who holds or bought
    // each unit from the inventory items' events.
    let stocked = n(&r["plan"]["stockPerProduct"]);
    if let Some(products) = f.inventory["products"].as_object() {
        for (product, c) in products.iter().filter(|(p, _)| p.starts_with(&prefix)) {
            a.units.insert(
                product.clone(),
                Units {
                    stocked,
                    created: n(&c["created"]),
                    available: n(&c["available"]),
                    held: n(&c["held"]),
                    sold: n(&c["sold"]),
                    ..Units::default()
                },
            );
        }
    }
    for (id, o) in &orders {
        if outcome.get(id) == Some(&"ORDER_SUCCEEDED") {
            for (product, q) in &o.units {
                a.units.entry((*product).to_owned()).or_default().bought += q;
            }
        }
    }
    let mut items: HashMap<&str, (&str, &str, &str)> = HashMap::new(); // item -> (product, status, reservation)
    for e in feed("warehouse")
        .iter()
        .filter(|e| e["aggregateType"] == "inventory")
    {
        let item = str_of(e, "aggregateId");
        let entry = items.entry(item).or_insert(("", "", ""));
        let p = &e["payload"];
        if let Some(product) = p["productId"].as_str() {
            entry.0 = product;
        }
        entry.1 = str_of(e, "eventType");
        entry.2 = p["reservationId"].as_str().unwrap_or_default();
    }
    for (product, status, reservation) in items.values() {
        if !product.starts_with(&prefix) {
            continue;
        }
        let failed = outcome.get(order_of_reservation(reservation)) == Some(&"ORDER_FAILED");
        let u = a.units.entry((*product).to_owned()).or_default();
        match *status {
            "RESERVATION_CONNECTED" if failed => u.held_for_failed += 1,
            "INVENTORY_RESERVED" if failed => u.sold_to_failed += 1,
            _ => {}
        }
    }
    let dlq_prefix = format!("{}.", f.namespace);
    a.dlq = f
        .queues
        .iter()
        .filter(|(q, _)| q.starts_with(&dlq_prefix) && q.ends_with(".dlq"))
        .map(|(q, d)| (q.clone(), *d))
        .collect();

    // The invariants.
    let v = &mut a.violations;
    if !a.settled {
        v.push("the system did not settle after the load".into());
    }
    let stuck: u64 = a.stuck.values().sum();
    if stuck > 0 {
        v.push(format!("{stuck} orders are not final: {:?}", a.stuck));
    }
    if !a.missing.is_empty() {
        v.push(format!(
            "{} acknowledged orders are not in the order context (first: {:?})",
            a.missing.len(),
            &a.missing[..a.missing.len().min(5)]
        ));
    }
    if a.not_acknowledged > a.unanswered {
        v.push(format!(
            "the order context holds {} orders of the run never acknowledged, more than the {} POSTs left unanswered",
            a.not_acknowledged, a.unanswered
        ));
    }
    if a.stored != a.acknowledged && a.not_acknowledged == 0 && a.missing.is_empty() {
        v.push(format!(
            "{} orders stored, {} acknowledged",
            a.stored, a.acknowledged
        ));
    }
    for (what, count) in [
        (
            "events in a feed twice (same event id)",
            a.duplicate_event_ids,
        ),
        (
            "events in a feed twice (same stream and version)",
            a.duplicate_versions,
        ),
        ("orders ended twice", a.ended_twice),
        ("orders paid twice", a.paid_twice),
    ] {
        if count > 0 {
            v.push(format!("{count} {what}"));
        }
    }
    for (product, u) in &a.units {
        if u.created != u.stocked || u.available + u.held + u.sold != u.created {
            v.push(format!(
                "{product}: {} available + {} held + {} sold of {} created, {} stocked",
                u.available, u.held, u.sold, u.created, u.stocked
            ));
        }
        if u.sold != u.bought {
            v.push(format!(
                "{product}: {} units sold, the succeeded orders bought {}",
                u.sold, u.bought
            ));
        }
        if u.held_for_failed + u.sold_to_failed > 0 {
            v.push(format!(
                "{product}: {} units held and {} sold for failed orders",
                u.held_for_failed, u.sold_to_failed
            ));
        }
    }
    for (q, d) in &a.dlq {
        if *d > 0 {
            v.push(format!("{d} messages dead-lettered in {q}"));
        }
    }
    a
}

impl Accounting {
    pub fn events(&self) -> usize {
        self.events_by_context.values().sum()
    }
}

impl fmt::Display for Accounting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let row = |f: &mut fmt::Formatter<'_>, k: &str, v: String| writeln!(f, "  {k:<44} {v}");
        writeln!(f, "== load run in {} ==", self.namespace)?;
        let per: Vec<String> = self
            .events_by_context
            .iter()
            .map(|(c, n)| format!("{c} {n}"))
            .collect();
        let rate = self.events() as f64 / self.load_seconds.max(1e-9);
        row(
            f,
            "events",
            format!(
                "{} ({}) in {:.0} s of load = {rate:.0}/s",
                self.events(),
                per.join(", "),
                self.load_seconds
            ),
        )?;
        for (kind, (graceful, forced)) in &self.kills {
            row(
                f,
                &format!("kills: {kind}"),
                format!(
                    "{} ({graceful} graceful, {forced} forced)",
                    graceful + forced
                ),
            )?;
        }
        row(f, "orders posted by the simulator", self.posted.to_string())?;
        row(f, "  acknowledged (2xx)", self.acknowledged.to_string())?;
        row(f, "  refused (error status)", self.refused.to_string())?;
        row(
            f,
            "  unanswered (outcome unknown)",
            self.unanswered.to_string(),
        )?;
        row(f, "orders stored (order context)", self.stored.to_string())?;
        row(
            f,
            "  acknowledged, not stored",
            self.missing.len().to_string(),
        )?;
        row(
            f,
            "  stored, never acknowledged",
            self.not_acknowledged.to_string(),
        )?;
        row(f, "orders ORDER_SUCCEEDED", self.succeeded.to_string())?;
        row(f, "orders ORDER_FAILED", self.failed.to_string())?;
        row(
            f,
            "orders not final",
            format!("{} {:?}", self.stuck.values().sum::<u64>(), self.stuck),
        )?;
        row(
            f,
            "  (the simulator followed)",
            self.simulator_outcomes.to_string(),
        )?;
        row(
            f,
            "events duplicated (event id / version)",
            format!("{} / {}", self.duplicate_event_ids, self.duplicate_versions),
        )?;
        row(
            f,
            "orders ended twice / paid twice",
            format!("{} / {}", self.ended_twice, self.paid_twice),
        )?;
        writeln!(
            f,
            "  {:<24} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>9}",
            "product", "stocked", "created", "avail", "held", "sold", "bought", "failed's"
        )?;
        for (p, u) in &self.units {
            writeln!(
                f,
                "  {p:<24} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>9}",
                u.stocked,
                u.created,
                u.available,
                u.held,
                u.sold,
                u.bought,
                u.held_for_failed + u.sold_to_failed
            )?;
        }
        for (q, d) in &self.dlq {
            row(f, &format!("DLQ {q}"), d.to_string())?;
        }
        if self.violations.is_empty() {
            writeln!(f, "  every invariant holds")
        } else {
            writeln!(f, "  VIOLATIONS ({}):", self.violations.len())?;
            for v in &self.violations {
                writeln!(f, "  - {v}")?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    const RUN: &str = "abcdef12-0000";
    const P0: &str = "sim-abcdef12-p0";

    fn event(kind: &str, id: &str, version: u64, event_type: &str, payload: Value) -> Value {
        json!({"eventId": format!("{kind}-{id}-{version}"), "aggregateType": kind, "aggregateId": id,
               "version": version, "eventType": event_type, "payload": payload})
    }

    /// Two orders of one unit of P0: `a` succeeded (item i1 sold), `b`
    /// failed (item i2 released); a third item i3 never touched.
    fn healthy() -> Facts {
        let created = |id: &str| {
            event(
                "order",
                id,
                1,
                "ORDER_CREATED",
                json!({"lineItems": [{"productId": P0, "quantity": 1}]}),
            )
        };
        let order = vec![
            created("a"),
            created("b"),
            event("order", "a", 2, "ORDER_SUCCEEDED", json!({})),
            event("order", "b", 2, "ORDER_FAILED", json!({})),
        ];
        let item = |id: &str, v: u64, t: &str, reservation: Option<&str>| {
            event(
                "inventory",
                id,
                v,
                t,
                json!({"productId": P0, "reservationId": reservation}),
            )
        };
        let warehouse = vec![
            item("i1", 1, "INVENTORY_CREATED", None),
            item("i2", 1, "INVENTORY_CREATED", None),
            item("i3", 1, "INVENTORY_CREATED", None),
            item("i1", 2, "RESERVATION_CONNECTED", Some("a-0-0")),
            item("i2", 2, "RESERVATION_CONNECTED", Some("b-0-0")),
            item("i1", 3, "INVENTORY_RESERVED", Some("a-0-0")),
            item("i2", 3, "INVENTORY_RELEASED", Some("b-0-0")),
        ];
        let payment = vec![
            event(
                "payment",
                "pa",
                1,
                "PAYMENT_CREATED",
                json!({"orderId": "a"}),
            ),
            event(
                "payment",
                "pb",
                1,
                "PAYMENT_CREATED",
                json!({"orderId": "b"}),
            ),
        ];
        Facts {
            namespace: "ns".into(),
            report: json!({"runId": RUN, "ordersPosted": 2, "ordersAcknowledged": 2, "ordersRefused": 0,
                           "ordersUnanswered": 0, "plan": {"stockPerProduct": 3},
                           "outcomes": {"ORDER_SUCCEEDED": 1, "ORDER_FAILED": 1}}),
            acknowledged: Some(vec!["a".into(), "b".into()]),
            feeds: [
                ("order", order),
                ("warehouse", warehouse),
                ("payment", payment),
            ]
            .into_iter()
            .map(|(c, e)| (c.to_owned(), e))
            .collect(),
            inventory: json!({"products": {P0: {"created": 3, "available": 2, "held": 0, "sold": 1},
                                           "someone-else": {"created": 1, "available": 0, "held": 1, "sold": 0}}}),
            queues: [
                ("ns.order.order-worker", 0),
                ("ns.order.order-worker.dlq", 0),
                ("other.x.dlq", 4),
            ]
            .into_iter()
            .map(|(q, d)| (q.to_owned(), d))
            .collect(),
            kills: vec![Kill {
                at: Duration::from_secs(1),
                kind: Kind::Postgres,
                namespace: "ns".into(),
                pod: "postgres-0".into(),
                force: true,
            }],
            load_seconds: 10.0,
            settled: true,
        }
    }

    #[test]
    fn a_clean_run_breaks_no_invariant() {
        let a = account(&healthy());
        assert!(a.violations.is_empty(), "{a}");
        assert_eq!((a.stored, a.succeeded, a.failed), (2, 1, 1));
        assert_eq!(a.units[P0].bought, 1);
        assert_eq!(a.kills["PostgreSQL"], (0, 1));
        assert_eq!(
            a.dlq.len(),
            1,
            "only the run namespace's dead-letter queues"
        );
        assert_eq!(a.events(), 13);
    }

    #[test]
    fn a_lost_order_a_duplicate_a_unit_held_for_a_failed_order_and_a_dead_letter_are_each_named() {
        let mut f = healthy();
        f.acknowledged.as_mut().unwrap().push("lost".into());
        f.report["ordersAcknowledged"] = json!(3);
        let order = f.feeds.get_mut("order").unwrap();
        let again = order[2].clone();
        order.push(again);
        order.push(event(
            "order",
            "c",
            1,
            "ORDER_CREATED",
            json!({"lineItems": [{"productId": P0, "quantity": 1}]}),
        ));
        let warehouse = f.feeds.get_mut("warehouse").unwrap();
        warehouse.pop(); // i2 never released: held for failed order b
        f.inventory["products"][P0] = json!({"created": 3, "available": 1, "held": 1, "sold": 1});
        f.queues.insert("ns.order.order-worker.dlq".into(), 2);
        let a = account(&f);
        let text = a.violations.join("\n");
        for expected in [
            "1 orders are not final",
            "1 acknowledged orders are not in the order context",
            "1 orders of the run never acknowledged",
            "1 events in a feed twice (same event id)",
            "1 orders ended twice",
            "1 units held and 0 sold for failed orders",
            "2 messages dead-lettered in ns.order.order-worker.dlq",
        ] {
            assert!(text.contains(expected), "{expected:?} not in:\n{text}");
        }
    }

    #[test]
    fn a_reservation_id_names_its_order() {
        assert_eq!(
            order_of_reservation("134305d2-8284-47cb-b6fd-7ff0497c8c2e-0-12"),
            "134305d2-8284-47cb-b6fd-7ff0497c8c2e"
        );
    }
}
