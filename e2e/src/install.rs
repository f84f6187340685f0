//! Installing what the tests run against: the operator from the chart and
//! the example system from `examples/`, once per test binary, and changing
//! the examples' Streams the way a user would.

use anyhow::Result;
use kube::{Api, Client};
use serde_json::Value;

use crate::tools::run_tool;

/// Namespace of the examples (`examples/`).
pub const EXAMPLES_NS: &str = "eventflow-demo";
/// Namespace the chart installs the operator into.
pub const OPERATOR_NS: &str = "eventflow-system";

/// Installs (or upgrades) the operator from `charts/eventflow` into
/// [`OPERATOR_NS`] and waits for its rollout and the dashboard's. Idempotent.
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
    for deployment in ["deploy/eventflow-operator", "deploy/eventflow-dashboard"] {
        run_tool(
            "kubectl",
            &[
                "-n",
                OPERATOR_NS,
                "rollout",
                "status",
                deployment,
                "--timeout=300s",
            ],
            None,
        )?;
    }
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

/// The example system's top-level manifests (`examples/*.yaml`, in order),
/// with every `eventflow-demo` namespace renamed `namespace`.
fn examples_into(namespace: &str) -> Result<String> {
    let dir = crate::tools::repo_root().join("examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let mut docs = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f)?;
        docs.push(
            text.replace(
                &format!("namespace: {EXAMPLES_NS}"),
                &format!("namespace: {namespace}"),
            )
            .replace(
                &format!("name: {EXAMPLES_NS}"),
                &format!("name: {namespace}"),
            ),
        );
    }
    Ok(docs.join("\n---\n"))
}

/// A copy of the example system (`examples/*.yaml`) in its own namespace
/// (labelled `eventflow.dev/e2e`, enforcing Pod Security "restricted" as
/// the examples' does), for a test that must not disturb the shared one;
/// waits until every EventBroker and Stream there is Ready. The operator
/// must be installed ([`install_operator`]).
pub fn apply_examples_into(namespace: &str) -> Result<()> {
    run_tool(
        "kubectl",
        &["apply", "--server-side", "-f", "-"],
        Some(&examples_into(namespace)?),
    )?;
    run_tool(
        "kubectl",
        &[
            "label",
            "namespace",
            namespace,
            "eventflow.dev/e2e=true",
            "--overwrite",
        ],
        None,
    )?;
    for kind in ["eventbroker", "stream"] {
        run_tool(
            "kubectl",
            &[
                "-n",
                namespace,
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

/// Deletes a copy made by [`apply_examples_into`]: its Streams and
/// EventBrokers first, while the operator runs their finalizers, then the
/// namespace (waiting for it to go).
pub fn delete_examples_copy(namespace: &str) -> Result<()> {
    run_tool(
        "kubectl",
        &[
            "-n",
            namespace,
            "delete",
            "streams.eventflow.dev,eventbrokers.eventflow.dev",
            "--all",
            "--ignore-not-found",
            "--wait",
            "--timeout=300s",
        ],
        None,
    )?;
    run_tool(
        "kubectl",
        &[
            "delete",
            "namespace",
            namespace,
            "--ignore-not-found",
            "--wait",
            "--timeout=300s",
        ],
        None,
    )?;
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
