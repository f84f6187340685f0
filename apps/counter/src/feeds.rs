//! `COUNTER_FEEDS`: the contexts' hypermedia feeds (`GET /v1/events`) the
//! counter reads at start to count what happened before it ran, as
//! comma-separated `destination=url` pairs (`order=http://ecommerce-order-web:8080/v1/events`),
//! and the state of each read ([`FeedStates`]), served in `/v1/counts`.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use eventflow_contract::bindings::Subscription;
use serde::Serialize;
use serde_json::Value;

/// The variable naming the feeds.
pub const VAR: &str = "COUNTER_FEEDS";

/// One feed to read: the events of `destination` as a context recorded them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Feed {
    pub destination: String,
    /// The feed's URL (`…/v1/events`), without a query.
    pub url: String,
    /// The subscription's binding patterns: only the events the broker
    /// would deliver to the counter are counted.
    pub routing_keys: Vec<String>,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FeedsError {
    #[error("{VAR} entry {entry:?} is not destination=url")]
    NotAPair { entry: String },
    #[error(
        "{VAR} entry {entry:?}: {url:?} is not an http:// or https:// URL with a host and no query"
    )]
    NotAUrl { entry: String, url: String },
    #[error("{VAR} entry {entry:?}: destination {destination:?} has a feed already")]
    Twice { entry: String, destination: String },
    #[error(
        "{VAR} entry {entry:?}: the counter does not tap destination {destination:?} (it taps {tapped})"
    )]
    NotTapped {
        entry: String,
        destination: String,
        tapped: String,
    },
}

fn is_feed_url(url: &str) -> bool {
    url.parse::<axum::http::Uri>().is_ok_and(|u| {
        matches!(u.scheme_str(), Some("http" | "https"))
            && u.host().is_some_and(|h| !h.is_empty())
            && u.query().is_none()
    })
}

/// The feeds of `value` (`COUNTER_FEEDS`), each of a destination in
/// `subscribes`; empty entries (a trailing comma) are skipped.
pub fn parse(value: &str, subscribes: &[Subscription]) -> Result<Vec<Feed>, FeedsError> {
    let mut feeds: Vec<Feed> = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let Some((destination, url)) = entry
            .split_once('=')
            .map(|(d, u)| (d.trim(), u.trim()))
            .filter(|(d, u)| !d.is_empty() && !u.is_empty())
        else {
            return Err(FeedsError::NotAPair {
                entry: entry.into(),
            });
        };
        if !is_feed_url(url) {
            return Err(FeedsError::NotAUrl {
                entry: entry.into(),
                url: url.into(),
            });
        }
        if feeds.iter().any(|f| f.destination == destination) {
            return Err(FeedsError::Twice {
                entry: entry.into(),
                destination: destination.into(),
            });
        }
        let routing_keys: Vec<String> = subscribes
            .iter()
            .filter(|s| s.destination == destination)
            .flat_map(|s| s.routing_keys.iter().cloned())
            .collect();
        if routing_keys.is_empty() {
            let tapped: Vec<&str> = subscribes.iter().map(|s| s.destination.as_str()).collect();
            return Err(FeedsError::NotTapped {
                entry: entry.into(),
                destination: destination.into(),
                tapped: tapped.join(", "),
            });
        }
        feeds.push(Feed {
            destination: destination.into(),
            url: url.trim_end_matches('/').into(),
            routing_keys,
        });
    }
    Ok(feeds)
}

/// Where the read of one feed is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Pages are being read: the totals are not complete yet.
    Reading,
    /// The whole feed was read: the totals hold every event of it; the
    /// broker's deliveries carry on.
    CaughtUp,
    /// The last page could not be read (the context down, not a feed):
    /// tried again after a pause.
    Failing,
}

/// The state of one feed's read as `/v1/counts` serves it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FeedState {
    pub state: Phase,
    /// Events read from the feed so far (counted, or already counted).
    pub events: u64,
    /// The last failure, while failing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub url: String,
}

/// The states of every feed, shared by their readers and the web role.
#[derive(Clone, Default)]
pub struct FeedStates(Arc<Mutex<BTreeMap<String, FeedState>>>);

impl FeedStates {
    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<String, FeedState>) -> T) -> T {
        let mut states = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut states)
    }

    /// `feed` is about to be read.
    pub fn start(&self, feed: &Feed) {
        self.with(|s| {
            s.insert(
                feed.destination.clone(),
                FeedState {
                    state: Phase::Reading,
                    events: 0,
                    error: None,
                    url: feed.url.clone(),
                },
            );
        });
    }

    fn update(&self, destination: &str, f: impl FnOnce(&mut FeedState)) {
        self.with(|s| {
            if let Some(state) = s.get_mut(destination) {
                f(state);
            }
        });
    }

    /// A page of `n` events was read.
    pub fn read(&self, destination: &str, n: u64) {
        self.update(destination, |s| {
            s.state = Phase::Reading;
            s.events += n;
            s.error = None;
        });
    }

    pub fn failing(&self, destination: &str, error: String) {
        self.update(destination, |s| {
            s.state = Phase::Failing;
            s.error = Some(error);
        });
    }

    pub fn caught_up(&self, destination: &str) {
        self.update(destination, |s| {
            s.state = Phase::CaughtUp;
            s.error = None;
        });
    }

    /// The state of `destination`'s feed, if it has one.
    pub fn get(&self, destination: &str) -> Option<FeedState> {
        self.with(|s| s.get(destination).cloned())
    }

    /// Every feed's state by destination, as JSON.
    pub fn to_json(&self) -> Value {
        self.with(|s| serde_json::to_value(&*s).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use eventflow_contract::bindings::{QueueType, SubscriptionRequest};

    use super::*;

    fn taps(destinations: &[&str]) -> Vec<Subscription> {
        destinations
            .iter()
            .map(|d| {
                Subscription::new(
                    "demo",
                    &SubscriptionRequest {
                        destination: d,
                        group: "counter",
                        routing_keys: vec![format!("{d}.*")],
                        max_attempts: 3,
                        backoff_ms: 1_000,
                    },
                    QueueType::Classic,
                )
            })
            .collect()
    }

    #[test]
    fn feeds_are_destination_url_pairs_of_tapped_destinations() {
        let feeds = parse(
            " account=http://ecommerce-account-web:8080/v1/events , order=https://o.example:8443/v1/events/,",
            &taps(&["account", "order", "payment"]),
        )
        .unwrap();
        assert_eq!(
            feeds,
            vec![
                Feed {
                    destination: "account".into(),
                    url: "http://ecommerce-account-web:8080/v1/events".into(),
                    routing_keys: vec!["account.*".into()],
                },
                Feed {
                    destination: "order".into(),
                    url: "https://o.example:8443/v1/events".into(),
                    routing_keys: vec!["order.*".into()],
                },
            ]
        );
        assert_eq!(parse("", &taps(&["order"])).unwrap(), vec![]);
    }

    #[test]
    fn a_malformed_entry_is_refused_naming_it() {
        let taps = taps(&["order", "payment"]);
        for (value, entry, says) in [
            ("order", "order", "is not destination=url"),
            ("order=", "order=", "is not destination=url"),
            (
                "=http://o/v1/events",
                "=http://o/v1/events",
                "is not destination=url",
            ),
            (
                "order=o:8080/v1/events",
                "order=o:8080/v1/events",
                "is not an http",
            ),
            (
                "order=ftp://o/v1/events",
                "order=ftp://o/v1/events",
                "is not an http",
            ),
            (
                "order=http://o/v1/events?after=3",
                "order=http://o/v1/events?after=3",
                "no query",
            ),
            (
                "order=http://a/v1/events,order=http://b/v1/events",
                "order=http://b/v1/events",
                "has a feed already",
            ),
            (
                "stock=http://s/v1/events",
                "stock=http://s/v1/events",
                "does not tap destination \"stock\" (it taps order, payment)",
            ),
        ] {
            let e = parse(value, &taps).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("COUNTER_FEEDS entry {entry:?}")) && e.contains(says),
                "{value}: {e}"
            );
        }
    }

    #[test]
    fn states_are_served_by_destination() {
        let states = FeedStates::default();
        let feed = &parse("order=http://o/v1/events", &taps(&["order"])).unwrap()[0];
        states.start(feed);
        states.read("order", 100);
        states.failing("order", "GET http://o/v1/events: connection refused".into());
        assert_eq!(
            states.to_json(),
            serde_json::json!({"order": {"state": "failing", "events": 100,
                "error": "GET http://o/v1/events: connection refused", "url": "http://o/v1/events"}})
        );
        states.read("order", 7);
        states.caught_up("order");
        assert_eq!(
            states.to_json()["order"],
            serde_json::json!({"state": "caught-up", "events": 107, "url": "http://o/v1/events"})
        );
    }
}
