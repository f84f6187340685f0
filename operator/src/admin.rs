//! The admin HTTP endpoints on their own port: `/livez` (the process
//! serves), `/readyz` (the leader election loop runs: leader or standby)
//! and `/metrics`.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use axum::{Router, extract::State, http::StatusCode, routing::get};

use crate::metrics::Metrics;

#[derive(Clone)]
pub struct AdminState {
    pub metrics: Metrics,
    pub ready: Arc<AtomicBool>,
    pub leading: Arc<AtomicBool>,
}

pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route(
            "/metrics",
            get(|State(s): State<AdminState>| async move { s.metrics.render() }),
        )
        .with_state(state)
}

async fn readyz(State(s): State<AdminState>) -> (StatusCode, &'static str) {
    match (
        s.ready.load(Ordering::Relaxed),
        s.leading.load(Ordering::Relaxed),
    ) {
        (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "starting"),
        (true, true) => (StatusCode::OK, "leader"),
        (true, false) => (StatusCode::OK, "standby"),
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    async fn get(router: Router, path: &str) -> (StatusCode, String) {
        let response = router
            .oneshot(axum::http::Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn readyz_fails_until_the_election_loop_runs_and_then_says_who_leads() {
        let state = AdminState {
            metrics: Metrics::new(),
            ready: Arc::default(),
            leading: Arc::default(),
        };
        let app = router(state.clone());
        assert_eq!(get(app.clone(), "/livez").await.0, StatusCode::OK);
        assert_eq!(
            get(app.clone(), "/readyz").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        state.ready.store(true, Ordering::Relaxed);
        assert_eq!(
            get(app.clone(), "/readyz").await,
            (StatusCode::OK, "standby".into())
        );
        state.leading.store(true, Ordering::Relaxed);
        state.metrics.set_leader(true);
        assert_eq!(
            get(app.clone(), "/readyz").await,
            (StatusCode::OK, "leader".into())
        );
        assert!(
            get(app, "/metrics")
                .await
                .1
                .contains("eventflow_operator_leader 1")
        );
    }
}
