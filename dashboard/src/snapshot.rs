//! What the API answers, from one consistent copy of the cached objects:
//! the front page ([`Overview`]) and one Stream in detail ([`StreamDetail`]).

use std::collections::BTreeMap;

use eventflow_operator::{
    api::{AppRegistration, EventBroker, Stream},
    dataflow,
};
use k8s_openapi::api::core::v1::Event;
use serde::Serialize;

use crate::{
    apps,
    graph::{self, StreamGraph},
    overview::{self, BrokerRow, EventRow, StreamRow},
};

/// Kubernetes Events shown on the front page.
pub const RECENT_EVENTS: usize = 50;

/// The cached objects, Streams as the operator sees them (definitions
/// expanded with their namespace's AppRegistrations; one that does not
/// expand keeps no apps, and its status says why).
pub struct Snapshot {
    pub streams: Vec<Stream>,
    pub brokers: Vec<EventBroker>,
    pub events: Vec<Event>,
}

impl Snapshot {
    pub fn new(
        streams: Vec<Stream>,
        brokers: Vec<EventBroker>,
        registrations: &[AppRegistration],
        events: Vec<Event>,
    ) -> Self {
        let mut by_namespace: BTreeMap<&str, Vec<&AppRegistration>> = BTreeMap::new();
        for r in registrations {
            by_namespace
                .entry(r.metadata.namespace.as_deref().unwrap_or_default())
                .or_default()
                .push(r);
        }
        let mut streams: Vec<Stream> = streams
            .iter()
            .map(|s| {
                let namespace = s.metadata.namespace.as_deref().unwrap_or_default();
                let registered =
                    dataflow::by_name(by_namespace.get(namespace).into_iter().flatten().copied());
                dataflow::effective(s, &registered)
                    .map(|e| e.into_owned())
                    .unwrap_or_else(|_| s.clone())
            })
            .collect();
        streams.sort_by_key(|s| key(&s.metadata));
        let mut brokers = brokers;
        brokers.sort_by_key(|b| key(&b.metadata));
        Snapshot {
            streams,
            brokers,
            events,
        }
    }

    pub fn overview(&self) -> Overview {
        Overview {
            streams: self
                .streams
                .iter()
                .map(|s| overview::stream_row(s, &self.streams))
                .collect(),
            brokers: self.brokers.iter().map(overview::broker_row).collect(),
            events: overview::recent_events(
                &self.events,
                &self.streams,
                &self.brokers,
                RECENT_EVENTS,
            ),
        }
    }

    pub fn stream(&self, namespace: &str, name: &str) -> Option<StreamDetail> {
        let stream = self.streams.iter().find(|s| {
            s.metadata.namespace.as_deref() == Some(namespace)
                && s.metadata.name.as_deref() == Some(name)
        })?;
        let events = overview::recent_events(
            &self.events,
            std::slice::from_ref(stream),
            &[],
            RECENT_EVENTS,
        )
        .into_iter()
        .filter(|e| e.namespace == namespace)
        .collect();
        let graph = graph::graph(stream, &self.streams);
        Some(StreamDetail {
            row: overview::stream_row_of(stream, graph.health),
            companions: apps::companions(stream),
            graph,
            events,
        })
    }
}

fn key(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> (String, String) {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct Overview {
    pub streams: Vec<StreamRow>,
    pub brokers: Vec<BrokerRow>,
    pub events: Vec<EventRow>,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct StreamDetail {
    pub row: StreamRow,
    pub graph: StreamGraph,
    /// Its apps the page reads from or drives (counter, load simulator).
    pub companions: Vec<apps::Companion>,
    pub events: Vec<EventRow>,
}
