//! eventflow-account (being written).
