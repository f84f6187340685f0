//! Path 3, a worker's consume → command → ack loop: the runtime's consumer
//! (`consumer::Consumer`, the account worker's prefetch and concurrency)
//! on the group queue path 2 filled, its handler the runtime's function
//! registry running one command per event on the web role over HTTP
//! (`run_offered_commands(event, ["markPending"])`: GET the account, GET its
//! commands, POST markPending with an Idempotency-Key — what the account
//! worker does per command), timed until every message is acked. Beside it
//! the same consumer with no command (a registry without functions: parse,
//! ack) on as many copies of the message. Their ceiling: PerfTest's one
//! consumer (qos = our prefetch, an ack per message) draining the queue
//! its publish filled in path 2 — same count, same size.

use std::{sync::Arc, time::Duration};

use eventflow_account::account::ACCOUNT_CREATED;
use eventflow_contract::defaults::{CONCURRENCY, PREFETCH};
use eventflow_runtime::{
    broker::BrokerLink,
    cloudevent::CloudEvent,
    consumer::{Consumer, HandlerError, TransientRetry},
    functions::{Function, Outcome, Registry, run_offered_commands},
    metrics::{Metrics, Outcome as Settled},
};
use lapin::{Connection, ConnectionProperties};
use tokio_util::sync::CancellationToken;

use crate::{
    Run,
    broker::Ours,
    perftest,
    report::{PathFigures, Side},
};

/// Longest wait without a message settled.
const STALL: Duration = Duration::from_secs(60);

async fn mark_pending(event: CloudEvent) -> Result<Outcome, HandlerError> {
    run_offered_commands(&event, &["markPending"]).await
}

/// One command per ACCOUNT_CREATED, as the account worker runs its functions.
fn one_command() -> Registry {
    Registry {
        functions: vec![Function::new(
            "markPending",
            &[ACCOUNT_CREATED],
            mark_pending,
        )],
    }
}

/// Consumes `n` messages from `ours`' group queue with `registry`'s handler
/// until `n` are settled as `outcome`.
async fn consume(
    r: &mut Run,
    ours: &Ours,
    registry: Registry,
    n: u64,
    outcome: &'static str,
    database: Option<&str>,
) -> crate::cpu::Spent {
    // The worker's own connection, on this (the worker side's) runtime.
    let connection = Arc::new(
        Connection::connect(&r.amqp, ConnectionProperties::default())
            .await
            .unwrap(),
    );
    let metrics = Metrics::default();
    let consumer = Consumer {
        subscription: ours.bindings.subscribes[0].clone(),
        handler: registry.handler(),
        prefetch: PREFETCH,
        concurrency: usize::from(CONCURRENCY),
        metrics: metrics.clone(),
        transient: TransientRetry::default(),
    };
    let settled = |o: &'static str| {
        metrics
            .messages
            .get_or_create(&Settled { outcome: o })
            .get()
    };
    let cancel = CancellationToken::new();
    let before = r.clocks.read(database).await;
    let running = tokio::spawn(consumer.run(BrokerLink::of(connection.clone()), cancel.clone()));
    let (mut seen, mut since) = (0, std::time::Instant::now());
    while settled(outcome) < n {
        let now = settled(outcome);
        if now != seen {
            (seen, since) = (now, std::time::Instant::now());
        }
        assert!(
            since.elapsed() < STALL,
            "the consumer settled {now} of {n} messages as {outcome:?}, none for {STALL:?}: {}",
            metrics.render()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let after = r.clocks.read(database).await;
    cancel.cancel();
    running.await.unwrap().unwrap();
    let _ = connection.close(200, "consumed".into()).await;
    r.clocks.between(&before, &after)
}

pub(crate) async fn path(r: &mut Run, ours: &Ours, n: u64, body: &[u8]) -> PathFigures {
    println!(
        "3. worker loop: {n} ACCOUNT_CREATED in the group queue, prefetch {PREFETCH}, concurrency {CONCURRENCY}"
    );
    let database = r.web.database.clone();
    let spent = consume(r, ours, one_command(), n, "ok", Some(&database)).await;
    let with_command = Side::measured("ours: consume → markPending over HTTP → ack", n, spent);

    let copies = r.broker.declare_account().await;
    r.broker
        .fill(&copies.exchange, "account.ACCOUNT_CREATED", body, n)
        .await;
    let spent = consume(r, &copies, Registry::default(), n, "ignored", None).await;
    let no_command = Side::measured("ours: consume → ack (no command)", n, spent);

    let drain = r.drain.take().expect("path 2 filled PerfTest's queue");
    let options: Vec<String> = [
        "--producers",
        "0",
        "--consumers",
        "1",
        "--cmessages",
        &n.to_string(),
        "--qos",
        &PREFETCH.to_string(),
        "--queue",
        &drain.queue,
        "--predeclared",
        "--skip-binding-queues",
        "--exchange",
        &drain.exchange,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let before = r.clocks.read(None).await;
    let out = perftest::run(&r.perftest, &r.amqp, "drain", &options).await;
    let after = r.clocks.read(None).await;
    let rate = perftest::rate(&out, "receiving rate avg:")
        .unwrap_or_else(|| panic!("no receiving rate in PerfTest's summary:\n{out}"));
    let ceiling = Side::perftest(
        "ceiling: PerfTest consume + ack",
        n,
        rate,
        r.clocks.between(&before, &after),
    );
    PathFigures {
        title: "3. worker loop",
        ours: vec![with_command, no_command],
        ceiling,
    }
}
