//! `load-simulator [web|all]` — serves the run API on `EVENTFLOW_HTTP_ADDR`
//! and drives the web roles of `EVENTFLOW_PEER_{ORDER,WAREHOUSE,ACCOUNT}_URL`.

use eventflow_runtime::config::Standalone;

fn main() -> std::process::ExitCode {
    let role = std::env::args().nth(1);
    // No broker topology of its own: it publishes and consumes nothing.
    let standalone = Standalone {
        publishes: vec![],
        subscribes: vec![],
    };
    eventflow_runtime::app::main_with(
        eventflow_load_simulator::APP,
        role.as_deref(),
        &standalone,
        eventflow_load_simulator::serve::run,
    )
}
