//! eventflow-load-simulator (being written).
