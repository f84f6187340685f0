use super::*;

const GROUP: Group<'static> = Group {
    queue: "ns.orders.w",
    retry_queue: "ns.orders.w.retry",
};

fn long(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.to_owned()))
}

/// An `x-death` entry as the broker writes it.
fn death(queue: &str, reason: &str, exchange: &str, key: &str, time: u64) -> AMQPValue {
    let mut t = FieldTable::default();
    t.insert("queue".into(), long(queue));
    t.insert("reason".into(), long(reason));
    t.insert("exchange".into(), long(exchange));
    t.insert("count".into(), AMQPValue::LongLongInt(1));
    t.insert("time".into(), AMQPValue::Timestamp(time));
    let mut keys = FieldArray::default();
    keys.push(long(key));
    t.insert("routing-keys".into(), AMQPValue::FieldArray(keys));
    AMQPValue::FieldTable(t)
}

fn with_deaths(deaths: Vec<AMQPValue>, attempt: Option<u32>) -> BasicProperties {
    let mut h = FieldTable::default();
    let mut a = FieldArray::default();
    for d in deaths {
        a.push(d);
    }
    h.insert("x-death".into(), AMQPValue::FieldArray(a));
    h.insert("x-first-death-queue".into(), long("ns.orders.w.retry"));
    h.insert("x-custom".into(), long("kept"));
    if let Some(n) = attempt {
        h.insert(ATTEMPT_HEADER.into(), AMQPValue::LongUInt(n));
    }
    BasicProperties::default()
        .with_message_id("m-1".into())
        .with_type("dev.eventflow.order.ORDER_CREATED".into())
        .with_headers(h)
}

#[test]
fn a_first_failure_keeps_the_key_of_the_destination_exchange() {
    let props = with_deaths(
        vec![death(
            "ns.orders.w",
            "rejected",
            "ns.orders",
            "order.ORDER_PAID",
            100,
        )],
        None,
    );
    // No AMQP type: the x-death entry alone says it.
    let props = props.with_type("".into());
    let letter = Letter::read(&props, "order.ORDER_PAID", b"{}", &GROUP);
    assert_eq!(letter.routing_key, "order.ORDER_PAID");
}

#[test]
fn a_retried_eventflow_event_gets_its_key_back_from_its_cloudevent_type() {
    // Retried twice: every x-death entry is from the default exchange.
    let props = with_deaths(
        vec![
            death("ns.orders.w", "rejected", "", "ns.orders.w", 300),
            death("ns.orders.w.retry", "expired", "", "ns.orders.w.retry", 200),
        ],
        Some(2),
    );
    assert_eq!(
        original_routing_key(&props, "ns.orders.w", b"", &GROUP),
        "order.ORDER_CREATED"
    );
    // Without an AMQP type, from the structured body.
    let bare = props.clone().with_type("".into());
    let body = br#"{"specversion":"1.0","id":"e","type":"dev.eventflow.pay.PAID"}"#;
    let bare = BasicProperties::default().with_headers(bare.headers().clone().unwrap());
    assert_eq!(
        original_routing_key(&bare, "ns.orders.w", body, &GROUP),
        "pay.PAID"
    );
    // Nothing to go by: the group queue.
    assert_eq!(
        original_routing_key(&bare, "ns.orders.w", b"plain", &GROUP),
        "ns.orders.w"
    );
}

#[test]
fn a_key_recorded_by_an_earlier_redrive_wins() {
    let mut h = FieldTable::default();
    h.insert(ROUTING_KEY_HEADER.into(), long("order.ORDER_SHIPPED"));
    let props = BasicProperties::default().with_headers(h);
    assert_eq!(
        original_routing_key(&props, "ns.orders.w", b"", &GROUP),
        "order.ORDER_SHIPPED"
    );
}

#[test]
fn going_back_resets_the_attempts_and_the_death_history_and_keeps_the_rest() {
    let props = with_deaths(
        vec![death("ns.orders.w", "rejected", "", "ns.orders.w", 300)],
        Some(4),
    );
    let back = redriven_properties(&props, "order.ORDER_CREATED", "uid-1");
    let h = back.headers().clone().unwrap();
    let h = h.inner();
    assert!(h.get(ATTEMPT_HEADER).is_none(), "attempts reset");
    assert!(h.get("x-death").is_none());
    assert!(h.get("x-first-death-queue").is_none());
    assert_eq!(h.get("x-custom"), Some(&long("kept")));
    assert_eq!(
        h.get(ROUTING_KEY_HEADER),
        Some(&long("order.ORDER_CREATED"))
    );
    assert_eq!(h.get(REDRIVE_HEADER), Some(&long("uid-1")));
    assert_eq!(h.get(REDRIVES_HEADER), Some(&AMQPValue::LongLongInt(1)));
    assert_eq!(back.message_id(), props.message_id());
    assert_eq!(back.kind(), props.kind());
    // A second redrive counts on.
    let again = redriven_properties(&back, "order.ORDER_CREATED", "uid-2");
    let h = again.headers().clone().unwrap();
    assert_eq!(
        h.inner().get(REDRIVES_HEADER),
        Some(&AMQPValue::LongLongInt(2))
    );
    let letter = Letter::read(&again, "ns.orders.w", b"", &GROUP);
    assert_eq!(letter.redriven_by.as_deref(), Some("uid-2"));
}

#[test]
fn a_listed_dead_letter_says_why_where_and_when() {
    let props = with_deaths(
        vec![
            death("ns.orders.w", "rejected", "", "ns.orders.w", 1_700_000_000),
            death(
                "ns.orders.w.retry",
                "expired",
                "",
                "ns.orders.w.retry",
                1_699_999_999,
            ),
        ],
        Some(2),
    );
    let d = describe(&props, "ns.orders.w", br#"{"a":1}"#, &GROUP);
    assert_eq!(d.routing_key, "order.ORDER_CREATED");
    assert_eq!(d.message_id.as_deref(), Some("m-1"));
    assert_eq!(d.attempts, Some(3));
    assert_eq!(d.reason.as_deref(), Some("rejected"));
    assert_eq!(d.dead_lettered_from.as_deref(), Some("ns.orders.w"));
    assert_eq!(
        d.dead_lettered_at.map(|t| t.0.as_second()),
        Some(1_700_000_000)
    );
    assert_eq!((d.size, d.preview.as_str()), (7, r#"{"a":1}"#));
}

#[test]
fn a_preview_is_bounded() {
    let body = "é".repeat(PREVIEW_BYTES);
    let p = preview(body.as_bytes());
    assert!(p.ends_with('…'));
    assert!(p.len() <= PREVIEW_BYTES + '…'.len_utf8());
    assert!(!p.contains('\u{FFFD}'));
    assert_eq!(preview(b"short"), "short");
}
