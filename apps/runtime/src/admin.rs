//! The admin endpoints every role serves on `EVENTFLOW_ADMIN_ADDR`:
//! `/livez` (the process runs), `/readyz` and `/metrics` (Prometheus text).
//!
//! `/readyz` of a role that serves the web API (`web`, `all`) needs its
//! store only: commands commit into the outbox while the broker is away, and
//! the relay publishes them once it is back, so taking the pod out of its
//! Service would only turn commits into errors. The body reports the broker
//! (`ready; broker connected` or `ready; broker unreachable, events wait in
//! the outbox`). A role that only consumes (`worker`, the counter) is ready
//! only while its broker connection is up, its topology checked. The
//! `functions` role needs neither.

use std::sync::{Arc, OnceLock};

use axum::{
    Router,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::get,
};

use crate::{broker::BrokerLink, metrics::Metrics, store::EventStore};

/// What `/readyz` checks; parts are filled in as they come up.
#[derive(Clone, Default)]
pub struct Readiness {
    pub needs_store: bool,
    /// Unready while `broker` is not connected (else it is only reported).
    pub needs_broker: bool,
    pub store: Arc<OnceLock<EventStore>>,
    /// The process's broker link, if it uses the broker.
    pub broker: Option<BrokerLink>,
    /// Set once the role's servers and consumers run.
    pub started: Arc<OnceLock<()>>,
}

impl Readiness {
    /// `Ok(body)` when ready, `Err(why)` when not.
    pub async fn ready(&self) -> Result<&'static str, &'static str> {
        if self.started.get().is_none() {
            return Err("starting");
        }
        if self.needs_store {
            match self.store.get() {
                Some(store) if store.ping().await => {}
                _ => return Err("event store unreachable"),
            }
        }
        let connected = self.broker.as_ref().is_some_and(BrokerLink::is_connected);
        if self.needs_broker {
            return if connected {
                Ok("ready")
            } else {
                Err("broker unreachable or topology not declared")
            };
        }
        Ok(match (&self.broker, connected) {
            (None, _) => "ready",
            (Some(_), true) => "ready; broker connected",
            (Some(_), false) => "ready; broker unreachable, events wait in the outbox",
        })
    }
}

pub fn routes(readiness: Readiness, metrics: Metrics) -> Router {
    Router::new()
        .route("/livez", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State((r, _)): State<(Readiness, Metrics)>| async move {
                match r.ready().await {
                    Ok(body) => (StatusCode::OK, body).into_response(),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn started(needs_broker: bool) -> Readiness {
        let r = Readiness {
            needs_broker,
            broker: Some(BrokerLink::new()),
            ..Readiness::default()
        };
        let _ = r.started.set(());
        r
    }

    #[tokio::test]
    async fn a_consuming_role_is_unready_without_the_broker_and_a_web_role_only_reports_it() {
        assert_eq!(
            started(true).ready().await,
            Err("broker unreachable or topology not declared")
        );
        assert_eq!(
            started(false).ready().await,
            Ok("ready; broker unreachable, events wait in the outbox")
        );
        assert_eq!(Readiness::default().ready().await, Err("starting"));
    }
}
