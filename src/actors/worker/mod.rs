//! dm-worker actors.
//!
//! ```text
//! WorkerActor (server) ── registers with a master, connects to etcd, owns:
//!   ├─ KeepAliveActor      lease + /dm-worker/a/<name>; LeaseGranted / LeaseLost to the server
//!   └─ SourceWorkerActor   one per bound source (/dm-master/bound-worker/<name>)
//!        └─ SubtaskActor   one per task of the source; follows the expected stage, auto-resumes
//!             └─ UnitsActor  one incarnation of dump → load → sync (own arbiter)
//!                  └─ SyncerActor (own arbiter: stream, causality dispatch, DML workers,
//!                     checkpoint)
//! MasterProbeActor          polls the `join` masters' /status
//! ```
//!
//! - [`master_probe::MasterProbeActor`]: polls the `/status` of every master in `join` and
//!   answers `QueryMasters`; it owns no task state, so it restarts freely.
//! - [`server::WorkerActor`]: registration, the etcd client, the binding watch; stops all
//!   source work at once when the lease is lost.
//! - [`keepalive::KeepAliveActor`]: the keepalive lease.
//! - [`source_worker::SourceWorkerActor`]: one bound source; watches its subtask configs and
//!   expected stages.
//! - [`subtask::SubtaskActor`]: one task on the source; stage following and auto-resume.
//! - [`units::UnitsActor`]: one run of the units (also used alone by `dm-migrate`).
//!
//! Stop semantics: every parent holds the only strong address of its children and stopping
//! waits until their arbiters' threads ended, so "stopped" means no unit runs any more.

pub mod keepalive;
pub mod master_probe;
pub mod register;
pub mod server;
pub mod source_worker;
pub mod subtask;
pub mod units;
