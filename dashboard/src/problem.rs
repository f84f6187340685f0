//! RFC 9457 problem details, the error body of every API route.

use axum::{
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

/// A problem+json response of `status` whose detail names what went wrong.
pub fn problem(status: StatusCode, detail: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        json!({
            "type": "about:blank",
            "title": status.canonical_reason().unwrap_or("Error"),
            "status": status.as_u16(),
            "detail": detail.into(),
        })
        .to_string(),
    )
        .into_response()
}
