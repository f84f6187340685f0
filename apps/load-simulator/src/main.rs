//! `load-simulator [web|all]` — serves the run API on `EVENTFLOW_HTTP_ADDR`
//! and drives the web roles of `EVENTFLOW_PEER_{ORDER,WAREHOUSE,ACCOUNT}_URL`.

use eventflow_runtime::{
    app,
    config::{Config, Standalone},
};

fn main() -> std::process::ExitCode {
    app::init_logs();
    let role = std::env::args().nth(1);
    let standalone = Standalone {
        publishes: vec![],
        subscribes: vec![],
    };
    let config = match Config::from_env(eventflow_load_simulator::APP, role.as_deref(), &standalone)
    {
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
    match runtime.block_on(eventflow_load_simulator::serve::run(config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "stopped on error");
            std::process::ExitCode::FAILURE
        }
    }
}
