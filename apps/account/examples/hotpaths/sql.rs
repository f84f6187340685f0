//! Path 1's ceiling: the rows one `POST /v1/accounts` commits — an event,
//! its outbox row, the snapshot (an upsert, as the store writes it), the
//! email claim, the idempotency record — inserted with bare sqlx (the
//! PostgreSQL driver, not the store's `Any` pool) in one transaction: BEGIN,
//! five INSERTs, COMMIT. Positions come from a counter in this process (the
//! store takes them from a counter row it locks). Same schema (a fresh
//! database migrated by the store), same pool size, same concurrency; the
//! values are copies of a row path 1 wrote, so the sizes are the same.

use std::sync::{
    Arc,
    atomic::{AtomicI64, AtomicU64, Ordering},
};

use eventflow_runtime::store::now_rfc3339;
use sqlx::{Connection, PgConnection, PgPool, postgres::PgPoolOptions};
use tokio::runtime::Handle;

/// The store's pool size on PostgreSQL (`store/connect.rs`).
pub(crate) const POOL: u32 = 10;
/// Statements of one ceiling transaction (BEGIN, 5 INSERTs, COMMIT).
pub(crate) const ROUND_TRIPS: usize = 7;

/// The values of one command's rows, as path 1 wrote them.
#[derive(Debug)]
pub(crate) struct Rows {
    payload: String,
    state: String,
    status: i64,
    body: String,
    lookup_group: Option<String>,
    lookup_key: Option<String>,
    in_flight_event: Option<String>,
}

/// One created account's rows from the web role's database.
pub(crate) async fn sample(url: &str) -> Rows {
    let mut c = PgConnection::connect(url).await.unwrap();
    let (payload,): (String,) =
        sqlx::query_as("SELECT payload FROM events WHERE event_type = 'ACCOUNT_CREATED' LIMIT 1")
            .fetch_one(&mut c)
            .await
            .unwrap();
    let (state, lookup_group, lookup_key, in_flight_event): (
        String,
        Option<String>,
        Option<String>,
        Option<String>,
    ) = sqlx::query_as(
        "SELECT state, lookup_group, lookup_key, in_flight_event FROM aggregates LIMIT 1",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    let (status, body): (i64, String) =
        sqlx::query_as("SELECT status, body FROM idempotency LIMIT 1")
            .fetch_one(&mut c)
            .await
            .unwrap();
    Rows {
        payload,
        state,
        status,
        body,
        lookup_group,
        lookup_key,
        in_flight_event,
    }
}

pub(crate) async fn pool(url: &str) -> PgPool {
    PgPoolOptions::new()
        .max_connections(POOL)
        .connect(url)
        .await
        .unwrap()
}

/// Commits `n` commands' rows (numbered from `first`), `clients` at a time,
/// on `rt` (the web role's runtime, whose threads' CPU is measured).
pub(crate) async fn insert(
    rt: &Handle,
    pool: &PgPool,
    rows: &Arc<Rows>,
    positions: &Arc<AtomicI64>,
    first: u64,
    n: u64,
    clients: usize,
) {
    let next = Arc::new(AtomicU64::new(first));
    let end = first + n;
    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients {
        let (pool, rows, positions, next) =
            (pool.clone(), rows.clone(), positions.clone(), next.clone());
        tasks.push(rt.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= end {
                    break;
                }
                let position = positions.fetch_add(1, Ordering::Relaxed) + 1;
                commit(&pool, &rows, i, position).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

async fn commit(pool: &PgPool, r: &Rows, i: u64, position: i64) -> sqlx::Result<()> {
    let id = uuid::Uuid::new_v4().to_string();
    let now = now_rfc3339();
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO events (position, event_id, aggregate_type, aggregate_id, version, event_type, payload, recorded_at)
         VALUES ($1, $2, 'account', $3, 1, 'ACCOUNT_CREATED', $4, $5)",
    )
    .bind(position)
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(&id)
    .bind(&r.payload)
    .bind(&now)
    .execute(&mut *tx)
    .await?;
    sqlx::query("INSERT INTO outbox (position) VALUES ($1)")
        .bind(position)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO aggregates (aggregate_type, aggregate_id, version, created_position, state, lookup_group, lookup_key,
             in_flight_event, in_flight_since)
         VALUES ('account', $1, 1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE SET version = excluded.version, state = excluded.state",
    )
    .bind(&id)
    .bind(position)
    .bind(&r.state)
    .bind(&r.lookup_group)
    .bind(&r.lookup_key)
    .bind(&r.in_flight_event)
    .bind(r.in_flight_event.as_ref().map(|_| now_millis()))
    .execute(&mut *tx)
    .await?;
    sqlx::query("INSERT INTO claims (scope, value, aggregate_id) VALUES ('account.email', $1, $2)")
        .bind(format!("n{i}@example.com"))
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO idempotency (key, status, body, recorded_at) VALUES ($1, $2, $3, $4)")
        .bind(format!("POST /v1/accounts hotpaths-{i}"))
        .bind(r.status)
        .bind(&r.body)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}
