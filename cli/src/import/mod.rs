//! `kubectl eventflow import`: a Data Flow user's stream definitions, app
//! registrations and deployment properties as eventflow manifests. Every
//! input is read and every stream checked the way the operator will before
//! anything is written: an import either writes everything or nothing.

pub mod apps;
pub mod check;
pub mod definitions;
pub mod properties;
pub mod write;

use std::{collections::BTreeMap, path::PathBuf};

use anyhow::{Context, bail};

/// Errors and warnings of an import, each a line naming its file, line or stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Problems {
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

impl Problems {
    pub fn error(&mut self, message: String) {
        self.errors.push(message);
    }
    pub fn warn(&mut self, message: String) {
        self.warnings.push(message);
    }
}

pub use eventflow_operator::api::is_dns_label;

/// What `import` reads, already out of the command line.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    pub definitions: Vec<PathBuf>,
    pub apps: Vec<PathBuf>,
    /// `(stream, file)` of each `--properties STREAM=FILE`.
    pub properties: Vec<(String, PathBuf)>,
    pub namespace: String,
    pub broker: String,
}

/// `STREAM=FILE` of `--properties`.
pub fn parse_stream_file(arg: &str) -> Result<(String, PathBuf), String> {
    match arg.split_once('=') {
        Some((stream, file)) if !stream.is_empty() && !file.is_empty() => {
            Ok((stream.to_owned(), PathBuf::from(file)))
        }
        _ => Err(format!(
            "`{arg}`: expected STREAM=FILE, e.g. ticktock=ticktock.properties"
        )),
    }
}

/// Reads every input and checks it; the manifests as YAML, or every problem.
/// Warnings are in `problems` either way.
pub fn run(inputs: &Inputs, problems: &mut Problems) -> anyhow::Result<String> {
    if !is_dns_label(&inputs.namespace, 63) {
        problems.error(format!(
            "--namespace `{}` is not a DNS label",
            inputs.namespace
        ));
    }
    if !is_dns_label(&inputs.broker, eventflow_operator::api::MAX_BROKER_NAME) {
        problems.error(format!(
            "--broker `{}` is not a DNS label of at most {} characters",
            inputs.broker,
            eventflow_operator::api::MAX_BROKER_NAME
        ));
    }

    let mut streams = Vec::new();
    for path in &inputs.definitions {
        let text = read_file(path)?;
        streams.extend(definitions::read(
            &text,
            &path.display().to_string(),
            problems,
        ));
    }
    let mut apps = Vec::new();
    for path in &inputs.apps {
        let text = read_file(path)?;
        apps.extend(apps::read(&text, &path.display().to_string(), problems));
    }
    let mut deployment: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (stream, path) in &inputs.properties {
        let text = read_file(path)?;
        let entries = properties::parse(&text);
        deployment
            .entry(stream.clone())
            .or_default()
            .extend(properties::to_map(&entries));
    }

    let registrations = check::registrations(&apps, problems);
    let checked = check::streams(&streams, &deployment, &registrations, problems);
    if !problems.errors.is_empty() {
        bail!("{} problem(s); nothing was written", problems.errors.len());
    }
    write::manifests(&registrations, &checked, &inputs.namespace, &inputs.broker)
}

fn read_file(path: &PathBuf) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}
