//! Integration test cases, one module per area.

pub mod binaries;
pub mod checkpoint;
pub mod decode;
pub mod dump;
pub mod load;
pub mod migrate;
pub mod servers;
pub mod stream;
pub mod syncer;
pub mod tracker;
