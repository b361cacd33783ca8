//! dm-rs: TiDB Data Migration rebuilt in Rust as an actix actor system.
//!
//! Map of the crate, top to bottom (dependencies point down; see README.md's Layout):
//! - [`api`]: the HTTP servers of dm-master (gateway, OpenAPI, leader proxy, etcd on the same
//!   port) and dm-worker; [`ctl`]: dmctl, a thin client of dm-master's API;
//!   [`standalone`]: what the binaries share.
//! - [`actors`]: the actor tree (master: EtcdMember, Election, Scheduler; worker: KeepAlive,
//!   SourceWorker, SubTask, Units; the syncer pipeline with a CausalityActor per bucket).
//! - [`units`]: the dump and load units; [`checker`]: DM's precheck; [`shardddl`]: shard DDL
//!   groups and locks as plain logic.
//! - [`messages`]: typed messages between actors, and the cross-process shapes.
//! - [`sql`], [`binlog`], [`store`], [`db`]: SQL generation and parsing, binlog decoding,
//!   etcd state, MySQL plumbing (no actix below this line).
//! - [`config`]: DM-compatible task/source/master/worker configs, strict and validated.
//! - [`syntax`], [`ids`], [`error`], [`backoff`], [`failpoint`], [`metrics`], [`telemetry`]:
//!   quoting and expression parsing; names and the subtask key; DM's error codes and
//!   [`error::DmError`]; restart pacing; test crash points; Prometheus; logging.

pub mod actors;
pub mod api;
pub mod backoff;
pub mod binlog;
pub mod checker;
pub mod config;
pub mod ctl;
pub mod db;
pub mod error;
pub mod failpoint;
pub mod ids;
pub mod messages;
pub mod metrics;
pub mod shardddl;
pub mod sql;
pub mod standalone;
pub mod store;
pub mod syntax;
pub mod telemetry;
pub mod units;
