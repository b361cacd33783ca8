//! Typed messages between actors, grouped by the actor that receives them. Cross-process
//! payloads (etcd values, master↔worker HTTP) are serde types; in-process messages may hold
//! addresses and are never serialized.

pub mod master;
pub mod rpc;
pub mod shardddl;
pub mod syncer;
pub mod worker;
