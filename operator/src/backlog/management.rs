//! A small client of the RabbitMQ management HTTP API: one queue's figures
//! (`GET /api/queues/<vhost>/<name>`). The API's statistics lag the broker
//! by up to its `collect_statistics_interval` (5 s by default). Plain HTTP
//! only (no TLS client is built in).

use std::{sync::OnceLock, time::Duration};

use serde::Deserialize;

use super::figures::QueueFigures;
use crate::build::broker::MANAGEMENT_PORT;

/// Where a broker's management API is and who to call it as.
#[derive(Clone, PartialEq, Eq)]
pub struct Management {
    /// `http://host:port` (and any path prefix), without credentials.
    pub base: String,
    user: String,
    password: String,
}

impl std::fmt::Debug for Management {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Management")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl Management {
    /// From a URI like `http://user:password@host:15672` (a key of an
    /// external broker's connection Secret).
    pub fn parse(uri: &str) -> Result<Self, String> {
        let mut url = reqwest::Url::parse(uri.trim())
            .map_err(|e| format!("the management URI does not parse: {e}"))?;
        if url.scheme() != "http" {
            return Err(format!(
                "the management URI must be http:// (got {}://)",
                url.scheme()
            ));
        }
        if url.host_str().is_none() {
            return Err("the management URI has no host".into());
        }
        let user = decode(url.username());
        let password = decode(url.password().unwrap_or_default());
        if user.is_empty() {
            return Err("the management URI has no user (http://user:password@host:15672)".into());
        }
        let _ = url.set_username("");
        let _ = url.set_password(None);
        Ok(Self {
            base: url.as_str().trim_end_matches('/').to_owned(),
            user,
            password,
        })
    }

    /// A managed broker's API: the host and credentials of its AMQP URI, the management port.
    pub fn of_managed(amqp: &lapin::uri::AMQPUri) -> Self {
        Self {
            base: format!("http://{}:{MANAGEMENT_PORT}", amqp.authority.host),
            user: amqp.authority.userinfo.username.clone(),
            password: amqp.authority.userinfo.password.clone(),
        }
    }

    /// A request to `path` of the API (`/api/...`), with the credentials.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        client()
            .request(method, format!("{}{path}", self.base))
            .basic_auth(&self.user, Some(&self.password))
    }

    /// The figures of queue `name` in `vhost`; `Ok(None)` when it does not exist.
    pub async fn queue(
        &self,
        vhost: &str,
        name: &str,
        timeout: Duration,
    ) -> Result<Option<QueueFigures>, String> {
        let url = format!(
            "{}/api/queues/{}/{}",
            self.base,
            encode(vhost),
            encode(name)
        );
        let response = client()
            .get(&url)
            .basic_auth(&self.user, Some(&self.password))
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| format!("management API {}: {e}", self.base))?;
        match response.status() {
            reqwest::StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => {
                let body = response
                    .bytes()
                    .await
                    .map_err(|e| format!("management API {}: {e}", self.base))?;
                parse_queue(&body).map(Some)
            }
            s => Err(format!(
                "management API {} answered {s} for queue {name}",
                self.base
            )),
        }
    }
}

fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(reqwest::Client::new)
}

#[derive(Deserialize)]
struct Rate {
    rate: f64,
}

#[derive(Deserialize, Default)]
struct MessageStats {
    publish_details: Option<Rate>,
    deliver_get_details: Option<Rate>,
}

#[derive(Deserialize)]
struct QueueJson {
    messages_ready: Option<i64>,
    messages_unacknowledged: Option<i64>,
    consumers: Option<i64>,
    message_stats: Option<MessageStats>,
}

/// A queue document of the API. Counts are absent until the first
/// statistics of a new queue: unknown then. Rates are absent while nothing
/// was published or delivered: 0 then.
pub fn parse_queue(body: &[u8]) -> Result<QueueFigures, String> {
    let q: QueueJson = serde_json::from_slice(body)
        .map_err(|e| format!("the management API's queue document does not parse: {e}"))?;
    let stats = q.message_stats.unwrap_or_default();
    let counted = q.messages_ready.is_some();
    let rate = |r: Option<Rate>| counted.then(|| r.map_or(0.0, |r| r.rate));
    Ok(QueueFigures {
        ready: q.messages_ready,
        unacknowledged: q.messages_unacknowledged,
        consumers: q.consumers,
        publish_rate: rate(stats.publish_details),
        deliver_rate: rate(stats.deliver_get_details),
    })
}

/// Percent-encodes a path segment (a vhost `/` is `%2F`).
pub fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Percent-decodes a URI user or password.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_document_gives_counts_and_rates() {
        let body = br#"{"name":"q","messages":7,"messages_ready":5,"messages_unacknowledged":2,
            "consumers":3,"message_stats":{"publish":9,"publish_details":{"rate":1.5},
            "deliver_get":4,"deliver_get_details":{"rate":0.25}}}"#;
        let f = parse_queue(body).unwrap();
        assert_eq!(
            f,
            QueueFigures {
                ready: Some(5),
                unacknowledged: Some(2),
                consumers: Some(3),
                publish_rate: Some(1.5),
                deliver_rate: Some(0.25),
            }
        );
        assert_eq!(f.messages(), Some(7));
    }

    #[test]
    fn a_quiet_queue_has_zero_rates_and_a_new_one_unknown_counts() {
        let quiet =
            parse_queue(br#"{"messages_ready":0,"messages_unacknowledged":0,"consumers":1}"#)
                .unwrap();
        assert_eq!(
            (quiet.publish_rate, quiet.deliver_rate),
            (Some(0.0), Some(0.0))
        );
        let fresh = parse_queue(br#"{"name":"q","consumers":0}"#).unwrap();
        assert_eq!(
            (fresh.ready, fresh.unacknowledged, fresh.publish_rate),
            (None, None, None)
        );
        assert!(parse_queue(b"<html>").is_err());
    }

    #[test]
    fn a_management_uri_gives_its_base_and_decoded_credentials() {
        let m = Management::parse("http://ops:p%40ss@rabbit.example:15672/").unwrap();
        assert_eq!(m.base, "http://rabbit.example:15672");
        assert_eq!((m.user.as_str(), m.password.as_str()), ("ops", "p@ss"));
        assert!(!format!("{m:?}").contains("p@ss"));
        let prefixed = Management::parse("http://u:p@h:80/rabbitmq").unwrap();
        assert_eq!(prefixed.base, "http://h/rabbitmq");
        assert!(
            Management::parse("https://u:p@h")
                .unwrap_err()
                .contains("http://")
        );
        assert!(
            Management::parse("http://h:15672")
                .unwrap_err()
                .contains("no user")
        );
        assert!(Management::parse("not a uri").is_err());
    }

    #[test]
    fn a_managed_broker_api_is_on_the_management_port_of_its_amqp_host() {
        let amqp: lapin::uri::AMQPUri = "amqp://eventflow:s3cret@rabbit.demo.svc:5672/%2f"
            .parse()
            .unwrap();
        let m = Management::of_managed(&amqp);
        assert_eq!(m.base, "http://rabbit.demo.svc:15672");
        assert_eq!(m.password, "s3cret");
    }

    #[test]
    fn vhost_and_queue_names_are_path_segments() {
        assert_eq!(encode("/"), "%2F");
        assert_eq!(encode("shop.orders.w-1"), "shop.orders.w-1");
        assert_eq!(encode("a b"), "a%20b");
    }
}
