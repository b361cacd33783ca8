//! Integration tests: cluster (being written).
