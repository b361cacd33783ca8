//! dm-rs: TiDB Data Migration rebuilt in Rust as an actix actor system.
//!
//! Map of the crate (see ARCHITECTURE.md in the design notes and README.md):
//! - [`config`]: DM-compatible task/source/master/worker configs, strict and validated.
//! - [`error`]: DM's error codes and the boundary error type [`error::DmError`].
//! - [`binlog`]: GTID sets and binlog positions (no actix).
//! - [`syntax`]: quoting and expression parsing, below configs and SQL generation.
//! - [`sql`]: SQL parsing and generation (no actix).
//! - [`db`]: MySQL plumbing: server error numbers, error classification, connecting with
//!   session settings, retries (no actix).
//! - [`actors`]: the actor tree (master: Election, Scheduler; worker: KeepAlive, SourceWorker,
//!   SubTask, units; the syncer pipeline).
//! - [`checker`]: DM's precheck (connections, privileges, binlog settings, schemas).
//! - [`units`]: the dump and load units (plain async code the subtask drives).
//! - [`messages`]: typed messages between actors.
//! - [`ids`]: task, source and worker names and the subtask key.
//! - [`store`]: etcd (DM's keys, typed cluster state, the etcd member child).
//! - [`api`]: the HTTP servers of dm-master (gateway, OpenAPI, leader proxy) and dm-worker.
//! - [`ctl`]: dmctl, a thin client of dm-master's API.
//! - [`metrics`]: Prometheus registries.
//! - [`telemetry`]: logging set-up.
//! - [`standalone`]: what the binaries share (exit status, the standalone subtask runners).

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
pub mod sql;
pub mod standalone;
pub mod store;
pub mod syntax;
pub mod telemetry;
pub mod units;
