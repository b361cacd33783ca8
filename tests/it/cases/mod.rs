//! Integration test cases, one module per area.

pub mod binaries;
pub mod checkpoint;
pub mod cluster;
pub mod decode;
pub mod dump;
pub mod election;
pub mod load;
pub mod load_index;
pub mod master_member;
pub mod migrate;
pub mod optimist;
pub mod precheck;
pub mod scheduler;
pub mod servers;
pub mod shard_cluster;
pub mod shard_ddl;
pub mod shard_guard;
pub mod source_worker;
pub mod stale_dump;
pub mod stream;
pub mod syncer;
pub mod tracker;
