//! How a Spring Cloud Stream app (RabbitMQ binder) is configured, the way
//! Data Flow's deployer did it, so a jar built for Data Flow runs unchanged:
//! the broker from the EventBroker's Secret as `SPRING_RABBITMQ_*` variables
//! (secretKeyRef, never a literal) and every other property in one
//! `SPRING_APPLICATION_JSON` variable, which outranks the jar's own
//! `application.properties` and the environment. README, "Spring Cloud
//! Stream apps", lists each property; [`operator_properties`] is that list.
//!
//! The topology stays the operator's: each binding is told not to declare
//! the exchange, the group queue, its binding or a dead-letter queue
//! (`declareExchange=false`, `bindQueue=false`, `autoBindDlq=false`). The
//! binder retries in process (`maxAttempts`, `backOff*`), then rejects the
//! message without requeueing, and the group queue dead-letters it into the
//! group's DLQ through the DLX the operator declared.

use std::collections::BTreeMap;

use eventflow_contract::{Bindings, defaults, env};
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, SecretKeySelector};

use crate::{
    api::{App, SpringApp},
    connection::BrokerSecret,
};

/// The variable holding every Spring property the operator sets.
pub const APPLICATION_JSON: &str = "SPRING_APPLICATION_JSON";

/// Variables filled from the broker's Secret: (variable, key, optional).
/// The keys are those of a managed broker's credentials Secret (and of the
/// RabbitMQ cluster operator's default-user Secret); `vhost` may be absent.
pub const BROKER_VARS: [(&str, &str, bool); 5] = [
    ("SPRING_RABBITMQ_HOST", "host", false),
    ("SPRING_RABBITMQ_PORT", "port", false),
    ("SPRING_RABBITMQ_USERNAME", "username", false),
    ("SPRING_RABBITMQ_PASSWORD", "password", false),
    ("SPRING_RABBITMQ_VIRTUAL_HOST", "vhost", true),
];

/// The SSL bundle a Spring app verifies a TLS broker with: its name, and the
/// variables that turn SSL on and fill the bundle's trust store from the
/// Secret's CA (Spring Boot reads PEM content as well as a location).
pub const TLS_BUNDLE: &str = "eventflowbroker";
pub const TLS_VARS: [&str; 3] = [
    "SPRING_RABBITMQ_SSL_ENABLED",
    "SPRING_RABBITMQ_SSL_BUNDLE",
    "SPRING_SSL_BUNDLE_PEM_EVENTFLOWBROKER_TRUSTSTORE_CERTIFICATE",
];

/// Actuator paths of the probes, on the admin port.
pub const LIVENESS_PATH: &str = "/actuator/health/liveness";
pub const READINESS_PATH: &str = "/actuator/health/readiness";

/// The properties the operator sets on a Spring app, without the user's.
/// `bindings` is [`crate::build::wiring::app_bindings`] of the same app:
/// its subscriptions are in the order of `app.subscribes`, its
/// publications end with the app's outputs.
pub fn operator_properties(
    app: &App,
    spring: &SpringApp,
    bindings: &Bindings,
) -> BTreeMap<String, String> {
    let mut props = BTreeMap::new();
    let mut set = |key: String, value: String| {
        props.insert(key, value);
    };
    set(
        "management.server.port".into(),
        env::DEFAULT_ADMIN_PORT.to_string(),
    );
    set(
        "management.endpoint.health.probes.enabled".into(),
        "true".into(),
    );
    // Ready only while the broker answers; an app without the rabbit
    // indicator still starts (membership is not validated).
    set(
        "management.endpoint.health.group.readiness.include".into(),
        "readinessState,rabbit".into(),
    );
    set(
        "management.endpoint.health.validate-group-membership".into(),
        "false".into(),
    );
    if let Some(definition) = &spring.function_definition {
        set(
            "spring.cloud.function.definition".into(),
            definition.clone(),
        );
    }
    for output in &spring.outputs {
        let b = output.binding();
        let exchange = bindings
            .exchange_for(&output.destination)
            .unwrap_or_default();
        set(binding_key(b, "destination"), exchange.to_owned());
        set(rabbit_key(b, "producer.declareExchange"), "false".into());
    }
    let worker = app.worker.as_ref();
    let prefetch = worker
        .and_then(|w| w.prefetch)
        .unwrap_or(i32::from(defaults::PREFETCH));
    let concurrency = worker
        .and_then(|w| w.concurrency)
        .unwrap_or(i32::from(defaults::CONCURRENCY));
    for (sub, wired) in app.subscribes.iter().zip(&bindings.subscribes) {
        let b = sub.binding();
        set(binding_key(b, "destination"), wired.exchange.clone());
        set(binding_key(b, "group"), wired.group.clone());
        set(
            binding_key(b, "consumer.maxAttempts"),
            wired.max_attempts.to_string(),
        );
        // A constant backoff, as the retry queue of eventflow apps gives.
        let backoff = wired.backoff_ms.max(1).to_string();
        set(
            binding_key(b, "consumer.backOffInitialInterval"),
            backoff.clone(),
        );
        set(binding_key(b, "consumer.backOffMaxInterval"), backoff);
        set(binding_key(b, "consumer.backOffMultiplier"), "1.0".into());
        set(
            binding_key(b, "consumer.concurrency"),
            concurrency.to_string(),
        );
        set(rabbit_key(b, "consumer.prefetch"), prefetch.to_string());
        set(rabbit_key(b, "consumer.declareExchange"), "false".into());
        set(rabbit_key(b, "consumer.bindQueue"), "false".into());
        set(rabbit_key(b, "consumer.autoBindDlq"), "false".into());
        set(rabbit_key(b, "consumer.republishToDlq"), "false".into());
        set(rabbit_key(b, "consumer.requeueRejected"), "false".into());
        set(
            rabbit_key(b, "consumer.deadLetterExchange"),
            wired.dead_letter_exchange.clone(),
        );
    }
    props
}

fn binding_key(binding: &str, property: &str) -> String {
    format!("spring.cloud.stream.bindings.{binding}.{property}")
}

fn rabbit_key(binding: &str, property: &str) -> String {
    format!("spring.cloud.stream.rabbit.bindings.{binding}.{property}")
}

/// Every property of the app: the user's `spring.properties`, then the
/// operator's (validation refuses a user property the operator sets).
pub fn properties(app: &App, spring: &SpringApp, bindings: &Bindings) -> BTreeMap<String, String> {
    let mut props = spring.properties.clone();
    props.extend(operator_properties(app, spring, bindings));
    props
}

/// Whether a user property would fight the operator: one it sets, or any
/// broker connection property (credentials come only from the Secret).
pub fn reserved_property(key: &str, operator: &BTreeMap<String, String>) -> bool {
    operator.contains_key(key) || key.starts_with("spring.rabbitmq.")
}

/// Whether an environment variable of the app would shadow the operator's.
pub fn reserved_var(name: &str) -> bool {
    name == APPLICATION_JSON
        || BROKER_VARS.iter().any(|(var, _, _)| *var == name)
        || TLS_VARS.contains(&name)
}

/// The full environment of a Spring app's container; with `tls` it
/// connects with SSL, verifying the broker with the Secret's CA.
pub fn container_env(
    app: &App,
    spring: &SpringApp,
    broker: &BrokerSecret,
    bindings: &Bindings,
    tls: bool,
) -> Vec<EnvVar> {
    let mut vars: Vec<EnvVar> = BROKER_VARS
        .iter()
        .map(|(var, key, optional)| EnvVar {
            name: (*var).to_owned(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: broker.name.clone(),
                    key: (*key).to_owned(),
                    optional: Some(*optional),
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect();
    if tls {
        let [enabled, bundle, trust] = TLS_VARS;
        let plain = |name: &str, value: &str| EnvVar {
            name: name.to_owned(),
            value: Some(value.to_owned()),
            ..Default::default()
        };
        vars.push(plain(enabled, "true"));
        vars.push(plain(bundle, TLS_BUNDLE));
        vars.push(EnvVar {
            name: trust.to_owned(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: broker.name.clone(),
                    key: env::BROKER_CA_KEY.to_owned(),
                    optional: Some(false),
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    vars.push(EnvVar {
        name: APPLICATION_JSON.to_owned(),
        // A map of strings always serializes.
        value: Some(serde_json::to_string(&properties(app, spring, bindings)).unwrap_or_default()),
        ..Default::default()
    });
    vars.extend(app.env.iter().cloned());
    vars
}

#[cfg(test)]
mod tests {
    use eventflow_contract::QueueType;

    use super::*;
    use crate::{api::Stream, build::wiring::app_bindings};

    fn app(yaml: &str) -> App {
        let s: Stream = serde_yaml::from_str(&format!(
            "apiVersion: eventflow.dev/v1alpha1\nkind: Stream\nmetadata: {{name: s, namespace: ns}}\nspec:\n  broker: rabbit\n  apps:\n{yaml}"
        ))
        .unwrap();
        s.spec.apps[0].clone()
    }

    const PROCESSOR: &str = r#"
  - name: transform
    image: eventflow/spring-transform-processor:dev
    worker: {prefetch: 5}
    spring:
      functionDefinition: uppercase
      outputs: [{binding: uppercase-out-0, destination: upper}]
      properties: {transform.mode: loud}
    subscribes:
    - {destination: ticks, binding: uppercase-in-0, maxAttempts: 3, backoffMs: 250}
"#;

    #[test]
    fn a_processor_gets_its_bindings_retry_and_dead_lettering_as_properties() {
        let app = app(PROCESSOR);
        let spring = app.spring.clone().unwrap();
        let bindings = app_bindings("ns", &app, QueueType::Classic);
        let p = properties(&app, &spring, &bindings);
        let get = |k: &str| p.get(k).map(String::as_str);
        let input = "spring.cloud.stream.bindings.uppercase-in-0";
        let rabbit_in = "spring.cloud.stream.rabbit.bindings.uppercase-in-0.consumer";
        assert_eq!(get(&format!("{input}.destination")), Some("ns.ticks"));
        assert_eq!(get(&format!("{input}.group")), Some("transform"));
        assert_eq!(get(&format!("{input}.consumer.maxAttempts")), Some("3"));
        assert_eq!(
            get(&format!("{input}.consumer.backOffInitialInterval")),
            Some("250")
        );
        assert_eq!(get(&format!("{rabbit_in}.prefetch")), Some("5"));
        assert_eq!(get(&format!("{rabbit_in}.bindQueue")), Some("false"));
        assert_eq!(
            get(&format!("{rabbit_in}.deadLetterExchange")),
            Some("ns.ticks.transform.dlx")
        );
        assert_eq!(
            get("spring.cloud.stream.bindings.uppercase-out-0.destination"),
            Some("ns.upper")
        );
        assert_eq!(get("spring.cloud.function.definition"), Some("uppercase"));
        assert_eq!(get("management.server.port"), Some("9090"));
        assert_eq!(get("transform.mode"), Some("loud"));
        // The binder retries in process: no retry queue is wired.
        assert!(bindings.subscribes[0].redelivery == eventflow_contract::Redelivery::InProcess);
    }

    #[test]
    fn on_a_tls_broker_ssl_is_on_and_the_bundle_trusts_the_secrets_ca() {
        let app = app(PROCESSOR);
        let spring = app.spring.clone().unwrap();
        let bindings = app_bindings("ns", &app, QueueType::Classic);
        let secret = BrokerSecret {
            name: "s-transform-broker".into(),
            key: "uri".into(),
        };
        let vars = container_env(&app, &spring, &secret, &bindings, true);
        let var = |name: &str| vars.iter().find(|v| v.name == name).unwrap();
        assert_eq!(
            var("SPRING_RABBITMQ_SSL_ENABLED").value.as_deref(),
            Some("true")
        );
        // The bundle's name, as Spring binds the variable's map key.
        assert_eq!(
            var("SPRING_RABBITMQ_SSL_BUNDLE").value.as_deref(),
            Some("eventflowbroker")
        );
        let ca = var("SPRING_SSL_BUNDLE_PEM_EVENTFLOWBROKER_TRUSTSTORE_CERTIFICATE")
            .value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap();
        assert_eq!(
            (ca.name.as_str(), ca.key.as_str()),
            ("s-transform-broker", "ca.crt")
        );
        assert!(reserved_var("SPRING_RABBITMQ_SSL_ENABLED"));
    }

    #[test]
    fn credentials_come_from_the_secret_and_never_as_literals() {
        let app = app(PROCESSOR);
        let spring = app.spring.clone().unwrap();
        let bindings = app_bindings("ns", &app, QueueType::Classic);
        let secret = BrokerSecret {
            name: "rabbit-credentials".into(),
            key: "uri".into(),
        };
        let vars = container_env(&app, &spring, &secret, &bindings, false);
        let names: Vec<_> = vars.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "SPRING_RABBITMQ_HOST",
                "SPRING_RABBITMQ_PORT",
                "SPRING_RABBITMQ_USERNAME",
                "SPRING_RABBITMQ_PASSWORD",
                "SPRING_RABBITMQ_VIRTUAL_HOST",
                "SPRING_APPLICATION_JSON"
            ]
        );
        for v in &vars[..5] {
            let r = v
                .value_from
                .as_ref()
                .unwrap()
                .secret_key_ref
                .as_ref()
                .unwrap();
            assert_eq!(r.name, "rabbit-credentials");
            assert!(v.value.is_none());
        }
        let json: serde_json::Value =
            serde_json::from_str(vars[5].value.as_deref().unwrap()).unwrap();
        assert!(!json.to_string().contains("password"), "{json}");
    }

    #[test]
    fn the_operators_properties_and_the_broker_connection_are_reserved() {
        let app = app(PROCESSOR);
        let spring = app.spring.clone().unwrap();
        let ours =
            operator_properties(&app, &spring, &app_bindings("ns", &app, QueueType::Classic));
        assert!(reserved_property(
            "spring.cloud.stream.bindings.uppercase-in-0.group",
            &ours
        ));
        assert!(reserved_property("spring.rabbitmq.host", &ours));
        assert!(!reserved_property("transform.mode", &ours));
        assert!(reserved_var("SPRING_APPLICATION_JSON"));
        assert!(reserved_var("SPRING_RABBITMQ_PASSWORD"));
        assert!(!reserved_var("JAVA_TOOL_OPTIONS"));
    }
}
