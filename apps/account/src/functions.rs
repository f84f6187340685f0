//! The account context's action-mapped functions: on ACCOUNT_CREATED mark
//! the account pending then confirm it; on ACCOUNT_CONFIRMED activate it.
//! Each follows the event's links to the account and its commands.

use eventflow_runtime::{
    cloudevent::CloudEvent,
    functions::{Function, FunctionFuture, HalClient, Registry},
};

use crate::account::{ACCOUNT_CONFIRMED, ACCOUNT_CREATED};

fn account_created(client: HalClient, event: CloudEvent) -> FunctionFuture {
    Box::pin(async move {
        client
            .run_offered_commands(&event, &["markPending", "confirm"])
            .await
    })
}

fn account_confirmed(client: HalClient, event: CloudEvent) -> FunctionFuture {
    Box::pin(async move { client.run_offered_commands(&event, &["activate"]).await })
}

pub fn registry() -> Registry {
    Registry {
        functions: vec![
            Function {
                name: "accountCreated",
                triggers: &[ACCOUNT_CREATED],
                run: account_created,
            },
            Function {
                name: "accountConfirmed",
                triggers: &[ACCOUNT_CONFIRMED],
                run: account_confirmed,
            },
        ],
    }
}
