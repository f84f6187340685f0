//! What every command that talks to the cluster shares: the client (from
//! the kubeconfig or the in-cluster account, as kubectl finds it), the
//! namespace, and how data is printed (`-o table|json|yaml`).

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use kube::{Client, Config, config::KubeConfigOptions};

/// `--namespace`, `--context` and `--kubeconfig`, as kubectl spells them.
#[derive(Args, Debug, Clone)]
pub struct Target {
    /// Namespace of the Stream (default: the kubeconfig context's namespace, else `default`).
    #[arg(long, short = 'n', global = true)]
    pub namespace: Option<String>,

    /// kubeconfig context to use (default: the current context).
    #[arg(long, global = true)]
    pub context: Option<String>,
}

/// A connected client and the namespace the command works in.
pub struct Cluster {
    pub client: Client,
    pub namespace: String,
}

impl Target {
    /// The client of the kubeconfig (`KUBECONFIG`, `~/.kube/config`) or, in a
    /// pod, of its service account.
    pub async fn connect(&self) -> anyhow::Result<Cluster> {
        let options = KubeConfigOptions {
            context: self.context.clone(),
            ..Default::default()
        };
        let config = match Config::from_kubeconfig(&options).await {
            Ok(config) => config,
            Err(kubeconfig) => Config::incluster().map_err(|_| {
                anyhow::anyhow!("no cluster to talk to: {kubeconfig} (set KUBECONFIG or --context)")
            })?,
        };
        let namespace = self
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        let client = Client::try_from(config).context("cannot build a Kubernetes client")?;
        Ok(Cluster { client, namespace })
    }
}

/// How a command prints data.
#[derive(ValueEnum, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Output {
    /// A table or tree for people (default).
    #[default]
    Table,
    Json,
    Yaml,
}

/// Prints `value` as JSON or YAML; `Output::Table` is the caller's to draw.
pub fn print_data<T: serde::Serialize>(output: Output, value: &T) -> anyhow::Result<()> {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(value)?),
        Output::Yaml => print!("{}", serde_yaml::to_string(value)?),
        Output::Table => anyhow::bail!("print_data: a table is drawn by its command"),
    }
    Ok(())
}

/// Runs an async command on a runtime of its own, turning its error into a
/// message on stderr and exit code 1.
pub fn run<F: std::future::Future<Output = anyhow::Result<()>>>(f: F) -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(f) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
