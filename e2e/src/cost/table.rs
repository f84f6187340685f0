//! The cost table `make measure` prints: CPU seconds per order for each
//! component, then the work per order (statements, requests, messages).

use super::{CLIENT, CpuSpent, counts::Counts};

/// Whether a component is part of the system the orders cost: everything
/// but the client of the run and what the run does not use (the Spring
/// ticktock stream beside it, other namespaces' pods).
pub fn counted(component: &str) -> bool {
    component != CLIENT && !component.starts_with("Spring ") && !component.starts_with("other (")
}

fn per(v: f64, orders: f64) -> f64 {
    if orders > 0.0 { v / orders } else { 0.0 }
}

/// Total CPU milliseconds per order of the counted components.
pub fn ms_per_order(cpu: &CpuSpent, orders: u64) -> f64 {
    let total: f64 = cpu
        .components
        .iter()
        .filter(|(name, _)| counted(name))
        .map(|(_, (s, _))| s)
        .sum();
    per(total * 1000.0, orders as f64)
}

/// Prints the table for `orders` orders that reached a final state.
pub fn print(cpu: &CpuSpent, work: &Counts, orders: u64) {
    let n = orders as f64;
    println!(
        "  CPU over {:.1} s, node busy {:.2} of {:.0} cores; {orders} orders final",
        cpu.seconds, cpu.node_busy_cores, cpu.cores
    );
    let mut rows: Vec<(&String, f64, usize)> = cpu
        .components
        .iter()
        .filter(|(name, _)| counted(name))
        .map(|(name, (s, pods))| (name, *s, *pods))
        .collect();
    rows.sort_by(|a, b| b.1.total_cmp(&a.1));
    let total: f64 = rows.iter().map(|r| r.1).sum();
    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(9).max(9);
    println!(
        "  {:<width$}  {:>4}  {:>7}  {:>6}  {:>9}",
        "COMPONENT", "PODS", "CPU s", "SHARE", "ms/ORDER"
    );
    for (name, s, pods) in &rows {
        println!(
            "  {name:<width$}  {pods:>4}  {s:>7.2}  {:>5.1}%  {:>9.1}",
            per(*s * 100.0, total),
            per(*s * 1000.0, n)
        );
    }
    println!(
        "  {:<width$}  {:>4}  {total:>7.2}  {:>5.1}%  {:>9.1}",
        "total",
        "",
        100.0,
        per(total * 1000.0, n)
    );
    let busy = cpu.node_busy_cores * cpu.seconds;
    let mut not_counted: Vec<String> = cpu
        .components
        .iter()
        .filter(|(name, _)| !counted(name))
        .map(|(name, (s, _))| format!("{name} {s:.2} s"))
        .collect();
    not_counted.push(format!("this measuring process {:.2} s", cpu.measurer));
    let seen: f64 = cpu.components.values().map(|(s, _)| s).sum::<f64>() + cpu.measurer;
    not_counted.push(format!(
        "the rest of the node (kernel, other processes) {:.2} s",
        (busy - seen).max(0.0)
    ));
    println!("  not counted: {}", not_counted.join(", "));

    println!("  work per order:");
    match &work.statements {
        Some(by_role) => {
            // `postgres` is this measurement's own psql.
            let contexts: Vec<(&String, &u64)> =
                by_role.iter().filter(|(r, _)| *r != "postgres").collect();
            let sum: u64 = contexts.iter().map(|(_, c)| **c).sum();
            let each: Vec<String> = contexts
                .iter()
                .map(|(r, c)| format!("{r} {:.1}", per(**c as f64, n)))
                .collect();
            println!(
                "    SQL statements          {:>7.1}  ({})",
                per(sum as f64, n),
                each.join(", ")
            );
        }
        None => println!(
            "    SQL statements                -  (PostgreSQL runs without pg_stat_statements: \
             examples/20-postgres.yaml loads it)"
        ),
    }
    let metric = |m: &str| per(work.app_total(m), n);
    println!(
        "    HTTP between roles      {:>7.1}  (requests our apps sent to other roles)",
        metric("eventflow_peer_requests_total")
    );
    println!(
        "    HTTP served             {:>7.1}  (every request our web roles answered, the client's included)",
        metric("eventflow_http_requests_total")
    );
    println!(
        "    events appended         {:>7.1}  published by the relays {:.1}, messages consumed {:.1}",
        metric("eventflow_events_appended_total"),
        metric("eventflow_events_published_total"),
        metric("eventflow_messages_total")
    );
    let broker = |k: &str| per(*work.broker.get(k).unwrap_or(&0) as f64, n);
    println!(
        "    broker messages         {:>7.1}  published, {:.1} delivered, {:.1} acknowledged (all its clients)",
        broker("publish"),
        broker("deliver_get"),
        broker("ack")
    );
}
