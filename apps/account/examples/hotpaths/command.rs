//! Path 1, a command through the web role: `POST /v1/accounts` with an
//! `Idempotency-Key`, from `clients` concurrent keep-alive HTTP clients on
//! loopback. Each request commits one transaction: the ACCOUNT_CREATED
//! event, its outbox row, the snapshot, the email claim and the
//! idempotency record (after a read of the key). Its ceiling (`sql.rs`)
//! inserts the same rows with bare sqlx.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use serde_json::json;

/// Requests before the measured ones (connections opened, caches warm).
pub(crate) const WARMUP: u64 = 200;

/// Creates accounts `first..first + n` through `base`, `clients` at a time.
pub(crate) async fn post_accounts(base: &str, first: u64, n: u64, clients: usize) {
    let http = reqwest::Client::new();
    let next = Arc::new(AtomicU64::new(first));
    let end = first + n;
    let url = format!("{base}/v1/accounts");
    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients {
        let (http, next, url) = (http.clone(), next.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= end {
                    break;
                }
                let body = json!({
                    "firstName": "Bench",
                    "lastName": format!("N{i}"),
                    "email": format!("n{i}@example.com"),
                });
                let r = http
                    .post(&url)
                    .header("idempotency-key", format!("hotpaths-{i}"))
                    .json(&body)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("POST {url}: {e}"));
                let status = r.status();
                let text = r.bytes().await.unwrap_or_default();
                assert_eq!(
                    status,
                    201,
                    "POST {url}: {}",
                    String::from_utf8_lossy(&text)
                );
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}
