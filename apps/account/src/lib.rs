//! The account bounded context on the eventflow runtime: the aggregate
//! ([`account`]), its action-mapped functions ([`functions`]) and the
//! [`spec`] that hands both to the runtime for every role.

pub mod account;
pub mod functions;
pub mod post_order;

use axum::Router;
use eventflow_contract::bindings::{DEFAULT_BACKOFF_MS, DEFAULT_MAX_ATTEMPTS, SubscriptionRequest};
use eventflow_runtime::{
    app::AppSpec,
    config::Standalone,
    openapi::OpenApi,
    web::{WebContext, aggregate_routes_offering},
};

pub use account::Account;

pub const APP: &str = "account";
pub const DESTINATION: &str = "account";
pub const WORKER_GROUP: &str = "account-worker";

/// The topology the app declares for itself when no operator wrote
/// `EVENTFLOW_BINDINGS`.
pub fn standalone() -> Standalone {
    Standalone {
        publishes: vec![DESTINATION],
        subscribes: vec![SubscriptionRequest {
            destination: DESTINATION,
            group: WORKER_GROUP,
            routing_keys: vec!["account.*".into()],
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            backoff_ms: DEFAULT_BACKOFF_MS,
        }],
    }
}

pub fn routes() -> Router<WebContext> {
    // Configuration is read here, once: the aggregate stays pure.
    let orders = post_order::OrderContext::from_env();
    // The static segment wins over the runtime's `{command}` route.
    aggregate_routes_offering::<Account>(orders.offered())
        .route("/v1/accounts/{id}/commands/postOrder", orders.route())
}

pub fn openapi() -> serde_json::Value {
    OpenApi::new("eventflow account")
        .aggregate::<Account>()
        .schema("PostOrder", post_order::schema())
        .path(
            "/v1/accounts/{id}/commands/postOrder",
            post_order::path_item(),
        )
        .build()
}

/// The OpenAPI document as committed in `apps/account/openapi.json`.
pub fn openapi_json() -> String {
    serde_json::to_string_pretty(&openapi()).unwrap_or_default()
}

fn collection_of(_aggregate: &str) -> &'static str {
    "accounts"
}

pub fn spec() -> AppSpec {
    AppSpec {
        name: APP,
        standalone: standalone(),
        publishes_to: DESTINATION,
        routes,
        openapi,
        collection_of,
        functions: functions::registry,
    }
}
