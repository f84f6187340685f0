//! The counts: events by type since start and over sliding time windows,
//! each event counted once however often the broker delivers it (the
//! CloudEvent id is remembered for the last [`REMEMBERED_IDS`] events).
//! Types are bounded ([`MAX_TYPES`]) so a flood of odd types cannot grow
//! memory or Prometheus cardinality without limit.

use std::{
    collections::{BTreeMap, HashSet, VecDeque},
    sync::{Arc, Mutex},
};

use serde_json::{Value, json};

/// Distinct event types tracked; later ones are counted as `other`.
pub const MAX_TYPES: usize = 500;
/// Event ids remembered to drop redeliveries.
pub const REMEMBERED_IDS: usize = 200_000;
/// The windows reported, by name and length in seconds.
pub const WINDOWS: &[(&str, u64)] = &[("1m", 60), ("5m", 300), ("15m", 900), ("1h", 3_600)];
const LONGEST_WINDOW: u64 = 3_600;
/// Buckets of a [`Counts::series`].
pub const SERIES_POINTS: u64 = 60;

#[derive(Default)]
struct Inner {
    totals: BTreeMap<String, u64>,
    /// Per second with events: (unix second, counts by type), oldest first.
    seconds: VecDeque<(u64, BTreeMap<String, u64>)>,
    seen: HashSet<String>,
    seen_order: VecDeque<String>,
    duplicates: u64,
}

/// Shared between the worker (records) and the web role (reads).
#[derive(Clone, Default)]
pub struct Counts {
    inner: Arc<Mutex<Inner>>,
}

/// `order.ORDER_CREATED` is kept; anything outside `[A-Za-z0-9._-]` is replaced.
fn label(event_type: &str) -> String {
    let clean: String = event_type
        .chars()
        .take(120)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.is_empty() {
        "unknown".into()
    } else {
        clean
    }
}

impl Counts {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves counts that are still valid.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts one event of `event_type` with id `id` at unix second `now`;
    /// false when the id was already counted (a redelivery).
    pub fn record(&self, event_type: &str, id: &str, now: u64) -> bool {
        let mut inner = self.lock();
        if !inner.seen.insert(id.to_owned()) {
            inner.duplicates += 1;
            return false;
        }
        inner.seen_order.push_back(id.to_owned());
        if inner.seen_order.len() > REMEMBERED_IDS
            && let Some(old) = inner.seen_order.pop_front()
        {
            inner.seen.remove(&old);
        }
        let mut key = label(event_type);
        if !inner.totals.contains_key(&key) && inner.totals.len() >= MAX_TYPES {
            key = "other".into();
        }
        *inner.totals.entry(key.clone()).or_default() += 1;
        match inner.seconds.back_mut() {
            Some((second, counts)) if *second == now => *counts.entry(key).or_default() += 1,
            _ => inner.seconds.push_back((now, BTreeMap::from([(key, 1)]))),
        }
        while inner
            .seconds
            .front()
            .is_some_and(|(s, _)| s + LONGEST_WINDOW < now)
        {
            inner.seconds.pop_front();
        }
        true
    }

    /// Counts by type in the window of `length` seconds ending at `now`.
    fn window(inner: &Inner, now: u64, length: u64) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for (second, counts) in &inner.seconds {
            if second + length > now {
                for (t, n) in counts {
                    *out.entry(t.clone()).or_default() += n;
                }
            }
        }
        out
    }

    /// Events by type over the window of `length` seconds ending at `now`,
    /// in [`SERIES_POINTS`] buckets of `length / SERIES_POINTS` seconds,
    /// oldest first — a chart's points. Types without an event in the
    /// window are left out.
    pub fn series(&self, now: u64, length: u64) -> Value {
        let step = (length / SERIES_POINTS).max(1);
        let points = length.div_ceil(step) as usize;
        // The last bucket ends at `now` (inclusive).
        let start = (now + 1).saturating_sub(step * points as u64);
        let inner = self.lock();
        let mut by_type: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
        for (second, counts) in &inner.seconds {
            if *second < start || *second > now {
                continue;
            }
            let bucket = ((second - start) / step) as usize;
            for (t, n) in counts {
                by_type.entry(t).or_insert_with(|| vec![0; points])[bucket] += n;
            }
        }
        json!({
            "from": start,
            "step": step,
            "points": points,
            "byType": by_type,
        })
    }

    /// The JSON the web role serves.
    pub fn to_json(&self, now: u64) -> Value {
        let inner = self.lock();
        let windows: serde_json::Map<String, Value> = WINDOWS
            .iter()
            .map(|(name, length)| {
                (
                    (*name).to_owned(),
                    json!(Self::window(&inner, now, *length)),
                )
            })
            .collect();
        json!({
            "total": inner.totals.values().sum::<u64>(),
            "byType": inner.totals,
            "windows": windows,
            "duplicatesIgnored": inner.duplicates,
        })
    }

    /// The Prometheus text exposition of the counts.
    pub fn to_prometheus(&self, now: u64) -> String {
        let inner = self.lock();
        let mut out = String::from(
            "# HELP eventflow_counter_events_total Events counted by type since the counter started.\n\
             # TYPE eventflow_counter_events_total counter\n",
        );
        for (t, n) in &inner.totals {
            out.push_str(&format!(
                "eventflow_counter_events_total{{type=\"{t}\"}} {n}\n"
            ));
        }
        out.push_str(
            "# HELP eventflow_counter_window_events Events counted by type in the last window.\n\
             # TYPE eventflow_counter_window_events gauge\n",
        );
        for (name, length) in WINDOWS {
            for (t, n) in Self::window(&inner, now, *length) {
                out.push_str(&format!(
                    "eventflow_counter_window_events{{type=\"{t}\",window=\"{name}\"}} {n}\n"
                ));
            }
        }
        out.push_str(&format!(
            "# HELP eventflow_counter_duplicates_total Redelivered events not counted again.\n\
             # TYPE eventflow_counter_duplicates_total counter\n\
             eventflow_counter_duplicates_total {}\n",
            inner.duplicates
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_counted_by_type_once_each() {
        let c = Counts::default();
        assert!(c.record("order.ORDER_CREATED", "e1", 100));
        assert!(c.record("order.ORDER_CREATED", "e2", 100));
        assert!(c.record("payment.PAYMENT_CREATED", "e3", 101));
        assert!(
            !c.record("order.ORDER_CREATED", "e1", 102),
            "a redelivery is not counted"
        );
        let j = c.to_json(102);
        assert_eq!(j["total"], 3);
        assert_eq!(j["byType"]["order.ORDER_CREATED"], 2);
        assert_eq!(j["duplicatesIgnored"], 1);
    }

    #[test]
    fn windows_only_hold_recent_events() {
        let c = Counts::default();
        c.record("a.X", "1", 1_000);
        c.record("a.X", "2", 1_200);
        c.record("a.X", "3", 1_290);
        let j = c.to_json(1_300);
        assert_eq!(j["windows"]["1m"]["a.X"], 1);
        assert_eq!(j["windows"]["5m"]["a.X"], 2);
        assert_eq!(j["windows"]["15m"]["a.X"], 3);
        assert_eq!(j["byType"]["a.X"], 3);
        // An hour later the windows are empty but the total stays.
        let j = c.to_json(10_000);
        assert_eq!(j["windows"]["1h"], json!({}));
        assert_eq!(j["total"], 3);
    }

    #[test]
    fn prometheus_text_carries_totals_and_windows_with_safe_labels() {
        let c = Counts::default();
        c.record("order.ORDER_CREATED", "1", 5);
        c.record("bad\"type{}", "2", 5);
        let text = c.to_prometheus(5);
        assert!(
            text.contains("eventflow_counter_events_total{type=\"order.ORDER_CREATED\"} 1\n"),
            "{text}"
        );
        assert!(text.contains(
            "eventflow_counter_window_events{type=\"order.ORDER_CREATED\",window=\"1m\"} 1\n"
        ));
        assert!(text.contains("type=\"bad_type__\""), "{text}");
    }

    #[test]
    fn a_series_puts_each_event_in_its_bucket_oldest_first() {
        let c = Counts::default();
        c.record("a.X", "1", 1_000); // before the 1 m window ending at 1_100
        c.record("a.X", "2", 1_041); // first bucket of it
        c.record("a.X", "3", 1_100); // last bucket
        c.record("b.Y", "4", 1_100);
        c.record("b.Y", "5", 1_100);
        let j = c.series(1_100, 60);
        assert_eq!(
            (j["from"].as_u64(), j["step"].as_u64()),
            (Some(1_041), Some(1))
        );
        let x = j["byType"]["a.X"].as_array().unwrap();
        assert_eq!(x.len(), 60);
        assert_eq!((x[0].as_u64(), x[59].as_u64()), (Some(1), Some(1)));
        assert_eq!(x.iter().filter_map(Value::as_u64).sum::<u64>(), 2);
        assert_eq!(j["byType"]["b.Y"][59], 2);
        // The hour in minutes holds all three of a.X.
        let j = c.series(1_100, 3_600);
        assert_eq!(j["step"], 60);
        assert_eq!(
            j["byType"]["a.X"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_u64)
                .sum::<u64>(),
            3
        );
        assert_eq!(c.series(99_999, 60)["byType"], json!({}));
    }

    #[test]
    fn the_number_of_types_is_bounded() {
        let c = Counts::default();
        for i in 0..MAX_TYPES + 10 {
            c.record(&format!("t.E{i}"), &i.to_string(), 1);
        }
        let j = c.to_json(1);
        assert_eq!(j["byType"].as_object().unwrap().len(), MAX_TYPES + 1);
        assert_eq!(j["byType"]["other"], 10);
    }
}
