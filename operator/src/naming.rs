//! Names and labels of the Kubernetes objects the operator creates. Every
//! name is derived from the resource names, whose lengths the CRDs bound so
//! each result fits a 63-character DNS label (see `api::MAX_*`).

use std::collections::BTreeMap;

use crate::api::{App, Packaging};

/// The field manager of every server-side apply, and the `managed-by` label.
pub const MANAGER: &str = "eventflow-operator";
/// Finalizer that removes a Stream's broker topology.
pub const STREAM_FINALIZER: &str = "eventflow.dev/topology";

pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const LABEL_STREAM: &str = "eventflow.dev/stream";
pub const LABEL_APP: &str = "eventflow.dev/app";
pub const LABEL_ROLE: &str = "eventflow.dev/role";
/// On the pods of a Spring Cloud Stream app: `spring-cloud-stream`.
pub const LABEL_RUNTIME: &str = "eventflow.dev/runtime";
pub const LABEL_BROKER: &str = "eventflow.dev/broker";

/// A Deployment of a Stream: which app, which role it runs, its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    pub app: String,
    /// `web`, `worker` or `all`.
    pub role: &'static str,
    pub name: String,
}

/// The Deployments an app becomes: Separate packaging gives one per role,
/// Combined one running role `all`.
pub fn workloads(stream: &str, app: &App) -> Vec<Workload> {
    let w = |role: &'static str, name: String| Workload {
        app: app.name.clone(),
        role,
        name,
    };
    match app.packaging {
        Packaging::Combined => vec![w("all", format!("{stream}-{}", app.name))],
        Packaging::Separate => {
            let mut out = Vec::new();
            if app.web.is_some() {
                out.push(w("web", format!("{stream}-{}-web", app.name)));
            }
            if app.worker.is_some() {
                out.push(w("worker", format!("{stream}-{}-worker", app.name)));
            }
            out
        }
    }
}

/// The worker Deployment of an app (Separate packaging with a worker role).
pub fn worker_workload(stream: &str, app: &App) -> Option<Workload> {
    workloads(stream, app)
        .into_iter()
        .find(|w| w.role == "worker")
}

/// Service of an app's web role (`None` when the app has no web role).
pub fn web_service(stream: &str, app: &App) -> Option<String> {
    app.web.as_ref()?;
    Some(match app.packaging {
        Packaging::Combined => format!("{stream}-{}", app.name),
        Packaging::Separate => format!("{stream}-{}-web", app.name),
    })
}

/// Labels of every object of a Stream (the orphan sweep selects on them).
pub fn stream_labels(stream: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_MANAGED_BY.to_owned(), MANAGER.to_owned()),
        (LABEL_STREAM.to_owned(), stream.to_owned()),
    ])
}

/// Selector labels of one workload (immutable on a Deployment).
pub fn workload_selector(stream: &str, workload: &Workload) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_STREAM.to_owned(), stream.to_owned()),
        (LABEL_APP.to_owned(), workload.app.clone()),
        (LABEL_ROLE.to_owned(), workload.role.to_owned()),
    ])
}

/// Secret of an app's own broker user (`uri`, `username`, `password`,
/// `host`, `port`, `vhost`): as long as a worker Deployment's name.
pub fn app_broker_secret(stream: &str, app: &str) -> String {
    format!("{stream}-{app}-broker")
}

/// The broker user of an app: `eventflow.<namespace>.<stream>.<app>`.
/// Namespaces, Streams and apps are DNS labels (no dots), so the name is
/// unambiguous and [`broker_user_app`] reads the app back.
pub fn broker_user(namespace: &str, stream: &str, app: &str) -> String {
    format!("{}{app}", broker_user_prefix(namespace, stream))
}

/// What every broker user of one Stream starts with.
pub fn broker_user_prefix(namespace: &str, stream: &str) -> String {
    format!("eventflow.{namespace}.{stream}.")
}

/// The app of a broker user of the Stream with `prefix`; `None` for
/// another Stream's user (or anyone else).
pub fn broker_user_app<'a>(user: &'a str, prefix: &str) -> Option<&'a str> {
    user.strip_prefix(prefix)
        .filter(|app| !app.is_empty() && !app.contains('.'))
}

/// Objects of a managed broker.
pub struct BrokerNames {
    /// StatefulSet and client Service.
    pub name: String,
    /// Headless Service giving each node a stable DNS name.
    pub headless: String,
    pub credentials: String,
    pub erlang_cookie: String,
    pub config: String,
    /// The generated CA of a TLS broker (certificate and key).
    pub ca: String,
    /// The generated server certificate of a TLS broker.
    pub tls: String,
}

pub fn broker(name: &str) -> BrokerNames {
    BrokerNames {
        name: name.to_owned(),
        headless: format!("{name}-nodes"),
        credentials: format!("{name}-credentials"),
        erlang_cookie: format!("{name}-erlang-cookie"),
        config: format!("{name}-config"),
        ca: format!("{name}-ca"),
        tls: format!("{name}-tls"),
    }
}

pub fn broker_labels(broker: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_MANAGED_BY.to_owned(), MANAGER.to_owned()),
        (LABEL_BROKER.to_owned(), broker.to_owned()),
    ])
}

pub fn broker_selector(broker: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_BROKER.to_owned(), broker.to_owned()),
        ("app.kubernetes.io/name".to_owned(), "rabbitmq".to_owned()),
    ])
}
