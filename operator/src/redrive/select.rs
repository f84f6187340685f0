//! Which dead letters a redrive takes: AMQP topic patterns over the
//! routing key a message was first published with (`*` is exactly one
//! dot-separated word, `#` zero or more), exactly as RabbitMQ's topic
//! exchange matches them, so a selector reads like a subscription's
//! `eventTypes`. No pattern selects every message.

/// The routing-key patterns of one redrive.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    patterns: Vec<String>,
}

impl Selector {
    pub fn new(patterns: &[String]) -> Self {
        Self {
            patterns: patterns.to_vec(),
        }
    }

    /// Whether the message with `routing_key` is selected.
    pub fn selects(&self, routing_key: &str) -> bool {
        self.patterns.is_empty() || eventflow_contract::topic::any(&self.patterns, routing_key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(patterns: &[&str]) -> Selector {
        Selector::new(&patterns.iter().map(|p| (*p).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn no_pattern_selects_every_message() {
        assert!(sel(&[]).selects("order.ORDER_CREATED"));
        assert!(sel(&[]).selects(""));
    }

    #[test]
    fn exact_keys_select_only_themselves() {
        let s = sel(&["order.ORDER_CREATED", "payment.PAID"]);
        assert!(s.selects("order.ORDER_CREATED"));
        assert!(s.selects("payment.PAID"));
        assert!(!s.selects("order.ORDER_CANCELLED"));
        assert!(!s.selects("order.ORDER_CREATED.extra"));
        assert!(!s.selects("order"));
    }

    #[test]
    fn a_star_is_exactly_one_word() {
        let s = sel(&["order.*"]);
        assert!(s.selects("order.ORDER_CREATED"));
        assert!(!s.selects("order"));
        assert!(!s.selects("order.a.b"));
        assert!(!s.selects("payment.PAID"));
        assert!(sel(&["*.PAID"]).selects("payment.PAID"));
    }

    #[test]
    fn a_hash_is_zero_or_more_words() {
        assert!(sel(&["#"]).selects("anything.at.all"));
        assert!(sel(&["#"]).selects("x"));
        let s = sel(&["order.#"]);
        assert!(s.selects("order"));
        assert!(s.selects("order.ORDER_CREATED"));
        assert!(s.selects("order.a.b.c"));
        assert!(!s.selects("orders.a"));
        let mid = sel(&["a.#.z"]);
        assert!(mid.selects("a.z"));
        assert!(mid.selects("a.b.c.z"));
        assert!(!mid.selects("a.b.c"));
    }
}
