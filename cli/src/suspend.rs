//! `suspend` and `resume`: set `spec.suspend` of a Stream (what `kubectl
//! patch` would do); the operator drains and scales to zero, or restores
//! the replicas. `--wait` follows the status: the `Suspended` condition
//! until `Drained` (or `DrainTimedOut`), or the phase until `Running`.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use eventflow_operator::api::{Stream, StreamPhase};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use serde_json::json;

use crate::cluster::Target;

const POLL: Duration = Duration::from_secs(1);

/// Parses `90s`, `5m`, `1h` or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 90s, 5m, 1h)"))?;
    let seconds = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("{s:?}: the unit must be s, m or h")),
    };
    Ok(Duration::from_secs(seconds))
}

fn condition<'a>(stream: &'a Stream, type_: &str) -> Option<&'a Condition> {
    stream
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

/// Whether the status describes the Stream's current spec.
fn fresh(stream: &Stream) -> bool {
    stream.status.as_ref().and_then(|s| s.observed_generation) == stream.metadata.generation
}

async fn set_suspend(api: &Api<Stream>, name: &str, on: bool) -> anyhow::Result<Stream> {
    let current = api.get_opt(name).await?;
    let Some(current) = current else {
        bail!(
            "Stream {name} not found in namespace {}",
            api.namespace().unwrap_or("default")
        );
    };
    if current.spec.suspend == on {
        return Ok(current);
    }
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"suspend": on}})),
    )
    .await
    .with_context(|| format!("cannot set spec.suspend of Stream {name}"))
}

/// Sets `spec.suspend` of Stream `name` to `on` and prints what happened
/// (`changed` or, when it already was, `unchanged`); the Streams' API and
/// the namespace.
async fn switch(
    target: &Target,
    name: &str,
    on: bool,
    changed: &str,
    unchanged: &str,
) -> anyhow::Result<(Api<Stream>, String)> {
    let cluster = target.connect().await?;
    let api = Api::<Stream>::namespaced(cluster.client, &cluster.namespace);
    let before = api.get_opt(name).await?.map(|s| s.spec.suspend);
    set_suspend(&api, name, on).await?;
    let what = if before == Some(on) {
        unchanged
    } else {
        changed
    };
    println!("stream.eventflow.dev/{name} {what}");
    Ok((api, cluster.namespace))
}

/// `suspend STREAM [--wait] [--timeout]`.
pub async fn suspend(
    target: &Target,
    name: &str,
    wait: bool,
    timeout: Duration,
) -> anyhow::Result<()> {
    let (api, namespace) = switch(
        target,
        name,
        true,
        "suspended (spec.suspend: true): its workers drain, then its web roles; each goes to zero replicas once drained",
        "is already suspended (spec.suspend: true)",
    )
    .await?;
    if !wait {
        println!("follow it with: kubectl get stream {name} -n {namespace} -w   (or --wait)");
        return Ok(());
    }
    let start = Instant::now();
    let mut last = String::new();
    loop {
        let stream = api.get(name).await?;
        if fresh(&stream)
            && let Some(c) = condition(&stream, "Suspended")
            && c.status == "True"
        {
            let line = format!("{}: {}", c.reason, c.message);
            if line != last {
                println!("{line}");
                last = line;
            }
            match c.reason.as_str() {
                "Drained" => {
                    println!(
                        "drained in {} s; messages published meanwhile wait in their queues",
                        start.elapsed().as_secs()
                    );
                    return Ok(());
                }
                "DrainTimedOut" => bail!(
                    "the drain timed out (spec.drainTimeoutSeconds); the Stream is scaled to zero anyway; what was left returns to its queues: {}",
                    c.message
                ),
                _ => {}
            }
        }
        if start.elapsed() >= timeout {
            if last.is_empty() {
                bail!(
                    "no word from the operator on Stream {name} after {} s (is it running?); spec.suspend stays true",
                    timeout.as_secs()
                );
            }
            bail!(
                "Stream {name} is still draining after {} s: {last}",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `resume STREAM [--wait] [--timeout]`.
pub async fn resume(
    target: &Target,
    name: &str,
    wait: bool,
    timeout: Duration,
) -> anyhow::Result<()> {
    let (api, _) = switch(
        target,
        name,
        false,
        "resumed (spec.suspend: false): its Deployments get the spec's replicas again and consume what waited",
        "is not suspended (spec.suspend: false)",
    )
    .await?;
    if !wait {
        return Ok(());
    }
    let start = Instant::now();
    let mut last = String::new();
    loop {
        let stream = api.get(name).await?;
        if fresh(&stream)
            && let Some(status) = &stream.status
        {
            let line = format!(
                "{:?}: {} workloads ready",
                status.phase,
                status.apps_ready.as_deref().unwrap_or("?")
            );
            if line != last {
                println!("{line}");
                last = line;
            }
            if status.phase == StreamPhase::Running {
                println!("running again after {} s", start.elapsed().as_secs());
                return Ok(());
            }
        }
        if start.elapsed() >= timeout {
            bail!(
                "Stream {name} is not Running after {} s: {last}",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_seconds_minutes_or_hours() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("5d").unwrap_err().contains("unit"));
        assert!(parse_duration("soon").is_err());
    }
}
