//! `payment [web|worker|all|functions]` — the role comes from the first
//! argument, else `EVENTFLOW_ROLE`, else `all`.

/// mimalloc: glibc malloc took a seventh of the CPU of our apps under load.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let role = std::env::args().nth(1);
    eventflow_runtime::app::main(eventflow_payment::spec(), role.as_deref())
}
