//! The global event feeds (`GET /v1/events`) of the example system's
//! bounded contexts: read whole or from a position, and counted by routing
//! key.

use std::collections::BTreeMap;

use anyhow::{Result, anyhow};
use kube::Client;
use serde_json::Value;

use crate::forward::forward_service;
use crate::http::{get_json, run_base};
use crate::install::EXAMPLES_NS;

/// The bounded contexts of the example system whose web role serves a
/// global event feed (`GET /v1/events`), as `ecommerce-<context>-web`.
pub const CONTEXTS: [&str; 4] = ["account", "order", "payment", "warehouse"];

/// `http://127.0.0.1:<port>` forwarding to the web role of context `app`
/// of the example Stream (`ecommerce-<app>-web`) in `namespace`.
pub async fn web_base(client: &Client, namespace: &str, app: &str) -> Result<String> {
    forward_service(client, namespace, &format!("ecommerce-{app}-web"), 8080).await
}

/// The position of the last event of the feed at `base` (0 when empty):
/// the least position with no event after it, found by doubling then
/// bisecting with one-event pages.
pub async fn feed_end(http: &reqwest::Client, base: &str) -> Result<i64> {
    let any_after = |p: i64| async move {
        let doc = get_json(http, &format!("{base}/v1/events?after={p}&limit=1")).await?;
        Ok::<bool, anyhow::Error>(
            doc["_embedded"]["events"]
                .as_array()
                .is_some_and(|e| !e.is_empty()),
        )
    };
    if !any_after(0).await? {
        return Ok(0);
    }
    let (mut low, mut high) = (0i64, 1i64); // an event after low; find high with none
    while any_after(high).await? {
        low = high;
        high = high.saturating_mul(2);
    }
    while high - low > 1 {
        let mid = low + (high - low) / 2;
        if any_after(mid).await? {
            low = mid;
        } else {
            high = mid;
        }
    }
    Ok(high)
}

/// Every event of one context's global feed at `base` (a web role) after
/// position `after`, following `_links.next`.
pub async fn feed_events(http: &reqwest::Client, base: &str, after: i64) -> Result<Vec<Value>> {
    let mut events = Vec::new();
    let mut next = Some(format!("{base}/v1/events?after={after}&limit=100"));
    while let Some(page) = next.take() {
        let doc = get_json(http, &page).await?;
        events.extend(
            doc["_embedded"]["events"]
                .as_array()
                .into_iter()
                .flatten()
                .cloned(),
        );
        next = doc["_links"]["next"]["href"]
            .as_str()
            .map(|h| h.replace(run_base(&doc).as_str(), base));
    }
    Ok(events)
}

/// Events of one context's global feed at `base` (a web role), counted by
/// routing key (`<aggregateType>.<eventType>`).
pub async fn feed_counts_at(http: &reqwest::Client, base: &str) -> Result<BTreeMap<String, u64>> {
    let mut counts = BTreeMap::new();
    for e in feed_events(http, base, 0).await? {
        let field = |f: &str| {
            e[f].as_str()
                .ok_or_else(|| anyhow!("an event of {base} has no {f}: {e}"))
        };
        let key = format!("{}.{}", field("aggregateType")?, field("eventType")?);
        *counts.entry(key).or_insert(0u64) += 1;
    }
    Ok(counts)
}

/// [`feed_counts_at`] of every context in [`CONTEXTS`], by context, each
/// reached by a port-forward to its web role in [`EXAMPLES_NS`].
pub async fn context_feed_counts(
    client: &Client,
    http: &reqwest::Client,
) -> Result<BTreeMap<String, BTreeMap<String, u64>>> {
    let mut by_context = BTreeMap::new();
    for app in CONTEXTS {
        let base = web_base(client, EXAMPLES_NS, app).await?;
        by_context.insert(app.to_owned(), feed_counts_at(http, &base).await?);
    }
    Ok(by_context)
}

/// Events of every context's global feed, counted by routing key.
pub async fn feed_counts(client: &Client, http: &reqwest::Client) -> Result<BTreeMap<String, u64>> {
    let mut counts = BTreeMap::new();
    for (key, n) in context_feed_counts(client, http)
        .await?
        .into_values()
        .flatten()
    {
        *counts.entry(key).or_insert(0u64) += n;
    }
    Ok(counts)
}
