//! One dead letter as the redrive reads it, and the properties it goes back
//! with.
//!
//! How messages reach a group's DLQ (apps/runtime `consumer.rs`): the
//! worker republishes a failed message to the group's retry queue through
//! the group's retry exchange (a fanout of the queue's name) with
//! `x-eventflow-attempt` incremented and, the first time,
//! `x-eventflow-routing-key` set to the routing key it was delivered with;
//! the retry queue's TTL dead-letters it back into the group queue through
//! the default exchange (routing key = the group queue's name); the attempt
//! that reaches `maxAttempts` is rejected and the group queue dead-letters
//! it to the group's DLX, keeping the routing key it had. So a message that
//! was retried no longer carries the routing key it was published with;
//! this module recovers it, in this order:
//!
//! 1. `x-eventflow-routing-key` (written by the worker's first retry, or by
//!    an earlier redrive; older workers retried without it);
//! 2. the oldest `x-death` entry from a named exchange (the destination's
//!    topic exchange): its first routing key — a message dead-lettered on its
//!    first failure, and every Spring Cloud Stream consumer's message (they
//!    retry in process, then reject);
//! 3. the message's own routing key, unless it is the group or retry queue;
//! 4. the CloudEvent type `dev.eventflow.<aggregate>.<EVENT>` (AMQP `type`,
//!    a `ce-type`/`ce_type` header, or the `type` of a structured JSON body)
//!    as `<aggregate>.<EVENT>` — how eventflow apps route their events;
//! 5. the group queue's name (nothing better is known).

use eventflow_contract::names::{ATTEMPT_HEADER, ROUTING_KEY_HEADER};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use lapin::{
    BasicProperties,
    types::{AMQPValue, FieldArray, FieldTable, LongString, ShortString},
};

use crate::api::{DeadLetter, PREVIEW_BYTES};

/// How many times redrives put the message back.
pub const REDRIVES_HEADER: &str = "x-eventflow-redrives";
/// The uid of the last DeadLetterRedrive that put the message back.
pub const REDRIVE_HEADER: &str = "x-eventflow-redrive";
/// Headers the broker writes when it dead-letters a message.
const DEATH_HEADERS: [&str; 7] = [
    "x-death",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-first-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
    "x-last-death-exchange",
];
const CLOUDEVENT_TYPE_PREFIX: &str = "dev.eventflow.";

/// The group a dead letter belongs to.
pub struct Group<'a> {
    pub queue: &'a str,
    pub retry_queue: &'a str,
}

/// What the redrive needs of one dead letter.
#[derive(Clone, Debug, PartialEq)]
pub struct Letter {
    pub routing_key: String,
    /// The uid of the redrive that last put it back.
    pub redriven_by: Option<String>,
}

fn text(v: &AMQPValue) -> Option<String> {
    match v {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

fn int(v: &AMQPValue) -> Option<i64> {
    match v {
        AMQPValue::LongLongInt(n) => Some(*n),
        AMQPValue::LongInt(n) => Some((*n).into()),
        AMQPValue::LongUInt(n) => Some((*n).into()),
        AMQPValue::ShortInt(n) => Some((*n).into()),
        AMQPValue::ShortUInt(n) => Some((*n).into()),
        AMQPValue::ShortShortInt(n) => Some((*n).into()),
        AMQPValue::ShortShortUInt(n) => Some((*n).into()),
        AMQPValue::Timestamp(n) => i64::try_from(*n).ok(),
        _ => None,
    }
}

fn header<'p>(props: &'p BasicProperties, name: &str) -> Option<&'p AMQPValue> {
    props.headers().as_ref()?.inner().get(name)
}

/// The `x-death` entries, most recent first (as the broker keeps them).
fn deaths(props: &BasicProperties) -> Vec<&FieldTable> {
    match header(props, "x-death") {
        Some(AMQPValue::FieldArray(a)) => a
            .as_slice()
            .iter()
            .filter_map(|v| match v {
                AMQPValue::FieldTable(t) => Some(t),
                _ => None,
            })
            .collect(),
        _ => vec![],
    }
}

fn field<'t>(t: &'t FieldTable, key: &str) -> Option<&'t AMQPValue> {
    t.inner().get(key)
}

/// `<aggregate>.<EVENT>` of an eventflow CloudEvent type.
fn routing_key_of_type(cloudevent_type: &str) -> Option<String> {
    let rest = cloudevent_type.strip_prefix(CLOUDEVENT_TYPE_PREFIX)?;
    (rest.split('.').count() == 2 && !rest.split('.').any(str::is_empty)).then(|| rest.to_owned())
}

fn cloudevent_type(props: &BasicProperties, body: &[u8]) -> Option<String> {
    if let Some(t) = props.kind().as_ref() {
        return Some(t.as_str().to_owned());
    }
    for name in ["ce-type", "ce_type", "cloudEvents:type", "cloudEvents_type"] {
        if let Some(t) = header(props, name).and_then(text) {
            return Some(t);
        }
    }
    let json: serde_json::Value = serde_json::from_slice(body).ok()?;
    json.get("type")?.as_str().map(str::to_owned)
}

/// The routing key `props`/`body` were first published with (see the module doc).
pub fn original_routing_key(
    props: &BasicProperties,
    delivered_with: &str,
    body: &[u8],
    group: &Group<'_>,
) -> String {
    if let Some(k) = header(props, ROUTING_KEY_HEADER).and_then(text) {
        return k;
    }
    let from_exchange = deaths(props).into_iter().rev().find_map(|d| {
        let exchange = field(d, "exchange").and_then(text)?;
        if exchange.is_empty() {
            return None;
        }
        match field(d, "routing-keys")? {
            AMQPValue::FieldArray(keys) => keys.as_slice().first().and_then(text),
            _ => None,
        }
    });
    if let Some(k) = from_exchange {
        return k;
    }
    if !delivered_with.is_empty()
        && delivered_with != group.queue
        && delivered_with != group.retry_queue
    {
        return delivered_with.to_owned();
    }
    cloudevent_type(props, body)
        .as_deref()
        .and_then(routing_key_of_type)
        .unwrap_or_else(|| group.queue.to_owned())
}

impl Letter {
    pub fn read(props: &BasicProperties, delivered_with: &str, body: &[u8], group: &Group) -> Self {
        Self {
            routing_key: original_routing_key(props, delivered_with, body, group),
            redriven_by: header(props, REDRIVE_HEADER).and_then(text),
        }
    }
}

/// The properties a dead letter goes back with: every property and header
/// it had, minus the attempt count (`x-eventflow-attempt`) and the broker's
/// dead-letter history (`x-death`, `x-first-death-*`, `x-last-death-*`), so
/// the group's consumer sees a first delivery; plus the original routing key,
/// the redrive count and the redrive's uid.
pub fn redriven_properties(
    props: &BasicProperties,
    routing_key: &str,
    redrive_uid: &str,
) -> BasicProperties {
    let mut headers = props.headers().clone().unwrap_or_default();
    let redrives = header(props, REDRIVES_HEADER).and_then(int).unwrap_or(0) + 1;
    let mut kept = FieldTable::default();
    for (k, v) in headers.inner() {
        if k.as_str() != ATTEMPT_HEADER && !DEATH_HEADERS.contains(&k.as_str()) {
            kept.insert(k.clone(), v.clone());
        }
    }
    headers = kept;
    let long = |s: &str| AMQPValue::LongString(LongString::from(s.to_owned()));
    headers.insert(ShortString::from(ROUTING_KEY_HEADER), long(routing_key));
    headers.insert(
        ShortString::from(REDRIVES_HEADER),
        AMQPValue::LongLongInt(redrives),
    );
    headers.insert(ShortString::from(REDRIVE_HEADER), long(redrive_uid));
    props.clone().with_headers(headers)
}

/// The same properties, addressed (`BCC`, which the broker strips) to `queue`.
pub fn addressed_to(props: BasicProperties, queue: &str) -> BasicProperties {
    let mut headers = props.headers().clone().unwrap_or_default();
    let mut bcc = FieldArray::default();
    bcc.push(AMQPValue::LongString(LongString::from(queue.to_owned())));
    headers.insert(ShortString::from("BCC"), AMQPValue::FieldArray(bcc));
    props.with_headers(headers)
}

/// The body's first [`PREVIEW_BYTES`] bytes as text, `…` when cut.
pub fn preview(body: &[u8]) -> String {
    if body.len() <= PREVIEW_BYTES {
        return String::from_utf8_lossy(body).into_owned();
    }
    let mut cut = String::from_utf8_lossy(&body[..PREVIEW_BYTES]).into_owned();
    // A multi-byte character cut in two reads as U+FFFD: drop it.
    while cut.ends_with('\u{FFFD}') {
        cut.pop();
    }
    cut.push('…');
    cut
}

/// A dead letter as an inspection lists it.
pub fn describe(
    props: &BasicProperties,
    delivered_with: &str,
    body: &[u8],
    group: &Group,
) -> DeadLetter {
    let last = deaths(props).into_iter().next();
    // What an eventflow consumer recorded; a consumer that retries in
    // process (Spring Cloud Stream) records nothing the broker keeps.
    let attempts = header(props, ATTEMPT_HEADER).and_then(int).map(|n| n + 1);
    let death_time = last
        .and_then(|d| field(d, "time").and_then(int))
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .map(Time);
    DeadLetter {
        routing_key: original_routing_key(props, delivered_with, body, group),
        message_id: props.message_id().as_ref().map(|m| m.as_str().to_owned()),
        r#type: cloudevent_type(props, body),
        attempts,
        reason: last
            .and_then(|d| field(d, "reason").and_then(text))
            .or_else(|| header(props, "x-first-death-reason").and_then(text)),
        dead_lettered_from: last
            .and_then(|d| field(d, "queue").and_then(text))
            .or_else(|| header(props, "x-first-death-queue").and_then(text)),
        dead_lettered_at: death_time,
        redrives: header(props, REDRIVES_HEADER).and_then(int),
        size: i64::try_from(body.len()).unwrap_or(i64::MAX),
        preview: preview(body),
    }
}

#[cfg(test)]
mod tests;
