//! eventflow-counter (being written).
