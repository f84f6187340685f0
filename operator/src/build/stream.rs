//! A Stream's desired Deployments and Services. Separate packaging gives
//! `<stream>-<app>-web` and `<stream>-<app>-worker`; Combined gives one
//! `<stream>-<app>` running role `all`. Web roles get a Service of the same
//! name as their Deployment.

use std::collections::BTreeMap;

use super::{
    pod::{empty_dir, mount, pod_template},
    security::{APP_UID, container_security},
    spring,
    wiring::{app_bindings, container_env, web_port},
};
use crate::{
    api::{App, Packaging, Stream},
    connection::BrokerWiring,
    naming::{self, Workload},
    users::Users,
    validate::ValidStream,
};
use eventflow_contract::{Bindings, QueueType, Topology, env};
use k8s_openapi::{
    api::{
        apps::v1::{Deployment, DeploymentSpec},
        core::v1::{
            Container, ContainerPort, HTTPGetAction, Probe, ResourceRequirements, Service,
            ServicePort, ServiceSpec,
        },
    },
    apimachinery::pkg::{
        apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference},
        util::intstr::IntOrString,
    },
};

/// Everything a Stream deploys, plus what its apps are wired to.
#[derive(Clone, Debug, Default)]
pub struct StreamObjects {
    pub deployments: Vec<Deployment>,
    pub services: Vec<Service>,
    /// The workloads in the order of `deployments`.
    pub workloads: Vec<Workload>,
    /// Bindings per app name.
    pub bindings: BTreeMap<String, Bindings>,
    /// Union of every app's topology: what the operator declares.
    pub topology: Topology,
}

fn metadata(
    name: &str,
    namespace: &str,
    labels: BTreeMap<String, String>,
    owner: &OwnerReference,
) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(namespace.to_owned()),
        labels: Some(labels),
        owner_references: Some(vec![owner.clone()]),
        ..Default::default()
    }
}

/// The Stream's topology and bindings only (used when deleting, and to find shared destinations).
pub fn stream_topology(stream: &Stream, namespace: &str, queue_type: QueueType) -> Topology {
    Topology::merge(
        stream
            .spec
            .apps
            .iter()
            .map(|a| Topology::of(&app_bindings(namespace, a, queue_type))),
    )
}

/// Pod template annotation: the uid of the Secret an app's broker
/// credentials come from, so a rotated password (a new Secret) rolls its pods.
pub const CREDENTIALS_ANNOTATION: &str = "eventflow.dev/broker-credentials";

/// Builds every object of a validated Stream, wired to `broker`, each app
/// with its own broker user when `users` has one for it.
pub fn build_stream(
    stream: &ValidStream<'_>,
    broker: &BrokerWiring,
    users: &Users,
) -> StreamObjects {
    let (name, namespace, owner) = (stream.name, stream.namespace, &stream.owner);
    let mut out = StreamObjects::default();
    for app in &stream.spec().apps {
        let bindings = app_bindings(namespace, app, broker.queue_type);
        let credentials = users.credentials(&app.name);
        let secret = credentials.map_or(&broker.secret, |c| &c.secret);
        for workload in naming::workloads(name, app) {
            let env = match &app.spring {
                Some(s) => spring::container_env(app, s, secret, &bindings, broker.tls),
                None => container_env(
                    stream.stream,
                    namespace,
                    app,
                    workload.role,
                    secret,
                    &bindings,
                ),
            };
            let mut d = deployment(name, namespace, app, &workload, env, owner);
            if let Some(c) = credentials {
                let template = d.spec.as_mut().and_then(|s| s.template.metadata.as_mut());
                if let Some(meta) = template {
                    meta.annotations = Some(BTreeMap::from([(
                        CREDENTIALS_ANNOTATION.to_owned(),
                        c.revision.clone(),
                    )]));
                }
            }
            out.deployments.push(d);
            if workload.role != "worker" && app.web.is_some() {
                out.services
                    .push(service(name, namespace, app, &workload, owner));
            }
            out.workloads.push(workload);
        }
        out.bindings.insert(app.name.clone(), bindings);
    }
    out.topology = Topology::merge(out.bindings.values().map(Topology::of));
    out
}

fn role_image(app: &App, role: &str) -> String {
    let per_role = match (app.packaging, role) {
        (Packaging::Separate, "web") => app.web.as_ref().and_then(|w| w.image.clone()),
        (Packaging::Separate, "worker") => app.worker.as_ref().and_then(|w| w.image.clone()),
        _ => None,
    };
    per_role.or_else(|| app.image.clone()).unwrap_or_default()
}

fn role_replicas(app: &App, role: &str) -> i32 {
    match role {
        "worker" => app.worker.as_ref().and_then(|w| w.replicas),
        _ => app.web.as_ref().and_then(|w| w.replicas),
    }
    .unwrap_or(1)
}

fn role_resources(app: &App, role: &str) -> Option<ResourceRequirements> {
    let per_role = match (app.packaging, role) {
        (Packaging::Separate, "web") => app.web.as_ref().and_then(|w| w.resources.clone()),
        (Packaging::Separate, "worker") => app.worker.as_ref().and_then(|w| w.resources.clone()),
        _ => None,
    };
    per_role.or_else(|| app.resources.clone())
}

fn admin_probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String("admin".into()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(2),
        ..Default::default()
    }
}

fn deployment(
    stream: &str,
    namespace: &str,
    app: &App,
    workload: &Workload,
    env: Vec<k8s_openapi::api::core::v1::EnvVar>,
    owner: &OwnerReference,
) -> Deployment {
    let selector = naming::workload_selector(stream, workload);
    let mut labels = naming::stream_labels(stream);
    labels.extend(selector.clone());
    labels.insert("app.kubernetes.io/name".into(), workload.app.clone());
    labels.insert(
        "app.kubernetes.io/component".into(),
        workload.role.to_owned(),
    );
    if app.spring.is_some() {
        labels.insert(naming::LABEL_RUNTIME.into(), "spring-cloud-stream".into());
    }
    let mut ports = vec![ContainerPort {
        name: Some("admin".into()),
        container_port: i32::from(env::DEFAULT_ADMIN_PORT),
        ..Default::default()
    }];
    if workload.role != "worker" && app.web.is_some() {
        ports.insert(
            0,
            ContainerPort {
                name: Some("http".into()),
                container_port: web_port(app),
                ..Default::default()
            },
        );
    }
    // A JVM on a small node may take a minute or two to start: five minutes.
    let (live, ready, startup) = match app.spring {
        Some(_) => (
            spring::LIVENESS_PATH,
            spring::READINESS_PATH,
            admin_probe(spring::LIVENESS_PATH, 3, 100),
        ),
        None => ("/livez", "/readyz", admin_probe("/livez", 2, 60)),
    };
    let container = Container {
        name: workload.app.clone(),
        image: Some(role_image(app, workload.role)),
        image_pull_policy: Some("IfNotPresent".into()),
        env: Some(env),
        env_from: (!app.env_from.is_empty()).then(|| app.env_from.clone()),
        ports: Some(ports),
        resources: role_resources(app, workload.role),
        liveness_probe: Some(admin_probe(live, 10, 3)),
        readiness_probe: Some(admin_probe(ready, 5, 3)),
        startup_probe: Some(startup),
        security_context: Some(container_security(APP_UID)),
        volume_mounts: Some(vec![
            mount("data", env::IMAGE_DATA_DIR),
            mount("tmp", "/tmp"),
        ]),
        ..Default::default()
    };
    Deployment {
        metadata: metadata(&workload.name, namespace, labels.clone(), owner),
        spec: Some(DeploymentSpec {
            replicas: Some(role_replicas(app, workload.role)),
            selector: LabelSelector {
                match_labels: Some(selector),
                ..Default::default()
            },
            template: pod_template(
                labels,
                APP_UID,
                vec![container],
                vec![empty_dir("data"), empty_dir("tmp")],
            ),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn service(
    stream: &str,
    namespace: &str,
    app: &App,
    workload: &Workload,
    owner: &OwnerReference,
) -> Service {
    let selector = naming::workload_selector(stream, workload);
    let mut labels = naming::stream_labels(stream);
    labels.extend(selector.clone());
    Service {
        metadata: metadata(&workload.name, namespace, labels, owner),
        spec: Some(ServiceSpec {
            selector: Some(selector),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: web_port(app),
                target_port: Some(IntOrString::String("http".into())),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}
