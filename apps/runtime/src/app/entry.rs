//! The whole `main` of an app binary: JSON logs, the configuration from
//! the environment, an async runtime, and the exit code.

use crate::config::{Config, Standalone};

use super::{AppSpec, run};

/// JSON logs on stderr; `RUST_LOG` filters (default `info`).
pub fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The whole `main` of an app binary: JSON logs, configuration from the
/// environment (`role` is the command-line role, which wins over
/// `EVENTFLOW_ROLE`), then [`run`] until shutdown. Exit code 2 for a bad
/// configuration, 1 for a failure.
pub fn main(spec: AppSpec, role: Option<&str>) -> std::process::ExitCode {
    main_with(spec.name, role, &spec.standalone(), |config| {
        run(spec, config)
    })
}

/// [`main`] for an app that runs its own processes instead of [`run`]
/// (the counter, the load simulator).
pub fn main_with<F, Fut>(
    app: &str,
    role: Option<&str>,
    standalone: &Standalone,
    run: F,
) -> std::process::ExitCode
where
    F: FnOnce(Config) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    init_logs();
    let config = match Config::from_env(app, role, standalone) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "invalid configuration");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "stopped on error");
            std::process::ExitCode::FAILURE
        }
    }
}
