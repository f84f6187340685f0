//! The event store: append-only streams of events per aggregate, with
//! optimistic concurrency on the aggregate version, a global position for the
//! feed, and — in the same transaction as every append — the outbox rows the
//! relay publishes, the unique claims (e.g. an email) and the idempotency
//! record of the command that caused it. SQLite is the embedded default,
//! PostgreSQL is used when `DATABASE_URL` says so; one set of queries serves
//! both through sqlx's `Any` driver.
//!
//! In the order a command meets them: [`connect`](EventStore::connect)
//! opens the pool and runs the migrations ([`schema`]); [`commit`] appends a
//! [`Commit`] atomically; [`read`] serves streams, the feed and listings;
//! [`lookup`] finds snapshots by their [`Lookup`] key; [`idempotency`]
//! returns a command's first result; [`outbox`] is what the relay publishes;
//! [`stalled`] finds the saga steps that waited too long.
//! The store imports the event values ([`crate::event`]) and the
//! [`Aggregate`](crate::aggregate::Aggregate) trait (for typed lookups);
//! neither imports the store.

mod commit;
mod connect;
mod idempotency;
mod lookup;
mod outbox;
mod read;
mod schema;
mod stalled;

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
};

use sqlx::AnyPool;

pub use self::{
    commit::{AppendError, Claim, Commit, StreamWrite},
    idempotency::IdempotentResult,
    lookup::LookupCount,
    outbox::RelayLease,
    stalled::{Stalled, StepEvent},
};
pub use crate::{
    aggregate::Lookup,
    event::{NewEvent, RecordedEvent, now_rfc3339},
};

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

/// A connection pool to one store; cheap to clone (the pool is shared).
#[derive(Clone, Debug)]
pub struct EventStore {
    pool: AnyPool,
    backend: Backend,
    /// Aggregate types whose lookup backlog this process emptied.
    indexed: Arc<Mutex<HashSet<&'static str>>>,
}

impl EventStore {
    pub fn backend(&self) -> Backend {
        self.backend
    }
}

#[cfg(test)]
mod tests;
