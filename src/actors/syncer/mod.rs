//! The sync unit: binlog → target, in parallel and crash-safe.
//!
//! - [`causality`]: which DML worker each row change goes to (pure logic).
pub mod causality;
