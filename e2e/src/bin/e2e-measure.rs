//! `e2e-measure` (`make measure`): measures the example system on the real
//! cluster in `KUBECONFIG` and prints the figures. It asserts nothing about
//! speed; it reports.
//!
//! 1. with `--fresh`: the example system is torn down (Streams and
//!    EventBrokers first, while the operator can still run their finalizers,
//!    then `kubectl delete -f examples/`, which waits for the namespace to go)
//!    and the time from `kubectl apply -f examples/` until every EventBroker
//!    and Stream is Ready is measured. Without it the system is only brought
//!    up when it is not (as the e2e tests do).
//! 2. throughput and cost: a load-simulator run through a port-forward,
//!    with the events each context's global feed gained during the run, and
//!    the cost table (`eventflow_e2e::cost`): CPU seconds per order of each
//!    component read on the node, and the SQL statements, HTTP requests
//!    between roles and messages per order. `--statements` lists the
//!    statements run most often.
//! 3. memory at steady state: the kubelet summary (through the API server) of
//!    every pod in the example and operator namespaces; our app pods beside
//!    the pods of Spring Cloud Stream apps (`examples/spring/50-ticktock.yaml`,
//!    applied with 1 and 2), measured on the same node.
//!
//! `--memory-only` skips 1 and 2 and changes nothing on the cluster.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use eventflow_e2e::{
    CONTEXTS, EXAMPLES_NS, OPERATOR_NS, apply_examples_and_wait, client, context_feed_counts, cost,
    example_system, forward_service, install_operator, run_load, run_tool,
};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::{Api, Client};
use serde_json::{Value, json};

/// Seconds the system is left alone after the load run before memory is read.
const SETTLE_SECONDS: u64 = 10;

const MIB: f64 = 1024.0 * 1024.0;

const USAGE: &str = "\
usage: e2e-measure [--fresh] [--orders N] [--rate R] [--statements] [--memory-only]

  --fresh        tear the example system down and time apply -> Ready
  --orders N     orders the load run posts (default 1500)
  --rate R       orders posted per second (default 20)
  --statements   list the SQL statements the run made most often (resets
                 PostgreSQL's pg_stat_statements first)
  --memory-only  only read the memory of the running pods (changes nothing)

Needs KUBECONFIG and kubectl/helm on PATH: eval \"$(e2e/cluster/cluster.sh env)\"";

struct Args {
    fresh: bool,
    memory_only: bool,
    statements: bool,
    orders: u32,
    rate: f64,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        fresh: false,
        memory_only: false,
        statements: false,
        orders: 1500,
        rate: 20.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .ok_or_else(|| anyhow!("{name} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--fresh" => args.fresh = true,
            "--memory-only" => args.memory_only = true,
            "--statements" => args.statements = true,
            "--orders" => {
                let v = value("--orders")?;
                args.orders = v.parse().with_context(|| format!("--orders {v}"))?;
            }
            "--rate" => {
                let v = value("--rate")?;
                args.rate = v.parse().with_context(|| format!("--rate {v}"))?;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "" => {} // an empty MEASURE_ARGS from make
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    if args.fresh && args.memory_only {
        bail!("--fresh and --memory-only exclude each other");
    }
    if args.orders == 0 || !(args.rate.is_finite() && args.rate > 0.0) {
        bail!("--orders and --rate must be positive");
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = parse_args()?;
    let client = client().await;
    println!("eventflow measurement (namespaces {EXAMPLES_NS}, {OPERATOR_NS})");
    if !args.memory_only {
        println!();
        if args.fresh {
            apply_to_ready()?;
        } else {
            println!("== 1. apply -> Ready: skipped (no --fresh); ensuring the system is up");
            example_system();
        }
        println!();
        throughput(&client, &args).await?;
        println!();
        spring_stream()?;
        println!("(waiting {SETTLE_SECONDS} s for a steady state)");
        tokio::time::sleep(Duration::from_secs(SETTLE_SECONDS)).await;
    }
    println!();
    memory(&client).await
}

fn kubectl(args: &[&str]) -> Result<String> {
    run_tool("kubectl", args, None)
}

/// Data Flow's `time | transform | log` as Spring Cloud Stream apps beside
/// ours, for their memory (idempotent).
fn spring_stream() -> Result<()> {
    kubectl(&[
        "apply",
        "--server-side",
        "-f",
        "examples/spring/50-ticktock.yaml",
    ])?;
    kubectl(&[
        "-n",
        EXAMPLES_NS,
        "wait",
        "--for=condition=Ready",
        "stream/ticktock",
        "--timeout=600s",
    ])?;
    println!("  Spring Cloud Stream apps: examples/spring/50-ticktock.yaml is Ready");
    Ok(())
}

/// 1: tears the example system down, then times apply -> every EventBroker
/// and Stream Ready.
fn apply_to_ready() -> Result<()> {
    println!("== 1. apply -> Ready (fresh)");
    // The operator goes in first: it runs the finalizers of the Streams and
    // EventBrokers deleted below. On an installed chart this is a no-op.
    install_operator()?;
    let t = Instant::now();
    kubectl(&[
        "-n",
        EXAMPLES_NS,
        "delete",
        "streams.eventflow.dev,eventbrokers.eventflow.dev",
        "--all",
        "--ignore-not-found",
        "--wait",
        "--timeout=300s",
    ])?;
    kubectl(&[
        "delete",
        "-f",
        "examples/",
        "--ignore-not-found",
        "--wait",
        "--timeout=600s",
    ])?;
    println!(
        "  torn down (Streams, EventBrokers, then examples/ and the namespace) in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    apply_examples_and_wait()?;
    let secs = t.elapsed().as_secs_f64();
    println!("  kubectl apply -f examples/ -> every EventBroker and Stream Ready: {secs:.1} s");
    let state = kubectl(&["-n", EXAMPLES_NS, "get", "eventbrokers,streams"])?;
    for line in state.lines() {
        println!("    {line}");
    }
    Ok(())
}

fn total(counts: &BTreeMap<String, u64>) -> u64 {
    counts.values().sum()
}

fn opt_ms(v: &Value) -> String {
    v.as_u64()
        .map_or_else(|| "-".into(), |ms| format!("{ms} ms"))
}

/// 2: a load-simulator run, with the events appended to the feeds meanwhile.
async fn throughput(client: &Client, args: &Args) -> Result<()> {
    println!("== 2. throughput (load simulator)");
    // No request may hang the measurement (a port-forward to a pod that
    // restarted); the load run's own wait is bounded by `run_load`.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    let plan = json!({
        "orders": args.orders,
        "ratePerSecond": args.rate,
        "failureShare": 0.2,
        "accounts": 5,
        "products": 3,
        "stockPerProduct": 1000,
        "followSeconds": 300,
    });
    println!("  plan: {plan}");
    let before = context_feed_counts(client, &http)
        .await
        .context("counting the feeds before the run")?;
    let sim = forward_service(client, EXAMPLES_NS, "load-simulator-web", 8080).await?;
    if args.statements {
        cost::counts::reset_statements()?;
    }
    let work_before = cost::counts::counts(client, &http).await?;
    let cpu_before = cost::sample(client).await?;
    // Posting takes orders / rate; each order is then followed for at most
    // followSeconds; a minute more for set-up.
    let timeout = Duration::from_secs_f64(f64::from(args.orders) / args.rate + 300.0 + 60.0);
    let report = run_load(&http, &sim, &plan, timeout).await?;
    let cpu = cost::spent(&cpu_before, &cost::sample(client).await?);
    let work = cost::counts::counts(client, &http)
        .await?
        .since(&work_before);
    let after = context_feed_counts(client, &http)
        .await
        .context("counting the feeds after the run")?;

    let elapsed = report["elapsedSeconds"].as_f64().unwrap_or(0.0);
    let outcomes = &report["outcomes"];
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    println!(
        "  run {}: {} in {elapsed:.1} s",
        report["runId"].as_str().unwrap_or("?"),
        report["status"].as_str().unwrap_or("?")
    );
    if let Some(e) = report["lastError"].as_str() {
        println!(
            "  request errors: {} (last: {e})",
            n(&report["requestErrors"])
        );
    }
    println!(
        "  orders posted:         {} ({} designed to fail)",
        n(&report["ordersPosted"]),
        n(&report["ordersDesignedToFail"])
    );
    println!(
        "  succeeded/failed/unresolved: {} / {} / {}{}",
        n(&outcomes["ORDER_SUCCEEDED"]),
        n(&outcomes["ORDER_FAILED"]),
        n(&outcomes["unresolved"]),
        match n(&outcomes["pending"]) {
            0 => String::new(),
            p => format!(" ({p} pending)"),
        }
    );
    println!(
        "  orders/s (final states / elapsed, from the report): {:.2}",
        report["ordersPerSecond"].as_f64().unwrap_or(0.0)
    );
    let latency = &report["latencyMs"];
    println!(
        "  latency post -> final state: p50 {}, p99 {}, max {}",
        opt_ms(&latency["p50"]),
        opt_ms(&latency["p99"]),
        opt_ms(&latency["max"])
    );
    let empty = BTreeMap::new();
    let delta = |ctx: &str| {
        let b = before.get(ctx).unwrap_or(&empty);
        let a = after.get(ctx).unwrap_or(&empty);
        total(a).saturating_sub(total(b))
    };
    let events: u64 = CONTEXTS.iter().map(|c| delta(c)).sum();
    let rate = if elapsed > 0.0 {
        format!("{:.1}", events as f64 / elapsed)
    } else {
        "-".into()
    };
    println!("  events appended during the run: {events} in {elapsed:.1} s = {rate} events/s");
    let per_context: Vec<String> = CONTEXTS
        .iter()
        .map(|c| format!("{c} +{}", delta(c)))
        .collect();
    println!("  per context: {}", per_context.join(", "));
    println!();
    println!(
        "== 2b. cost per order (CPU read on the node; work from our metrics, PostgreSQL, the broker)"
    );
    let final_orders = n(&outcomes["ORDER_SUCCEEDED"]) + n(&outcomes["ORDER_FAILED"]);
    cost::table::print(&cpu, &work, final_orders);
    if args.statements {
        println!("  statements run most often (calls per order):");
        for (role, query, calls) in cost::counts::top_statements(25)? {
            let per_order = calls as f64 / final_orders.max(1) as f64;
            let query: String = query.chars().take(150).collect();
            println!("    {per_order:>6.2}  {role:<10} {query}");
        }
    }
    Ok(())
}

/// One pod's memory, from the kubelet summary.
struct PodMemory {
    namespace: String,
    name: String,
    kind: String,
    working_set: Option<u64>,
    rss: Option<u64>,
}

/// `memory.<field>` of the pod, or the sum over its containers when the pod
/// level is missing.
fn pod_bytes(stats: &Value, field: &str) -> Option<u64> {
    stats["memory"][field].as_u64().or_else(|| {
        let per_container: Vec<u64> = stats["containers"]
            .as_array()?
            .iter()
            .filter_map(|c| c["memory"][field].as_u64())
            .collect();
        (!per_container.is_empty()).then(|| per_container.iter().sum())
    })
}

/// What a pod is: an app role (`<stream>/<app> <role>`), the broker, the
/// operator or something else (PostgreSQL).
fn kind_of(pod: &Pod) -> String {
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    let label = |k: &str| labels.get(k).cloned();
    if let Some(role) = label("eventflow.dev/role") {
        let app = label("eventflow.dev/app").unwrap_or_default();
        let stream = label("eventflow.dev/stream").unwrap_or_default();
        let what = match label("eventflow.dev/runtime").as_deref() {
            Some("spring-cloud-stream") => "spring",
            _ => "app",
        };
        format!("{what} {stream}/{app} {role}")
    } else if label("eventflow.dev/broker").is_some() {
        "broker".into()
    } else if pod.metadata.namespace.as_deref() == Some(OPERATOR_NS) {
        "operator".into()
    } else {
        label("app.kubernetes.io/name").unwrap_or_else(|| "other".into())
    }
}

fn sum(rows: &[&PodMemory], field: fn(&PodMemory) -> Option<u64>) -> u64 {
    rows.iter().filter_map(|r| field(r)).sum()
}
fn ws(r: &PodMemory) -> Option<u64> {
    r.working_set
}
fn rss(r: &PodMemory) -> Option<u64> {
    r.rss
}

fn mib(v: Option<u64>) -> String {
    v.map_or_else(|| "-".into(), |b| format!("{:.1}", b as f64 / MIB))
}

/// 3: memory of every pod in the example and operator namespaces.
async fn memory(client: &Client) -> Result<()> {
    println!("== 3. memory at steady state (kubelet summary via the API server)");
    let mut stats: BTreeMap<(String, String), Value> = BTreeMap::new();
    let nodes = Api::<Node>::all(client.clone())
        .list(&Default::default())
        .await?;
    for node in nodes.items {
        let name = node.metadata.name.unwrap_or_default();
        let request = kube::core::Request::new("/api/v1/nodes")
            .get_subresource("proxy/stats/summary", &name)
            .map_err(|e| anyhow!("{e}"))?;
        let summary: Value = client
            .request(request)
            .await
            .with_context(|| format!("GET /api/v1/nodes/{name}/proxy/stats/summary"))?;
        for p in summary["pods"].as_array().into_iter().flatten() {
            let pod_ref = &p["podRef"];
            let key = (
                pod_ref["namespace"].as_str().unwrap_or_default().to_owned(),
                pod_ref["name"].as_str().unwrap_or_default().to_owned(),
            );
            stats.insert(key, p.clone());
        }
    }

    let mut rows = Vec::new();
    for ns in [EXAMPLES_NS, OPERATOR_NS] {
        let pods = Api::<Pod>::namespaced(client.clone(), ns)
            .list(&Default::default())
            .await?;
        for pod in pods.items {
            if pod.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Running") {
                continue;
            }
            let name = pod.metadata.name.clone().unwrap_or_default();
            let s = stats.get(&(ns.to_owned(), name.clone()));
            rows.push(PodMemory {
                namespace: ns.to_owned(),
                kind: kind_of(&pod),
                working_set: s.and_then(|s| pod_bytes(s, "workingSetBytes")),
                rss: s.and_then(|s| pod_bytes(s, "rssBytes")),
                name,
            });
        }
    }
    if rows.is_empty() {
        println!("  no running pods in {EXAMPLES_NS} or {OPERATOR_NS}");
        return Ok(());
    }
    rows.sort_by(|a, b| (&a.namespace, &a.kind, &a.name).cmp(&(&b.namespace, &b.kind, &b.name)));

    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(3).max(3);
    let kind_width = rows.iter().map(|r| r.kind.len()).max().unwrap_or(4).max(4);
    println!(
        "  {:<width$}  {:<16}  {:<kind_width$}  {:>10}  {:>8}",
        "POD", "NAMESPACE", "WHAT", "WS MiB", "RSS MiB"
    );
    for r in &rows {
        println!(
            "  {:<width$}  {:<16}  {:<kind_width$}  {:>10}  {:>8}",
            r.name,
            r.namespace,
            r.kind,
            mib(r.working_set),
            mib(r.rss)
        );
    }

    // Totals per group: app roles, the operator, the rest (broker, PostgreSQL).
    let group = |r: &PodMemory| {
        if r.kind.starts_with("app ") {
            "app roles"
        } else if r.kind.starts_with("spring ") {
            "Spring app roles"
        } else if r.kind == "operator" {
            "operator"
        } else {
            "broker + database"
        }
    };
    println!();
    let all: Vec<&PodMemory> = rows.iter().collect();
    for g in [
        "app roles",
        "Spring app roles",
        "operator",
        "broker + database",
    ] {
        let in_group: Vec<&PodMemory> = rows.iter().filter(|r| group(r) == g).collect();
        if in_group.is_empty() {
            continue;
        }
        println!(
            "  {:<20} {:>3} pods  WS {:>8} MiB  RSS {:>8} MiB",
            g,
            in_group.len(),
            mib(Some(sum(&in_group, ws))),
            mib(Some(sum(&in_group, rss)))
        );
    }
    println!(
        "  {:<20} {:>3} pods  WS {:>8} MiB  RSS {:>8} MiB",
        "total",
        all.len(),
        mib(Some(sum(&all, ws))),
        mib(Some(sum(&all, rss)))
    );

    let with_rss = |g: &str| -> Vec<&PodMemory> {
        rows.iter()
            .filter(|r| group(r) == g && r.rss.is_some_and(|b| b > 0))
            .collect()
    };
    let (apps, spring) = (with_rss("app roles"), with_rss("Spring app roles"));
    if apps.is_empty() || spring.is_empty() {
        println!(
            "  no comparison: {} app role pods and {} Spring app pods with memory figures \
             (run without --memory-only to start examples/spring/50-ticktock.yaml)",
            apps.len(),
            spring.len()
        );
        return Ok(());
    }
    let avg = |pods: &[&PodMemory], f: fn(&PodMemory) -> Option<u64>| {
        sum(pods, f) as f64 / pods.len() as f64 / MIB
    };
    let (ours, theirs) = (avg(&apps, rss), avg(&spring, rss));
    println!();
    println!(
        "  avg pod RSS: ours {ours:.1} MiB ({} pods) vs Spring Cloud Stream {theirs:.1} MiB ({} pods), \
         same node = 1/{:.1}",
        apps.len(),
        spring.len(),
        theirs / ours
    );
    println!(
        "  working set: ours {:.1} MiB vs Spring {:.1} MiB per pod",
        avg(&apps, ws),
        avg(&spring, ws)
    );
    println!(
        "  our {} app pods: {:.0} MiB RSS; as Spring apps at the measured average: ~{:.0} MiB",
        apps.len(),
        sum(&apps, rss) as f64 / MIB,
        apps.len() as f64 * theirs
    );
    Ok(())
}
