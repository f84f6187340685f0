use super::*;

/// Records an event of `event_type` on destination `destination` at `at`, counted at `now`.
fn record(c: &Counts, destination: &str, event_type: &str, id: &str, at: u64, now: u64) -> bool {
    c.record(
        &Event {
            destination,
            event_type,
            id,
            at,
        },
        now,
    )
}

/// [`record`] of an event on the `order` destination that happens now.
fn now(c: &Counts, event_type: &str, id: &str, at: u64) -> bool {
    record(c, "order", event_type, id, at, at)
}

fn sum(points: &Value) -> u64 {
    points
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_u64)
        .sum()
}

#[test]
fn events_are_counted_by_type_once_each() {
    let c = Counts::default();
    assert!(now(&c, "order.ORDER_CREATED", "e1", 100));
    assert!(now(&c, "order.ORDER_CREATED", "e2", 100));
    assert!(now(&c, "payment.PAYMENT_CREATED", "e3", 101));
    assert!(
        !now(&c, "order.ORDER_CREATED", "e1", 102),
        "a redelivery is not counted"
    );
    let j = c.to_json(102);
    assert_eq!(j["total"], 3);
    assert_eq!(j["byType"]["order.ORDER_CREATED"], 2);
    assert_eq!(j["duplicatesIgnored"], 1);
}

#[test]
fn events_are_counted_by_destination_in_totals_and_windows() {
    let c = Counts::default();
    record(&c, "order", "order.ORDER_CREATED", "1", 1_000, 1_000);
    record(&c, "order", "order.ORDER_SUCCEEDED", "2", 1_290, 1_290);
    record(&c, "payment", "payment.PAYMENT_CREATED", "3", 1_295, 1_295);
    assert!(
        !record(&c, "payment", "order.ORDER_CREATED", "1", 1_296, 1_296),
        "an id seen on one destination is not counted again on another"
    );
    let j = c.to_json(1_300);
    assert_eq!(j["byDestination"], json!({"order": 2, "payment": 1}));
    assert_eq!(
        j["windowsByDestination"]["1m"],
        json!({"order": 1, "payment": 1})
    );
    assert_eq!(
        j["windowsByDestination"]["15m"],
        json!({"order": 2, "payment": 1})
    );
    // The by-type fields keep their shape.
    assert_eq!(
        j["windows"]["1m"],
        json!({"order.ORDER_SUCCEEDED": 1, "payment.PAYMENT_CREATED": 1})
    );
    assert_eq!(j["total"], 3);
}

#[test]
fn windows_only_hold_recent_events() {
    let c = Counts::default();
    now(&c, "a.X", "1", 1_000);
    now(&c, "a.X", "2", 1_200);
    now(&c, "a.X", "3", 1_290);
    let j = c.to_json(1_300);
    assert_eq!(j["windows"]["1m"]["a.X"], 1);
    assert_eq!(j["windows"]["5m"]["a.X"], 2);
    assert_eq!(j["windows"]["15m"]["a.X"], 3);
    assert_eq!(j["byType"]["a.X"], 3);
    // An hour later the windows are empty but the total stays.
    let j = c.to_json(10_000);
    assert_eq!(j["windows"]["1h"], json!({}));
    assert_eq!(j["windowsByDestination"]["1h"], json!({}));
    assert_eq!(j["total"], 3);
}

#[test]
fn events_recorded_out_of_order_land_at_their_own_second() {
    let c = Counts::default();
    // Delivered now, then the past read from a feed, newest last.
    let now = 10_000;
    record(&c, "order", "a.X", "new", now, now);
    record(&c, "order", "a.X", "two-hours-ago", now - 7_200, now);
    record(&c, "order", "a.X", "ten-minutes-ago", now - 600, now);
    record(&c, "order", "a.X", "half-a-minute-ago", now - 30, now);
    record(&c, "payment", "b.Y", "future", now + 5, now);
    let j = c.to_json(now);
    assert_eq!(j["byType"]["a.X"], 4, "every event reaches the totals");
    assert_eq!(j["windows"]["1m"]["a.X"], 2);
    assert_eq!(j["windows"]["15m"]["a.X"], 3);
    assert_eq!(
        j["windows"]["1h"]["a.X"], 3,
        "an event older than the longest window reaches only the totals"
    );
    assert_eq!(
        j["windows"]["1m"]["b.Y"], 1,
        "a time ahead of the clock counts as now"
    );
    let series = c.series(now, 60);
    assert_eq!(series["byType"]["a.X"][59], 1);
    assert_eq!(series["byType"]["a.X"][29], 1, "{series}");
    // Seconds past the longest window are let go.
    assert!(c.lock().seconds.keys().all(|s| *s >= now - 3_600));
}

#[test]
fn prometheus_text_carries_totals_by_type_and_destination_and_windows_with_safe_labels() {
    let c = Counts::default();
    now(&c, "order.ORDER_CREATED", "1", 5);
    now(&c, "bad\"type{}", "2", 5);
    record(&c, "pay\"ment", "payment.PAYMENT_CREATED", "3", 5, 5);
    let text = c.to_prometheus(5);
    assert!(
        text.contains("eventflow_counter_events_total{type=\"order.ORDER_CREATED\"} 1\n"),
        "{text}"
    );
    assert!(text.contains(
        "eventflow_counter_window_events{type=\"order.ORDER_CREATED\",window=\"1m\"} 1\n"
    ));
    assert!(text.contains("type=\"bad_type__\""), "{text}");
    assert!(
        text.contains("eventflow_counter_destination_events_total{destination=\"order\"} 2\n"),
        "{text}"
    );
    assert!(
        text.contains("eventflow_counter_destination_events_total{destination=\"pay_ment\"} 1\n"),
        "{text}"
    );
}

#[test]
fn a_series_puts_each_event_in_its_bucket_oldest_first() {
    let c = Counts::default();
    now(&c, "a.X", "1", 1_000); // before the 1 m window ending at 1_100
    now(&c, "a.X", "2", 1_041); // first bucket of it
    now(&c, "a.X", "3", 1_100); // last bucket
    record(&c, "payment", "b.Y", "4", 1_100, 1_100);
    record(&c, "payment", "b.Y", "5", 1_100, 1_100);
    let j = c.series(1_100, 60);
    assert_eq!(
        (j["from"].as_u64(), j["step"].as_u64()),
        (Some(1_041), Some(1))
    );
    let x = j["byType"]["a.X"].as_array().unwrap();
    assert_eq!(x.len(), 60);
    assert_eq!((x[0].as_u64(), x[59].as_u64()), (Some(1), Some(1)));
    assert_eq!(sum(&j["byType"]["a.X"]), 2);
    assert_eq!(j["byType"]["b.Y"][59], 2);
    // The same events by destination.
    let order = j["byDestination"]["order"].as_array().unwrap();
    assert_eq!(order.len(), 60);
    assert_eq!((order[0].as_u64(), order[59].as_u64()), (Some(1), Some(1)));
    assert_eq!(j["byDestination"]["payment"][59], 2);
    assert_eq!(sum(&j["byDestination"]["payment"]), 2);
    // The hour in minutes holds all three of a.X.
    let j = c.series(1_100, 3_600);
    assert_eq!(j["step"], 60);
    assert_eq!(sum(&j["byType"]["a.X"]), 3);
    assert_eq!(sum(&j["byDestination"]["order"]), 3);
    let empty = c.series(99_999, 60);
    assert_eq!(
        (&empty["byType"], &empty["byDestination"]),
        (&json!({}), &json!({}))
    );
}

#[test]
fn the_numbers_of_types_and_destinations_are_bounded() {
    let c = Counts::default();
    for i in 0..MAX_TYPES + 10 {
        record(
            &c,
            &format!("d{i}"),
            &format!("t.E{i}"),
            &i.to_string(),
            1,
            1,
        );
    }
    let j = c.to_json(1);
    assert_eq!(j["byType"].as_object().unwrap().len(), MAX_TYPES + 1);
    assert_eq!(j["byType"]["other"], 10);
    assert_eq!(
        j["byDestination"].as_object().unwrap().len(),
        MAX_DESTINATIONS + 1
    );
    assert_eq!(
        j["byDestination"]["other"],
        (MAX_TYPES + 10 - MAX_DESTINATIONS) as u64
    );
}

#[test]
fn the_ids_forgotten_first_are_those_of_the_oldest_events() {
    let c = Counts::default();
    // The broker delivers the newest event first; then a feed brings more
    // history than is remembered, oldest first.
    assert!(record(&c, "order", "a.X", "newest", 1_000_000, 1_000_000));
    for i in 0..REMEMBERED_IDS as u64 + 5 {
        record(&c, "order", "a.X", &format!("old{i}"), i, 1_000_000);
    }
    assert!(
        !record(&c, "order", "a.X", "newest", 1_000_000, 1_000_000),
        "the feed's copy of the newest event is still recognised"
    );
    assert!(
        record(&c, "order", "a.X", "old0", 0, 1_000_000),
        "the oldest ids were let go"
    );
    assert_eq!(c.lock().seen.len(), REMEMBERED_IDS);
}
