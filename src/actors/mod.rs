//! The actor tree. Actors are thin shells over plain logic (`config`, `sql`, `binlog`,
//! `store`); they own connections and state per incarnation and talk only by typed messages
//! (`crate::messages`).
//!
//! Supervision pacing ([`crate::backoff::Backoff`], [`crate::backoff::RestartBudget`]) is
//! plain data below the actors, shared with the units.
//!
//! Today's tree:
//! - dm-master: [`master::member::EtcdMemberActor`] (the etcd child) and
//!   [`master::election::ElectionActor`] → (on the leader) [`master::scheduler::SchedulerActor`].
//! - dm-worker: [`worker::server::WorkerActor`] (registration, binding watch) →
//!   [`worker::keepalive::KeepAliveActor`], [`worker::source_worker::SourceWorkerActor`] (one per
//!   bound source) → [`worker::subtask::SubtaskActor`] (one per task: expected stage,
//!   auto-resume) → [`worker::units::UnitsActor`] (dump → load → sync) →
//!   [`syncer::SyncerActor`] → [`syncer::stream::StreamControllerActor`],
//!   [`syncer::causality_actor::CausalityActor`] × buckets,
//!   [`syncer::dml_worker::DmlWorkerActor`] × worker-count,
//!   [`syncer::checkpoint::CheckpointActor`];
//!   [`worker::master_probe::MasterProbeActor`] watches the `join` masters.
//! - dm-syncer / dm-migrate: the units or the syncer alone, under
//!   [`crate::standalone::ExitWatch`].
//!
//! Pessimist, Optimist and Relay come with their issues, shaped the same way (plain logic and
//! a thin actor).

pub mod master;
pub mod syncer;
pub mod worker;
