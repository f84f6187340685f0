//! The account bounded context on the eventflow runtime: the aggregate
//! ([`account`]), its action-mapped functions ([`functions`]) and the
//! [`spec`] that hands both to the runtime for every role.

pub mod account;
pub mod functions;
pub mod post_order;

use axum::Router;
use eventflow_runtime::{
    app::{AppSpec, Retry, Worker},
    openapi::OpenApi,
    web::{WebContext, aggregate_routes_offering},
};

pub use account::Account;

pub const APP: &str = "account";

/// The account context: its worker receives every account event (those
/// that trigger no function are acknowledged as ignored), with the
/// operator's default retries.
pub fn spec() -> AppSpec {
    let worker = Worker::patterns("account-worker", &["account.*"], Retry::DEFAULT);
    AppSpec::new(APP, "account", worker)
        .web(routes, openapi, collection_of)
        .functions(functions::registry)
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
