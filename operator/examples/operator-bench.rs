//! Benchmark: an operator process reconciles N Streams (default 500) on the
//! real kube-apiserver and RabbitMQ. Prints the time until every Stream's
//! `status.observedGeneration` equals its generation (after create, and
//! after a spec change of all of them), the time to delete them all through
//! the finalizer, and the operator's peak RSS (VmHWM).
//!
//! ```text
//! eval "$(e2e/cluster/services.sh env)"; eval "$(e2e/cluster/control-plane.sh env)"
//! cargo run --release -p eventflow-operator --example operator-bench -- 500
//! ```
//! The Streams have worker apps only: the control-plane-only API server
//! allocates ClusterIPs from a /24, so 500 web Services would not fit.
//!
//! The operator runs in a child process (this binary re-executed with
//! `--operator`, calling the same `run::run` as the real binary), so its
//! memory is measured alone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use eventflow_operator::{
    api::{EventBroker, Stream},
    run::{Config, run},
};
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::{
    api::core::v1::{Namespace, Secret},
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, CustomResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};
use serde_json::json;

fn need(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| panic!("{var} is not set: eval \"$(e2e/cluster/services.sh env)\"; eval \"$(e2e/cluster/control-plane.sh env)\""))
}

async fn operator_mode() -> anyhow::Result<()> {
    let client = Client::try_default().await?;
    let config = Config::from_env()?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    run(client, config, async move {
        term.recv().await;
    })
    .await
}

fn stream(i: usize) -> Stream {
    serde_json::from_value(json!({
        "apiVersion": "eventflow.dev/v1alpha1", "kind": "Stream",
        "metadata": {"name": format!("s{i}")},
        "spec": {"broker": "rabbit", "apps": [
            {"name": "api", "image": "eventflow/account:0.1.0", "worker": {},
             "publishes": [format!("d{i}")],
             "subscribes": [{"destination": format!("d{i}"), "eventTypes": ["account.*"]}]},
            {"name": "audit", "image": "eventflow/audit:0.1.0", "worker": {},
             "subscribes": [{"destination": format!("d{i}")}]}
        ]}
    }))
    .unwrap()
}

fn vm(pid: u32, field: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .map(|l| l[field.len()..].trim().to_owned())
        .unwrap_or_else(|| "?".into())
}

async fn wait_all(api: &Api<Stream>, n: usize, generation: i64) -> Duration {
    let started = Instant::now();
    loop {
        let list = api.list(&ListParams::default()).await.unwrap();
        let fresh = list
            .items
            .iter()
            .filter(|s| {
                s.metadata.generation == Some(generation)
                    && s.status.as_ref().and_then(|st| st.observed_generation) == Some(generation)
            })
            .count();
        if fresh == n {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "only {fresh}/{n} converged after 15 minutes"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The operator's `/metrics` (plain HTTP/1.1, no client dependency).
async fn fetch_metrics(port: u16) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return String::new();
    };
    let _ = stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await;
    let mut body = String::new();
    let _ = stream.read_to_string(&mut body).await;
    body
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--operator") {
        return operator_mode().await;
    }
    let n: usize = std::env::args()
        .nth(1)
        .map_or(500, |a| a.parse().expect("the number of Streams"));
    need("KUBECONFIG");
    let uri = need("EVENTFLOW_TEST_AMQP_URI");
    let client = Client::try_default().await?;
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    for crd in [Stream::crd(), EventBroker::crd()] {
        crds.patch(
            &crd.metadata.name.clone().unwrap(),
            &PatchParams::apply("eventflow-bench").force(),
            &Patch::Apply(&crd),
        )
        .await?;
    }
    let ns = format!("bench-{}", std::process::id());
    let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await?;
    let secret: Secret = serde_json::from_value(
        json!({"metadata": {"name": "rabbit-uri"}, "stringData": {"uri": uri}}),
    )?;
    Api::<Secret>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &secret)
        .await?;
    let broker: EventBroker = serde_json::from_value(json!({
        "apiVersion": "eventflow.dev/v1alpha1", "kind": "EventBroker",
        "metadata": {"name": "rabbit"}, "spec": {"external": {"connectionSecret": {"name": "rabbit-uri"}}}
    }))?;
    Api::<EventBroker>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &broker)
        .await?;

    let admin = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut child = Command::new(std::env::current_exe()?)
        .arg("--operator")
        .env("EVENTFLOW_OPERATOR_NAMESPACE", &ns)
        .env("EVENTFLOW_OPERATOR_LEASE_NAMESPACE", &ns)
        .env(
            "EVENTFLOW_OPERATOR_ADMIN_ADDR",
            format!("127.0.0.1:{admin}"),
        )
        .stdout(Stdio::null())
        .spawn()?;
    let pid = child.id();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = vm(pid, "VmRSS:");

    let api = Api::<Stream>::namespaced(client.clone(), &ns);
    let started = Instant::now();
    stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move {
                api.create(&PostParams::default(), &stream(i))
                    .await
                    .map(|_| ())
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await?;
    let created = started.elapsed();
    let converge_create = wait_all(&api, n, 1).await + created;

    let started = Instant::now();
    stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move {
                let mut s = api.get(&format!("s{i}")).await?;
                if let Some(worker) = s.spec.apps[0].worker.as_mut() {
                    worker.replicas = Some(2);
                }
                s.metadata.managed_fields = None;
                api.replace(&format!("s{i}"), &PostParams::default(), &s)
                    .await
                    .map(|_| ())
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await?;
    let converge_update = wait_all(&api, n, 2).await;
    let update_total = started.elapsed();
    let peak_after_converge = vm(pid, "VmHWM:");

    let started = Instant::now();
    api.delete_collection(&DeleteParams::default(), &ListParams::default())
        .await?;
    loop {
        let left = api.list_metadata(&ListParams::default()).await?.items.len();
        if left == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "{left} Streams still there after 15 minutes"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let deleted = started.elapsed();
    let peak = vm(pid, "VmHWM:");
    let metrics = fetch_metrics(admin).await;
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    let _ = child.wait();
    let _ = Api::<Namespace>::all(client.clone())
        .delete(&ns, &DeleteParams::default())
        .await;

    println!(
        "streams:                                 {n} (2 worker apps: 2 Deployments, 3 exchanges, 6 queues each)"
    );
    println!(
        "create -> all observedGeneration == 1:   {:.1} s (creating took {:.1} s)",
        converge_create.as_secs_f64(),
        created.as_secs_f64()
    );
    println!(
        "update -> all observedGeneration == 2:   {:.1} s (from the first update)",
        update_total.as_secs_f64()
    );
    println!(
        "  of which waiting after the last update: {:.1} s",
        converge_update.as_secs_f64()
    );
    println!(
        "delete all through the finalizer:        {:.1} s",
        deleted.as_secs_f64()
    );
    for line in metrics.lines().filter(|l| {
        l.contains("reconciles_total")
            || l.contains("errors_total")
            || l.contains("duration_seconds_sum")
            || l.contains("duration_seconds_count")
    }) {
        println!("  {line}");
    }
    println!("operator RSS idle:                       {idle}");
    println!("operator peak RSS after convergence:     {peak_after_converge}");
    println!("operator peak RSS overall (VmHWM):       {peak}");
    Ok(())
}
