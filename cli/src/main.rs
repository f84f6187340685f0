//! `kubectl eventflow`: the kubectl plugin of eventflow. kubectl runs any
//! `kubectl-eventflow` on the PATH as `kubectl eventflow`.
//!
//! - `dsl parse`: a Spring Cloud Data Flow stream definition's parse, as JSON;
//! - `import`: a Data Flow user's stream definitions, app registrations and
//!   deployment properties as AppRegistration and Stream manifests;
//! - `dlq list|show|redrive`: a Stream's dead letters per consumer group,
//!   listed or put back through `DeadLetterRedrive`s (the operator moves them).

mod cluster;
mod dlq;
mod dsl_cmd;
mod import;

use std::{io::Write, path::PathBuf, process::ExitCode};

use clap::{Args, Parser, Subcommand};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  import: an input is unreadable or a stream would not run (every problem is on stderr; nothing is written)
  2  usage error; dsl parse: the definition does not parse";

#[derive(Parser, Debug)]
#[command(
    name = "kubectl-eventflow",
    bin_name = "kubectl eventflow",
    version,
    about = "eventflow for kubectl: Spring Cloud Data Flow stream definitions on Kubernetes",
    long_about = "eventflow for kubectl: Spring Cloud Data Flow stream definitions on Kubernetes.\n\n\
        Parse a Data Flow stream definition (`dsl parse`), or turn what a Data Flow user has \
        (stream definitions, app registrations, deployment properties) into AppRegistration and \
        Stream manifests for the eventflow operator (`import`).",
    after_help = EXIT_CODES,
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The Data Flow stream DSL.
    #[command(
        subcommand,
        after_help = "Exit codes:\n  0  success\n  2  the definition does not parse, or a usage error"
    )]
    Dsl(DslCommand),
    /// Data Flow stream definitions, app registrations and deployment properties as eventflow manifests.
    #[command(after_help = IMPORT_HELP)]
    Import(ImportArgs),
    /// Dead letters of a Stream's consumer groups: count, list, put back.
    #[command(subcommand)]
    Dlq(dlq::DlqCommand),
    /// Print the version of kubectl-eventflow.
    Version,
}

#[derive(Subcommand, Debug)]
enum DslCommand {
    /// Parse a stream definition and print its model as JSON.
    #[command(
        long_about = "Parse a Spring Cloud Data Flow stream definition and print its model as JSON on stdout \
            (apps with name, label and properties; source and sink destinations; unbound).\n\n\
            A definition that does not parse prints {\"error\":{\"position\":N,\"message\":\"...\"}} on stdout \
            (N: 0-based character offset) and exits 2.",
        after_help = "Examples:\n  \
            kubectl eventflow dsl parse 'time | transform --expression=payload.toUpperCase() | log'\n  \
            kubectl eventflow dsl parse ':ticktock.transform > log'\n\n\
            Exit codes:\n  0  the definition parses (its model is on stdout)\n  \
            2  it does not (the error is on stdout as JSON), or a usage error"
    )]
    Parse {
        /// The stream definition, e.g. 'time | log' (quote it for the shell).
        definition: String,
    },
}

const IMPORT_HELP: &str = "\
Input formats:
  --definitions FILE  JSON of Data Flow's REST GET /streams/definitions (a HAL page:
                      _embedded.streamDefinitionResourceList, each stream's originalDslText, else
                      dslText), e.g.
                        curl -s 'http://dataflow:9393/streams/definitions?size=2000' > streams.json
                      or text, one stream a line (blank lines, // and # comments skipped):
                        ticktock = time | transform --expression=payload.toUpperCase() | log
                      or Data Flow shell lines:
                        stream create --name ticktock --definition \"time | log\" --deploy
  --apps FILE         app registrations as Data Flow's `app import` takes them (Java properties):
                        source.time=docker:springcloudstream/time-source-rabbit:5.0.0
                      <type>.<name>.metadata and .bootVersion lines are skipped; only docker: URIs
                      can run on Kubernetes (maven:, file:, http: are errors).
  --properties STREAM=FILE
                      Data Flow deployment properties of STREAM (Java properties), e.g.
                        deployer.log.count=2
                        deployer.*.kubernetes.limits.memory=512Mi
                        app.time.date-format=yyyy-MM-dd

Every stream is checked as the operator will check it (name, definition, apps, properties) before
anything is written; an app whose registration is not among --apps is a warning (register it before
applying). Output: AppRegistrations, then Streams, as YAML documents for `kubectl apply -f`.

Example:
  kubectl eventflow import --definitions streams.json --apps apps.properties \\
      --properties ticktock=ticktock.properties --namespace demo | kubectl apply -f -

Exit codes:
  0  the manifests are written (warnings, if any, on stderr)
  1  an input is unreadable or a stream would not run: every problem on stderr, nothing written
  2  usage error";

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("input").required(true).multiple(true).args(["definitions", "apps"])))]
struct ImportArgs {
    /// Stream definitions: Data Flow's /streams/definitions JSON, `name = definition` lines or
    /// `stream create` shell lines (repeatable).
    #[arg(long = "definitions", value_name = "FILE")]
    definitions: Vec<PathBuf>,

    /// App registrations, `<type>.<name>=docker:<image>` lines as for Data Flow's `app import`
    /// (repeatable).
    #[arg(long = "apps", value_name = "FILE")]
    apps: Vec<PathBuf>,

    /// Data Flow deployment properties of one stream, e.g. ticktock=ticktock.properties (repeatable).
    #[arg(long = "properties", value_name = "STREAM=FILE", value_parser = import::parse_stream_file)]
    properties: Vec<(String, PathBuf)>,

    /// Namespace of every manifest.
    #[arg(long, short = 'n', default_value = "default")]
    namespace: String,

    /// The EventBroker (same namespace) the Streams use.
    #[arg(long, default_value = "rabbit")]
    broker: String,

    /// Write the manifests to FILE instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Dsl(DslCommand::Parse { definition }) => {
            let (json, code) = dsl_cmd::parse(&definition);
            println!("{json}");
            ExitCode::from(code)
        }
        Command::Import(args) => import_command(args),
        Command::Dlq(command) => cluster::run(dlq::run(command)),
        Command::Version => {
            println!("kubectl-eventflow {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
    }
}

fn import_command(args: ImportArgs) -> ExitCode {
    let inputs = import::Inputs {
        definitions: args.definitions,
        apps: args.apps,
        properties: args.properties,
        namespace: args.namespace,
        broker: args.broker,
    };
    let mut problems = import::Problems::default();
    let result = import::run(&inputs, &mut problems);
    for w in &problems.warnings {
        eprintln!("warning: {w}");
    }
    for e in &problems.errors {
        eprintln!("error: {e}");
    }
    let written = result.and_then(|yaml| match &args.output {
        Some(path) => std::fs::write(path, yaml)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display())),
        None => std::io::stdout()
            .write_all(yaml.as_bytes())
            .map_err(anyhow::Error::from),
    });
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
