//! The actor tree. Actors are thin shells over plain logic (`config`, `sql`, `binlog`,
//! `store`); they own connections and state per incarnation and talk only by typed messages
//! (`crate::messages`).
//!
//! Supervision pacing ([`crate::backoff::Backoff`], [`crate::backoff::RestartBudget`]) is
//! plain data below the actors, shared with the units.
//!
//! Today's tree:
//! - dm-master: [`master::election::ElectionActor`] → (on the leader)
//!   [`master::scheduler::SchedulerActor`].
//! - dm-worker: [`worker::server::WorkerActor`] (registration, binding watch) →
//!   [`worker::keepalive::KeepAliveActor`], [`worker::source_worker::SourceWorkerActor`] (one per
//!   bound source) → [`worker::subtask::SubtaskActor`] (one per task: expected stage,
//!   auto-resume) → [`worker::units::UnitsActor`] (dump → load → sync) →
//!   [`syncer::SyncerActor`] (stream, causality buckets, DML workers, checkpoint);
//!   [`worker::master_probe::MasterProbeActor`] watches the `join` masters.
//! - dm-syncer / dm-migrate: the units or the syncer alone.

pub mod master;
pub mod syncer;
pub mod worker;
