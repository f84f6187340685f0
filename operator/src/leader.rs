//! Leader election on a `coordination.k8s.io` Lease: only the holder runs
//! the controllers, so only one instance ever writes. The holder renews the
//! Lease every `renew` period; a candidate takes it over when its renew time
//! is older than its duration, or at once when the holder released it on
//! graceful shutdown. Every write is a compare-and-swap on resourceVersion.

use std::{future::Future, time::Duration};

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
};
use kube::{Api, Client, api::PostParams};

use crate::{Error, Result};

#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// Unique per instance (pod name, or host and PID).
    pub identity: String,
    /// How long a holder that stopped renewing keeps the Lease.
    pub duration: Duration,
    /// How often the holder renews, and a candidate retries.
    pub renew: Duration,
}

impl LeaseConfig {
    pub fn new(namespace: &str, name: &str, identity: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            identity: identity.to_owned(),
            duration: Duration::from_secs(15),
            renew: Duration::from_secs(3),
        }
    }
}

pub struct LeaseLock {
    api: Api<Lease>,
    config: LeaseConfig,
}

fn now() -> MicroTime {
    MicroTime(jiff::Timestamp::now())
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

impl LeaseLock {
    pub fn new(client: Client, config: LeaseConfig) -> Self {
        Self {
            api: Api::namespaced(client, &config.namespace),
            config,
        }
    }

    pub fn identity(&self) -> &str {
        &self.config.identity
    }

    fn expired(&self, spec: &LeaseSpec) -> bool {
        let duration = spec
            .lease_duration_seconds
            .map_or(self.config.duration, |s| {
                Duration::from_secs(s.unsigned_abs().into())
            });
        match &spec.renew_time {
            None => true,
            Some(t) => jiff::Timestamp::now().duration_since(t.0).unsigned_abs() > duration,
        }
    }

    fn duration_seconds(&self) -> i32 {
        i32::try_from(self.config.duration.as_secs()).unwrap_or(i32::MAX)
    }

    /// Bounds one Lease operation by the renew period: the API client has
    /// no read timeout, and a leader stuck in a request would go on writing
    /// after its Lease expired and another instance took over.
    async fn bounded<T>(&self, op: impl Future<Output = Result<T>>) -> Result<T> {
        let limit = self.config.renew;
        tokio::time::timeout(limit, op)
            .await
            .unwrap_or(Err(Error::LeaseTimeout(limit)))
    }

    /// Acquires, renews or fails to get the Lease; `true` when we hold it now.
    pub async fn try_acquire_or_renew(&self) -> Result<bool> {
        self.bounded(self.acquire_or_renew()).await
    }

    async fn acquire_or_renew(&self) -> Result<bool> {
        let me = self.config.identity.clone();
        let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(me),
                    lease_duration_seconds: Some(self.duration_seconds()),
                    acquire_time: Some(now()),
                    renew_time: Some(now()),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(e) if is_conflict(&e) => Ok(false),
                Err(e) => Err(e.into()),
            };
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let holder = spec.holder_identity.clone().unwrap_or_default();
        if holder == me {
            spec.renew_time = Some(now());
        } else if holder.is_empty() || self.expired(spec) {
            spec.holder_identity = Some(me);
            spec.acquire_time = Some(now());
            spec.renew_time = Some(now());
            spec.lease_duration_seconds = Some(self.duration_seconds());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        } else {
            return Ok(false);
        }
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_conflict(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Gives the Lease up (if we hold it) so a standby takes over at once.
    pub async fn release(&self) -> Result<()> {
        self.bounded(self.give_up()).await
    }

    async fn give_up(&self) -> Result<()> {
        let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.renew_time = None;
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_conflict(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The current holder, if any.
    pub async fn holder(&self) -> Result<Option<String>> {
        Ok(self
            .api
            .get_opt(&self.config.name)
            .await?
            .and_then(|l| l.spec)
            .and_then(|s| s.holder_identity))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use http::{Request, Response};
    use kube::client::Body;

    use super::*;

    #[tokio::test]
    async fn a_lease_request_that_never_answers_fails_within_the_renew_period() {
        // An API server that accepts the requests and never answers them.
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let silent = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Some(pending) = handle.next_request().await {
                held.push(pending);
            }
        });
        let mut config = LeaseConfig::new("demo", "eventflow-operator", "me");
        config.renew = Duration::from_millis(300);
        let lock = LeaseLock::new(Client::new(service, "default"), config);
        let started = Instant::now();
        let error = lock.try_acquire_or_renew().await.unwrap_err();
        assert_eq!(error.reason(), "LeaseTimeout");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "acquire waited too long"
        );
        let started = Instant::now();
        let error = lock.release().await.unwrap_err();
        assert_eq!(error.reason(), "LeaseTimeout");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "release waited too long"
        );
        silent.abort();
    }
}
