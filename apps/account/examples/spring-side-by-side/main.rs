//! The Spring stack eventflow replaces beside our account app, in one run on
//! this machine against the private RabbitMQ, and prints one table (figures
//! only, no assertions):
//!
//! - start -> ready (spawn until the readiness endpoint answers 200): our
//!   account web role (`/readyz`) vs the Spring Boot web app
//!   (`/actuator/health/readiness`, database and broker included); our
//!   worker role vs the Spring Cloud Stream consumer.
//! - RSS idle (VmRSS a second after ready) and loaded (VmHWM, the peak,
//!   after the load) in MiB.
//! - `POST /v1/accounts`: requests/s and p50/p99 latency, `clients`
//!   concurrent clients, `posts` requests, two rounds on the same process
//!   (the second shows a warmed-up JVM). Ours stores events in SQLite
//!   (`--postgres`: PostgreSQL) and publishes through the outbox relay with
//!   publisher confirms; Spring stores a row with Spring Data JPA in H2 in
//!   memory and publishes with `StreamBridge` (the binder's defaults: no
//!   confirms; a channel cache of 64 so 32 clients never open channels). Both publish an ACCOUNT_CREATED CloudEvent to a topic
//!   exchange with one bound queue.
//! - messages/s consumed: `messages` copies of a real account event
//!   (ACCOUNT_PENDING, which no function subscribes to, so our worker parses
//!   and acks it; the Spring consumer takes the bytes and acks) published
//!   into the group queue before the consumer starts, then drained; timed
//!   from the first consumed message to the last, and over the second half
//!   (a JVM that has warmed up), from each side's counter.
//!   Same prefetch (10) and concurrency (4) on both sides. Beside them,
//!   RabbitMQ PerfTest's publish + consume rate with publisher confirms and
//!   consumer acks (same size, persistent): the broker's ceiling here.
//!
//! Every process it starts (ours, the JVMs, PerfTest) is killed when the
//! run ends, also on a failure; ports are reserved
//! ([`Ports`](eventflow_runtime::testing::Ports)). A missing
//! service, binary or jar stops it before anything starts.
//!
//! ```text
//! bench/build.sh                      # the Spring jars and PerfTest (Maven, skipped when unchanged)
//! eval "$(e2e/cluster/services.sh env)"
//! cargo build --release -p eventflow-account --bin account --example spring-side-by-side
//! $CARGO_TARGET_DIR/release/examples/spring-side-by-side [--posts 10000] [--clients 32] [--messages 20000] [--postgres]
//! ```
//!
//! `make bench` does all of it. `SPRING_JARS` (default
//! `$EVENTFLOW_CACHE/spring-bench/jars`), `PERFTEST_LIB` and `ACCOUNT_BIN` override
//! where the pieces are; `SPRING_JAVA_OPTS` adds JVM options (default: none,
//! the JVM sizes its heap from the machine).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod broker;
mod drain;
mod perftest;
mod pieces;
mod process;
#[path = "../shared/scratch.rs"]
mod scratch;
mod table;
mod web;

use std::time::Duration;

use eventflow_runtime::testing::amqp_uri;

use crate::{
    broker::Broker,
    drain::{our_worker, spring_consumer},
    perftest::perftest,
    web::{our_web, spring_web},
};

const READY_TIMEOUT: Duration = Duration::from_secs(180);
/// Our worker's defaults (`eventflow_contract::defaults`), given to the Spring consumer too.
const PREFETCH: u16 = eventflow_contract::defaults::PREFETCH;
const CONCURRENCY: u16 = eventflow_contract::defaults::CONCURRENCY;

struct Args {
    posts: usize,
    clients: usize,
    messages: usize,
    postgres: bool,
}

fn args() -> Args {
    let mut a = Args {
        posts: 10_000,
        clients: 32,
        messages: 20_000,
        postgres: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut number = || -> usize {
            it.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| fail(&format!("{flag} needs a number")))
        };
        match flag.as_str() {
            "--posts" => a.posts = number(),
            "--clients" => a.clients = number(),
            "--messages" => a.messages = number(),
            "--postgres" => a.postgres = true,
            other => fail(&format!(
                "unknown argument {other:?}; expected --posts N --clients N --messages N --postgres"
            )),
        }
    }
    a
}

/// Stops before anything started: a clear message and a non-zero exit.
fn fail(message: &str) -> ! {
    eprintln!("spring-side-by-side: {message}");
    std::process::exit(2)
}

#[tokio::main]
async fn main() {
    let a = args();
    let p = pieces::pieces(&a);
    let amqp = pieces::parse_amqp(&amqp_uri());
    let mut broker = Broker::connect(&amqp_uri()).await;
    table::heading(&a, &p);

    println!(
        "- our account web ({}) ...",
        if a.postgres { "PostgreSQL" } else { "SQLite" }
    );
    let (ours_web, event) = our_web(&p, &a, &mut broker).await;
    println!("- the Spring Boot web app ...");
    let spring_web = spring_web(&p, &a, &amqp, &mut broker).await;
    // The drained message: a real account event whose type triggers no function.
    let event = String::from_utf8(event)
        .unwrap()
        .replace("ACCOUNT_CREATED", "ACCOUNT_PENDING")
        .into_bytes();
    println!("- our worker draining {} messages ...", a.messages);
    let ours_worker = our_worker(&p, &a, &mut broker, &event).await;
    println!(
        "- the Spring Cloud Stream consumer draining {} messages ...",
        a.messages
    );
    let spring_consumer = spring_consumer(&p, &a, &amqp, &mut broker, &event).await;
    println!("- RabbitMQ PerfTest ...");
    let (sent, received, drained) = perftest(&p, &a, &event, &mut broker).await;
    broker.cleanup().await;

    table::print(
        &a,
        &ours_web,
        &spring_web,
        &ours_worker,
        &spring_consumer,
        (sent, received, drained),
        event.len(),
    );
}
