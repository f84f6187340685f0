//! Every stream checked the way the operator will check it: its name, its
//! definition (parsed), and its expansion into apps with the registrations
//! being imported and its deployment properties. A registration missing
//! from the import is only a warning (it may already be in the cluster);
//! everything else is an error naming the stream.

use std::collections::{BTreeMap, BTreeSet};

use eventflow_operator::{
    api::{AppRegistrationSpec, MAX_STREAM_NAME},
    dataflow,
};

use super::{Problems, apps::AppEntry, definitions::StreamEntry, is_dns_label};

/// A stream that passed every check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedStream {
    pub name: String,
    pub definition: String,
    pub deployment_properties: BTreeMap<String, String>,
}

/// The registrations by name (`source.time`); the same name with two images is an error.
pub fn registrations(
    apps: &[AppEntry],
    problems: &mut Problems,
) -> BTreeMap<String, AppRegistrationSpec> {
    let mut out: BTreeMap<String, (AppRegistrationSpec, &str)> = BTreeMap::new();
    for app in apps {
        if let Some((existing, origin)) = out.get(&app.key) {
            if existing.image != app.image {
                problems.error(format!(
                    "{}: `{}` is registered twice with different images: {} ({origin}) and {}",
                    app.origin, app.key, existing.image, app.image
                ));
            }
            continue;
        }
        let spec = AppRegistrationSpec {
            image: app.image.clone(),
            ..AppRegistrationSpec::default()
        };
        out.insert(app.key.clone(), (spec, &app.origin));
    }
    out.into_iter().map(|(k, (spec, _))| (k, spec)).collect()
}

/// The streams that pass; a problem for each that does not.
pub fn streams(
    entries: &[StreamEntry],
    deployment: &BTreeMap<String, BTreeMap<String, String>>,
    registrations: &BTreeMap<String, AppRegistrationSpec>,
    problems: &mut Problems,
) -> Vec<CheckedStream> {
    let mut seen = BTreeSet::new();
    for e in entries {
        if !seen.insert(e.name.as_str()) {
            problems.error(format!(
                "{}: stream {} is defined more than once",
                e.origin, e.name
            ));
        }
    }
    for stream in deployment.keys() {
        if !seen.contains(stream.as_str()) {
            problems.error(format!(
                "--properties {stream}=…: there is no stream {stream} among the definitions"
            ));
        }
    }
    let no_properties = BTreeMap::new();
    entries
        .iter()
        .filter_map(|e| {
            let properties = deployment.get(&e.name).unwrap_or(&no_properties);
            check_one(e, properties, registrations, problems).then(|| CheckedStream {
                name: e.name.clone(),
                definition: e.definition.clone(),
                deployment_properties: properties.clone(),
            })
        })
        .collect()
}

/// Whether the stream passes; its problems go to `problems`.
fn check_one(
    e: &StreamEntry,
    properties: &BTreeMap<String, String>,
    registrations: &BTreeMap<String, AppRegistrationSpec>,
    problems: &mut Problems,
) -> bool {
    let at = format!("{}: stream {}", e.origin, e.name);
    if !is_dns_label(&e.name, MAX_STREAM_NAME) {
        problems.error(format!(
            "{at}: the name must be a DNS label of at most {MAX_STREAM_NAME} characters starting with a \
             letter (lower-case letters, digits and `-`): rename the stream"
        ));
        return false;
    }
    let def = match eventflow_dsl::parse(&e.definition) {
        Ok(def) => def,
        Err(err) => {
            problems.error(format!(
                "{at}: the definition does not parse (pos {}): {}\n{}",
                err.position,
                err.message,
                caret(&e.definition, err.position)
            ));
            return false;
        }
    };
    // A registration missing from the import may be in the cluster already:
    // check the rest of the expansion with a stand-in.
    let mut known = registrations.clone();
    for key in dataflow::registration_names(&def) {
        if !known.contains_key(&key) {
            problems.warn(format!(
                "{at} needs AppRegistration {key}, not among --apps: register it before applying"
            ));
            known.insert(
                key.clone(),
                AppRegistrationSpec {
                    image: format!("unregistered/{key}"),
                    ..AppRegistrationSpec::default()
                },
            );
        }
    }
    match dataflow::expand(&e.name, &e.definition, properties, &known) {
        Ok(_) => true,
        Err(err) => {
            let mut message = format!("{at}: {}", err.message);
            if let Some(p) = err.position {
                message = format!(
                    "{at} (pos {p}): {}\n{}",
                    err.message,
                    caret(&e.definition, p)
                );
            }
            problems.error(message);
            false
        }
    }
}

/// The definition indented, and a caret under the character at `position`.
pub fn caret(definition: &str, position: usize) -> String {
    let first_line: String = definition.lines().next().unwrap_or_default().to_owned();
    format!("    {first_line}\n    {}^", " ".repeat(position))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_caret_points_at_the_position() {
        assert_eq!(caret("time | ", 7), "    time | \n           ^");
        assert_eq!(caret("x", 0), "    x\n    ^");
    }

    #[test]
    fn one_name_with_two_images_is_an_error() {
        let entry = |key: &str, image: &str| AppEntry {
            key: key.to_owned(),
            image: image.to_owned(),
            origin: "a:1".to_owned(),
        };
        let mut problems = Problems::default();
        let got = registrations(
            &[
                entry("source.time", "t:1"),
                entry("source.time", "t:1"),
                entry("sink.log", "l:1"),
                entry("sink.log", "l:2"),
            ],
            &mut problems,
        );
        assert_eq!(got.len(), 2);
        assert_eq!(got["source.time"].image, "t:1");
        assert_eq!(problems.errors.len(), 1);
        assert!(problems.errors[0].contains("`sink.log` is registered twice"));
    }

    #[test]
    fn names_duplicates_and_properties_of_unknown_streams_are_errors() {
        let stream = |name: &str| StreamEntry {
            name: name.to_owned(),
            definition: "time | log".to_owned(),
            origin: "s.txt:1".to_owned(),
        };
        let mut deployment = BTreeMap::new();
        deployment.insert(
            "nope".to_owned(),
            BTreeMap::from([("deployer.log.count".to_owned(), "2".to_owned())]),
        );
        let mut problems = Problems::default();
        let got = streams(
            &[
                stream("Bad_Name"),
                stream("a-very-long-stream-name-of-more-than-thirty"),
            ],
            &deployment,
            &BTreeMap::new(),
            &mut problems,
        );
        assert!(got.is_empty());
        let e = &problems.errors;
        assert!(e.iter().any(|m| m.contains("--properties nope=")), "{e:?}");
        assert!(
            e.iter()
                .any(|m| m.contains("stream Bad_Name: the name must be a DNS label"))
        );
        assert!(e
            .iter()
            .any(|m| m.contains("stream a-very-long-stream-name-of-more-than-thirty: the name")));

        let mut problems = Problems::default();
        streams(
            &[stream("twice"), stream("twice")],
            &BTreeMap::new(),
            &BTreeMap::new(),
            &mut problems,
        );
        assert!(
            problems
                .errors
                .iter()
                .any(|m| m.contains("stream twice is defined more than once"))
        );
    }

    fn registered() -> BTreeMap<String, AppRegistrationSpec> {
        let mut problems = Problems::default();
        let apps = super::super::apps::read(
            "source.time=docker:t:1\nprocessor.transform=docker:p:1\nsink.log=docker:l:1\n",
            "apps",
            &mut problems,
        );
        registrations(&apps, &mut problems)
    }

    fn check(
        name: &str,
        definition: &str,
        properties: &[(&str, &str)],
    ) -> (Vec<CheckedStream>, Problems) {
        let mut problems = Problems::default();
        let entry = StreamEntry {
            name: name.to_owned(),
            definition: definition.to_owned(),
            origin: "s".to_owned(),
        };
        let props: BTreeMap<String, String> = properties
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let deployment = BTreeMap::from([(name.to_owned(), props)]);
        let got = streams(&[entry], &deployment, &registered(), &mut problems);
        (got, problems)
    }

    #[test]
    fn a_stream_that_expands_passes_with_its_properties() {
        let (got, problems) = check(
            "ticktock",
            "time | transform --expression=payload.toUpperCase() | log",
            &[("deployer.log.count", "2")],
        );
        assert!(problems.errors.is_empty(), "{:?}", problems.errors);
        assert!(problems.warnings.is_empty(), "{:?}", problems.warnings);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].deployment_properties["deployer.log.count"], "2");
    }

    #[test]
    fn a_missing_registration_is_a_warning_and_the_stream_is_kept() {
        let (got, problems) = check("audit", ":ticktock.transform > counter", &[]);
        assert!(problems.errors.is_empty(), "{:?}", problems.errors);
        assert_eq!(got.len(), 1);
        assert_eq!(
            problems.warnings,
            [
                "s: stream audit needs AppRegistration sink.counter, not among --apps: register it before applying"
            ]
        );
    }

    #[test]
    fn parse_and_expansion_errors_name_the_stream() {
        let (got, problems) = check("broken", "time | ", &[]);
        assert!(got.is_empty());
        assert!(
            problems.errors[0]
                .starts_with("s: stream broken: the definition does not parse (pos 7)")
        );
        assert!(problems.errors[0].ends_with("    time | \n           ^"));

        let (got, problems) = check(
            "ticktock",
            "time | log",
            &[("deployer.log.kubernetes.foo", "1")],
        );
        assert!(got.is_empty());
        assert!(problems.errors[0].contains("stream ticktock"));
        assert!(
            problems.errors[0]
                .contains("unsupported deployment property `deployer.log.kubernetes.foo`")
        );
    }
}
