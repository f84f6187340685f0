//! The admin endpoints every role serves on `EVENTFLOW_ADMIN_ADDR`:
//! `/livez` (the process runs), `/readyz` (the store and the broker this role
//! uses both answer) and `/metrics` (Prometheus text).

use std::sync::{Arc, OnceLock};

use axum::{
    Router,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use lapin::Connection;

use crate::{metrics::Metrics, store::EventStore};

/// What `/readyz` checks; parts are filled in as they come up.
#[derive(Clone, Default)]
pub struct Readiness {
    pub needs_store: bool,
    pub needs_broker: bool,
    pub store: Arc<OnceLock<EventStore>>,
    pub broker: Arc<OnceLock<Arc<Connection>>>,
    /// Set once the role's servers and consumers run.
    pub started: Arc<OnceLock<()>>,
}

impl Readiness {
    pub async fn ready(&self) -> Result<(), &'static str> {
        if self.started.get().is_none() {
            return Err("starting");
        }
        if self.needs_store {
            match self.store.get() {
                Some(store) if store.ping().await => {}
                _ => return Err("event store unreachable"),
            }
        }
        if self.needs_broker && !self.broker.get().is_some_and(|c| c.status().connected()) {
            return Err("broker unreachable or topology not declared");
        }
        Ok(())
    }
}

pub fn routes(readiness: Readiness, metrics: Metrics) -> Router {
    Router::new()
        .route("/livez", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State((r, _)): State<(Readiness, Metrics)>| async move {
                match r.ready().await {
                    Ok(()) => (StatusCode::OK, "ready").into_response(),
                    Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why).into_response(),
                }
            }),
        )
        .route(
            "/metrics",
            get(|State((_, m)): State<(Readiness, Metrics)>| async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    m.render(),
                )
            }),
        )
        .with_state((readiness, metrics))
}
