use std::collections::BTreeMap;

use super::*;
use crate::api::App;

fn registrations(yaml: &str) -> BTreeMap<String, AppRegistrationSpec> {
    serde_yaml::from_str(yaml).unwrap()
}

/// The example apps of `apps/spring`, registered the way examples/dataflow does.
fn spring_apps() -> BTreeMap<String, AppRegistrationSpec> {
    registrations(
        r#"
source.time: {image: eventflow/spring-time-source:dev}
processor.transform:
  image: eventflow/spring-transform-processor:dev
  spring: {functionDefinition: transform, input: transform-in-0, output: transform-out-0}
sink.log: {image: eventflow/spring-count-sink:dev, properties: {logging.level.root: WARN}}
sink.counter: {image: eventflow/spring-count-sink:dev}
processor.bridge: {image: eventflow/spring-transform-processor:dev}
app.time: {image: eventflow/spring-time-source:dev}
app.log: {image: eventflow/spring-count-sink:dev}
sink.audit: {image: eventflow/spring-count-sink:dev}
processor.audit: {image: eventflow/counter:dev, runtime: Eventflow}
source.orders: {image: eventflow/order:dev, runtime: Eventflow, webPort: 8080}
"#,
    )
}

fn apps(yaml: &str) -> Vec<App> {
    serde_yaml::from_str(yaml).unwrap()
}

fn run(stream: &str, definition: &str) -> Result<Vec<App>, ExpandError> {
    expand(stream, definition, &BTreeMap::new(), &spring_apps())
}

#[test]
fn a_pipe_expands_into_the_apps_and_destinations_data_flow_would_have_used() {
    let got = run(
        "ticktock",
        "time | transform --expression=payload.toUpperCase() | log",
    )
    .unwrap();
    let want = apps(
        r#"
- name: time
  image: eventflow/spring-time-source:dev
  worker: {}
  spring: {outputs: [{destination: ticktock-time}]}
- name: transform
  image: eventflow/spring-transform-processor:dev
  worker: {}
  subscribes: [{destination: ticktock-time, group: ticktock, binding: transform-in-0}]
  spring:
    functionDefinition: transform
    outputs: [{binding: transform-out-0, destination: ticktock-transform}]
    properties: {expression: payload.toUpperCase()}
- name: log
  image: eventflow/spring-count-sink:dev
  worker: {}
  subscribes: [{destination: ticktock-transform, group: ticktock}]
  spring: {properties: {logging.level.root: WARN}}
"#,
    );
    assert_eq!(got, want);
}

#[test]
fn a_tap_reads_the_pipe_after_the_tapped_label_in_its_own_group() {
    let got = run("ticktock-tap", ":ticktock.transform > counter").unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].name, "counter");
    assert_eq!(got[0].subscribes[0].destination, "ticktock-transform");
    assert_eq!(got[0].subscribes[0].group.as_deref(), Some("ticktock-tap"));
    assert!(got[0].spring.as_ref().unwrap().outputs.is_empty());
}

#[test]
fn labels_name_the_apps_and_the_pipes() {
    let got = run("twice", "time | a: transform | b: transform | log").unwrap();
    let names: Vec<_> = got.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["time", "a", "b", "log"]);
    assert_eq!(got[2].subscribes[0].destination, "twice-a");
    assert_eq!(
        got[2].spring.as_ref().unwrap().outputs[0].destination,
        "twice-b"
    );
}

#[test]
fn named_destinations_bridges_and_unbound_lists() {
    let got = run("s", ":orders > audit").unwrap();
    assert_eq!(got[0].subscribes[0].destination, "orders");
    assert!(got[0].spring.is_some(), "sink.audit is the Spring one");

    let got = run("s", "time > :ticks").unwrap();
    assert_eq!(
        got[0].spring.as_ref().unwrap().outputs[0].destination,
        "ticks"
    );
    assert!(got[0].subscribes.is_empty());

    let got = run("s", ":orders > audit > :audited").unwrap();
    assert_eq!(got[0].subscribes[0].destination, "orders");
    assert_eq!(
        got[0].publishes,
        ["audited"],
        "processor.audit is an Eventflow app"
    );
    assert!(got[0].spring.is_none());

    let got = run("s", ":a > :b").unwrap();
    assert_eq!(got[0].name, "bridge");
    assert_eq!(got[0].subscribes[0].destination, "a");
    assert_eq!(got[0].spring.as_ref().unwrap().outputs[0].destination, "b");

    let got = run("s", "time || log").unwrap();
    assert!(got.iter().all(|a| a.subscribes.is_empty()
        && a.spring.as_ref().unwrap().outputs.is_empty()
        && a.worker.is_some()));
}

#[test]
fn an_eventflow_source_gets_its_web_role_and_properties_as_environment_variables() {
    let got = run("shop", "orders --max.batch-size=5 > :order").unwrap();
    let orders = &got[0];
    assert_eq!(orders.web.as_ref().unwrap().port, Some(8080));
    assert!(orders.worker.is_none());
    assert_eq!(orders.publishes, ["order"]);
    assert_eq!(orders.env[0].name, "MAX_BATCH_SIZE");
    assert_eq!(orders.env[0].value.as_deref(), Some("5"));
}

#[test]
fn deployment_properties_set_replicas_resources_and_properties() {
    let props: BTreeMap<String, String> = [
        ("deployer.log.count", "3"),
        ("deployer.*.kubernetes.limits.memory", "384Mi"),
        ("deployer.log.kubernetes.requests.cpu", "50m"),
        ("app.log.logging.level.root", "INFO"),
        ("app.*.spring.main.banner-mode", "off"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let got = expand("t", "time | log", &props, &spring_apps()).unwrap();
    let log = &got[1];
    assert_eq!(log.worker.as_ref().unwrap().replicas, Some(3));
    assert_eq!(got[0].worker.as_ref().unwrap().replicas, None);
    let r = log.resources.as_ref().unwrap();
    assert_eq!(r.limits.as_ref().unwrap()["memory"].0, "384Mi");
    assert_eq!(r.requests.as_ref().unwrap()["cpu"].0, "50m");
    let p = &log.spring.as_ref().unwrap().properties;
    assert_eq!(
        p["logging.level.root"], "INFO",
        "deployment beats registration"
    );
    assert_eq!(p["spring.main.banner-mode"], "off");
}

#[test]
fn every_refusal_names_the_problem() {
    let e = run("t", "time | ").unwrap_err();
    assert_eq!(e.position, Some(7));
    assert!(
        e.to_string().starts_with("spec.definition (pos 7): "),
        "{e}"
    );

    let e = run("t", "time | upper | log").unwrap_err();
    assert!(
        e.message.contains("AppRegistration `processor.upper`"),
        "{e}"
    );

    let e = run("t", "time | transform").unwrap_err();
    assert!(e.message.contains("`sink.transform`"), "{e}");

    let e = run("t", "other = time | log").unwrap_err();
    assert!(e.message.contains("names stream `other`"), "{e}");

    let e = run("t", "Upper: time | log").unwrap_err();
    assert!(e.message.contains("app label `Upper`"), "{e}");

    let e = run("t", ":a/b > log").unwrap_err();
    assert!(e.message.contains("destination `:a/b`"), "{e}");

    let props = BTreeMap::from([("deployer.nolabel.count".to_owned(), "2".to_owned())]);
    let e = expand("t", "time | log", &props, &spring_apps()).unwrap_err();
    assert!(e.message.contains("app `nolabel`"), "{e}");

    let e = run("t", "orders").unwrap_err();
    assert!(e.message.contains("`app.orders`"), "{e}");
}

#[test]
fn registration_types_follow_the_place_in_the_definition() {
    for (definition, want) in [
        (
            "time | transform | log",
            &["source.time", "processor.transform", "sink.log"][..],
        ),
        (":ticktock.transform > log", &["sink.log"]),
        ("time > :d", &["source.time"]),
        (":a > :b", &["processor.bridge"]),
        (":a > audit > :b", &["processor.audit"]),
        ("a || b", &["app.a", "app.b"]),
        ("solo", &["app.solo"]),
    ] {
        let def = eventflow_dsl::parse(definition).unwrap();
        assert_eq!(registration_names(&def), want, "{definition}");
    }
}
