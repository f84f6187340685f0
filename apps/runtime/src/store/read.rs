//! Reading: one aggregate's stream, the whole store's feed in position
//! order, and the listing snapshots of one aggregate type.

use serde_json::Value;
use sqlx::{
    Any, Row,
    any::{AnyArguments, AnyRow},
    query::Query,
};

use super::{EventStore, StoreError};
use crate::event::RecordedEvent;

pub(super) const EVENT_COLUMNS: &str =
    "position, event_id, aggregate_type, aggregate_id, version, event_type, payload, recorded_at";

pub(super) fn event_from_row(row: &AnyRow) -> Result<RecordedEvent, StoreError> {
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

impl EventStore {
    /// The stream of one aggregate, oldest first (empty when it does not exist).
    pub async fn load(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY version"
        );
        let query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(aggregate_type)
            .bind(aggregate_id);
        self.fetch_events(query).await
    }

    /// One aggregate's snapshot — its state after its last event, written by
    /// the same commit as that event — and its version; `None` when it does
    /// not exist. One row, whatever the length of the stream.
    pub async fn snapshot(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<Option<(Value, i64)>, StoreError> {
        let row = sqlx::query(
            "SELECT version, state FROM aggregates WHERE aggregate_type = $1 AND aggregate_id = $2",
        )
        .bind(aggregate_type)
        .bind(aggregate_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let state: String = row.try_get("state")?;
        Ok(Some((
            serde_json::from_str(&state)?,
            row.try_get("version")?,
        )))
    }

    /// Events of the whole store after `after`, in position order.
    pub async fn feed(&self, after: i64, limit: i64) -> Result<Vec<RecordedEvent>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE position > $1 ORDER BY position LIMIT $2"
        );
        let query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(after)
            .bind(limit);
        self.fetch_events(query).await
    }

    /// Runs a query selecting [`EVENT_COLUMNS`] and reads its rows as events.
    pub(super) async fn fetch_events(
        &self,
        query: Query<'_, Any, AnyArguments>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let rows = query.fetch_all(&self.pool).await?;
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
}
