use eventflow_operator::api::{GroupStatus, Stream, StreamPhase, StreamStatus, WorkloadStatus};
use serde_json::json;

use super::*;

fn shop() -> Stream {
    serde_yaml::from_str(include_str!(
        "../../../operator/tests/fixtures/valid/stream-shop.yaml"
    ))
    .unwrap()
}

fn workload(app: &str, role: &str, replicas: i32, ready: i32) -> WorkloadStatus {
    WorkloadStatus {
        app: app.into(),
        role: role.into(),
        deployment: format!("shop-{app}-{role}"),
        replicas,
        ready_replicas: ready,
        updated_replicas: replicas,
        old_replicas: 0,
    }
}

fn group(destination: &str, group: &str, ready: i64, consumers: i64, dead: i64) -> GroupStatus {
    GroupStatus {
        destination: destination.into(),
        group: group.into(),
        app: group.into(),
        queue: format!("demo.{destination}.{group}"),
        ready: Some(ready),
        unacknowledged: Some(1),
        consumers: Some(consumers),
        dead_letter_queue: format!("demo.{destination}.{group}.dlq"),
        dead_letters: Some(dead),
        publish_rate: Some(12.5),
        deliver_rate: Some(12.0),
    }
}

fn running(mut stream: Stream) -> Stream {
    stream.status = Some(StreamStatus {
        phase: StreamPhase::Running,
        workloads: vec![
            workload("account", "web", 2, 2),
            workload("account", "worker", 3, 3),
            workload("order", "web", 1, 1),
            workload("order", "worker", 2, 2),
            workload("audit", "all", 2, 2),
        ],
        groups: vec![
            group("account", "account", 0, 3, 0),
            group("order", "order", 4, 2, 0),
            group("account", "order-accounts", 0, 2, 0),
            group("order", "audit", 0, 2, 0),
        ],
        ..Default::default()
    });
    stream
}

fn edge<'a>(g: &'a StreamGraph, from: &str, to: &str) -> &'a Edge {
    g.edges
        .iter()
        .find(|e| e.from == from && e.to == to)
        .unwrap_or_else(|| panic!("no edge {from} -> {to} in {:#?}", g.edges))
}

#[test]
fn a_stream_becomes_its_apps_roles_destinations_and_groups() {
    let stream = running(shop());
    let g = graph(&stream, std::slice::from_ref(&stream));
    assert_eq!((g.namespace.as_str(), g.name.as_str()), ("demo", "shop"));
    let roles: Vec<(String, Vec<String>)> = g
        .apps
        .iter()
        .map(|a| {
            (
                a.name.clone(),
                a.roles.iter().map(|r| r.role.clone()).collect(),
            )
        })
        .collect();
    assert_eq!(
        roles,
        [
            (
                "account".to_owned(),
                vec!["web".to_owned(), "worker".to_owned()]
            ),
            (
                "order".to_owned(),
                vec!["web".to_owned(), "worker".to_owned()]
            ),
            ("audit".to_owned(), vec!["all".to_owned()]),
        ]
    );
    assert_eq!(g.apps[2].roles[0].deployment, "shop-audit");
    let names: Vec<&str> = g.destinations.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["account", "order"]);
    assert_eq!(g.edges.len(), 6, "{:#?}", g.edges);
    assert_eq!(
        edge(&g, "app:order", "destination:order").kind,
        EdgeKind::Publishes
    );
    let accounts = edge(&g, "destination:account", "app:order");
    assert_eq!(accounts.group.as_deref(), Some("order-accounts"));
    assert_eq!(accounts.event_types, ["account.*"]);
    let orders = edge(&g, "destination:order", "app:order");
    assert_eq!(
        orders.group.as_deref(),
        Some("order"),
        "the app name by default"
    );
    let readings = orders.readings.as_ref().unwrap();
    assert_eq!(
        (readings.backlog, readings.consumers, readings.publish_rate),
        (Some(5), Some(2), Some(12.5)),
        "backlog = ready + unacknowledged"
    );
    assert!(
        g.edges.iter().all(|e| !e.tap),
        "nothing taps another Stream"
    );
    assert_eq!(g.health, Health::Healthy);
    assert!(g.apps.iter().all(|a| a.health == Health::Healthy));
}

#[test]
fn replicas_not_ready_and_groups_nobody_consumes_colour_their_nodes() {
    let mut stream = running(shop());
    let status = stream.status.as_mut().unwrap();
    status.workloads[1].ready_replicas = 1; // account worker 1 of 3
    status.workloads[2].ready_replicas = 0; // order web 0 of 1
    status.groups[2] = group("account", "order-accounts", 7, 0, 0);
    status.groups[3] = group("order", "audit", 0, 2, 4);
    let g = graph(&stream, &[]);
    let app = |n: &str| g.apps.iter().find(|a| a.name == n).unwrap();
    assert_eq!(app("account").roles[1].health, Health::Degraded);
    assert_eq!(app("account").health, Health::Degraded);
    assert_eq!(app("order").roles[0].health, Health::Down);
    assert_eq!(app("order").health, Health::Down, "the worst role decides");
    assert_eq!(app("audit").health, Health::Healthy);
    assert_eq!(
        edge(&g, "destination:account", "app:order").health,
        Health::Down,
        "a backlog and no consumer"
    );
    assert_eq!(
        edge(&g, "destination:order", "app:audit").health,
        Health::Degraded,
        "dead letters wait"
    );
    let destination = |n: &str| g.destinations.iter().find(|d| d.name == n).unwrap();
    assert_eq!(destination("account").health, Health::Down);
    assert_eq!(destination("order").health, Health::Degraded);
    assert_eq!(g.health, Health::Down, "Running, but a node is down");
}

#[test]
fn before_any_status_everything_is_progressing_and_suspended_is_idle() {
    let g = graph(&shop(), &[]);
    assert_eq!(g.phase, StreamPhase::Pending);
    assert!(g.apps.iter().all(|a| a.health == Health::Progressing));
    assert!(
        g.apps
            .iter()
            .flat_map(|a| &a.roles)
            .all(|r| r.replicas.is_none() && r.ready.is_none())
    );
    assert_eq!(g.health, Health::Progressing);

    let mut stream = running(shop());
    stream.status.as_mut().unwrap().phase = StreamPhase::Suspended;
    let g = graph(&stream, &[]);
    assert_eq!(g.health, Health::Idle);
    assert!(g.apps.iter().all(|a| a.health == Health::Idle));
    assert!(g.edges.iter().all(|e| e.health == Health::Idle));
}

#[test]
fn a_stream_reading_another_streams_destination_is_a_tap_and_both_link_to_each_other() {
    let shop = running(shop());
    let tapper: Stream = serde_json::from_value(json!({
        "apiVersion": "eventflow.dev/v1alpha1", "kind": "Stream",
        "metadata": {"name": "order-tap", "namespace": "demo"},
        "spec": {"broker": "rabbit", "apps": [{
            "name": "counter", "image": "eventflow/counter:0.1.0",
            "worker": {}, "subscribes": [{"destination": "order", "group": "order-tap"}]
        }]}
    }))
    .unwrap();
    let mut elsewhere = tapper.clone();
    elsewhere.metadata.namespace = Some("other".into());
    elsewhere.metadata.name = Some("far".into());
    let all = [shop.clone(), tapper.clone(), elsewhere];

    let g = graph(&tapper, &all);
    let tap = edge(&g, "destination:order", "app:counter");
    assert!(tap.tap);
    assert_eq!(tap.group.as_deref(), Some("order-tap"));
    assert_eq!(g.destinations[0].published_by, ["shop"]);
    assert!(g.destinations[0].consumed_by.contains(&"shop".to_owned()));

    let g = graph(&shop, &all);
    let order = g.destinations.iter().find(|d| d.name == "order").unwrap();
    assert_eq!(
        order.consumed_by,
        ["order-tap"],
        "another namespace's Stream is not linked"
    );
    assert!(order.published_by.is_empty());
}
