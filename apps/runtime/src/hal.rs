//! HAL+JSON: absolute links built from the request's `Host` and
//! `X-Forwarded-*` headers (so they work through port-forward and ingress),
//! and the representations of resources and events shared by the HTTP API
//! and the CloudEvents on the broker.

use axum::{
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Map, Value, json};

use crate::{aggregate::Aggregate, store::RecordedEvent};

pub const HAL_JSON: &str = "application/hal+json";

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let v = headers.get(name)?.to_str().ok()?;
    let first = v.split(',').next()?.trim();
    (!first.is_empty()).then_some(first)
}

fn safe(v: &str, extra: &[char]) -> bool {
    v.chars()
        .all(|c| c.is_ascii_alphanumeric() || ".-_:[]".contains(c) || extra.contains(&c))
}

/// `scheme://host[/prefix]` of the request as the client saw it.
pub fn base_url(headers: &HeaderMap) -> String {
    let proto = header(headers, "x-forwarded-proto")
        .filter(|p| *p == "https")
        .unwrap_or("http");
    let host = header(headers, "x-forwarded-host")
        .or_else(|| header(headers, "host"))
        .filter(|h| safe(h, &[]))
        .unwrap_or("localhost");
    let prefix = header(headers, "x-forwarded-prefix")
        .filter(|p| p.starts_with('/') && safe(p, &['/']))
        .map(|p| p.trim_end_matches('/'))
        .unwrap_or("");
    format!("{proto}://{host}{prefix}")
}

/// A HAL+JSON response.
pub fn response(status: StatusCode, body: Value) -> Response {
    (status, [(header::CONTENT_TYPE, HAL_JSON)], body.to_string()).into_response()
}

pub fn link(href: impl Into<String>) -> Value {
    json!({ "href": href.into() })
}

pub fn resource_url<A: Aggregate>(base: &str, id: &str) -> String {
    format!("{base}/v1/{}/{id}", A::COLLECTION)
}

/// The aggregate as a HAL resource: its fields plus `self`, `events`,
/// `commands` and its relations.
pub fn represent<A: Aggregate>(state: &A, id: &str, base: &str) -> Value {
    let url = resource_url::<A>(base, id);
    let mut body = match serde_json::to_value(state) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    let mut links = Map::new();
    links.insert("self".into(), link(&url));
    links.insert(A::KIND.into(), link(&url));
    links.insert("events".into(), link(format!("{url}/events")));
    links.insert("commands".into(), link(format!("{url}/commands")));
    for (rel, href) in state.relations(base) {
        links.insert(rel, link(href));
    }
    body.insert("_links".into(), Value::Object(links));
    Value::Object(body)
}

/// An event with `self` and its aggregate as links. The same shape is the
/// `data` of the CloudEvent on the broker (there `base` is the app's own URL).
pub fn represent_event(e: &RecordedEvent, collection: &str, base: &str) -> Value {
    let aggregate = format!("{base}/v1/{collection}/{}", e.aggregate_id);
    let mut links = Map::new();
    links.insert(
        "self".into(),
        link(format!("{aggregate}/events/{}", e.event_id)),
    );
    links.insert(e.aggregate_type.clone(), link(aggregate));
    json!({
        "eventId": e.event_id,
        "eventType": e.event_type,
        "aggregateType": e.aggregate_type,
        "aggregateId": e.aggregate_id,
        "version": e.version,
        "position": e.position,
        "createdAt": e.recorded_at,
        "payload": e.payload,
        "_links": links,
    })
}

/// Follows a link relation of a HAL document.
pub fn href<'a>(doc: &'a Value, rel: &str) -> Option<&'a str> {
    doc.get("_links")?.get(rel)?.get("href")?.as_str()
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn links_follow_the_host_the_client_used() {
        assert_eq!(
            base_url(&headers(&[("host", "127.0.0.1:31234")])),
            "http://127.0.0.1:31234"
        );
    }

    #[test]
    fn forwarded_headers_from_an_ingress_win_over_host() {
        let h = headers(&[
            ("host", "account-web:8080"),
            ("x-forwarded-host", "shop.example.com, proxy"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-prefix", "/accounts-api/"),
        ]);
        assert_eq!(base_url(&h), "https://shop.example.com/accounts-api");
    }

    #[test]
    fn a_hostile_host_header_cannot_inject_into_links() {
        assert_eq!(
            base_url(&headers(&[("host", "evil.com/\"><script>")])),
            "http://localhost"
        );
    }
}
