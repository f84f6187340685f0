//! Re-driving stalled saga steps (web role). A saga waits on messages; one
//! that is lost or dead-lettered (a broker or database outage outlasting
//! the step's retries) would leave its saga waiting forever. So every
//! snapshot records the step it waits for (`Aggregate::in_flight`) and
//! since when; every `stall_after / 4` the re-driver takes the snapshots
//! that waited longer than `EVENTFLOW_STALL_AFTER` and, for each, in one
//! transaction at the version it read:
//!
//! - puts the latest event that drives the step back in the outbox, so the
//!   relay publishes the same CloudEvent (same id) again — the functions act
//!   on the state as it is now with idempotency keys derived from the event
//!   id, so a step that did run does nothing twice;
//! - appends [`STEP_REDRIVEN`] to the aggregate's stream (`GET
//!   /v1/{c}/{id}/events`, the feed) with the status, the re-published
//!   event, how long it waited and the how-manieth re-drive it is; that
//!   write restarts the wait, and `eventflow_saga_redrives_total` counts it.
//!
//! After [`MAX_REDRIVES`] re-drives with no event of the aggregate's own
//! in between, the step is given up loudly instead: [`STEP_ABANDONED`] in
//! the stream, `eventflow_saga_steps_abandoned_total`, a warning, and no
//! more re-drives until the aggregate moves. A stream that moved meanwhile
//! is skipped (it is not stalled). Of several web replicas on one
//! PostgreSQL store one sweeps at a time (`EventStore::redrive_lease`);
//! optimistic concurrency makes a second sweeper harmless anyway.
//!
//! Imports `event`, `metrics` and `store`; started by `app`.

use std::{sync::Arc, time::Duration};

use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{
    event::{STEP_ABANDONED, STEP_REDRIVEN, now_millis},
    metrics::Metrics,
    store::{AppendError, Commit, EventStore, NewEvent, Stalled, StoreError, StreamWrite},
};

/// Re-drives of one step before it is given up: with the default bound of
/// a minute, ten minutes of a context being unreachable.
pub const MAX_REDRIVES: i64 = 10;
/// Stalled snapshots handled per sweep (the next sweep takes the rest).
const BATCH: i64 = 100;
const MIN_POLL: Duration = Duration::from_millis(250);
const MAX_POLL: Duration = Duration::from_secs(10);

pub struct Redriver {
    pub store: EventStore,
    pub metrics: Metrics,
    /// Wakes the outbox relay after a sweep re-published something.
    pub relay: Arc<Notify>,
    /// How long a step may wait before it is re-driven.
    pub stall_after: Duration,
    /// Re-drives of one step before it is given up.
    pub max_redrives: i64,
}

/// What one sweep did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub redriven: usize,
    pub abandoned: usize,
}

impl Redriver {
    /// Sweeps every `stall_after / 4` (within 250 ms and 10 s) while it
    /// holds the lease, until `cancel`.
    pub async fn run(self, cancel: CancellationToken) {
        let poll = (self.stall_after / 4).clamp(MIN_POLL, MAX_POLL);
        let mut lease = None;
        loop {
            if lease.is_none() {
                lease = self.store.redrive_lease().await.unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "cannot take the re-drive lease");
                    None
                });
            }
            if lease.is_some()
                && let Err(e) = self.sweep().await
            {
                // The lease's connection may have died with the database:
                // take it again.
                tracing::warn!(error = %e, "re-driving stalled saga steps failed; retrying");
                lease = None;
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(poll) => {}
            }
        }
    }

    /// Re-drives (or gives up) every step that waited longer than the bound.
    pub async fn sweep(&self) -> Result<Swept, StoreError> {
        let now = now_millis();
        let bound =
            now.saturating_sub(i64::try_from(self.stall_after.as_millis()).unwrap_or(i64::MAX));
        let mut swept = Swept::default();
        for stalled in self.store.stalled(bound, BATCH).await? {
            let kind = stalled.aggregate_type.clone();
            let give_up = stalled.redrives >= self.max_redrives || stalled.step.is_none();
            match self.store.append(&redrive(stalled, now, give_up)).await {
                Ok(events) => {
                    self.metrics.events_appended.inc_by(events.len() as u64);
                    for e in &events {
                        if give_up {
                            tracing::warn!(aggregate = %e.aggregate_type, id = %e.aggregate_id, payload = %e.payload,
                                "saga step stalled and its re-drives ran out: given up");
                        } else {
                            tracing::info!(aggregate = %e.aggregate_type, id = %e.aggregate_id, payload = %e.payload,
                                "stalled saga step re-driven");
                        }
                    }
                    if give_up {
                        self.metrics.saga_step_abandoned(&kind);
                        swept.abandoned += 1;
                    } else {
                        self.metrics.saga_redriven(&kind);
                        swept.redriven += 1;
                    }
                }
                // It moved meanwhile: not stalled.
                Err(AppendError::Conflict { .. }) => {}
                Err(AppendError::Store(e)) => return Err(e),
                Err(e) => tracing::warn!(error = %e, "cannot record a re-drive"),
            }
        }
        if swept.redriven > 0 || swept.abandoned > 0 {
            self.relay.notify_one();
        }
        Ok(swept)
    }
}

/// The commit that re-drives `stalled` (or gives it up): its step's event
/// back in the outbox and the runtime's event in its stream, at the
/// version it was read at; the snapshot is unchanged, its wait restarts
/// (or ends, when given up).
fn redrive(stalled: Stalled, now: i64, give_up: bool) -> Commit {
    let step = stalled.step.as_ref().map(
        |e| json!({ "eventId": e.event_id, "eventType": e.event_type, "position": e.position }),
    );
    let payload = json!({
        "status": stalled.snapshot.get("status"),
        "awaits": stalled.awaits,
        "event": step,
        "redrives": if give_up { stalled.redrives } else { stalled.redrives + 1 },
        "idleSeconds": (now - stalled.since).max(0) / 1000,
    });
    let (event_type, republish) = match &stalled.step {
        Some(e) if !give_up => (STEP_REDRIVEN, vec![e.position]),
        _ => (STEP_ABANDONED, vec![]),
    };
    Commit {
        writes: vec![StreamWrite {
            aggregate_type: stalled.aggregate_type,
            aggregate_id: stalled.aggregate_id,
            expected_version: stalled.version,
            events: vec![NewEvent::new(event_type, payload)],
            snapshot: stalled.snapshot,
            lookup: stalled.lookup,
            in_flight: (!give_up).then_some(stalled.awaits),
        }],
        republish,
        ..Commit::default()
    }
}

#[cfg(test)]
mod tests;
