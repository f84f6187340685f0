//! Rebuilding the counts from a context's hypermedia feed: from position 0,
//! the largest pages the runtime serves, following `_links.next` until a
//! page without it (the end), counting every event at its own time. The
//! broker's deliveries run meanwhile; an event seen both ways counts once
//! (by id). A feed that cannot be read is tried again after a pause that
//! doubles up to [`MAX_PAUSE`]; the counter never stops for it.

use std::time::Duration;

use eventflow_contract::topic;
use eventflow_runtime::{hal, hypermedia::HalClient, web::MAX_PAGE_SIZE};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::{
    counts::{Counts, Event},
    feeds::{Feed, FeedStates},
    unix_now, unix_seconds,
};

/// The pause after a first failure.
pub const FIRST_PAUSE: Duration = Duration::from_secs(1);
/// The longest pause between two tries.
pub const MAX_PAUSE: Duration = Duration::from_secs(30);

/// One event of a page, as the runtime's feed represents it.
#[derive(Debug, PartialEq, Eq)]
struct FeedEvent {
    id: String,
    routing_key: String,
    at: u64,
}

/// A page: its events and the `next` link (absent at the end).
#[derive(Debug, PartialEq, Eq)]
struct Page {
    events: Vec<FeedEvent>,
    next: Option<String>,
}

/// The first page of `feed`: after position 0, as many events as a page holds.
pub fn first_page(feed: &Feed) -> String {
    format!("{}?after=0&limit={MAX_PAGE_SIZE}", feed.url)
}

/// A page of the runtime's feed; an error naming what is missing otherwise.
fn page(doc: &Value) -> Result<Page, String> {
    let me = hal::href(doc, "self").unwrap_or("the page");
    let events = doc
        .get("_embedded")
        .and_then(|e| e.get("events"))
        .and_then(Value::as_array)
        .ok_or_else(|| format!("{me} has no _embedded.events: not an eventflow feed"))?;
    let events = events
        .iter()
        .map(|e| {
            let field = |name: &str| {
                e.get(name)
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("an event of {me} has no {name}: not an eventflow feed"))
            };
            let at = field("createdAt")?;
            Ok(FeedEvent {
                id: field("eventId")?.to_owned(),
                routing_key: eventflow_contract::names::routing_key(
                    field("aggregateType")?,
                    field("eventType")?,
                ),
                at: unix_seconds(at).ok_or_else(|| {
                    format!("an event of {me} has createdAt {at:?}, not RFC 3339")
                })?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let next = hal::href(doc, "next").map(str::to_owned);
    Ok(Page { events, next })
}

/// Reads `feed` whole into `counts`, reporting to `states` (where
/// [`FeedStates::start`] registered it, so `/v1/counts` lists it from the
/// counter's first answer); returns once caught up or cancelled.
pub async fn rebuild(
    feed: Feed,
    counts: Counts,
    states: FeedStates,
    client: HalClient,
    cancel: CancellationToken,
) {
    let destination = feed.destination.as_str();
    let mut url = first_page(&feed);
    let mut pause = FIRST_PAUSE;
    loop {
        let read = tokio::select! {
            () = cancel.cancelled() => return,
            r = client.get(&url) => r.map_err(|e| e.to_string()).and_then(|doc| page(&doc)),
        };
        match read {
            Ok(page) => {
                pause = FIRST_PAUSE;
                let now = unix_now();
                for e in &page.events {
                    if topic::any(&feed.routing_keys, &e.routing_key) {
                        counts.record(
                            &Event {
                                destination,
                                event_type: &e.routing_key,
                                id: &e.id,
                                at: e.at,
                            },
                            now,
                        );
                    }
                }
                states.read(destination, page.events.len() as u64);
                match page.next {
                    // A next link is only given after a full page.
                    Some(next) if !page.events.is_empty() => url = next,
                    _ => break,
                }
            }
            Err(error) => {
                tracing::warn!(%destination, %error, pause_s = pause.as_secs(), "feed not read; trying again");
                states.failing(destination, error);
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(MAX_PAUSE);
            }
        }
    }
    let read = states.get(destination).map_or(0, |s| s.events);
    tracing::info!(%destination, events = read, "feed read: caught up");
    states.caught_up(destination);
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_page_of_the_runtime_feed_gives_ids_routing_keys_and_times() {
        let doc = json!({
            "_embedded": {"events": [{
                "eventId": "e-1", "eventType": "ORDER_CREATED", "aggregateType": "order",
                "aggregateId": "o-1", "version": 1, "position": 7,
                "createdAt": "2026-01-01T00:00:01.250Z", "payload": {}, "_links": {}
            }]},
            "_links": {"self": {"href": "http://o/v1/events?after=0&limit=100"},
                       "next": {"href": "http://o/v1/events?after=7&limit=100"}}
        });
        assert_eq!(
            page(&doc).unwrap(),
            Page {
                events: vec![FeedEvent {
                    id: "e-1".into(),
                    routing_key: "order.ORDER_CREATED".into(),
                    at: 1_767_225_601,
                }],
                next: Some("http://o/v1/events?after=7&limit=100".into()),
            }
        );
    }

    #[test]
    fn a_document_that_is_not_the_runtime_feed_is_an_error_naming_what_is_missing() {
        let e = page(&json!({"_links": {"self": {"href": "http://x/v1/events"}}})).unwrap_err();
        assert!(
            e.contains("http://x/v1/events has no _embedded.events"),
            "{e}"
        );
        let e = page(&json!({"_embedded": {"events": [{"eventId": "1", "eventType": "X"}]}}))
            .unwrap_err();
        assert!(e.contains("has no createdAt"), "{e}");
        let e = page(
            &json!({"_embedded": {"events": [{"eventId": "1", "eventType": "X",
            "aggregateType": "a", "createdAt": "yesterday"}]}}),
        )
        .unwrap_err();
        assert!(e.contains("\"yesterday\", not RFC 3339"), "{e}");
    }
}
