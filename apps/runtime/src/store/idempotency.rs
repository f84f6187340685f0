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
}
