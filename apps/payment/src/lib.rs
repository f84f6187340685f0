//! The payment bounded context on the eventflow runtime: the payment aggregate
//! ([`payment`]), its action-mapped functions ([`functions`]) and the
//! [`spec`] that hands both to the runtime for every role.

pub mod functions;
pub mod payment;

use axum::Router;
use eventflow_contract::bindings::SubscriptionRequest;
use eventflow_runtime::{
    Aggregate,
    app::{AppSpec, Retry, Worker},
    openapi::OpenApi,
    web::{WebContext, aggregate_routes},
};

pub use payment::Payment;

pub const APP: &str = "payment";

/// The payment context: its worker runs its functions on the events of its
/// own destination that trigger one, retrying like every saga step.
pub fn spec() -> AppSpec {
    let worker = Worker::triggered_by("payment-worker", Payment::KIND, Retry::SAGA_STEP);
    AppSpec::new(APP, "payment", worker)
        .web(routes, openapi, collection_of)
        .functions(functions::registry)
}

pub fn routes() -> Router<WebContext> {
    aggregate_routes::<Payment>()
}

pub fn openapi() -> serde_json::Value {
    OpenApi::new("eventflow payment")
        .aggregate::<Payment>()
        .build()
}

fn collection_of(_aggregate: &str) -> &'static str {
    "payments"
}

/// The worker's subscription, as the operator's Stream should declare it.
pub fn subscription() -> SubscriptionRequest<'static> {
    spec().subscription()
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE_STREAM: &str = include_str!("../../../examples/30-ecommerce.yaml");

    #[test]
    fn the_worker_subscribes_to_exactly_the_events_that_trigger_its_functions() {
        let keys = subscription().routing_keys;
        assert_eq!(keys, functions::registry().trigger_keys("payment"));
    }

    #[test]
    fn every_step_a_payment_waits_for_is_driven_by_an_event_its_worker_subscribes_to() {
        let keys = subscription().routing_keys;
        for status in payment::EVENT_TYPES {
            let payment = Payment {
                status: (*status).to_owned(),
                ..Payment::default()
            };
            if let Some(awaits) = payment.in_flight() {
                assert!(
                    keys.contains(&format!("payment.{awaits}")),
                    "{status}: {awaits}"
                );
            }
        }
    }

    #[test]
    fn the_example_stream_binds_exactly_the_events_that_trigger_its_functions() {
        let (example, wanted) = (EXAMPLE_STREAM, spec().event_types_line());
        assert!(example.contains(&wanted), "the payment worker: {wanted}");
    }
}
