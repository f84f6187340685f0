//! Draining pre-published messages: our worker role vs the Spring Cloud
//! Stream consumer, timed by `time_drain`.

use std::time::{Duration, Instant};

use eventflow_runtime::testing::{AppProcess, amqp_uri, fresh_sqlite, unique_namespace};

use crate::{
    Args, CONCURRENCY, PREFETCH, READY_TIMEOUT,
    broker::{Broker, bindings},
    pieces::{Amqp, Pieces},
    process::{Figures, Proc, idle_rss, status_kib},
};

const DRAIN_TIMEOUT: Duration = Duration::from_secs(600);

/// A consumer's drain: messages/s from the first consumed message to the last.
pub(crate) struct Drain {
    pub(crate) process: Figures,
    pub(crate) rate: f64,
    pub(crate) second_half: f64,
}

/// Polls `count` until `n` messages are consumed. The rate over the whole
/// drain counts from the first poll that saw a message consumed (what was
/// consumed before it is left out); the second half's rate from the first
/// poll that saw half of them (the JVM's JIT has warmed up by then).
async fn time_drain<F, Fut>(n: usize, what: &str, mut count: F) -> (f64, f64)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = usize>,
{
    let start = Instant::now();
    // (when, how many consumed) at the first poll that saw any, and half.
    type Mark = Option<(Instant, usize)>;
    let (mut first, mut half): (Mark, Mark) = (None, None);
    let rate = |from: Mark, now: Instant| {
        let (t0, c0) = from.unwrap();
        let secs = (now - t0).as_secs_f64();
        if secs > 0.0 {
            (n - c0) as f64 / secs
        } else {
            // Drained between two polls.
            f64::NAN
        }
    };
    loop {
        let c = count().await;
        let now = Instant::now();
        if c > 0 && first.is_none() {
            first = Some((now, c));
        }
        if c >= n / 2 && half.is_none() {
            half = Some((now, c));
        }
        if c >= n {
            return (rate(first, now), rate(half, now));
        }
        assert!(
            start.elapsed() < DRAIN_TIMEOUT,
            "{what}: {c} of {n} messages consumed after {DRAIN_TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(crate) async fn our_worker(p: &Pieces, a: &Args, broker: &mut Broker, event: &[u8]) -> Drain {
    let ns = unique_namespace();
    let b = bindings(&ns);
    broker.declare(&b).await;
    let env = vec![
        ("EVENTFLOW_BROKER_URI", amqp_uri()),
        ("EVENTFLOW_BINDINGS", b.to_json()),
        ("DATABASE_URL", fresh_sqlite()),
        ("EVENTFLOW_PREFETCH", PREFETCH.to_string()),
        ("EVENTFLOW_CONCURRENCY", CONCURRENCY.to_string()),
        ("RUST_LOG", "warn".to_owned()),
    ];
    // Idle: start on an empty queue.
    let (ready, idle_kib) = {
        let mut worker = AppProcess::spawn(&p.account_bin, "worker", &env);
        let ready = worker.wait_ready(READY_TIMEOUT).await;
        (ready, idle_rss(worker.child.id()).await)
    };
    // Loaded: the same process started again on a full queue.
    let queue = b.subscribes[0].queue.clone();
    let exchange = b.exchange_for("account").unwrap().to_owned();
    broker
        .fill(
            &exchange,
            "account.ACCOUNT_PENDING",
            event,
            a.messages as u64,
        )
        .await;
    let depth = broker.depth(&queue).await as usize;
    assert_eq!(
        depth, a.messages,
        "{queue} should hold the published messages"
    );
    let mut worker = AppProcess::spawn(&p.account_bin, "worker", &env);
    worker.wait_ready(READY_TIMEOUT).await;
    let w = &worker;
    let (rate, second_half) = time_drain(a.messages, "our worker", || async move {
        w.metric("eventflow_messages_total{outcome=\"ignored\"}")
            .await as usize
    })
    .await;
    let loaded_kib = status_kib(worker.child.id(), "VmHWM:").unwrap_or(0);
    Drain {
        process: Figures {
            ready,
            idle_kib,
            loaded_kib,
        },
        rate,
        second_half,
    }
}

pub(crate) async fn spring_consumer(
    p: &Pieces,
    a: &Args,
    amqp: &Amqp,
    broker: &mut Broker,
    event: &[u8],
) -> Drain {
    let exchange = format!("{}.spring", unique_namespace());
    let queue = format!("{exchange}.drain");
    broker.queues.push(queue.clone());
    broker.exchanges.push(exchange.clone());
    let properties = [
        format!("--spring.cloud.stream.bindings.drain-in-0.destination={exchange}"),
        format!("--spring.cloud.stream.bindings.drain-in-0.consumer.concurrency={CONCURRENCY}"),
        format!("--spring.cloud.stream.rabbit.bindings.drain-in-0.consumer.prefetch={PREFETCH}"),
    ];
    // Idle: start on an empty queue (the binder declares exchange, queue and binding).
    let (ready, idle_kib) = {
        let since = Instant::now();
        let mut c = Proc::spring("spring-consumer", &p.consumer_jar, amqp, &properties);
        let ready = c.wait_ready(since).await;
        (ready, idle_rss(c.pid()).await)
    };
    broker
        .fill(
            &exchange,
            "account.ACCOUNT_PENDING",
            event,
            a.messages as u64,
        )
        .await;
    let depth = broker.depth(&queue).await as usize;
    assert_eq!(
        depth, a.messages,
        "{queue} should hold the published messages"
    );
    let since = Instant::now();
    let mut c = Proc::spring("spring-consumer", &p.consumer_jar, amqp, &properties);
    c.wait_ready(since).await;
    let http = reqwest::Client::new();
    let url = format!("{}/consumed", c.http);
    let (rate, second_half) = time_drain(a.messages, "the Spring consumer", || {
        let (http, url) = (http.clone(), url.clone());
        async move {
            match http.get(&url).send().await {
                Ok(r) => r
                    .text()
                    .await
                    .unwrap_or_default()
                    .trim()
                    .parse()
                    .unwrap_or(0),
                Err(_) => 0,
            }
        }
    })
    .await;
    let loaded_kib = status_kib(c.pid(), "VmHWM:").unwrap_or(0);
    Drain {
        process: Figures {
            ready,
            idle_kib,
            loaded_kib,
        },
        rate,
        second_half,
    }
}
