//! `application/problem+json` errors (RFC 9457) and the JSON body extractor
//! whose rejections name the offending field.

use axum::{
    body::Bytes,
    extract::{FromRequest, Request},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::{aggregate::DomainError, store::StoreError};

pub const PROBLEM_JSON: &str = "application/problem+json";
/// `Retry-After` (seconds) of every 503: a store or peer restarting is
/// usually back within seconds.
pub const RETRY_AFTER_SECONDS: &str = "1";

/// An error response. `field` names the request field at fault, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub status: StatusCode,
    pub title: &'static str,
    pub detail: String,
    pub field: Option<String>,
}

impl Problem {
    pub fn new(status: StatusCode, title: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            title,
            detail: detail.into(),
            field: None,
        }
    }
    pub fn bad_request(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            field: Some(field.into()),
            ..Self::new(StatusCode::BAD_REQUEST, "Bad Request", detail)
        }
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "Not Found", detail)
    }
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "Conflict", detail)
    }
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal Server Error",
            detail,
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut body = json!({
            "type": "about:blank",
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        if let Some(field) = self.field {
            body["field"] = json!(field);
        }
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, PROBLEM_JSON)],
            body.to_string(),
        )
            .into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from_static(RETRY_AFTER_SECONDS),
            );
        }
        response
    }
}

impl From<DomainError> for Problem {
    fn from(e: DomainError) -> Self {
        match &e {
            DomainError::Forbidden { .. } => Problem::conflict(e.to_string()),
            DomainError::Invalid { field, reason } => {
                Problem::bad_request(field.clone(), reason.clone())
            }
            DomainError::NotImplemented(_) => Problem::new(
                StatusCode::NOT_IMPLEMENTED,
                "Not Implemented",
                e.to_string(),
            ),
        }
    }
}

/// A store that cannot be reached for now (down, restarting, out of
/// connections: [`StoreError::is_unavailable`]) is a 503 with `Retry-After`,
/// so callers — the workers' HAL client among them — try again without
/// counting it against the message; any other store error is a bug, a 500.
impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Self {
        if e.is_unavailable() {
            tracing::warn!(error = %e, "event store unavailable");
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Service Unavailable",
                "the event store is unavailable",
            )
        } else {
            tracing::error!(error = %e, "event store failed");
            Problem::internal("the event store failed")
        }
    }
}

/// A JSON body; malformed JSON, a missing field or a wrongly typed one is a
/// 400 problem naming the field (`field` is `body` when no field is at fault).
pub struct JsonBody<T>(pub T);

/// Parses `bytes` as `T`, naming the field at fault on error.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.to_string();
        let field = if let Some(missing) = message.strip_prefix("missing field `") {
            let name = missing.split('`').next().unwrap_or_default();
            if path == "." {
                name.to_owned()
            } else {
                format!("{path}.{name}")
            }
        } else if path == "." || inner.is_syntax() || inner.is_eof() {
            "body".to_owned()
        } else {
            path
        };
        let detail = if inner.is_syntax() || inner.is_eof() {
            format!("malformed JSON: {message}")
        } else {
            format!("{field}: {message}")
        };
        Problem::bad_request(field, detail)
    })
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| Problem::bad_request("body", format!("unreadable body: {e}")))?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Turns every error response that is not yet problem+json (axum's own
/// rejections: a bad path or query, a wrong method) into one.
pub async fn normalize_errors(response: Response) -> Response {
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(PROBLEM_JSON));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let detail = match axum::body::to_bytes(response.into_body(), 64 * 1024).await {
        Ok(bytes) if !bytes.is_empty() => String::from_utf8_lossy(&bytes).into_owned(),
        _ => status.canonical_reason().unwrap_or("error").to_owned(),
    };
    let title = match status {
        StatusCode::BAD_REQUEST => "Bad Request",
        StatusCode::NOT_FOUND => "Not Found",
        StatusCode::METHOD_NOT_ALLOWED => "Method Not Allowed",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "Unsupported Media Type",
        StatusCode::PAYLOAD_TOO_LARGE => "Payload Too Large",
        _ => "Error",
    };
    Problem::new(status, title, detail).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Person {
        first_name: String,
        age: u32,
    }

    #[test]
    fn an_unavailable_store_is_a_503_to_retry_after_and_a_store_bug_a_500() {
        let down = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let response = Problem::from(StoreError::Db(sqlx::Error::Io(down))).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], RETRY_AFTER_SECONDS);
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        let response = Problem::from(StoreError::Db(sqlx::Error::PoolTimedOut)).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let bug = Problem::from(StoreError::Db(sqlx::Error::RowNotFound)).into_response();
        assert_eq!(bug.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!bug.headers().contains_key(header::RETRY_AFTER));
    }

    #[test]
    fn a_missing_field_is_named() {
        let p = parse_json::<Person>(br#"{"age": 3}"#).unwrap_err();
        assert_eq!(p.field.as_deref(), Some("firstName"));
        assert_eq!(p.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn a_wrongly_typed_field_is_named() {
        let p = parse_json::<Person>(br#"{"firstName": "a", "age": "old"}"#).unwrap_err();
        assert_eq!(p.field.as_deref(), Some("age"));
    }

    #[test]
    fn malformed_json_blames_the_body() {
        let p = parse_json::<Person>(b"{\"firstName\": ").unwrap_err();
        assert_eq!(p.field.as_deref(), Some("body"));
        assert!(p.detail.starts_with("malformed JSON"), "{}", p.detail);
    }
}
