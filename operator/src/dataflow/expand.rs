//! A Data Flow stream definition expanded into the apps of the YAML form,
//! with the names Data Flow would have used:
//!
//! - each app is named by its label, and comes from the AppRegistration
//!   `<type>.<name>` (type by position: source, processor, sink; `app` for
//!   the apps of an unbound list or a lone app);
//! - the pipe after the app labelled `l` of stream `s` is Data Flow's
//!   destination `s.l`, here `s-l` (destination names are DNS labels); a tap
//!   `:s.l` reads that same destination;
//! - every consumer of stream `s` reads in group `s`, Data Flow's group;
//! - a named destination `:d` is destination `d`.

use std::collections::BTreeMap;

use eventflow_dsl::{AppRef, StreamDefinition};
use k8s_openapi::api::core::v1::{EnvVar, ResourceRequirements};

use super::deployment::{AppDeployment, Deployment};
use crate::api::{
    App, AppRegistrationSpec, AppRuntime, DEFAULT_INPUT, DEFAULT_OUTPUT, MAX_APP_NAME,
    MAX_DESTINATION_NAME, Packaging, SpringApp, SpringOutput, Subscribe, WebRole, WorkerRole,
    is_dns_label,
};

/// Why a definition cannot be expanded: the message names the problem, with
/// the character position when the parser found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpandError {
    pub position: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for ExpandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.position {
            Some(p) => write!(f, "spec.definition (pos {p}): {}", self.message),
            None => write!(f, "spec.definition: {}", self.message),
        }
    }
}

fn fail<T>(message: String) -> Result<T, ExpandError> {
    Err(ExpandError {
        position: None,
        message,
    })
}

/// Where an app sits: the destinations it reads and writes.
struct Place {
    input: Option<String>,
    output: Option<String>,
}

/// The registration type of the app at `index`, by its place, as on Data
/// Flow: `source` (writes only), `processor`, `sink` (reads only), or `app`
/// (an unbound list, or a lone app).
fn app_type(def: &StreamDefinition, index: usize) -> &'static str {
    let input = index > 0 || def.source.is_some();
    let output = index + 1 < def.apps.len() || def.sink.is_some();
    match (def.unbound, input, output) {
        (true, ..) | (false, false, false) => "app",
        (false, false, true) => "source",
        (false, true, true) => "processor",
        (false, true, false) => "sink",
    }
}

/// The AppRegistration (`<type>.<name>`) each app of the definition comes from, in order.
pub fn registration_names(def: &StreamDefinition) -> Vec<String> {
    def.apps
        .iter()
        .enumerate()
        .map(|(i, app)| format!("{}.{}", app_type(def, i), app.name))
        .collect()
}

/// The destination of a `:name` in the definition.
fn named_destination(name: &str) -> Result<String, ExpandError> {
    let mapped = match name.split_once('.') {
        // A tap: the pipe after app `label` of `stream`.
        Some((stream, label)) if !label.contains('.') => format!("{stream}-{label}"),
        _ => name.to_owned(),
    };
    if is_dns_label(&mapped, MAX_DESTINATION_NAME) {
        Ok(mapped)
    } else {
        fail(format!(
            "destination `:{name}` is not supported: a named destination is a DNS label of at most \
             {MAX_DESTINATION_NAME} characters (lower-case letters, digits, `-`), a tap is `:<stream>.<label>`"
        ))
    }
}

/// The apps of stream `stream` written as `definition`, with `properties`
/// (Data Flow deployment properties) and the namespace's registrations by
/// name (`<type>.<name>`).
pub fn expand(
    stream: &str,
    definition: &str,
    properties: &BTreeMap<String, String>,
    registrations: &BTreeMap<String, AppRegistrationSpec>,
) -> Result<Vec<App>, ExpandError> {
    let def = eventflow_dsl::parse(definition).map_err(|e| ExpandError {
        position: Some(e.position),
        message: e.message,
    })?;
    if let Some(named) = def.name.as_deref().filter(|n| *n != stream) {
        return fail(format!(
            "the definition names stream `{named}`, but this Stream is `{stream}`: drop `{named} =` or rename the Stream"
        ));
    }
    let deployment = Deployment::parse(properties).or_else(fail)?;
    if let Some(unknown) = deployment
        .labels()
        .find(|l| !def.apps.iter().any(|a| a.label == *l))
    {
        return fail(format!(
            "deployment properties name app `{unknown}`, which is no label of the definition"
        ));
    }
    if let Some(source) = &def.source
        && !source.properties.is_empty()
    {
        return fail(format!(
            "arguments on the source destination `:{}` are not supported; set the consuming app's properties instead",
            source.destination
        ));
    }
    let places = places(stream, &def)?;
    def.apps
        .iter()
        .zip(places)
        .zip(registration_names(&def))
        .map(|((app, place), key)| {
            let Some(registration) = registrations.get(&key) else {
                return fail(format!(
                    "app `{}` needs the AppRegistration `{key}` in this namespace, and there is none \
                     (apply one, or `kubectl eventflow import --apps`)",
                    app.name
                ));
            };
            if !is_dns_label(&app.label, MAX_APP_NAME) {
                return fail(format!(
                    "app label `{}` cannot name a Deployment: a label is a DNS label of at most {MAX_APP_NAME} \
                     characters (write `<label>: {}`)",
                    app.label, app.name
                ));
            }
            build_app(stream, app, &place, registration, &deployment.for_label(&app.label))
        })
        .collect()
}

/// The input and output destination of every app, in order.
fn places(stream: &str, def: &StreamDefinition) -> Result<Vec<Place>, ExpandError> {
    if def.unbound {
        return Ok(def
            .apps
            .iter()
            .map(|_| Place {
                input: None,
                output: None,
            })
            .collect());
    }
    let source = def
        .source
        .as_ref()
        .map(|s| named_destination(&s.destination))
        .transpose()?;
    let sink = def
        .sink
        .as_ref()
        .map(|s| named_destination(&s.destination))
        .transpose()?;
    let pipes: Vec<String> = def
        .apps
        .iter()
        .map(|a| format!("{stream}-{}", a.label))
        .collect();
    if let Some(long) = pipes.iter().find(|p| p.len() > MAX_DESTINATION_NAME) {
        return fail(format!(
            "destination `{long}` (the pipe after an app) exceeds {MAX_DESTINATION_NAME} characters"
        ));
    }
    let last = def.apps.len().saturating_sub(1);
    Ok((0..def.apps.len())
        .map(|i| Place {
            input: if i == 0 {
                source.clone()
            } else {
                Some(pipes[i - 1].clone())
            },
            output: if i == last {
                sink.clone()
            } else {
                Some(pipes[i].clone())
            },
        })
        .collect())
}

fn build_app(
    stream: &str,
    app: &AppRef,
    place: &Place,
    registration: &AppRegistrationSpec,
    deployment: &AppDeployment,
) -> Result<App, ExpandError> {
    let mut properties = registration.properties.clone();
    properties.extend(app.properties.clone());
    properties.extend(deployment.properties.clone());
    let mut out = App {
        name: app.label.clone(),
        image: Some(registration.image.clone()),
        packaging: Packaging::Separate,
        web: None,
        worker: None,
        env: Vec::new(),
        env_from: Vec::new(),
        resources: resources(registration.resources.clone(), deployment),
        publishes: Vec::new(),
        subscribes: Vec::new(),
        spring: None,
    };
    let subscribe = |binding: Option<String>| {
        place.input.clone().map(|destination| Subscribe {
            destination,
            group: Some(stream.to_owned()),
            event_types: Vec::new(),
            max_attempts: None,
            backoff_ms: None,
            binding,
        })
    };
    let worker = WorkerRole {
        replicas: deployment.count,
        ..WorkerRole::default()
    };
    match registration.runtime {
        AppRuntime::SpringCloudStream => {
            let bindings = registration.spring.clone().unwrap_or_default();
            let named = |b: &str, default: &str| (b != default).then(|| b.to_owned());
            out.worker = Some(worker);
            out.subscribes
                .extend(subscribe(named(bindings.input(), DEFAULT_INPUT)));
            out.spring = Some(SpringApp {
                function_definition: bindings.function_definition.clone(),
                outputs: place
                    .output
                    .iter()
                    .map(|destination| SpringOutput {
                        binding: named(bindings.output(), DEFAULT_OUTPUT),
                        destination: destination.clone(),
                    })
                    .collect(),
                properties,
            });
        }
        AppRuntime::Eventflow => {
            out.subscribes.extend(subscribe(None));
            out.publishes.extend(place.output.clone());
            out.env = properties
                .iter()
                .map(|(k, v)| EnvVar {
                    name: env_name(k),
                    value: Some(v.clone()),
                    value_from: None,
                })
                .collect();
            out.web = registration.web_port.map(|port| WebRole {
                replicas: deployment.count,
                port: Some(port),
                ..WebRole::default()
            });
            if place.input.is_some() {
                out.worker = Some(worker);
            }
            if out.web.is_none() && out.worker.is_none() {
                return fail(format!(
                    "app `{}` reads no destination, and its registration (runtime Eventflow) has no webPort: \
                     an Eventflow app without input serves HTTP",
                    app.label
                ));
            }
        }
    }
    Ok(out)
}

/// An app property as the environment variable an Eventflow app reads:
/// upper case, `.` and `-` as `_` (`--max.batch-size` → `MAX_BATCH_SIZE`).
pub fn env_name(property: &str) -> String {
    property
        .chars()
        .map(|c| match c {
            '.' | '-' => '_',
            c => c.to_ascii_uppercase(),
        })
        .collect()
}

fn resources(
    base: Option<ResourceRequirements>,
    deployment: &AppDeployment,
) -> Option<ResourceRequirements> {
    if deployment.limits.is_empty() && deployment.requests.is_empty() {
        return base;
    }
    let mut r = base.unwrap_or_default();
    if !deployment.limits.is_empty() {
        r.limits
            .get_or_insert_with(BTreeMap::new)
            .extend(deployment.limits.clone());
    }
    if !deployment.requests.is_empty() {
        r.requests
            .get_or_insert_with(BTreeMap::new)
            .extend(deployment.requests.clone());
    }
    Some(r)
}
