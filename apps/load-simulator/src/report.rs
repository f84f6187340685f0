//! What a run did, as it goes: counters updated by the run's tasks and the
//! latencies (post -> final state) of the orders it followed.

use std::sync::Mutex;

use serde::Serialize;
use serde_json::{Value, json};

use crate::{feed::ContextTally, plan::Plan};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunStatus {
    Running,
    Stopped,
    Completed,
    Failed,
}

#[derive(Debug, Default)]
struct Tally {
    accounts_created: u64,
    items_stocked: u64,
    /// Orders whose POST got a 2xx answer naming the order.
    orders_acknowledged: u64,
    /// Orders whose POST was answered with an error status: not applied.
    orders_refused: u64,
    /// Orders whose POST got no answer (or none naming the order) after
    /// every try: whether the app applied them is unknown.
    orders_unanswered: u64,
    orders_designed_to_fail: u64,
    /// Every POST of the run that failed (refused or unanswered), set-up included.
    request_errors: u64,
    /// The ids of the acknowledged orders, in the order their answers came.
    acknowledged: Vec<String>,
    /// What the order context held of the run once it was over.
    context: Option<ContextTally>,
    succeeded: u64,
    failed: u64,
    /// Posted orders not seen final within the follow limit.
    unresolved: u64,
    latencies_ms: Vec<u64>,
    last_error: Option<String>,
    warehouse: Option<String>,
}

#[derive(Debug)]
pub struct Report {
    pub id: String,
    pub plan: Plan,
    started: std::time::Instant,
    started_at: String,
    status: Mutex<(RunStatus, Option<String>, Option<f64>)>,
    tally: Mutex<Tally>,
}

fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

impl Report {
    pub fn new(id: String, plan: Plan) -> Self {
        Self {
            id,
            plan,
            started: std::time::Instant::now(),
            started_at: eventflow_runtime::store::now_rfc3339(),
            status: Mutex::new((RunStatus::Running, None, None)),
            tally: Mutex::new(Tally::default()),
        }
    }

    fn tally(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.tally
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn status(&self) -> RunStatus {
        self.status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0
    }

    /// Ends the run (once): later calls keep the first ending.
    pub fn finish(&self, status: RunStatus) {
        let mut s = self
            .status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if s.0 == RunStatus::Running {
            *s = (
                status,
                Some(eventflow_runtime::store::now_rfc3339()),
                Some(self.started.elapsed().as_secs_f64()),
            );
        }
    }

    pub fn account_created(&self) {
        self.tally().accounts_created += 1;
    }
    pub fn stocked(&self, warehouse: &str, items: u64) {
        let mut t = self.tally();
        t.items_stocked += items;
        t.warehouse = Some(warehouse.to_owned());
    }
    /// A 2xx answer naming order `id`.
    pub fn order_acknowledged(&self, id: &str, designed_to_fail: bool) {
        let mut t = self.tally();
        t.orders_acknowledged += 1;
        t.orders_designed_to_fail += u64::from(designed_to_fail);
        t.acknowledged.push(id.to_owned());
    }
    /// An order POST answered with an error status.
    pub fn order_refused(&self, error: String) {
        self.tally().orders_refused += 1;
        self.request_error(error);
    }
    /// An order POST that got no usable answer: its outcome is unknown.
    pub fn order_unanswered(&self, error: String) {
        self.tally().orders_unanswered += 1;
        self.request_error(error);
    }
    /// The ids of the orders acknowledged so far.
    pub fn acknowledged(&self) -> Vec<String> {
        self.tally().acknowledged.clone()
    }
    /// What the order context holds of the run, read at its end.
    pub fn order_context(&self, context: ContextTally) {
        self.tally().context = Some(context);
    }
    pub fn request_error(&self, error: String) {
        let mut t = self.tally();
        t.request_errors += 1;
        t.last_error = Some(error);
    }
    pub fn order_final(&self, succeeded: bool, latency_ms: u64) {
        let mut t = self.tally();
        if succeeded {
            t.succeeded += 1;
        } else {
            t.failed += 1;
        }
        t.latencies_ms.push(latency_ms);
    }
    /// `{"acknowledged": [ids], "count": n}`: the orders the run was told it made.
    pub fn orders_json(&self, base: &str) -> Value {
        let t = self.tally();
        let url = format!("{base}/v1/runs/{}", self.id);
        json!({ "acknowledged": t.acknowledged, "count": t.acknowledged.len(),
                "_links": { "self": { "href": format!("{url}/orders") }, "run": { "href": url } } })
    }

    pub fn unresolved(&self) {
        self.tally().unresolved += 1;
    }

    /// True once every posted order is final or given up on.
    pub fn settled(&self) -> bool {
        let t = self.tally();
        t.succeeded + t.failed + t.unresolved >= t.orders_acknowledged
    }

    pub fn to_json(&self, base: &str) -> Value {
        let (status, finished_at, duration) = self
            .status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let t = self.tally();
        let mut sorted = t.latencies_ms.clone();
        sorted.sort_unstable();
        let elapsed = duration.unwrap_or_else(|| self.started.elapsed().as_secs_f64());
        let finals = t.succeeded + t.failed;
        let url = format!("{base}/v1/runs/{}", self.id);
        let mut links =
            json!({ "self": { "href": url }, "orders": { "href": format!("{url}/orders") } });
        if status == RunStatus::Running {
            links["stop"] = json!({ "href": format!("{url}/commands/stop") });
        }
        json!({
            "runId": self.id,
            "status": status,
            "plan": self.plan,
            "startedAt": self.started_at,
            "finishedAt": finished_at,
            "elapsedSeconds": elapsed,
            "warehouseId": t.warehouse,
            "accountsCreated": t.accounts_created,
            "itemsStocked": t.items_stocked,
            "ordersPosted": t.orders_acknowledged + t.orders_refused + t.orders_unanswered,
            "ordersAcknowledged": t.orders_acknowledged,
            "ordersRefused": t.orders_refused,
            "ordersUnanswered": t.orders_unanswered,
            "ordersDesignedToFail": t.orders_designed_to_fail,
            "requestErrors": t.request_errors,
            "lastError": t.last_error,
            "outcomes": { "ORDER_SUCCEEDED": t.succeeded, "ORDER_FAILED": t.failed, "unresolved": t.unresolved,
                          "pending": t.orders_acknowledged.saturating_sub(finals + t.unresolved) },
            "orderContext": t.context,
            "failureShare": if finals == 0 { 0.0 } else { t.failed as f64 / finals as f64 },
            "ordersPerSecond": if elapsed > 0.0 { finals as f64 / elapsed } else { 0.0 },
            "latencyMs": { "p50": percentile(&sorted, 50.0), "p99": percentile(&sorted, 99.0), "max": sorted.last() },
            "_links": links,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
