//! `kubectl eventflow describe STREAM`: one Stream as a tree — its phase,
//! broker, revision and the conditions that are not True, then each app,
//! its roles (Deployment, replicas, image), what it publishes and each
//! consumer group it subscribes with, with the group's backlog and
//! dead-letter queue as the operator last read them from the broker.

use std::collections::BTreeMap;

use clap::Args;
use eventflow_contract::QueueType;
use eventflow_operator::{
    api::{App, AppRegistration, AutoscaleEngine, AutoscaleStatus, GroupStatus, Stream},
    backlog::figures,
    build::wiring::app_bindings,
    dataflow,
    naming::LABEL_STREAM,
};
use k8s_openapi::api::apps::v1::Deployment;
use kube::{Api, ResourceExt, api::ListParams};
use serde::Serialize;

use crate::{
    cluster::{Output, Target, print_data},
    render::{age, or_dash, seconds_since},
};

pub const HELP: &str = "\
Per consumer group: messages ready, unacknowledged, consumers, the publish and deliver rates, and
the messages in its dead-letter queue (DLQ), as the operator last read them from the broker
(every 30 s; the time of the read is shown). `-` is a figure the broker does not give (over AMQP
without the management API: unacknowledged and rates) or that was not read yet.

Examples:
  kubectl eventflow describe orders
  kubectl eventflow describe orders -n shop -o yaml

Exit codes:
  0  described
  1  the Stream does not exist, or the cluster cannot be reached";

/// Figures older than this are marked stale (the operator reads every 30 s).
const STALE_AFTER_SECONDS: i64 = 90;

#[derive(Args, Debug)]
pub struct DescribeArgs {
    /// Name of the Stream.
    pub stream: String,

    #[command(flatten)]
    pub target: Target,

    /// Output format (`table` draws the tree).
    #[arg(long, short = 'o', value_enum, default_value_t)]
    pub output: Output,
}

/// A condition that is worth telling.
pub use eventflow_operator::api::ConditionView;

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RoleView {
    pub role: String,
    pub deployment: String,
    pub ready_replicas: i32,
    pub replicas: i32,
    pub image: Option<String>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PublishView {
    pub destination: String,
    pub exchange: String,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AppView {
    pub name: String,
    pub roles: Vec<RoleView>,
    pub publishes: Vec<PublishView>,
    pub subscribes: Vec<GroupStatus>,
    /// The autoscaler's last decision for the app's worker, if autoscaled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autoscale: Option<AutoscaleStatus>,
}

/// What `describe` shows (and prints as JSON or YAML).
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Description {
    pub name: String,
    pub namespace: String,
    pub phase: String,
    pub broker: String,
    pub revision: Option<i64>,
    pub suspended: Option<ConditionView>,
    /// Conditions that are not True.
    pub problems: Vec<ConditionView>,
    pub backlog: Option<i64>,
    pub dead_letters: Option<i64>,
    /// When the group figures were read from the broker.
    pub figures_read_at: Option<String>,
    pub apps: Vec<AppView>,
}

/// The description of `stream`, whose apps (definition expanded) are
/// `apps`; `images` maps Deployment names to their image.
pub fn describe(stream: &Stream, apps: &[App], images: &BTreeMap<String, String>) -> Description {
    let namespace = stream.namespace().unwrap_or_default();
    let status = stream.status.clone().unwrap_or_default();
    let view =
        |c: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition| ConditionView::from(c);
    let suspended = status
        .conditions
        .iter()
        .find(|c| c.type_ == eventflow_operator::status::SUSPENDED)
        .map(view);
    let problems = status
        .conditions
        .iter()
        .filter(|c| c.status != "True" && c.type_ != eventflow_operator::status::SUSPENDED)
        .map(view)
        .collect();
    // Before the first read, the groups the spec declares, figures unknown.
    let groups = if status.groups.is_empty() {
        figures::groups(&namespace, apps)
    } else {
        status.groups.clone()
    };
    let mut names: Vec<String> = apps.iter().map(|a| a.name.clone()).collect();
    let others = status
        .workloads
        .iter()
        .map(|w| &w.app)
        .chain(groups.iter().map(|g| &g.app));
    for name in others {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    let apps = names
        .into_iter()
        .map(|name| {
            let spec = apps.iter().find(|a| a.name == name);
            AppView {
                roles: status
                    .workloads
                    .iter()
                    .filter(|w| w.app == name)
                    .map(|w| RoleView {
                        role: w.role.clone(),
                        deployment: w.deployment.clone(),
                        ready_replicas: w.ready_replicas,
                        replicas: w.replicas,
                        image: images.get(&w.deployment).cloned(),
                    })
                    .collect(),
                publishes: spec
                    .map(|a| app_bindings(&namespace, a, QueueType::Classic).publishes)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|p| PublishView {
                        destination: p.destination,
                        exchange: p.exchange,
                    })
                    .collect(),
                subscribes: groups.iter().filter(|g| g.app == name).cloned().collect(),
                autoscale: status.autoscale.iter().find(|e| e.app == name).cloned(),
                name,
            }
        })
        .collect();
    Description {
        name: stream.name_any(),
        namespace,
        phase: format!("{:?}", status.phase),
        broker: stream.spec.broker.clone(),
        revision: status.current_revision,
        suspended,
        problems,
        backlog: status.backlog,
        dead_letters: status.dead_letters,
        figures_read_at: status.groups_observed_at.map(|t| t.0.to_string()),
        apps,
    }
}

/// The autoscaler's last decision for a worker.
fn autoscale_node(a: &AutoscaleStatus) -> Node {
    let what = match (a.engine, a.desired_replicas) {
        (AutoscaleEngine::Keda, _) => "worker autoscaled by KEDA".to_owned(),
        (_, Some(n)) => format!(
            "worker autoscaled: {n} replicas (backlog asks {})",
            or_dash(a.recommended_replicas)
        ),
        (_, None) => "worker autoscaled: no decision yet".to_owned(),
    };
    let mut children = vec![];
    if let Some(reason) = &a.reason {
        children.push(leaf(reason.clone()));
    }
    if let Some(t) = &a.last_scale_time {
        children.push(leaf(format!("last scaled at {}", t.0)));
    }
    Node {
        text: what,
        children,
    }
}

/// A line and the lines under it.
struct Node {
    text: String,
    children: Vec<Node>,
}

fn leaf(text: impl Into<String>) -> Node {
    Node {
        text: text.into(),
        children: vec![],
    }
}

fn draw(nodes: &[Node], prefix: &str, out: &mut String) {
    for (i, n) in nodes.iter().enumerate() {
        let last = i + 1 == nodes.len();
        out.push_str(prefix);
        out.push_str(if last { "└─ " } else { "├─ " });
        out.push_str(&n.text);
        out.push('\n');
        let deeper = format!("{prefix}{}", if last { "   " } else { "│  " });
        draw(&n.children, &deeper, out);
    }
}

fn rate(r: Option<f64>) -> String {
    r.map_or_else(|| "-".to_owned(), |r| format!("{r:.1}/s"))
}

fn condition(c: &ConditionView) -> String {
    let message = if c.message.is_empty() {
        String::new()
    } else {
        format!(": {}", c.message)
    };
    format!("{} {} ({}){message}", c.type_, c.status, c.reason)
}

fn group_node(g: &GroupStatus) -> Node {
    Node {
        text: format!(
            "subscribes {}, group {}, queue {}",
            g.destination, g.group, g.queue
        ),
        children: vec![
            leaf(format!(
                "ready {}, unacked {}, consumers {}, publish {}, deliver {}",
                or_dash(g.ready),
                or_dash(g.unacknowledged),
                or_dash(g.consumers),
                rate(g.publish_rate),
                rate(g.deliver_rate)
            )),
            leaf(format!(
                "DLQ {}: {}",
                g.dead_letter_queue,
                or_dash(g.dead_letters)
            )),
        ],
    }
}

/// The tree for people.
pub fn render(d: &Description, now: jiff::Timestamp) -> String {
    let mut top = vec![
        leaf(format!("Phase: {}", d.phase)),
        leaf(format!("Broker: {}", d.broker)),
        leaf(format!("Revision: {}", or_dash(d.revision))),
    ];
    if let Some(s) = &d.suspended {
        top.push(leaf(format!("Suspended: {}", condition(s))));
    }
    if !d.problems.is_empty() {
        top.push(Node {
            text: "Not true:".into(),
            children: d.problems.iter().map(|c| leaf(condition(c))).collect(),
        });
    }
    let read = match d.figures_read_at.as_deref().and_then(|t| t.parse().ok()) {
        Some(at) => {
            let ago = seconds_since(at, now);
            let stale = if ago > STALE_AFTER_SECONDS {
                " — stale: not refreshed since (is the operator running? its Events on the Stream say why a read failed)"
            } else {
                ""
            };
            format!("read {} ago at {at}{stale}", age(ago))
        }
        None => "not read from the broker yet".into(),
    };
    top.push(leaf(format!(
        "Backlog: {} messages, dead letters: {} ({read})",
        or_dash(d.backlog),
        or_dash(d.dead_letters)
    )));
    let apps = d
        .apps
        .iter()
        .map(|a| {
            let mut children: Vec<Node> = a
                .roles
                .iter()
                .map(|r| {
                    leaf(format!(
                        "{}: Deployment {}, {}/{} ready, image {}",
                        r.role,
                        r.deployment,
                        r.ready_replicas,
                        r.replicas,
                        or_dash(r.image.as_deref())
                    ))
                })
                .collect();
            if a.roles.is_empty() {
                children.push(leaf("no Deployment yet"));
            }
            children.extend(a.autoscale.as_ref().map(autoscale_node));
            children.extend(a.publishes.iter().map(|p| {
                leaf(format!(
                    "publishes {} (exchange {})",
                    p.destination, p.exchange
                ))
            }));
            children.extend(a.subscribes.iter().map(group_node));
            Node {
                text: a.name.clone(),
                children,
            }
        })
        .collect();
    top.push(Node {
        text: "Apps".into(),
        children: apps,
    });
    let mut out = format!("Stream {}/{}\n", d.namespace, d.name);
    draw(&top, "", &mut out);
    out
}

/// The Stream's apps with a definition expanded (as the operator does);
/// the spec's apps when it cannot be.
async fn apps(client: &kube::Client, namespace: &str, stream: &Stream) -> Vec<App> {
    if stream.spec.definition.is_none() {
        return stream.spec.apps.clone();
    }
    let registrations = Api::<AppRegistration>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .map(|l| dataflow::by_name(&l.items))
        .unwrap_or_default();
    dataflow::effective(stream, &registrations)
        .map(|s| s.spec.apps.clone())
        .unwrap_or_default()
}

/// Image of each of the Stream's Deployments (its first container's).
async fn images(client: &kube::Client, namespace: &str, name: &str) -> BTreeMap<String, String> {
    let params = ListParams::default().labels(&format!("{LABEL_STREAM}={name}"));
    let Ok(list) = Api::<Deployment>::namespaced(client.clone(), namespace)
        .list(&params)
        .await
    else {
        return BTreeMap::new();
    };
    list.items
        .into_iter()
        .filter_map(|d| {
            let image = d
                .spec
                .as_ref()?
                .template
                .spec
                .as_ref()?
                .containers
                .first()?
                .image
                .clone()?;
            Some((d.name_any(), image))
        })
        .collect()
}

pub async fn run(args: DescribeArgs) -> anyhow::Result<()> {
    let cluster = args.target.connect().await?;
    let ns = &cluster.namespace;
    let stream = Api::<Stream>::namespaced(cluster.client.clone(), ns)
        .get_opt(&args.stream)
        .await
        .map_err(|e| anyhow::anyhow!("cannot read Stream {}: {e}", args.stream))?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "Stream {} not found in namespace {ns} (kubectl eventflow list -n {ns} lists them)",
                args.stream
            )
        })?;
    let apps = apps(&cluster.client, ns, &stream).await;
    let images = images(&cluster.client, ns, &args.stream).await;
    let d = describe(&stream, &apps, &images);
    match args.output {
        Output::Table => print!("{}", render(&d, jiff::Timestamp::now())),
        other => print_data(other, &d)?,
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    fn stream() -> Stream {
        serde_json::from_value(json!({
            "apiVersion": "eventflow.dev/v1alpha1", "kind": "Stream",
            "metadata": {"name": "orders", "namespace": "shop"},
            "spec": {"broker": "rabbit", "apps": [
                {"name": "order", "image": "eventflow/order:1", "web": {}, "worker": {},
                 "publishes": ["orders"], "subscribes": [{"destination": "payments"}]},
                {"name": "billing", "image": "eventflow/billing:1", "worker": {},
                 "subscribes": [{"destination": "orders"}]}
            ]},
            "status": {
                "phase": "Suspended", "currentRevision": 3, "backlog": 12, "deadLetters": 3,
                "groupsObservedAt": "2026-12-02T11:59:50Z",
                "conditions": [
                    {"type": "Ready", "status": "False", "reason": "Suspended", "message": "suspended",
                     "lastTransitionTime": "2026-12-02T11:00:00Z"},
                    {"type": "BrokerReady", "status": "True", "reason": "Connected", "message": "",
                     "lastTransitionTime": "2026-12-02T11:00:00Z"},
                    {"type": "Suspended", "status": "True", "reason": "Drained", "message": "every role drained",
                     "lastTransitionTime": "2026-12-02T11:00:00Z"}
                ],
                "workloads": [
                    {"app": "order", "role": "web", "deployment": "orders-order-web", "replicas": 0,
                     "readyReplicas": 0, "updatedReplicas": 0},
                    {"app": "order", "role": "worker", "deployment": "orders-order-worker", "replicas": 0,
                     "readyReplicas": 0, "updatedReplicas": 0}
                ],
                "groups": [
                    {"destination": "orders", "group": "billing", "app": "billing",
                     "queue": "shop.orders.billing", "ready": 9, "unacknowledged": 0, "consumers": 0,
                     "deadLetterQueue": "shop.orders.billing.dlq", "deadLetters": 3,
                     "publishRate": 1.5, "deliverRate": 0.0},
                    {"destination": "payments", "group": "order", "app": "order",
                     "queue": "shop.payments.order", "ready": 3, "consumers": 0,
                     "deadLetterQueue": "shop.payments.order.dlq", "deadLetters": 0}
                ]
            }
        }))
        .unwrap()
    }

    #[test]
    fn a_stream_is_drawn_as_a_tree_of_apps_roles_and_groups_with_their_figures() {
        let s = stream();
        let images = BTreeMap::from([(
            "orders-order-worker".to_owned(),
            "eventflow/order:1".to_owned(),
        )]);
        let d = describe(&s, &s.spec.apps, &images);
        let now: jiff::Timestamp = "2026-12-02T12:00:00Z".parse().unwrap();
        let out = render(&d, now);
        let expected = "\
Stream shop/orders
├─ Phase: Suspended
├─ Broker: rabbit
├─ Revision: 3
├─ Suspended: Suspended True (Drained): every role drained
├─ Not true:
│  └─ Ready False (Suspended): suspended
├─ Backlog: 12 messages, dead letters: 3 (read 10s ago at 2026-12-02T11:59:50Z)
└─ Apps
   ├─ order
   │  ├─ web: Deployment orders-order-web, 0/0 ready, image -
   │  ├─ worker: Deployment orders-order-worker, 0/0 ready, image eventflow/order:1
   │  ├─ publishes orders (exchange shop.orders)
   │  └─ subscribes payments, group order, queue shop.payments.order
   │     ├─ ready 3, unacked -, consumers 0, publish -, deliver -
   │     └─ DLQ shop.payments.order.dlq: 0
   └─ billing
      ├─ no Deployment yet
      └─ subscribes orders, group billing, queue shop.orders.billing
         ├─ ready 9, unacked 0, consumers 0, publish 1.5/s, deliver 0.0/s
         └─ DLQ shop.orders.billing.dlq: 3
";
        assert_eq!(out, expected, "\n{out}");
    }

    #[test]
    fn old_figures_are_marked_stale_and_unread_ones_say_so() {
        let s = stream();
        let d = describe(&s, &s.spec.apps, &BTreeMap::new());
        let later: jiff::Timestamp = "2026-12-02T12:10:00Z".parse().unwrap();
        assert!(render(&d, later).contains("read 10m ago at 2026-12-02T11:59:50Z — stale"));
        let mut fresh = stream();
        fresh.status = None;
        let d = describe(&fresh, &fresh.spec.apps, &BTreeMap::new());
        let out = render(&d, later);
        assert!(
            out.contains("Backlog: - messages, dead letters: - (not read from the broker yet)"),
            "{out}"
        );
        // The spec's groups, figures unknown.
        assert!(
            out.contains("subscribes orders, group billing, queue shop.orders.billing"),
            "{out}"
        );
        assert!(out.contains("ready -, unacked -, consumers -"), "{out}");
    }

    #[test]
    fn an_autoscaled_worker_shows_the_last_decision() {
        let mut s = stream();
        s.status.as_mut().unwrap().autoscale = vec![
            serde_json::from_value(json!({
            "app": "billing", "engine": "Operator", "desiredReplicas": 3, "currentReplicas": 1,
            "recommendedReplicas": 5, "backlog": 45,
            "reason": "backlog 45 (45 ready, 0 unacked): 10/replica asks 5; 1 -> 3 (step 2)",
            "lastScaleTime": "2026-12-02T11:59:00Z"}))
            .unwrap(),
        ];
        let d = describe(&s, &s.spec.apps, &BTreeMap::new());
        let out = render(&d, "2026-12-02T12:00:00Z".parse().unwrap());
        let expected = "\
      ├─ worker autoscaled: 3 replicas (backlog asks 5)
      │  ├─ backlog 45 (45 ready, 0 unacked): 10/replica asks 5; 1 -> 3 (step 2)
      │  └─ last scaled at 2026-12-02T11:59:00Z
";
        assert!(out.contains(expected), "\n{out}");
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(v["apps"][1]["autoscale"]["desiredReplicas"], 3);
        assert_eq!(v["apps"][0].get("autoscale"), None);
    }

    #[test]
    fn json_output_carries_the_same_figures() {
        let s = stream();
        let d = describe(&s, &s.spec.apps, &BTreeMap::new());
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(v["apps"][1]["subscribes"][0]["deadLetters"], 3);
        assert_eq!(v["apps"][0]["subscribes"][0].get("unacknowledged"), None);
        assert_eq!(v["suspended"]["reason"], "Drained");
        assert_eq!(v["figuresReadAt"], "2026-12-02T11:59:50Z");
    }
}
