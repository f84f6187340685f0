//! Lookups: snapshots found by their [`Lookup`](crate::aggregate::Lookup) key through an index
//! instead of reading every snapshot of a type, counts per key, and the
//! one-time keying of snapshots written before keys existed.

use sqlx::Row;

use super::{Backend, EventStore, StoreError};
use crate::aggregate::Aggregate;

/// How many aggregates of one type carry one lookup key in one group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LookupCount {
    pub group: String,
    pub key: String,
    pub count: i64,
}

/// Snapshots keyed per backlog transaction.
const BACKLOG_BATCH: i64 = 500;
/// Keys per `lookup_counts` query (bind parameters stay far below limits).
const KEYS_PER_QUERY: usize = 500;

impl EventStore {
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
}
