//! The wiring contract of DESIGN.md as environment variables: what every
//! app container is told about itself, its broker, its bindings and its
//! peers. Names come from the contract crate, never spelled here.

use eventflow_contract::{
    Bindings, Publication, QueueType, Subscription, bindings::SubscriptionRequest, defaults, env,
};
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, SecretKeySelector};

use crate::{
    api::{App, Stream},
    connection::BrokerSecret,
    naming,
};

/// The bindings document of one app, names resolved under `namespace`. A
/// Spring Cloud Stream app publishes through its output bindings and retries
/// in process; its subscriptions keep their order (the env builder pairs
/// them with their input bindings).
pub fn app_bindings(namespace: &str, app: &App, queue_type: QueueType) -> Bindings {
    let outputs = app.spring.iter().flat_map(|s| &s.outputs);
    Bindings {
        publishes: app
            .publishes
            .iter()
            .chain(outputs.map(|o| &o.destination))
            .map(|d| Publication::new(namespace, d))
            .collect(),
        subscribes: app
            .subscribes
            .iter()
            .map(|s| {
                let group = s.group.as_deref().unwrap_or(&app.name);
                let request = SubscriptionRequest {
                    destination: &s.destination,
                    group,
                    routing_keys: s.event_types.clone(),
                    max_attempts: s.max_attempts.unwrap_or(defaults::MAX_ATTEMPTS),
                    backoff_ms: s.backoff_ms.unwrap_or(defaults::BACKOFF_MS),
                };
                let subscription = Subscription::new(namespace, &request, queue_type);
                if app.spring.is_some() {
                    subscription.retried_in_process()
                } else {
                    subscription
                }
            })
            .collect(),
    }
}

/// Web port of an app (default 8080).
pub fn web_port(app: &App) -> i32 {
    app.web
        .as_ref()
        .and_then(|w| w.port)
        .unwrap_or(i32::from(env::DEFAULT_HTTP_PORT))
}

/// In-cluster URL of an app's web role.
pub fn web_url(stream: &str, namespace: &str, app: &App) -> Option<String> {
    let service = naming::web_service(stream, app)?;
    Some(format!(
        "http://{service}.{namespace}.svc:{}",
        web_port(app)
    ))
}

fn plain(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.into()),
        ..Default::default()
    }
}

/// The full environment of one container of `app` running `role`.
pub fn container_env(
    stream: &Stream,
    namespace: &str,
    app: &App,
    role: &str,
    broker: &BrokerSecret,
    bindings: &Bindings,
) -> Vec<EnvVar> {
    let name = stream.metadata.name.as_deref().unwrap_or_default();
    let mut vars = vec![
        plain(env::ROLE, role),
        plain(env::APP, &app.name),
        plain(env::STREAM, name),
        EnvVar {
            name: env::POD_NAMESPACE.to_owned(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "metadata.namespace".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
        EnvVar {
            name: env::BROKER_URI.to_owned(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: broker.name.clone(),
                    key: broker.key.clone(),
                    optional: Some(false),
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
        // The CA an `amqps` broker is verified with, when its Secret has one.
        EnvVar {
            name: env::BROKER_CA.to_owned(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: broker.name.clone(),
                    key: env::BROKER_CA_KEY.to_owned(),
                    optional: Some(true),
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
        plain(env::BINDINGS, bindings.to_json()),
        plain(env::HTTP_ADDR, format!("0.0.0.0:{}", web_port(app))),
        plain(env::ADMIN_ADDR, env::DEFAULT_ADMIN_ADDR),
        plain(env::DATA_DIR, env::IMAGE_DATA_DIR),
    ];
    if let Some(url) = web_url(name, namespace, app) {
        vars.push(plain(env::SELF_URL, url));
    }
    for peer in &stream.spec.apps {
        if let Some(url) = web_url(name, namespace, peer) {
            vars.push(plain(&env::peer_url_var(&peer.name), url));
        }
    }
    if let Some(worker) = app.worker.as_ref().filter(|_| role != "web") {
        vars.push(plain(
            env::PREFETCH,
            worker
                .prefetch
                .unwrap_or(i32::from(defaults::PREFETCH))
                .to_string(),
        ));
        vars.push(plain(
            env::CONCURRENCY,
            worker
                .concurrency
                .unwrap_or(i32::from(defaults::CONCURRENCY))
                .to_string(),
        ));
    }
    vars.extend(app.env.iter().cloned());
    vars
}
