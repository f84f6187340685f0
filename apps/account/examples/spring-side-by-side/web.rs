//! `POST /v1/accounts` rounds: our account web role vs the Spring Boot web app.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use eventflow_runtime::testing::{
    AppProcess, amqp_uri, fresh_postgres, fresh_sqlite, unique_namespace,
};
use lapin::options::BasicGetOptions;
use serde_json::json;

use crate::{
    Args, READY_TIMEOUT,
    broker::{Broker, bindings},
    pieces::{Amqp, Pieces},
    process::{Figures, Proc, idle_rss, status_kib},
};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// One round of `POST /v1/accounts`.
pub(crate) struct Round {
    pub(crate) rate: f64,
    pub(crate) p50: Duration,
    pub(crate) p99: Duration,
}

async fn post_round(base: &str, round: usize, posts: usize, clients: usize) -> Round {
    let http = reqwest::Client::new();
    let next = Arc::new(AtomicUsize::new(0));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(posts)));
    let begin = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (http, next, latencies) = (http.clone(), next.clone(), latencies.clone());
        let url = format!("{base}/v1/accounts");
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= posts {
                    break;
                }
                let t0 = Instant::now();
                let r = http
                    .post(&url)
                    .json(&json!({ "firstName": "Bench", "lastName": format!("R{round}N{i}"), "email": format!("r{round}n{i}@example.com") }))
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("POST {url}: {e}"));
                let status = r.status();
                let body = r.bytes().await.unwrap_or_default();
                assert_eq!(
                    status,
                    201,
                    "POST {url}: {}",
                    String::from_utf8_lossy(&body)
                );
                latencies.lock().unwrap().push(t0.elapsed());
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = begin.elapsed();
    let mut l = latencies.lock().unwrap().clone();
    l.sort();
    Round {
        rate: posts as f64 / elapsed.as_secs_f64(),
        p50: percentile(&l, 0.50),
        p99: percentile(&l, 0.99),
    }
}

pub(crate) struct WebSide {
    pub(crate) process: Figures,
    pub(crate) rounds: Vec<Round>,
}

pub(crate) async fn our_web(p: &Pieces, a: &Args, broker: &mut Broker) -> (WebSide, Vec<u8>) {
    let ns = unique_namespace();
    let b = bindings(&ns);
    broker.declare(&b).await;
    let database = if a.postgres {
        fresh_postgres().await
    } else {
        fresh_sqlite()
    };
    let env = vec![
        ("EVENTFLOW_BROKER_URI", amqp_uri()),
        ("EVENTFLOW_BINDINGS", b.to_json()),
        ("DATABASE_URL", database),
        ("RUST_LOG", "warn".to_owned()),
    ];
    let mut web = AppProcess::spawn(&p.account_bin, "web", &env);
    let ready = web.wait_ready(READY_TIMEOUT).await;
    let pid = web.child.id();
    let idle_kib = idle_rss(pid).await;
    let mut rounds = Vec::new();
    for round in 1..=2 {
        rounds.push(post_round(&web.http, round, a.posts, a.clients).await);
    }
    let loaded_kib = status_kib(pid, "VmHWM:").unwrap_or(0);
    // A real ACCOUNT_CREATED as the relay published it: the size of the drained messages.
    let queue = &b.subscribes[0].queue;
    let mut event = None;
    for _ in 0..200 {
        if let Some(m) = broker
            .ch
            .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
        {
            event = Some(m.delivery.data);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let event = event
        .unwrap_or_else(|| panic!("our web published no event to {queue}:\n{}", web.log_text()));
    drop(web);
    (
        WebSide {
            process: Figures {
                ready,
                idle_kib,
                loaded_kib,
            },
            rounds,
        },
        event,
    )
}

pub(crate) async fn spring_web(p: &Pieces, a: &Args, amqp: &Amqp, broker: &mut Broker) -> WebSide {
    let exchange = format!("{}.spring.account", unique_namespace());
    // The binder declares the exchange and, for the required group, one bound queue.
    broker.queues.push(format!("{exchange}.bench"));
    broker.exchanges.push(exchange.clone());
    let since = Instant::now();
    let mut web = Proc::spring(
        "spring-account-web",
        &p.web_jar,
        amqp,
        &[
            format!("--spring.cloud.stream.bindings.account-out-0.destination={exchange}"),
            "--spring.cloud.stream.bindings.account-out-0.producer.required-groups=bench"
                .to_owned(),
        ],
    );
    let ready = web.wait_ready(since).await;
    let idle_kib = idle_rss(web.pid()).await;
    let mut rounds = Vec::new();
    for round in 1..=2 {
        rounds.push(post_round(&web.http, round, a.posts, a.clients).await);
    }
    let loaded_kib = status_kib(web.pid(), "VmHWM:").unwrap_or(0);
    WebSide {
        process: Figures {
            ready,
            idle_kib,
            loaded_kib,
        },
        rounds,
    }
}
