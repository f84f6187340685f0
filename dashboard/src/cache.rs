//! The dashboard's copy of the cluster: one reflector (list + watch) per
//! kind it shows — Streams, EventBrokers, AppRegistrations and Events — in
//! one namespace or in all. Every change bumps a generation that the page's
//! live updates follow. Read-only: nothing here writes.

use std::{fmt::Debug, hash::Hash};

use eventflow_operator::api::{AppRegistration, EventBroker, Stream};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Event;
use kube::{
    Api, Client, Resource,
    runtime::{
        WatchStreamExt,
        reflector::{self, Store},
        watcher,
    },
};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use crate::snapshot::Snapshot;

fn copy<K: Clone>(items: Vec<std::sync::Arc<K>>) -> Vec<K> {
    items.iter().map(|o| (**o).clone()).collect()
}

#[derive(Clone)]
pub struct Cache {
    streams: Store<Stream>,
    brokers: Store<EventBroker>,
    registrations: Store<AppRegistration>,
    events: Store<Event>,
    generation: watch::Receiver<u64>,
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Lists and watches `api` into a store for as long as the process runs,
/// bumping `generation` on every change.
fn reflect<K>(api: Api<K>, generation: watch::Sender<u64>) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone,
{
    let (reader, writer) = reflector::store();
    let kind = K::kind(&K::DynamicType::default()).into_owned();
    let events = reflector::reflector(
        writer,
        watcher(api, watcher::Config::default()).default_backoff(),
    );
    tokio::spawn(async move {
        futures::pin_mut!(events);
        while let Some(event) = events.next().await {
            match event {
                Ok(_) => generation.send_modify(|g| *g += 1),
                Err(e) => tracing::warn!(kind, error = %e, "watch failed; retrying"),
            }
        }
    });
    reader
}

impl Cache {
    /// Starts the reflectors; `namespace` limits them to one namespace.
    pub fn start(client: &Client, namespace: Option<&str>) -> Self {
        let (tx, generation) = watch::channel(0);
        Cache {
            streams: reflect(api(client, namespace), tx.clone()),
            brokers: reflect(api(client, namespace), tx.clone()),
            registrations: reflect(api(client, namespace), tx.clone()),
            events: reflect(api(client, namespace), tx),
            generation,
        }
    }

    /// Whether every reflector has listed once.
    pub async fn ready(&self) -> bool {
        self.streams.wait_until_ready().await.is_ok()
            && self.brokers.wait_until_ready().await.is_ok()
            && self.registrations.wait_until_ready().await.is_ok()
            && self.events.wait_until_ready().await.is_ok()
    }

    pub fn is_ready(&self) -> bool {
        futures::FutureExt::now_or_never(self.ready()).unwrap_or(false)
    }

    /// Follows the generation: changes whenever a watched object does.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.generation.clone()
    }

    pub fn snapshot(&self) -> Snapshot {
        let registrations: Vec<AppRegistration> = copy(self.registrations.state());
        Snapshot::new(
            copy(self.streams.state()),
            copy(self.brokers.state()),
            &registrations,
            copy(self.events.state()),
        )
    }
}
