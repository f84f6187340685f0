//! eventflow-order (being written).
