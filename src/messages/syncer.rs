//! Messages of the syncer pipeline: StreamController → SyncerActor → CausalityActor × buckets
//! → DMLWorker × worker-count, and the CheckpointActor; the sync unit's status and stop
//! request from its parent. Everything that carries rows is a batch.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use actix::Message;
use serde::Serialize;

use crate::binlog::location::Location;
use crate::error::DmError;
use crate::shardddl::group::UnresolvedGroup;
use crate::sql::dml::RowChange;
use crate::sql::sharding_meta::{ShardingMetaTable, SourceRows};

/// StreamController → SyncerActor: raw events in stream order. Replies when the syncer has
/// taken them (its reply pace is the stream's backpressure).
#[derive(Message)]
#[rtype(result = "Result<(), DmError>")]
pub struct EventBatch {
    pub events: Vec<mysql_async::binlog::events::Event>,
}

/// StreamController → SyncerActor: the stream failed for good (purged position, bad
/// server id, retries exhausted).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct StreamFailed {
    pub error: DmError,
}

/// SyncerActor → CausalityActor: the routed changes of the bucket's tables, in binlog order.
/// Replies once every change is queued at its DML worker (after any drain a conflict needed).
#[derive(Debug, Message)]
#[rtype(result = "Result<(), DmError>")]
pub struct RouteRows {
    pub changes: Vec<RowChange>,
}

/// SyncerActor → CausalityActor: a barrier (DDL, checkpoint): replies once the bucket's
/// workers committed everything they were sent; the bucket's key map is then reset.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), DmError>")]
pub struct DrainBucket;

/// CausalityActor → DMLWorker: changes for this worker, in order. Replies once queued; waits
/// while the worker's queue is full.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), DmError>")]
pub struct ExecuteBatch {
    pub changes: Vec<RowChange>,
}

/// CausalityActor → DMLWorker: replies when everything queued before is committed, or with
/// the error that stopped the worker.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), DmError>")]
pub struct DrainWorker;

/// SyncerActor → CheckpointActor: persist this point. Every change before `location` must
/// be committed.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), DmError>")]
pub struct SaveCheckpoint {
    pub location: Location,
    /// `(schema, table, table_info JSON)` of the tracked tables.
    pub tables: Vec<(String, String, String)>,
    pub exit_safe: Option<Location>,
    /// The sharding groups' membership, written in the same transaction (when it changed).
    pub sharding: Option<(ShardingMetaTable, SourceRows)>,
}

/// What query-status shows of a running sync unit.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncStatus {
    pub total_events: u64,
    pub total_rows: u64,
    /// Rows per second since the unit started.
    pub total_tps: f64,
    pub master_binlog: String,
    pub master_binlog_gtid: String,
    /// The flushed checkpoint.
    pub syncer_binlog: String,
    pub syncer_binlog_gtid: String,
    /// The last position read.
    pub current_binlog: String,
    pub synced: bool,
    /// Seconds between now and the event time of the oldest change not yet applied (DM's
    /// definition; 0 when nothing is in flight).
    pub seconds_behind_master: u64,
    pub safe_mode: bool,
    /// Shard `DROP TABLE` / `TRUNCATE TABLE` / `DROP DATABASE` statements not applied because
    /// their target merges several upstream tables.
    pub skipped_shard_ddls: u64,
    /// The shard DDLs this source waits on the lock for (DM's `blockingDDLs`).
    pub blocking_ddls: Vec<String>,
    /// The lock whose Operation arrived and is being carried out (DM's `unresolvedDDLLockID`).
    pub unresolved_ddl_lock_id: String,
    /// Sharding groups with pending DDLs (DM's `unresolvedGroups`).
    pub unresolved_groups: Vec<UnresolvedGroup>,
    /// Where the lag is read from: each DML worker's and the DDL slot's oldest in-flight
    /// event time.
    #[serde(skip)]
    pub lag_sources: Vec<Arc<AtomicU64>>,
}

impl SyncStatus {
    /// A copy with the lag computed now (the lag moves while the syncer is blocked, e.g. on a
    /// slow target, so it is read from the workers, not stored).
    pub fn snapshot(&self) -> SyncStatus {
        let mut s = self.clone();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        s.seconds_behind_master = lag_seconds(&self.lag_sources, now);
        s
    }
}

/// DM's lag: now − the event time of the oldest change still in flight; 0 when idle.
pub fn lag_seconds(in_flight: &[Arc<AtomicU64>], now: u64) -> u64 {
    in_flight
        .iter()
        .map(|a| a.load(Ordering::Relaxed))
        .filter(|&t| t > 0)
        .min()
        .map_or(0, |t| now.saturating_sub(t))
}

/// Asks the unit to stop after flushing a checkpoint at the last transaction boundary.
#[derive(Debug, Message)]
#[rtype(result = "Result<Location, DmError>")]
pub struct StopSyncer;

/// Stops a pipeline actor (DML worker, checkpoint, stream) at once, dropping its in-flight
/// work: sent by the run when it ends, because the pipeline shares the SyncerActor's arbiter
/// and a retrying worker would otherwise outlive its unit.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Halt;

/// SyncerActor → its parent (UnitsActor, or the standalone runner): the sync unit ended
/// (`Ok`: stopped after a flushed checkpoint). Sent once, as the actor stops.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct SyncerExited {
    pub result: Result<(), DmError>,
}
