//! The outbox: the events committed but not yet confirmed by the broker,
//! in position order, and the lease that lets one relay at a time publish
//! them.

use std::time::Duration;

use super::{Backend, EventStore, StoreError, read::EVENT_COLUMNS};
use crate::event::RecordedEvent;

/// The right to do one job alone among the processes sharing a store; see
/// [`EventStore::relay_lease`] and [`EventStore::redrive_lease`].
pub struct RelayLease {
    connection: Option<sqlx::AnyConnection>,
}

/// Longest wait for the lease's connection to answer [`RelayLease::holds`].
const LEASE_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

impl RelayLease {
    /// Whether the lease still holds: its connection answers a `SELECT 1`
    /// (one round trip). A session advisory lock lives exactly as long as
    /// its connection, so a lease whose connection died (PostgreSQL
    /// restarted, the connection was terminated) is gone — another replica
    /// may hold it now. Always true on SQLite.
    pub async fn holds(&mut self) -> bool {
        let Some(connection) = &mut self.connection else {
            return true;
        };
        let ping = sqlx::query("SELECT 1").execute(connection);
        matches!(
            tokio::time::timeout(LEASE_CHECK_TIMEOUT, ping).await,
            Ok(Ok(_))
        )
    }
}

/// The positions bound as `$1`, one JSON array (PostgreSQL).
macro_rules! done_positions {
    () => {
        "SELECT jsonb_array_elements_text($1::jsonb)::bigint"
    };
}

/// The event columns of `events e`, for a read joined with the outbox.
fn joined_event_columns() -> String {
    EVENT_COLUMNS
        .split(", ")
        .map(|c| format!("e.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Arbitrary constant identifying the relay's lock on PostgreSQL.
const RELAY_LOCK: i32 = 0x6576_7265; // "evre"

impl EventStore {
    /// The right to relay the outbox, held by one process at a time so web
    /// replicas sharing a PostgreSQL store do not publish every event twice.
    /// On PostgreSQL a session advisory lock on a connection of its own,
    /// released when the lease (or the process) ends; `None` while another
    /// replica holds it. SQLite is one replica's file: always granted.
    pub async fn relay_lease(&self) -> Result<Option<RelayLease>, StoreError> {
        self.session_lease(RELAY_LOCK).await
    }

    /// A session advisory lock `lock` on a connection of its own (PostgreSQL),
    /// or always granted (SQLite).
    pub(super) async fn session_lease(&self, lock: i32) -> Result<Option<RelayLease>, StoreError> {
        if self.backend == Backend::Sqlite {
            return Ok(Some(RelayLease { connection: None }));
        }
        let mut connection = self.pool.acquire().await?.detach();
        // Keyed by the schema too: contexts sharing one database, each in its
        // own schema (the example system), each relay their own outbox.
        let granted: bool =
            sqlx::query_scalar("SELECT pg_try_advisory_lock($1, hashtext(current_schema()))")
                .bind(lock)
                .fetch_one(&mut connection)
                .await?;
        Ok(granted.then_some(RelayLease {
            connection: Some(connection),
        }))
    }

    /// The oldest events not yet published.
    pub async fn outbox_batch(&self, limit: i64) -> Result<Vec<RecordedEvent>, StoreError> {
        let sql = format!(
            "SELECT {} FROM outbox o JOIN events e ON e.position = o.position ORDER BY o.position LIMIT $1",
            joined_event_columns()
        );
        self.fetch_events(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(limit))
            .await
    }

    /// Marks `done` published and reads the oldest events still to publish:
    /// the relay's one statement per batch on PostgreSQL (a deleting CTE;
    /// the read leaves out what it deletes, since it sees the rows as they
    /// were before the statement), two on SQLite.
    pub async fn outbox_next(
        &self,
        done: &[i64],
        limit: i64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        if done.is_empty() {
            return self.outbox_batch(limit).await;
        }
        if self.backend == Backend::Sqlite {
            self.outbox_done(done).await?;
            return self.outbox_batch(limit).await;
        }
        let sql = format!(
            "WITH done AS (DELETE FROM outbox WHERE position IN ({positions})) \
             SELECT {} FROM outbox o JOIN events e ON e.position = o.position \
             WHERE o.position NOT IN ({positions}) ORDER BY o.position LIMIT $2",
            joined_event_columns(),
            positions = done_positions!()
        );
        let list = serde_json::to_string(done)?;
        self.fetch_events(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(list).bind(limit))
            .await
    }

    /// Marks events published (the broker confirmed them): one statement,
    /// the positions bound as one JSON array.
    pub async fn outbox_done(&self, positions: &[i64]) -> Result<(), StoreError> {
        if positions.is_empty() {
            return Ok(());
        }
        let sql = match self.backend {
            Backend::Postgres => {
                concat!(
                    "DELETE FROM outbox WHERE position IN (",
                    done_positions!(),
                    ")"
                )
            }
            Backend::Sqlite => {
                "DELETE FROM outbox WHERE position IN (SELECT value FROM json_each($1))"
            }
        };
        let list = serde_json::to_string(positions)?;
        sqlx::query(sql).bind(list).execute(&self.pool).await?;
        Ok(())
    }

    /// Compacts the outbox (PostgreSQL: `VACUUM outbox`; nothing on
    /// SQLite). Every event inserts a row and deletes it once published: left
    /// to autovacuum (a pass a minute at best), the dead rows pile up and
    /// every batch read scans them — the relay's read cost grew to
    /// milliseconds under load. A vacuum of the small table takes about one.
    pub async fn compact_outbox(&self) -> Result<(), StoreError> {
        if self.backend == Backend::Postgres {
            sqlx::query("VACUUM outbox").execute(&self.pool).await?;
        }
        Ok(())
    }

    /// Events committed but not yet confirmed by the broker.
    pub async fn outbox_pending(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM outbox")
            .fetch_one(&self.pool)
            .await?)
    }
}
