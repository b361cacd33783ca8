//! Integration tests: precheck (being written).
