//! What a run is asked to do (the body of `POST /v1/runs`), with defaults
//! and limits, each refusal naming its field.

use eventflow_runtime::problem::Problem;
use serde::{Deserialize, Serialize};

fn default_orders() -> u32 {
    100
}
fn default_rate() -> f64 {
    10.0
}
fn default_accounts() -> u32 {
    10
}
fn default_products() -> u32 {
    5
}
fn default_stock() -> u32 {
    100
}
fn one() -> u32 {
    1
}
fn default_concurrency() -> u32 {
    32
}
fn default_follow() -> u64 {
    120
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Plan {
    /// Orders to post.
    #[serde(default = "default_orders")]
    pub orders: u32,
    /// Orders posted per second.
    #[serde(default = "default_rate")]
    pub rate_per_second: f64,
    /// Share of orders designed to fail (paid with the DECLINED method).
    #[serde(default)]
    pub failure_share: f64,
    /// Accounts created first (in the account context when it is deployed).
    #[serde(default = "default_accounts")]
    pub accounts: u32,
    /// Products stocked in a new warehouse.
    #[serde(default = "default_products")]
    pub products: u32,
    /// Items stocked per product (fewer than ordered makes orders fail out of stock).
    #[serde(default = "default_stock")]
    pub stock_per_product: u32,
    /// Units of one product per order.
    #[serde(default = "one")]
    pub units_per_order: u32,
    /// Requests in flight at most.
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
    /// How long each order is followed to its final state.
    #[serde(default = "default_follow")]
    pub follow_seconds: u64,
}

impl Default for Plan {
    fn default() -> Self {
        serde_json::from_str("{}").unwrap_or(Self {
            orders: default_orders(),
            rate_per_second: default_rate(),
            failure_share: 0.0,
            accounts: default_accounts(),
            products: default_products(),
            stock_per_product: default_stock(),
            units_per_order: 1,
            concurrency: default_concurrency(),
            follow_seconds: default_follow(),
        })
    }
}

fn range<T: PartialOrd + std::fmt::Display>(
    field: &str,
    v: T,
    min: T,
    max: T,
) -> Result<(), Problem> {
    if v >= min && v <= max {
        Ok(())
    } else {
        Err(Problem::bad_request(
            field,
            format!("{field} must be from {min} to {max}"),
        ))
    }
}

impl Plan {
    pub fn validate(&self) -> Result<(), Problem> {
        range("orders", self.orders, 1, 100_000)?;
        if !self.rate_per_second.is_finite() {
            return Err(Problem::bad_request("ratePerSecond", "must be a number"));
        }
        range("ratePerSecond", self.rate_per_second, 0.1, 5_000.0)?;
        if !self.failure_share.is_finite() {
            return Err(Problem::bad_request("failureShare", "must be a number"));
        }
        range("failureShare", self.failure_share, 0.0, 1.0)?;
        range("accounts", self.accounts, 0, 1_000)?;
        range("products", self.products, 1, 100)?;
        range("stockPerProduct", self.stock_per_product, 0, 100_000)?;
        range("unitsPerOrder", self.units_per_order, 1, 10)?;
        range("concurrency", self.concurrency, 1, 512)?;
        range("followSeconds", self.follow_seconds, 1, 3_600)
    }

    /// Whether order `i` is one of those designed to fail: spread evenly,
    /// `failure_share` of every run of orders.
    pub fn designed_to_fail(&self, i: u32) -> bool {
        let share = self.failure_share;
        ((f64::from(i) + 1.0) * share).floor() > (f64::from(i) * share).floor()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_body_is_a_small_valid_run() {
        let p: Plan = serde_json::from_str("{}").unwrap();
        assert_eq!(p, Plan::default());
        assert!(p.validate().is_ok());
    }

    #[test]
    fn the_share_designed_to_fail_is_spread_evenly() {
        let p = Plan {
            failure_share: 0.25,
            ..Plan::default()
        };
        let failing: Vec<u32> = (0..8).filter(|i| p.designed_to_fail(*i)).collect();
        assert_eq!(failing, [3, 7]);
        let none = Plan::default();
        assert!((0..100).all(|i| !none.designed_to_fail(i)));
        let all = Plan {
            failure_share: 1.0,
            ..Plan::default()
        };
        assert!((0..100).all(|i| all.designed_to_fail(i)));
    }

    #[test]
    fn out_of_range_values_name_their_field() {
        let p = Plan {
            failure_share: 1.5,
            ..Plan::default()
        };
        assert_eq!(
            p.validate().unwrap_err().field.as_deref(),
            Some("failureShare")
        );
        let p = Plan {
            orders: 0,
            ..Plan::default()
        };
        assert_eq!(p.validate().unwrap_err().field.as_deref(), Some("orders"));
    }
}
