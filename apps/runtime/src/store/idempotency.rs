//! Idempotency records: the first result (status and body) of a command
//! sent with an `Idempotency-Key`, written by its commit and returned to
//! every repeat of the key.

use serde_json::Value;
use sqlx::Row;

use super::{EventStore, StoreError};

/// The first result of a command, returned again to a repeat of its key.
#[derive(Clone, Debug, PartialEq)]
pub struct IdempotentResult {
    pub key: String,
    pub status: u16,
    pub body: Value,
}

impl EventStore {
    /// The first result recorded under an idempotency key.
    pub async fn idempotent_result(
        &self,
        key: &str,
    ) -> Result<Option<IdempotentResult>, StoreError> {
        let row = sqlx::query("SELECT status, body FROM idempotency WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let status: i64 = row.try_get("status")?;
        let body: String = row.try_get("body")?;
        Ok(Some(IdempotentResult {
            key: key.to_owned(),
            status: u16::try_from(status).unwrap_or(200),
            body: serde_json::from_str(&body)?,
        }))
    }

    /// What a command on an existing aggregate reads first, in one round
    /// trip: the first result under `key` (when there is a key) and the
    /// aggregate's snapshot with its version ([`EventStore::snapshot`]).
    pub async fn command_read(
        &self,
        key: Option<&str>,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<(Option<IdempotentResult>, Option<(Value, i64)>), StoreError> {
        let row = sqlx::query(
            "SELECT i.status, i.body, a.version, a.state FROM (SELECT 1 AS one) o
             LEFT JOIN idempotency i ON i.key = $1
             LEFT JOIN aggregates a ON a.aggregate_type = $2 AND a.aggregate_id = $3",
        )
        .bind(key.unwrap_or_default())
        .bind(aggregate_type)
        .bind(aggregate_id)
        .fetch_one(&self.pool)
        .await?;
        let status: Option<i64> = row.try_get("status")?;
        let first = match (key, status) {
            (Some(key), Some(status)) => {
                let body: String = row.try_get("body")?;
                Some(IdempotentResult {
                    key: key.to_owned(),
                    status: u16::try_from(status).unwrap_or(200),
                    body: serde_json::from_str(&body)?,
                })
            }
            _ => None,
        };
        let state: Option<String> = row.try_get("state")?;
        let snapshot = match state {
            Some(state) => Some((serde_json::from_str(&state)?, row.try_get("version")?)),
            None => None,
        };
        Ok((first, snapshot))
    }
}
