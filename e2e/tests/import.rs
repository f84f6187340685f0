//! `kubectl eventflow import` of a recorded Data Flow export
//! (`examples/dataflow/export/`: the `/streams/definitions` JSON, an `app
//! import` properties file and deployment properties), applied as written
//! to the real node: the Streams reach Ready and messages flow through the
//! pipeline, its tap and a labelled tap. Runs the plugin the way a user does,
//! through kubectl (`make e2e` puts `kubectl-eventflow` on the PATH).

use std::time::Duration;

use eventflow_e2e::*;

const NS: &str = EXAMPLES_NS;
const STREAMS: [&str; 3] = ["clock", "clock-tap", "clock-audit"];

#[tokio::test]
#[ignore = "needs a cluster"]
async fn a_recorded_data_flow_export_imports_applies_and_runs() {
    let client = client().await;
    example_system();
    let dir = "examples/dataflow/export";
    let yaml = kubectl(&[
        "eventflow",
        "import",
        "--definitions",
        &format!("{dir}/streams.json"),
        "--apps",
        &format!("{dir}/apps.properties"),
        "--properties",
        &format!("clock={dir}/clock.properties"),
        "--properties",
        &format!("clock-tap={dir}/clock-tap.properties"),
        "--namespace",
        NS,
    ]);
    assert_eq!(yaml.matches("kind: AppRegistration").count(), 3, "{yaml}");
    assert_eq!(yaml.matches("kind: Stream").count(), 3, "{yaml}");
    let mut delete = vec![
        "-n",
        NS,
        "delete",
        "stream",
        "--ignore-not-found",
        "--wait=true",
    ];
    delete.extend(STREAMS);
    kubectl(&delete);
    run_tool(
        "kubectl",
        &["apply", "--server-side", "-f", "-"],
        Some(&yaml),
    )
    .unwrap_or_else(|e| panic!("kubectl apply of the import: {e:#}"));
    for s in STREAMS {
        wait_stream_condition(s, "Ready");
    }

    // The pipeline's log gets the ticks upper-cased; the tap of the transform
    // gets them too; the labelled tap of the source gets them as sent.
    for (stream, app, want) in [
        ("clock", "log", "\"SEQUENCE\":"),
        ("clock-tap", "log", "\"SEQUENCE\":"),
        ("clock-audit", "audit", "\"sequence\":"),
    ] {
        wait_for(
            Duration::from_secs(120),
            &format!("{stream}/{app} receiving ticks like {want}"),
            || async {
                let sink = actuator(&client, stream, app, "sink").await;
                let last = sink["last"].as_str().unwrap_or_default().to_owned();
                Ok(count(&sink, "received") >= 2 && last.contains(want))
            },
        )
        .await
        .unwrap();
    }
    kubectl(&delete);
    wait_pods_gone(&client, &STREAMS).await;
}
