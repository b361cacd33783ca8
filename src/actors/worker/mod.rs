//! dm-worker actors.
//!
//! - [`master_probe::MasterProbeActor`]: polls the `/status` of every master in `join` and
//!   answers `QueryMasters`; it owns no task state, so it restarts freely.

pub mod master_probe;
