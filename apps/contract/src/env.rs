//! Environment variable names of the wiring contract (DESIGN.md, "Wiring
//! contract"). The operator sets them on every app container; the apps read them.

/// `web`, `worker`, `all` or `functions`.
pub const ROLE: &str = "EVENTFLOW_ROLE";
/// The app's name inside its Stream (`spec.apps[].name`).
pub const APP: &str = "EVENTFLOW_APP";
/// The Stream's name.
pub const STREAM: &str = "EVENTFLOW_STREAM";
/// The namespace of the pod (downward API).
pub const POD_NAMESPACE: &str = "POD_NAMESPACE";
/// AMQP URI of the broker, always from the broker's credentials Secret.
pub const BROKER_URI: &str = "EVENTFLOW_BROKER_URI";
/// PEM certificate(s) an `amqps` broker URI is verified with, from the key
/// [`BROKER_CA_KEY`] of the same Secret as the URI (unset: the public roots).
pub const BROKER_CA: &str = "EVENTFLOW_BROKER_CA";
/// The key of a broker Secret holding the CA of its TLS listener.
pub const BROKER_CA_KEY: &str = "ca.crt";
/// JSON document of [`crate::Bindings`].
pub const BINDINGS: &str = "EVENTFLOW_BINDINGS";
/// The app's own web URL (absolute links in events are built from it).
pub const SELF_URL: &str = "EVENTFLOW_SELF_URL";
/// Address of the web API.
pub const HTTP_ADDR: &str = "EVENTFLOW_HTTP_ADDR";
/// Address of `/livez`, `/readyz` and `/metrics` (every role).
pub const ADMIN_ADDR: &str = "EVENTFLOW_ADMIN_ADDR";
/// Directory of the embedded SQLite store when `DATABASE_URL` is unset.
pub const DATA_DIR: &str = "EVENTFLOW_DATA_DIR";
/// Event store URL (`sqlite:` or `postgres:`).
pub const DATABASE_URL: &str = "DATABASE_URL";
/// Worker: messages the broker may deliver before they are acknowledged.
pub const PREFETCH: &str = "EVENTFLOW_PREFETCH";
/// Worker: messages handled at the same time by one replica.
pub const CONCURRENCY: &str = "EVENTFLOW_CONCURRENCY";
/// Web: seconds a saga participant may wait for its next step before the
/// step is re-driven (`0` turns re-driving off).
pub const STALL_AFTER: &str = "EVENTFLOW_STALL_AFTER";

/// Worker: seconds one message may wait in process for an unavailable
/// dependency before that counts as a failed attempt (0: count at once).
pub const TRANSIENT_RETRY_SECONDS: &str = "EVENTFLOW_TRANSIENT_RETRY_SECONDS";

pub const DEFAULT_HTTP_PORT: u16 = 8080;
pub const DEFAULT_ADMIN_PORT: u16 = 9090;
pub const DEFAULT_HTTP_ADDR: &str = "0.0.0.0:8080";
pub const DEFAULT_ADMIN_ADDR: &str = "0.0.0.0:9090";
/// Data directory inside images (a mounted volume: the root filesystem is read-only).
pub const IMAGE_DATA_DIR: &str = "/var/lib/eventflow";

/// `EVENTFLOW_PEER_<APP>_URL`: the in-cluster URL of another app's web role
/// in the same Stream. `<APP>` is the app name upper-cased with `-` -> `_`.
pub fn peer_url_var(app: &str) -> String {
    format!(
        "EVENTFLOW_PEER_{}_URL",
        app.to_ascii_uppercase().replace('-', "_")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_url_variable_upper_cases_and_replaces_dashes() {
        assert_eq!(
            peer_url_var("load-simulator"),
            "EVENTFLOW_PEER_LOAD_SIMULATOR_URL"
        );
        assert_eq!(peer_url_var("account"), "EVENTFLOW_PEER_ACCOUNT_URL");
    }
}
