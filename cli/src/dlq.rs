//! `kubectl eventflow dlq list|show|redrive`: a Stream's dead letters per
//! consumer group, and `DeadLetterRedrive`s to list or move them. The CLI
//! only writes our API (the operator reads and moves the messages), so each
//! command is one a user could do with kubectl.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{ArgGroup, Args, Subcommand};
use eventflow_operator::api::{
    DeadLetter, DeadLetterRedrive, DeadLetterRedriveSpec, DeadLetterRedriveStatus, GroupStatus,
    MAX_INSPECT, RedriveMode, RedrivePhase, Stream,
};
use kube::{
    Api,
    api::{DeleteParams, ObjectMeta, PostParams},
};
use serde::Serialize;

use crate::cluster::{Cluster, Output, Target, print_data};

pub const LIST_HELP: &str = "\
Examples:
  kubectl eventflow dlq list shop
  kubectl eventflow dlq list shop -n demo -o json";

pub const SHOW_HELP: &str = "\
Examples:
  kubectl eventflow dlq show shop orders/order-worker
  kubectl eventflow dlq show shop orders/order-worker --limit 100 --routing-key 'order.*' -o yaml

It creates an inspect-only DeadLetterRedrive (mode: Inspect), waits for the operator to read the
DLQ, prints the messages and deletes the DeadLetterRedrive. Nothing is moved.";

pub const REDRIVE_HELP: &str = "\
Examples:
  kubectl eventflow dlq redrive shop orders/order-worker --all
  kubectl eventflow dlq redrive shop orders/order-worker --limit 10
  kubectl eventflow dlq redrive shop orders/order-worker --all --routing-key order.ORDER_PLACED --routing-key 'payment.#'
  kubectl eventflow dlq redrive shop orders/order-worker --all --no-wait

It creates a DeadLetterRedrive; the operator moves the messages back into the group's queue
(attempts reset, routing key kept, no other group receives them) and records the counts in its
status: kubectl get deadletterredrives -n NS.

Exit codes:
  0  the redrive succeeded (or, with --no-wait, was created)
  1  it failed, timed out or could not be created (the reason is on stderr)";

#[derive(Subcommand, Debug)]
pub enum DlqCommand {
    /// Each consumer group of a Stream with its dead-letter queue and how many messages it holds.
    #[command(after_help = LIST_HELP)]
    List(ListArgs),
    /// List the dead letters of one consumer group (moves nothing).
    #[command(after_help = SHOW_HELP)]
    Show(ShowArgs),
    /// Put the dead letters of one consumer group back into its queue.
    #[command(after_help = REDRIVE_HELP)]
    Redrive(RedriveArgs),
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// The Stream.
    stream: String,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t)]
    output: Output,
    #[command(flatten)]
    target: Target,
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    /// The Stream.
    stream: String,
    /// The consumer group, as DESTINATION/GROUP (see `dlq list`).
    #[arg(value_name = "DESTINATION/GROUP", value_parser = parse_group)]
    group: (String, String),
    /// List at most N messages (1 to 100).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(i64).range(1..=MAX_INSPECT))]
    limit: i64,
    /// Only messages whose routing key matches (AMQP topic pattern: `*` one word, `#` any; repeatable).
    #[arg(long = "routing-key", value_name = "KEY")]
    routing_keys: Vec<String>,
    /// Seconds to wait for the operator.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t)]
    output: Output,
    #[command(flatten)]
    target: Target,
}

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("how_many").required(true).args(["all", "limit"])))]
pub struct RedriveArgs {
    /// The Stream.
    stream: String,
    /// The consumer group, as DESTINATION/GROUP (see `dlq list`).
    #[arg(value_name = "DESTINATION/GROUP", value_parser = parse_group)]
    group: (String, String),
    /// Move every selected message.
    #[arg(long)]
    all: bool,
    /// Move at most N messages (the oldest first).
    #[arg(long, value_parser = clap::value_parser!(i64).range(1..))]
    limit: Option<i64>,
    /// Only messages whose routing key matches (AMQP topic pattern: `*` one word, `#` any; repeatable).
    #[arg(long = "routing-key", value_name = "KEY")]
    routing_keys: Vec<String>,
    /// Wait until the redrive is done and print what it did (default).
    #[arg(long, overrides_with = "no_wait")]
    wait: bool,
    /// Return once the DeadLetterRedrive is created.
    #[arg(long)]
    no_wait: bool,
    /// Seconds to wait for the redrive.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// Output format (the DeadLetterRedrive's status as data).
    #[arg(long, short = 'o', value_enum, default_value_t)]
    output: Output,
    #[command(flatten)]
    target: Target,
}

/// `DESTINATION/GROUP`.
pub fn parse_group(s: &str) -> Result<(String, String), String> {
    match s.split_once('/') {
        Some((d, g)) if !d.is_empty() && !g.is_empty() && !g.contains('/') => {
            Ok((d.to_owned(), g.to_owned()))
        }
        _ => Err(format!(
            "`{s}` is not DESTINATION/GROUP (e.g. orders/order-worker; `kubectl eventflow dlq list STREAM` shows them)"
        )),
    }
}

pub async fn run(command: DlqCommand) -> anyhow::Result<()> {
    match command {
        DlqCommand::List(a) => list(a).await,
        DlqCommand::Show(a) => show(a).await,
        DlqCommand::Redrive(a) => redrive(a).await,
    }
}

/// One consumer group's dead letters, as `dlq list` prints it.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GroupRow {
    pub destination: String,
    pub group: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    pub dead_letter_queue: String,
    /// `None`: not known yet.
    pub dead_letters: Option<i64>,
}

/// The rows of `dlq list`: from `status.groups` when the operator has read
/// the queues, else the groups its topology declares, counts unknown.
pub fn group_rows(stream: &Stream) -> Vec<GroupRow> {
    let Some(status) = stream.status.as_ref() else {
        return vec![];
    };
    if !status.groups.is_empty() {
        return status.groups.iter().map(row).collect();
    }
    let mut rows = Vec::new();
    for d in &status.destinations {
        let prefix = format!("{}.", d.exchange);
        for q in &d.queues {
            if let Some(group) = q.strip_prefix(&prefix).and_then(|g| g.strip_suffix(".dlq")) {
                rows.push(GroupRow {
                    destination: d.name.clone(),
                    group: group.to_owned(),
                    app: None,
                    dead_letter_queue: q.clone(),
                    dead_letters: None,
                });
            }
        }
    }
    rows
}

fn row(g: &GroupStatus) -> GroupRow {
    GroupRow {
        destination: g.destination.clone(),
        group: g.group.clone(),
        app: Some(g.app.clone()),
        dead_letter_queue: g.dead_letter_queue.clone(),
        dead_letters: g.dead_letters,
    }
}

async fn get_stream(cluster: &Cluster, name: &str) -> anyhow::Result<Stream> {
    let api = Api::<Stream>::namespaced(cluster.client.clone(), &cluster.namespace);
    api.get_opt(name)
        .await
        .with_context(|| format!("cannot read Stream {name}"))?
        .with_context(|| {
            format!(
                "Stream {name} does not exist in namespace {}",
                cluster.namespace
            )
        })
}

async fn list(a: ListArgs) -> anyhow::Result<()> {
    let cluster = a.target.connect().await?;
    let stream = get_stream(&cluster, &a.stream).await?;
    let rows = group_rows(&stream);
    let known = stream.status.as_ref().is_some_and(|s| !s.groups.is_empty());
    if !known {
        eprintln!(
            "note: the dead-letter counts of Stream {} are not known yet (the operator has not read its queues)",
            a.stream
        );
    }
    if a.output != Output::Table {
        return print_data(a.output, &rows);
    }
    if rows.is_empty() {
        println!("Stream {} has no consumer groups (yet).", a.stream);
        return Ok(());
    }
    let table: Vec<[String; 4]> = rows
        .iter()
        .map(|r| {
            [
                format!("{}/{}", r.destination, r.group),
                r.app.clone().unwrap_or_else(|| "-".into()),
                r.dead_letter_queue.clone(),
                r.dead_letters.map_or_else(|| "?".into(), |n| n.to_string()),
            ]
        })
        .collect();
    print_table(&["GROUP", "APP", "DLQ", "DEAD LETTERS"], &table);
    if let Some(at) = stream
        .status
        .as_ref()
        .and_then(|s| s.groups_observed_at.as_ref())
    {
        println!("(read from the broker at {})", at.0);
    }
    Ok(())
}

fn print_table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) {
    let mut widths = header.map(str::len);
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

fn new_redrive(
    stream: &str,
    (destination, group): &(String, String),
    mode: RedriveMode,
    max_messages: Option<i64>,
    routing_keys: Vec<String>,
) -> DeadLetterRedrive {
    let mut r = DeadLetterRedrive::new(
        "",
        DeadLetterRedriveSpec {
            stream: stream.to_owned(),
            destination: destination.clone(),
            group: group.clone(),
            mode,
            max_messages,
            routing_keys,
        },
    );
    let kind = if mode == RedriveMode::Inspect {
        "inspect"
    } else {
        "redrive"
    };
    r.metadata = ObjectMeta {
        generate_name: Some(format!("{stream}-{kind}-")),
        ..ObjectMeta::default()
    };
    r
}

async fn create(cluster: &Cluster, r: &DeadLetterRedrive) -> anyhow::Result<String> {
    let api = Api::<DeadLetterRedrive>::namespaced(cluster.client.clone(), &cluster.namespace);
    let created = api
        .create(&PostParams::default(), r)
        .await
        .context("cannot create the DeadLetterRedrive")?;
    created
        .metadata
        .name
        .context("the API server named no DeadLetterRedrive")
}

/// Polls the redrive until it succeeded or failed, or `timeout` passes.
async fn wait(
    cluster: &Cluster,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<DeadLetterRedriveStatus> {
    let api = Api::<DeadLetterRedrive>::namespaced(cluster.client.clone(), &cluster.namespace);
    let deadline = Instant::now() + timeout;
    loop {
        let r = api
            .get(name)
            .await
            .with_context(|| format!("cannot read DeadLetterRedrive {name}"))?;
        let status = r.status.unwrap_or_default();
        if status.phase.finished() {
            return Ok(status);
        }
        if Instant::now() >= deadline {
            bail!(
                "DeadLetterRedrive {name} is still {:?} after {} s ({}); is the operator running? \
                 Follow it with: kubectl get deadletterredrive {name} -n {} -w",
                status.phase,
                timeout.as_secs(),
                status.message.as_deref().unwrap_or("no progress reported"),
                cluster.namespace
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn show(a: ShowArgs) -> anyhow::Result<()> {
    let cluster = a.target.connect().await?;
    let r = new_redrive(
        &a.stream,
        &a.group,
        RedriveMode::Inspect,
        Some(a.limit),
        a.routing_keys,
    );
    let name = create(&cluster, &r).await?;
    let result = wait(&cluster, &name, Duration::from_secs(a.timeout)).await;
    let api = Api::<DeadLetterRedrive>::namespaced(cluster.client.clone(), &cluster.namespace);
    if let Err(e) = api.delete(&name, &DeleteParams::default()).await {
        eprintln!("warning: could not delete DeadLetterRedrive {name}: {e}");
    }
    let status = result?;
    if status.phase == RedrivePhase::Failed {
        bail!(
            "{}",
            status
                .message
                .unwrap_or_else(|| "the inspection failed".into())
        );
    }
    if a.output != Output::Table {
        return print_data(a.output, &status.messages);
    }
    let (d, g) = &a.group;
    print_messages(&status.messages);
    println!(
        "{} dead letters listed of group {d}/{g} ({} in {}); nothing moved.",
        status.messages.len(),
        status.remaining.unwrap_or(0),
        status.dead_letter_queue.as_deref().unwrap_or("its DLQ")
    );
    Ok(())
}

fn print_messages(messages: &[DeadLetter]) {
    for (i, m) in messages.iter().enumerate() {
        println!(
            "{:>3}  {}  id={}  type={}  attempts={}",
            i + 1,
            m.routing_key,
            m.message_id.as_deref().unwrap_or("-"),
            m.r#type.as_deref().unwrap_or("-"),
            m.attempts.map_or_else(|| "-".into(), |n| n.to_string()),
        );
        let when = m.dead_lettered_at.as_ref().map(|t| t.0.to_string());
        println!(
            "     {} from {} at {}{}",
            m.reason.as_deref().unwrap_or("dead-lettered"),
            m.dead_lettered_from.as_deref().unwrap_or("?"),
            when.as_deref().unwrap_or("?"),
            m.redrives
                .map_or_else(String::new, |n| format!(", redriven {n}×")),
        );
        println!("     {} bytes: {}", m.size, m.preview.replace('\n', " "));
    }
}

async fn redrive(a: RedriveArgs) -> anyhow::Result<()> {
    let cluster = a.target.connect().await?;
    let stream = get_stream(&cluster, &a.stream).await?;
    let (d, g) = &a.group;
    let max = if a.all { None } else { a.limit };
    let r = new_redrive(&a.stream, &a.group, RedriveMode::Move, max, a.routing_keys);
    let name = create(&cluster, &r).await?;
    let what = max.map_or_else(
        || "every selected dead letter".to_owned(),
        |n| format!("up to {n} dead letters"),
    );
    eprintln!(
        "DeadLetterRedrive {name} created: {what} of group {d}/{g} (Stream {}) back to its queue",
        stream.metadata.name.as_deref().unwrap_or_default()
    );
    if a.no_wait {
        println!("{name}");
        eprintln!(
            "follow it with: kubectl get deadletterredrive {name} -n {} -w",
            cluster.namespace
        );
        return Ok(());
    }
    let status = wait(&cluster, &name, Duration::from_secs(a.timeout)).await?;
    if a.output != Output::Table {
        print_data(a.output, &status)?;
    }
    if status.phase == RedrivePhase::Failed {
        bail!(
            "DeadLetterRedrive {name} failed: {}",
            status.message.unwrap_or_else(|| "no reason given".into())
        );
    }
    if a.output == Output::Table {
        println!(
            "moved {}, skipped {} (not selected), {} left in the DLQ{}",
            status.moved,
            status.skipped,
            status.remaining.unwrap_or(0),
            if status.in_doubt > 0 {
                format!(
                    "; {} in doubt after an operator restart (each in the group queue or the DLQ, once)",
                    status.in_doubt
                )
            } else {
                String::new()
            }
        );
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use eventflow_operator::api::DestinationStatus;

    use super::*;

    #[test]
    fn a_group_is_destination_slash_group() {
        assert_eq!(
            parse_group("orders/order-worker"),
            Ok(("orders".into(), "order-worker".into()))
        );
        for bad in ["orders", "/g", "d/", "a/b/c"] {
            assert!(
                parse_group(bad).unwrap_err().contains("DESTINATION/GROUP"),
                "{bad}"
            );
        }
    }

    fn stream(status: serde_json::Value) -> Stream {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "eventflow.dev/v1alpha1", "kind": "Stream",
            "metadata": {"name": "shop"}, "spec": {"broker": "rabbit", "apps": []},
            "status": status
        }))
        .unwrap()
    }

    #[test]
    fn before_the_broker_is_read_the_groups_come_from_the_topology_counts_unknown() {
        let s = stream(serde_json::to_value(serde_json::json!({
            "destinations": [DestinationStatus {
                name: "orders".into(),
                exchange: "demo.orders".into(),
                queues: vec!["demo.orders.w".into(), "demo.orders.w.dlq".into(), "demo.orders.w.retry".into()],
            }]
        })).unwrap());
        let rows = group_rows(&s);
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0].destination.as_str(), rows[0].group.as_str()),
            ("orders", "w")
        );
        assert_eq!(rows[0].dead_letters, None);
    }

    #[test]
    fn once_read_the_groups_carry_their_counts() {
        let s = stream(serde_json::json!({
            "groups": [{"destination": "orders", "group": "w", "app": "order", "queue": "demo.orders.w",
                        "deadLetterQueue": "demo.orders.w.dlq", "deadLetters": 7}]
        }));
        let rows = group_rows(&s);
        assert_eq!(rows[0].dead_letters, Some(7));
        assert_eq!(rows[0].app.as_deref(), Some("order"));
    }
}
