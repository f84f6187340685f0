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
//! run ends, also on a failure; ports are reserved ([`Ports`]). A missing
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

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use eventflow_contract::{Bindings, Topology, bindings::SubscriptionRequest, declare::declare};
use eventflow_runtime::testing::{
    AMQP_VAR, AppProcess, DATABASE_VAR, Ports, amqp_uri, fresh_postgres, fresh_sqlite, temp_dir,
    unique_namespace,
};
use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties,
    options::{
        BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeleteOptions,
        QueueDeclareOptions, QueueDeleteOptions,
    },
    types::FieldTable,
};
use serde_json::json;

const READY_TIMEOUT: Duration = Duration::from_secs(180);
const DRAIN_TIMEOUT: Duration = Duration::from_secs(600);
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

fn cache_dir() -> PathBuf {
    std::env::var_os("EVENTFLOW_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache"))
                .join("eventflow")
        })
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Everything the run needs, checked before any process starts.
struct Pieces {
    account_bin: String,
    web_jar: PathBuf,
    consumer_jar: PathBuf,
    perftest_lib: PathBuf,
    java_version: String,
}

fn pieces(a: &Args) -> Pieces {
    let build = "run bench/build.sh (make bench does)";
    for var in [AMQP_VAR]
        .into_iter()
        .chain(a.postgres.then_some(DATABASE_VAR))
    {
        if std::env::var(var).map_or(true, |v| v.is_empty()) {
            fail(&format!(
                "{var} is not set: start the private services with `e2e/cluster/services.sh up` \
                 and `eval \"$(e2e/cluster/services.sh env)\"`"
            ));
        }
    }
    let account_bin = std::env::var("ACCOUNT_BIN").unwrap_or_else(|_| {
        // target/<profile>/examples/<bench> -> target/<profile>/account
        let exe = std::env::current_exe().unwrap();
        exe.parent()
            .and_then(Path::parent)
            .unwrap()
            .join("account")
            .display()
            .to_string()
    });
    if !Path::new(&account_bin).is_file() {
        fail(&format!(
            "no account binary at {account_bin}: cargo build --release -p eventflow-account --bin account"
        ));
    }
    let jars = std::env::var_os("SPRING_JARS")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join("spring-bench/jars"));
    let (web_jar, consumer_jar) = (
        jars.join("bench-account-web.jar"),
        jars.join("bench-consumer.jar"),
    );
    for jar in [&web_jar, &consumer_jar] {
        if !jar.is_file() {
            fail(&format!("no {}: {build}", jar.display()));
        }
    }
    let perftest_lib = std::env::var_os("PERFTEST_LIB")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let pom = std::fs::read_to_string(repo_root().join("bench/perftest/pom.xml"))
                .unwrap_or_else(|e| fail(&format!("cannot read bench/perftest/pom.xml: {e}")));
            let version = pom
                .split_once("<perftest.version>")
                .and_then(|(_, rest)| rest.split_once('<'))
                .map(|(v, _)| v.trim().to_owned())
                .unwrap_or_else(|| fail("no <perftest.version> in bench/perftest/pom.xml"));
            cache_dir().join(format!("perftest/{version}/lib"))
        });
    let has_perftest = std::fs::read_dir(&perftest_lib).is_ok_and(|d| {
        d.flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("perf-test-"))
    });
    if !has_perftest {
        fail(&format!(
            "no perf-test jar in {}: {build}",
            perftest_lib.display()
        ));
    }
    let java = Command::new("java")
        .arg("-version")
        .output()
        .unwrap_or_else(|e| fail(&format!("cannot run java: {e} (OpenJDK 17 is needed)")));
    let java_version = String::from_utf8_lossy(&java.stderr)
        .lines()
        .next()
        .unwrap_or("java ?")
        .to_owned();
    Pieces {
        account_bin,
        web_jar,
        consumer_jar,
        perftest_lib,
        java_version,
    }
}

/// `amqp://user:pass@host:port/vhost` in the parts Spring's properties take.
struct Amqp {
    host: String,
    port: u16,
    user: String,
    pass: String,
    vhost: String,
}

fn parse_amqp(uri: &str) -> Amqp {
    let rest = uri
        .strip_prefix("amqp://")
        .unwrap_or_else(|| panic!("{AMQP_VAR}={uri:?} is not amqp://..."));
    let (auth, rest) = rest.rsplit_once('@').unwrap_or(("guest:guest", rest));
    let (user, pass) = auth.split_once(':').unwrap_or((auth, ""));
    let (hostport, vhost) = rest.split_once('/').unwrap_or((rest, ""));
    let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "5672"));
    let vhost = match vhost {
        "" => "/".to_owned(),
        v => v.replace("%2f", "/").replace("%2F", "/"),
    };
    Amqp {
        host: host.to_owned(),
        port: port.parse().expect("AMQP port"),
        user: user.to_owned(),
        pass: pass.to_owned(),
        vhost,
    }
}

/// A `/proc/<pid>/status` figure in KiB (`VmRSS:` now, `VmHWM:` the peak).
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// A process of this run other than ours (a JVM, PerfTest); killed on drop,
/// so also when the run fails.
struct Proc {
    name: &'static str,
    child: Child,
    log: PathBuf,
    http: String,
    admin: String,
    _ports: Ports,
}

impl Proc {
    fn spawn(name: &'static str, program: &str, args: &[String], ports: Ports) -> Self {
        let log = temp_dir().join(format!("{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({program}): {e}"));
        Self {
            name,
            child,
            log,
            http: format!("http://{}", ports.http()),
            admin: format!("http://{}", ports.admin()),
            _ports: ports,
        }
    }

    /// A Spring Boot fat jar on reserved server and management ports.
    fn spring(name: &'static str, jar: &Path, amqp: &Amqp, properties: &[String]) -> Self {
        let ports = Ports::reserve();
        let mut args: Vec<String> = std::env::var("SPRING_JAVA_OPTS")
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        args.extend([
            "-Djava.net.preferIPv4Stack=true".to_owned(),
            "-jar".to_owned(),
            jar.display().to_string(),
            format!("--server.port={}", ports.http().port()),
            format!("--management.server.port={}", ports.admin().port()),
            format!("--spring.rabbitmq.host={}", amqp.host),
            format!("--spring.rabbitmq.port={}", amqp.port),
            format!("--spring.rabbitmq.username={}", amqp.user),
            format!("--spring.rabbitmq.password={}", amqp.pass),
            format!("--spring.rabbitmq.virtual-host={}", amqp.vhost),
        ]);
        args.extend(properties.iter().cloned());
        Self::spawn(name, "java", &args, ports)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Spawn -> `/actuator/health/readiness` answers 200; panics with the log otherwise.
    async fn wait_ready(&mut self, since: Instant) -> Duration {
        let client = reqwest::Client::new();
        let url = format!("{}/actuator/health/readiness", self.admin);
        while since.elapsed() < READY_TIMEOUT {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited with {status} before ready:\n{}",
                    self.name,
                    self.log_text()
                );
            }
            if let Ok(r) = client.get(&url).send().await
                && r.status().is_success()
            {
                return since.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "{} not ready after {READY_TIMEOUT:?}:\n{}",
            self.name,
            self.log_text()
        );
    }

    /// Waits for the process to exit by itself (PerfTest), killing it after `timeout`.
    async fn wait_exit(&mut self, timeout: Duration) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "{} failed with {status}:\n{}",
                    self.name,
                    self.log_text()
                );
                return;
            }
            assert!(
                start.elapsed() < timeout,
                "{} still running after {timeout:?}:\n{}",
                self.name,
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The broker objects of this run, deleted at its end.
struct Broker {
    conn: Connection,
    ch: Channel,
    queues: Vec<String>,
    exchanges: Vec<String>,
}

impl Broker {
    async fn connect() -> Self {
        let conn = Connection::connect(&amqp_uri(), ConnectionProperties::default())
            .await
            .unwrap_or_else(|e| panic!("cannot reach RabbitMQ at {AMQP_VAR}: {e}"));
        let ch = conn.create_channel().await.unwrap();
        Self {
            conn,
            ch,
            queues: Vec::new(),
            exchanges: Vec::new(),
        }
    }

    /// Declares our topology for `b` and remembers it for the cleanup.
    async fn declare_ours(&mut self, b: &Bindings) {
        let t = Topology::of(b);
        declare(&self.ch, &t, false).await.unwrap();
        self.queues.extend(t.queues.into_iter().map(|q| q.name));
        self.exchanges
            .extend(t.exchanges.into_iter().map(|e| e.name));
    }

    /// Messages ready in `queue` (passive declare).
    async fn depth(&self, queue: &str) -> u32 {
        self.ch
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap_or_else(|e| panic!("queue {queue}: {e}"))
            .message_count()
    }

    /// Publishes `count` copies of `body` with confirms, persistent, as our relay does.
    async fn publish(&self, exchange: &str, routing_key: &str, body: &[u8], count: usize) {
        let ch = self.conn.create_channel().await.unwrap();
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        let mut confirms = Vec::new();
        for _ in 0..count {
            confirms.push(
                ch.basic_publish(
                    exchange.into(),
                    routing_key.into(),
                    BasicPublishOptions::default(),
                    body,
                    BasicProperties::default()
                        .with_content_type("application/cloudevents+json".into())
                        .with_delivery_mode(2),
                )
                .await
                .unwrap(),
            );
            if confirms.len() == 256 {
                for c in confirms.drain(..) {
                    assert!(c.await.unwrap().is_ack(), "broker nacked a message");
                }
            }
        }
        for c in confirms {
            assert!(c.await.unwrap().is_ack(), "broker nacked a message");
        }
        let _ = ch.close(200, "published".into()).await;
    }

    async fn cleanup(self) {
        for q in &self.queues {
            let _ = self
                .ch
                .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
        for e in &self.exchanges {
            let _ = self
                .ch
                .exchange_delete(e.as_str().into(), ExchangeDeleteOptions::default())
                .await;
        }
        let _ = self.conn.close(200, "bye".into()).await;
    }
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

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// One round of `POST /v1/accounts`.
struct Round {
    rate: f64,
    p50: Duration,
    p99: Duration,
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

/// Figures of one side's process.
struct Figures {
    ready: Duration,
    idle_kib: u64,
    loaded_kib: u64,
}

struct WebSide {
    process: Figures,
    rounds: Vec<Round>,
}

/// Idle RSS a second after ready (the process settles).
async fn idle_rss(pid: u32) -> u64 {
    tokio::time::sleep(Duration::from_secs(1)).await;
    status_kib(pid, "VmRSS:").unwrap_or(0)
}

async fn our_web(p: &Pieces, a: &Args, broker: &mut Broker) -> (WebSide, Vec<u8>) {
    let ns = unique_namespace();
    let b = bindings(&ns);
    broker.declare_ours(&b).await;
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

async fn spring_web(p: &Pieces, a: &Args, amqp: &Amqp, broker: &mut Broker) -> WebSide {
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

/// A consumer's drain: messages/s from the first consumed message to the last.
struct Drain {
    process: Figures,
    rate: f64,
    second_half: f64,
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

async fn our_worker(p: &Pieces, a: &Args, broker: &mut Broker, event: &[u8]) -> Drain {
    let ns = unique_namespace();
    let b = bindings(&ns);
    broker.declare_ours(&b).await;
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
        .publish(&exchange, "account.ACCOUNT_PENDING", event, a.messages)
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

async fn spring_consumer(
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
        .publish(&exchange, "account.ACCOUNT_PENDING", event, a.messages)
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

/// PerfTest's sending and receiving rates (msg/s) from its summary.
fn perftest_rates(output: &str) -> Option<(f64, f64)> {
    let rate = |key: &str| {
        output.lines().find_map(|l| {
            let (_, rest) = l.split_once(key)?;
            rest.split_whitespace().next()?.parse::<f64>().ok()
        })
    };
    Some((rate("sending rate avg:")?, rate("receiving rate avg:")?))
}

/// Runs PerfTest to its end; its output.
async fn run_perftest(p: &Pieces, id: &str, options: &[&str]) -> String {
    let mut args: Vec<String> = vec![
        "-cp".into(),
        format!("{}/*", p.perftest_lib.display()),
        "com.rabbitmq.perf.PerfTest".into(),
        "--uri".into(),
        amqp_uri(),
        "--id".into(),
        id.into(),
        // Consumer acks (PerfTest's default), the consumers' prefetch; bounded in time too.
        "--qos".into(),
        PREFETCH.to_string(),
        "--time".into(),
        "300".into(),
    ];
    args.extend(options.iter().map(|s| (*s).to_owned()));
    let mut pt = Proc::spawn("perftest", "java", &args, Ports::reserve());
    pt.wait_exit(Duration::from_secs(360)).await;
    pt.log_text()
}

/// The broker's ceiling, by PerfTest: publish + consume at once (sending and
/// receiving msg/s), and consume only from a pre-filled queue (msg/s).
async fn perftest(p: &Pieces, a: &Args, body: &[u8], broker: &mut Broker) -> (f64, f64, f64) {
    let n = a.messages.to_string();
    let size = body.len().to_string();
    let queue = format!("{}.perftest", unique_namespace());
    broker.queues.push(queue.clone());
    let out = run_perftest(
        p,
        "publish-consume",
        &[
            "--producers",
            "1",
            "--consumers",
            "1",
            "--size",
            &size,
            "--pmessages",
            &n,
            "--cmessages",
            &n,
            // Publisher confirms, at most 256 outstanding (our relay's batch).
            "--confirm",
            "256",
            "--flag",
            "persistent",
            "--queue",
            &queue,
            "--auto-delete",
            "true",
        ],
    )
    .await;
    let (sent, received) =
        perftest_rates(&out).unwrap_or_else(|| panic!("no rates in PerfTest's summary:\n{out}"));

    // The same drain as the consumers': the messages are in the queue before it starts.
    let queue = format!("{}.perftest-drain", unique_namespace());
    broker.queues.push(queue.clone());
    broker
        .ch
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    broker.publish("", &queue, body, a.messages).await;
    let out = run_perftest(
        p,
        "drain",
        &[
            "--producers",
            "0",
            "--consumers",
            "1",
            "--cmessages",
            &n,
            "--queue",
            &queue,
            "--predeclared",
            "--skip-binding-queues",
        ],
    )
    .await;
    let (_, drained) =
        perftest_rates(&out).unwrap_or_else(|| panic!("no rates in PerfTest's summary:\n{out}"));
    (sent, received, drained)
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

fn ms1(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn ratio(ours: f64, theirs: f64) -> String {
    if theirs > 0.0 && ours.is_finite() && theirs.is_finite() {
        format!("{:.3}", ours / theirs)
    } else {
        "?".to_owned()
    }
}

fn row(what: &str, ours: String, theirs: String, r: String) {
    println!("| {what:<38} | {ours:>18} | {theirs:>18} | {r:>11} |");
}

fn process_rows(what: &str, ours: &Figures, theirs: &Figures) {
    row(
        &format!("{what}: start -> ready"),
        ms(ours.ready),
        ms(theirs.ready),
        ratio(ours.ready.as_secs_f64(), theirs.ready.as_secs_f64()),
    );
    row(
        &format!("{what}: RSS idle"),
        mib(ours.idle_kib),
        mib(theirs.idle_kib),
        ratio(ours.idle_kib as f64, theirs.idle_kib as f64),
    );
    row(
        &format!("{what}: RSS loaded (peak)"),
        mib(ours.loaded_kib),
        mib(theirs.loaded_kib),
        ratio(ours.loaded_kib as f64, theirs.loaded_kib as f64),
    );
}

#[tokio::main]
async fn main() {
    let a = args();
    let p = pieces(&a);
    let amqp = parse_amqp(&amqp_uri());
    let mut broker = Broker::connect().await;
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "Spring side by side: {} POSTs x 2 rounds at {} clients, {} messages drained; {} CPUs, load average {}; {}{}",
        a.posts,
        a.clients,
        a.messages,
        cpus,
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        p.java_version,
        std::env::var("SPRING_JAVA_OPTS")
            .map(|o| format!(" {o}"))
            .unwrap_or_default(),
    );

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

    println!();
    let store = if a.postgres { "PostgreSQL" } else { "SQLite" };
    row(
        "",
        "ours (Rust)".into(),
        "Spring".into(),
        "ours/Spring".into(),
    );
    println!("|{:-<40}|{:-<20}|{:-<20}|{:-<13}|", "", "", "", "");
    process_rows("web", &ours_web.process, &spring_web.process);
    for (i, (o, s)) in ours_web.rounds.iter().zip(&spring_web.rounds).enumerate() {
        let n = i + 1;
        row(
            &format!("web POST round {n}: requests/s"),
            format!("{:.0}", o.rate),
            format!("{:.0}", s.rate),
            ratio(o.rate, s.rate),
        );
        row(
            &format!("web POST round {n}: p50"),
            ms1(o.p50),
            ms1(s.p50),
            ratio(o.p50.as_secs_f64(), s.p50.as_secs_f64()),
        );
        row(
            &format!("web POST round {n}: p99"),
            ms1(o.p99),
            ms1(s.p99),
            ratio(o.p99.as_secs_f64(), s.p99.as_secs_f64()),
        );
    }
    process_rows(
        "worker / consumer",
        &ours_worker.process,
        &spring_consumer.process,
    );
    row(
        "drain: messages/s, all",
        format!("{:.0}", ours_worker.rate),
        format!("{:.0}", spring_consumer.rate),
        ratio(ours_worker.rate, spring_consumer.rate),
    );
    row(
        "drain: messages/s, second half",
        format!("{:.0}", ours_worker.second_half),
        format!("{:.0}", spring_consumer.second_half),
        ratio(ours_worker.second_half, spring_consumer.second_half),
    );
    println!();
    println!(
        "web: ours = account web role on {store} (event store + outbox relay with publisher confirms); \
         Spring = Spring Boot 3.5 + Spring Data JPA on H2 in memory + StreamBridge (RabbitMQ binder, no confirms)"
    );
    println!(
        "drain: {} pre-published {}-byte account events, prefetch {PREFETCH}, concurrency {CONCURRENCY}; \
         ours = account worker role (parses the CloudEvent, no function subscribed, acks); \
         Spring = Spring Cloud Stream Consumer<Message<byte[]>> (acks, AUTO)",
        a.messages,
        event.len()
    );
    println!(
        "broker ceiling (RabbitMQ PerfTest, same messages, acks, qos {PREFETCH}): the same drain by 1 consumer {drained:.0} msg/s; \
         1 producer (persistent, confirms <= 256 outstanding) + 1 consumer at once: sending {sent:.0} msg/s, receiving {received:.0} msg/s"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_of_perftest_gives_both_rates() {
        let out = "test stopped (Producer reached message limit, Consumer reached message limit)\n\
                   id: ceiling, sending rate avg: 2122 msg/s\n\
                   id: ceiling, receiving rate avg: 2121 msg/s\n";
        assert_eq!(perftest_rates(out), Some((2122.0, 2121.0)));
        assert_eq!(perftest_rates("id: x, time 1.0 s, sent: 1 msg/s"), None);
    }

    #[test]
    fn an_amqp_uri_splits_into_spring_properties() {
        let a = parse_amqp("amqp://eventflow:secret@127.0.0.1:28672/%2f");
        assert_eq!(
            (
                a.host.as_str(),
                a.port,
                a.user.as_str(),
                a.pass.as_str(),
                a.vhost.as_str()
            ),
            ("127.0.0.1", 28672, "eventflow", "secret", "/")
        );
        assert_eq!(parse_amqp("amqp://u:p@h:1/v").vhost, "v");
    }
}
