//! The built `kubectl-eventflow` binary, run as a user runs it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use eventflow_operator::{
    api::{AppRegistration, Stream},
    dataflow,
};
use serde::Deserialize;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kubectl-eventflow"))
}

fn run(args: &[&str]) -> Output {
    bin()
        .args(args)
        .current_dir(repo())
        .output()
        .expect("kubectl-eventflow runs")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A scratch file in a temp directory of this test run.
fn scratch(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kubectl-eventflow-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn dsl_parse_prints_the_model_as_json_and_exits_0() {
    let o = run(&[
        "dsl",
        "parse",
        "time | transform --expression=payload.toUpperCase() | log",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let names: Vec<&str> = v["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["time", "transform", "log"]);
    assert_eq!(
        v["apps"][1]["properties"]["expression"],
        "payload.toUpperCase()"
    );
    assert_eq!(v["unbound"], false);
}

#[test]
fn dsl_parse_of_a_bad_definition_prints_the_error_and_exits_2() {
    let o = run(&["dsl", "parse", "time | "]);
    assert_eq!(o.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["error"]["position"], 7, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
}

#[test]
fn every_command_has_help_naming_its_inputs() {
    for (args, fragments) in [
        (
            &["--help"][..],
            &["dsl", "import", "version", "Exit codes"][..],
        ),
        (&["dsl", "--help"], &["parse"]),
        (
            &["dsl", "parse", "--help"],
            &["<DEFINITION>", "\"error\"", "Exit codes"],
        ),
        (
            &["import", "--help"],
            &[
                "--definitions",
                "--apps",
                "--properties",
                "--namespace",
                "--broker",
                "--output",
                "streamDefinitionResourceList",
                "stream create",
                "docker:",
                "deployer.",
                "Exit codes",
            ],
        ),
        (&["version", "--help"], &["version"]),
        (&["help", "import"], &["--definitions"]),
    ] {
        let o = run(args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        let text = stdout(&o);
        for f in fragments {
            assert!(text.contains(f), "{args:?} help lacks {f}:\n{text}");
        }
    }
}

#[test]
fn version_and_usage_errors() {
    for args in [&["version"][..], &["--version"]] {
        let o = run(args);
        assert_eq!(o.status.code(), Some(0));
        assert!(stdout(&o).contains(env!("CARGO_PKG_VERSION")));
    }
    for args in [
        &[][..],
        &["frobnicate"],
        &["dsl", "parse"],
        &["import"],
        &["import", "--apps", "x", "--properties", "no-equals"],
    ] {
        let o = run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    }
}

const FIXTURE: &[&str] = &[
    "import",
    "--definitions",
    "examples/dataflow/export/streams.json",
    "--apps",
    "examples/dataflow/export/apps.properties",
    "--properties",
    "clock=examples/dataflow/export/clock.properties",
    "--properties",
    "clock-tap=examples/dataflow/export/clock-tap.properties",
    "--namespace",
    "eventflow-demo",
];

/// The documents of a multi-document YAML text.
fn documents(yaml: &str) -> (Vec<AppRegistration>, Vec<Stream>) {
    let mut registrations = Vec::new();
    let mut streams = Vec::new();
    let mut kinds = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(yaml) {
        let value = serde_yaml::Value::deserialize(doc).unwrap();
        let kind = value["kind"].as_str().unwrap().to_owned();
        assert_eq!(value["apiVersion"], "eventflow.dev/v1alpha1");
        match kind.as_str() {
            "AppRegistration" => registrations.push(serde_yaml::from_value(value).unwrap()),
            "Stream" => streams.push(serde_yaml::from_value(value).unwrap()),
            other => panic!("unexpected kind {other}"),
        }
        kinds.push(kind);
    }
    let first_stream = kinds
        .iter()
        .position(|k| k == "Stream")
        .unwrap_or(kinds.len());
    assert!(
        kinds[first_stream..].iter().all(|k| k == "Stream"),
        "AppRegistrations first: {kinds:?}"
    );
    (registrations, streams)
}

#[test]
fn the_recorded_data_flow_export_imports_into_streams_that_expand() {
    let o = run(FIXTURE);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let (registrations, streams) = documents(&stdout(&o));

    let images: BTreeMap<String, String> = registrations
        .iter()
        .map(|r| (r.metadata.name.clone().unwrap(), r.spec.image.clone()))
        .collect();
    assert_eq!(
        images,
        BTreeMap::from([
            (
                "processor.transform".to_owned(),
                "docker.io/eventflow/spring-transform-processor:dev".to_owned()
            ),
            (
                "sink.log".to_owned(),
                "docker.io/eventflow/spring-count-sink:dev".to_owned()
            ),
            (
                "source.time".to_owned(),
                "docker.io/eventflow/spring-time-source:dev".to_owned()
            ),
        ])
    );
    assert!(
        registrations
            .iter()
            .all(|r| r.metadata.namespace.as_deref() == Some("eventflow-demo"))
    );

    let names: Vec<&str> = streams
        .iter()
        .map(|s| s.metadata.name.as_deref().unwrap())
        .collect();
    assert_eq!(names, ["clock", "clock-tap", "clock-audit"]);
    for s in &streams {
        assert_eq!(s.metadata.namespace.as_deref(), Some("eventflow-demo"));
        assert_eq!(s.spec.broker, "rabbit");
        assert!(s.spec.apps.is_empty());
    }
    assert_eq!(
        streams[0].spec.definition.as_deref(),
        Some("time | transform --expression=payload.toUpperCase() | log")
    );
    let props = &streams[0].spec.deployment_properties;
    assert_eq!(props["deployer.log.count"], "1");
    assert_eq!(props["deployer.*.kubernetes.limits.memory"], "384Mi");
    assert_eq!(props["deployer.*.kubernetes.requests.cpu"], "50m");
    assert_eq!(
        props["app.time.spring.integration.poller.fixed-delay"],
        "500"
    );
    assert_eq!(
        streams[1].spec.deployment_properties["deployer.log.count"],
        "1"
    );
    assert!(streams[2].spec.deployment_properties.is_empty());

    // As the operator will see them: every Stream expands with the imported registrations.
    let by_name = dataflow::by_name(&registrations);
    let ticktock = dataflow::effective(&streams[0], &by_name).unwrap();
    let apps: Vec<&str> = ticktock.spec.apps.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(apps, ["time", "transform", "log"]);
    assert_eq!(
        ticktock.spec.apps[2].worker.as_ref().unwrap().replicas,
        Some(1)
    );
    let tap = dataflow::effective(&streams[1], &by_name).unwrap();
    assert_eq!(
        tap.spec.apps[0].subscribes[0].destination,
        "clock-transform"
    );
    let audit = dataflow::effective(&streams[2], &by_name).unwrap();
    assert_eq!(audit.spec.apps[0].name, "audit");
    assert_eq!(audit.spec.apps[0].subscribes[0].destination, "clock-time");
}

#[test]
fn import_writes_to_a_file_and_warns_of_a_registration_it_lacks() {
    let defs = scratch(
        "lacking.txt",
        "# a text export\nticktock = time | log\ncounted = :ticktock.time > counter\n",
    );
    let apps = scratch(
        "lacking.properties",
        "source.time=docker:t:1\nsink.log=docker:l:1\n",
    );
    let out =
        std::env::temp_dir().join(format!("kubectl-eventflow-out-{}.yaml", std::process::id()));
    let o = run(&[
        "import",
        "--definitions",
        defs.to_str().unwrap(),
        "--apps",
        apps.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--broker",
        "events",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).is_empty());
    assert!(
        stderr(&o).contains(
            "stream counted needs AppRegistration sink.counter, not among --apps: register it before applying"
        ),
        "{}",
        stderr(&o)
    );
    let (registrations, streams) = documents(&std::fs::read_to_string(&out).unwrap());
    assert_eq!(registrations.len(), 2);
    assert_eq!(streams.len(), 2);
    assert!(
        streams.iter().all(
            |s| s.spec.broker == "events" && s.metadata.namespace.as_deref() == Some("default")
        )
    );
    std::fs::remove_file(out).ok();
}

#[test]
fn a_maven_uri_fails_the_import_naming_it() {
    let apps = scratch(
        "maven.properties",
        "source.time=docker:t:1\nsink.log=maven://org.springframework.cloud.stream.app:log-sink-rabbit:5.0.0\n",
    );
    let defs = scratch("maven.txt", "ticktock = time | log\n");
    let o = import(&defs, &apps);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).is_empty(), "nothing is written");
    let err = stderr(&o);
    assert!(err.contains("maven.properties:2"), "{err}");
    assert!(err.contains("sink.log=maven:"), "{err}");
    assert!(err.contains("nothing was written"), "{err}");
}

#[test]
fn a_bad_definition_fails_the_import_naming_stream_and_position() {
    let defs = scratch("bad.txt", "ticktock = time | log\nbroken = time | | log\n");
    let apps = scratch(
        "bad.properties",
        "source.time=docker:t:1\nsink.log=docker:l:1\n",
    );
    let o = import(&defs, &apps);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).is_empty());
    let err = stderr(&o);
    assert!(
        err.contains("stream broken: the definition does not parse (pos 7)"),
        "{err}"
    );
    assert!(err.contains("    time | | log\n           ^"), "{err}");
    assert!(!err.contains("stream ticktock"), "{err}");
}

#[test]
fn an_unreadable_input_or_properties_of_no_stream_fail_with_1() {
    let o = run(&["import", "--definitions", "/nonexistent/streams.json"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("cannot read /nonexistent/streams.json"));

    let apps = scratch("only.properties", "source.time=docker:t:1\n");
    let props = scratch("nobody.properties", "deployer.log.count=2\n");
    let arg = format!("nobody={}", props.display());
    let o = run(&[
        "import",
        "--apps",
        apps.to_str().unwrap(),
        "--properties",
        &arg,
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("there is no stream nobody"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn apps_alone_import_as_registrations() {
    let o = run(&[
        "import",
        "--apps",
        "examples/dataflow/export/apps.properties",
        "-n",
        "x",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let (registrations, streams) = documents(&stdout(&o));
    assert_eq!(registrations.len(), 3);
    assert!(streams.is_empty());
}

/// `import --definitions DEFS --apps APPS`, nothing else.
fn import(defs: &std::path::Path, apps: &std::path::Path) -> Output {
    run(&[
        "import",
        "--definitions",
        defs.to_str().unwrap(),
        "--apps",
        apps.to_str().unwrap(),
    ])
}
