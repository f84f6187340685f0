//! `kubectl eventflow list`: the Streams of a namespace (or of all) with
//! their phase, ready workloads, backlog, dead letters and revision.

use clap::Args;
use eventflow_operator::api::Stream;
use kube::{Api, ResourceExt, api::ListParams};
use serde::Serialize;

use crate::{
    cluster::{Output, Target, print_data},
    render::{age, or_dash, seconds_since, table},
};

pub const HELP: &str = "\
Columns: APPS READY is ready workloads / all workloads; BACKLOG the messages waiting in the
consumer groups' queues (ready + unacknowledged; ready only when the broker gives no
unacknowledged count); DEAD LETTERS the messages in their dead-letter queues; `-` is not known
(yet). The figures are the operator's last read of the broker (every 30 s).

Examples:
  kubectl eventflow list
  kubectl eventflow list -n shop
  kubectl eventflow list -A -o yaml";

#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    pub target: Target,

    /// List the Streams of every namespace.
    #[arg(long, short = 'A')]
    pub all_namespaces: bool,

    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t)]
    pub output: Output,
}

/// One Stream as `list` shows it.
#[derive(Serialize, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    pub namespace: String,
    pub name: String,
    pub phase: String,
    pub apps_ready: Option<String>,
    pub backlog: Option<i64>,
    pub dead_letters: Option<i64>,
    pub revision: Option<i64>,
    pub created: Option<String>,
}

pub fn row(s: &Stream) -> Row {
    let status = s.status.clone().unwrap_or_default();
    Row {
        namespace: s.namespace().unwrap_or_default(),
        name: s.name_any(),
        phase: format!("{:?}", status.phase),
        apps_ready: status.apps_ready,
        backlog: status.backlog,
        dead_letters: status.dead_letters,
        revision: status.current_revision,
        created: s
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.to_string()),
    }
}

/// The table; with a NAMESPACE column for `-A`.
pub fn render(rows: &[Row], namespaces: bool, now: jiff::Timestamp) -> String {
    let mut header = vec![
        "NAME",
        "PHASE",
        "APPS READY",
        "BACKLOG",
        "DEAD LETTERS",
        "REVISION",
        "AGE",
    ];
    if namespaces {
        header.insert(0, "NAMESPACE");
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let created = r.created.as_deref().and_then(|c| c.parse().ok());
            let mut cells = vec![
                r.name.clone(),
                r.phase.clone(),
                or_dash(r.apps_ready.as_deref()),
                or_dash(r.backlog),
                or_dash(r.dead_letters),
                or_dash(r.revision),
                or_dash(created.map(|c| age(seconds_since(c, now)))),
            ];
            if namespaces {
                cells.insert(0, r.namespace.clone());
            }
            cells
        })
        .collect();
    table(&header, &cells)
}

pub async fn run(args: ListArgs) -> anyhow::Result<()> {
    let cluster = args.target.connect().await?;
    let api: Api<Stream> = if args.all_namespaces {
        Api::all(cluster.client.clone())
    } else {
        Api::namespaced(cluster.client.clone(), &cluster.namespace)
    };
    let mut streams = api.list(&ListParams::default()).await.map_err(|e| {
        anyhow::anyhow!("cannot list Streams: {e} (is the eventflow CRD installed?)")
    })?;
    streams
        .items
        .sort_by_key(|s| (s.namespace().unwrap_or_default(), s.name_any()));
    let rows: Vec<Row> = streams.items.iter().map(row).collect();
    match args.output {
        Output::Table if rows.is_empty() => {
            if args.all_namespaces {
                eprintln!("No Streams found.");
            } else {
                eprintln!("No Streams found in namespace {}.", cluster.namespace);
            }
        }
        Output::Table => print!(
            "{}",
            render(&rows, args.all_namespaces, jiff::Timestamp::now())
        ),
        other => print_data(other, &rows)?,
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_stream_row_shows_its_figures_and_dashes_for_unknown_ones() {
        let running: Stream = serde_json::from_value(json!({
            "apiVersion": "eventflow.dev/v1alpha1", "kind": "Stream",
            "metadata": {"name": "orders", "namespace": "shop", "creationTimestamp": "2026-12-02T10:00:00Z"},
            "spec": {"broker": "rabbit"},
            "status": {"phase": "Running", "appsReady": "3/3", "backlog": 12, "deadLetters": 4, "currentRevision": 2}
        }))
        .unwrap();
        let fresh: Stream = serde_json::from_value(json!({
            "apiVersion": "eventflow.dev/v1alpha1", "kind": "Stream",
            "metadata": {"name": "audit", "namespace": "shop", "creationTimestamp": "2026-12-02T11:59:30Z"},
            "spec": {"broker": "rabbit"}
        }))
        .unwrap();
        let now: jiff::Timestamp = "2026-12-02T12:00:00Z".parse().unwrap();
        let out = render(&[row(&running), row(&fresh)], false, now);
        assert_eq!(
            out,
            "NAME     PHASE     APPS READY   BACKLOG   DEAD LETTERS   REVISION   AGE\n\
             orders   Running   3/3          12        4              2          2h\n\
             audit    Pending   -            -         -              -          30s\n"
        );
        let all = render(&[row(&running)], true, now);
        assert!(all.starts_with("NAMESPACE   NAME"), "{all}");
        assert!(all.contains("\nshop        orders"), "{all}");
    }
}
