//! The cluster under test: a client for it, and throw-away namespaces that
//! enforce Pod Security "restricted". The same test binary runs on the local
//! node and on kind: nothing here knows which one it talks to.

use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use crate::wait::wait_for;

/// A client for the cluster in `KUBECONFIG`. Fails loudly when it is unset:
/// an e2e test must never pass without a cluster.
pub async fn client() -> Client {
    assert!(
        std::env::var_os("KUBECONFIG").is_some(),
        "KUBECONFIG is not set: the e2e tests need a cluster (make cluster-up, or make e2e)"
    );
    Client::try_default()
        .await
        .expect("cannot build a client from KUBECONFIG")
}

/// A namespace for one test, enforcing Pod Security "restricted"; deleted by [`TestNamespace::delete`].
pub struct TestNamespace {
    pub name: String,
    client: Client,
}

impl TestNamespace {
    pub async fn create(client: &Client, prefix: &str) -> Result<Self> {
        let suffix: String = format!("{:08x}", rand_u32());
        let name = format!("e2e-{prefix}-{suffix}");
        let ns: Namespace = serde_json::from_value(json!({
            "metadata": {
                "name": name,
                "labels": {
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                    "eventflow.dev/e2e": "true",
                }
            }
        }))?;
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await?;
        // Pods need the namespace's default ServiceAccount, made by a controller.
        let sa: Api<k8s_openapi::api::core::v1::ServiceAccount> =
            Api::namespaced(client.clone(), &name);
        wait_for(
            Duration::from_secs(30),
            "the default ServiceAccount",
            || async { Ok(sa.get_opt("default").await?.is_some()) },
        )
        .await?;
        Ok(Self {
            name,
            client: client.clone(),
        })
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    pub async fn delete(self) -> Result<()> {
        Api::<Namespace>::all(self.client.clone())
            .delete(&self.name, &DeleteParams::default())
            .await?;
        Ok(())
    }
}

fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish() as u32
}

/// Runs `body`, then `cleanup` whether `body` passed or panicked, then fails
/// as `body` did: a failing test leaves nothing behind on the shared node.
pub async fn with_cleanup(body: impl std::future::Future<Output = ()>, cleanup: impl FnOnce()) {
    use futures::FutureExt;
    let outcome = std::panic::AssertUnwindSafe(body).catch_unwind().await;
    cleanup();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Deletes the Streams of `namespace` (their finalizer removes their broker
/// topology while the EventBroker and its Secret are still there), then the
/// namespace, without waiting for it to go; says on stderr what happened.
pub fn delete_streams_and_namespace(namespace: &str) {
    let run = |args: &[&str]| {
        crate::tools::run_tool("kubectl", args, None).unwrap_or_else(|e| format!("{e:#}"))
    };
    let streams = run(&[
        "-n",
        namespace,
        "delete",
        "streams.eventflow.dev",
        "--all",
        "--timeout=300s",
    ]);
    let ns = run(&["delete", "namespace", namespace, "--wait=false"]);
    let deleted = streams.lines().filter(|l| l.contains(" deleted")).count();
    eprintln!(
        "cleanup of {namespace}: {deleted} Streams deleted; {}",
        ns.trim()
    );
}
