//! `warehouse [web|worker|all|functions]` — the role comes from the first
//! argument, else `EVENTFLOW_ROLE`, else `all`.

fn main() -> std::process::ExitCode {
    let role = std::env::args().nth(1);
    eventflow_runtime::app::main(eventflow_warehouse::spec(), role.as_deref())
}
