//! eventflow-runtime (being written).
