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
