//! State shared by every reconcile: the client, the Event recorder, the
//! metrics, the AMQP connections and the tunable intervals; plus the
//! per-object failure counts behind exponential error backoff.

use std::{
    collections::HashMap,
    sync::{Mutex, OnceLock},
    time::{Duration, Instant},
};

use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{Secret, Service},
    networking::v1::NetworkPolicy,
};
use kube::{
    Client, Resource,
    core::DeserializeGuard,
    runtime::{
        controller::Action,
        events::{Event, EventType, Recorder, Reporter},
        reflector::Store,
    },
};

use crate::{
    api::{AppRegistration, EventBroker, Stream},
    apply::record::Record,
    metrics::Metrics,
    topology::{Amqp, Declarations},
};

/// How long a broker URI read from its Secret is reused by Stream reconciles.
/// The EventBroker controller always reads it fresh, so a wrong URI shows
/// there at once; Streams catch up within this time.
const URI_TTL: Duration = Duration::from_secs(10);

/// Intervals of the operator. Defaults are for production; tests shorten them.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How often a healthy Stream is reconciled again, re-declaring its topology:
    /// anything deleted on the broker is back within twice this.
    pub resync: Duration,
    /// How often an EventBroker's AMQP connection is checked.
    pub broker_check: Duration,
    /// How long a deleted Stream waits for an unreachable broker before its
    /// finalizer is released anyway (with a Warning Event naming what was left).
    pub cleanup_give_up: Duration,
    /// Timeout of one AMQP connection attempt.
    pub amqp_timeout: Duration,
    /// Longest error backoff.
    pub max_backoff: Duration,
    /// Reconciles running at once per kind; the rest wait in the controller's queue.
    pub concurrency: u16,
    /// A reconcile running longer is abandoned and retried with backoff, so
    /// no single stuck call (an API request without a read timeout, say)
    /// stops its object from ever being reconciled again.
    pub reconcile_timeout: Duration,
    /// Dead letters a redrive moves per broker transaction (and status write).
    pub redrive_batch: usize,
    /// Longest run of one redrive reconcile; a longer redrive goes on in the
    /// next one (so a stopping or demoted operator finishes quickly).
    pub redrive_slice: Duration,
    /// How often the autoscaler looks at the backlog of autoscaled workers
    /// (a role at zero wakes within this of a message arriving).
    pub autoscale_interval: Duration,
    /// The namespace the operator and the dashboard run in: every Stream's
    /// NetworkPolicy admits its pods (`None`: it admits no namespace).
    pub operator_namespace: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            resync: Duration::from_secs(30),
            broker_check: Duration::from_secs(15),
            cleanup_give_up: Duration::from_secs(180),
            amqp_timeout: Duration::from_secs(5),
            max_backoff: Duration::from_secs(300),
            concurrency: 16,
            reconcile_timeout: Duration::from_secs(120),
            redrive_batch: 100,
            redrive_slice: Duration::from_secs(10),
            autoscale_interval: Duration::from_secs(2),
            operator_namespace: None,
        }
    }
}

/// Namespace, Secret name and key of a broker URI.
pub type SecretKey = (String, String, String);

pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Metrics,
    pub amqp: Amqp,
    pub settings: Settings,
    failures: Mutex<HashMap<String, u32>>,
    /// EventBrokers as the watch sees them (set when the controllers start;
    /// without it, brokers are read from the API).
    pub brokers: OnceLock<Store<DeserializeGuard<EventBroker>>>,
    /// Streams as the watch sees them (to find destinations other Streams use).
    pub streams: OnceLock<Store<DeserializeGuard<Stream>>>,
    /// AppRegistrations as the watch sees them (to expand definitions).
    pub registrations: OnceLock<Store<DeserializeGuard<AppRegistration>>>,
    /// Our Deployments and Services as the watches see them (without
    /// managedFields; Deployments without their pod template).
    pub deployments: OnceLock<Store<Deployment>>,
    pub services: OnceLock<Store<Service>>,
    /// Our Streams' NetworkPolicies as the watch sees them.
    pub network_policies: OnceLock<Store<NetworkPolicy>>,
    /// The Secrets of apps' broker users as the watch sees them.
    pub secrets: OnceLock<Store<Secret>>,
    /// What this process last wrote for each broker user.
    pub users: crate::users::Granted,
    /// What this process last applied, to skip unchanged applies.
    pub applied: Record,
    /// What this process last declared on a broker, to skip fresh declares.
    pub declarations: Declarations,
    /// The revision this process last recorded for each Stream.
    pub revisions: crate::revision::Recorded,
    /// Which Streams' queue figures could not be read last time.
    pub backlog: crate::backlog::Reads,
    /// What the autoscaler remembers of each autoscaled worker.
    pub autoscaler: crate::autoscale::State,
    uris: Mutex<HashMap<SecretKey, (Instant, String)>>,
}

impl Context {
    pub fn new(client: Client, identity: &str, metrics: Metrics, settings: Settings) -> Self {
        let reporter = Reporter {
            controller: crate::naming::MANAGER.into(),
            instance: Some(identity.to_owned()),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            amqp: Amqp::new(settings.amqp_timeout),
            settings,
            failures: Mutex::new(HashMap::new()),
            brokers: OnceLock::new(),
            streams: OnceLock::new(),
            registrations: OnceLock::new(),
            deployments: OnceLock::new(),
            services: OnceLock::new(),
            network_policies: OnceLock::new(),
            secrets: OnceLock::new(),
            users: Default::default(),
            applied: Record::default(),
            declarations: Declarations::default(),
            revisions: crate::revision::Recorded::default(),
            backlog: Default::default(),
            autoscaler: Default::default(),
            uris: Mutex::new(HashMap::new()),
        }
    }

    /// Publishes a Kubernetes Event about `obj`; failing to record one never fails a reconcile.
    pub async fn event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        warning: bool,
        reason: &str,
        note: String,
    ) {
        self.event_of(obj, warning, reason, "Reconcile", note).await;
    }

    /// Like [`Context::event`] for `action`. Events of one object, reason and
    /// action within minutes are one Event counting repeats (keeping the
    /// first note): distinct actions keep distinct notes.
    pub async fn event_of<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        warning: bool,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.to_owned(),
            note: Some(note.chars().take(1000).collect()),
            action: action.into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, reason, "could not record an Event");
        }
    }

    /// Exponential backoff for a failing object: 1 s, 2 s, 4 s, … up to `max_backoff`.
    pub fn backoff(&self, key: &str) -> Action {
        Action::requeue(self.backoff_delay(key))
    }

    /// Counts one more failure of `key` and returns how long to wait before the next try.
    pub fn backoff_delay(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let n = failures.entry(key.to_owned()).or_insert(0);
        *n = n.saturating_add(1);
        let secs = 1u64
            .checked_shl(n.saturating_sub(1).min(20))
            .unwrap_or(u64::MAX);
        Duration::from_secs(secs).min(self.settings.max_backoff)
    }

    /// Forgets the failures of an object after a successful reconcile.
    pub fn succeeded(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    /// A broker URI read less than [`URI_TTL`] ago.
    pub fn cached_uri(&self, key: &SecretKey) -> Option<String> {
        let uris = self.uris.lock().unwrap_or_else(|p| p.into_inner());
        uris.get(key)
            .filter(|(at, _)| at.elapsed() < URI_TTL)
            .map(|(_, uri)| uri.clone())
    }

    pub fn cache_uri(&self, key: SecretKey, uri: &str) {
        let mut uris = self.uris.lock().unwrap_or_else(|p| p.into_inner());
        uris.retain(|_, (at, _)| at.elapsed() < URI_TTL);
        uris.insert(key, (Instant::now(), uri.to_owned()));
    }
}

/// The test side of a fake API server: every request the client sends.
#[cfg(test)]
pub(crate) type FakeApi =
    tower_test::mock::Handle<http::Request<kube::client::Body>, http::Response<kube::client::Body>>;

#[cfg(test)]
impl Context {
    /// A context whose client talks to a fake API server, for unit tests.
    pub(crate) fn fake(settings: Settings) -> (std::sync::Arc<Self>, FakeApi) {
        let (service, handle) = tower_test::mock::pair();
        let client = Client::new(service, "default");
        (
            std::sync::Arc::new(Self::new(client, "test", Metrics::new(), settings)),
            handle,
        )
    }
}
