//! The printed output: the run's heading, the table and its notes, and the
//! formatting of durations, sizes and ratios.

use std::time::Duration;

use crate::{
    Args, CONCURRENCY, PREFETCH, drain::Drain, pieces::Pieces, process::Figures, web::WebSide,
};

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

/// The heading: the run's size, the machine, the JVM.
pub(crate) fn heading(a: &Args, p: &Pieces) {
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
}

/// The table, ours beside Spring, and the notes under it; `ceiling` is
/// PerfTest's (sending, receiving, drained) msg/s, `event_len` the drained
/// message's size in bytes.
pub(crate) fn print(
    a: &Args,
    ours_web: &WebSide,
    spring_web: &WebSide,
    ours_worker: &Drain,
    spring_consumer: &Drain,
    ceiling: (f64, f64, f64),
    event_len: usize,
) {
    let (sent, received, drained) = ceiling;
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
        a.messages, event_len
    );
    println!(
        "broker ceiling (RabbitMQ PerfTest, same messages, acks, qos {PREFETCH}): the same drain by 1 consumer {drained:.0} msg/s; \
         1 producer (persistent, confirms <= 256 outstanding) + 1 consumer at once: sending {sent:.0} msg/s, receiving {received:.0} msg/s"
    );
}
