//! HTTP against the apps through a port-forward: JSON GETs, and the base of
//! the links an app wrote (its own view of its address), to follow them
//! through our forward instead.

use anyhow::{Result, anyhow, bail};
use serde_json::Value;

/// GETs `url` and parses its JSON body; a status other than 2xx is an error.
pub async fn get_json(http: &reqwest::Client, url: &str) -> Result<Value> {
    let r = http
        .get(url)
        .send()
        .await
        .map_err(|e| anyhow!("GET {url}: {e}"))?;
    if !r.status().is_success() {
        bail!("GET {url}: {}", r.status());
    }
    Ok(r.json().await?)
}

/// The scheme and authority the app put into its own links (the port-forward
/// address it saw), so links can be followed through our own forward.
pub fn run_base(doc: &Value) -> String {
    let href = doc["_links"]["self"]["href"].as_str().unwrap_or_default();
    href.splitn(4, '/').take(3).collect::<Vec<_>>().join("/")
}
