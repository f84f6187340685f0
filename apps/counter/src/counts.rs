//! The counts: events by type and by destination since start and over
//! sliding time windows, each event counted once however often it arrives
//! (the broker redelivers; a feed being read again holds what the broker
//! delivered). The CloudEvent id is remembered for the [`REMEMBERED_IDS`]
//! most recent events — most recent by the event's own time, so a feed read
//! oldest first never pushes out the ids the broker just delivered. Types
//! and destinations are bounded ([`MAX_TYPES`], [`MAX_DESTINATIONS`]) so a
//! flood of odd names cannot grow memory or Prometheus cardinality.
//!
//! Each event is placed at its own second (when it was recorded), which may
//! be earlier than the last one counted: a feed read at start brings the
//! past. Seconds are kept for the longest window only.

use std::{
    collections::{BTreeMap, BTreeSet, HashSet},
    sync::{Arc, Mutex},
};

use serde_json::{Value, json};

/// Distinct event types tracked; later ones are counted as `other`.
pub const MAX_TYPES: usize = 500;
/// Distinct destinations tracked; later ones are counted as `other`.
pub const MAX_DESTINATIONS: usize = 100;
/// Event ids remembered to drop repeats.
pub const REMEMBERED_IDS: usize = 200_000;
/// The windows reported, by name and length in seconds.
pub const WINDOWS: &[(&str, u64)] = &[("1m", 60), ("5m", 300), ("15m", 900), ("1h", 3_600)];
const LONGEST_WINDOW: u64 = 3_600;
/// Buckets of a [`Counts::series`].
pub const SERIES_POINTS: u64 = 60;

/// One event to count.
#[derive(Clone, Copy, Debug)]
pub struct Event<'a> {
    /// The destination it was tapped on (or whose feed held it).
    pub destination: &'a str,
    /// Its routing key, `<aggregate>.<EVENT>`.
    pub event_type: &'a str,
    /// The CloudEvent id (the stored event's `eventId`).
    pub id: &'a str,
    /// The unix second it was recorded.
    pub at: u64,
}

/// Counts by type and by destination.
#[derive(Default)]
pub(crate) struct Tally {
    pub(crate) by_type: BTreeMap<String, u64>,
    pub(crate) by_destination: BTreeMap<String, u64>,
}

impl Tally {
    fn add(&mut self, event_type: &str, destination: &str, n: u64) {
        *self.by_type.entry(event_type.to_owned()).or_default() += n;
        *self
            .by_destination
            .entry(destination.to_owned())
            .or_default() += n;
    }
}

#[derive(Default)]
pub(crate) struct Inner {
    pub(crate) totals: Tally,
    /// Per unix second with events in the longest window.
    pub(crate) seconds: BTreeMap<u64, Tally>,
    seen: HashSet<String>,
    /// The remembered ids by (event second, id): the oldest is forgotten first.
    seen_order: BTreeSet<(u64, String)>,
    pub(crate) duplicates: u64,
}

/// Shared between the workers and feed readers (record) and the web role (reads).
#[derive(Clone, Default)]
pub struct Counts {
    inner: Arc<Mutex<Inner>>,
}

/// `order.ORDER_CREATED` is kept; anything outside `[A-Za-z0-9._-]` is replaced.
fn label(name: &str) -> String {
    let clean: String = name
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

/// `name` as a key of `known`, or `other` once `max` keys are known.
fn bounded(known: &BTreeMap<String, u64>, name: &str, max: usize) -> String {
    let key = label(name);
    if !known.contains_key(&key) && known.len() >= max {
        "other".into()
    } else {
        key
    }
}

impl Inner {
    /// Counts by type and destination in the window of `length` seconds ending at `now`.
    pub(crate) fn window(&self, now: u64, length: u64) -> Tally {
        let mut out = Tally::default();
        for counts in self.seconds.range((now + 1).saturating_sub(length)..=now) {
            for (t, n) in &counts.1.by_type {
                *out.by_type.entry(t.clone()).or_default() += n;
            }
            for (d, n) in &counts.1.by_destination {
                *out.by_destination.entry(d.clone()).or_default() += n;
            }
        }
        out
    }

    /// Forgets ids past [`REMEMBERED_IDS`], oldest event first.
    fn remember(&mut self, id: &str, at: u64) {
        self.seen.insert(id.to_owned());
        self.seen_order.insert((at, id.to_owned()));
        while self.seen_order.len() > REMEMBERED_IDS {
            if let Some((_, old)) = self.seen_order.pop_first() {
                self.seen.remove(&old);
            }
        }
    }
}

impl Counts {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves counts that are still valid.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts `event` (at its own second, or `now` if that is later than
    /// `now`: a skewed clock); false when its id was already counted.
    /// Windows end at `now`: an event older than the longest reaches only
    /// the totals.
    pub fn record(&self, event: &Event<'_>, now: u64) -> bool {
        let at = event.at.min(now);
        let mut inner = self.lock();
        if inner.seen.contains(event.id) {
            inner.duplicates += 1;
            return false;
        }
        inner.remember(event.id, at);
        let event_type = bounded(&inner.totals.by_type, event.event_type, MAX_TYPES);
        let destination = bounded(
            &inner.totals.by_destination,
            event.destination,
            MAX_DESTINATIONS,
        );
        inner.totals.add(&event_type, &destination, 1);
        let oldest = now.saturating_sub(LONGEST_WINDOW);
        if at >= oldest {
            inner
                .seconds
                .entry(at)
                .or_default()
                .add(&event_type, &destination, 1);
        }
        while let Some(first) = inner.seconds.first_entry() {
            if *first.key() >= oldest {
                break;
            }
            first.remove();
        }
        true
    }

    /// Events by type and by destination over the window of `length`
    /// seconds ending at `now`, in [`SERIES_POINTS`] buckets of
    /// `length / SERIES_POINTS` seconds, oldest first — a chart's points.
    /// Names without an event in the window are left out.
    pub fn series(&self, now: u64, length: u64) -> Value {
        let step = (length / SERIES_POINTS).max(1);
        let points = length.div_ceil(step) as usize;
        // The last bucket ends at `now` (inclusive).
        let start = (now + 1).saturating_sub(step * points as u64);
        let inner = self.lock();
        let mut by_type: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
        let mut by_destination: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
        for (second, counts) in inner.seconds.range(start..=now) {
            let bucket = ((second - start) / step) as usize;
            for (t, n) in &counts.by_type {
                by_type.entry(t).or_insert_with(|| vec![0; points])[bucket] += n;
            }
            for (d, n) in &counts.by_destination {
                by_destination.entry(d).or_insert_with(|| vec![0; points])[bucket] += n;
            }
        }
        json!({
            "from": start,
            "step": step,
            "points": points,
            "byType": by_type,
            "byDestination": by_destination,
        })
    }

    /// The JSON the web role serves (without the feeds' states).
    pub fn to_json(&self, now: u64) -> Value {
        let inner = self.lock();
        let mut windows = serde_json::Map::new();
        let mut windows_by_destination = serde_json::Map::new();
        for (name, length) in WINDOWS {
            let tally = inner.window(now, *length);
            windows.insert((*name).to_owned(), json!(tally.by_type));
            windows_by_destination.insert((*name).to_owned(), json!(tally.by_destination));
        }
        json!({
            "total": inner.totals.by_type.values().sum::<u64>(),
            "byType": inner.totals.by_type,
            "byDestination": inner.totals.by_destination,
            "windows": windows,
            "windowsByDestination": windows_by_destination,
            "duplicatesIgnored": inner.duplicates,
        })
    }
}

#[cfg(test)]
mod tests;
