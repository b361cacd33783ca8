//! Shard DDL coordination as plain logic (no I/O, no actix): the worker's pessimistic sharding
//! groups ([`group`]), the master's pessimistic locks ([`pessimism`]) and optimistic locks
//! ([`optimism`]). The actors that run them: [`crate::actors::master::pessimist`],
//! [`crate::actors::master::optimist`] and the sync unit ([`crate::actors::syncer::shard`],
//! [`crate::actors::syncer::opt_shard`]); their etcd state: [`crate::store::etcd::shardddl`],
//! [`crate::store::etcd::optimism`].

pub mod group;
pub mod optimism;
pub mod pessimism;
