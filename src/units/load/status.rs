//! What query-status shows of the load unit.

use serde::Serialize;

/// The load unit's status, with DM's fields (`query-status`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct LoadStatus {
    /// Bytes of data files loaded (whole files, including those loaded by earlier runs).
    pub finished_bytes: u64,
    /// Bytes of all data files of allowed tables.
    pub total_bytes: u64,
    /// `finished / total` as `"xx.xx %"`.
    pub progress: String,
    /// The dump's binlog position, `(name, pos)`.
    pub meta_binlog: String,
    /// The dump's GTID set (empty without GTIDs).
    pub meta_binlog_gtid: String,
    /// Bytes per second loaded by this run.
    pub bps: u64,
}

/// DM's progress text: `"xx.xx %"` (`"100.00 %"` when there is nothing to load).
pub fn progress_text(finished: u64, total: u64) -> String {
    if total == 0 {
        return "100.00 %".into();
    }
    format!("{:.2} %", finished as f64 * 100.0 / total as f64)
}
