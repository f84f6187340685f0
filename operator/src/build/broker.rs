//! A managed EventBroker's desired objects: a RabbitMQ StatefulSet (1 node,
//! or 3 clustered through classic peer discovery over the headless Service,
//! with quorum queues), its client and headless Services and a ConfigMap
//! with `rabbitmq.conf` and `enabled_plugins`. Only settings that RabbitMQ
//! 3.10 and 4.x both understand are used. The credential and Erlang cookie
//! Secrets are generated once (see [`secret_data`]) and never rewritten.

use std::collections::BTreeMap;

use eventflow_contract::QueueType;
use k8s_openapi::{
    api::{
        apps::v1::{StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec},
        core::v1::{
            ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
            EnvVar, EnvVarSource, ObjectFieldSelector, PersistentVolumeClaim,
            PersistentVolumeClaimSpec, PodSpec, PodTemplateSpec, Probe, SecretKeySelector,
            SecretVolumeSource, Service, ServicePort, ServiceSpec, TCPSocketAction, Volume,
            VolumeMount, VolumeResourceRequirements,
        },
    },
    apimachinery::pkg::{
        api::resource::Quantity,
        apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference},
        util::intstr::IntOrString,
    },
};
use kube::Resource;

use super::{
    security::{RABBITMQ_UID, container_security, pod_security},
    wiring::BrokerSecret,
};
use crate::{api::EventBroker, naming};

/// Official image, used unless `spec.managed.image` says otherwise.
pub const DEFAULT_IMAGE: &str = "rabbitmq:4.1-management";
pub const AMQP_PORT: i32 = 5672;
pub const MANAGEMENT_PORT: i32 = 15672;
pub const PROMETHEUS_PORT: i32 = 15692;
/// The user the operator creates on a managed broker.
pub const USERNAME: &str = "eventflow";
/// Key of the AMQP URI in a credentials Secret (and the default for external ones).
pub const URI_KEY: &str = "uri";
const COOKIE_KEY: &str = "cookie";

/// How Streams reach a broker: the Secret with its URI and the queue type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerWiring {
    pub secret: BrokerSecret,
    pub queue_type: QueueType,
    /// `host:port` for status (no credentials).
    pub endpoint: Option<String>,
    pub mode: &'static str,
}

/// The wiring of any EventBroker, managed or external, from its spec alone.
pub fn broker_wiring(broker: &EventBroker) -> BrokerWiring {
    let name = broker.metadata.name.as_deref().unwrap_or_default();
    let namespace = broker.metadata.namespace.as_deref().unwrap_or_default();
    match (&broker.spec.managed, &broker.spec.external) {
        (Some(managed), _) => BrokerWiring {
            secret: BrokerSecret {
                name: naming::broker(name).credentials,
                key: URI_KEY.into(),
            },
            queue_type: if managed.replicas.unwrap_or(1) >= 3 {
                QueueType::Quorum
            } else {
                QueueType::Classic
            },
            endpoint: Some(format!("{name}.{namespace}.svc:{AMQP_PORT}")),
            mode: "managed",
        },
        (None, external) => {
            let secret = external.as_ref().map(|e| &e.connection_secret);
            BrokerWiring {
                secret: BrokerSecret {
                    name: secret.map(|s| s.name.clone()).unwrap_or_default(),
                    key: secret
                        .and_then(|s| s.key.clone())
                        .unwrap_or_else(|| URI_KEY.into()),
                },
                queue_type: QueueType::Classic,
                endpoint: None,
                mode: "external",
            }
        }
    }
}

/// Everything a managed broker runs on, except its generated Secrets.
#[derive(Clone, Debug)]
pub struct BrokerObjects {
    pub config: ConfigMap,
    pub client_service: Service,
    pub headless_service: Service,
    pub stateful_set: StatefulSet,
}

/// The string data of a managed broker's credentials Secret, from a fresh password.
pub fn credentials_data(broker: &EventBroker, password: &str) -> BTreeMap<String, String> {
    let name = broker.metadata.name.as_deref().unwrap_or_default();
    let namespace = broker.metadata.namespace.as_deref().unwrap_or_default();
    let host = format!("{name}.{namespace}.svc");
    BTreeMap::from([
        ("username".into(), USERNAME.into()),
        ("password".into(), password.into()),
        ("host".into(), host.clone()),
        ("port".into(), AMQP_PORT.to_string()),
        (
            URI_KEY.into(),
            format!("amqp://{USERNAME}:{password}@{host}:{AMQP_PORT}/%2f"),
        ),
    ])
}

/// The string data of the Erlang cookie Secret.
pub fn cookie_data(cookie: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(COOKIE_KEY.into(), cookie.into())])
}

fn meta(name: &str, namespace: &str, broker: &str, owner: &OwnerReference) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(namespace.to_owned()),
        labels: Some(naming::broker_labels(broker)),
        owner_references: Some(vec![owner.clone()]),
        ..Default::default()
    }
}

/// Metadata of a generated Secret of the broker (credentials or cookie).
pub fn secret_meta(broker: &EventBroker, secret: &str) -> Option<ObjectMeta> {
    let owner = broker.controller_owner_ref(&())?;
    Some(meta(
        secret,
        broker.metadata.namespace.as_deref()?,
        broker.metadata.name.as_deref()?,
        &owner,
    ))
}

fn node_fqdn(names: &naming::BrokerNames, namespace: &str, ordinal: i32) -> String {
    format!(
        "{}-{ordinal}.{}.{namespace}.svc.cluster.local",
        names.name, names.headless
    )
}

/// `rabbitmq.conf` of a managed broker.
pub fn rabbitmq_conf(broker: &str, namespace: &str, replicas: i32) -> String {
    let names = naming::broker(broker);
    let mut conf = String::from(
        "# Generated by the eventflow operator.\n\
         listeners.tcp.default = 5672\n\
         management.tcp.port = 15672\n\
         prometheus.tcp.port = 15692\n\
         loopback_users.guest = false\n\
         log.console = true\n\
         log.console.level = info\n\
         log.file = false\n",
    );
    if replicas > 1 {
        conf.push_str(
            "cluster_formation.peer_discovery_backend = rabbit_peer_discovery_classic_config\n",
        );
        for i in 0..replicas {
            conf.push_str(&format!(
                "cluster_formation.classic_config.nodes.{} = rabbit@{}\n",
                i + 1,
                node_fqdn(&names, namespace, i)
            ));
        }
        conf.push_str("cluster_partition_handling = pause_minority\n");
    }
    conf
}

/// The desired objects of a managed broker (`None` unless managed and stored).
pub fn build_broker(broker: &EventBroker) -> Option<BrokerObjects> {
    let managed = broker.spec.managed.as_ref()?;
    let owner = broker.controller_owner_ref(&())?;
    let name = broker.metadata.name.as_deref()?;
    let namespace = broker.metadata.namespace.as_deref()?;
    let names = naming::broker(name);
    let replicas = managed.replicas.unwrap_or(1);
    let selector = naming::broker_selector(name);
    let mut labels = naming::broker_labels(name);
    labels.extend(selector.clone());

    let config = ConfigMap {
        metadata: meta(&names.config, namespace, name, &owner),
        data: Some(BTreeMap::from([
            (
                "rabbitmq.conf".into(),
                rabbitmq_conf(name, namespace, replicas),
            ),
            (
                "enabled_plugins".into(),
                "[rabbitmq_management,rabbitmq_prometheus].\n".into(),
            ),
        ])),
        ..Default::default()
    };
    let port = |n: &str, p: i32| ServicePort {
        name: Some(n.into()),
        port: p,
        target_port: Some(IntOrString::Int(p)),
        ..Default::default()
    };
    let client_service = Service {
        metadata: meta(&names.name, namespace, name, &owner),
        spec: Some(ServiceSpec {
            selector: Some(selector.clone()),
            ports: Some(vec![
                port("amqp", AMQP_PORT),
                port("management", MANAGEMENT_PORT),
                port("prometheus", PROMETHEUS_PORT),
            ]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let headless_service = Service {
        metadata: meta(&names.headless, namespace, name, &owner),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(selector.clone()),
            ports: Some(vec![
                port("epmd", 4369),
                port("amqp", AMQP_PORT),
                port("dist", 25672),
            ]),
            ..Default::default()
        }),
        ..Default::default()
    };

    let secret_env = |var: &str, secret: &str, key: &str| EnvVar {
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
    };
    let plain = |var: &str, value: String| EnvVar {
        name: var.into(),
        value: Some(value),
        ..Default::default()
    };
    let mount = |volume: &str, path: &str| VolumeMount {
        name: volume.into(),
        mount_path: path.into(),
        ..Default::default()
    };
    let image = managed
        .image
        .clone()
        .unwrap_or_else(|| DEFAULT_IMAGE.into());
    let tcp_probe = |period: i32, initial: i32| Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::Int(AMQP_PORT),
            ..Default::default()
        }),
        period_seconds: Some(period),
        initial_delay_seconds: Some(initial),
        timeout_seconds: Some(5),
        failure_threshold: Some(6),
        ..Default::default()
    };
    // The Erlang cookie must be a file only its owner can read, in HOME:
    // copy it from the Secret volume (a symlink owned by root) in an init container.
    let init = Container {
        name: "erlang-cookie".into(),
        image: Some(image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(vec![
            "sh".into(),
            "-c".into(),
            "cp /cookie/cookie /var/lib/rabbitmq/.erlang.cookie && chmod 600 /var/lib/rabbitmq/.erlang.cookie".into(),
        ]),
        security_context: Some(container_security(RABBITMQ_UID)),
        volume_mounts: Some(vec![mount("data", "/var/lib/rabbitmq"), mount("cookie", "/cookie")]),
        ..Default::default()
    };
    let container = Container {
        name: "rabbitmq".into(),
        image: Some(image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        env: Some(vec![
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
                    "rabbit@$(MY_POD_NAME).{}.{namespace}.svc.cluster.local",
                    names.headless
                ),
            ),
            plain("RABBITMQ_CONFIG_FILE", "/etc/rabbitmq/rabbitmq.conf".into()),
            plain(
                "RABBITMQ_ENABLED_PLUGINS_FILE",
                "/etc/rabbitmq/enabled_plugins".into(),
            ),
            plain("HOME", "/var/lib/rabbitmq".into()),
        ]),
        ports: Some(vec![
            ContainerPort {
                name: Some("amqp".into()),
                container_port: AMQP_PORT,
                ..Default::default()
            },
            ContainerPort {
                name: Some("management".into()),
                container_port: MANAGEMENT_PORT,
                ..Default::default()
            },
            ContainerPort {
                name: Some("prometheus".into()),
                container_port: PROMETHEUS_PORT,
                ..Default::default()
            },
            ContainerPort {
                name: Some("epmd".into()),
                container_port: 4369,
                ..Default::default()
            },
            ContainerPort {
                name: Some("dist".into()),
                container_port: 25672,
                ..Default::default()
            },
        ]),
        readiness_probe: Some(tcp_probe(10, 10)),
        liveness_probe: Some(tcp_probe(30, 60)),
        resources: managed.resources.clone(),
        security_context: Some(container_security(RABBITMQ_UID)),
        volume_mounts: Some(vec![
            mount("data", "/var/lib/rabbitmq"),
            mount("config", "/etc/rabbitmq"),
            mount("logs", "/var/log/rabbitmq"),
            mount("tmp", "/tmp"),
        ]),
        ..Default::default()
    };
    let empty = |n: &str| Volume {
        name: n.into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    };
    let mut volumes = vec![
        Volume {
            name: "config".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: names.config.clone(),
                ..Default::default()
            }),
            ..Default::default()
        },
        Volume {
            name: "cookie".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(names.erlang_cookie.clone()),
                default_mode: Some(0o400),
                ..Default::default()
            }),
            ..Default::default()
        },
        empty("logs"),
        empty("tmp"),
    ];
    let claims = match &managed.storage {
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
            volumes.push(empty("data"));
            None
        }
    };
    let stateful_set = StatefulSet {
        metadata: meta(&names.name, namespace, name, &owner),
        spec: Some(StatefulSetSpec {
            replicas: Some(replicas),
            service_name: Some(names.headless.clone()),
            // Cluster formation needs every node up at once.
            pod_management_policy: Some("Parallel".into()),
            selector: LabelSelector {
                match_labels: Some(selector),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    init_containers: Some(vec![init]),
                    containers: vec![container],
                    security_context: Some(pod_security(RABBITMQ_UID)),
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    termination_grace_period_seconds: Some(60),
                    volumes: Some(volumes),
                    ..Default::default()
                }),
            },
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
    };
    Some(BrokerObjects {
        config,
        client_service,
        headless_service,
        stateful_set,
    })
}
