//! Follows posted orders to their final state through the order context's
//! hypermedia event log (`GET /v1/events?after=`): one sequential reader
//! per run instead of polling every order, so measuring adds almost no load
//! to the system measured. Latency is post -> the moment the final event
//! is read (the feed is read every [`POLL`] when caught up).

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde::Serialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::report::Report;

/// Pause between reads once the reader has caught up with the feed.
pub const POLL: Duration = Duration::from_millis(50);
const PAGE: u64 = 100;

#[derive(Default)]
struct Tracked {
    /// Posted, not yet seen final: when each was posted.
    posted: HashMap<String, Instant>,
    /// Seen final before their post returned: outcome and when seen.
    early: HashMap<String, (bool, Instant)>,
}

/// Orders posted and not yet seen final, and finals seen before their post returned.
#[derive(Clone, Default)]
pub struct Pending {
    inner: Arc<Mutex<Tracked>>,
}

impl Pending {
    fn lock(&self) -> std::sync::MutexGuard<'_, Tracked> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a posted order; reports it at once if its end was already read.
    pub fn posted(&self, report: &Report, order_id: String, at: Instant) {
        let mut inner = self.lock();
        match inner.early.remove(&order_id) {
            Some((succeeded, seen)) => report.order_final(
                succeeded,
                seen.saturating_duration_since(at).as_millis() as u64,
            ),
            None => {
                inner.posted.insert(order_id, at);
            }
        }
    }

    fn ended(&self, report: &Report, order_id: &str, succeeded: bool) {
        let mut inner = self.lock();
        match inner.posted.remove(order_id) {
            Some(posted) => report.order_final(succeeded, posted.elapsed().as_millis() as u64),
            // Bounded: only events of orders this run is posting right now land here.
            None if inner.early.len() < 100_000 => {
                inner
                    .early
                    .insert(order_id.to_owned(), (succeeded, Instant::now()));
            }
            None => {}
        }
    }

    /// Gives up on every order still pending.
    fn abandon(&self, report: &Report) {
        let mut inner = self.lock();
        for _ in inner.posted.drain() {
            report.unresolved();
        }
    }

    pub fn len(&self) -> usize {
        self.lock().posted.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

async fn page(http: &reqwest::Client, base: &str, after: u64, limit: u64) -> Option<Vec<Value>> {
    let url = format!("{base}/v1/events?after={after}&limit={limit}");
    // A transient failure (a Service whose routes are still being programmed
    // right after the system came up, a restarting pod) is retried briefly.
    for attempt in 0..PAGE_ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        let Ok(response) = http.get(&url).send().await else {
            continue;
        };
        let Ok(doc) = response.json::<Value>().await else {
            continue;
        };
        if let Some(events) = doc["_embedded"]["events"].as_array() {
            return Some(events.clone());
        }
    }
    None
}

/// Tries of one feed page before a run gives up on the order context.
const PAGE_ATTEMPTS: u32 = 10;

/// The position of the feed's last event: grows a bound, then bisects
/// (about 2·log2(n) small reads), so a run never replays old history.
pub async fn end_position(http: &reqwest::Client, base: &str) -> Option<u64> {
    let mut high = 1u64;
    while !page(http, base, high, 1).await?.is_empty() {
        high = high.saturating_mul(2);
    }
    let mut low = 0u64; // some event after `low` exists, unless the feed is empty
    if page(http, base, 0, 1).await?.is_empty() {
        return Some(0);
    }
    while high - low > 1 {
        let mid = low + (high - low) / 2;
        if page(http, base, mid, 1).await?.is_empty() {
            high = mid;
        } else {
            low = mid;
        }
    }
    Some(high)
}

/// Reads the feed from `after` until every posted order is final and
/// `posting_done` is set, or `deadline_after_posting` passed since then.
pub async fn follow(
    http: reqwest::Client,
    base: String,
    mut after: u64,
    report: Arc<Report>,
    pending: Pending,
    posting_done: CancellationToken,
    cancel: CancellationToken,
) {
    let follow_for = Duration::from_secs(report.plan.follow_seconds);
    let mut done_at: Option<Instant> = None;
    loop {
        if cancel.is_cancelled() {
            break;
        }
        if posting_done.is_cancelled() {
            let since = *done_at.get_or_insert_with(Instant::now);
            if pending.is_empty() || since.elapsed() > follow_for {
                break;
            }
        }
        let events = page(&http, &base, after, PAGE).await.unwrap_or_default();
        for e in &events {
            after = e["position"].as_u64().unwrap_or(after).max(after);
            if e["aggregateType"] != "order" {
                continue;
            }
            let id = e["aggregateId"].as_str().unwrap_or_default();
            match e["eventType"].as_str() {
                Some("ORDER_SUCCEEDED") => pending.ended(&report, id, true),
                Some("ORDER_FAILED") => pending.ended(&report, id, false),
                _ => {}
            }
        }
        if (events.len() as u64) < PAGE {
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }
    pending.abandon(&report);
}

/// What the order context holds of one run, read from its feed once the run
/// is over: the orders of the run's products, matched against the orders the
/// run was acknowledged for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContextTally {
    /// Orders of the run the context holds (ORDER_CREATED of the run's products).
    pub orders: u64,
    /// Acknowledged orders the context holds.
    pub acknowledged_found: u64,
    /// Acknowledged orders the context does not hold: lost after their answer.
    pub acknowledged_missing: u64,
    /// Orders of the run the context holds that no answer named (POSTs that
    /// got no answer, or applied twice).
    pub not_acknowledged: u64,
    #[serde(rename = "ORDER_SUCCEEDED")]
    pub succeeded: u64,
    #[serde(rename = "ORDER_FAILED")]
    pub failed: u64,
    /// Orders of the run that are neither ORDER_SUCCEEDED nor ORDER_FAILED.
    pub not_final: u64,
    /// Orders of the run with more than one final event.
    pub ended_twice: u64,
    /// The first [`MISSING_IDS`] acknowledged orders the context does not hold.
    pub missing_ids: Vec<String>,
}

/// How many missing order ids a [`ContextTally`] names.
pub const MISSING_IDS: usize = 20;

/// Whether an ORDER_CREATED event orders one of the run's products.
fn of_run(created: &Value, prefix: &str) -> bool {
    created["payload"]["lineItems"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|l| {
            l["productId"]
                .as_str()
                .is_some_and(|p| p.starts_with(prefix))
        })
}

/// Counts the orders of a run in order-context `events` (its feed, any
/// part holding the whole run): the run's orders are those of its
/// products (`prefix`) and those `acknowledged`.
pub fn tally_orders(events: &[Value], acknowledged: &[String], prefix: &str) -> ContextTally {
    let mut run: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut finals: Vec<(&str, &str)> = Vec::new();
    for e in events.iter().filter(|e| e["aggregateType"] == "order") {
        let id = e["aggregateId"].as_str().unwrap_or_default();
        match e["eventType"].as_str().unwrap_or_default() {
            "ORDER_CREATED" if of_run(e, prefix) => {
                run.entry(id).or_default();
            }
            end @ ("ORDER_SUCCEEDED" | "ORDER_FAILED") => finals.push((id, end)),
            _ => {}
        }
    }
    let acknowledged: HashSet<&str> = acknowledged.iter().map(String::as_str).collect();
    for (id, end) in finals {
        if let Some(ends) = run.get_mut(id) {
            ends.push(end);
        }
    }
    let mut tally = ContextTally {
        orders: run.len() as u64,
        ..ContextTally::default()
    };
    for (id, ends) in &run {
        if acknowledged.contains(id) {
            tally.acknowledged_found += 1;
        } else {
            tally.not_acknowledged += 1;
        }
        match ends.first() {
            Some(&"ORDER_SUCCEEDED") => tally.succeeded += 1,
            Some(_) => tally.failed += 1,
            None => tally.not_final += 1,
        }
        tally.ended_twice += u64::from(ends.len() > 1);
    }
    let mut missing: Vec<&str> = acknowledged
        .iter()
        .copied()
        .filter(|id| !run.contains_key(id))
        .collect();
    missing.sort_unstable();
    tally.acknowledged_missing = missing.len() as u64;
    tally.missing_ids = missing
        .into_iter()
        .take(MISSING_IDS)
        .map(str::to_owned)
        .collect();
    tally
}

/// Reads the order context's feed from `after` to its end and tallies the
/// run's orders ([`tally_orders`]); `None` when the feed cannot be read.
pub async fn read_context(
    http: &reqwest::Client,
    base: &str,
    mut after: u64,
    acknowledged: &[String],
    prefix: &str,
) -> Option<ContextTally> {
    let mut events = Vec::new();
    loop {
        let batch = page(http, base, after, PAGE).await?;
        for e in &batch {
            after = e["position"].as_u64().unwrap_or(after).max(after);
        }
        let full = batch.len() as u64 == PAGE;
        events.extend(batch.into_iter().filter(|e| {
            matches!(
                e["eventType"].as_str(),
                Some("ORDER_CREATED" | "ORDER_SUCCEEDED" | "ORDER_FAILED")
            )
        }));
        if !full {
            return Some(tally_orders(&events, acknowledged, prefix));
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn created(id: &str, product: &str) -> Value {
        json!({"aggregateType": "order", "aggregateId": id, "eventType": "ORDER_CREATED",
               "payload": {"lineItems": [{"productId": product, "quantity": 1}]}})
    }
    fn ended(id: &str, how: &str) -> Value {
        json!({"aggregateType": "order", "aggregateId": id, "eventType": how, "payload": {}})
    }

    #[test]
    fn the_orders_of_a_run_are_told_apart_by_its_products_and_matched_to_its_answers() {
        let events = vec![
            created("a", "sim-run1-p0"),
            created("b", "sim-run1-p1"),
            created("c", "sim-run1-p0"),
            created("other", "sim-run2-p0"),
            created("d", "sim-run1-p0"),
            ended("a", "ORDER_SUCCEEDED"),
            ended("b", "ORDER_FAILED"),
            ended("other", "ORDER_SUCCEEDED"),
            ended("d", "ORDER_SUCCEEDED"),
            ended("d", "ORDER_FAILED"),
        ];
        let acknowledged: Vec<String> = ["a", "b", "c", "lost"].map(String::from).to_vec();
        let tally = tally_orders(&events, &acknowledged, "sim-run1-p");
        assert_eq!(
            tally,
            ContextTally {
                orders: 4,
                acknowledged_found: 3,
                acknowledged_missing: 1,
                not_acknowledged: 1,
                succeeded: 2,
                failed: 1,
                not_final: 1,
                ended_twice: 1,
                missing_ids: vec!["lost".into()],
            }
        );
    }

    #[test]
    fn a_tally_names_at_most_twenty_missing_orders_yet_counts_them_all() {
        let acknowledged: Vec<String> = (0..30).map(|i| format!("o{i:02}")).collect();
        let tally = tally_orders(&[], &acknowledged, "sim-x-p");
        assert_eq!(tally.acknowledged_missing, 30);
        assert_eq!(tally.missing_ids.len(), MISSING_IDS);
        assert_eq!(tally.orders, 0);
    }
}
