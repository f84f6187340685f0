//! Chaos runs: while the load simulator runs, pods of every kind the example
//! system stands on — a web role, a worker role, a broker node, PostgreSQL,
//! the operator's leader — are deleted on a schedule, gracefully or forced
//! (`kubectl delete --force --grace-period=0`); then the system is left to
//! settle and what it holds is gathered for [`crate::invariants`]
//! ([`crate::run`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams};
use kube::{Api, Client};

use crate::broker::BROKER;
use crate::install::OPERATOR_NS;
use crate::invariants::Facts;
use crate::run::{LoadRun, load_run};

/// The example Stream whose roles are killed.
pub const STREAM: &str = "ecommerce";

/// What a kill hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A web role of the example Stream (the load simulator is a Stream of its own).
    Web,
    /// A worker role of the example Stream.
    Worker,
    /// A node of the managed broker (`rabbit-N`).
    Broker,
    /// The example PostgreSQL.
    Postgres,
    /// The operator replica holding the leader Lease.
    OperatorLeader,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Web,
        Kind::Worker,
        Kind::Broker,
        Kind::Postgres,
        Kind::OperatorLeader,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Web => "web",
            Kind::Worker => "worker",
            Kind::Broker => "broker node",
            Kind::Postgres => "PostgreSQL",
            Kind::OperatorLeader => "operator leader",
        }
    }
}

/// A small seeded generator (SplitMix64): the same seed, the same schedule.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform in `min..=max`, to the millisecond.
    pub fn between(&mut self, min: Duration, max: Duration) -> Duration {
        let (lo, hi) = (min.as_millis() as u64, max.as_millis() as u64);
        Duration::from_millis(lo + self.below(hi.saturating_sub(lo) + 1))
    }

    pub fn coin(&mut self) -> bool {
        self.next_u64() & 1 == 1
    }
}

/// One kill a schedule asks for: wait `after`, then kill a pod of `kind`
/// (the `pick`-th of those there are, modulo their number).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedKill {
    pub after: Duration,
    pub kind: Kind,
    pub force: bool,
    pub pick: u64,
}

/// Endless kills: a kind at random every `min..=max`, graceful or forced at random.
pub fn random_schedule(
    seed: u64,
    min: Duration,
    max: Duration,
) -> impl Iterator<Item = PlannedKill> {
    let mut rng = Rng::new(seed);
    std::iter::from_fn(move || {
        Some(PlannedKill {
            after: rng.between(min, max),
            kind: Kind::ALL[rng.below(Kind::ALL.len() as u64) as usize],
            force: rng.coin(),
            pick: rng.next_u64(),
        })
    })
}

/// One kill of each kind in a shuffled order, the first after `first`, the
/// others `every` apart; each graceful or forced at random.
pub fn each_kind_once(seed: u64, first: Duration, every: Duration) -> Vec<PlannedKill> {
    let mut rng = Rng::new(seed);
    let mut kinds = Kind::ALL.to_vec();
    for i in (1..kinds.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        kinds.swap(i, j);
    }
    kinds
        .into_iter()
        .enumerate()
        .map(|(i, kind)| PlannedKill {
            after: if i == 0 { first } else { every },
            kind,
            force: rng.coin(),
            pick: rng.next_u64(),
        })
        .collect()
}

/// A kill that was made.
#[derive(Clone, Debug)]
pub struct Kill {
    /// Since the chaos began.
    pub at: Duration,
    pub kind: Kind,
    pub namespace: String,
    pub pod: String,
    pub force: bool,
}

/// The pods of `kind` a kill can hit now, as `(namespace, pod)`: running
/// and not being deleted already.
pub async fn targets(
    client: &Client,
    namespace: &str,
    kind: Kind,
) -> Result<Vec<(String, String)>> {
    if kind == Kind::OperatorLeader {
        let lease = Api::<Lease>::namespaced(client.clone(), OPERATOR_NS)
            .get("eventflow-operator")
            .await?;
        let holder = lease.spec.and_then(|s| s.holder_identity);
        return Ok(holder
            .map(|h| (OPERATOR_NS.to_owned(), h))
            .into_iter()
            .collect());
    }
    let selector = match kind {
        Kind::Web => format!("eventflow.dev/stream={STREAM},eventflow.dev/role=web"),
        Kind::Worker => format!("eventflow.dev/stream={STREAM},eventflow.dev/role=worker"),
        Kind::Broker => format!("eventflow.dev/broker={BROKER}"),
        Kind::Postgres => "app.kubernetes.io/name=postgres".to_owned(),
        Kind::OperatorLeader => unreachable!("handled above"),
    };
    let pods = Api::<Pod>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().labels(&selector))
        .await?;
    let mut names: Vec<String> = pods
        .items
        .into_iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_none()
                && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
        })
        .filter_map(|p| p.metadata.name)
        .collect();
    names.sort();
    Ok(names
        .into_iter()
        .map(|n| (namespace.to_owned(), n))
        .collect())
}

/// Deletes a pod the way `kubectl delete pod` does: with its grace period,
/// or forced (`--force --grace-period=0`: gone from the API at once).
pub async fn kill(client: &Client, namespace: &str, pod: &str, force: bool) -> Result<()> {
    let params = DeleteParams {
        grace_period_seconds: force.then_some(0),
        ..DeleteParams::default()
    };
    Api::<Pod>::namespaced(client.clone(), namespace)
        .delete(pod, &params)
        .await
        .with_context(|| format!("deleting pod {namespace}/{pod}"))?;
    Ok(())
}

/// Makes the kills of `schedule` in `namespace` until `done` is set or the
/// schedule ends, printing each as it happens; returns the kills made. A
/// kind with no pod to hit right now (one still being replaced) is skipped.
pub async fn run_kills(
    client: &Client,
    namespace: &str,
    schedule: impl Iterator<Item = PlannedKill>,
    done: &AtomicBool,
    started: Instant,
) -> Vec<Kill> {
    let mut kills = Vec::new();
    for planned in schedule {
        let until = tokio::time::Instant::now() + planned.after;
        while tokio::time::Instant::now() < until {
            if done.load(Ordering::SeqCst) {
                return kills;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        if done.load(Ordering::SeqCst) {
            return kills;
        }
        let at = started.elapsed();
        let how = if planned.force {
            "--force --grace-period=0"
        } else {
            "graceful"
        };
        let targets = match targets(client, namespace, planned.kind).await {
            Ok(t) => t,
            Err(e) => {
                println!(
                    "  [{:>6.1} s] no {} to kill: {e:#}",
                    at.as_secs_f64(),
                    planned.kind.name()
                );
                continue;
            }
        };
        if targets.is_empty() {
            println!(
                "  [{:>6.1} s] no running {} pod to kill (being replaced)",
                at.as_secs_f64(),
                planned.kind.name()
            );
            continue;
        }
        let (ns, pod) = &targets[(planned.pick % targets.len() as u64) as usize];
        match kill(client, ns, pod, planned.force).await {
            Ok(()) => {
                println!(
                    "  [{:>6.1} s] killed {} {ns}/{pod} ({how})",
                    at.as_secs_f64(),
                    planned.kind.name()
                );
                kills.push(Kill {
                    at,
                    kind: planned.kind,
                    namespace: ns.clone(),
                    pod: pod.clone(),
                    force: planned.force,
                });
            }
            Err(e) => println!("  [{:>6.1} s] {e:#}", at.as_secs_f64()),
        }
    }
    kills
}

/// Runs the load of `run` while making the kills of `schedule`, waits for
/// the system to settle, and gathers what it holds of the run.
pub async fn chaos_run(
    client: &Client,
    run: &LoadRun,
    schedule: impl Iterator<Item = PlannedKill>,
) -> Result<Facts> {
    let ns = run.namespace.as_str();
    let (mut facts, kills) = load_run(client, run, |done, started| async move {
        run_kills(client, ns, schedule, &done, started).await
    })
    .await?;
    facts.kills = kills;
    Ok(facts)
}

/// Orders a load of about `events` events makes, at `events_per_order`
/// events each (every context's feed together, stock included).
pub fn orders_for_events(events: u64, events_per_order: f64) -> u32 {
    let orders = (events as f64 / events_per_order).ceil();
    orders.clamp(1.0, 100_000.0) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_the_same_schedule_and_kills_come_min_to_max_apart() {
        let (min, max) = (Duration::from_secs(10), Duration::from_secs(30));
        let a: Vec<_> = random_schedule(7, min, max).take(50).collect();
        let b: Vec<_> = random_schedule(7, min, max).take(50).collect();
        assert_eq!(a, b);
        assert!(a.iter().all(|k| k.after >= min && k.after <= max), "{a:?}");
        for kind in Kind::ALL {
            assert!(
                a.iter().any(|k| k.kind == kind),
                "{kind:?} never killed in 50"
            );
        }
        assert!(a.iter().any(|k| k.force) && a.iter().any(|k| !k.force));
    }

    #[test]
    fn each_kind_once_kills_every_kind_exactly_once() {
        let kills = each_kind_once(3, Duration::from_secs(5), Duration::from_secs(20));
        let mut kinds: Vec<Kind> = kills.iter().map(|k| k.kind).collect();
        kinds.sort();
        assert_eq!(kinds, Kind::ALL.to_vec());
        assert_eq!(kills[0].after, Duration::from_secs(5));
        assert!(
            kills[1..]
                .iter()
                .all(|k| k.after == Duration::from_secs(20))
        );
    }

    #[test]
    fn events_translate_to_orders_at_the_measured_ratio() {
        assert_eq!(orders_for_events(100_000, 28.0), 3572);
        assert_eq!(orders_for_events(1, 28.0), 1);
    }
}
