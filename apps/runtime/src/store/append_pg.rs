//! The PostgreSQL append in one round trip: the whole [`Commit`] goes as one
//! JSON argument to `eventflow_append_v1`, a PL/pgSQL function the store
//! (re)creates at start ([`FUNCTION`]). It does what the transaction of
//! [`super::commit`] does — the position counter first (its row lock orders
//! commits), the idempotency record, the claims, each stream's conditional
//! snapshot write, its events and their outbox rows, the rows to publish
//! again — as one statement, so atomic: a refusal raises an error of our own
//! SQLSTATE class `EF` and nothing of the commit stays. One statement instead
//! of six for a command, each a round trip through the network stack of both
//! sides.

use serde_json::{Value, json};

use super::{
    AppendError, Commit, EventStore,
    commit::{planned_events, to_recorded},
};
use crate::event::{RecordedEvent, now_millis};

/// A repeated idempotency key; the message is the key.
const DUPLICATE_KEY: &str = "EF001";
/// A claim already taken; the message is `{"scope", "value"}`.
const CLAIM_TAKEN: &str = "EF002";
/// A stream not at its expected version; the message is
/// `{"aggregate_type", "aggregate_id"}`.
const CONFLICT: &str = "EF003";

/// The function; `CREATE OR REPLACE` keeps it current at every start.
pub(super) const FUNCTION: &str = r#"
CREATE OR REPLACE FUNCTION eventflow_append_v1(c jsonb) RETURNS bigint LANGUAGE plpgsql AS $fn$
DECLARE
  last_pos bigint;
  pos bigint;
  w jsonb;
  cl jsonb;
  n bigint;
BEGIN
  UPDATE store_position SET last = last + (c->>'count')::bigint WHERE id = 1 RETURNING last INTO last_pos;
  pos := last_pos - (c->>'count')::bigint;
  IF jsonb_typeof(c->'idempotency') = 'object' THEN
    INSERT INTO idempotency (key, status, body, recorded_at)
      VALUES (c->'idempotency'->>'key', (c->'idempotency'->>'status')::bigint,
              c->'idempotency'->>'body', c->'idempotency'->>'recorded_at')
      ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
      RAISE EXCEPTION USING ERRCODE = 'EF001', MESSAGE = c->'idempotency'->>'key';
    END IF;
  END IF;
  FOR cl IN SELECT * FROM jsonb_array_elements(c->'claims') LOOP
    INSERT INTO claims (scope, value, aggregate_id)
      VALUES (cl->>'scope', cl->>'value', cl->>'aggregate_id') ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
      RAISE EXCEPTION USING ERRCODE = 'EF002', MESSAGE = cl::text;
    END IF;
  END LOOP;
  FOR w IN SELECT * FROM jsonb_array_elements(c->'writes') LOOP
    IF (w->>'expected_version')::bigint = 0 THEN
      INSERT INTO aggregates (aggregate_type, aggregate_id, version, created_position, state,
          lookup_group, lookup_key, in_flight_event, in_flight_since)
        VALUES (w->>'aggregate_type', w->>'aggregate_id', (w->>'version')::bigint, pos + 1,
          w->>'snapshot', w->>'lookup_group', w->>'lookup_key', w->>'in_flight_event',
          (w->>'in_flight_since')::bigint)
        ON CONFLICT (aggregate_type, aggregate_id) DO NOTHING;
    ELSE
      UPDATE aggregates SET version = (w->>'version')::bigint, state = w->>'snapshot',
          lookup_group = w->>'lookup_group', lookup_key = w->>'lookup_key',
          in_flight_event = w->>'in_flight_event', in_flight_since = (w->>'in_flight_since')::bigint
        WHERE aggregate_type = w->>'aggregate_type' AND aggregate_id = w->>'aggregate_id'
          AND version = (w->>'expected_version')::bigint;
    END IF;
    IF NOT FOUND THEN
      RAISE EXCEPTION USING ERRCODE = 'EF003',
        MESSAGE = jsonb_build_object('aggregate_type', w->'aggregate_type', 'aggregate_id', w->'aggregate_id')::text;
    END IF;
    INSERT INTO events (position, event_id, aggregate_type, aggregate_id, version, event_type, payload, recorded_at)
      SELECT pos + e.ord, e.ev->>'event_id', w->>'aggregate_type', w->>'aggregate_id',
             (e.ev->>'version')::bigint, e.ev->>'event_type', e.ev->>'payload', e.ev->>'recorded_at'
      FROM jsonb_array_elements(w->'events') WITH ORDINALITY AS e(ev, ord)
      ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n <> jsonb_array_length(w->'events') THEN
      RAISE EXCEPTION USING ERRCODE = 'EF003',
        MESSAGE = jsonb_build_object('aggregate_type', w->'aggregate_type', 'aggregate_id', w->'aggregate_id')::text;
    END IF;
    INSERT INTO outbox (position) SELECT pos + g FROM generate_series(1, n) AS g;
    pos := pos + n;
  END LOOP;
  INSERT INTO outbox (position)
    SELECT value::bigint FROM jsonb_array_elements_text(c->'republish') ON CONFLICT DO NOTHING;
  RETURN last_pos;
END
$fn$"#;

/// The commit as the function's argument.
fn argument(commit: &Commit, recorded_at: &str, now: i64) -> Value {
    let count: usize = commit.writes.iter().map(|w| w.events.len()).sum();
    let writes: Vec<Value> = commit
        .writes
        .iter()
        .map(|w| {
            let events: Vec<Value> = planned_events(w, 0)
                .iter()
                .map(|e| {
                    json!({
                        "event_id": e.event_id,
                        "version": e.version,
                        "event_type": e.event_type,
                        "payload": e.payload.to_string(),
                        "recorded_at": e.recorded_at,
                    })
                })
                .collect();
            json!({
                "aggregate_type": w.aggregate_type,
                "aggregate_id": w.aggregate_id,
                "expected_version": w.expected_version,
                "version": w.expected_version + events.len() as i64,
                "snapshot": w.snapshot.to_string(),
                "lookup_group": w.lookup.as_ref().map(|l| &l.group),
                "lookup_key": w.lookup.as_ref().map(|l| &l.key),
                "in_flight_event": w.in_flight,
                "in_flight_since": w.in_flight.as_ref().map(|_| now),
                "events": events,
            })
        })
        .collect();
    json!({
        "count": count,
        "idempotency": commit.idempotency.as_ref().map(|i| json!({
            "key": i.key,
            "status": i.status,
            "body": i.body.to_string(),
            "recorded_at": recorded_at,
        })),
        "claims": commit.claims.iter().map(|c| json!({
            "scope": c.scope,
            "value": c.value,
            "aggregate_id": c.aggregate_id,
        })).collect::<Vec<_>>(),
        "writes": writes,
        "republish": commit.republish,
    })
}

/// The refusal an error of the function stands for, if it is one.
fn refusal(e: &sqlx::Error) -> Option<AppendError> {
    let sqlx::Error::Database(db) = e else {
        return None;
    };
    let field = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_owned();
    match db.code().as_deref() {
        Some(DUPLICATE_KEY) => Some(AppendError::DuplicateKey(db.message().to_owned())),
        Some(CLAIM_TAKEN) => {
            let claim: Value = serde_json::from_str(db.message()).unwrap_or_default();
            Some(AppendError::ClaimTaken {
                scope: field(&claim, "scope"),
                value: field(&claim, "value"),
            })
        }
        Some(CONFLICT) => {
            let stream: Value = serde_json::from_str(db.message()).unwrap_or_default();
            Some(AppendError::Conflict {
                aggregate_type: field(&stream, "aggregate_type"),
                aggregate_id: field(&stream, "aggregate_id"),
            })
        }
        _ => None,
    }
}

impl EventStore {
    /// [`EventStore::append`] on PostgreSQL: one statement.
    pub(super) async fn append_pg(
        &self,
        commit: &Commit,
        recorded_at: &str,
    ) -> Result<Vec<RecordedEvent>, AppendError> {
        let count: i64 = commit.writes.iter().map(|w| w.events.len() as i64).sum();
        let arg = argument(commit, recorded_at, now_millis()).to_string();
        let last: i64 = sqlx::query_scalar("SELECT eventflow_append_v1($1::jsonb)")
            .bind(arg)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| refusal(&e).unwrap_or(AppendError::from(e)))?;
        Ok(to_recorded(commit, last - count))
    }
}
