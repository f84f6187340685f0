//! `kubectl eventflow history STREAM`: the Stream's revisions (the
//! ControllerRevisions the operator records for each effective spec), or
//! with `--revision N` that revision's spec, like Data Flow's `stream
//! history` and `stream manifest`.

use anyhow::{Context as _, anyhow};
use clap::Args;
use eventflow_operator::{
    api::Stream,
    revision::{
        self, Revision,
        summary::{AppSummary, app_summary, changes, one_line},
    },
};
use kube::{Api, ResourceExt};
use serde::Serialize;

use crate::cluster::{Output, Target, print_data};

pub const HELP: &str = "\
Each change of a Stream's effective spec (its apps, or its definition expanded) is a revision,
numbered upwards; a rollback is a revision too. The current one (status.currentRevision) is marked
with *. CHANGES says what changed from the revision listed above it (images, replicas, env,
destinations, apps added or removed); the oldest listed shows its apps instead.

Examples:
  kubectl eventflow history shop -n demo
  kubectl eventflow history shop -n demo -o yaml
  kubectl eventflow history shop -n demo --revision 3          # revision 3's spec, as YAML
  kubectl eventflow history shop -n demo --revision 3 -o json

Exit codes:
  0  printed
  1  the Stream or the revision does not exist, or the cluster cannot be reached
  2  usage error";

#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// Name of the Stream.
    pub stream: String,

    /// Print this revision's spec (what a rollback to it writes back) instead of the list.
    #[arg(long, value_name = "N")]
    pub revision: Option<i64>,

    /// Output format (`--revision`: table prints YAML).
    #[arg(long, short = 'o', value_enum, default_value_t)]
    pub output: Output,

    #[command(flatten)]
    pub target: Target,
}

/// One line of the history, as `-o json|yaml` prints it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    revision: i64,
    current: bool,
    controller_revision: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    recorded_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    change_cause: Option<String>,
    /// What changed from the revision before it in the list.
    changes: Vec<String>,
    apps: Vec<AppSummary>,
}

/// One revision's spec (`--revision N`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Manifest<'a> {
    revision: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    change_cause: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recorded_at: Option<&'a str>,
    spec: &'a serde_json::Value,
    /// What a definition expanded to when the revision was recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    expanded_apps: Option<&'a [eventflow_operator::api::App]>,
}

pub fn run(args: HistoryArgs) -> std::process::ExitCode {
    crate::cluster::run(history(args))
}

async fn history(args: HistoryArgs) -> anyhow::Result<()> {
    let cluster = args.target.connect().await?;
    let (client, ns) = (&cluster.client, cluster.namespace.as_str());
    let stream = Api::<Stream>::namespaced(client.clone(), ns)
        .get_opt(&args.stream)
        .await
        .with_context(|| format!("cannot read Stream {ns}/{}", args.stream))?
        .ok_or_else(|| anyhow!("Stream {ns}/{} not found", args.stream))?;
    let revisions = revision::history(client, ns, &args.stream, &stream.uid().unwrap_or_default())
        .await
        .with_context(|| format!("cannot list the revisions of Stream {ns}/{}", args.stream))?;
    let current = stream.status.as_ref().and_then(|s| s.current_revision);
    if let Some(number) = args.revision {
        let r = revisions
            .iter()
            .find(|r| r.number == number)
            .ok_or_else(|| {
                anyhow!(
                    "Stream {ns}/{} has no revision {number} (revisions: {})",
                    args.stream,
                    list(&revisions)
                )
            })?;
        let manifest = Manifest {
            revision: r.number,
            change_cause: r.change_cause.as_deref(),
            recorded_at: r.recorded_at.as_deref(),
            spec: &r.data.spec,
            expanded_apps: r
                .data
                .spec
                .get("definition")
                .map(|_| r.data.apps.as_slice()),
        };
        let output = match args.output {
            Output::Table => Output::Yaml,
            o => o,
        };
        return print_data(output, &manifest);
    }
    let entries = entries(&revisions, current);
    match args.output {
        Output::Table if entries.is_empty() => {
            println!(
                "Stream {ns}/{} has no revisions yet (the operator records one when it deploys a spec)",
                args.stream
            );
            Ok(())
        }
        Output::Table => {
            print!("{}", table(&revisions, &entries));
            Ok(())
        }
        o => print_data(o, &entries),
    }
}

fn list(revisions: &[Revision]) -> String {
    let numbers: Vec<String> = revisions.iter().map(|r| r.number.to_string()).collect();
    if numbers.is_empty() {
        "none".into()
    } else {
        numbers.join(", ")
    }
}

fn entries(revisions: &[Revision], current: Option<i64>) -> Vec<Entry> {
    revisions
        .iter()
        .enumerate()
        .map(|(i, r)| Entry {
            revision: r.number,
            current: Some(r.number) == current,
            controller_revision: r.name.clone(),
            recorded_at: r.recorded_at.clone(),
            change_cause: r.change_cause.clone(),
            changes: i
                .checked_sub(1)
                .map(|p| changes(&revisions[p].data, &r.data))
                .unwrap_or_default(),
            apps: r.data.apps.iter().map(app_summary).collect(),
        })
        .collect()
}

fn when(recorded_at: Option<&str>) -> String {
    recorded_at
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map_or_else(
            || "-".into(),
            |t| t.strftime("%Y-%m-%d %H:%M:%SZ").to_string(),
        )
}

/// The table: REVISION, CREATED, CHANGE-CAUSE, CHANGES.
fn table(revisions: &[Revision], entries: &[Entry]) -> String {
    let mut rows = vec![[
        "REVISION".to_owned(),
        "CREATED".to_owned(),
        "CHANGE-CAUSE".to_owned(),
        "CHANGES".to_owned(),
    ]];
    for (i, (r, e)) in revisions.iter().zip(entries).enumerate() {
        let what = if i == 0 {
            format!("apps: {}", one_line(&r.data.apps))
        } else if e.changes.is_empty() {
            "no change in the apps deployed".to_owned()
        } else {
            e.changes.join("; ")
        };
        rows.push([
            format!("{}{}", e.revision, if e.current { " *" } else { "" }),
            when(e.recorded_at.as_deref()),
            e.change_cause.clone().unwrap_or_else(|| "-".into()),
            what,
        ]);
    }
    let width = |c: usize| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0);
    let widths = [width(0), width(1), width(2)];
    let mut out = String::new();
    for row in &rows {
        for (c, w) in widths.iter().enumerate() {
            out.push_str(&format!("{:<w$}   ", row[c], w = *w));
        }
        out.push_str(&row[3]);
        out.push('\n');
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use eventflow_operator::{api::StreamSpec, revision::RevisionData};

    use super::*;

    fn revision(number: i64, image: &str, cause: Option<&str>) -> Revision {
        let spec: StreamSpec = serde_json::from_value(serde_json::json!({"broker": "rabbit",
            "apps": [{"name": "account", "image": image, "worker": {},
                      "subscribes": [{"destination": "account"}]}]}))
        .unwrap();
        Revision {
            number,
            name: format!("shop-{number}"),
            recorded_at: Some("2026-12-02T10:00:00.5Z".into()),
            change_cause: cause.map(str::to_owned),
            data: RevisionData::of(&spec),
        }
    }

    #[test]
    fn the_table_marks_the_current_revision_and_says_what_changed() {
        let rs = [
            revision(2, "account:1", None),
            revision(3, "account:2", Some("bump")),
        ];
        let text = table(&rs, &entries(&rs, Some(3)));
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("REVISION"), "{text}");
        assert!(lines[1].starts_with("2 "), "{text}");
        assert!(
            lines[1].ends_with("apps: account: account:1 worker×1"),
            "{text}"
        );
        assert!(lines[2].starts_with("3 *"), "{text}");
        assert!(lines[2].contains("2026-12-02 10:00:00Z"), "{text}");
        assert!(lines[2].contains("bump"), "{text}");
        assert!(
            lines[2].ends_with("account worker image account:1 → account:2"),
            "{text}"
        );
    }
}
