//! `counter [all|web|worker]` — counts events by type and destination on the destinations
//! of `EVENTFLOW_BINDINGS` (standalone: account, order, payment, warehouse)
//! and serves the counts; every role runs both halves (Combined).

fn main() -> std::process::ExitCode {
    let role = std::env::args().nth(1);
    eventflow_runtime::app::main_with(
        eventflow_counter::APP,
        role.as_deref(),
        &eventflow_counter::standalone(),
        eventflow_counter::run::run,
    )
}
