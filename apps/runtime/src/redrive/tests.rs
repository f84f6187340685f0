//! The re-driver against a SQLite store: which steps it re-drives, what it
//! records and publishes again, and when it gives up.

use serde_json::json;

use super::*;
use crate::store::RecordedEvent;

async fn store() -> EventStore {
    let dir = std::env::temp_dir().join(format!(
        "eventflow-redrive-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    EventStore::connect(&format!("sqlite://{}?mode=rwc", dir.join("s.db").display()))
        .await
        .unwrap()
}

/// Events of a `thing` whose status is its last event's type, waiting for
/// the step `awaits` drives.
async fn append(store: &EventStore, id: &str, expected: i64, types: &[&str], awaits: Option<&str>) {
    let write = StreamWrite {
        aggregate_type: "thing".into(),
        aggregate_id: id.into(),
        expected_version: expected,
        events: types.iter().map(|t| NewEvent::new(*t, json!({}))).collect(),
        snapshot: json!({ "id": id, "status": types.last() }),
        lookup: None,
        in_flight: awaits.map(str::to_owned),
    };
    store
        .append(&Commit {
            writes: vec![write],
            ..Commit::default()
        })
        .await
        .unwrap();
}

fn redriver(store: &EventStore, stall_after: Duration, max_redrives: i64) -> Redriver {
    Redriver {
        store: store.clone(),
        metrics: Metrics::default(),
        relay: Arc::new(Notify::new()),
        stall_after,
        max_redrives,
    }
}

async fn stream(store: &EventStore, id: &str) -> Vec<RecordedEvent> {
    store.load("thing", id).await.unwrap()
}

fn types(events: &[RecordedEvent]) -> Vec<&str> {
    events.iter().map(|e| e.event_type.as_str()).collect()
}

async fn clear_outbox(store: &EventStore) {
    let pending = store.outbox_batch(1000).await.unwrap();
    let positions: Vec<i64> = pending.iter().map(|e| e.position).collect();
    store.outbox_done(&positions).await.unwrap();
}

/// Lets the clock pass the time the last write's wait began.
async fn later() {
    tokio::time::sleep(Duration::from_millis(20)).await;
}

#[tokio::test]
async fn a_step_waiting_longer_than_the_bound_is_published_again_and_recorded_in_its_stream() {
    let store = store().await;
    append(
        &store,
        "stalled",
        0,
        &["THING_CREATED", "THING_REQUESTED"],
        Some("THING_REQUESTED"),
    )
    .await;
    append(&store, "done", 0, &["THING_CREATED", "THING_DONE"], None).await;
    clear_outbox(&store).await;
    later().await;

    let patient = redriver(&store, Duration::from_secs(3600), MAX_REDRIVES);
    assert_eq!(patient.sweep().await.unwrap(), Swept::default());
    assert_eq!(store.outbox_pending().await.unwrap(), 0);

    let eager = redriver(&store, Duration::ZERO, MAX_REDRIVES);
    assert_eq!(
        eager.sweep().await.unwrap(),
        Swept {
            redriven: 1,
            abandoned: 0
        }
    );
    let events = stream(&store, "stalled").await;
    assert_eq!(
        types(&events),
        ["THING_CREATED", "THING_REQUESTED", STEP_REDRIVEN]
    );
    let step = &events[1];
    let redriven = &events[2].payload;
    assert_eq!(redriven["status"], "THING_REQUESTED");
    assert_eq!(redriven["awaits"], "THING_REQUESTED");
    assert_eq!(redriven["event"]["eventId"], step.event_id.as_str());
    assert_eq!(redriven["event"]["position"], step.position);
    assert_eq!(redriven["redrives"], 1);
    assert!(redriven["idleSeconds"].is_i64(), "{redriven}");
    // The same event (same id) goes out again, then the record of the re-drive.
    let published = store.outbox_batch(10).await.unwrap();
    assert_eq!(
        published
            .iter()
            .map(|e| e.event_id.as_str())
            .collect::<Vec<_>>(),
        [step.event_id.as_str(), events[2].event_id.as_str()]
    );
    assert_eq!(
        types(&stream(&store, "done").await),
        ["THING_CREATED", "THING_DONE"]
    );
    assert!(
        eager
            .metrics
            .render()
            .contains("eventflow_saga_redrives_total{aggregate=\"thing\"} 1"),
        "{}",
        eager.metrics.render()
    );
    // The re-drive restarted the wait.
    let bounded = redriver(&store, Duration::from_secs(60), MAX_REDRIVES);
    assert_eq!(bounded.sweep().await.unwrap(), Swept::default());
}

#[tokio::test]
async fn a_step_is_re_driven_at_most_max_times_then_given_up_loudly_and_left_alone() {
    let store = store().await;
    append(
        &store,
        "stuck",
        0,
        &["THING_CREATED", "THING_REQUESTED"],
        Some("THING_REQUESTED"),
    )
    .await;
    let eager = redriver(&store, Duration::ZERO, 2);
    let mut sweeps = Vec::new();
    for _ in 0..4 {
        later().await;
        sweeps.push(eager.sweep().await.unwrap());
    }
    let one = |redriven, abandoned| Swept {
        redriven,
        abandoned,
    };
    assert_eq!(sweeps, [one(1, 0), one(1, 0), one(0, 1), one(0, 0)]);
    let events = stream(&store, "stuck").await;
    assert_eq!(
        types(&events),
        [
            "THING_CREATED",
            "THING_REQUESTED",
            STEP_REDRIVEN,
            STEP_REDRIVEN,
            STEP_ABANDONED
        ]
    );
    assert_eq!(events[4].payload["redrives"], 2);
    let text = eager.metrics.render();
    assert!(
        text.contains("eventflow_saga_redrives_total{aggregate=\"thing\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("eventflow_saga_steps_abandoned_total{aggregate=\"thing\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn an_event_of_its_own_restarts_the_count_of_re_drives() {
    let store = store().await;
    append(
        &store,
        "slow",
        0,
        &["THING_CREATED", "THING_REQUESTED"],
        Some("THING_REQUESTED"),
    )
    .await;
    let eager = redriver(&store, Duration::ZERO, 1);
    later().await;
    assert_eq!(eager.sweep().await.unwrap().redriven, 1);
    // The step ran and the thing waits for the next one.
    append(&store, "slow", 3, &["THING_SHIPPED"], Some("THING_SHIPPED")).await;
    later().await;
    assert_eq!(
        eager.sweep().await.unwrap(),
        Swept {
            redriven: 1,
            abandoned: 0
        }
    );
    let events = stream(&store, "slow").await;
    assert_eq!(events[4].event_type, STEP_REDRIVEN);
    assert_eq!(events[4].payload["redrives"], 1);
    assert_eq!(events[4].payload["event"]["eventType"], "THING_SHIPPED");
}

#[tokio::test]
async fn a_step_whose_driving_event_is_missing_is_given_up_at_once() {
    let store = store().await;
    append(
        &store,
        "odd",
        0,
        &["THING_CREATED"],
        Some("THING_REQUESTED"),
    )
    .await;
    later().await;
    let swept = redriver(&store, Duration::ZERO, MAX_REDRIVES)
        .sweep()
        .await
        .unwrap();
    assert_eq!(
        swept,
        Swept {
            redriven: 0,
            abandoned: 1
        }
    );
    let events = stream(&store, "odd").await;
    assert_eq!(events[1].event_type, STEP_ABANDONED);
    assert!(events[1].payload["event"].is_null());
}
