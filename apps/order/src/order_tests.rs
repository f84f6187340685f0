use eventflow_runtime::aggregate::replay;

use super::*;

fn item(product: &str, quantity: u32) -> LineItem {
    LineItem {
        name: format!("{product} widget"),
        product_id: product.into(),
        quantity,
        price: 10.0,
        tax: 0.5,
    }
}

struct History(Vec<RecordedEvent>);

impl History {
    fn new(items: Vec<LineItem>, method: &str) -> Self {
        let input = NewOrder {
            account_id: "a1".into(),
            line_items: items,
            shipping_address: json!("1 Main St"),
            payment_method: Some(method.into()),
        };
        let events = Order::create("o1", input)
            .unwrap()
            .events
            .iter()
            .map(|e| e.at_version("order", "o1", 1))
            .collect();
        Self(events)
    }
    fn state(&self) -> Order {
        replay(&self.0).unwrap()
    }
    fn run(&mut self, command: &str, input: Value) -> Result<(), DomainError> {
        for e in self.state().execute(command, &input)? {
            let v = self.0.len() as i64 + 1;
            self.0.push(e.at_version("order", "o1", v));
        }
        Ok(())
    }
    fn reserve(&mut self, id: &str, outcome: &str) -> Result<(), DomainError> {
        self.run(
            "addReservation",
            json!({ "reservationId": id, "outcome": outcome, "href": format!("http://w/v1/reservations/{id}") }),
        )
    }
}

#[test]
fn the_total_is_price_plus_tax_times_quantity() {
    let h = History::new(vec![item("p1", 2), item("p2", 1)], "CARD");
    assert_eq!(h.state().total, 31.5);
    assert_eq!(h.state().status, ORDER_CREATED);
}

#[test]
fn the_happy_path_leads_to_order_succeeded() {
    let mut h = History::new(vec![item("p1", 2)], "CARD");
    h.run("connectAccount", Value::Null).unwrap();
    h.run("reserveInventory", Value::Null).unwrap();
    assert_eq!(h.state().expected_reservations, 2);
    h.reserve("o1-0-0", SUCCEEDED).unwrap();
    // Not every outcome is in: completing now is refused.
    assert!(matches!(
        h.run("completeReservation", Value::Null),
        Err(DomainError::Forbidden { .. })
    ));
    h.reserve("o1-0-1", SUCCEEDED).unwrap();
    assert_eq!(h.state().commands(), ["completeReservation"]);
    h.run("completeReservation", Value::Null).unwrap();
    assert_eq!(h.state().status, RESERVATION_SUCCEEDED);
    h.run(
        "createPayment",
        json!({ "paymentId": "p", "paymentHref": "http://p/v1/payments/p" }),
    )
    .unwrap();
    h.run("connectPayment", Value::Null).unwrap();
    h.run("processPayment", Value::Null).unwrap();
    assert_eq!(h.state().status, PAYMENT_PENDING);
    h.run(
        "processPayment",
        json!({ "paymentStatus": PAYMENT_SUCCEEDED }),
    )
    .unwrap();
    h.run("completeOrder", Value::Null).unwrap();
    assert_eq!(h.state().status, ORDER_SUCCEEDED);
    assert!(h.state().commands().is_empty());
}

#[test]
fn one_failed_reservation_fails_the_reservation_and_then_the_order() {
    let mut h = History::new(vec![item("p1", 2)], "CARD");
    h.run("connectAccount", Value::Null).unwrap();
    h.run("reserveInventory", Value::Null).unwrap();
    h.reserve("o1-0-0", SUCCEEDED).unwrap();
    h.reserve("o1-0-1", FAILED).unwrap();
    h.run("completeReservation", Value::Null).unwrap();
    assert_eq!(h.state().status, RESERVATION_FAILED);
    assert_eq!(h.state().commands(), ["completeOrder"]);
    h.run("completeOrder", Value::Null).unwrap();
    assert_eq!(h.state().status, ORDER_FAILED);
    assert_eq!(
        h.state().failure_reason.as_deref(),
        Some("1 of 2 units out of stock")
    );
}

#[test]
fn a_reservation_is_recorded_once_and_only_for_this_order() {
    let mut h = History::new(vec![item("p1", 2)], "CARD");
    h.run("connectAccount", Value::Null).unwrap();
    h.run("reserveInventory", Value::Null).unwrap();
    h.reserve("o1-0-0", SUCCEEDED).unwrap();
    assert!(matches!(
        h.reserve("o1-0-0", SUCCEEDED),
        Err(DomainError::Forbidden { .. })
    ));
    assert!(matches!(
        h.reserve("o2-0-0", SUCCEEDED),
        Err(DomainError::Invalid { .. })
    ));
    assert_eq!(h.state().reservations.len(), 1);
}

#[test]
fn an_outcome_reported_before_the_payment_is_pending_still_counts() {
    let mut h = History::new(vec![item("p1", 1)], "CARD");
    h.run("connectAccount", Value::Null).unwrap();
    h.run("reserveInventory", Value::Null).unwrap();
    h.reserve("o1-0-0", SUCCEEDED).unwrap();
    h.run("completeReservation", Value::Null).unwrap();
    h.run(
        "createPayment",
        json!({ "paymentId": "p", "paymentHref": "http://p" }),
    )
    .unwrap();
    h.run("connectPayment", Value::Null).unwrap();
    h.run("processPayment", json!({ "paymentStatus": PAYMENT_FAILED }))
        .unwrap();
    assert_eq!(h.state().status, PAYMENT_FAILED);
    // Pending without an outcome is refused: nothing to record yet.
    let mut p = History::new(vec![item("p1", 1)], "CARD");
    p.0 = h.0[..h.0.len() - 1].to_vec();
    assert_eq!(p.state().status, PAYMENT_PENDING);
    assert!(p.run("processPayment", Value::Null).is_err());
}

#[test]
fn invalid_orders_name_the_field() {
    let bad = NewOrder {
        account_id: "a".into(),
        line_items: vec![item("p1", 0)],
        shipping_address: Value::Null,
        payment_method: None,
    };
    assert!(
        matches!(Order::create("o", bad), Err(DomainError::Invalid { field, .. }) if field == "lineItems[0].quantity")
    );
    let none = NewOrder {
        account_id: "a".into(),
        line_items: vec![],
        shipping_address: Value::Null,
        payment_method: None,
    };
    assert!(
        matches!(Order::create("o", none), Err(DomainError::Invalid { field, .. }) if field == "lineItems")
    );
}

#[test]
fn every_status_but_the_final_ones_waits_for_the_event_that_drives_its_next_step() {
    let mut h = History::new(vec![item("p1", 1)], "CARD");
    let mut waits = vec![(h.state().status, h.state().in_flight())];
    let steps = [
        ("connectAccount", Value::Null),
        ("reserveInventory", Value::Null),
        (
            "addReservation",
            json!({ "reservationId": "o1-0-0", "outcome": SUCCEEDED, "href": "http://w/v1/reservations/o1-0-0" }),
        ),
        ("completeReservation", Value::Null),
        (
            "createPayment",
            json!({ "paymentId": "p", "paymentHref": "http://p/v1/payments/p" }),
        ),
        ("connectPayment", Value::Null),
        ("processPayment", Value::Null),
        (
            "processPayment",
            json!({ "paymentStatus": PAYMENT_SUCCEEDED }),
        ),
        ("completeOrder", Value::Null),
    ];
    for (command, input) in steps {
        h.run(command, input).unwrap();
        waits.push((h.state().status, h.state().in_flight()));
    }
    let waits: Vec<(&str, Option<&str>)> = waits.iter().map(|(s, w)| (s.as_str(), *w)).collect();
    assert_eq!(
        waits,
        [
            (ORDER_CREATED, Some(ORDER_CREATED)),
            (ACCOUNT_CONNECTED, Some(ACCOUNT_CONNECTED)),
            (RESERVATION_PENDING, Some(RESERVATION_PENDING)),
            (RESERVATION_PENDING, Some(RESERVATION_PENDING)),
            (RESERVATION_SUCCEEDED, Some(RESERVATION_SUCCEEDED)),
            (PAYMENT_CREATED, Some(PAYMENT_CREATED)),
            (PAYMENT_CONNECTED, Some(PAYMENT_CONNECTED)),
            (PAYMENT_PENDING, Some(PAYMENT_CONNECTED)),
            (PAYMENT_SUCCEEDED, Some(PAYMENT_SUCCEEDED)),
            (ORDER_SUCCEEDED, None),
        ]
    );
    let mut failed = History::new(vec![item("p1", 1)], "CARD");
    failed.run("connectAccount", Value::Null).unwrap();
    failed.run("reserveInventory", Value::Null).unwrap();
    failed
        .run("completeReservation", json!({ "failure": "no warehouse" }))
        .unwrap();
    assert_eq!(failed.state().in_flight(), Some(RESERVATION_FAILED));
    failed.run("completeOrder", Value::Null).unwrap();
    assert_eq!(failed.state().in_flight(), None);
}

#[test]
fn a_re_drive_recorded_in_the_stream_changes_nothing_of_the_order() {
    let mut h = History::new(vec![item("p1", 1)], "CARD");
    h.run("connectAccount", Value::Null).unwrap();
    let before = h.state();
    for marker in [
        eventflow_runtime::event::STEP_REDRIVEN,
        eventflow_runtime::event::STEP_ABANDONED,
    ] {
        let v = h.0.len() as i64 + 1;
        let e = NewEvent::new(
            marker,
            json!({ "status": ACCOUNT_CONNECTED, "redrives": 1 }),
        );
        h.0.push(e.at_version("order", "o1", v));
    }
    assert_eq!(h.state(), before);
    h.run("reserveInventory", Value::Null).unwrap();
    assert_eq!(h.state().status, RESERVATION_PENDING);
    assert_eq!(h.state().version, 5);
}
