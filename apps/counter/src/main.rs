//! `counter [all|web|worker]` — counts events by type on the destinations
//! of `EVENTFLOW_BINDINGS` (standalone: account, order, payment, warehouse)
//! and serves the counts; every role runs both halves (Combined).

use eventflow_runtime::{app, config::Config};

fn main() -> std::process::ExitCode {
    app::init_logs();
    let role = std::env::args().nth(1);
    let standalone = eventflow_counter::standalone();
    let config = match Config::from_env(eventflow_counter::APP, role.as_deref(), &standalone) {
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
    match runtime.block_on(eventflow_counter::run::run(config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "stopped on error");
            std::process::ExitCode::FAILURE
        }
    }
}
