//! Messages of the syncer pipeline: StreamController → SyncerActor → CausalityActor ×
//! buckets → DMLWorker × worker-count, and the CheckpointActor. Everything that carries rows
//! is a batch.

use actix::Message;

use crate::binlog::location::Location;
use crate::error::DmError;
use crate::sql::dml::RowChange;

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

/// SyncerActor → CausalityActor: row changes in binlog order. Replies once every change is
/// queued at its worker (not yet applied).
#[derive(Debug, Message)]
#[rtype(result = "Result<(), DmError>")]
pub struct RowBatch {
    pub changes: Vec<RowChange>,
}

/// SyncerActor → CausalityActor: replies when every change sent before is committed
/// downstream; the conflict map is then reset (see `causality` for why resets are only at
/// stream-determined points).
#[derive(Debug, Message)]
#[rtype(result = "Result<(), DmError>")]
pub struct FlushBarrier;

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
}
