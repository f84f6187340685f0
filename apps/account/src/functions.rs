//! The account context's action-mapped functions: on ACCOUNT_CREATED mark
//! the account pending then confirm it; on ACCOUNT_CONFIRMED activate it.
//! Each follows the event's links to the account and its commands.

use eventflow_runtime::{
    cloudevent::CloudEvent,
    consumer::HandlerError,
    functions::{Function, Outcome, Registry, run_offered_commands},
};

use crate::account::{ACCOUNT_CONFIRMED, ACCOUNT_CREATED};

async fn account_created(event: CloudEvent) -> Result<Outcome, HandlerError> {
    run_offered_commands(&event, &["markPending", "confirm"]).await
}

async fn account_confirmed(event: CloudEvent) -> Result<Outcome, HandlerError> {
    run_offered_commands(&event, &["activate"]).await
}

pub fn registry() -> Registry {
    Registry {
        functions: vec![
            Function::new("accountCreated", &[ACCOUNT_CREATED], account_created),
            Function::new("accountConfirmed", &[ACCOUNT_CONFIRMED], account_confirmed),
        ],
    }
}
