//! The example system's counter (`ecommerce-counter`) as a test checks it:
//! its counts by routing key against the contexts' feeds, the state of its
//! reading of each feed (`COUNTER_FEEDS`), and a restart of its pod.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client, api::DeleteParams};
use serde_json::Value;

use crate::feeds::{CONTEXTS, feed_counts};
use crate::forward::forward_service;
use crate::http::get_json;
use crate::install::EXAMPLES_NS;
use crate::pods::pod_of_service;
use crate::wait::wait_for;

/// The counter's Service (Combined packaging: one Service, port 8080).
pub const COUNTER_SERVICE: &str = "ecommerce-counter";

/// `http://127.0.0.1:<port>` forwarding to the counter's Ready pod.
pub async fn counter_base(client: &Client) -> Result<String> {
    forward_service(client, EXAMPLES_NS, COUNTER_SERVICE, 8080).await
}

/// The counter's `/v1/counts` and the feeds' counts by routing key, read in
/// that order: an event the counter counted is already in its feed, so a
/// reading never shows the counter ahead of the feeds.
pub async fn counter_and_feeds(
    client: &Client,
    http: &reqwest::Client,
    counter: &str,
) -> Result<(Value, BTreeMap<String, u64>)> {
    let counts = get_json(http, &format!("{counter}/v1/counts")).await?;
    let feeds = feed_counts(client, http).await?;
    Ok((counts, feeds))
}

/// The counter's counts by routing key (`byType` of `/v1/counts`).
pub fn counted_by_type(counts: &Value) -> Result<BTreeMap<String, u64>> {
    serde_json::from_value(counts["byType"].clone())
        .map_err(|e| anyhow!("byType of the counter's answer {counts}: {e}"))
}

/// Per routing key, the feeds' count minus the counter's (keys at 0 left out).
pub fn gap(
    feeds: &BTreeMap<String, u64>,
    counted: &BTreeMap<String, u64>,
) -> BTreeMap<String, i64> {
    let keys: BTreeSet<&String> = feeds.keys().chain(counted.keys()).collect();
    keys.into_iter()
        .map(|k| {
            let n = |m: &BTreeMap<String, u64>| {
                i64::try_from(*m.get(k).unwrap_or(&0)).unwrap_or(i64::MAX)
            };
            (k.clone(), n(feeds) - n(counted))
        })
        .filter(|(_, d)| *d != 0)
        .collect()
}

/// The contexts whose feed the counter has not read whole (`feeds` of its
/// `/v1/counts`), with the state it reports (`absent` when it names none).
pub fn feeds_not_caught_up(counts: &Value) -> BTreeMap<String, String> {
    CONTEXTS
        .iter()
        .filter_map(|context| {
            let state = &counts["feeds"][*context];
            (state["state"] != "caught-up").then(|| {
                let text = if state.is_null() {
                    "absent".to_owned()
                } else {
                    state.to_string()
                };
                ((*context).to_owned(), text)
            })
        })
        .collect()
}

/// Waits until the counter at `counter` has read every context's feed whole
/// and counts, by routing key, exactly the events the feeds hold; returns
/// those counts. Fails after `timeout` naming the feeds not read and the gap.
pub async fn wait_counter_matches_feeds(
    client: &Client,
    http: &reqwest::Client,
    counter: &str,
    timeout: Duration,
) -> Result<BTreeMap<String, u64>> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let (counts, feeds) = counter_and_feeds(client, http, counter).await?;
        let counted = counted_by_type(&counts)?;
        let unread = feeds_not_caught_up(&counts);
        let gap = gap(&feeds, &counted);
        if unread.is_empty() && gap.is_empty() && !feeds.is_empty() {
            return Ok(counted);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "after {timeout:?} the counter does not match the feeds\nfeeds not read whole: {unread:?}\ngap (feeds − counter): {gap:?}\nfeeds:   {feeds:?}\ncounter: {counted:?}"
            );
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Deletes the counter's pod (with its grace period, as `kubectl delete pod`)
/// and waits until it is gone and a new one is Ready behind the Service;
/// returns the new pod's name.
pub async fn restart_counter(client: &Client, timeout: Duration) -> Result<String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), EXAMPLES_NS);
    let old = pod_of_service(client, EXAMPLES_NS, COUNTER_SERVICE).await?;
    pods.delete(&old, &DeleteParams::default())
        .await
        .map_err(|e| anyhow!("deleting the counter's pod {old}: {e}"))?;
    wait_for(
        timeout,
        &format!("the counter's pod {old} gone and a new one Ready"),
        || async {
            if pods.get_opt(&old).await?.is_some() {
                return Ok(false);
            }
            Ok(pod_of_service(client, EXAMPLES_NS, COUNTER_SERVICE)
                .await
                .is_ok_and(|new| new != old))
        },
    )
    .await?;
    pod_of_service(client, EXAMPLES_NS, COUNTER_SERVICE).await
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_gap_leaves_out_keys_that_agree() {
        let feeds = BTreeMap::from([("a.X".to_owned(), 3), ("b.Y".to_owned(), 1)]);
        let counted = BTreeMap::from([("a.X".to_owned(), 3), ("c.Z".to_owned(), 2)]);
        assert_eq!(
            gap(&feeds, &counted),
            BTreeMap::from([("b.Y".to_owned(), 1), ("c.Z".to_owned(), -2)])
        );
    }

    #[test]
    fn a_feed_not_read_whole_or_not_named_is_reported() {
        let counts = json!({"feeds": {
            "account": {"state": "caught-up", "events": 4},
            "order": {"state": "failing", "events": 0, "error": "refused"},
            "payment": {"state": "caught-up", "events": 1},
        }});
        let unread = feeds_not_caught_up(&counts);
        assert_eq!(
            unread.keys().collect::<Vec<_>>(),
            ["order", "warehouse"],
            "{unread:?}"
        );
        assert_eq!(unread["warehouse"], "absent");
        assert!(unread["order"].contains("refused"));
    }
}
