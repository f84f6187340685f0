//! Helpers shared by the end-to-end tests: a client for the cluster under
//! test, throw-away namespaces that enforce Pod Security "restricted", waits
//! with deadlines, and port-forwards to pods. The same test binary runs on
//! the local node and on kind: nothing here knows which one it talks to.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, LogParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// Tag of the images built from this repository (`EVENTFLOW_IMAGE_TAG`, default `dev`).
pub fn image_tag() -> String {
    std::env::var("EVENTFLOW_IMAGE_TAG").unwrap_or_else(|_| "dev".into())
}

/// An image of ours, e.g. `image("e2e-smoke")` -> `docker.io/eventflow/e2e-smoke:dev`.
pub fn image(name: &str) -> String {
    format!("docker.io/eventflow/{name}:{}", image_tag())
}

pub const RABBITMQ_IMAGE: &str = "docker.io/eventflow/rabbitmq:3.10-management";
pub const BASE_IMAGE: &str = "docker.io/library/debian:bookworm-slim";

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

/// Polls `check` every half second until it returns true; fails naming `what` after `timeout`.
pub async fn wait_for<F, Fut>(timeout: Duration, what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last_error = None;
    loop {
        match check().await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last_error = Some(e),
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(match last_error {
                Some(e) => e.context(format!("timed out after {timeout:?} waiting for {what}")),
                None => anyhow!("timed out after {timeout:?} waiting for {what}"),
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The restricted-profile container security context every test pod uses.
pub fn restricted_container_security() -> serde_json::Value {
    json!({
        "allowPrivilegeEscalation": false,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": true,
        "seccompProfile": {"type": "RuntimeDefault"},
    })
}

/// Waits until a pod has finished and returns its phase and log.
pub async fn wait_pod_finished(
    pods: &Api<Pod>,
    name: &str,
    timeout: Duration,
) -> Result<(String, String)> {
    wait_for(timeout, &format!("pod {name} to finish"), || async {
        let phase = pods
            .get(name)
            .await?
            .status
            .and_then(|s| s.phase)
            .unwrap_or_default();
        Ok(phase == "Succeeded" || phase == "Failed")
    })
    .await?;
    let phase = pods
        .get(name)
        .await?
        .status
        .and_then(|s| s.phase)
        .unwrap_or_default();
    let log = pods
        .logs(name, &LogParams::default())
        .await
        .unwrap_or_default();
    Ok((phase, log))
}

/// Waits until a pod is Ready.
pub async fn wait_pod_ready(pods: &Api<Pod>, name: &str, timeout: Duration) -> Result<()> {
    wait_for(timeout, &format!("pod {name} to be Ready"), || async {
        let pod = pods.get(name).await?;
        let status = pod.status.unwrap_or_default();
        if status.phase.as_deref() == Some("Failed") {
            bail!("pod {name} failed: {:?}", status.message);
        }
        Ok(status
            .conditions
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True"))
    })
    .await
}

/// Forwards a local loopback port to `port` of a pod through the API server
/// (like `kubectl port-forward`), one stream per accepted connection.
/// Returns the local address; the forwarder runs until the test ends.
pub async fn port_forward(pods: Api<Pod>, pod: &str, port: u16) -> Result<std::net::SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let pod = pod.to_owned();
    tokio::spawn(async move {
        while let Ok((mut local, _)) = listener.accept().await {
            let pods = pods.clone();
            let pod = pod.clone();
            tokio::spawn(async move {
                let mut forwarder = match pods.portforward(&pod, &[port]).await {
                    Ok(f) => f,
                    Err(e) => {
                        eprintln!("port-forward to {pod}:{port}: {e}");
                        return;
                    }
                };
                if let Some(mut upstream) = forwarder.take_stream(port) {
                    let _ = tokio::io::copy_bidirectional(&mut local, &mut upstream).await;
                }
                drop(forwarder);
            });
        }
    });
    Ok(addr)
}

/// Describes a pod for failure messages: phase, conditions and container states.
pub async fn describe_pod(pods: &Api<Pod>, name: &str) -> String {
    match pods.get(name).await {
        Ok(p) => serde_json::to_string_pretty(&p.status).unwrap_or_default(),
        Err(e) => format!("cannot get pod {name}: {e}"),
    }
}

/// A Ready pod behind a Service (by the Service's selector).
pub async fn pod_of_service(client: &Client, namespace: &str, service: &str) -> Result<String> {
    let svc: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(client.clone(), namespace);
    let selector = svc
        .get(service)
        .await?
        .spec
        .and_then(|s| s.selector)
        .unwrap_or_default();
    let labels: Vec<String> = selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = pods
        .list(&kube::api::ListParams::default().labels(&labels.join(",")))
        .await?;
    list.items
        .into_iter()
        .find(|p| {
            p.metadata.deletion_timestamp.is_none()
                && p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .and_then(|p| p.metadata.name)
        .ok_or_else(|| anyhow!("no Ready pod behind Service {namespace}/{service}"))
}

/// `http://127.0.0.1:<port>` forwarding to `port` of a Ready pod behind `service`.
pub async fn forward_service(
    client: &Client,
    namespace: &str,
    service: &str,
    port: u16,
) -> Result<String> {
    let pod = pod_of_service(client, namespace, service).await?;
    let addr = port_forward(Api::namespaced(client.clone(), namespace), &pod, port).await?;
    Ok(format!("http://{addr}"))
}

/// The repository's root, read when the test runs: a target directory shared
/// between clones may hold a binary built in another checkout.
pub fn repo_root() -> std::path::PathBuf {
    let dir = std::env::var("CARGO_MANIFEST_DIR")
        .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned());
    std::path::Path::new(&dir).join("..")
}

/// The Streams of the examples' namespace, as dynamic objects.
pub fn example_streams(client: &Client) -> Api<kube::api::DynamicObject> {
    let gvk = kube::api::GroupVersionKind::gvk("eventflow.dev", "v1alpha1", "Stream");
    Api::namespaced_with(
        client.clone(),
        EXAMPLES_NS,
        &kube::api::ApiResource::from_gvk(&gvk),
    )
}

/// `kubectl patch stream <name> --type=json` in the examples' namespace, the
/// way a user changes a Stream.
pub fn patch_example_stream(name: &str, patch: &Value) -> Result<String> {
    run_tool(
        "kubectl",
        &[
            "-n",
            EXAMPLES_NS,
            "patch",
            "stream",
            name,
            "--type=json",
            "-p",
            &patch.to_string(),
        ],
        None,
    )
}

/// Runs a command-line tool that `make` puts on PATH (kubectl, helm) and
/// returns its standard output; fails naming the command and its output.
pub fn run_tool(tool: &str, args: &[&str], stdin: Option<&str>) -> Result<String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(tool)
        .args(args)
        .current_dir(repo_root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            anyhow!(
                "cannot run {tool} ({e}): eval \"$(e2e/cluster/cluster.sh env)\" puts it on PATH"
            )
        })?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "{tool} {args:?} failed:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(text)
}

/// Namespace of the examples (`examples/`).
pub const EXAMPLES_NS: &str = "eventflow-demo";
/// Namespace the chart installs the operator into.
pub const OPERATOR_NS: &str = "eventflow-system";

/// Installs (or upgrades) the operator from `charts/eventflow` into
/// [`OPERATOR_NS`] and waits for its rollout. Idempotent.
pub fn install_operator() -> Result<()> {
    run_tool(
        "helm",
        &[
            "upgrade",
            "--install",
            "eventflow",
            "charts/eventflow",
            "--namespace",
            OPERATOR_NS,
            "--create-namespace",
        ],
        None,
    )?;
    run_tool(
        "kubectl",
        &[
            "-n",
            OPERATOR_NS,
            "rollout",
            "status",
            "deploy/eventflow-operator",
            "--timeout=300s",
        ],
        None,
    )?;
    Ok(())
}

/// Applies `examples/` (server-side, idempotent) and waits until every
/// EventBroker and then every Stream in [`EXAMPLES_NS`] is Ready.
pub fn apply_examples_and_wait() -> Result<()> {
    run_tool(
        "kubectl",
        &["apply", "--server-side", "-f", "examples/"],
        None,
    )?;
    for kind in ["eventbroker", "stream"] {
        run_tool(
            "kubectl",
            &[
                "-n",
                EXAMPLES_NS,
                "wait",
                "--for=condition=Ready",
                kind,
                "--all",
                "--timeout=600s",
            ],
            None,
        )?;
    }
    Ok(())
}

/// Installs the chart and applies `examples/` (once per test binary; both
/// steps are idempotent), then waits until every EventBroker and Stream is Ready.
pub fn example_system() {
    static READY: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    let ready = READY.get_or_init(|| {
        install_operator()
            .and_then(|()| apply_examples_and_wait())
            .map_err(|e| format!("{e:#}"))
    });
    if let Err(e) = ready {
        let state = run_tool(
            "kubectl",
            &["get", "pods,streams,eventbrokers", "-A", "-o", "wide"],
            None,
        )
        .unwrap_or_default();
        panic!("the example system did not come up: {e}\n{state}");
    }
}

/// The bounded contexts of the example system whose web role serves a
/// global event feed (`GET /v1/events`), as `ecommerce-<context>-web`.
pub const CONTEXTS: [&str; 4] = ["account", "order", "payment", "warehouse"];

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

/// Starts a load-simulator run (`POST {sim}/v1/runs` with `plan`) and polls
/// it until it is no longer RUNNING; returns its last report. Fails when the
/// run is refused or still RUNNING after `timeout`.
pub async fn run_load(
    http: &reqwest::Client,
    sim: &str,
    plan: &Value,
    timeout: Duration,
) -> Result<Value> {
    let started = http
        .post(format!("{sim}/v1/runs"))
        .json(plan)
        .send()
        .await?;
    if started.status() != 201 {
        bail!(
            "POST {sim}/v1/runs: {}: {}",
            started.status(),
            started.text().await.unwrap_or_default()
        );
    }
    let run: Value = started.json().await?;
    let url = run["_links"]["self"]["href"]
        .as_str()
        .ok_or_else(|| anyhow!("the run has no self link: {run}"))?
        .replace(run_base(&run).as_str(), sim);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let report = get_json(http, &url).await?;
        if report["status"] != "RUNNING" {
            return Ok(report);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("the run did not complete in {timeout:?}: {report}");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Every event of one context's global feed at `base` (a web role) after
/// position `after`, following `_links.next`.
pub async fn feed_events(http: &reqwest::Client, base: &str, after: i64) -> Result<Vec<Value>> {
    let mut events = Vec::new();
    let mut next = Some(format!("{base}/v1/events?after={after}&limit=100"));
    while let Some(page) = next.take() {
        let doc = get_json(http, &page).await?;
        events.extend(
            doc["_embedded"]["events"]
                .as_array()
                .into_iter()
                .flatten()
                .cloned(),
        );
        next = doc["_links"]["next"]["href"]
            .as_str()
            .map(|h| h.replace(run_base(&doc).as_str(), base));
    }
    Ok(events)
}

/// Events of one context's global feed at `base` (a web role), counted by
/// routing key (`<aggregateType>.<eventType>`).
pub async fn feed_counts_at(http: &reqwest::Client, base: &str) -> Result<BTreeMap<String, u64>> {
    let mut counts = BTreeMap::new();
    for e in feed_events(http, base, 0).await? {
        let field = |f: &str| {
            e[f].as_str()
                .ok_or_else(|| anyhow!("an event of {base} has no {f}: {e}"))
        };
        let key = format!("{}.{}", field("aggregateType")?, field("eventType")?);
        *counts.entry(key).or_insert(0u64) += 1;
    }
    Ok(counts)
}

/// [`feed_counts_at`] of every context in [`CONTEXTS`], by context, each
/// reached by a port-forward to its web role in [`EXAMPLES_NS`].
pub async fn context_feed_counts(
    client: &Client,
    http: &reqwest::Client,
) -> Result<BTreeMap<String, BTreeMap<String, u64>>> {
    let mut by_context = BTreeMap::new();
    for app in CONTEXTS {
        let base =
            forward_service(client, EXAMPLES_NS, &format!("ecommerce-{app}-web"), 8080).await?;
        by_context.insert(app.to_owned(), feed_counts_at(http, &base).await?);
    }
    Ok(by_context)
}

/// When the oldest event in any context's feed was appended (`None`: no
/// event yet). Events older than the example Stream come from an earlier
/// installation whose PostgreSQL data was kept.
pub async fn oldest_event_time(client: &Client, http: &reqwest::Client) -> Result<Option<Time>> {
    let mut oldest: Option<Time> = None;
    for app in CONTEXTS {
        let base =
            forward_service(client, EXAMPLES_NS, &format!("ecommerce-{app}-web"), 8080).await?;
        let doc = get_json(http, &format!("{base}/v1/events?after=0&limit=1")).await?;
        if let Some(first) = doc["_embedded"]["events"].get(0) {
            let at: Time = serde_json::from_value(first["createdAt"].clone())
                .map_err(|e| anyhow!("createdAt of {first}: {e}"))?;
            if oldest.as_ref().is_none_or(|o| at.0 < o.0) {
                oldest = Some(at);
            }
        }
    }
    Ok(oldest)
}

/// Events of every context's global feed, counted by routing key.
pub async fn feed_counts(client: &Client, http: &reqwest::Client) -> Result<BTreeMap<String, u64>> {
    let mut counts = BTreeMap::new();
    for (key, n) in context_feed_counts(client, http)
        .await?
        .into_values()
        .flatten()
    {
        *counts.entry(key).or_insert(0u64) += n;
    }
    Ok(counts)
}
