//! The event store: append-only streams of events per aggregate, with
//! optimistic concurrency on the aggregate version, a global position for the
//! feed, and — in the same transaction as every append — the outbox rows the
//! relay publishes, the unique claims (e.g. an email) and the idempotency
//! record of the command that caused it. SQLite is the embedded default,
//! PostgreSQL is used when `DATABASE_URL` says so; one set of queries serves
//! both through sqlx's `Any` driver.

mod schema;

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
};

use serde::Serialize;
use serde_json::Value;
use sqlx::{
    AnyPool, Row,
    any::{AnyPoolOptions, AnyRow},
};

use crate::aggregate::Aggregate;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("event store: {0}")]
    Db(#[from] sqlx::Error),
    #[error("stored JSON is corrupt: {0}")]
    Json(#[from] serde_json::Error),
    #[error("DATABASE_URL must start with sqlite: or postgres:, got {0:?}")]
    Url(String),
}

/// Why an append was refused; nothing of it was written.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// Another writer appended to the stream first: reload and decide again.
    #[error("{aggregate_type} {aggregate_id} changed concurrently")]
    Conflict {
        aggregate_type: String,
        aggregate_id: String,
    },
    /// A unique value (e.g. an email) already belongs to another aggregate.
    #[error("{scope} {value:?} is already taken")]
    ClaimTaken { scope: String, value: String },
    /// The idempotency key was already used: return its first result.
    #[error("idempotency key {0:?} already used")]
    DuplicateKey(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for AppendError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(StoreError::Db(e))
    }
}

/// An event as stored, with its place in its stream (`version`) and in the
/// whole store (`position`).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordedEvent {
    pub position: i64,
    pub event_id: String,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub version: i64,
    pub event_type: String,
    pub payload: Value,
    /// RFC 3339, UTC.
    pub recorded_at: String,
}

/// An event about to be appended. Its id and time are fixed before the
/// commit so the state after it (and the response recorded under an
/// idempotency key) can be computed first.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    pub event_id: String,
    pub event_type: String,
    pub payload: Value,
    pub recorded_at: String,
}

impl NewEvent {
    pub fn new(event_type: impl Into<String>, payload: Value) -> Self {
        Self {
            event_id: uuid::Uuid::new_v4().to_string(),
            event_type: event_type.into(),
            payload,
            recorded_at: now_rfc3339(),
        }
    }

    /// The event as it will be recorded at `version` (position still unknown: 0).
    pub fn at_version(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        version: i64,
    ) -> RecordedEvent {
        RecordedEvent {
            position: 0,
            event_id: self.event_id.clone(),
            aggregate_type: aggregate_type.to_owned(),
            aggregate_id: aggregate_id.to_owned(),
            version,
            event_type: self.event_type.clone(),
            payload: self.payload.clone(),
            recorded_at: self.recorded_at.clone(),
        }
    }
}

/// Events for one stream, valid only if the stream is still at `expected_version`.
#[derive(Clone, Debug)]
pub struct StreamWrite {
    pub aggregate_type: String,
    pub aggregate_id: String,
    /// 0 for a new aggregate.
    pub expected_version: i64,
    pub events: Vec<NewEvent>,
    /// The state after the events, kept for listing (never for deciding).
    pub snapshot: Value,
    /// The snapshot's lookup key (`Aggregate::lookup` of the state after
    /// the events); replaces the previous one.
    pub lookup: Option<Lookup>,
}

/// A secondary key an aggregate can be found by, in two parts, each
/// indexed: `group` (e.g. a warehouse) and `key` within it (e.g. a product
/// and whether the item is available). See [`EventStore::lookup`] and
/// [`EventStore::lookup_counts`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Lookup {
    pub group: String,
    pub key: String,
}

impl Lookup {
    pub fn new(group: impl Into<String>, key: impl Into<String>) -> Self {
        Self {
            group: group.into(),
            key: key.into(),
        }
    }
}

/// How many aggregates of one type carry one lookup key in one group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LookupCount {
    pub group: String,
    pub key: String,
    pub count: i64,
}

/// A value unique within `scope` (e.g. `account.email`).
#[derive(Clone, Debug)]
pub struct Claim {
    pub scope: String,
    pub value: String,
    pub aggregate_id: String,
}

/// The first result of a command, returned again to a repeat of its key.
#[derive(Clone, Debug, PartialEq)]
pub struct IdempotentResult {
    pub key: String,
    pub status: u16,
    pub body: Value,
}

/// Everything one command writes, atomically. Several streams may be
/// written at once (e.g. a reservation and the inventory item it takes):
/// every one must still be at its expected version, so two commands can
/// never both take the same item.
#[derive(Clone, Debug, Default)]
pub struct Commit {
    pub writes: Vec<StreamWrite>,
    pub claims: Vec<Claim>,
    pub idempotency: Option<IdempotentResult>,
}

/// See [`EventStore::relay_lease`].
pub struct RelayLease {
    _connection: Option<sqlx::AnyConnection>,
}

/// Arbitrary constant identifying the relay's lock on PostgreSQL.
const RELAY_LOCK: i32 = 0x6576_7265; // "evre"

#[derive(Clone, Debug)]
pub struct EventStore {
    pool: AnyPool,
    backend: Backend,
    /// Aggregate types whose lookup backlog this process emptied.
    indexed: Arc<Mutex<HashSet<&'static str>>>,
}

/// Snapshots keyed per backlog transaction.
const BACKLOG_BATCH: i64 = 500;
/// Keys per `lookup_counts` query (bind parameters stay far below limits).
const KEYS_PER_QUERY: usize = 500;

const EVENT_COLUMNS: &str =
    "position, event_id, aggregate_type, aggregate_id, version, event_type, payload, recorded_at";

fn event_from_row(row: &AnyRow) -> Result<RecordedEvent, StoreError> {
    let payload: String = row.try_get("payload")?;
    Ok(RecordedEvent {
        position: row.try_get("position")?,
        event_id: row.try_get("event_id")?,
        aggregate_type: row.try_get("aggregate_type")?,
        aggregate_id: row.try_get("aggregate_id")?,
        version: row.try_get("version")?,
        event_type: row.try_get("event_type")?,
        payload: serde_json::from_str(&payload)?,
        recorded_at: row.try_get("recorded_at")?,
    })
}

/// Now, as RFC 3339 with milliseconds.
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    let now = now
        .replace_nanosecond(now.millisecond() as u32 * 1_000_000)
        .unwrap_or(now);
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl EventStore {
    /// Connects and runs the migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::Url(url.to_owned()));
        };
        let options =
            AnyPoolOptions::new().max_connections(if backend == Backend::Sqlite { 4 } else { 10 });
        let options = if backend == Backend::Sqlite {
            // WAL lets readers run beside the single writer.
            options.after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::query("PRAGMA journal_mode = WAL")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA synchronous = NORMAL")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA busy_timeout = 10000")
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            })
        } else {
            options
        };
        let pool = options.connect(url).await?;
        schema::migrate(&pool, backend).await?;
        Ok(Self {
            pool,
            backend,
            indexed: Arc::default(),
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// True when the database answers (for `/readyz`).
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// Appends atomically; returns the recorded events in order.
    pub async fn append(&self, commit: &Commit) -> Result<Vec<RecordedEvent>, AppendError> {
        let mut tx = self.pool.begin().await?;
        let recorded_at = now_rfc3339();
        // Taking the counter's row lock first serializes writers, so
        // positions become visible in commit order.
        let mut position: i64 =
            sqlx::query_scalar("UPDATE store_position SET last = last WHERE id = 1 RETURNING last")
                .fetch_one(&mut *tx)
                .await?;
        if let Some(idem) = &commit.idempotency {
            let inserted = sqlx::query(
                "INSERT INTO idempotency (key, status, body, recorded_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )
            .bind(&idem.key)
            .bind(i64::from(idem.status))
            .bind(idem.body.to_string())
            .bind(&recorded_at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                return Err(AppendError::DuplicateKey(idem.key.clone()));
            }
        }
        for claim in &commit.claims {
            let inserted =
                sqlx::query("INSERT INTO claims (scope, value, aggregate_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                    .bind(&claim.scope)
                    .bind(&claim.value)
                    .bind(&claim.aggregate_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            if inserted == 0 {
                return Err(AppendError::ClaimTaken {
                    scope: claim.scope.clone(),
                    value: claim.value.clone(),
                });
            }
        }
        let mut recorded = Vec::new();
        for write in &commit.writes {
            let conflict = || AppendError::Conflict {
                aggregate_type: write.aggregate_type.clone(),
                aggregate_id: write.aggregate_id.clone(),
            };
            let current: Option<i64> = sqlx::query_scalar(
                "SELECT version FROM aggregates WHERE aggregate_type = $1 AND aggregate_id = $2",
            )
            .bind(&write.aggregate_type)
            .bind(&write.aggregate_id)
            .fetch_optional(&mut *tx)
            .await?;
            if current.unwrap_or(0) != write.expected_version {
                return Err(conflict());
            }
            let first_position = position + 1;
            let mut version = write.expected_version;
            for event in &write.events {
                position += 1;
                version += 1;
                let e = RecordedEvent {
                    position,
                    ..event.at_version(&write.aggregate_type, &write.aggregate_id, version)
                };
                let inserted = sqlx::query(
                    "INSERT INTO events (position, event_id, aggregate_type, aggregate_id, version, event_type, payload, recorded_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
                )
                .bind(e.position)
                .bind(&e.event_id)
                .bind(&e.aggregate_type)
                .bind(&e.aggregate_id)
                .bind(e.version)
                .bind(&e.event_type)
                .bind(e.payload.to_string())
                .bind(&e.recorded_at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if inserted == 0 {
                    return Err(conflict());
                }
                sqlx::query("INSERT INTO outbox (position) VALUES ($1)")
                    .bind(position)
                    .execute(&mut *tx)
                    .await?;
                recorded.push(e);
            }
            let updated = sqlx::query(
                "INSERT INTO aggregates (aggregate_type, aggregate_id, version, created_position, state, lookup_group, lookup_key)
                 VALUES ($1, $2, $3, $4, $5, $7, $8)
                 ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE SET version = excluded.version, state = excluded.state,
                     lookup_group = excluded.lookup_group, lookup_key = excluded.lookup_key
                 WHERE aggregates.version = $6",
            )
            .bind(&write.aggregate_type)
            .bind(&write.aggregate_id)
            .bind(version)
            .bind(first_position)
            .bind(write.snapshot.to_string())
            .bind(write.expected_version)
            .bind(write.lookup.as_ref().map(|l| l.group.clone()))
            .bind(write.lookup.as_ref().map(|l| l.key.clone()))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated == 0 {
                return Err(conflict());
            }
        }
        sqlx::query("UPDATE store_position SET last = $1 WHERE id = 1")
            .bind(position)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(recorded)
    }

    /// The stream of one aggregate, oldest first (empty when it does not exist).
    pub async fn load(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY version"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(aggregate_type)
            .bind(aggregate_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(event_from_row).collect()
    }

    /// Events of the whole store after `after`, in position order.
    pub async fn feed(&self, after: i64, limit: i64) -> Result<Vec<RecordedEvent>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE position > $1 ORDER BY position LIMIT $2"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(after)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(event_from_row).collect()
    }

    /// Snapshots of aggregates of one type in creation order: `(position, id, state)`.
    pub async fn list(
        &self,
        aggregate_type: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<(i64, String, Value)>, StoreError> {
        let rows = sqlx::query(
            "SELECT created_position, aggregate_id, state FROM aggregates
             WHERE aggregate_type = $1 AND created_position > $2 ORDER BY created_position LIMIT $3",
        )
        .bind(aggregate_type)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let state: String = r.try_get("state")?;
                Ok((
                    r.try_get("created_position")?,
                    r.try_get("aggregate_id")?,
                    serde_json::from_str(&state)?,
                ))
            })
            .collect()
    }

    /// Snapshots of type `A` whose lookup is in `group` (and is `key`, when
    /// given), in creation order, at most `limit`: `(id, state)`. Reads
    /// only those rows, through an index.
    pub async fn lookup<A: Aggregate>(
        &self,
        group: &str,
        key: Option<&str>,
        limit: i64,
    ) -> Result<Vec<(String, A)>, StoreError> {
        self.index_backlog::<A>().await?;
        let query = match key {
            Some(key) => sqlx::query(
                "SELECT aggregate_id, state FROM aggregates
                 WHERE aggregate_type = $1 AND lookup_group = $2 AND lookup_key = $3
                 ORDER BY created_position LIMIT $4",
            )
            .bind(A::KIND)
            .bind(group)
            .bind(key),
            // SQLite without statistics would rather walk the creation
            // index (every snapshot of the type) than sort one group's.
            None => sqlx::query(if self.backend == Backend::Sqlite {
                "SELECT aggregate_id, state FROM aggregates INDEXED BY aggregates_by_lookup_group
                 WHERE aggregate_type = $1 AND lookup_group = $2
                 ORDER BY created_position LIMIT $3"
            } else {
                "SELECT aggregate_id, state FROM aggregates
                 WHERE aggregate_type = $1 AND lookup_group = $2
                 ORDER BY created_position LIMIT $3"
            })
            .bind(A::KIND)
            .bind(group),
        };
        let rows = query.bind(limit).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                let state: String = r.try_get("state")?;
                Ok((r.try_get("aggregate_id")?, serde_json::from_str(&state)?))
            })
            .collect()
    }

    /// How many snapshots of type `A` carry each of `keys`, per group (no
    /// entry for a count of 0), ordered by group then key. Counts index
    /// entries; reads no snapshot.
    pub async fn lookup_counts<A: Aggregate>(
        &self,
        keys: &[String],
    ) -> Result<Vec<LookupCount>, StoreError> {
        self.index_backlog::<A>().await?;
        let mut counts = Vec::new();
        for chunk in keys.chunks(KEYS_PER_QUERY) {
            let placeholders = (0..chunk.len())
                .map(|i| format!("${}", i + 2))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "SELECT lookup_group, lookup_key, COUNT(*) AS n FROM aggregates
                 WHERE aggregate_type = $1 AND lookup_key IN ({placeholders}) AND lookup_group IS NOT NULL
                 GROUP BY lookup_group, lookup_key"
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(A::KIND);
            for key in chunk {
                query = query.bind(key);
            }
            for row in query.fetch_all(&self.pool).await? {
                counts.push(LookupCount {
                    group: row.try_get("lookup_group")?,
                    key: row.try_get("lookup_key")?,
                    count: row.try_get("n")?,
                });
            }
        }
        counts.sort_by(|a, b| (&a.group, &a.key).cmp(&(&b.group, &b.key)));
        Ok(counts)
    }

    /// Gives the snapshots of type `A` written before lookup keys existed
    /// (schema version 2) their key, computed from the snapshot; once per
    /// process and type, before its first lookup. A snapshot written since
    /// keeps the key its write gave it (the update is at the version read).
    async fn index_backlog<A: Aggregate>(&self) -> Result<(), StoreError> {
        if self.indexed.lock().is_ok_and(|done| done.contains(A::KIND)) {
            return Ok(());
        }
        loop {
            let rows = sqlx::query(
                "SELECT a.aggregate_id, a.version, a.state FROM lookup_backlog b
                 JOIN aggregates a ON a.aggregate_type = b.aggregate_type AND a.aggregate_id = b.aggregate_id
                 WHERE b.aggregate_type = $1 ORDER BY b.aggregate_id LIMIT $2",
            )
            .bind(A::KIND)
            .bind(BACKLOG_BATCH)
            .fetch_all(&self.pool)
            .await?;
            if rows.is_empty() {
                break;
            }
            let mut tx = self.pool.begin().await?;
            // Like every writer, the position lock first: no deadlock with appends.
            sqlx::query("UPDATE store_position SET last = last WHERE id = 1")
                .execute(&mut *tx)
                .await?;
            for row in &rows {
                let id: String = row.try_get("aggregate_id")?;
                let version: i64 = row.try_get("version")?;
                let state: String = row.try_get("state")?;
                let lookup = serde_json::from_str::<A>(&state)
                    .ok()
                    .and_then(|a| a.lookup());
                sqlx::query(
                    "UPDATE aggregates SET lookup_group = $1, lookup_key = $2
                     WHERE aggregate_type = $3 AND aggregate_id = $4 AND version = $5",
                )
                .bind(lookup.as_ref().map(|l| l.group.clone()))
                .bind(lookup.as_ref().map(|l| l.key.clone()))
                .bind(A::KIND)
                .bind(&id)
                .bind(version)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "DELETE FROM lookup_backlog WHERE aggregate_type = $1 AND aggregate_id = $2",
                )
                .bind(A::KIND)
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        }
        if let Ok(mut done) = self.indexed.lock() {
            done.insert(A::KIND);
        }
        Ok(())
    }

    /// The first result recorded under an idempotency key.
    pub async fn idempotent_result(
        &self,
        key: &str,
    ) -> Result<Option<IdempotentResult>, StoreError> {
        let row = sqlx::query("SELECT status, body FROM idempotency WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let status: i64 = row.try_get("status")?;
        let body: String = row.try_get("body")?;
        Ok(Some(IdempotentResult {
            key: key.to_owned(),
            status: u16::try_from(status).unwrap_or(200),
            body: serde_json::from_str(&body)?,
        }))
    }

    /// The right to relay the outbox, held by one process at a time so web
    /// replicas sharing a PostgreSQL store do not publish every event twice.
    /// On PostgreSQL a session advisory lock on a connection of its own,
    /// released when the lease (or the process) ends; `None` while another
    /// replica holds it. SQLite is one replica's file: always granted.
    pub async fn relay_lease(&self) -> Result<Option<RelayLease>, StoreError> {
        if self.backend == Backend::Sqlite {
            return Ok(Some(RelayLease { _connection: None }));
        }
        let mut connection = self.pool.acquire().await?.detach();
        // Keyed by the schema too: contexts sharing one database, each in its
        // own schema (the example system), each relay their own outbox.
        let granted: bool =
            sqlx::query_scalar("SELECT pg_try_advisory_lock($1, hashtext(current_schema()))")
                .bind(RELAY_LOCK)
                .fetch_one(&mut connection)
                .await?;
        Ok(granted.then_some(RelayLease {
            _connection: Some(connection),
        }))
    }

    /// The oldest events not yet published.
    pub async fn outbox_batch(&self, limit: i64) -> Result<Vec<RecordedEvent>, StoreError> {
        let sql = format!(
            "SELECT {} FROM outbox o JOIN events e ON e.position = o.position ORDER BY o.position LIMIT $1",
            EVENT_COLUMNS
                .split(", ")
                .map(|c| format!("e.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(event_from_row).collect()
    }

    /// Marks events published (the broker confirmed them).
    pub async fn outbox_done(&self, positions: &[i64]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for p in positions {
            sqlx::query("DELETE FROM outbox WHERE position = $1")
                .bind(*p)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Events committed but not yet confirmed by the broker.
    pub async fn outbox_pending(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM outbox")
            .fetch_one(&self.pool)
            .await?)
    }
}

#[cfg(test)]
mod tests;
