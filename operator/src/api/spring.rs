//! The part of an app that says it is a Spring Cloud Stream app (RabbitMQ
//! binder). Such an app runs unchanged: the operator configures it through
//! Spring properties, the way Data Flow's deployer did, instead of the
//! eventflow wiring contract (README, "Spring Cloud Stream apps").

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{DNS_LABEL_PATTERN, MAX_DESTINATION_NAME};

/// A binding name: `input`/`output`, or a functional `<function>-in-<n>`/`<function>-out-<n>`.
pub(crate) const BINDING_PATTERN: &str = "^[A-Za-z][A-Za-z0-9_-]*$";
/// Longest binding name.
pub(crate) const MAX_BINDING_NAME: usize = 100;
/// The binding of a subscription or output that names none (Data Flow's names).
pub const DEFAULT_INPUT: &str = "input";
pub const DEFAULT_OUTPUT: &str = "output";

/// A Spring Cloud Stream app and the bindings the operator wires.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SpringApp {
    /// `spring.cloud.function.definition`, e.g. `uppercase` or `uppercase;reverse`
    /// (unset: the app's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512), pattern(r"^[A-Za-z0-9_$.;|,-]+$"))]
    pub function_definition: Option<String>,

    /// Output bindings and the destination each publishes to (the app's subscriptions are its
    /// input bindings).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub outputs: Vec<SpringOutput>,

    /// Further Spring properties of the app, name to value (e.g. `spring.integration.poller.fixed-delay`).
    /// The operator's own properties and `spring.rabbitmq.*` cannot be set here.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64))]
    pub properties: BTreeMap<String, String>,
}

/// An output binding of a Spring Cloud Stream app.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SpringOutput {
    /// Binding name (default `output`; functional apps use `<function>-out-<n>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_BINDING_NAME), pattern(BINDING_PATTERN))]
    pub binding: Option<String>,

    /// Destination the binding publishes to.
    #[schemars(length(min = 1, max = MAX_DESTINATION_NAME), pattern(DNS_LABEL_PATTERN))]
    pub destination: String,
}

impl SpringOutput {
    pub fn binding(&self) -> &str {
        self.binding.as_deref().unwrap_or(DEFAULT_OUTPUT)
    }
}
