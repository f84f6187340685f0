//! The store's guarantees, checked on SQLite (always) and PostgreSQL (with
//! the private services): optimistic concurrency, unique claims, idempotency
//! keys, feed order, the outbox, lookup keys (also on a database made
//! before they existed) and the selection of stalled saga steps.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::AnyPool;

use super::*;
use crate::aggregate::{Aggregate, AggregateSchemas, Creation, DomainError};

fn sqlite_url() -> String {
    let dir =
        std::env::temp_dir().join(format!("eventflow-store-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    format!("sqlite://{}?mode=rwc", dir.join("s.db").display())
}

async fn postgres_url() -> String {
    let url = std::env::var("EVENTFLOW_TEST_DATABASE_URL")
        .ok()
        .filter(|v| !v.is_empty())
        .expect(
            "EVENTFLOW_TEST_DATABASE_URL is not set: start the private services (make test does)",
        );
    use sqlx::Connection;
    let name = format!("eftest_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::postgres::PgConnection::connect(&url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    format!("{}/{name}", url.rsplit_once('/').unwrap().0)
}

fn write(id: &str, expected: i64, types: &[&str]) -> StreamWrite {
    StreamWrite {
        aggregate_type: "thing".into(),
        aggregate_id: id.into(),
        expected_version: expected,
        events: types
            .iter()
            .map(|t| NewEvent::new(*t, json!({ "id": id })))
            .collect(),
        snapshot: json!({ "id": id }),
        lookup: None,
        in_flight: None,
    }
}

/// A thing on a shelf, findable by shelf (group) and colour (key).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Shelved {
    id: String,
    #[serde(default)]
    shelf: Option<String>,
    #[serde(default)]
    colour: Option<String>,
}

impl Aggregate for Shelved {
    const KIND: &'static str = "shelved";
    const COLLECTION: &'static str = "shelved";
    const COMMANDS: &'static [&'static str] = &[];
    type Create = Value;
    fn create(_: &str, _: Value) -> Result<Creation, DomainError> {
        Ok(Creation::default())
    }
    fn apply(&mut self, _: &RecordedEvent) {}
    fn commands(&self) -> Vec<&'static str> {
        vec![]
    }
    fn execute(&self, _: &str, _: &Value) -> Result<Vec<NewEvent>, DomainError> {
        Ok(vec![])
    }
    fn status(&self) -> String {
        String::new()
    }
    fn schemas() -> AggregateSchemas {
        AggregateSchemas {
            resource: json!({}),
            create: json!({}),
            event_payload: json!({}),
            event_types: &[],
        }
    }
    fn lookup(&self) -> Option<Lookup> {
        Some(Lookup::new(self.shelf.clone()?, self.colour.clone()?))
    }
}

fn shelve(id: &str, expected: i64, shelf: Option<&str>, colour: Option<&str>) -> StreamWrite {
    let state = Shelved {
        id: id.into(),
        shelf: shelf.map(str::to_owned),
        colour: colour.map(str::to_owned),
    };
    StreamWrite {
        aggregate_type: Shelved::KIND.into(),
        aggregate_id: id.into(),
        expected_version: expected,
        events: vec![NewEvent::new("SHELVED", json!({ "id": id }))],
        snapshot: serde_json::to_value(&state).unwrap(),
        lookup: state.lookup(),
        in_flight: None,
    }
}

fn ids(found: &[(String, Shelved)]) -> Vec<&str> {
    found.iter().map(|(id, _)| id.as_str()).collect()
}

async fn lookups_find_exactly_the_current_keys(store: &EventStore) {
    for (id, shelf, colour) in [
        ("s1", "top", "red"),
        ("s2", "top", "blue"),
        ("s3", "top", "red"),
        ("s4", "low", "red"),
        ("s5", "low", "green"),
    ] {
        store
            .append(&commit(shelve(id, 0, Some(shelf), Some(colour))))
            .await
            .unwrap();
    }
    // s3 turns blue, s5 leaves every shelf: their old keys find them no more.
    store
        .append(&commit(shelve("s3", 1, Some("top"), Some("blue"))))
        .await
        .unwrap();
    store
        .append(&commit(shelve("s5", 1, None, None)))
        .await
        .unwrap();
    let red_top = store
        .lookup::<Shelved>("top", Some("red"), 10)
        .await
        .unwrap();
    assert_eq!(ids(&red_top), ["s1"]);
    assert_eq!(red_top[0].1.colour.as_deref(), Some("red"));
    let blue_top = store.lookup::<Shelved>("top", Some("blue"), 10).await;
    assert_eq!(ids(&blue_top.unwrap()), ["s2", "s3"], "creation order");
    let top = store.lookup::<Shelved>("top", None, 10).await.unwrap();
    assert_eq!(ids(&top), ["s1", "s2", "s3"]);
    let limited = store.lookup::<Shelved>("top", None, 2).await.unwrap();
    assert_eq!(ids(&limited), ["s1", "s2"]);
    assert!(
        store
            .lookup::<Shelved>("low", Some("green"), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let keys = ["red", "blue", "green", "pink"].map(str::to_owned);
    let counts = store.lookup_counts::<Shelved>(&keys).await.unwrap();
    let counts: Vec<(&str, &str, i64)> = counts
        .iter()
        .map(|c| (c.group.as_str(), c.key.as_str(), c.count))
        .collect();
    assert_eq!(
        counts,
        [("low", "red", 1), ("top", "blue", 2), ("top", "red", 1)]
    );
    assert!(
        store
            .lookup_counts::<Shelved>(&[])
            .await
            .unwrap()
            .is_empty()
    );
    // Another type's keys are its own.
    assert!(
        store
            .lookup::<Shelved>("thing", None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A database of schema version 1 (before lookup keys), with snapshots
/// written the way version-1 binaries wrote them.
async fn version_1_database(url: &str) {
    sqlx::any::install_default_drivers();
    let backend = if url.starts_with("sqlite:") {
        Backend::Sqlite
    } else {
        Backend::Postgres
    };
    let pool = AnyPool::connect(url).await.unwrap();
    schema::migrate_to(&pool, backend, 1).await.unwrap();
    for (position, id, state) in [
        (
            1_i64,
            "old-red",
            json!({ "id": "old-red", "shelf": "top", "colour": "red" }),
        ),
        (2, "old-none", json!({ "id": "old-none" })),
        (
            3,
            "old-blue",
            json!({ "id": "old-blue", "shelf": "top", "colour": "blue" }),
        ),
        (4, "not-json-of-it", json!(["not", "a", "shelved"])),
    ] {
        sqlx::query(
            "INSERT INTO aggregates (aggregate_type, aggregate_id, version, created_position, state)
             VALUES ('shelved', $1, 1, $2, $3)",
        )
        .bind(id)
        .bind(position)
        .bind(state.to_string())
        .execute(&pool)
        .await
        .unwrap();
    }
    sqlx::query("UPDATE store_position SET last = 4 WHERE id = 1")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
}

async fn an_old_database_migrates_and_finds_its_old_snapshots(url: &str) {
    version_1_database(url).await;
    let store = EventStore::connect(url).await.unwrap();
    // Written after the migration, before the backlog was keyed: keeps its key.
    store
        .append(&commit(shelve("old-blue", 1, Some("low"), Some("blue"))))
        .await
        .unwrap();
    let top = store.lookup::<Shelved>("top", None, 10).await.unwrap();
    assert_eq!(ids(&top), ["old-red"]);
    let low = store.lookup::<Shelved>("low", Some("blue"), 10).await;
    assert_eq!(ids(&low.unwrap()), ["old-blue"]);
    let counts = store
        .lookup_counts::<Shelved>(&["red".to_owned(), "blue".to_owned()])
        .await
        .unwrap();
    assert_eq!(counts.len(), 2, "{counts:?}");
    // A second process (or replica) starting later finds the backlog done.
    let again = EventStore::connect(url).await.unwrap();
    let backlog: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM lookup_backlog")
        .fetch_one(&again.pool)
        .await
        .unwrap();
    assert_eq!(backlog, 0);
    let top = again.lookup::<Shelved>("top", None, 10).await.unwrap();
    assert_eq!(ids(&top), ["old-red"]);
    assert_eq!(again.list("shelved", 0, 10).await.unwrap().len(), 4);
}

fn commit(w: StreamWrite) -> Commit {
    Commit {
        writes: vec![w],
        ..Commit::default()
    }
}

async fn a_stale_version_is_refused_and_writes_nothing(store: &EventStore) {
    store
        .append(&commit(write("a", 0, &["MADE", "CHANGED"])))
        .await
        .unwrap();
    let stale = store.append(&commit(write("a", 1, &["CHANGED"]))).await;
    assert!(
        matches!(stale, Err(AppendError::Conflict { .. })),
        "{stale:?}"
    );
    let events = store.load("thing", "a").await.unwrap();
    assert_eq!(events.iter().map(|e| e.version).collect::<Vec<_>>(), [1, 2]);
    store
        .append(&commit(write("a", 2, &["CHANGED"])))
        .await
        .unwrap();
    assert_eq!(store.load("thing", "a").await.unwrap().len(), 3);
}

async fn racing_writers_to_one_stream_produce_exactly_one_winner(store: &EventStore) {
    store
        .append(&commit(write("r", 0, &["MADE"])))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.append(&commit(write("r", 1, &["CHANGED"]))).await })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => wins += 1,
            Err(AppendError::Conflict { .. }) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(wins, 1);
    assert_eq!(store.load("thing", "r").await.unwrap().len(), 2);
}

async fn two_commits_taking_the_same_item_never_both_win(store: &EventStore) {
    // One item, several claimants: each commit writes its own stream and the
    // item's, at the version it read. Exactly one may take the item.
    store
        .append(&commit(write("item", 0, &["STOCKED"])))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..6)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let take = Commit {
                    writes: vec![
                        write(&format!("claimant-{i}"), 0, &["CREATED"]),
                        write("item", 1, &["TAKEN"]),
                    ],
                    ..Commit::default()
                };
                store.append(&take).await
            })
        })
        .collect();
    let mut winners = 0;
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await.unwrap() {
            Ok(events) => {
                winners += 1;
                assert_eq!(events.len(), 2);
            }
            Err(AppendError::Conflict { .. }) => {
                let own = store.load("thing", &format!("claimant-{i}")).await.unwrap();
                assert!(own.is_empty(), "a losing commit left its own stream behind");
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(winners, 1);
    assert_eq!(store.load("thing", "item").await.unwrap().len(), 2);
}

async fn a_taken_claim_and_a_used_key_refuse_the_whole_commit(store: &EventStore) {
    let claim = |id: &str| Claim {
        scope: "thing.email".into(),
        value: "x@y".into(),
        aggregate_id: id.into(),
    };
    let first = Commit {
        writes: vec![write("c1", 0, &["MADE"])],
        claims: vec![claim("c1")],
        idempotency: None,
        republish: vec![],
    };
    store.append(&first).await.unwrap();
    let second = Commit {
        writes: vec![write("c2", 0, &["MADE"])],
        claims: vec![claim("c2")],
        idempotency: None,
        republish: vec![],
    };
    assert!(matches!(
        store.append(&second).await,
        Err(AppendError::ClaimTaken { .. })
    ));
    assert!(store.load("thing", "c2").await.unwrap().is_empty());

    let keyed = |id: &str| Commit {
        writes: vec![write(id, 0, &["MADE"])],
        claims: vec![],
        idempotency: Some(IdempotentResult {
            key: "k1".into(),
            status: 201,
            body: json!({ "id": id }),
        }),
        republish: vec![],
    };
    store.append(&keyed("k-first")).await.unwrap();
    assert!(matches!(
        store.append(&keyed("k-second")).await,
        Err(AppendError::DuplicateKey(_))
    ));
    let first = store.idempotent_result("k1").await.unwrap().unwrap();
    assert_eq!(
        (first.status, first.body),
        (201, json!({ "id": "k-first" }))
    );
    assert!(store.load("thing", "k-second").await.unwrap().is_empty());
}

async fn the_feed_and_the_outbox_follow_commit_order(store: &EventStore) {
    let before = store.feed(0, 1000).await.unwrap().len();
    store
        .append(&commit(write("f1", 0, &["MADE"])))
        .await
        .unwrap();
    store
        .append(&commit(write("f2", 0, &["MADE", "CHANGED"])))
        .await
        .unwrap();
    let feed = store.feed(0, 1000).await.unwrap();
    assert_eq!(feed.len(), before + 3);
    assert!(
        feed.windows(2).all(|w| w[1].position == w[0].position + 1),
        "positions have gaps"
    );
    let tail = store.feed(feed[feed.len() - 2].position, 10).await.unwrap();
    assert_eq!(tail.len(), 1);
    let pending = store.outbox_batch(1000).await.unwrap();
    assert_eq!(pending.len(), feed.len());
    // The relay's way: each read deletes what the last one published.
    let positions = |events: &[crate::event::RecordedEvent]| {
        events.iter().map(|e| e.position).collect::<Vec<_>>()
    };
    let first = store.outbox_next(&[], 2).await.unwrap();
    assert_eq!(positions(&first), positions(&pending[..2]));
    let mut rest = store.outbox_next(&positions(&first), 1000).await.unwrap();
    assert_eq!(
        positions(&rest),
        positions(&pending[2..]),
        "the read leaves out what it deletes"
    );
    assert_eq!(store.outbox_pending().await.unwrap(), rest.len() as i64);
    let last = rest.split_off(rest.len() - 1);
    assert_eq!(
        positions(&store.outbox_next(&positions(&rest), 1000).await.unwrap()),
        positions(&last)
    );
    store.outbox_done(&positions(&last)).await.unwrap();
    assert_eq!(store.outbox_pending().await.unwrap(), 0);
    assert!(store.outbox_next(&[], 10).await.unwrap().is_empty());
    let listed = store.list("thing", 0, 1000).await.unwrap();
    assert!(listed.iter().any(|(_, id, _)| id == "f2"));
}

/// A saga participant `id` of type `step`, waiting for `awaits` (or not).
fn waiting(id: &str, expected: i64, types: &[&str], awaits: Option<&str>) -> Commit {
    commit(StreamWrite {
        aggregate_type: "step".into(),
        in_flight: awaits.map(str::to_owned),
        ..write(id, expected, types)
    })
}

async fn stalled_steps_are_those_waiting_since_before_the_bound_longest_first(store: &EventStore) {
    store
        .append(&waiting("s-old", 0, &["OPENED", "ASKED"], Some("ASKED")))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    store
        .append(&waiting("s-new", 0, &["OPENED"], Some("OPENED")))
        .await
        .unwrap();
    store
        .append(&waiting("s-done", 0, &["OPENED", "CLOSED"], None))
        .await
        .unwrap();
    // Waited, then moved on to a state that waits for nothing.
    store
        .append(&waiting("s-moved", 0, &["OPENED"], Some("OPENED")))
        .await
        .unwrap();
    store
        .append(&waiting("s-moved", 1, &["CLOSED"], None))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let now = crate::event::now_millis();
    let stalled = store.stalled(now, 10).await.unwrap();
    let ids: Vec<&str> = stalled.iter().map(|s| s.aggregate_id.as_str()).collect();
    assert_eq!(ids, ["s-old", "s-new"]);
    let old = &stalled[0];
    let asked = &store.load("step", "s-old").await.unwrap()[1];
    assert_eq!(
        (old.version, old.awaits.as_str(), old.redrives),
        (2, "ASKED", 0)
    );
    assert_eq!(
        old.step,
        Some(StepEvent {
            position: asked.position,
            event_id: asked.event_id.clone(),
            event_type: "ASKED".into(),
        })
    );
    assert_eq!(old.snapshot, json!({ "id": "s-old" }));
    assert!(old.since <= stalled[1].since && stalled[1].since < now);
    // Only those that waited since before the bound, at most `limit`.
    assert_eq!(store.stalled(old.since, 10).await.unwrap(), vec![]);
    assert_eq!(store.stalled(now, 1).await.unwrap().len(), 1);
    // Re-drives are counted until the aggregate's next event of its own.
    store
        .append(&waiting(
            "s-old",
            2,
            &[crate::event::STEP_REDRIVEN],
            Some("ASKED"),
        ))
        .await
        .unwrap();
    store
        .append(&waiting(
            "s-new",
            1,
            &[crate::event::STEP_REDRIVEN],
            Some("OPENED"),
        ))
        .await
        .unwrap();
    store
        .append(&waiting(
            "s-new",
            2,
            &[crate::event::STEP_REDRIVEN],
            Some("OPENED"),
        ))
        .await
        .unwrap();
    store
        .append(&waiting("s-old", 3, &["ANSWERED"], Some("ANSWERED")))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let mut redrives: Vec<(String, i64)> = store
        .stalled(crate::event::now_millis(), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.aggregate_id, s.redrives))
        .collect();
    redrives.sort();
    assert_eq!(redrives, [("s-new".to_owned(), 2), ("s-old".to_owned(), 0)]);
}

async fn all_guarantees(url: &str) {
    let store = EventStore::connect(url).await.unwrap();
    // Migrations run again on every start without harm.
    let store2 = EventStore::connect(url).await.unwrap();
    assert!(store2.ping().await);
    a_stale_version_is_refused_and_writes_nothing(&store).await;
    racing_writers_to_one_stream_produce_exactly_one_winner(&store).await;
    two_commits_taking_the_same_item_never_both_win(&store).await;
    a_taken_claim_and_a_used_key_refuse_the_whole_commit(&store).await;
    the_feed_and_the_outbox_follow_commit_order(&store).await;
    lookups_find_exactly_the_current_keys(&store).await;
    stalled_steps_are_those_waiting_since_before_the_bound_longest_first(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_keeps_every_guarantee() {
    all_guarantees(&sqlite_url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs postgres"]
async fn postgres_store_keeps_every_guarantee() {
    all_guarantees(&postgres_url().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_sqlite_store_migrates_in_place_and_keys_its_snapshots() {
    an_old_database_migrates_and_finds_its_old_snapshots(&sqlite_url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs postgres"]
async fn an_old_postgres_store_migrates_in_place_and_keys_its_snapshots() {
    an_old_database_migrates_and_finds_its_old_snapshots(&postgres_url().await).await;
}
