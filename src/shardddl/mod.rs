//! Shard DDL coordination as plain logic (no I/O, no actix): the worker's pessimistic sharding
//! groups ([`group`]), the master's pessimistic locks ([`pessimism`]) and optimistic locks
//! ([`optimism`]; not wired yet). The actors that run
//! them: [`crate::actors::master::pessimist`] and the sync unit
//! ([`crate::actors::syncer::shard`]); their etcd state: [`crate::store::etcd::shardddl`].

pub mod group;
pub mod optimism;
pub mod pessimism;
