//! eventflow-warehouse (being written).
