//! The backlog step: what each consumer group of a Stream holds on the
//! broker — messages ready and unacknowledged, consumers, messages in its
//! dead-letter queue, publish and deliver rates — in `status.groups`, with
//! the totals `status.backlog` and `status.deadLetters`, per group gauges
//! ([`metrics`]) and a Warning Event when a dead-letter queue starts filling.
//!
//! Figures come from the RabbitMQ management API ([`management`]) when the
//! broker has one configured (a managed broker always does; an external one
//! through the key `managementUri` of its connection Secret) and it answers,
//! else from passive declares over AMQP ([`amqp`]: ready and consumers only,
//! the rest unknown). A read that fails keeps the last known figures and
//! their `groupsObservedAt` (never zeros), with a Warning Event when reads
//! start failing. Run on every reconcile, so at least once a resync period.

pub mod amqp;
pub mod figures;
pub mod management;
pub mod metrics;

use std::{
    collections::{BTreeMap, HashSet},
    sync::Mutex,
};

use futures::{StreamExt, stream};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use self::{figures::QueueFigures, management::Management};
use crate::{
    Error,
    api::{GroupStatus, StreamStatus},
    connection::BrokerWiring,
    context::Context,
    resolve,
    validate::ValidStream,
};

/// Management API requests of one Stream's read in flight at once.
const MAX_CONCURRENT_REQUESTS: usize = 8;

/// Key of a broker's Secret holding its management API URI
/// (`http://user:password@host:15672`): optional in an external broker's
/// connection Secret, always in a managed broker's credentials Secret
/// (where KEDA's rabbitmq trigger reads it; the backlog step derives a
/// managed broker's from its AMQP URI instead).
pub const MANAGEMENT_URI_KEY: &str = "managementUri";

/// Streams whose last figures read failed (to warn once per outage).
#[derive(Default)]
pub struct Reads {
    failing: Mutex<HashSet<String>>,
}

impl Reads {
    /// Records the outcome; true when it differs from the previous one.
    fn changed(&self, key: &str, failed: bool) -> bool {
        let mut failing = self.failing.lock().unwrap_or_else(|p| p.into_inner());
        if failed {
            failing.insert(key.to_owned())
        } else {
            failing.remove(key)
        }
    }
}

/// Reads the figures of every consumer group of `stream` from its broker
/// (AMQP `uri`, `None` when it could not be resolved) into `status`.
pub async fn refresh(
    ctx: &Context,
    stream: &ValidStream<'_>,
    wiring: &BrokerWiring,
    uri: Option<&str>,
    status: &mut StreamStatus,
) {
    let previous = stream.stream.status.as_ref();
    let groups = figures::groups(stream.namespace, &stream.spec().apps);
    let key = format!("{}/{}", stream.namespace, stream.name);
    let read = match uri {
        Some(uri) if !groups.is_empty() => {
            read(
                ctx,
                stream.namespace,
                wiring,
                uri,
                &figures::queues(&groups),
            )
            .await
        }
        Some(_) => Ok(BTreeMap::new()),
        None => Err("the broker URI could not be read".to_owned()),
    };
    let groups = match read {
        Ok(read) => {
            let groups = figures::fill(groups, &read);
            status.groups_observed_at = Some(Time(jiff::Timestamp::now()));
            if ctx.backlog.changed(&key, false) {
                ctx.event(
                    stream.stream,
                    false,
                    "BrokerFiguresRead",
                    "queue figures of the consumer groups are read again".into(),
                )
                .await;
            }
            for g in figures::started_filling(previous, &groups) {
                ctx.event(
                    stream.stream,
                    true,
                    "DeadLetters",
                    dead_letter_note(stream, g),
                )
                .await;
            }
            ctx.metrics
                .groups
                .set(stream.namespace, stream.name, &groups);
            groups
        }
        Err(e) => {
            tracing::warn!(object = key, error = %e, "queue figures not read; status.groups keeps the last known");
            status.groups_observed_at = previous.and_then(|p| p.groups_observed_at.clone());
            if ctx.backlog.changed(&key, true) {
                let since = status
                    .groups_observed_at
                    .as_ref()
                    .map_or("never read".to_owned(), |t| format!("read at {}", t.0));
                ctx.event(
                    stream.stream,
                    true,
                    "BrokerFiguresUnknown",
                    format!("queue figures of the consumer groups could not be read ({e}); status.groups keeps the last known ones ({since})"),
                )
                .await;
            }
            figures::keep(groups, previous)
        }
    };
    // No group at all (web roles only): nothing can wait.
    let none = groups.is_empty().then_some(0);
    status.backlog = figures::backlog(&groups).or(none);
    status.dead_letters = figures::dead_letters(&groups).or(none);
    status.groups = groups;
}

/// The backlog fields of `previous`, for a reconcile that does not read
/// the broker (invalid spec, broker missing, apply failed).
pub fn kept(previous: Option<&StreamStatus>) -> StreamStatus {
    previous.map_or_else(StreamStatus::default, |p| StreamStatus {
        backlog: p.backlog,
        dead_letters: p.dead_letters,
        groups: p.groups.clone(),
        groups_observed_at: p.groups_observed_at.clone(),
        ..Default::default()
    })
}

/// Forgets a deleted Stream: its gauges and its read outcome.
pub fn forget(ctx: &Context, namespace: &str, name: &str) {
    ctx.metrics.groups.forget(namespace, name);
    ctx.backlog.changed(&format!("{namespace}/{name}"), false);
}

fn dead_letter_note(stream: &ValidStream<'_>, g: &GroupStatus) -> String {
    format!(
        "dead-letter queue {} of group {} (destination {}, app {}) holds {} message(s); see them with `kubectl eventflow dlq list {} -n {}`",
        g.dead_letter_queue,
        g.group,
        g.destination,
        g.app,
        g.dead_letters.unwrap_or(0),
        stream.name,
        stream.namespace
    )
}

/// Figures of `queues`: from the management API when there is one and it
/// answers, else over AMQP.
async fn read(
    ctx: &Context,
    namespace: &str,
    wiring: &BrokerWiring,
    uri: &str,
    queues: &[String],
) -> Result<BTreeMap<String, QueueFigures>, String> {
    let amqp: lapin::uri::AMQPUri = uri
        .parse()
        .map_err(|e| format!("the broker URI does not parse: {e}"))?;
    let api = match management_api(ctx, namespace, wiring, &amqp).await {
        Ok(api) => api,
        Err(e) => {
            tracing::warn!(namespace, error = %e, "no management API; queue figures over AMQP");
            None
        }
    };
    if let Some(api) = api {
        match from_management(ctx, &api, &amqp.vhost, queues).await {
            Ok(mut read) => {
                // A queue too new for statistics: its ready count over AMQP.
                let uncounted: Vec<String> = queues
                    .iter()
                    .filter(|q| read.get(*q).is_some_and(|f| f.ready.is_none()))
                    .cloned()
                    .collect();
                if !uncounted.is_empty() {
                    read.extend(amqp::read(ctx, uri, &uncounted).await?);
                }
                return Ok(read);
            }
            Err(e) => {
                tracing::warn!(namespace, error = %e, "management API failed; queue figures over AMQP");
            }
        }
    }
    amqp::read(ctx, uri, queues).await
}

/// Figures of `queues` from the management API alone: `Ok(None)` when
/// the broker has none configured (the autoscaler's unacknowledged counts
/// and rates; its ready counts come over AMQP, exact and at once).
pub async fn management_figures(
    ctx: &Context,
    namespace: &str,
    wiring: &BrokerWiring,
    uri: &str,
    queues: &[String],
) -> Result<Option<BTreeMap<String, QueueFigures>>, String> {
    let amqp: lapin::uri::AMQPUri = uri
        .parse()
        .map_err(|e| format!("the broker URI does not parse: {e}"))?;
    match management_api(ctx, namespace, wiring, &amqp).await? {
        Some(api) => from_management(ctx, &api, &amqp.vhost, queues)
            .await
            .map(Some),
        None => Ok(None),
    }
}

async fn from_management(
    ctx: &Context,
    api: &Management,
    vhost: &str,
    queues: &[String],
) -> Result<BTreeMap<String, QueueFigures>, String> {
    let timeout = ctx.settings.amqp_timeout;
    // Collected first: a lazy map would make the reconcile future not Send.
    let requests: Vec<_> = queues
        .iter()
        .map(|q| api.queue(vhost, q, timeout))
        .collect();
    let answers: Vec<_> = stream::iter(requests)
        .buffered(MAX_CONCURRENT_REQUESTS)
        .collect()
        .await;
    let mut read = BTreeMap::new();
    for (q, answer) in queues.iter().zip(answers) {
        if let Some(figures) = answer? {
            read.insert(q.clone(), figures);
        }
    }
    Ok(read)
}

/// The broker's management API: a managed broker's on its client Service,
/// an external one's from its connection Secret (none without the key).
pub async fn management_api(
    ctx: &Context,
    namespace: &str,
    wiring: &BrokerWiring,
    amqp: &lapin::uri::AMQPUri,
) -> Result<Option<Management>, String> {
    if wiring.mode == crate::connection::MANAGED {
        return Ok(Some(Management::of_managed(amqp)));
    }
    let uri = management_uri(ctx, namespace, wiring)
        .await
        .map_err(|e| e.to_string())?;
    if uri.trim().is_empty() {
        return Ok(None);
    }
    Management::parse(&uri).map(Some).map_err(|e| {
        format!(
            "Secret {} key {MANAGEMENT_URI_KEY}: {e}",
            wiring.secret.name
        )
    })
}

/// The [`MANAGEMENT_URI_KEY`] of an external broker's connection Secret,
/// empty when the Secret has no such key (read through the short URI cache
/// Stream reconciles share).
pub async fn management_uri(
    ctx: &Context,
    namespace: &str,
    wiring: &BrokerWiring,
) -> crate::Result<String> {
    let key = (
        namespace.to_owned(),
        wiring.secret.name.clone(),
        MANAGEMENT_URI_KEY.to_owned(),
    );
    if let Some(uri) = ctx.cached_uri(&key) {
        return Ok(uri);
    }
    let uri = match resolve::secret_value(
        &ctx.client,
        namespace,
        &wiring.secret.name,
        MANAGEMENT_URI_KEY,
    )
    .await
    {
        Ok(uri) => uri,
        // No such key (or Secret): no management API.
        Err(Error::Secret { .. }) => String::new(),
        Err(e) => return Err(e),
    };
    ctx.cache_uri(key, &uri);
    Ok(uri)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;
    use crate::status::{BrokerState, Observed, stream_status};

    #[test]
    fn a_reconcile_that_reads_nothing_keeps_the_figures_it_had() {
        let at = Time(jiff::Timestamp::from_second(1_700_000_000).unwrap());
        let previous = StreamStatus {
            backlog: Some(12),
            dead_letters: Some(3),
            groups: vec![GroupStatus {
                group: "billing".into(),
                ready: Some(12),
                dead_letters: Some(3),
                ..Default::default()
            }],
            groups_observed_at: Some(at.clone()),
            ..Default::default()
        };
        let observed = |invalid: Option<String>| Observed {
            generation: Some(2),
            invalid,
            broker: BrokerState::NotReady("BrokerNotFound", "gone".into()),
            workloads: vec![],
            topology: None,
            destinations: vec![],
            apply_error: None,
            revision: None,
            users: None,
        };
        for o in [observed(None), observed(Some("spec.apps: bad".into()))] {
            let s = stream_status(Some(&previous), o, &at);
            assert_eq!(
                (s.backlog, s.dead_letters, &s.groups, &s.groups_observed_at),
                (Some(12), Some(3), &previous.groups, &Some(at.clone()))
            );
        }
        assert_eq!(kept(None), StreamStatus::default());
    }
}
