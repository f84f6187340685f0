//! A micro-benchmark of each hot path of the runtime, in one process
//! against the private PostgreSQL and RabbitMQ, each beside its ceiling
//! measured in the same run (figures only, no assertions on them):
//!
//! 1. a command through the web role — `POST /v1/accounts` on the account
//!    app's router in this process, keep-alive HTTP clients on loopback
//!    ([`command`]) — vs a bare sqlx transaction inserting the same rows
//!    with the same concurrency ([`sql`]);
//! 2. the outbox relay publishing what path 1 committed ([`relay`]) vs
//!    PerfTest publishing as many messages of the same size with confirms;
//! 3. a worker's consume → command → ack loop on what path 2 published, and
//!    the same consumer with no command ([`worker`]), vs PerfTest's
//!    consumer draining as many messages of the same size.
//!
//! Each side prints operations, seconds, operations/s and CPU per
//! operation ([`cpu`]): this process's (and of it the web role's threads'),
//! the PostgreSQL backends' of the database in play, the RabbitMQ node's;
//! the table at the end adds ours/ceiling ([`report`]). Logs are written as
//! the app writes them (JSON, `RUST_LOG`, default `info`), to a file.
//!
//! ```text
//! bench/build.sh                          # PerfTest (Maven; skipped when unchanged)
//! eval "$(e2e/cluster/services.sh env)"
//! cargo build --release -p eventflow-account --example hotpaths
//! $CARGO_TARGET_DIR/release/examples/hotpaths [--commands 10000] [--clients 32]
//! ```
//!
//! `make bench` does all of it (`HOTPATH_BENCH_ARGS`). Every database,
//! exchange and queue is fresh (unique names) and removed at the end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod broker;
mod command;
mod cpu;
mod perftest;
mod relay;
mod report;
#[path = "../shared/scratch.rs"]
mod scratch;
mod sql;
mod web;
mod worker;

use std::{
    path::PathBuf,
    sync::{Arc, atomic::AtomicI64},
};

use eventflow_runtime::testing::{AMQP_VAR, DATABASE_VAR, fresh_postgres, temp_dir};
use sqlx::{Connection, PgConnection};
use tokio::runtime::{Builder, Handle};

use crate::{
    broker::{Broker, Ours},
    cpu::Clocks,
    report::{PathFigures, Side},
    web::WebRole,
};

struct Args {
    commands: u64,
    clients: usize,
}

fn args() -> Args {
    let mut a = Args {
        commands: 10_000,
        clients: 32,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut number = || -> u64 {
            it.next()
                .and_then(|v| v.parse().ok())
                .filter(|n| *n > 0)
                .unwrap_or_else(|| fail(&format!("{flag} needs a positive number")))
        };
        match flag.as_str() {
            "--commands" => a.commands = number(),
            "--clients" => a.clients = usize::try_from(number()).unwrap_or(1),
            other => fail(&format!(
                "unknown argument {other:?}; expected --commands N --clients N"
            )),
        }
    }
    a
}

/// Stops before anything started: a clear message and a non-zero exit.
fn fail(message: &str) -> ! {
    eprintln!("hotpaths: {message}");
    std::process::exit(2)
}

fn env(var: &str) -> String {
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| {
            fail(&format!(
                "{var} is not set: start the private services with `e2e/cluster/services.sh up` \
             and `eval \"$(e2e/cluster/services.sh env)\"`"
            ))
        })
}

/// What the paths share.
pub(crate) struct Run {
    /// The web role's runtime (its threads are named `cpu::WEB_THREADS`).
    pub(crate) rt: Handle,
    pub(crate) clocks: Clocks,
    pub(crate) web: WebRole,
    pub(crate) broker: Broker,
    pub(crate) amqp: String,
    pub(crate) perftest: PathBuf,
    /// The queue PerfTest's publish (path 2) filled for its drain (path 3).
    pub(crate) drain: Option<Ours>,
}

/// JSON logs at the app's level into a file, as the app writes them to stderr.
fn logs() -> PathBuf {
    let path = temp_dir().join("hotpaths.log");
    let file = std::fs::File::create(&path).unwrap();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::sync::Mutex::new(file))
        .init();
    path
}

fn main() {
    let a = args();
    let amqp = env(AMQP_VAR);
    let admin_url = env(DATABASE_VAR);
    let perftest = perftest::lib().unwrap_or_else(|e| fail(&e));
    if std::process::Command::new("java")
        .arg("-version")
        .output()
        .is_err()
    {
        fail("cannot run java (PerfTest needs OpenJDK 17)");
    }
    let log = logs();
    let runtime = |name: &str| {
        Builder::new_multi_thread()
            .thread_name(name)
            .enable_all()
            .build()
            .unwrap()
    };
    let web_rt = runtime(cpu::WEB_THREADS);
    let main_rt = runtime("hp-main");
    let paths = main_rt.block_on(async {
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        println!(
            "hot paths: {} commands (+{} warm-up) at {} clients; {} CPUs, load average {}; logs {}",
            a.commands,
            command::WARMUP,
            a.clients,
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            load.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" "),
            log.display()
        );
        let mut r = Run {
            rt: web_rt.handle().clone(),
            clocks: Clocks::new(&admin_url).await,
            web: WebRole::start(web_rt.handle()).await,
            broker: Broker::connect(&amqp).await,
            amqp,
            perftest,
            drain: None,
        };
        if !r.clocks.has_broker() {
            println!(
                "   (RabbitMQ's CPU is not shown: its management API or process is out of reach)"
            );
        }
        let first = command_path(&mut r, &a).await;
        let ours = r.broker.declare_account().await;
        let (second, n, body) = relay::path(&mut r, &ours).await;
        let third = worker::path(&mut r, &ours, n, &body).await;
        r.web.stop();
        r.broker.cleanup().await;
        drop_database(&r.web.database).await;
        vec![first, second, third]
    });
    report::table(&paths);
    web_rt.shutdown_background();
    main_rt.shutdown_background();
}

/// Path 1: ours, then the bare-SQL ceiling on a database of its own.
async fn command_path(r: &mut Run, a: &Args) -> PathFigures {
    let (n, warmup) = (a.commands, command::WARMUP);
    println!(
        "1. command through the web role: POST /v1/accounts with an Idempotency-Key \
         (event + outbox row + snapshot + email claim + idempotency record), {} clients, no relay running",
        a.clients
    );
    command::post_accounts(&r.web.url, 0, warmup, a.clients).await;
    let before = r.clocks.read(Some(&r.web.database)).await;
    command::post_accounts(&r.web.url, warmup, n, a.clients).await;
    let after = r.clocks.read(Some(&r.web.database)).await;
    // No broker in this path: its node's CPU would be other clients' (it is shared).
    let spent = r.clocks.between(&before, &after).without_broker();
    let ours = Side::measured("ours: web role", n, spent);

    let url = fresh_postgres().await;
    let database = web::database_name(&url);
    // The store's schema, as the web role's database has it.
    drop(
        eventflow_runtime::store::EventStore::connect(&url)
            .await
            .unwrap(),
    );
    let rows = Arc::new(sql::sample(&r.web.database_url).await);
    let pool_url = url.clone();
    let pool =
        r.rt.spawn(async move { sql::pool(&pool_url).await })
            .await
            .unwrap();
    let positions = Arc::new(AtomicI64::new(0));
    sql::insert(&r.rt, &pool, &rows, &positions, 0, warmup, a.clients).await;
    let before = r.clocks.read(Some(&database)).await;
    sql::insert(&r.rt, &pool, &rows, &positions, warmup, n, a.clients).await;
    let after = r.clocks.read(Some(&database)).await;
    let spent = r.clocks.between(&before, &after).without_broker();
    let ceiling = Side::measured("ceiling: bare sqlx transaction", n, spent);
    println!(
        "   (the ceiling: {} statements per transaction, a PgPool of {} as the store's)",
        sql::ROUND_TRIPS,
        sql::POOL
    );
    pool.close().await;
    drop_database(&database).await;
    PathFigures {
        title: "1. command",
        ours: vec![ours],
        ceiling,
    }
}

/// Drops a database of this run (its connections closed by force).
async fn drop_database(name: &str) {
    if let Ok(mut c) = PgConnection::connect(&env(DATABASE_VAR)).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut c)
        .await;
    }
}
