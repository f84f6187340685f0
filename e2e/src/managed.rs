//! A managed EventBroker of a test's own namespace (not the examples'), as
//! a test runs and reaches it: applied with a given image and node count,
//! waited for, reached over AMQP and over the management API through a
//! port-forward to one of its pods, with the credentials of its Secret.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::{Api, Client};
use lapin::{Connection, ConnectionProperties};
use serde_json::{Value, json};

use crate::{
    broker::{BROKER, brokers_in},
    forward::port_forward,
    pods::ready_pods,
    tools::run_tool,
    wait::wait_for,
};

/// `kubectl apply --server-side` of one object given as JSON.
pub fn apply_json(object: &Value) -> Result<String> {
    run_tool(
        "kubectl",
        &["apply", "--server-side", "-f", "-"],
        Some(&object.to_string()),
    )
}

/// The EventBroker `rabbit` of `namespace`: `replicas` nodes of `image`,
/// with modest resources and, for three nodes, a volume per node (a node
/// that comes back must find its data: a quorum queue member that forgot
/// its log could outvote the others).
pub fn broker_manifest(namespace: &str, image: &str, replicas: i32) -> Value {
    let mut managed = json!({
        "image": image,
        "replicas": replicas,
        "resources": {
            "requests": {"cpu": "50m", "memory": "200Mi"},
            "limits": {"memory": "640Mi"},
        },
    });
    if replicas > 1 {
        managed["storage"] = json!({"size": "256Mi"});
    }
    json!({
        "apiVersion": "eventflow.dev/v1alpha1",
        "kind": "EventBroker",
        "metadata": {"name": BROKER, "namespace": namespace},
        "spec": {"managed": managed},
    })
}

/// The EventBrokers of `namespace`, as dynamic objects.
/// `status.phase` of the EventBroker (empty before its first status).
pub async fn broker_phase(client: &Client, namespace: &str) -> Result<String> {
    let b = brokers_in(client, namespace).get(BROKER).await?;
    Ok(b.data["status"]["phase"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

/// Waits until the EventBroker is Ready (an AMQP check of the operator).
pub async fn wait_broker_ready(client: &Client, namespace: &str, timeout: Duration) -> Result<()> {
    wait_for(timeout, "the EventBroker to be Ready", || async {
        Ok(broker_phase(client, namespace).await? == "Ready")
    })
    .await
}

/// A managed broker of a test namespace, with its credentials.
pub struct ManagedBroker {
    client: Client,
    pub namespace: String,
    pub username: String,
    pub password: String,
}

impl ManagedBroker {
    /// Reads the credentials of the (Ready) EventBroker of `namespace`.
    pub async fn open(client: &Client, namespace: &str) -> Result<Self> {
        let broker = brokers_in(client, namespace).get(BROKER).await?;
        let secret = broker.data["status"]["credentialsSecret"]
            .as_str()
            .ok_or_else(|| anyhow!("the EventBroker has no status.credentialsSecret"))?
            .to_owned();
        let data = Api::<Secret>::namespaced(client.clone(), namespace)
            .get(&secret)
            .await?
            .data
            .unwrap_or_default();
        let text = |k: &str| -> Result<String> {
            let v = data
                .get(k)
                .ok_or_else(|| anyhow!("Secret {secret} has no {k}"))?;
            Ok(String::from_utf8(v.0.clone())?)
        };
        Ok(Self {
            client: client.clone(),
            namespace: namespace.to_owned(),
            username: text("username")?,
            password: text("password")?,
        })
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// The broker's Ready pods (`rabbit-0`, ...).
    pub async fn ready_nodes(&self) -> Result<Vec<String>> {
        let mut pods = ready_pods(
            &self.client,
            &self.namespace,
            &format!("eventflow.dev/broker={BROKER},app.kubernetes.io/name=rabbitmq"),
        )
        .await?;
        pods.sort();
        Ok(pods)
    }

    /// An AMQP connection to `pod` (through a port-forward).
    pub async fn amqp(&self, pod: &str) -> Result<Connection> {
        let local = port_forward(self.pods(), pod, 5672).await?;
        let uri = format!("amqp://{}:{}@{local}/%2f", self.username, self.password);
        Ok(Connection::connect(&uri, ConnectionProperties::default()).await?)
    }

    /// The management API of `pod` (through a port-forward).
    pub async fn management(&self, pod: &str) -> Result<Management> {
        let local = port_forward(self.pods(), pod, 15672).await?;
        Ok(Management {
            base: format!("http://{local}/api"),
            username: self.username.clone(),
            password: self.password.clone(),
            http: reqwest::Client::new(),
        })
    }
}

/// RabbitMQ's management HTTP API on one node.
pub struct Management {
    base: String,
    username: String,
    password: String,
    http: reqwest::Client,
}

impl Management {
    /// GETs `/api/<path>` as JSON.
    pub async fn get(&self, path: &str) -> Result<Value> {
        let url = format!("{}/{path}", self.base);
        let r = self
            .http
            .get(&url)
            .basic_auth(&self.username, Some(&self.password))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        if !r.status().is_success() {
            bail!("GET {url}: {}", r.status());
        }
        Ok(r.json().await?)
    }

    /// A queue of the default vhost (`type`, `arguments`, `messages`,
    /// `leader` and `members` of a quorum queue, ...).
    pub async fn queue(&self, name: &str) -> Result<Value> {
        self.get(&format!("queues/%2f/{name}")).await
    }

    /// The broker's version, e.g. `4.0.5`.
    pub async fn version(&self) -> Result<String> {
        let overview = self.get("overview").await?;
        Ok(overview["rabbitmq_version"]
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    /// The names of the cluster's running nodes, sorted.
    pub async fn running_nodes(&self) -> Result<Vec<String>> {
        let nodes = self.get("nodes").await?;
        let mut running: Vec<String> = nodes
            .as_array()
            .into_iter()
            .flatten()
            .filter(|n| n["running"] == true)
            .filter_map(|n| n["name"].as_str().map(str::to_owned))
            .collect();
        running.sort();
        Ok(running)
    }
}

/// The pod of a node name (`rabbit@rabbit-1.rabbit-nodes.<ns>.svc...` -> `rabbit-1`).
pub fn pod_of_node(node: &str) -> &str {
    let host = node.split_once('@').map_or(node, |(_, h)| h);
    host.split('.').next().unwrap_or(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_name_names_its_pod() {
        assert_eq!(
            pod_of_node("rabbit@rabbit-1.rabbit-nodes.e2e-x.svc.cluster.local"),
            "rabbit-1"
        );
    }
}
