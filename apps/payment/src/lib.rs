//! eventflow-payment (being written).
