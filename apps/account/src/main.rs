//! `account [web|worker|all|functions]` — the role comes from the first
//! argument, else `EVENTFLOW_ROLE`, else `all`. `account openapi` prints the
//! OpenAPI document (committed as `apps/account/openapi.json`).

use eventflow_runtime::{app, config::Config};

fn main() -> std::process::ExitCode {
    let role = std::env::args().nth(1);
    if role.as_deref() == Some("openapi") {
        println!("{}", eventflow_account::openapi_json());
        return std::process::ExitCode::SUCCESS;
    }
    app::init_logs();
    let spec = eventflow_account::spec();
    let config = match Config::from_env(eventflow_account::APP, role.as_deref(), &spec.standalone) {
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
    match runtime.block_on(app::run(spec, config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "stopped on error");
            std::process::ExitCode::FAILURE
        }
    }
}
