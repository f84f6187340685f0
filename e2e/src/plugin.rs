//! Day-2 operations the way a user makes them: `kubectl eventflow` (the
//! plugin `make e2e` puts on the PATH), and what the Stream's status then
//! says, timed.

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::{Api, Client};
use serde_json::Value;

use crate::tools::run_tool;

/// `kubectl eventflow <args> -n <namespace>`; its standard output.
pub fn eventflow(namespace: &str, args: &[&str]) -> Result<String> {
    let mut all = vec!["eventflow"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-n", namespace]);
    run_tool("kubectl", &all, None)
}

/// The Streams of `namespace`.
pub fn streams_in(client: &Client, namespace: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("eventflow.dev", "v1alpha1", "Stream");
    Api::namespaced_with(client.clone(), namespace, &ApiResource::from_gvk(&gvk))
}

/// The condition `type_` of a Stream's status (`Value::Null` when absent).
pub fn condition<'a>(stream: &'a DynamicObject, type_: &str) -> &'a Value {
    stream.data["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .unwrap_or(&Value::Null)
}

/// Polls the Stream every 500 ms until `done` says its status is what is
/// awaited (`Ok(true)`), or fails (`Err`: the status says it never will);
/// returns the Stream and how long it took. Every new phase, status and
/// reason of condition `watch` is printed with its message, so a run tells
/// the story.
pub async fn await_stream(
    client: &Client,
    namespace: &str,
    name: &str,
    watch: &str,
    timeout: Duration,
    mut done: impl FnMut(&DynamicObject) -> Result<bool>,
) -> Result<(DynamicObject, Duration)> {
    let api = streams_in(client, namespace);
    let started = Instant::now();
    let mut seen = String::new();
    loop {
        let s = api.get(name).await?;
        let c = condition(&s, watch);
        let now = format!(
            "phase {} {watch} {} {}",
            s.data["status"]["phase"].as_str().unwrap_or("-"),
            c["status"].as_str().unwrap_or("-"),
            c["reason"].as_str().unwrap_or("-"),
        );
        if now != seen {
            println!(
                "  [{:>5.1} s] {name}: {now}: {}",
                started.elapsed().as_secs_f64(),
                c["message"].as_str().unwrap_or("")
            );
            seen = now;
        }
        if done(&s)? {
            return Ok((s, started.elapsed()));
        }
        if started.elapsed() > timeout {
            return Err(anyhow!(
                "{name} not there after {timeout:?}: {}",
                s.data["status"]
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
