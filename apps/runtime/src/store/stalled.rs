//! Stalled saga steps: the snapshots that have waited for a step
//! (`Aggregate::in_flight`, written with every snapshot with the time its
//! wait began) since before a given time, each with what re-driving it needs
//! — the latest event that drives the step and how often the step was
//! re-driven already — and the lease that lets one web replica at a time
//! re-drive (`crate::redrive`).

use serde_json::Value;
use sqlx::Row;

use super::{EventStore, RelayLease, StoreError};
use crate::{
    aggregate::Lookup,
    event::{STEP_ABANDONED, STEP_REDRIVEN},
};

/// Arbitrary constant identifying the re-driver's lock on PostgreSQL.
const REDRIVE_LOCK: i32 = 0x6576_7264; // "evrd"

/// A snapshot waiting for its saga step since before the bound.
#[derive(Clone, Debug, PartialEq)]
pub struct Stalled {
    pub aggregate_type: String,
    pub aggregate_id: String,
    /// The stream's version (a re-drive is written only at this version).
    pub version: i64,
    pub snapshot: Value,
    pub lookup: Option<Lookup>,
    /// The type of the event whose delivery drives the awaited step.
    pub awaits: String,
    /// When its wait began (Unix milliseconds): its last event, a re-drive
    /// included.
    pub since: i64,
    /// The latest event of type `awaits` in the stream, if any.
    pub step: Option<StepEvent>,
    /// Re-drives recorded since the aggregate's last own event.
    pub redrives: i64,
}

/// The event a re-drive publishes again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepEvent {
    pub position: i64,
    pub event_id: String,
    pub event_type: String,
}

impl EventStore {
    /// The right to re-drive stalled steps, held by one web replica at a
    /// time (like [`EventStore::relay_lease`]) so a step is re-driven once
    /// per bound, not once per replica.
    pub async fn redrive_lease(&self) -> Result<Option<RelayLease>, StoreError> {
        self.session_lease(REDRIVE_LOCK).await
    }

    /// The snapshots waiting for a step since before `waiting_since`
    /// (Unix milliseconds), longest waiting first, at most `limit`. Reads
    /// only those rows, through the `aggregates_in_flight` index.
    pub async fn stalled(
        &self,
        waiting_since: i64,
        limit: i64,
    ) -> Result<Vec<Stalled>, StoreError> {
        let rows = sqlx::query(
            "SELECT aggregate_type, aggregate_id, version, state, lookup_group, lookup_key,
                    in_flight_event, in_flight_since
             FROM aggregates
             WHERE in_flight_since IS NOT NULL AND in_flight_since < $1
             ORDER BY in_flight_since LIMIT $2",
        )
        .bind(waiting_since)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut stalled = Vec::with_capacity(rows.len());
        for row in rows {
            let state: String = row.try_get("state")?;
            let group: Option<String> = row.try_get("lookup_group")?;
            let key: Option<String> = row.try_get("lookup_key")?;
            let mut s = Stalled {
                aggregate_type: row.try_get("aggregate_type")?,
                aggregate_id: row.try_get("aggregate_id")?,
                version: row.try_get("version")?,
                snapshot: serde_json::from_str(&state)?,
                lookup: group.zip(key).map(|(g, k)| Lookup::new(g, k)),
                awaits: row
                    .try_get::<Option<String>, _>("in_flight_event")?
                    .unwrap_or_default(),
                since: row.try_get("in_flight_since")?,
                step: None,
                redrives: 0,
            };
            s.step = self.step_event(&s).await?;
            s.redrives = self.redrives(&s).await?;
            stalled.push(s);
        }
        Ok(stalled)
    }

    /// The latest event of the type the step awaits.
    async fn step_event(&self, s: &Stalled) -> Result<Option<StepEvent>, StoreError> {
        let row = sqlx::query(
            "SELECT position, event_id FROM events
             WHERE aggregate_type = $1 AND aggregate_id = $2 AND event_type = $3
             ORDER BY version DESC LIMIT 1",
        )
        .bind(&s.aggregate_type)
        .bind(&s.aggregate_id)
        .bind(&s.awaits)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(StepEvent {
                position: r.try_get("position")?,
                event_id: r.try_get("event_id")?,
                event_type: s.awaits.clone(),
            })
        })
        .transpose()
    }

    /// The re-drives after the aggregate's last event of its own.
    async fn redrives(&self, s: &Stalled) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM events
             WHERE aggregate_type = $1 AND aggregate_id = $2 AND event_type = $3
               AND version > (SELECT COALESCE(MAX(version), 0) FROM events
                              WHERE aggregate_type = $1 AND aggregate_id = $2
                                AND event_type <> $3 AND event_type <> $4)",
        )
        .bind(&s.aggregate_type)
        .bind(&s.aggregate_id)
        .bind(STEP_REDRIVEN)
        .bind(STEP_ABANDONED)
        .fetch_one(&self.pool)
        .await?)
    }
}
