//! Integration tests: source_worker (being written).
