//! The Helm chart: its CRDs are the generated ones, `helm lint` passes, and
//! what it renders — cluster-wide and single-namespace — is accepted by the
//! real API server (server-side dry-run).

use std::path::Path;
use std::process::Command;

fn run(tool: &str, args: &[&str], stdin: Option<&str>) -> String {
    eventflow_e2e::run_tool(tool, args, stdin).unwrap_or_else(|e| panic!("{e:#}"))
}

#[test]
fn the_charts_crds_are_identical_to_the_generated_ones() {
    let generated = eventflow_e2e::repo_root().join("crds");
    let chart = eventflow_e2e::repo_root().join("charts/eventflow/crds");
    let names = |dir: &Path| {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        names(&generated),
        names(&chart),
        "make crds copies crds/ into the chart"
    );
    assert!(!names(&generated).is_empty());
    for name in names(&generated) {
        let a = std::fs::read_to_string(generated.join(&name)).unwrap();
        let b = std::fs::read_to_string(chart.join(&name)).unwrap();
        assert!(
            a == b,
            "charts/eventflow/crds/{name:?} differs from crds/: run make crds"
        );
    }
}

#[test]
#[ignore = "needs helm"]
fn helm_lint_passes() {
    let out = run("helm", &["lint", "--strict", "charts/eventflow"], None);
    assert!(out.contains("0 chart(s) failed"), "{out}");
}

#[test]
#[ignore = "needs helm"]
fn the_values_schema_rejects_a_bad_value_naming_it() {
    let out = Command::new("helm")
        .args([
            "template",
            "t",
            "charts/eventflow",
            "--kube-version",
            "1.34.0",
            "--set",
            "replicas=0",
        ])
        .current_dir(eventflow_e2e::repo_root())
        .output()
        .expect("helm on PATH");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("replicas"), "{err}");
}

fn render(extra: &[&str]) -> String {
    let mut args = vec![
        "template",
        "eventflow",
        "charts/eventflow",
        "--namespace",
        "eventflow-system",
    ];
    args.extend_from_slice(&["--kube-version", "1.34.0", "--include-crds"]);
    args.extend_from_slice(extra);
    run("helm", &args, None)
}

#[tokio::test]
#[ignore = "needs a cluster"]
async fn the_rendered_chart_is_accepted_by_the_api_server() {
    let _client = eventflow_e2e::client().await; // fails loudly without KUBECONFIG
    let ns = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: eventflow-system\n";
    run(
        "kubectl",
        &[
            "apply",
            "--server-side",
            "--field-manager=e2e-chart",
            "-f",
            "-",
        ],
        Some(ns),
    );
    for extra in [
        &[][..],
        &[
            "--set",
            "watchNamespace=eventflow-demo",
            "--set",
            "networkPolicy.enabled=true",
        ][..],
    ] {
        let manifests = render(extra);
        for kind in ["CustomResourceDefinition", "Deployment", "ServiceAccount"] {
            assert!(
                manifests.contains(&format!("kind: {kind}")),
                "no {kind} rendered"
            );
        }
        if extra.is_empty() {
            assert!(manifests.contains("kind: ClusterRole\n"));
        } else {
            assert!(
                !manifests.contains("kind: ClusterRole\n"),
                "watchNamespace must not need cluster-wide rights"
            );
            let demo = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: eventflow-demo\n";
            run(
                "kubectl",
                &[
                    "apply",
                    "--server-side",
                    "--field-manager=e2e-chart",
                    "-f",
                    "-",
                ],
                Some(demo),
            );
        }
        assert!(
            !manifests.contains("\"*\"")
                && !manifests.contains("['*']")
                && !manifests.contains("[*]")
        );
        let out = run(
            "kubectl",
            &[
                "apply",
                "--server-side",
                "--force-conflicts",
                "--dry-run=server",
                "-f",
                "-",
            ],
            Some(&manifests),
        );
        assert!(
            out.contains("deployment.apps/eventflow-operator serverside-applied (server dry run)"),
            "{out}"
        );
    }
}
