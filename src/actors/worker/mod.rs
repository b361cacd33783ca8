//! dm-worker actors.
//!
//! - [`master_probe::MasterProbeActor`]: polls the `/status` of every master in `join` and
//!   answers `QueryMasters`; it owns no task state, so it restarts freely.
//! - [`subtask::SubtaskActor`]: one task on one source; runs its units (dump → load → sync)
//!   and resumes from their persisted state.

pub mod master_probe;
pub mod subtask;
