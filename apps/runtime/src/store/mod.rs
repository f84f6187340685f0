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

mod append_pg;
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

impl StoreError {
    /// True when the store could not be reached or refused work for now —
    /// it is down, restarting, shutting down, out of connections, or busy —
    /// rather than because of the request or a bug. The web role answers
    /// such an error with a 503 (`Retry-After`); any other is a 500.
    ///
    /// | error | unavailable |
    /// |---|---|
    /// | I/O (connection refused, reset, closed), pool timed out or closed, TLS, driver worker gone | yes |
    /// | PostgreSQL SQLSTATE class 08 (connection exception), 53 (insufficient resources: too many connections), 57P01-57P03 (admin/crash shutdown, "the database system is starting up / shutting down"), 40001, 40P01 (serialization failure, deadlock) | yes |
    /// | SQLite `SQLITE_BUSY`, `SQLITE_LOCKED` (past `busy_timeout`) | yes |
    /// | any other database error (a constraint, an undefined table), decoding, corrupt JSON, a bad URL | no: a bug |
    pub fn is_unavailable(&self) -> bool {
        let Self::Db(e) = self else {
            return false;
        };
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Tls(_) => true,
            sqlx::Error::Database(db) => {
                let backend = if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                    Backend::Sqlite
                } else {
                    Backend::Postgres
                };
                db.code()
                    .is_some_and(|code| unavailable_code(&code, backend))
            }
            _ => false,
        }
    }
}

/// Whether a database error code says "not now": a PostgreSQL SQLSTATE or
/// a SQLite (extended) result code.
fn unavailable_code(code: &str, backend: Backend) -> bool {
    match backend {
        Backend::Postgres => {
            code.starts_with("08")
                || code.starts_with("53")
                || matches!(code, "57P01" | "57P02" | "57P03" | "40001" | "40P01")
        }
        // The primary result code is the low byte of an extended one.
        Backend::Sqlite => code.parse::<u32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6)),
    }
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

#[cfg(test)]
mod unavailable_tests {
    use super::*;

    #[test]
    fn postgres_codes_that_say_not_now() {
        for code in [
            "08000", "08006", "08001", "53300", "57P01", "57P02", "57P03", "40001", "40P01",
        ] {
            assert!(unavailable_code(code, Backend::Postgres), "{code}");
        }
        for code in ["23505", "42P01", "42601", "22P02", "57014", "XX000"] {
            assert!(!unavailable_code(code, Backend::Postgres), "{code}");
        }
    }

    #[test]
    fn sqlite_busy_and_locked_say_not_now() {
        for code in ["5", "6", "261", "517", "773", "262"] {
            assert!(unavailable_code(code, Backend::Sqlite), "{code}");
        }
        for code in ["1", "19", "2067", "11", "14"] {
            assert!(!unavailable_code(code, Backend::Sqlite), "{code}");
        }
    }

    #[test]
    fn a_lost_connection_is_unavailable_and_a_decoding_bug_is_not() {
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(StoreError::Db(sqlx::Error::Io(io)).is_unavailable());
        assert!(StoreError::Db(sqlx::Error::PoolTimedOut).is_unavailable());
        assert!(StoreError::Db(sqlx::Error::PoolClosed).is_unavailable());
        assert!(!StoreError::Db(sqlx::Error::RowNotFound).is_unavailable());
        assert!(!StoreError::Db(sqlx::Error::ColumnNotFound("x".into())).is_unavailable());
        let json = serde_json::from_str::<serde_json::Value>("{").unwrap_err();
        assert!(!StoreError::Json(json).is_unavailable());
        assert!(!StoreError::Url("mysql://".into()).is_unavailable());
    }
}
