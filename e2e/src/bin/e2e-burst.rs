//! `e2e-burst` (`make measure-burst`): the burst of [`burst::ACCOUNTS`]
//! accounts (2,000 events into the account worker) twice on the example
//! system — with the example's fixed single replica, then autoscaled from
//! zero (`burst::autoscale()`) — and a table of both side by side: time to
//! first scale-up, peak replicas, time until every account is ACTIVE, time
//! back to zero, and the replica timeline. Each run also checks that every
//! event is in the account feed once and nothing was dead-lettered (exit 1
//! otherwise). It reports; it asserts nothing about speed. The example
//! system's autoscale is removed again at the end.

use std::time::Duration;

use anyhow::Result;
use eventflow_e2e::burst::{self, ACCOUNTS, secs, timeline};
use eventflow_e2e::{client, example_system};

const USAGE: &str = "\
usage: e2e-burst

Needs KUBECONFIG and kubectl/helm on PATH: eval \"$(e2e/cluster/cluster.sh env)\"";

#[tokio::main]
async fn main() -> Result<()> {
    if std::env::args().nth(1).is_some() {
        println!("{USAGE}");
        return Ok(());
    }
    let client = client().await;
    example_system();
    let run = std::process::id();
    println!("burst 1: {ACCOUNTS} accounts into the account worker at a fixed single replica");
    let fixed = burst::burst(&client, &format!("fixed{run}"), false).await?;
    println!("burst 2: the same, autoscaled {}", burst::autoscale());
    burst::set_autoscale(Some(burst::autoscale()))?;
    let scaled = match burst::await_replicas(&client, 0, Duration::from_secs(120)).await {
        Ok(()) => burst::burst(&client, &format!("scaled{run}"), true).await,
        Err(e) => Err(e),
    };
    burst::set_autoscale(None)?;
    burst::await_replicas(&client, 1, Duration::from_secs(120)).await?;
    let scaled = scaled?;

    println!(
        "\n== a burst of {ACCOUNTS} accounts ({} events into the account worker), each event once, nothing dead-lettered",
        4 * ACCOUNTS
    );
    println!("| | fixed 1 replica | autoscaled 0..4, 50/replica |");
    println!("|---|---|---|");
    println!(
        "| POSTs answered after | {} | {} |",
        secs(Some(fixed.posted_in)),
        secs(Some(scaled.posted_in))
    );
    println!(
        "| first scale-up after | - | {} |",
        secs(scaled.first_scale_up)
    );
    println!("| peak replicas | {} | {} |", fixed.peak, scaled.peak);
    println!(
        "| every account ACTIVE after | {} | {} |",
        secs(Some(fixed.drained)),
        secs(Some(scaled.drained))
    );
    println!("| back to zero after | - | {} |", secs(scaled.back_to_zero));
    println!(
        "| time to drain, autoscaled / fixed | {:.2} | |",
        scaled.drained.as_secs_f64() / fixed.drained.as_secs_f64()
    );
    println!(
        "replicas, autoscaled (count@seconds): {}",
        timeline(&scaled)
    );
    Ok(())
}
