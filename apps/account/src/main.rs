//! `account [web|worker|all|functions]` — the role comes from the first
//! argument, else `EVENTFLOW_ROLE`, else `all`. `account openapi` prints the
//! OpenAPI document (committed as `apps/account/openapi.json`).

fn main() -> std::process::ExitCode {
    let role = std::env::args().nth(1);
    if role.as_deref() == Some("openapi") {
        println!("{}", eventflow_account::openapi_json());
        return std::process::ExitCode::SUCCESS;
    }
    eventflow_runtime::app::main(eventflow_account::spec(), role.as_deref())
}
