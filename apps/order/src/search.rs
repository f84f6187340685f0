//! `GET /v1/orders/search/findByAccount?accountId=` — the orders of one
//! account, oldest first: the target of an account's `orders` link. It
//! reads the account's orders only (the store's lookup index by account).

use std::collections::HashMap;

use axum::{
    Router,
    extract::{Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use eventflow_runtime::{
    hal::{self, HAL_JSON, link, represent},
    problem::Problem,
    web::WebContext,
};
use serde_json::json;

use crate::Order;

/// Orders returned at most (the newest beyond it are cut; `truncated` says so).
const MAX_ORDERS: usize = 500;

pub fn routes() -> Router<WebContext> {
    Router::new().route("/v1/orders/search/findByAccount", get(find_by_account))
}

async fn find_by_account(
    State(ctx): State<WebContext>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let account = q
        .get("accountId")
        .map(|a| a.trim())
        .filter(|a| !a.is_empty() && a.len() <= 200)
        .ok_or_else(|| {
            Problem::bad_request("accountId", "name the account (1 to 200 characters)")
        })?;
    let base = hal::base_url(&headers);
    // The account's orders only, through the store's lookup index (one more
    // than shown tells whether the list was cut).
    let found = ctx
        .store
        .lookup::<Order>(account, None, MAX_ORDERS as i64 + 1)
        .await?;
    let mut orders: Vec<_> = found
        .iter()
        .map(|(id, order)| represent(order, id, &base))
        .collect();
    let truncated = orders.len() > MAX_ORDERS;
    orders.truncate(MAX_ORDERS);
    let body = json!({
        "truncated": truncated,
        "_embedded": { "orders": orders },
        "_links": { "self": link(format!("{base}/v1/orders/search/findByAccount?accountId={account}")) },
    });
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, HAL_JSON)],
        body.to_string(),
    )
        .into_response())
}
