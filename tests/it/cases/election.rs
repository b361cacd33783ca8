//! Integration tests: election (being written).
