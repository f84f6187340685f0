//! Spring Cloud Stream apps of the example Streams (in [`EXAMPLES_NS`]):
//! `kubectl` with the panic a test wants, waiting on a Stream's condition,
//! reading an app's actuator endpoint through a port-forward, and waiting
//! for two count sinks to agree.

use std::{
    cell::Cell,
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client, api::ListParams};
use serde_json::Value;

use crate::{
    forward::port_forward, http::get_json, install::EXAMPLES_NS, pods::ready_pods, tools::run_tool,
    wait::wait_for,
};

/// Runs kubectl (from the repository root), panicking with its error.
pub fn kubectl(args: &[&str]) -> String {
    run_tool("kubectl", args, None).unwrap_or_else(|e| panic!("kubectl {args:?}: {e:#}"))
}

/// Waits (up to 10 minutes) for a condition of a Stream of [`EXAMPLES_NS`].
pub fn wait_stream_condition(stream: &str, condition: &str) {
    kubectl(&[
        "-n",
        EXAMPLES_NS,
        "wait",
        &format!("--for=condition={condition}"),
        &format!("stream/{stream}"),
        "--timeout=600s",
    ]);
}

/// The Ready pods of an app's worker role.
pub async fn worker_pods(client: &Client, stream: &str, app: &str) -> Vec<String> {
    let selector =
        format!("eventflow.dev/stream={stream},eventflow.dev/app={app},eventflow.dev/role=worker");
    ready_pods(client, EXAMPLES_NS, &selector)
        .await
        .unwrap_or_default()
}

/// An actuator endpoint of a Spring app's (only) pod, on the admin port 9090.
pub async fn actuator(client: &Client, stream: &str, app: &str, endpoint: &str) -> Value {
    let pods = worker_pods(client, stream, app).await;
    assert_eq!(
        pods.len(),
        1,
        "{stream}/{app}: expected one Ready pod, found {pods:?}"
    );
    let addr = port_forward(Api::namespaced(client.clone(), EXAMPLES_NS), &pods[0], 9090)
        .await
        .unwrap_or_else(|e| panic!("port-forward to {}: {e:#}", pods[0]));
    get_json(
        &reqwest::Client::new(),
        &format!("http://{addr}/actuator/{endpoint}"),
    )
    .await
    .unwrap_or_else(|e| panic!("{stream}/{app} /actuator/{endpoint}: {e:#}"))
}

/// A counter of an actuator document.
pub fn count(v: &Value, field: &str) -> u64 {
    v[field]
        .as_u64()
        .unwrap_or_else(|| panic!("no {field} in {v}"))
}

/// Waits until the count sinks `a` and `b` (stream, app) have received the
/// same number of messages, more than none and unchanged for five seconds;
/// that number. For a sink and a tap once the source has stopped (a message
/// still on its way through a processor arrives within that quiet time).
pub async fn same_messages(client: &Client, a: (&str, &str), b: (&str, &str)) -> u64 {
    const QUIET: Duration = Duration::from_secs(5);
    let last = Cell::new(((0, 0), Instant::now()));
    wait_for(
        Duration::from_secs(120),
        &format!("{a:?} and {b:?} to have received the same messages"),
        || async {
            let x = count(&actuator(client, a.0, a.1, "sink").await, "received");
            let y = count(&actuator(client, b.0, b.1, "sink").await, "received");
            let (seen, since) = last.get();
            if seen != (x, y) {
                last.set(((x, y), Instant::now()));
                return Ok(false);
            }
            Ok(x == y && x > 0 && since.elapsed() >= QUIET)
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}: received {:?}", last.get().0));
    last.get().0.0
}

/// Waits (up to 2 minutes) until no pod matches `selector` in
/// [`EXAMPLES_NS`], terminating ones included: a JVM stopped by SIGTERM
/// keeps running, and its pod stays `Failed`, while it goes.
pub async fn wait_no_pods(client: &Client, selector: &str) {
    let pods = Api::<Pod>::namespaced(client.clone(), EXAMPLES_NS);
    wait_for(
        Duration::from_secs(120),
        &format!("the pods {selector} to go"),
        || async {
            let left = pods.list(&ListParams::default().labels(selector)).await?;
            Ok(left.items.is_empty())
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
}

/// Waits until no pod of the deleted `streams` is left: their Deployments
/// are garbage-collected after the Streams. Later tests see only live pods.
pub async fn wait_pods_gone(client: &Client, streams: &[&str]) {
    for stream in streams {
        wait_no_pods(client, &format!("eventflow.dev/stream={stream}")).await;
    }
}
