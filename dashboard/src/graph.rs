//! A Stream drawn as a graph: its apps (with their roles, replicas and
//! ready replicas), the destinations they publish to and consume from, the
//! consumer groups on each consuming edge with the broker's readings, and
//! the other Streams of the namespace that share a destination — each node
//! coloured by its [`Health`].
//!
//! Built from the Stream as the operator sees it (a Data Flow definition
//! already expanded, `eventflow_operator::dataflow::effective`) and its
//! status; nothing here reads the cluster.

use std::collections::{BTreeMap, BTreeSet};

use eventflow_operator::{
    api::{GroupStatus, Stream, StreamPhase, WorkloadStatus},
    naming,
};
use serde::Serialize;

/// How a node looks on the page, worst last.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub enum Health {
    /// Nothing asked to run (zero replicas, suspended).
    Idle,
    Healthy,
    /// On its way (deploying, rolling out, no reading yet).
    Progressing,
    /// Running short (some replicas not ready, dead letters waiting).
    Degraded,
    /// Not working (no replica ready, a backlog nobody consumes, Failed).
    Down,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StreamGraph {
    pub namespace: String,
    pub name: String,
    pub phase: StreamPhase,
    pub health: Health,
    pub apps: Vec<AppNode>,
    pub destinations: Vec<DestinationNode>,
    pub edges: Vec<Edge>,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AppNode {
    /// `app:<name>`, the node's id in [`Edge`]s.
    pub id: String,
    pub name: String,
    /// A Spring Cloud Stream app (worker only).
    pub spring: bool,
    pub roles: Vec<RoleNode>,
    pub health: Health,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RoleNode {
    /// `web`, `worker` or `all` (Combined packaging).
    pub role: String,
    pub deployment: String,
    /// Desired replicas as the Deployment reports them; `None` before the
    /// operator reported the workload.
    pub replicas: Option<i32>,
    pub ready: Option<i32>,
    pub health: Health,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DestinationNode {
    /// `destination:<name>`, the node's id in [`Edge`]s.
    pub id: String,
    pub name: String,
    /// The broker exchange, once the operator declared it.
    pub exchange: Option<String>,
    /// Other Streams of the namespace, on the same broker, that publish to
    /// this destination.
    pub published_by: Vec<String>,
    /// Other Streams of the namespace, on the same broker, that consume it.
    pub consumed_by: Vec<String>,
    pub health: Health,
}

#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum EdgeKind {
    /// App → destination.
    Publishes,
    /// Destination → app, through a consumer group.
    Consumes,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Edge {
    pub from: String,
    pub to: String,
    pub kind: EdgeKind,
    /// The consumer group (consuming edges).
    pub group: Option<String>,
    /// Routing-key patterns the group receives; empty = every event.
    pub event_types: Vec<String>,
    /// A group reading a destination that another Stream publishes.
    pub tap: bool,
    /// The broker's readings of the group, when the operator has them.
    pub readings: Option<GroupReadings>,
    pub health: Health,
}

/// A consumer group's queue as the broker last reported it.
#[derive(Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GroupReadings {
    pub queue: String,
    /// Ready + unacknowledged.
    pub backlog: Option<i64>,
    pub ready: Option<i64>,
    pub unacknowledged: Option<i64>,
    pub consumers: Option<i64>,
    pub dead_letter_queue: String,
    pub dead_letters: Option<i64>,
    /// Messages per second into and out of the queue.
    pub publish_rate: Option<f64>,
    pub deliver_rate: Option<f64>,
}

impl From<&GroupStatus> for GroupReadings {
    fn from(g: &GroupStatus) -> Self {
        let backlog = match (g.ready, g.unacknowledged) {
            (None, None) => None,
            (ready, unacked) => Some(ready.unwrap_or(0) + unacked.unwrap_or(0)),
        };
        GroupReadings {
            queue: g.queue.clone(),
            backlog,
            ready: g.ready,
            unacknowledged: g.unacknowledged,
            consumers: g.consumers,
            dead_letter_queue: g.dead_letter_queue.clone(),
            dead_letters: g.dead_letters,
            publish_rate: g.publish_rate,
            deliver_rate: g.deliver_rate,
        }
    }
}

impl GroupReadings {
    /// No consumer while messages wait: down; dead letters waiting: degraded.
    fn health(&self) -> Health {
        if self.consumers == Some(0) && self.backlog.unwrap_or(0) > 0 {
            Health::Down
        } else if self.dead_letters.unwrap_or(0) > 0 || self.consumers == Some(0) {
            Health::Degraded
        } else {
            Health::Healthy
        }
    }
}

fn stream_name(stream: &Stream) -> &str {
    stream.metadata.name.as_deref().unwrap_or_default()
}

fn namespace(stream: &Stream) -> &str {
    stream.metadata.namespace.as_deref().unwrap_or_default()
}

/// Destinations an app publishes to: `publishes`, or a Spring app's outputs.
fn published(app: &eventflow_operator::api::App) -> Vec<&str> {
    let mut out: Vec<&str> = app.publishes.iter().map(String::as_str).collect();
    if let Some(spring) = &app.spring {
        out.extend(spring.outputs.iter().map(|o| o.destination.as_str()));
    }
    out
}

/// What each Stream publishes and consumes, for the links between Streams.
struct Sharing<'a> {
    publishers: BTreeMap<&'a str, BTreeSet<&'a str>>,
    consumers: BTreeMap<&'a str, BTreeSet<&'a str>>,
}

impl<'a> Sharing<'a> {
    /// Streams of `stream`'s namespace and broker among `all` (effective
    /// Streams), by destination.
    fn of(stream: &Stream, all: &'a [Stream]) -> Self {
        let mut sharing = Sharing {
            publishers: BTreeMap::new(),
            consumers: BTreeMap::new(),
        };
        let peers = all.iter().filter(|s| {
            namespace(s) == namespace(stream)
                && s.spec.broker == stream.spec.broker
                && stream_name(s) != stream_name(stream)
        });
        for peer in peers {
            for app in &peer.spec.apps {
                for d in published(app) {
                    sharing
                        .publishers
                        .entry(d)
                        .or_default()
                        .insert(stream_name(peer));
                }
                for s in &app.subscribes {
                    sharing
                        .consumers
                        .entry(s.destination.as_str())
                        .or_default()
                        .insert(stream_name(peer));
                }
            }
        }
        sharing
    }

    fn names(map: &BTreeMap<&str, BTreeSet<&str>>, destination: &str) -> Vec<String> {
        map.get(destination)
            .map(|s| s.iter().map(|n| (*n).to_owned()).collect())
            .unwrap_or_default()
    }
}

fn role_health(phase: StreamPhase, workload: Option<&WorkloadStatus>) -> Health {
    if phase == StreamPhase::Suspended {
        return Health::Idle;
    }
    match workload {
        None => Health::Progressing,
        Some(w) if w.replicas == 0 => Health::Idle,
        Some(w) if w.ready_replicas == 0 => Health::Down,
        Some(w) if w.ready_replicas < w.replicas || w.old_replicas > 0 => Health::Degraded,
        Some(w) if w.updated_replicas < w.replicas => Health::Progressing,
        Some(_) => Health::Healthy,
    }
}

fn phase_health(phase: StreamPhase) -> Health {
    match phase {
        StreamPhase::Running => Health::Healthy,
        StreamPhase::Pending | StreamPhase::Deploying => Health::Progressing,
        StreamPhase::Degraded => Health::Degraded,
        StreamPhase::Failed => Health::Down,
        StreamPhase::Suspended | StreamPhase::Deleting => Health::Idle,
    }
}

/// The graph of `stream` (effective: a definition already expanded), with
/// links to the Streams of `all` (effective too) sharing its destinations.
pub fn graph(stream: &Stream, all: &[Stream]) -> StreamGraph {
    let status = stream.status.clone().unwrap_or_default();
    let phase = status.phase;
    let name = stream_name(stream);
    let sharing = Sharing::of(stream, all);

    let mut apps = Vec::new();
    let mut edges = Vec::new();
    let mut destinations: BTreeMap<&str, Vec<Health>> = BTreeMap::new();
    let mut ours_published: BTreeSet<&str> = BTreeSet::new();
    for app in &stream.spec.apps {
        ours_published.extend(published(app));
    }

    for app in &stream.spec.apps {
        let roles: Vec<RoleNode> = naming::workloads(name, app)
            .into_iter()
            .map(|w| {
                let reported = status
                    .workloads
                    .iter()
                    .find(|s| s.app == app.name && s.role == w.role);
                RoleNode {
                    role: w.role.to_owned(),
                    deployment: w.name,
                    replicas: reported.map(|r| r.replicas),
                    ready: reported.map(|r| r.ready_replicas),
                    health: role_health(phase, reported),
                }
            })
            .collect();
        let health = roles.iter().map(|r| r.health).max().unwrap_or(Health::Idle);
        let id = format!("app:{}", app.name);
        for d in published(app) {
            destinations.entry(d).or_default();
            edges.push(Edge {
                from: id.clone(),
                to: format!("destination:{d}"),
                kind: EdgeKind::Publishes,
                group: None,
                event_types: vec![],
                tap: false,
                readings: None,
                health,
            });
        }
        for s in &app.subscribes {
            let group = s.group.clone().unwrap_or_else(|| app.name.clone());
            let readings = status
                .groups
                .iter()
                .find(|g| g.destination == s.destination && g.group == group)
                .map(GroupReadings::from);
            let edge_health = if phase == StreamPhase::Suspended {
                Health::Idle
            } else {
                readings
                    .as_ref()
                    .map(GroupReadings::health)
                    .unwrap_or(Health::Progressing)
            };
            destinations
                .entry(s.destination.as_str())
                .or_default()
                .push(edge_health);
            edges.push(Edge {
                from: format!("destination:{}", s.destination),
                to: id.clone(),
                kind: EdgeKind::Consumes,
                group: Some(group),
                event_types: s.event_types.clone(),
                tap: !ours_published.contains(s.destination.as_str())
                    && sharing.publishers.contains_key(s.destination.as_str()),
                readings,
                health: edge_health,
            });
        }
        apps.push(AppNode {
            id,
            name: app.name.clone(),
            spring: app.spring.is_some(),
            roles,
            health,
        });
    }

    let destinations: Vec<DestinationNode> = destinations
        .into_iter()
        .map(|(d, groups)| DestinationNode {
            id: format!("destination:{d}"),
            name: d.to_owned(),
            exchange: status
                .destinations
                .iter()
                .find(|s| s.name == d)
                .map(|s| s.exchange.clone()),
            published_by: Sharing::names(&sharing.publishers, d),
            consumed_by: Sharing::names(&sharing.consumers, d),
            health: groups
                .into_iter()
                .max()
                .unwrap_or(if phase == StreamPhase::Suspended {
                    Health::Idle
                } else {
                    Health::Healthy
                }),
        })
        .collect();

    let worst_node = apps
        .iter()
        .map(|a| a.health)
        .chain(destinations.iter().map(|d| d.health))
        .max()
        .unwrap_or(Health::Idle);
    StreamGraph {
        namespace: namespace(stream).to_owned(),
        name: name.to_owned(),
        phase,
        health: phase_health(phase).max(match phase {
            // A Stream the operator calls Running can still have a node in
            // trouble between two status updates: show the worse.
            StreamPhase::Running => worst_node,
            _ => Health::Idle,
        }),
        apps,
        destinations,
        edges,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
