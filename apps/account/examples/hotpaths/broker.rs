//! The broker objects of the run: each path's topology under a fresh
//! namespace (the account app's, as it declares it standalone), filling a
//! queue, its depth, and deleting everything at the end.

use eventflow_contract::Bindings;
use eventflow_runtime::testing::unique_namespace;

pub(crate) use crate::scratch::Scratch as Broker;

/// One path's topology: the account destination's exchange and the
/// account worker's group queue bound to it (`account.*`).
pub(crate) struct Ours {
    pub(crate) bindings: Bindings,
    pub(crate) exchange: String,
    pub(crate) queue: String,
}

impl Broker {
    /// The account app's topology under a fresh namespace.
    pub(crate) async fn declare_account(&mut self) -> Ours {
        let spec = eventflow_account::spec();
        let bindings = Bindings::standalone(
            &unique_namespace(),
            &[spec.destination],
            &[spec.subscription()],
        );
        self.declare(&bindings).await;
        Ours {
            exchange: bindings.exchange_for(spec.destination).unwrap().to_owned(),
            queue: bindings.subscribes[0].queue.clone(),
            bindings,
        }
    }
}
