//! eventflow-operator (being written).
