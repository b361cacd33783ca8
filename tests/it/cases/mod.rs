//! Integration test cases, one module per area.

pub mod binaries;
pub mod servers;
pub mod stream;
pub mod checkpoint;
pub mod decode;
pub mod tracker;
pub mod syncer;
