//! Appending: a [`Commit`] — one [`StreamWrite`] per aggregate it changes,
//! the unique [`Claim`]s it takes and the idempotency record of the command —
//! written in one transaction, or nothing of it with an [`AppendError`]
//! saying why. Every event also gets its outbox row here.

use serde_json::Value;
use sqlx::AnyConnection;

use super::{Backend, EventStore, IdempotentResult, StoreError};
use crate::{
    aggregate::Lookup,
    event::{NewEvent, RecordedEvent, now_millis, now_rfc3339},
};

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
    /// The saga step the state after the events waits for
    /// (`Aggregate::in_flight`); its wait starts with this write.
    pub in_flight: Option<String>,
}

/// A value unique within `scope` (e.g. `account.email`).
#[derive(Clone, Debug)]
pub struct Claim {
    pub scope: String,
    pub value: String,
    pub aggregate_id: String,
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
    /// Positions of events already stored to publish again (a re-driven
    /// saga step, `crate::redrive`): their outbox rows come back.
    pub republish: Vec<i64>,
}

impl EventStore {
    /// Appends atomically; returns the recorded events in order. On
    /// PostgreSQL one statement (`super::append_pg`), on SQLite (in process:
    /// no round trips) the transaction of [`Self::append_in_transaction`].
    pub async fn append(&self, commit: &Commit) -> Result<Vec<RecordedEvent>, AppendError> {
        let recorded_at = now_rfc3339();
        match self.backend {
            Backend::Postgres => self.append_pg(commit, &recorded_at).await,
            Backend::Sqlite => self.append_in_transaction(commit, &recorded_at).await,
        }
    }

    /// The append as one transaction: the position counter, the idempotency
    /// record (with a key), the claims, each stream's conditional snapshot
    /// write and its events with their outbox rows, the rows to publish again.
    async fn append_in_transaction(
        &self,
        commit: &Commit,
        recorded_at: &str,
    ) -> Result<Vec<RecordedEvent>, AppendError> {
        let mut tx = self.pool.begin().await?;
        let count: usize = commit.writes.iter().map(|w| w.events.len()).sum();
        // Taking the counter's row lock first serializes writers, so
        // positions become visible in commit order; the same statement
        // reserves this commit's positions.
        let last: i64 = sqlx::query_scalar(
            "UPDATE store_position SET last = last + $1 WHERE id = 1 RETURNING last",
        )
        .bind(i64::try_from(count).unwrap_or(i64::MAX))
        .fetch_one(&mut *tx)
        .await?;
        let first = last - i64::try_from(count).unwrap_or(i64::MAX);
        if let Some(idem) = &commit.idempotency {
            record_idempotency(&mut tx, idem, recorded_at).await?;
        }
        for claim in &commit.claims {
            take_claim(&mut tx, claim).await?;
        }
        let recorded = to_recorded(commit, first);
        let now = now_millis();
        let mut position = first;
        for write in &commit.writes {
            let events =
                &recorded[usize::try_from(position - first).unwrap_or(0)..][..write.events.len()];
            write_stream(&mut tx, write, events, position, now).await?;
            position += i64::try_from(write.events.len()).unwrap_or(0);
        }
        for p in &commit.republish {
            sqlx::query("INSERT INTO outbox (position) VALUES ($1) ON CONFLICT DO NOTHING")
                .bind(*p)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(recorded)
    }
}

/// The events of `write` as they are recorded after position `before`.
pub(super) fn planned_events(write: &StreamWrite, before: i64) -> Vec<RecordedEvent> {
    write
        .events
        .iter()
        .zip(1..)
        .map(|(event, n)| RecordedEvent {
            position: before + n,
            ..event.at_version(
                &write.aggregate_type,
                &write.aggregate_id,
                write.expected_version + n,
            )
        })
        .collect()
}

/// Every event of `commit`, in order, at the positions after `before`.
pub(super) fn to_recorded(commit: &Commit, before: i64) -> Vec<RecordedEvent> {
    let mut position = before;
    let mut recorded = Vec::new();
    for write in &commit.writes {
        recorded.extend(planned_events(write, position));
        position += i64::try_from(write.events.len()).unwrap_or(0);
    }
    recorded
}

/// The command's first result under its key; a key used before refuses
/// the whole commit.
async fn record_idempotency(
    tx: &mut AnyConnection,
    idem: &IdempotentResult,
    recorded_at: &str,
) -> Result<(), AppendError> {
    let inserted = sqlx::query(
        "INSERT INTO idempotency (key, status, body, recorded_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(&idem.key)
    .bind(i64::from(idem.status))
    .bind(idem.body.to_string())
    .bind(recorded_at)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Err(AppendError::DuplicateKey(idem.key.clone()));
    }
    Ok(())
}

/// A unique value; one taken before refuses the whole commit.
async fn take_claim(tx: &mut AnyConnection, claim: &Claim) -> Result<(), AppendError> {
    let inserted = sqlx::query(
        "INSERT INTO claims (scope, value, aggregate_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
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
    Ok(())
}

/// One stream's snapshot (waiting, if in flight, since `now`) and its
/// `events` (recorded after position `before`), each with its outbox row —
/// if the stream is still at its expected version.
///
/// The snapshot is written first, on the condition that the stream is at
/// its expected version (a new stream: that it does not exist yet), so a
/// writer that lost the race learns it before writing any event.
async fn write_stream(
    tx: &mut AnyConnection,
    write: &StreamWrite,
    events: &[RecordedEvent],
    before: i64,
    now: i64,
) -> Result<(), AppendError> {
    let conflict = || AppendError::Conflict {
        aggregate_type: write.aggregate_type.clone(),
        aggregate_id: write.aggregate_id.clone(),
    };
    let version = write.expected_version + i64::try_from(events.len()).unwrap_or(0);
    let snapshot = if write.expected_version == 0 {
        "INSERT INTO aggregates (aggregate_type, aggregate_id, version, created_position, state, lookup_group, lookup_key,
             in_flight_event, in_flight_since)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (aggregate_type, aggregate_id) DO NOTHING"
    } else {
        "UPDATE aggregates SET version = $3, state = $5, lookup_group = $6, lookup_key = $7,
             in_flight_event = $8, in_flight_since = $9
         WHERE aggregate_type = $1 AND aggregate_id = $2 AND version = $4"
    };
    let updated = sqlx::query(snapshot)
        .bind(&write.aggregate_type)
        .bind(&write.aggregate_id)
        .bind(version)
        .bind(if write.expected_version == 0 {
            before + 1
        } else {
            write.expected_version
        })
        .bind(write.snapshot.to_string())
        .bind(write.lookup.as_ref().map(|l| l.group.clone()))
        .bind(write.lookup.as_ref().map(|l| l.key.clone()))
        .bind(write.in_flight.clone())
        .bind(write.in_flight.as_ref().map(|_| now))
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if updated == 0 {
        return Err(conflict());
    }
    if events.is_empty() {
        return Ok(());
    }
    if insert_events(tx, events).await? != events.len() as u64 {
        return Err(conflict());
    }
    Ok(())
}

/// Inserts the events (one multi-row statement) and, when every one was
/// new, their outbox rows (another); returns how many events were inserted
/// (fewer than given: one was there already, a conflict).
async fn insert_events(
    tx: &mut AnyConnection,
    events: &[RecordedEvent],
) -> Result<u64, AppendError> {
    let rows: Vec<String> = (0..events.len())
        .map(|i| {
            let p: Vec<String> = (1..=8).map(|c| format!("${}", i * 8 + c)).collect();
            format!("({})", p.join(", "))
        })
        .collect();
    let sql = format!(
        "INSERT INTO events (position, event_id, aggregate_type, aggregate_id, version, event_type, payload, recorded_at)
         VALUES {} ON CONFLICT DO NOTHING",
        rows.join(", ")
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for e in events {
        query = query
            .bind(e.position)
            .bind(e.event_id.clone())
            .bind(e.aggregate_type.clone())
            .bind(e.aggregate_id.clone())
            .bind(e.version)
            .bind(e.event_type.clone())
            .bind(e.payload.to_string())
            .bind(e.recorded_at.clone());
    }
    let inserted = query.execute(&mut *tx).await?.rows_affected();
    if inserted == events.len() as u64 {
        let values: Vec<String> = (1..=events.len()).map(|i| format!("(${i})")).collect();
        let sql = format!("INSERT INTO outbox (position) VALUES {}", values.join(", "));
        let mut outbox = sqlx::query(sqlx::AssertSqlSafe(sql));
        for e in events {
            outbox = outbox.bind(e.position);
        }
        outbox.execute(&mut *tx).await?;
    }
    Ok(inserted)
}
