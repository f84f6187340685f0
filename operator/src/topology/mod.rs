//! The topology step: a Stream's exchanges, queues and bindings declared on
//! its broker, and after a spec change the objects the previous spec
//! declared and nothing declares now deleted (`deletionPolicy: Delete`).
//!
//! A declare is skipped when the same topology was declared on the same
//! broker (same URI, same EventBroker version) less than half a resync
//! period ago: reconciles woken by workload changes then cost no AMQP round
//! trip, while the periodic resync still re-declares what was deleted on
//! the broker (back within twice the resync period).
//!
//! [`amqp`] talks to the broker, [`plan`] decides what may be deleted,
//! [`destinations`] converts between a topology and `status.destinations`.

pub mod amqp;
pub mod destinations;
pub mod plan;

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use eventflow_contract::Topology;

pub use self::amqp::{Amqp, redact};
use crate::{
    Result, api::DeletionPolicy, context::Context, fingerprint, resolve, validate::ValidStream,
};

/// The last successful declare of each Stream: its fingerprint and when.
#[derive(Default)]
pub struct Declarations {
    entries: Mutex<HashMap<String, (u64, Instant)>>,
}

impl Declarations {
    /// Whether `key` declared exactly `fingerprint` less than `within` ago.
    fn fresh(&self, key: &str, fingerprint: u64, within: Duration) -> bool {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(key)
            .is_some_and(|(f, at)| *f == fingerprint && at.elapsed() < within)
    }

    fn record(&self, key: &str, fingerprint: u64) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.insert(key.to_owned(), (fingerprint, Instant::now()));
    }

    /// Forgets a Stream (deleted, or its declare failed).
    pub fn forget(&self, key: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.remove(key);
    }
}

/// Every queue and exchange of `t` by name, for Events.
pub fn describe(t: &Topology) -> String {
    let mut names: Vec<&str> = t.queue_names().collect();
    names.extend(t.exchanges.iter().map(|e| e.name.as_str()));
    if names.is_empty() {
        "nothing".to_owned()
    } else {
        names.join(", ")
    }
}

/// The topology step of one reconcile: declare `topology` on the broker at
/// `uri` (unless freshly declared), then, after a spec change, prune what
/// the previous spec declared. `broker_version` is the EventBroker's
/// resourceVersion: a broker that changed is declared on again at once.
pub async fn converge(
    ctx: &Context,
    stream: &ValidStream<'_>,
    uri: &str,
    broker_version: &str,
    topology: &Topology,
    spec_changed: bool,
) -> Result<()> {
    let key = format!("{}/{}", stream.namespace, stream.name);
    let print = fingerprint::of_bytes(format!("{uri}\n{broker_version}\n{topology:?}").as_bytes());
    if !ctx.declarations.fresh(&key, print, ctx.settings.resync / 2) {
        if let Err(e) = ctx.amqp.declare(uri, topology).await {
            ctx.declarations.forget(&key);
            return Err(e);
        }
        ctx.declarations.record(&key, print);
    }
    if spec_changed && stream.spec().deletion_policy == DeletionPolicy::Delete {
        prune(ctx, stream, uri, topology).await;
    }
    Ok(())
}

/// Deletes what the previous spec declared (as its status records) and
/// neither this spec nor another Stream declares now. Failures only warn:
/// the objects are harmless, and the Stream's deletion retries nothing of it.
async fn prune(ctx: &Context, stream: &ValidStream<'_>, uri: &str, current: &Topology) {
    let Some(status) = stream.stream.status.as_ref() else {
        return;
    };
    let candidates = plan::unshared(
        &destinations::from_destinations(&status.destinations),
        current,
    );
    if candidates.queues.is_empty() && candidates.exchanges.is_empty() {
        return;
    }
    let Ok(streams) = resolve::expanded_streams(ctx, stream.namespace).await else {
        return;
    };
    let others = plan::declared_by_others(stream.stream, stream.namespace, &streams);
    let stale = plan::unshared(&candidates, &others);
    if stale.queues.is_empty() && stale.exchanges.is_empty() {
        return;
    }
    match ctx.amqp.delete(uri, &stale).await {
        Ok(()) => {
            let note = format!(
                "deleted what the spec no longer declares: {}",
                describe(&stale)
            );
            ctx.event(stream.stream, false, "TopologyPruned", note)
                .await;
        }
        Err(e) => {
            let note = format!(
                "could not delete {} ({e}); they stay on the broker",
                describe(&stale)
            );
            ctx.event(stream.stream, true, e.reason(), note).await;
        }
    }
}
