//! The eventflow operator: reconciles `Stream` and `EventBroker` resources
//! into Deployments, Services, a RabbitMQ broker and its topology.
//!
//! Reconcile is a pipeline, one module per step, each run once per
//! reconcile in this order: [`validate`] (pure, hands a
//! [`validate::ValidStream`] on) -> [`resolve`] (the broker, its
//! [`connection`] and URI, read once) -> [`build`] (pure) -> [`revision`]
//! (the spec recorded) -> [`apply`] -> [`topology`] -> [`status`] (computed
//! once, written once, with the consumer groups' figures [`backlog`] reads
//! from the broker);
//! [`controller`] strings them together, [`run`] starts everything behind
//! a [`leader`] Lease with [`metrics`] and the [`admin`] endpoints.

pub mod admin;
pub mod api;
pub mod apply;
pub mod autoscale;
pub mod backlog;
pub mod build;
pub mod connection;
pub mod context;
pub mod controller;
pub mod crd;
pub mod dataflow;
pub mod fingerprint;
pub mod leader;
pub mod metrics;
pub mod naming;
pub mod redrive;
pub mod resolve;
pub mod revision;
pub mod run;
pub mod status;
pub mod suspend;
pub mod topology;
pub mod users;
pub mod validate;

/// Everything a reconcile can fail with. [`Error::reason`] is the short,
/// low-cardinality label used in metrics, conditions and Events.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API request failed: {0}")]
    Kube(#[from] kube::Error),

    #[error("broker {uri_host} refused or failed an AMQP operation: {source}")]
    Amqp {
        uri_host: String,
        #[source]
        source: lapin::Error,
    },

    #[error("broker {0} did not answer within the AMQP timeout")]
    AmqpTimeout(String),

    #[error("EventBroker {0} does not exist in this namespace")]
    BrokerNotFound(String),

    #[error(
        "{ready} of {replicas} broker nodes are ready; a quorum queue gets a member on each node ready when it is declared, so Streams declare once every node is"
    )]
    NodesNotReady { ready: i32, replicas: i32 },

    #[error("EventBroker {0} is not Ready; its quorum queues are declared once every node is")]
    BrokerNotReady(String),

    #[error("broker management API: {0}")]
    Management(String),

    #[error("Secret {secret}: {problem}")]
    Secret { secret: String, problem: String },

    #[error("the object could not be read as its kind: {0}")]
    Malformed(String),

    #[error("could not generate a secret value: {0}")]
    Random(String),

    #[error(transparent)]
    Certificate(#[from] crate::build::broker::tls::CertError),

    #[error("broker topology of this Stream is still on the broker: {0}")]
    CleanupPending(String),

    #[error("the revision of this spec cannot be recorded: {0}")]
    Revision(String),

    #[error("the reconcile did not finish within {0:?}; abandoned, to be retried")]
    ReconcileTimeout(std::time::Duration),

    #[error("the leader Lease request did not finish within {0:?}")]
    LeaseTimeout(std::time::Duration),

    #[error(
        "engine KEDA: the cluster has no {0} resource (keda.sh/v1alpha1); install KEDA or its CRDs"
    )]
    KedaMissing(&'static str),
}

impl Error {
    /// Short reason for metrics labels, condition reasons and Event reasons.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube(_) => "KubeApiError",
            Error::Amqp { .. } => "BrokerError",
            Error::AmqpTimeout(_) => "BrokerUnreachable",
            Error::BrokerNotFound(_) => "BrokerNotFound",
            Error::NodesNotReady { .. } => "NodesNotReady",
            Error::BrokerNotReady(_) => "BrokerNotReady",
            Error::Management(_) => "ManagementApiError",
            Error::Secret { .. } => "SecretUnusable",
            Error::Malformed(_) => "MalformedObject",
            Error::Random(_) => "RandomFailed",
            Error::Certificate(_) => "CertificateFailed",
            Error::CleanupPending(_) => "CleanupPending",
            Error::Revision(_) => "RevisionNotRecorded",
            Error::ReconcileTimeout(_) => "ReconcileTimeout",
            Error::LeaseTimeout(_) => "LeaseTimeout",
            Error::KedaMissing(_) => "KedaNotInstalled",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
