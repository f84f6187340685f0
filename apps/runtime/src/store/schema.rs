//! The event store's schema and its migrations, applied in order at start.
//!
//! One SQL text serves SQLite and PostgreSQL (plain `TEXT`/`BIGINT`, no
//! autoincrement: positions come from the `store_position` counter, whose row
//! lock also makes positions visible in commit order — the global feed never
//! skips an event that commits late). Each migration runs once, recorded in
//! `eventflow_schema`; concurrent starts on PostgreSQL serialize on an
//! advisory lock, on SQLite on the database's write lock.

use sqlx::AnyPool;

use super::{Backend, StoreError};

/// Migrations in order; the index + 1 is the recorded version. Never edit a
/// released entry: append a new one.
pub(super) const MIGRATIONS: &[&[&str]] = &[
    &[
        "CREATE TABLE IF NOT EXISTS events (
        position BIGINT PRIMARY KEY,
        event_id TEXT NOT NULL UNIQUE,
        aggregate_type TEXT NOT NULL,
        aggregate_id TEXT NOT NULL,
        version BIGINT NOT NULL,
        event_type TEXT NOT NULL,
        payload TEXT NOT NULL,
        recorded_at TEXT NOT NULL,
        UNIQUE (aggregate_type, aggregate_id, version))",
        "CREATE TABLE IF NOT EXISTS store_position (id BIGINT PRIMARY KEY, last BIGINT NOT NULL)",
        "INSERT INTO store_position (id, last) VALUES (1, 0) ON CONFLICT DO NOTHING",
        "CREATE TABLE IF NOT EXISTS aggregates (
        aggregate_type TEXT NOT NULL,
        aggregate_id TEXT NOT NULL,
        version BIGINT NOT NULL,
        created_position BIGINT NOT NULL,
        state TEXT NOT NULL,
        PRIMARY KEY (aggregate_type, aggregate_id))",
        "CREATE INDEX IF NOT EXISTS aggregates_by_creation ON aggregates (aggregate_type, created_position)",
        "CREATE TABLE IF NOT EXISTS outbox (position BIGINT PRIMARY KEY)",
        "CREATE TABLE IF NOT EXISTS claims (
        scope TEXT NOT NULL,
        value TEXT NOT NULL,
        aggregate_id TEXT NOT NULL,
        PRIMARY KEY (scope, value))",
        "CREATE TABLE IF NOT EXISTS idempotency (
        key TEXT PRIMARY KEY,
        status BIGINT NOT NULL,
        body TEXT NOT NULL,
        recorded_at TEXT NOT NULL)",
    ],
    &[
        // 2: the lookup key of each snapshot (`Aggregate::lookup`), in two
        // parts, each indexed so one is found by exact match on either: the
        // items of one group (a warehouse's, or its available apples), or the
        // groups holding a key (the warehouses holding apples) with counts.
        "ALTER TABLE aggregates ADD COLUMN lookup_group TEXT",
        "ALTER TABLE aggregates ADD COLUMN lookup_key TEXT",
        "CREATE INDEX IF NOT EXISTS aggregates_by_lookup_group
            ON aggregates (aggregate_type, lookup_group, lookup_key, created_position)",
        "CREATE INDEX IF NOT EXISTS aggregates_by_lookup_key
            ON aggregates (aggregate_type, lookup_key, lookup_group)",
        // Snapshots written before this migration have no key yet: the store
        // computes theirs from the snapshot before it first looks one of their
        // type up (`EventStore::index_backlog`), then deletes the row here.
        "CREATE TABLE IF NOT EXISTS lookup_backlog (
            aggregate_type TEXT NOT NULL,
            aggregate_id TEXT NOT NULL,
            PRIMARY KEY (aggregate_type, aggregate_id))",
        "INSERT INTO lookup_backlog (aggregate_type, aggregate_id)
            SELECT aggregate_type, aggregate_id FROM aggregates",
    ],
    &[
        // 3: the saga step a snapshot waits for (`Aggregate::in_flight`):
        // the type of the event that drives it and since when (Unix
        // milliseconds) it waits — NULL when it waits for nothing; indexed so
        // the re-driver finds the stalled ones without reading the others.
        // Snapshots written before this migration wait for nothing until
        // their next event.
        "ALTER TABLE aggregates ADD COLUMN in_flight_event TEXT",
        "ALTER TABLE aggregates ADD COLUMN in_flight_since BIGINT",
        "CREATE INDEX IF NOT EXISTS aggregates_in_flight ON aggregates (in_flight_since)",
    ],
];

/// Arbitrary constant identifying the migration lock on PostgreSQL.
const PG_MIGRATION_LOCK: i64 = 0x6576_656e_7466_6c6f;

pub(super) async fn migrate(pool: &AnyPool, backend: Backend) -> Result<(), StoreError> {
    migrate_to(pool, backend, MIGRATIONS.len()).await
}

/// Applies the migrations up to version `target` (tests build old databases).
pub(super) async fn migrate_to(
    pool: &AnyPool,
    backend: Backend,
    target: usize,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    if backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(PG_MIGRATION_LOCK)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("CREATE TABLE IF NOT EXISTS eventflow_schema (version BIGINT PRIMARY KEY)")
        .execute(&mut *tx)
        .await?;
    let applied: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM eventflow_schema")
        .fetch_one(&mut *tx)
        .await?;
    let applied = usize::try_from(applied.unwrap_or(0)).unwrap_or(0);
    for (index, statements) in MIGRATIONS.iter().enumerate().take(target).skip(applied) {
        for statement in *statements {
            sqlx::query(*statement).execute(&mut *tx).await?;
        }
        let version = i64::try_from(index + 1).unwrap_or(i64::MAX);
        sqlx::query("INSERT INTO eventflow_schema (version) VALUES ($1)")
            .bind(version)
            .execute(&mut *tx)
            .await?;
    }
    if backend == Backend::Postgres {
        // Not a migration: replaced at every start, so it follows the code.
        sqlx::query(super::append_pg::FUNCTION)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}
