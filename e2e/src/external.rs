//! An EventBroker of a test's own namespace that is the example broker,
//! reached as an external one: a Stream refers to an EventBroker of its own
//! namespace, and a test that only needs a working broker (not one of its
//! own) borrows the examples' instead of starting another RabbitMQ on the
//! node. Its queues and exchanges are named after the test's namespace, so
//! they never meet the examples'.

use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use serde_json::json;

use crate::{
    broker::{BROKER, example_brokers},
    install::EXAMPLES_NS,
    managed::{apply_json, wait_broker_ready},
};

/// The Secret of `namespace` holding the example broker's URIs.
const SECRET: &str = "example-broker";

/// Creates EventBroker `rabbit` in `namespace`, external, with a Secret
/// holding the example broker's AMQP and management URIs (copied from the
/// examples' credentials Secret), and waits until the operator says Ready.
pub async fn borrow_example_broker(client: &Client, namespace: &str) -> Result<()> {
    let broker = example_brokers(client).get(BROKER).await?;
    let secret = broker.data["status"]["credentialsSecret"]
        .as_str()
        .context("the example broker has no status.credentialsSecret")?
        .to_owned();
    let data = Api::<Secret>::namespaced(client.clone(), EXAMPLES_NS)
        .get(&secret)
        .await?
        .data
        .unwrap_or_default();
    let text = |k: &str| -> Result<String> {
        let bytes = data
            .get(k)
            .with_context(|| format!("{EXAMPLES_NS}/{secret} has no {k}"))?;
        Ok(String::from_utf8(bytes.0.clone())?)
    };
    apply_json(&json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": SECRET, "namespace": namespace},
        "stringData": {"uri": text("uri")?, "managementUri": text("managementUri")?},
    }))?;
    apply_json(&json!({
        "apiVersion": "eventflow.dev/v1alpha1",
        "kind": "EventBroker",
        "metadata": {"name": BROKER, "namespace": namespace},
        "spec": {"external": {"connectionSecret": {"name": SECRET}}},
    }))?;
    wait_broker_ready(client, namespace, Duration::from_secs(120)).await
}
