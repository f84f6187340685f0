//! The broker's StatefulSet: the RabbitMQ container (credentials from the
//! generated Secret, long node names through the headless Service, TCP
//! probes), an init container that installs the Erlang cookie, and its
//! volumes — a PVC per pod with `spec.managed.storage`, else an emptyDir.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        apps::v1::{StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec},
        core::v1::{
            ConfigMapVolumeSource, Container, ContainerPort, EnvVar, EnvVarSource,
            ObjectFieldSelector, PersistentVolumeClaim, PersistentVolumeClaimSpec, Probe,
            SecretKeySelector, SecretVolumeSource, TCPSocketAction, Volume,
            VolumeResourceRequirements,
        },
    },
    apimachinery::pkg::{
        api::resource::Quantity,
        apis::meta::v1::{LabelSelector, ObjectMeta},
        util::intstr::IntOrString,
    },
};

use super::{
    DEFAULT_IMAGE, MANAGEMENT_PORT, Managed, PROMETHEUS_PORT, erlang,
    services::{DIST_PORT, EPMD_PORT},
    tls,
};
use crate::{
    build::{
        pod::{empty_dir, mount, pod_template},
        security::{RABBITMQ_UID, container_security},
    },
    naming,
};

const DATA_DIR: &str = "/var/lib/rabbitmq";

fn plain(var: &str, value: String) -> EnvVar {
    EnvVar {
        name: var.into(),
        value: Some(value),
        ..Default::default()
    }
}

fn secret_env(var: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: var.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.into(),
                key: key.into(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn tcp_probe(port: i32, period: i32, initial: i32) -> Probe {
    Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::Int(port),
            ..Default::default()
        }),
        period_seconds: Some(period),
        initial_delay_seconds: Some(initial),
        timeout_seconds: Some(5),
        failure_threshold: Some(6),
        ..Default::default()
    }
}

fn container_port(name: &str, port: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: port,
        ..Default::default()
    }
}

fn image(broker: &Managed<'_>) -> String {
    broker
        .spec
        .image
        .clone()
        .unwrap_or_else(|| DEFAULT_IMAGE.into())
}

/// The Erlang cookie must be a file only its owner can read, in HOME: copy
/// it from the Secret volume (a symlink owned by root) before RabbitMQ starts.
fn cookie_init_container(broker: &Managed<'_>) -> Container {
    Container {
        name: "erlang-cookie".into(),
        image: Some(image(broker)),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(vec![
            "sh".into(),
            "-c".into(),
            "cp /cookie/cookie /var/lib/rabbitmq/.erlang.cookie && chmod 600 /var/lib/rabbitmq/.erlang.cookie".into(),
        ]),
        security_context: Some(container_security(RABBITMQ_UID)),
        volume_mounts: Some(vec![mount("data", DATA_DIR), mount("cookie", "/cookie")]),
        ..Default::default()
    }
}

fn rabbitmq_container(broker: &Managed<'_>) -> Container {
    let names = &broker.names;
    let mut env = vec![
        secret_env("RABBITMQ_DEFAULT_USER", &names.credentials, "username"),
        secret_env("RABBITMQ_DEFAULT_PASS", &names.credentials, "password"),
        EnvVar {
            name: "MY_POD_NAME".into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "metadata.name".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
        plain("RABBITMQ_USE_LONGNAME", "true".into()),
        plain(
            "RABBITMQ_NODENAME",
            format!(
                "rabbit@$(MY_POD_NAME).{}.{}.svc.cluster.local",
                names.headless, broker.namespace
            ),
        ),
        plain("RABBITMQ_CONFIG_FILE", "/etc/rabbitmq/rabbitmq.conf".into()),
        plain(
            "RABBITMQ_ENABLED_PLUGINS_FILE",
            "/etc/rabbitmq/enabled_plugins".into(),
        ),
        plain("HOME", DATA_DIR.into()),
    ];
    if let Some(args) = erlang::args(broker.spec.resources.as_ref()) {
        env.push(plain(erlang::ARGS_VAR, args));
    }
    let (client_port, client_number) = broker.client_port();
    let mut mounts = vec![
        mount("data", DATA_DIR),
        mount("config", "/etc/rabbitmq"),
        mount("logs", "/var/log/rabbitmq"),
        mount("tmp", "/tmp"),
    ];
    if broker.tls() {
        mounts.push(mount("tls", tls::MOUNT_DIR));
    }
    Container {
        name: "rabbitmq".into(),
        image: Some(image(broker)),
        image_pull_policy: Some("IfNotPresent".into()),
        env: Some(env),
        ports: Some(vec![
            container_port(client_port, client_number),
            container_port("management", MANAGEMENT_PORT),
            container_port("prometheus", PROMETHEUS_PORT),
            container_port("epmd", EPMD_PORT),
            container_port("dist", DIST_PORT),
        ]),
        readiness_probe: Some(tcp_probe(client_number, 10, 10)),
        liveness_probe: Some(tcp_probe(client_number, 30, 60)),
        resources: broker.spec.resources.clone(),
        security_context: Some(container_security(RABBITMQ_UID)),
        volume_mounts: Some(mounts),
        ..Default::default()
    }
}

/// The pod's volumes, and the claim template of `data` when storage is
/// asked for (else `data` is an emptyDir).
fn volumes(
    broker: &Managed<'_>,
    labels: &BTreeMap<String, String>,
) -> (Vec<Volume>, Option<Vec<PersistentVolumeClaim>>) {
    let mut volumes = vec![
        Volume {
            name: "config".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: broker.names.config.clone(),
                ..Default::default()
            }),
            ..Default::default()
        },
        Volume {
            name: "cookie".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(broker.names.erlang_cookie.clone()),
                default_mode: Some(0o400),
                ..Default::default()
            }),
            ..Default::default()
        },
        empty_dir("logs"),
        empty_dir("tmp"),
    ];
    if let Some(secret) = broker.tls_secret() {
        // Group-readable: the pod's fsGroup is RabbitMQ's group.
        volumes.push(Volume {
            name: "tls".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret),
                default_mode: Some(0o440),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    let claims = match &broker.spec.storage {
        Some(storage) => Some(vec![PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some("data".into()),
                labels: Some(labels.clone()),
                ..Default::default()
            },
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec!["ReadWriteOnce".into()]),
                storage_class_name: storage.storage_class_name.clone(),
                resources: Some(VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([(
                        "storage".into(),
                        Quantity(storage.size.clone()),
                    )])),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }]),
        None => {
            volumes.push(empty_dir("data"));
            None
        }
    };
    (volumes, claims)
}

pub(super) fn stateful_set(broker: &Managed<'_>) -> StatefulSet {
    let selector = naming::broker_selector(broker.name);
    let mut labels = naming::broker_labels(broker.name);
    labels.extend(selector.clone());
    let (volumes, claims) = volumes(broker, &labels);
    let mut template = pod_template(
        labels,
        RABBITMQ_UID,
        vec![rabbitmq_container(broker)],
        volumes,
    );
    if let Some(pod) = template.spec.as_mut() {
        pod.init_containers = Some(vec![cookie_init_container(broker)]);
        pod.termination_grace_period_seconds = Some(60);
    }
    StatefulSet {
        metadata: broker.meta(&broker.names.name),
        spec: Some(StatefulSetSpec {
            replicas: Some(broker.spec.replicas.unwrap_or(1)),
            service_name: Some(broker.names.headless.clone()),
            // Cluster formation needs every node up at once.
            pod_management_policy: Some("Parallel".into()),
            selector: LabelSelector {
                match_labels: Some(selector),
                ..Default::default()
            },
            template,
            // The volumes go with the EventBroker (its Secret, which their
            // data needs, goes too); a scale-down keeps them.
            persistent_volume_claim_retention_policy: claims.as_ref().map(|_| {
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some("Delete".into()),
                    when_scaled: Some("Retain".into()),
                }
            }),
            volume_claim_templates: claims,
            ..Default::default()
        }),
        ..Default::default()
    }
}
