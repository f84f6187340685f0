//! `kubectl eventflow`: the kubectl plugin of eventflow. kubectl runs any
//! `kubectl-eventflow` on the PATH as `kubectl eventflow`.
//!
//! - `dsl parse`: a Spring Cloud Data Flow stream definition's parse, as JSON;
//! - `import`: a Data Flow user's stream definitions, app registrations and
//!   deployment properties as AppRegistration and Stream manifests;
//! - `history`, `rollback`: a Stream's revisions, and a rollback to one;
//! - `suspend`, `resume`, `scale`: a Stream's `spec.suspend` and replicas;
//! - `list`, `describe`: the Streams of a cluster, one Stream as a tree;
//! - `dlq list|show|redrive`: a Stream's dead letters per consumer group,
//!   listed or put back through `DeadLetterRedrive`s (the operator moves them).

mod cluster;
mod describe;
mod dlq;
mod dsl_cmd;
mod history;
mod import;
mod list;
mod render;
mod rollback;
mod scale;
mod suspend;

use std::{io::Write, path::PathBuf, process::ExitCode};

use clap::{Args, Parser, Subcommand};
use cluster::Target;

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
    /// A Stream's revisions (or one revision's spec with --revision N).
    #[command(after_help = history::HELP)]
    History(history::HistoryArgs),
    /// Roll a Stream back to an earlier revision (default: the one before the current one).
    #[command(after_help = rollback::HELP)]
    Rollback(rollback::RollbackArgs),
    /// Suspend a Stream: drain its workers, then its web roles, and scale each to zero once drained.
    #[command(after_help = SUSPEND_HELP)]
    Suspend(SuspendArgs),
    /// Resume a suspended Stream: the spec's replicas again; what waited in the queues is processed.
    #[command(after_help = RESUME_HELP)]
    Resume(SuspendArgs),
    /// Set the replicas of apps' roles in a Stream's spec.
    #[command(after_help = SCALE_HELP)]
    Scale(ScaleArgs),
    /// List the Streams with their phase, ready apps, backlog, dead letters and revision.
    #[command(after_help = list::HELP)]
    List(list::ListArgs),
    /// Show one Stream as a tree: apps, roles, destinations, consumer groups with their backlog and DLQ.
    #[command(after_help = describe::HELP)]
    Describe(describe::DescribeArgs),
    /// Dead letters of a Stream's consumer groups: count, list, put back.
    #[command(subcommand)]
    Dlq(dlq::DlqCommand),
    /// Print the version of kubectl-eventflow.
    Version,
}

const SUSPEND_HELP: &str = "\
Sets spec.suspend: true (as `kubectl patch stream STREAM --type merge -p '{\"spec\":{\"suspend\":true}}'`).
The operator asks each worker pod to stop taking messages and to finish and acknowledge the ones it
holds, scales the workers to zero, then drains the web roles (commands refused with 503, the outbox
relayed) and scales them to zero. Messages published meanwhile wait in their queues. The Stream's
phase is Suspended; its Suspended condition says Draining (what is left, per pod), Drained, or
DrainTimedOut after spec.drainTimeoutSeconds (default 300; then everything is scaled to zero anyway).

Examples:
  kubectl eventflow suspend shop -n demo
  kubectl eventflow suspend shop -n demo --wait --timeout 10m

Exit codes:
  0  spec.suspend is set (with --wait: the Stream is drained)
  1  no such Stream or no cluster; with --wait: the drain timed out (DrainTimedOut) or --timeout passed
  2  usage error";

const RESUME_HELP: &str = "\
Sets spec.suspend: false. The Deployments get the spec's replicas again (a `scale` made while
suspended included), the Suspended condition goes False (reason Resumed), and the phase goes
through Deploying to Running; what was published meanwhile is processed.

Examples:
  kubectl eventflow resume shop -n demo
  kubectl eventflow resume shop -n demo --wait

Exit codes:
  0  spec.suspend is false (with --wait: the Stream is Running)
  1  no such Stream or no cluster; with --wait: not Running within --timeout
  2  usage error";

const SCALE_HELP: &str = "\
Writes the replicas into the Stream's spec, where the operator reads them:
  APP/web=N, APP/worker=N   spec.apps[APP].web.replicas / .worker.replicas
  APP=N                     the app's only role; a Combined app's one Deployment (its web replicas)
  LABEL=N                   a Stream made from a definition: deployer.LABEL.count in
                            spec.deploymentProperties
N is 0 to 100. A suspended Stream keeps them for its resume.

Examples:
  kubectl eventflow scale shop order/worker=3 -n demo
  kubectl eventflow scale shop order/web=2 order/worker=4 audit=0
  kubectl eventflow scale ticktock log=2

Exit codes:
  0  the replicas are written
  1  no such Stream, app or role, the Stream changed meanwhile, or no cluster (nothing is written)
  2  usage error (e.g. N out of range)";

/// The arguments of `suspend` and `resume`.
#[derive(Args, Debug)]
struct SuspendArgs {
    /// The Stream.
    stream: String,
    /// Follow the Stream: `suspend` until it is drained (or the drain times out), `resume` until
    /// it is Running.
    #[arg(long)]
    wait: bool,
    /// With --wait: give up waiting after this long (e.g. 90s, 10m).
    #[arg(long, value_name = "DUR", default_value = "10m", value_parser = suspend::parse_duration)]
    timeout: std::time::Duration,
    #[command(flatten)]
    target: Target,
}

#[derive(Args, Debug)]
struct ScaleArgs {
    /// The Stream.
    stream: String,
    /// APP[/ROLE]=N, one or more (ROLE: web or worker).
    #[arg(required = true, value_name = "APP[/ROLE]=N", value_parser = scale::parse_assignment)]
    replicas: Vec<scale::Assignment>,
    #[command(flatten)]
    target: Target,
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
        Command::History(args) => history::run(args),
        Command::Rollback(args) => rollback::run(args),
        Command::Suspend(a) => {
            cluster::run(suspend::suspend(&a.target, &a.stream, a.wait, a.timeout))
        }
        Command::Resume(a) => {
            cluster::run(suspend::resume(&a.target, &a.stream, a.wait, a.timeout))
        }
        Command::Scale(a) => cluster::run(scale::scale(&a.target, &a.stream, &a.replicas)),
        Command::List(args) => cluster::run(list::run(args)),
        Command::Describe(args) => cluster::run(describe::run(args)),
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
