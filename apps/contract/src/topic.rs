//! AMQP topic matching, exactly as RabbitMQ's topic exchange routes: whether
//! a routing key (`order.ORDER_CREATED`) is one a binding's patterns (`#`,
//! `order.*`) take. The operator's redrive selects dead letters with it; the
//! counter filters the events it reads from a feed as the broker filters
//! deliveries.

/// True when `key` matches `pattern`: words split on `.`, `*` stands for
/// exactly one word, `#` for zero or more.
pub fn matches(pattern: &str, key: &str) -> bool {
    let pattern: Vec<&str> = pattern.split('.').collect();
    let key: Vec<&str> = key.split('.').collect();
    words(&pattern, &key)
}

fn words(pattern: &[&str], key: &[&str]) -> bool {
    match pattern.split_first() {
        None => key.is_empty(),
        Some((&"#", rest)) => (0..=key.len()).any(|skip| words(rest, &key[skip..])),
        Some((&word, rest)) => key
            .split_first()
            .is_some_and(|(k, key)| (word == "*" || word == *k) && words(rest, key)),
    }
}

/// True when `key` matches any of `patterns`.
pub fn any(patterns: &[String], key: &str) -> bool {
    patterns.iter().any(|p| matches(p, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_as_a_topic_exchange_routes() {
        for (pattern, key, expected) in [
            ("#", "order.ORDER_CREATED", true),
            ("order.*", "order.ORDER_CREATED", true),
            ("order.*", "payment.ORDER_CREATED", false),
            ("*.ORDER_CREATED", "order.ORDER_CREATED", true),
            ("order.ORDER_CREATED", "order.ORDER_CREATED", true),
            ("order.ORDER_CREATED", "order.ORDER_FAILED", false),
            ("order.#", "order", true),
            ("order.#", "order.A.B", true),
            ("*", "order.A", false),
            ("#.A", "order.x.A", true),
            ("#.A", "order.x.B", false),
        ] {
            assert_eq!(matches(pattern, key), expected, "{pattern} vs {key}");
        }
        assert!(any(&["payment.*".into(), "order.*".into()], "order.X"));
        assert!(!any(&[], "order.X"));
    }
}
