//! `kubectl eventflow rollback STREAM [--to-revision N]`: the Stream's spec
//! set back to an earlier revision's, through the API, the way `kubectl
//! rollout undo` does it for a Deployment (see
//! `eventflow_operator::revision::rollback`, which this runs).

use clap::Args;
use eventflow_operator::revision::rollback::rollback;

use crate::cluster::Target;

pub const HELP: &str = "\
Writes the Stream's spec back to the user spec recorded in an earlier revision (a definition Stream
gets its definition and deploymentProperties back), keeps spec.suspend, drainTimeoutSeconds and
revisionHistoryLimit as they are, and sets the annotation
eventflow.dev/change-cause=\"rollback to revision N\". The operator then deploys it and records it as
the newest revision (a rollback is a revision too; the numbers only grow): follow it with
`kubectl eventflow history STREAM` or `kubectl get stream STREAM -o wide`.

Without --to-revision: the newest revision before the current one whose spec differs; when the
Stream's spec is no revision's yet (an edit not deployed, e.g. an invalid one), the newest revision.
A definition Stream is expanded again with today's AppRegistrations.

Examples:
  kubectl eventflow rollback shop -n demo
  kubectl eventflow rollback shop -n demo --to-revision 3

Exit codes:
  0  the Stream's spec is the revision's now
  1  the Stream or the revision does not exist, the Stream is at that revision already, it has no
     earlier revision, it changed while rolling back (run it again), or the cluster cannot be reached
  2  usage error";

#[derive(Args, Debug)]
pub struct RollbackArgs {
    /// Name of the Stream.
    pub stream: String,

    /// Revision to roll back to (default: the one before the current one).
    #[arg(long, value_name = "N")]
    pub to_revision: Option<i64>,

    #[command(flatten)]
    pub target: Target,
}

pub fn run(args: RollbackArgs) -> std::process::ExitCode {
    crate::cluster::run(async move {
        let cluster = args.target.connect().await?;
        let ns = cluster.namespace.as_str();
        let done = rollback(&cluster.client, ns, &args.stream, args.to_revision).await?;
        let was = done
            .from
            .map(|n| format!(" (was at revision {n})"))
            .unwrap_or_default();
        println!(
            "stream.eventflow.dev/{} in {ns} rolled back to revision {}{was}; change-cause: {}",
            args.stream, done.to, done.change_cause
        );
        for change in &done.changes {
            println!("  {change}");
        }
        println!(
            "The operator deploys it as the next revision: kubectl eventflow history {} -n {ns}",
            args.stream
        );
        Ok(())
    })
}
