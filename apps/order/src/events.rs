//! The order's vocabulary: the names of its events, the statuses they lead
//! to and the outcomes of a reservation. The aggregate ([`crate::order`]),
//! its schemas ([`crate::schemas`]) and the saga's functions
//! ([`crate::functions`]) all speak it; it imports nothing.

pub const ORDER_CREATED: &str = "ORDER_CREATED";
pub const ACCOUNT_CONNECTED: &str = "ACCOUNT_CONNECTED";
pub const RESERVATION_PENDING: &str = "RESERVATION_PENDING";
pub const RESERVATION_ADDED: &str = "RESERVATION_ADDED";
pub const RESERVATION_SUCCEEDED: &str = "RESERVATION_SUCCEEDED";
pub const RESERVATION_FAILED: &str = "RESERVATION_FAILED";
pub const PAYMENT_CREATED: &str = "PAYMENT_CREATED";
pub const PAYMENT_CONNECTED: &str = "PAYMENT_CONNECTED";
pub const PAYMENT_PENDING: &str = "PAYMENT_PENDING";
pub const PAYMENT_SUCCEEDED: &str = "PAYMENT_SUCCEEDED";
pub const PAYMENT_FAILED: &str = "PAYMENT_FAILED";
pub const ORDER_SUCCEEDED: &str = "ORDER_SUCCEEDED";
pub const ORDER_FAILED: &str = "ORDER_FAILED";
pub const EVENT_TYPES: &[&str] = &[
    ORDER_CREATED,
    ACCOUNT_CONNECTED,
    RESERVATION_PENDING,
    RESERVATION_ADDED,
    RESERVATION_SUCCEEDED,
    RESERVATION_FAILED,
    PAYMENT_CREATED,
    PAYMENT_CONNECTED,
    PAYMENT_PENDING,
    PAYMENT_SUCCEEDED,
    PAYMENT_FAILED,
    ORDER_SUCCEEDED,
    ORDER_FAILED,
];
/// Statuses (every event but RESERVATION_ADDED names the status it leads to).
pub const STATUSES: &[&str] = &[
    ORDER_CREATED,
    ACCOUNT_CONNECTED,
    RESERVATION_PENDING,
    RESERVATION_SUCCEEDED,
    RESERVATION_FAILED,
    PAYMENT_CREATED,
    PAYMENT_CONNECTED,
    PAYMENT_PENDING,
    PAYMENT_SUCCEEDED,
    PAYMENT_FAILED,
    ORDER_SUCCEEDED,
    ORDER_FAILED,
];

/// Outcome of one reservation as the warehouse reported it.
pub const SUCCEEDED: &str = "SUCCEEDED";
pub const FAILED: &str = "FAILED";
