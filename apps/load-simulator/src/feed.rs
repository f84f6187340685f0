//! Follows posted orders to their final state through the order context's
//! hypermedia event log (`GET /v1/events?after=`): one sequential reader
//! per run instead of polling every order, so measuring adds almost no load
//! to the system measured. Latency is post -> the moment the final event
//! is read (the feed is read every [`POLL`] when caught up).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

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
