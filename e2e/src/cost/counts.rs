//! The work a load run makes, counted before and after it: SQL statements
//! per context (PostgreSQL's `pg_stat_statements`, by login role), HTTP
//! requests between roles and messages handled (our apps' own `/metrics`,
//! through the API server's pod proxy) and the broker's message totals
//! (its management API).

use std::collections::BTreeMap;

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client};

use super::component_of;
use crate::{BROKER, EXAMPLES_NS, management_get, run_tool};

/// The metrics of our apps the table reads, summed per component.
pub const APP_METRICS: &[&str] = &[
    "eventflow_peer_requests_total",
    "eventflow_http_requests_total",
    "eventflow_events_appended_total",
    "eventflow_events_published_total",
    "eventflow_messages_total",
];

/// Totals at one instant.
#[derive(Clone, Debug, Default)]
pub struct Counts {
    /// Statements run, by PostgreSQL login role (one per context); `None`
    /// when `pg_stat_statements` is not loaded.
    pub statements: Option<BTreeMap<String, u64>>,
    /// `(component, metric)` → value, for [`APP_METRICS`] (labels summed).
    pub app: BTreeMap<(String, String), f64>,
    /// The broker's `message_stats` totals (`publish`, `deliver_get`, `ack`...).
    pub broker: BTreeMap<String, u64>,
}

impl Counts {
    /// What happened between `before` and `self`.
    pub fn since(&self, before: &Self) -> Self {
        let statements = match (&self.statements, &before.statements) {
            (Some(a), Some(b)) => Some(
                a.iter()
                    .map(|(k, v)| (k.clone(), v.saturating_sub(*b.get(k).unwrap_or(&0))))
                    .collect(),
            ),
            _ => None,
        };
        Self {
            statements,
            app: self
                .app
                .iter()
                .map(|(k, v)| (k.clone(), (v - before.app.get(k).unwrap_or(&0.0)).max(0.0)))
                .collect(),
            broker: self
                .broker
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.saturating_sub(*before.broker.get(k).unwrap_or(&0)),
                    )
                })
                .collect(),
        }
    }

    /// `metric` summed over every component.
    pub fn app_total(&self, metric: &str) -> f64 {
        self.app
            .iter()
            .filter(|((_, m), _)| m == metric)
            .map(|(_, v)| v)
            .sum()
    }
}

fn psql(sql: &str) -> Result<String> {
    run_tool(
        "kubectl",
        &[
            "-n",
            EXAMPLES_NS,
            "exec",
            "postgres-0",
            "--",
            "sh",
            "-c",
            // The superuser's password is the container's own env.
            "PGPASSWORD=\"$POSTGRES_PASSWORD\" exec psql -U postgres -d eventflow -tAF \"$(printf '\\t')\" -c \"$0\"",
            sql,
        ],
        None,
    )
}

/// Statements per login role since PostgreSQL started (the extension is
/// created here when the library is loaded and the extension is not).
fn statements() -> Result<Option<BTreeMap<String, u64>>> {
    let loaded = psql("SHOW shared_preload_libraries")?;
    if !loaded.contains("pg_stat_statements") {
        return Ok(None);
    }
    psql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")?;
    let rows = psql(
        "SELECT r.rolname, sum(s.calls)::bigint FROM pg_stat_statements s \
         JOIN pg_roles r ON r.oid = s.userid GROUP BY r.rolname",
    )?;
    let mut by_role = BTreeMap::new();
    for line in rows.lines().filter(|l| !l.trim().is_empty()) {
        let (role, calls) = line
            .split_once('\t')
            .ok_or_else(|| anyhow!("unexpected psql row {line:?}"))?;
        by_role.insert(role.to_owned(), calls.trim().parse()?);
    }
    Ok(Some(by_role))
}

/// The statements run most often, with their calls (for `--statements`).
pub fn top_statements(limit: usize) -> Result<Vec<(String, String, u64)>> {
    let rows = psql(&format!(
        "SELECT r.rolname, s.calls, regexp_replace(s.query, '\\s+', ' ', 'g') \
         FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid \
         ORDER BY s.calls DESC LIMIT {limit}"
    ))?;
    Ok(rows
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, '\t');
            let role = f.next()?.to_owned();
            let calls = f.next()?.parse().ok()?;
            Some((role, f.next()?.to_owned(), calls))
        })
        .collect())
}

/// Forgets what `pg_stat_statements` counted so far (before a run whose
/// statements are listed).
pub fn reset_statements() -> Result<()> {
    if statements()?.is_none() {
        bail!(
            "--statements: PostgreSQL runs without pg_stat_statements (examples/20-postgres.yaml loads it)"
        );
    }
    psql("SELECT pg_stat_statements_reset()").map(|_| ())
}

/// Sums the Prometheus text's samples of `metrics` (labels summed away).
fn parse_metrics(text: &str, into: &mut BTreeMap<String, f64>) {
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let name = series.split('{').next().unwrap_or(series);
        if APP_METRICS.contains(&name)
            && let Ok(v) = value.parse::<f64>()
        {
            *into.entry(name.to_owned()).or_default() += v;
        }
    }
}

/// Our app pods' metrics, summed per component.
async fn app_metrics(client: &Client) -> Result<BTreeMap<(String, String), f64>> {
    let pods = Api::<Pod>::namespaced(client.clone(), EXAMPLES_NS)
        .list(&Default::default())
        .await?;
    let mut out = BTreeMap::new();
    for pod in &pods.items {
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        let ours = labels.contains_key("eventflow.dev/role")
            && labels.get("eventflow.dev/runtime").map(String::as_str)
                != Some("spring-cloud-stream");
        let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        if !ours || !running {
            continue;
        }
        let name = pod.metadata.name.clone().unwrap_or_default();
        let request = kube::core::Request::new(format!("/api/v1/namespaces/{EXAMPLES_NS}/pods"))
            .get_subresource("proxy/metrics", &format!("{name}:9090"))
            .map_err(|e| anyhow!("{e}"))?;
        let Ok(text) = client.request_text(request).await else {
            continue; // a pod going away
        };
        let mut sums = BTreeMap::new();
        parse_metrics(&text, &mut sums);
        let component = component_of(pod);
        for (metric, v) in sums {
            *out.entry((component.clone(), metric)).or_default() += v;
        }
    }
    Ok(out)
}

/// The broker's message totals (`/api/overview`'s `message_stats`).
async fn broker_totals(client: &Client, http: &reqwest::Client) -> Result<BTreeMap<String, u64>> {
    let overview = management_get(client, http, EXAMPLES_NS, BROKER, "/api/overview").await?;
    Ok(overview["message_stats"]
        .as_object()
        .map(|stats| {
            stats
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_u64()?)))
                .collect()
        })
        .unwrap_or_default())
}

/// Every count now.
pub async fn counts(client: &Client, http: &reqwest::Client) -> Result<Counts> {
    Ok(Counts {
        statements: statements().context("reading pg_stat_statements")?,
        app: app_metrics(client).await?,
        broker: broker_totals(client, http)
            .await
            .context("reading the broker's message totals")?,
    })
}
