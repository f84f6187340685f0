//! What an app tells the runtime about itself: its name, where it
//! publishes, its routes, OpenAPI document and functions ([`AppSpec`]).

use axum::Router;
use serde_json::Value;

use crate::{config::Standalone, functions::Registry, web::WebContext};

/// Everything the runtime needs to know about an app.
pub struct AppSpec {
    /// `account`: default store file name, connection name.
    pub name: &'static str,
    pub standalone: Standalone,
    /// The destination its events are published to.
    pub publishes_to: &'static str,
    /// Its aggregates' routes (e.g. [`crate::web::aggregate_routes`] merged).
    pub routes: fn() -> Router<WebContext>,
    pub openapi: fn() -> Value,
    /// Aggregate type -> collection path segment, for links.
    pub collection_of: fn(&str) -> &'static str,
    pub functions: fn() -> Registry,
}
