//! Pure validation of a Stream, beyond what admission already enforces:
//! rules CEL cannot express cheaply (conflicting queue arguments across
//! apps, environment variables that would shadow the wiring contract) and a
//! second guard for the admission rules, since objects may predate the CRD
//! that now rejects them.

use std::collections::{BTreeMap, BTreeSet};

use eventflow_contract::{defaults, env};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Resource;

use crate::{
    api::{App, Autoscale, AutoscaleEngine, Packaging, Stream, StreamSpec},
    build::{spring, wiring::app_bindings},
    naming,
};

/// A Stream that passed validation and was stored (it has a name, a
/// namespace and a uid, so objects can be owned by it): the only input
/// [`crate::build::build_stream`] takes.
#[derive(Clone, Debug)]
pub struct ValidStream<'a> {
    pub stream: &'a Stream,
    pub name: &'a str,
    pub namespace: &'a str,
    /// The controller owner reference every object of the Stream carries.
    pub owner: OwnerReference,
}

impl ValidStream<'_> {
    pub fn spec(&self) -> &StreamSpec {
        &self.stream.spec
    }
}

/// Why a Stream cannot be deployed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// The spec breaks rules admission could not check: every problem, with its field.
    #[error("{}", describe(.0))]
    Spec(Vec<Problem>),
    /// The object was never stored (no uid or namespace): nothing can be owned by it.
    #[error("the Stream has no {0} (it was never stored)")]
    NotStored(&'static str),
}

/// Checks `stream` and hands back the validated value build needs.
pub fn validate(stream: &Stream) -> Result<ValidStream<'_>, Invalid> {
    let name = stream
        .metadata
        .name
        .as_deref()
        .ok_or(Invalid::NotStored("name"))?;
    let problems = validate_stream(name, &stream.spec);
    if !problems.is_empty() {
        return Err(Invalid::Spec(problems));
    }
    Ok(ValidStream {
        stream,
        name,
        namespace: stream
            .metadata
            .namespace
            .as_deref()
            .ok_or(Invalid::NotStored("namespace"))?,
        owner: stream
            .controller_owner_ref(&())
            .ok_or(Invalid::NotStored("uid"))?,
    })
}

/// One reason a spec cannot be deployed, with the field it is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Joins problems into one condition message.
pub fn describe(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(Problem::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Environment variables the operator sets; a user value would silently lose
/// or win. A peer URL is the operator's only for the apps of the Stream: a
/// client of another Stream's web role (the example load simulator) names it.
fn reserved(name: &str, apps: &[crate::api::App]) -> bool {
    [
        env::ROLE,
        env::APP,
        env::STREAM,
        env::POD_NAMESPACE,
        env::BROKER_URI,
        env::BROKER_CA,
        env::BINDINGS,
        env::SELF_URL,
        env::HTTP_ADDR,
        env::ADMIN_ADDR,
        env::DATA_DIR,
    ]
    .contains(&name)
        || apps.iter().any(|a| env::peer_url_var(&a.name) == name)
}

/// Every problem of `spec` for a Stream named `stream`; empty when it can be deployed.
pub fn validate_stream(stream: &str, spec: &StreamSpec) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut p = |field: String, message: &str| {
        problems.push(Problem {
            field,
            message: message.to_owned(),
        })
    };
    let mut names = BTreeSet::new();
    // (destination, group) -> (backoff, first field that set it)
    let mut retry_ttls: BTreeMap<(String, String), (u32, String)> = BTreeMap::new();

    for (i, app) in spec.apps.iter().enumerate() {
        let at = format!("spec.apps[{i}]");
        if !names.insert(app.name.as_str()) {
            p(format!("{at}.name"), "duplicate app name");
        }
        if app.web.is_none() && app.worker.is_none() {
            p(at.clone(), "an app needs a web role, a worker role or both");
        }
        if app.worker.is_some() && app.spring.is_none() && app.subscribes.is_empty() {
            p(
                format!("{at}.subscribes"),
                "a worker needs at least one subscription",
            );
        }
        if app.packaging == Packaging::Combined {
            let per_role_image = app.web.as_ref().is_some_and(|w| w.image.is_some())
                || app
                    .worker
                    .as_ref()
                    .is_some_and(|w| w.image.is_some() || w.replicas.is_some());
            if per_role_image {
                p(
                    format!("{at}.packaging"),
                    "Combined packaging forbids per-role image and worker replicas",
                );
            }
        }
        if let Some(a) = app.worker.as_ref().and_then(|w| w.autoscale.as_ref()) {
            autoscale_rules(app, a, &format!("{at}.worker"), &mut p);
        }
        let role_images = app.web.as_ref().is_none_or(|w| w.image.is_some())
            && app.worker.as_ref().is_none_or(|w| w.image.is_some());
        if app.image.is_none() && !role_images {
            p(
                format!("{at}.image"),
                "set image (or an image on every role)",
            );
        }
        for workload in naming::workloads(stream, app) {
            if workload.name.len() > 63 {
                p(
                    format!("{at}.name"),
                    "the Deployment name <stream>-<app>-<role> exceeds 63 characters",
                );
            }
        }
        if app.spring.is_some() {
            validate_spring(&at, app, &mut p);
        } else if app.subscribes.iter().any(|s| s.binding.is_some()) {
            p(
                format!("{at}.subscribes"),
                "binding names an input binding of a Spring Cloud Stream app: set spring on the app",
            );
        }
        for (j, var) in app.env.iter().enumerate() {
            let reserved = match app.spring {
                Some(_) => spring::reserved_var(&var.name),
                None => reserved(&var.name, &spec.apps),
            };
            if reserved {
                p(
                    format!("{at}.env[{j}].name"),
                    "reserved by the wiring contract (set by the operator)",
                );
            }
        }
        // A Spring app retries in process: it has no retry queue whose TTL could conflict.
        let retry_queues = app.spring.is_none().then_some(&app.subscribes);
        for (j, sub) in retry_queues.into_iter().flatten().enumerate() {
            let group = sub.group.clone().unwrap_or_else(|| app.name.clone());
            let backoff = sub.backoff_ms.unwrap_or(defaults::BACKOFF_MS);
            let field = format!("{at}.subscribes[{j}].backoffMs");
            match retry_ttls.get(&(sub.destination.clone(), group.clone())) {
                Some((other, first)) if *other != backoff => p(
                    field,
                    &format!(
                        "group {group} of {} already has backoffMs {other} at {first}: one retry queue cannot have two TTLs",
                        sub.destination
                    ),
                ),
                Some(_) => {}
                None => {
                    retry_ttls.insert((sub.destination.clone(), group), (backoff, field));
                }
            }
        }
    }
    problems
}

/// The rules of `worker.autoscale` (as admission's CEL rules, for
/// Streams that did not pass admission: expanded definitions, old objects).
fn autoscale_rules(app: &App, a: &Autoscale, at: &str, p: &mut impl FnMut(String, &str)) {
    if app.packaging == Packaging::Combined {
        p(
            format!("{at}.autoscale"),
            "Combined packaging runs one Deployment for both roles: a worker alone cannot autoscale",
        );
    }
    if app.subscribes.is_empty() {
        p(
            format!("{at}.autoscale"),
            "autoscale follows the backlog of the worker's subscriptions: a worker without any (a source) cannot autoscale",
        );
    }
    if a.min() > a.max_replicas {
        p(
            format!("{at}.autoscale.minReplicas"),
            "minReplicas (default 1) must not exceed maxReplicas",
        );
    }
    if a.backlog_per_replica.is_none() && a.drain_seconds.is_none() {
        p(
            format!("{at}.autoscale"),
            "set backlogPerReplica, drainSeconds or both",
        );
    }
    if a.engine() == AutoscaleEngine::Keda && a.backlog_per_replica.is_none() {
        p(
            format!("{at}.autoscale.backlogPerReplica"),
            "engine KEDA scales on backlogPerReplica (KEDA's rabbitmq trigger has no time to drain)",
        );
    }
    if let Some(r) = app.worker.as_ref().and_then(|w| w.replicas)
        && (r < a.min() || r > a.max_replicas)
    {
        p(
            format!("{at}.replicas"),
            "with autoscale, replicas is the starting point: it must lie between minReplicas (default 1) and maxReplicas",
        );
    }
}

/// The rules of a Spring Cloud Stream app: a worker role only, outputs
/// instead of `publishes`, each binding wired once, and no property that
/// would fight the operator's.
fn validate_spring(at: &str, app: &App, p: &mut impl FnMut(String, &str)) {
    let Some(spring) = &app.spring else { return };
    if app.web.is_some() || app.packaging == Packaging::Combined {
        p(
            format!("{at}.spring"),
            "a Spring Cloud Stream app runs as a worker role only (no web role, Separate packaging)",
        );
    }
    if app.worker.is_none() {
        p(
            format!("{at}.worker"),
            "a Spring Cloud Stream app needs a worker role",
        );
    }
    if !app.publishes.is_empty() {
        p(
            format!("{at}.publishes"),
            "a Spring Cloud Stream app publishes through spring.outputs",
        );
    }
    let mut seen = BTreeSet::new();
    let inputs = app.subscribes.iter().map(|s| s.binding());
    let outputs = spring.outputs.iter().map(|o| o.binding());
    for binding in inputs.chain(outputs) {
        if !seen.insert(binding) {
            p(
                format!("{at}.spring"),
                &format!(
                    "binding {binding} is wired twice: give each subscription and output its own binding"
                ),
            );
        }
    }
    // Property names do not depend on the namespace or the broker.
    let ours = spring::operator_properties(app, spring, &app_bindings("", app, Default::default()));
    for key in spring.properties.keys() {
        if spring::reserved_property(key, &ours) {
            p(
                format!("{at}.spring.properties[{key}]"),
                "set by the operator (bindings, retry, management port) or a broker connection property (from the EventBroker's Secret)",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Stream;

    fn stream(yaml: &str) -> Stream {
        serde_yaml::from_str(yaml).unwrap()
    }

    const BASE: &str = r#"
apiVersion: eventflow.dev/v1alpha1
kind: Stream
metadata: {name: shop, namespace: demo}
spec:
  broker: rabbit
  apps:
  - name: account
    image: eventflow/account:0.1.0
    web: {}
    worker: {}
    subscribes: [{destination: account, eventTypes: ["account.*"]}]
"#;

    const SPRING: &str = r#"
apiVersion: eventflow.dev/v1alpha1
kind: Stream
metadata: {name: ticktock, namespace: demo}
spec:
  broker: rabbit
  apps:
  - name: time
    image: eventflow/spring-time-source:dev
    worker: {}
    spring: {outputs: [{destination: ticks}]}
  - name: log
    image: eventflow/spring-count-sink:dev
    worker: {}
    spring: {}
    subscribes: [{destination: ticks, backoffMs: 100}, {destination: other, binding: second}]
"#;

    #[test]
    fn a_spring_source_and_sink_are_valid_and_sinks_may_differ_in_backoff() {
        let s = stream(SPRING);
        assert_eq!(validate_stream("ticktock", &s.spec), vec![]);
    }

    #[test]
    fn spring_apps_name_each_binding_once_and_leave_the_operators_properties_alone() {
        let mut s = stream(SPRING);
        let log = &mut s.spec.apps[1];
        log.subscribes[1].binding = None;
        let spring = log.spring.as_mut().unwrap();
        spring
            .properties
            .insert("spring.rabbitmq.password".into(), "x".into());
        spring.properties.insert(
            "spring.cloud.stream.bindings.input.group".into(),
            "mine".into(),
        );
        spring.properties.insert("log.level".into(), "x".into());
        s.spec.apps[0].publishes.push("ticks".into());
        let fields: Vec<_> = validate_stream("ticktock", &s.spec)
            .into_iter()
            .map(|p| p.field)
            .collect();
        assert_eq!(
            fields,
            [
                "spec.apps[0].publishes",
                "spec.apps[1].spring",
                "spec.apps[1].spring.properties[spring.cloud.stream.bindings.input.group]",
                "spec.apps[1].spring.properties[spring.rabbitmq.password]",
            ]
        );
    }

    #[test]
    fn a_peer_url_is_reserved_for_the_streams_own_apps_only() {
        let mut s = stream(BASE);
        let var = |name: &str| k8s_openapi::api::core::v1::EnvVar {
            name: name.into(),
            value: Some("http://elsewhere:8080".into()),
            ..Default::default()
        };
        s.spec.apps[0].env = vec![
            var("EVENTFLOW_PEER_ORDER_URL"),
            var("EVENTFLOW_PEER_ACCOUNT_URL"),
        ];
        let fields: Vec<_> = validate_stream("shop", &s.spec)
            .into_iter()
            .map(|p| p.field)
            .collect();
        assert_eq!(fields, ["spec.apps[0].env[1].name"]);
    }

    #[test]
    fn a_binding_on_an_eventflow_app_is_refused() {
        let mut s = stream(BASE);
        s.spec.apps[0].subscribes[0].binding = Some("input".into());
        let problems = validate_stream("shop", &s.spec);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].field, "spec.apps[0].subscribes");
    }

    #[test]
    fn a_valid_stream_has_no_problems() {
        let s = stream(BASE);
        assert_eq!(validate_stream("shop", &s.spec), vec![]);
    }

    #[test]
    fn an_env_var_of_the_wiring_contract_is_rejected_with_its_field() {
        let mut s = stream(BASE);
        s.spec.apps[0].env.push(k8s_openapi::api::core::v1::EnvVar {
            name: "EVENTFLOW_BINDINGS".into(),
            value: Some("{}".into()),
            ..Default::default()
        });
        let problems = validate_stream("shop", &s.spec);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].field, "spec.apps[0].env[0].name");
    }

    #[test]
    fn two_apps_sharing_a_group_with_different_backoffs_conflict() {
        let mut s = stream(BASE);
        let mut other = s.spec.apps[0].clone();
        other.name = "audit".into();
        other.subscribes[0].group = Some("account".into());
        other.subscribes[0].backoff_ms = Some(5_000);
        s.spec.apps.push(other);
        let problems = validate_stream("shop", &s.spec);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].field, "spec.apps[1].subscribes[0].backoffMs");
        assert!(describe(&problems).contains("two TTLs"));
    }

    #[test]
    fn duplicate_apps_and_workers_without_subscriptions_are_reported() {
        let mut s = stream(BASE);
        let mut dup = s.spec.apps[0].clone();
        dup.subscribes.clear();
        s.spec.apps.push(dup);
        let fields: Vec<_> = validate_stream("shop", &s.spec)
            .into_iter()
            .map(|p| p.field)
            .collect();
        assert_eq!(fields, ["spec.apps[1].name", "spec.apps[1].subscribes"]);
    }

    #[test]
    fn autoscale_rules_name_the_field_as_admission_does() {
        let mut s = stream(BASE);
        let worker = s.spec.apps[0].worker.get_or_insert_default();
        worker.replicas = Some(9);
        worker.autoscale = Some(crate::api::Autoscale {
            engine: Some(AutoscaleEngine::Keda),
            min_replicas: Some(4),
            max_replicas: 3,
            drain_seconds: Some(30),
            ..Default::default()
        });
        let fields: Vec<_> = validate_stream("shop", &s.spec)
            .into_iter()
            .map(|p| p.field)
            .collect();
        assert_eq!(
            fields,
            [
                "spec.apps[0].worker.autoscale.minReplicas",
                "spec.apps[0].worker.autoscale.backlogPerReplica",
                "spec.apps[0].worker.replicas",
            ]
        );
        s.spec.apps[0].subscribes.clear();
        let problems = validate_stream("shop", &s.spec);
        assert!(
            problems.iter().any(|p| p
                .message
                .contains("a worker without any (a source) cannot autoscale")),
            "{problems:?}"
        );
    }
}
