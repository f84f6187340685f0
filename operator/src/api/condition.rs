//! Kubernetes conditions as used by both kinds: the upstream `Condition`
//! schema as a list-map keyed by `type`, and the one way we set them, which
//! always records the generation they describe and keeps
//! `lastTransitionTime` when only the message changes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::{Schema, SchemaGenerator, json_schema};

/// Schema of a `conditions` list: the upstream item schema, unique by `type`.
pub fn conditions_schema(generator: &mut SchemaGenerator) -> Schema {
    let item = generator.subschema_for::<Condition>();
    json_schema!({
        "description": "Current state of the object, one entry per type, each with the generation it describes.",
        "type": "array",
        "maxItems": 8,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
        "items": item,
    })
}

/// Sets (or replaces) the condition of `type_`; the transition time moves
/// only when the status flips.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
    now: &Time,
) {
    let status = if status { "True" } else { "False" }.to_owned();
    let previous = conditions.iter().position(|c| c.type_ == type_);
    let last_transition_time = match previous.map(|i| &conditions[i]) {
        Some(old) if old.status == status => old.last_transition_time.clone(),
        _ => now.clone(),
    };
    let condition = Condition {
        type_: type_.to_owned(),
        status,
        reason: reason.to_owned(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time,
    };
    match previous {
        Some(i) => conditions[i] = condition,
        None => conditions.push(condition),
    }
}

/// A condition as our clients show it (the CLI's `describe`, the
/// dashboard): type, status, reason and message, without the bookkeeping.
#[derive(serde::Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConditionView {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    pub reason: String,
    pub message: String,
}

impl From<&Condition> for ConditionView {
    fn from(c: &Condition) -> Self {
        ConditionView {
            type_: c.type_.clone(),
            status: c.status.clone(),
            reason: c.reason.clone(),
            message: c.message.clone(),
        }
    }
}

/// Whether the condition of `type_` is `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(s: i64) -> Time {
        Time(jiff::Timestamp::from_second(s).unwrap())
    }

    #[test]
    fn a_condition_keeps_its_transition_time_until_its_status_flips() {
        let mut c = Vec::new();
        set_condition(&mut c, "Ready", false, "Waiting", "a", Some(1), &time(10));
        set_condition(&mut c, "Ready", false, "Waiting", "b", Some(2), &time(20));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].last_transition_time, time(10));
        assert_eq!(c[0].observed_generation, Some(2));
        set_condition(&mut c, "Ready", true, "Ok", "c", Some(2), &time(30));
        assert_eq!(c[0].last_transition_time, time(30));
        assert!(is_true(&c, "Ready"));
    }
}
