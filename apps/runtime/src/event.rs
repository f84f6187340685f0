//! Events as values: [`NewEvent`], what an aggregate decides, and
//! [`RecordedEvent`], what the store recorded (with its version in the
//! stream and its position in the whole store). Both the aggregates, which
//! decide and fold events, and the store, which records them, use these
//! types; neither needs the other for them.

use serde::Serialize;
use serde_json::Value;

/// Written by the runtime into a saga participant's stream when it
/// re-drives the step the participant waits for (`crate::redrive`): the
/// step's triggering event was published again. Never folded into the
/// state ([`is_runtime_event`]).
pub const STEP_REDRIVEN: &str = "STEP_REDRIVEN";
/// Written by the runtime when it stops re-driving a step that made no
/// progress after its last allowed re-drive: the participant needs a human.
pub const STEP_ABANDONED: &str = "STEP_ABANDONED";

/// True for the events the runtime itself writes into any aggregate's
/// stream ([`STEP_REDRIVEN`], [`STEP_ABANDONED`]). They record what the
/// runtime did; they change no state, so no aggregate ever folds them.
pub fn is_runtime_event(event_type: &str) -> bool {
    event_type == STEP_REDRIVEN || event_type == STEP_ABANDONED
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

/// Milliseconds since the Unix epoch, now (how long a step has waited).
pub fn now_millis() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
        .unwrap_or(i64::MAX)
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
