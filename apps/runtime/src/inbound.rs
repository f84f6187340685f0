//! How a delivery becomes a [`CloudEvent`], whoever published it:
//!
//! 1. binary mode: CloudEvents attributes in AMQP headers (`cloudEvents:`,
//!    `cloudEvents_`, `ce-` or `ce_` prefix, as the AMQP binding and Spring
//!    Cloud Function write them), the body is `data`;
//! 2. structured mode (what eventflow apps publish): the body is the JSON
//!    CloudEvent;
//! 3. a plain message, e.g. the output of a Spring Cloud Stream app: `id`
//!    is the AMQP `message-id` (a fresh UUID when there is none, so such
//!    messages cannot be told apart when redelivered), `type` the routing
//!    key, `source` the app id or the exchange, `data` the body (JSON when
//!    it parses, else text).
//!
//! A body sent as `application/cloudevents+json` that is not a CloudEvent
//! is malformed (the consumer dead-letters it after its attempts).

use lapin::{
    BasicProperties,
    types::{AMQPValue, FieldTable},
};
use serde_json::Value;

use crate::cloudevent::{self, CloudEvent};

const HEADER_PREFIXES: [&str; 4] = ["cloudEvents:", "cloudEvents_", "ce-", "ce_"];

/// Where a delivery came from, beside its properties and body.
pub struct Delivered<'a> {
    pub exchange: &'a str,
    pub routing_key: &'a str,
    pub properties: &'a BasicProperties,
    pub body: &'a [u8],
}

/// The CloudEvent of a delivery, or why it is malformed.
pub fn cloudevent(d: &Delivered<'_>) -> Result<CloudEvent, String> {
    let content_type = d
        .properties
        .content_type()
        .as_ref()
        .map(|c| c.as_str().to_owned());
    let headers = d.properties.headers().as_ref();
    if let Some(ce) = headers.and_then(|h| binary(h, content_type.as_deref(), d.body)) {
        return Ok(ce);
    }
    match serde_json::from_slice::<CloudEvent>(d.body) {
        Ok(ce) => Ok(ce),
        Err(e)
            if content_type
                .as_deref()
                .is_some_and(|c| c.starts_with(cloudevent::CONTENT_TYPE)) =>
        {
            Err(e.to_string())
        }
        Err(_) => Ok(plain(d, content_type)),
    }
}

fn header(headers: &FieldTable, attribute: &str) -> Option<String> {
    HEADER_PREFIXES.iter().find_map(|prefix| {
        match headers
            .inner()
            .get(format!("{prefix}{attribute}").as_str())?
        {
            AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
            AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
            _ => None,
        }
    })
}

fn binary(headers: &FieldTable, content_type: Option<&str>, body: &[u8]) -> Option<CloudEvent> {
    let specversion = header(headers, "specversion")?;
    Some(CloudEvent {
        specversion,
        id: header(headers, "id")?,
        source: header(headers, "source").unwrap_or_default(),
        event_type: header(headers, "type")?,
        subject: header(headers, "subject"),
        time: header(headers, "time"),
        datacontenttype: content_type.map(str::to_owned),
        sequence: header(headers, "sequence"),
        data: data(body),
    })
}

fn plain(d: &Delivered<'_>, content_type: Option<String>) -> CloudEvent {
    let id = d
        .properties
        .message_id()
        .as_ref()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let source = d
        .properties
        .app_id()
        .as_ref()
        .map(|a| a.as_str().to_owned())
        .unwrap_or_else(|| format!("/exchanges/{}", d.exchange));
    let event_type = if d.routing_key.is_empty() {
        d.exchange
    } else {
        d.routing_key
    };
    CloudEvent {
        specversion: "1.0".into(),
        id,
        source,
        event_type: event_type.to_owned(),
        subject: None,
        time: None,
        datacontenttype: content_type,
        sequence: None,
        data: data(d.body),
    }
}

fn data(body: &[u8]) -> Value {
    if body.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

#[cfg(test)]
mod tests {
    use lapin::types::{LongString, ShortString};
    use serde_json::json;

    use super::*;

    fn delivered<'a>(properties: &'a BasicProperties, body: &'a [u8]) -> Delivered<'a> {
        Delivered {
            exchange: "demo.ticks",
            routing_key: "demo.ticks",
            properties,
            body,
        }
    }

    #[test]
    fn a_structured_cloudevent_is_read_as_is() {
        let body = br#"{"specversion":"1.0","id":"e-1","source":"/s","type":"dev.eventflow.order.ORDER_CREATED","data":{"n":1}}"#;
        let props = BasicProperties::default().with_content_type(cloudevent::CONTENT_TYPE.into());
        let ce = cloudevent(&delivered(&props, body)).unwrap();
        assert_eq!(ce.id, "e-1");
        assert_eq!(ce.event_type, "dev.eventflow.order.ORDER_CREATED");
    }

    #[test]
    fn a_broken_structured_cloudevent_is_malformed() {
        let props = BasicProperties::default().with_content_type(cloudevent::CONTENT_TYPE.into());
        assert!(cloudevent(&delivered(&props, b"{ not json")).is_err());
    }

    #[test]
    fn a_spring_message_becomes_a_cloudevent_typed_by_its_routing_key() {
        let props = BasicProperties::default()
            .with_content_type(ShortString::from("application/json"))
            .with_message_id(ShortString::from("m-7"));
        let body = br#"{"sequence":3,"time":"2026-12-02T10:00:00Z"}"#;
        let ce = cloudevent(&delivered(&props, body)).unwrap();
        assert_eq!(ce.id, "m-7");
        assert_eq!(ce.event_type, "demo.ticks");
        assert_eq!(ce.source, "/exchanges/demo.ticks");
        assert_eq!(
            ce.data,
            json!({"sequence": 3, "time": "2026-12-02T10:00:00Z"})
        );
        assert_eq!(ce.datacontenttype.as_deref(), Some("application/json"));
        let text = cloudevent(&delivered(&BasicProperties::default(), b"HELLO")).unwrap();
        assert_eq!(text.data, json!("HELLO"));
        assert!(!text.id.is_empty());
    }

    #[test]
    fn binary_mode_attributes_come_from_the_headers() {
        let mut h = FieldTable::default();
        for (k, v) in [
            ("ce_specversion", "1.0"),
            ("ce_id", "b-1"),
            ("ce_type", "com.example.Tick"),
            ("ce_source", "/time"),
        ] {
            h.insert(
                ShortString::from(k),
                AMQPValue::LongString(LongString::from(v)),
            );
        }
        let props = BasicProperties::default().with_headers(h);
        let ce = cloudevent(&delivered(&props, b"\"x\"")).unwrap();
        assert_eq!(
            (ce.id.as_str(), ce.event_type.as_str()),
            ("b-1", "com.example.Tick")
        );
        assert_eq!(ce.data, json!("x"));
    }
}
