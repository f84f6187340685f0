//! The account web API in-process (tower `oneshot`, no port), for the HTTP
//! shape tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::{
    Router,
    body::Body,
    http::{Request, StatusCode},
};
use eventflow_runtime::{app::web_router, metrics::Metrics, store::EventStore, web::WebContext};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

pub struct Api {
    pub router: Router,
    pub metrics: Metrics,
}

pub struct Reply {
    pub status: StatusCode,
    pub content_type: String,
    pub body: Value,
}

impl Api {
    pub async fn new(url: &str) -> Self {
        let store = EventStore::connect(url).await.unwrap();
        let metrics = Metrics::default();
        let ctx = WebContext {
            store,
            metrics: metrics.clone(),
            relay: Arc::new(tokio::sync::Notify::new()),
        };
        Self {
            router: web_router(&eventflow_account::spec(), ctx),
            metrics,
        }
    }

    pub async fn call(
        &self,
        method: &str,
        uri: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header("host", "accounts.test:8080");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
            .unwrap();
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let content_type = res
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            content_type,
            body,
        }
    }

    pub async fn create(&self, email: &str) -> Value {
        let body =
            json!({ "firstName": "Grace", "lastName": "Hopper", "email": email }).to_string();
        let r = self.call("POST", "/v1/accounts", Some(&body), &[]).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body
    }

    pub async fn command(&self, account: &Value, name: &str) -> Reply {
        let id = account["accountId"].as_str().unwrap();
        self.call(
            "POST",
            &format!("/v1/accounts/{id}/commands/{name}"),
            None,
            &[],
        )
        .await
    }

    pub async fn active(&self, email: &str) -> Value {
        let a = self.create(email).await;
        for c in ["markPending", "confirm", "activate"] {
            assert_eq!(self.command(&a, c).await.status, StatusCode::OK);
        }
        a
    }

    pub async fn events(&self, account: &Value) -> Vec<String> {
        let id = account["accountId"].as_str().unwrap();
        let r = self
            .call("GET", &format!("/v1/accounts/{id}/events"), None, &[])
            .await;
        r.body["_embedded"]["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["eventType"].as_str().unwrap().to_owned())
            .collect()
    }
}

pub fn is_problem(r: &Reply, status: StatusCode) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.content_type, "application/problem+json");
    assert_eq!(r.body["status"], status.as_u16());
}
