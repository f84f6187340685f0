//! `AppRegistration`: Data Flow's `app register`, the Kubernetes way. A
//! namespaced object named `<type>.<name>` (`source.time`,
//! `processor.transform`, `sink.log`, `app.x`), exactly Data Flow's
//! registration key, says which image runs an app a stream definition names
//! and how the operator wires it. RBAC decides who may register apps; a
//! change wakes the Streams of the namespace whose definitions use it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::spring::{BINDING_PATTERN, DEFAULT_INPUT, DEFAULT_OUTPUT, MAX_BINDING_NAME};

/// The registration types of Data Flow, by where an app sits in a definition.
pub const APP_TYPES: [&str; 4] = ["source", "processor", "sink", "app"];

/// An app a stream definition can name: its image and how it is wired.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "eventflow.dev",
    version = "v1alpha1",
    kind = "AppRegistration",
    namespaced,
    shortname = "efapp",
    category = "eventflow",
    doc = "An app stream definitions can name (Data Flow's app registration): named <type>.<name>, e.g. source.time.",
    printcolumn(name = "Image", type_ = "string", json_path = ".spec.image", description = "Container image"),
    printcolumn(name = "Runtime", type_ = "string", json_path = ".spec.runtime", description = "SpringCloudStream or Eventflow"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("self.metadata.name.size() <= 73 && self.metadata.name.matches('^(source|processor|sink|app)[.][a-z]([-a-z0-9]*[a-z0-9])?$')")
        .message("metadata.name must be <type>.<app name>: type source, processor, sink or app, and the app name a DNS label (e.g. source.time)")
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.runtime == 'SpringCloudStream' || !has(self.spring)",
     "message": "spring is for runtime SpringCloudStream", "fieldPath": ".spring"},
    {"rule": "self.runtime == 'Eventflow' || !has(self.webPort)",
     "message": "webPort is for runtime Eventflow (a Spring Cloud Stream app runs as a worker)", "fieldPath": ".webPort"},
]))]
pub struct AppRegistrationSpec {
    /// Container image of the app (Data Flow's `docker:` URI without the scheme).
    #[schemars(length(min = 1, max = 512))]
    pub image: String,

    /// `SpringCloudStream` (default): an unchanged Spring Cloud Stream app configured through
    /// Spring properties; `Eventflow`: an app of the eventflow runtime (wiring contract).
    #[serde(default)]
    pub runtime: AppRuntime,

    /// Bindings and function of a Spring Cloud Stream app (defaults: `input`, `output`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spring: Option<RegisteredSpring>,

    /// An Eventflow app that serves HTTP: the port of its web role (which also gets a Service).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self != 9090", "message": "port 9090 is the admin port of every role"}]))]
    pub web_port: Option<i32>,

    /// Default app properties; a definition's `--key=value` and `app.<label>.<key>` override them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64))]
    pub properties: BTreeMap<String, String>,

    /// Default compute resources; `deployer.<label>.kubernetes.*` deployment properties override them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

/// What runs inside a registered app.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum AppRuntime {
    /// A Spring Cloud Stream app (RabbitMQ binder), run unchanged.
    #[default]
    SpringCloudStream,
    /// An app built on the eventflow runtime.
    Eventflow,
}

/// The bindings of a registered Spring Cloud Stream app.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegisteredSpring {
    /// `spring.cloud.function.definition` (unset: the app's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512), pattern(r"^[A-Za-z0-9_$.;|,-]+$"))]
    pub function_definition: Option<String>,

    /// The input binding a definition's pipe feeds (default `input`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_BINDING_NAME), pattern(BINDING_PATTERN))]
    pub input: Option<String>,

    /// The output binding that feeds the next app (default `output`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_BINDING_NAME), pattern(BINDING_PATTERN))]
    pub output: Option<String>,
}

impl RegisteredSpring {
    pub fn input(&self) -> &str {
        self.input.as_deref().unwrap_or(DEFAULT_INPUT)
    }
    pub fn output(&self) -> &str {
        self.output.as_deref().unwrap_or(DEFAULT_OUTPUT)
    }
}
