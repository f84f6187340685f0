//! Measures the account app on this machine and prints the figures (no
//! assertions): accounts/s from create to ACTIVE and p50/p99 latency with
//! SQLite and with PostgreSQL (web + worker as two processes), beside the raw
//! broker rate measured in the same run (publish with confirms + consume with
//! acks, same message size); RSS of each role idle and under load; time from
//! process start to `/readyz`.
//!
//! ```text
//! eval "$(e2e/cluster/services.sh env)"
//! cargo build --release -p eventflow-account --bin account
//! cargo run --release -p eventflow-account --example account-bench -- [accounts=1000] [clients=32]
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use eventflow_contract::{Bindings, Topology, bindings::SubscriptionRequest, declare::declare};
use eventflow_runtime::testing::{
    AppProcess, amqp_uri, fresh_postgres, fresh_sqlite, unique_namespace,
};
use futures_lite::StreamExt;
use lapin::{
    BasicProperties, Connection, ConnectionProperties,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
        ConfirmSelectOptions, QueueBindOptions, QueueDeclareOptions,
    },
    types::FieldTable,
};
use serde_json::json;

fn account_binary() -> String {
    if let Ok(bin) = std::env::var("ACCOUNT_BIN") {
        return bin;
    }
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/examples/bench -> target/<profile>/account
    exe.parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("account")
        .display()
        .to_string()
}

fn bindings(ns: &str) -> Bindings {
    Bindings::standalone(
        ns,
        &["account"],
        &[SubscriptionRequest {
            destination: "account",
            group: "account-worker",
            routing_keys: vec!["account.*".into()],
            max_attempts: 5,
            backoff_ms: 1000,
        }],
    )
}

/// Accounts created one at a time for the unloaded latency.
const SEQUENTIAL: usize = 200;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or("?".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
}

struct Run {
    label: &'static str,
    /// One account at a time: create, wait for ACTIVE, next.
    idle_p50: Duration,
    idle_p99: Duration,
    rate: f64,
    p50: Duration,
    p99: Duration,
    web_ready: Duration,
    worker_ready: Duration,
    web_idle: Option<u64>,
    worker_idle: Option<u64>,
    web_peak: u64,
    worker_peak: u64,
    message_bytes: usize,
}

async fn run(label: &'static str, database_url: String, accounts: usize, clients: usize) -> Run {
    let ns = unique_namespace();
    let b = bindings(&ns);
    let conn = Connection::connect(&amqp_uri(), ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    declare(&ch, &Topology::of(&b), false).await.unwrap();
    let tap = format!("{ns}.bench-tap");
    ch.queue_declare(
        tap.as_str().into(),
        QueueDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    let exchange = b.exchange_for("account").unwrap().to_owned();
    ch.queue_bind(
        tap.as_str().into(),
        exchange.as_str().into(),
        "account.ACCOUNT_ACTIVATED".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();

    let env = vec![
        ("EVENTFLOW_BROKER_URI", amqp_uri()),
        ("EVENTFLOW_BINDINGS", b.to_json()),
        ("DATABASE_URL", database_url),
        ("RUST_LOG", "warn".to_owned()),
    ];
    let bin = account_binary();
    let mut web = AppProcess::spawn(&bin, "web", &env);
    let web_ready = web.wait_ready(Duration::from_secs(60)).await;
    let mut worker = AppProcess::spawn(&bin, "worker", &env);
    let worker_ready = worker.wait_ready(Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (web_idle, worker_idle) = (web.rss_kib(), worker.rss_kib());

    // ACTIVATED events arrive on the tap: the moment each account became ACTIVE (as seen on the broker).
    let started: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let latencies: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let message_bytes = Arc::new(Mutex::new(0usize));
    let mut consumer = ch
        .basic_consume(
            tap.as_str().into(),
            "bench".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    // Unloaded latency first: one account in flight at a time.
    let http = reqwest::Client::new();
    let mut unloaded = Vec::new();
    for i in 0..SEQUENTIAL {
        let t0 = Instant::now();
        let r = http
            .post(format!("{}/v1/accounts", web.http))
            .json(&json!({ "firstName": "Seq", "lastName": format!("N{i}"), "email": format!("seq{i}@example.com") }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let Some(Ok(_)) = consumer.next().await else {
            panic!("tap closed")
        };
        unloaded.push(t0.elapsed());
    }
    unloaded.sort();

    let tap_task = {
        let (started, latencies, message_bytes) =
            (started.clone(), latencies.clone(), message_bytes.clone());
        tokio::spawn(async move {
            let mut seen = 0;
            let mut last = Instant::now();
            while seen < accounts {
                let Some(Ok(d)) = consumer.next().await else {
                    break;
                };
                let now = Instant::now();
                let ce: serde_json::Value = serde_json::from_slice(&d.data).unwrap();
                *message_bytes.lock().unwrap() = d.data.len();
                let id = ce["subject"].as_str().unwrap_or_default().to_owned();
                loop {
                    let t0 = started.lock().unwrap().get(&id).copied();
                    if let Some(t0) = t0 {
                        latencies.lock().unwrap().push(now - t0);
                        break;
                    }
                    // The POST's response can arrive after the account is already ACTIVE.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                seen += 1;
                last = now;
            }
            last
        })
    };

    let peaks = Arc::new(Mutex::new((0u64, 0u64)));
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let (web_pid, worker_pid) = (web.child.id(), worker.child.id());
    let sampler = {
        let (peaks, sampling) = (peaks.clone(), sampling.clone());
        tokio::spawn(async move {
            let rss = |pid: u32| {
                std::fs::read_to_string(format!("/proc/{pid}/status"))
                    .ok()
                    .and_then(|s| {
                        s.lines().find_map(|l| l.strip_prefix("VmRSS:")).map(|v| {
                            v.trim()
                                .trim_end_matches("kB")
                                .trim()
                                .parse::<u64>()
                                .unwrap_or(0)
                        })
                    })
                    .unwrap_or(0)
            };
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                {
                    let mut p = peaks.lock().unwrap();
                    p.0 = p.0.max(rss(web_pid));
                    p.1 = p.1.max(rss(worker_pid));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    let begin = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut posters = Vec::new();
    for _ in 0..clients {
        let (http, next, started, url) = (
            http.clone(),
            next.clone(),
            started.clone(),
            format!("{}/v1/accounts", web.http),
        );
        posters.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= accounts {
                    break;
                }
                let t0 = Instant::now();
                let r = http
                    .post(&url)
                    .json(&json!({ "firstName": "Bench", "lastName": format!("N{i}"), "email": format!("bench{i}@example.com") }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
                let body: serde_json::Value = r.json().await.unwrap();
                started.lock().unwrap().insert(body["accountId"].as_str().unwrap().to_owned(), t0);
            }
        }));
    }
    for p in posters {
        p.await.unwrap();
    }
    let last = tokio::time::timeout(Duration::from_secs(300), tap_task)
        .await
        .expect("every account ACTIVE in 5 min")
        .unwrap();
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    sampler.await.unwrap();
    let elapsed = last - begin;
    let mut l = latencies.lock().unwrap().clone();
    l.sort();
    let (web_peak, worker_peak) = *peaks.lock().unwrap();
    let message_bytes = *message_bytes.lock().unwrap();
    let _ = conn.close(200, "bye".into()).await;
    Run {
        label,
        idle_p50: percentile(&unloaded, 0.50),
        idle_p99: percentile(&unloaded, 0.99),
        rate: accounts as f64 / elapsed.as_secs_f64(),
        p50: percentile(&l, 0.50),
        p99: percentile(&l, 0.99),
        web_ready,
        worker_ready,
        web_idle,
        worker_idle,
        web_peak,
        worker_peak,
        message_bytes,
    }
}

/// Publishes `count` messages of `size` bytes with confirms while a consumer
/// acks them; returns messages/s end to end.
async fn raw_broker_rate(count: usize, size: usize) -> f64 {
    let queue = format!("{}.raw", unique_namespace());
    let conn = Connection::connect(&amqp_uri(), ConnectionProperties::default())
        .await
        .unwrap();
    let publisher = conn.create_channel().await.unwrap();
    publisher
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let options = QueueDeclareOptions {
        durable: true,
        auto_delete: true,
        ..Default::default()
    };
    publisher
        .queue_declare(queue.as_str().into(), options, FieldTable::default())
        .await
        .unwrap();
    let consumer_ch = conn.create_channel().await.unwrap();
    consumer_ch
        .basic_qos(32, BasicQosOptions::default())
        .await
        .unwrap();
    let mut consumer = consumer_ch
        .basic_consume(
            queue.as_str().into(),
            "raw".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let begin = Instant::now();
    let consuming = tokio::spawn(async move {
        for _ in 0..count {
            let d = consumer.next().await.unwrap().unwrap();
            d.ack(BasicAckOptions::default()).await.unwrap();
        }
    });
    let body = vec![b'x'; size];
    let mut confirms = Vec::new();
    for _ in 0..count {
        let c = publisher
            .basic_publish(
                "".into(),
                queue.as_str().into(),
                BasicPublishOptions::default(),
                &body,
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .unwrap();
        confirms.push(c);
        // The relay's batch size: publish a window, then wait for its confirms.
        if confirms.len() == 256 {
            for c in confirms.drain(..) {
                assert!(c.await.unwrap().is_ack());
            }
        }
    }
    for c in confirms {
        assert!(c.await.unwrap().is_ack());
    }
    consuming.await.unwrap();
    let rate = count as f64 / begin.elapsed().as_secs_f64();
    let _ = conn.close(200, "bye".into()).await;
    rate
}

async fn idle_role(role: &str, env: &[(&str, String)]) -> (Duration, Option<u64>) {
    let mut p = AppProcess::spawn(&account_binary(), role, env);
    let ready = p.wait_ready(Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    (ready, p.rss_kib())
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let accounts = args.first().copied().unwrap_or(1000);
    let clients = args.get(1).copied().unwrap_or(32);
    println!(
        "account benchmark: {accounts} accounts, {clients} concurrent HTTP clients, web + worker processes"
    );
    let sqlite = run("SQLite", fresh_sqlite(), accounts, clients).await;
    let postgres = run("PostgreSQL", fresh_postgres().await, accounts, clients).await;
    let size = sqlite.message_bytes.max(postgres.message_bytes);
    let raw = raw_broker_rate(accounts * 4, size).await;
    let all_env = vec![
        ("EVENTFLOW_BROKER_URI", amqp_uri()),
        ("POD_NAMESPACE", unique_namespace()),
        ("DATABASE_URL", fresh_sqlite()),
        ("RUST_LOG", "warn".to_owned()),
    ];
    let (all_ready, all_idle) = idle_role("all", &all_env).await;
    let (functions_ready, functions_idle) = idle_role("functions", &[]).await;

    println!();
    println!(
        "raw broker (publish w/ confirms + consume w/ acks, {size}-byte messages): {raw:.0} msg/s = {:.0} accounts/s at 4 events each",
        raw / 4.0
    );
    for r in [&sqlite, &postgres] {
        println!(
            "{:<10} saturated ({clients} clients): create->ACTIVE {:>7.1} accounts/s ({:.1}% of the raw broker's account rate)  p50 {:>6.1} ms  p99 {:>6.1} ms",
            r.label,
            r.rate,
            100.0 * r.rate / (raw / 4.0),
            r.p50.as_secs_f64() * 1e3,
            r.p99.as_secs_f64() * 1e3
        );
        println!(
            "{:<10} one at a time: p50 {:>6.1} ms  p99 {:>6.1} ms (create -> ACTIVATED on the broker)",
            "",
            r.idle_p50.as_secs_f64() * 1e3,
            r.idle_p99.as_secs_f64() * 1e3
        );
        println!(
            "{:<10} start->/readyz web {:.0} ms, worker {:.0} ms;  RSS idle web {} worker {};  under load web {} worker {}",
            "",
            r.web_ready.as_secs_f64() * 1e3,
            r.worker_ready.as_secs_f64() * 1e3,
            mib(r.web_idle),
            mib(r.worker_idle),
            mib(Some(r.web_peak)),
            mib(Some(r.worker_peak))
        );
    }
    println!(
        "role all (SQLite): start->/readyz {:.0} ms, RSS idle {};  role functions: start->/readyz {:.0} ms, RSS idle {}",
        all_ready.as_secs_f64() * 1e3,
        mib(all_idle),
        functions_ready.as_secs_f64() * 1e3,
        mib(functions_idle)
    );
}
