//! CloudEvents 1.0 in structured JSON mode (`application/cloudevents+json`),
//! exactly as DESIGN.md fixes it: `type` = `dev.eventflow.<aggregate>.<EVENT>`,
//! `subject` = the aggregate id, `sequence` = the aggregate version zero-padded
//! (so string order is version order), `data` = the event with its HAL links.
//!
//! Hand-written rather than the `cloudevents-sdk` crate: we need one mode of
//! one spec version, and a plain serde struct keeps the wire shape visible
//! in one place and spares the SDK's dependency tree in every image.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{hal::represent_event, store::RecordedEvent};

pub const CONTENT_TYPE: &str = "application/cloudevents+json";
/// Width of the zero-padded `sequence` (fits every i64 version).
pub const SEQUENCE_WIDTH: usize = 20;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CloudEvent {
    pub specversion: String,
    pub id: String,
    pub source: String,
    #[serde(rename = "type")]
    pub event_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacontenttype: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<String>,
    #[serde(default)]
    pub data: Value,
}

impl CloudEvent {
    /// The CloudEvent of a stored event; links are absolute from `self_url`.
    pub fn of(e: &RecordedEvent, collection: &str, self_url: &str) -> Self {
        Self {
            specversion: "1.0".into(),
            id: e.event_id.clone(),
            source: format!("{self_url}/v1/{collection}"),
            event_type: eventflow_contract::names::cloudevent_type(
                &e.aggregate_type,
                &e.event_type,
            ),
            subject: Some(e.aggregate_id.clone()),
            time: Some(e.recorded_at.clone()),
            datacontenttype: Some("application/json".into()),
            sequence: Some(format!("{:0width$}", e.version, width = SEQUENCE_WIDTH)),
            data: represent_event(e, collection, self_url),
        }
    }

    /// `<EVENT>` of `dev.eventflow.<aggregate>.<EVENT>`.
    pub fn event_name(&self) -> &str {
        self.event_type
            .rsplit('.')
            .next()
            .unwrap_or(&self.event_type)
    }

    /// The AMQP routing key `<aggregate>.<EVENT>`.
    pub fn routing_key(&self) -> String {
        let mut parts = self.event_type.rsplitn(3, '.');
        let event = parts.next().unwrap_or_default();
        let aggregate = parts.next().unwrap_or_default();
        eventflow_contract::names::routing_key(aggregate, event)
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn created() -> RecordedEvent {
        RecordedEvent {
            position: 7,
            event_id: "e-1".into(),
            aggregate_type: "account".into(),
            aggregate_id: "a-1".into(),
            version: 1,
            event_type: "ACCOUNT_CREATED".into(),
            payload: json!({"email": "a@b.c"}),
            recorded_at: "2026-01-01T00:00:00.000Z".into(),
        }
    }

    #[test]
    fn the_wire_shape_is_the_documented_one() {
        let ce = CloudEvent::of(&created(), "accounts", "http://account-web.demo:8080");
        let v = serde_json::to_value(&ce).unwrap();
        assert_eq!(v["specversion"], "1.0");
        assert_eq!(v["type"], "dev.eventflow.account.ACCOUNT_CREATED");
        assert_eq!(v["subject"], "a-1");
        assert_eq!(v["sequence"], "00000000000000000001");
        assert_eq!(v["data"]["payload"]["email"], "a@b.c");
        assert_eq!(
            v["data"]["_links"]["self"]["href"],
            "http://account-web.demo:8080/v1/accounts/a-1/events/e-1"
        );
        assert_eq!(
            v["data"]["_links"]["account"]["href"],
            "http://account-web.demo:8080/v1/accounts/a-1"
        );
        assert_eq!(ce.routing_key(), "account.ACCOUNT_CREATED");
        assert_eq!(ce.event_name(), "ACCOUNT_CREATED");
    }
}
