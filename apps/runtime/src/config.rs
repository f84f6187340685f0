//! The wiring contract read from the environment (DESIGN.md, "Wiring
//! contract"), with defaults that let an app run alone on a laptop: role
//! `all`, SQLite under `./data`, a local RabbitMQ, and a topology the app
//! declares itself because no operator wrote `EVENTFLOW_BINDINGS`. The
//! worker's defaults (prefetch, concurrency) are the operator's, from
//! [`eventflow_contract::defaults`].

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use eventflow_contract::{Bindings, bindings::SubscriptionRequest, defaults, env};

/// Broker used when `EVENTFLOW_BROKER_URI` is unset (a RabbitMQ on the laptop).
pub const DEFAULT_BROKER_URI: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// Namespace of broker names when the app runs without an operator.
pub const STANDALONE_NAMESPACE: &str = "local";
/// Exit the web role right after a commit and before the relay publishes
/// (tests of the outbox only; off unless set to `1`).
pub const FAULT_EXIT_AFTER_COMMIT: &str = "EVENTFLOW_FAULT_EXIT_AFTER_COMMIT";

/// Which parts of the app a process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// HTTP API, event store and outbox relay.
    Web,
    /// Consumes the app's subscriptions and runs its functions in-process.
    Worker,
    /// Web and worker in one process (`packaging: Combined`).
    All,
    /// Serves the action-mapped functions over HTTP.
    Functions,
}

impl Role {
    pub fn parse(s: &str) -> Result<Self, ConfigError> {
        match s {
            "web" => Ok(Self::Web),
            "worker" => Ok(Self::Worker),
            "all" => Ok(Self::All),
            "functions" => Ok(Self::Functions),
            other => Err(ConfigError::Role(other.to_owned())),
        }
    }
    pub fn runs_web(self) -> bool {
        matches!(self, Self::Web | Self::All)
    }
    pub fn runs_worker(self) -> bool {
        matches!(self, Self::Worker | Self::All)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Web => "web",
            Self::Worker => "worker",
            Self::All => "all",
            Self::Functions => "functions",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("unknown role {0:?}: expected web, worker, all or functions")]
    Role(String),
    #[error("{var}={value:?} is not a socket address")]
    Addr { var: &'static str, value: String },
    #[error("{var}={value:?} is not a number")]
    Number { var: &'static str, value: String },
    #[error(
        "{var}={value} is more than {max}: a message held that long nears RabbitMQ's consumer acknowledgement timeout (30 minutes)"
    )]
    TooLong {
        var: &'static str,
        value: usize,
        max: u32,
    },
    #[error("{var} {problem}")]
    Certificate { var: &'static str, problem: String },
    #[error(transparent)]
    Bindings(#[from] eventflow_contract::bindings::BindingsError),
}

/// What an app declares about itself so it can run without an operator.
#[derive(Clone, Debug)]
pub struct Standalone {
    /// Destinations the app publishes to; the first receives its events.
    pub publishes: Vec<&'static str>,
    /// Subscriptions of its worker role.
    pub subscribes: Vec<SubscriptionRequest<'static>>,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub role: Role,
    pub app: String,
    pub broker_uri: String,
    /// The CA an `amqps` broker is verified with (`EVENTFLOW_BROKER_CA`, PEM).
    pub broker_ca: Option<String>,
    pub bindings: Bindings,
    /// True when the operator wrote the bindings: the topology is then only
    /// checked (passive declare), never created by the app.
    pub bindings_from_operator: bool,
    /// Base of the absolute links inside published events.
    pub self_url: String,
    pub http_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub database_url: String,
    pub prefetch: u16,
    pub concurrency: usize,
    /// Web: how long a saga participant may wait for its next step before
    /// the step is re-driven (`EVENTFLOW_STALL_AFTER`, seconds; `None` when
    /// set to 0: never).
    pub stall_after: Option<Duration>,
    /// Longest in-process wait of one message for an unavailable dependency
    /// (`EVENTFLOW_TRANSIENT_RETRY_SECONDS`, at most
    /// [`defaults::MAX_TRANSIENT_RETRY_SECONDS`]); zero counts every
    /// unavailability as a failed attempt at once.
    pub transient_retry: Duration,
    pub fault_exit_after_commit: bool,
}

impl Config {
    /// Reads the environment; `role` (from the command line) wins over `EVENTFLOW_ROLE`.
    pub fn from_env(
        app: &str,
        role: Option<&str>,
        standalone: &Standalone,
    ) -> Result<Self, ConfigError> {
        Self::from_lookup(app, role, standalone, |k| {
            std::env::var(k).ok().filter(|v| !v.is_empty())
        })
    }

    /// [`Config::from_env`] over any lookup (tests pass a map).
    pub fn from_lookup(
        app: &str,
        role: Option<&str>,
        standalone: &Standalone,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let role = Role::parse(
            role.map(str::to_owned)
                .or_else(|| var(env::ROLE))
                .as_deref()
                .unwrap_or("all"),
        )?;
        let addr = |name: &'static str, default: &str| -> Result<SocketAddr, ConfigError> {
            let value = var(name).unwrap_or_else(|| default.to_owned());
            value
                .parse()
                .map_err(|_| ConfigError::Addr { var: name, value })
        };
        let number = |name: &'static str, default: usize| -> Result<usize, ConfigError> {
            match var(name) {
                None => Ok(default),
                Some(value) => value
                    .parse()
                    .map_err(|_| ConfigError::Number { var: name, value }),
            }
        };
        let http_addr = addr(env::HTTP_ADDR, env::DEFAULT_HTTP_ADDR)?;
        let (bindings, bindings_from_operator) = match var(env::BINDINGS) {
            Some(json) => (Bindings::from_json(&json)?, true),
            None => {
                let ns = var(env::POD_NAMESPACE).unwrap_or_else(|| STANDALONE_NAMESPACE.to_owned());
                (
                    Bindings::standalone(&ns, &standalone.publishes, &standalone.subscribes),
                    false,
                )
            }
        };
        let database_url = var(env::DATABASE_URL).unwrap_or_else(|| {
            let dir = PathBuf::from(var(env::DATA_DIR).unwrap_or_else(|| "./data".to_owned()));
            format!(
                "sqlite://{}?mode=rwc",
                dir.join(format!("{app}.db")).display()
            )
        });
        let prefetch = number(env::PREFETCH, defaults::PREFETCH.into())?;
        let transient_retry = number(
            env::TRANSIENT_RETRY_SECONDS,
            defaults::TRANSIENT_RETRY_SECONDS as usize,
        )?;
        if transient_retry > defaults::MAX_TRANSIENT_RETRY_SECONDS as usize {
            return Err(ConfigError::TooLong {
                var: env::TRANSIENT_RETRY_SECONDS,
                value: transient_retry,
                max: defaults::MAX_TRANSIENT_RETRY_SECONDS,
            });
        }
        let broker_ca = var(env::BROKER_CA);
        if let Some(pem) = &broker_ca {
            eventflow_contract::tls::check_ca(pem).map_err(|problem| ConfigError::Certificate {
                var: env::BROKER_CA,
                problem,
            })?;
        }
        Ok(Self {
            role,
            app: var(env::APP).unwrap_or_else(|| app.to_owned()),
            broker_uri: var(env::BROKER_URI).unwrap_or_else(|| DEFAULT_BROKER_URI.to_owned()),
            broker_ca,
            bindings,
            bindings_from_operator,
            self_url: var(env::SELF_URL)
                .unwrap_or_else(|| format!("http://127.0.0.1:{}", http_addr.port()))
                .trim_end_matches('/')
                .to_owned(),
            http_addr,
            admin_addr: addr(env::ADMIN_ADDR, env::DEFAULT_ADMIN_ADDR)?,
            database_url,
            prefetch: u16::try_from(prefetch).unwrap_or(u16::MAX).max(1),
            concurrency: number(env::CONCURRENCY, defaults::CONCURRENCY.into())?.max(1),
            stall_after: match number(
                env::STALL_AFTER,
                usize::try_from(defaults::STALL_AFTER_SECS).unwrap_or(usize::MAX),
            )? {
                0 => None,
                secs => Some(Duration::from_secs(secs as u64)),
            },
            transient_retry: Duration::from_secs(transient_retry as u64),
            fault_exit_after_commit: var(FAULT_EXIT_AFTER_COMMIT).as_deref() == Some("1"),
        })
    }

    /// The SQLite file's directory, created at start when the store is embedded.
    pub fn sqlite_dir(&self) -> Option<PathBuf> {
        let path = self.database_url.strip_prefix("sqlite://")?;
        let path = path.split('?').next().unwrap_or(path);
        PathBuf::from(path).parent().map(PathBuf::from)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn standalone() -> Standalone {
        Standalone {
            publishes: vec!["account"],
            subscribes: vec![SubscriptionRequest {
                destination: "account",
                group: "account-worker",
                routing_keys: vec!["account.*".into()],
                max_attempts: 3,
                backoff_ms: 100,
            }],
        }
    }

    fn config(vars: &[(&str, &str)], role: Option<&str>) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        Config::from_lookup("account", role, &standalone(), |k| map.get(k).cloned())
    }

    #[test]
    fn an_empty_environment_runs_everything_on_a_laptop() {
        let c = config(&[], None).unwrap();
        assert_eq!(c.role, Role::All);
        assert_eq!(c.broker_uri, DEFAULT_BROKER_URI);
        assert_eq!(c.database_url, "sqlite://./data/account.db?mode=rwc");
        assert!(!c.bindings_from_operator);
        assert_eq!(
            c.bindings.subscribes[0].queue,
            "local.account.account-worker"
        );
        assert_eq!(c.self_url, "http://127.0.0.1:8080");
        assert!(!c.fault_exit_after_commit);
        assert_eq!(c.sqlite_dir(), Some(PathBuf::from("./data")));
        assert_eq!(
            (c.prefetch, c.concurrency),
            (defaults::PREFETCH, defaults::CONCURRENCY.into())
        );
        assert_eq!(
            c.transient_retry,
            Duration::from_secs(defaults::TRANSIENT_RETRY_SECONDS.into())
        );
    }

    #[test]
    fn the_transient_retry_bound_stays_well_inside_the_brokers_ack_timeout() {
        let c = config(&[(env::TRANSIENT_RETRY_SECONDS, "0")], None).unwrap();
        assert_eq!(c.transient_retry, Duration::ZERO);
        let max = defaults::MAX_TRANSIENT_RETRY_SECONDS.to_string();
        let c = config(&[(env::TRANSIENT_RETRY_SECONDS, &max)], None).unwrap();
        assert_eq!(c.transient_retry.as_secs(), max.parse::<u64>().unwrap());
        assert!(c.transient_retry < Duration::from_secs(30 * 60));
        let e = config(&[(env::TRANSIENT_RETRY_SECONDS, "1801")], None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("EVENTFLOW_TRANSIENT_RETRY_SECONDS") && e.contains("1200"),
            "{e}"
        );
        let e = config(&[(env::TRANSIENT_RETRY_SECONDS, "ten minutes")], None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("EVENTFLOW_TRANSIENT_RETRY_SECONDS"), "{e}");
    }

    #[test]
    fn operator_bindings_and_the_command_line_role_win() {
        let b = Bindings::standalone("prod", &["account"], &[]).to_json();
        let c = config(
            &[
                (env::BINDINGS, &b),
                (env::ROLE, "web"),
                (env::SELF_URL, "http://a.ns:8080/"),
            ],
            Some("worker"),
        )
        .unwrap();
        assert_eq!(c.role, Role::Worker);
        assert!(c.bindings_from_operator);
        assert_eq!(c.bindings.exchange_for("account"), Some("prod.account"));
        assert_eq!(c.self_url, "http://a.ns:8080");
    }

    #[test]
    fn bad_values_name_the_variable() {
        assert!(
            config(&[], Some("cron"))
                .unwrap_err()
                .to_string()
                .contains("cron")
        );
        let e = config(&[(env::ADMIN_ADDR, "nope")], None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("EVENTFLOW_ADMIN_ADDR"), "{e}");
        let e = config(&[(env::PREFETCH, "many")], None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("EVENTFLOW_PREFETCH"), "{e}");
        let e = config(&[(env::BROKER_CA, "/etc/ca.crt")], None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("EVENTFLOW_BROKER_CA") && e.contains("no PEM certificate"),
            "a path where the PEM belongs is named: {e}"
        );
        let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let c = config(&[(env::BROKER_CA, pem)], None).unwrap();
        assert_eq!(c.broker_ca.as_deref(), Some(pem));
    }

    #[test]
    fn a_stalled_saga_step_is_re_driven_after_a_minute_unless_configured_otherwise() {
        let default = config(&[], None).unwrap().stall_after;
        assert_eq!(
            default,
            Some(Duration::from_secs(defaults::STALL_AFTER_SECS.into()))
        );
        let c = config(&[(env::STALL_AFTER, "2")], None).unwrap();
        assert_eq!(c.stall_after, Some(Duration::from_secs(2)));
        assert_eq!(
            config(&[(env::STALL_AFTER, "0")], None)
                .unwrap()
                .stall_after,
            None
        );
        let e = config(&[(env::STALL_AFTER, "soon")], None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("EVENTFLOW_STALL_AFTER"), "{e}");
    }
}
