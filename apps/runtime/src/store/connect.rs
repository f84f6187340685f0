//! Opening a store: the backend named by `DATABASE_URL`, the pool (SQLite
//! in WAL mode) and the migrations; and the probe `/readyz` asks.

use sqlx::any::AnyPoolOptions;

use std::time::Duration;

use super::{Backend, EventStore, StoreError, schema};

/// Longest wait for a pooled connection (connecting included) before the
/// store counts as unavailable.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

impl EventStore {
    /// Connects and runs the migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::Url(url.to_owned()));
        };
        // A store that is down answers within ACQUIRE_TIMEOUT (the pool keeps
        // trying to connect until then), as a 503, not after sqlx's 30 s.
        let options = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 10 })
            .acquire_timeout(ACQUIRE_TIMEOUT);
        let options = if backend == Backend::Sqlite {
            // WAL lets readers run beside the single writer.
            options.after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::query("PRAGMA journal_mode = WAL")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA synchronous = NORMAL")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA busy_timeout = 10000")
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            })
        } else {
            options
        };
        let pool = options.connect(url).await?;
        schema::migrate(&pool, backend).await?;
        Ok(Self {
            pool,
            backend,
            indexed: std::sync::Arc::default(),
        })
    }

    /// True when the database answers (for `/readyz`).
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }
}
