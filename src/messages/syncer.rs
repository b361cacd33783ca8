//! Messages of the syncer pipeline: StreamController → SyncerActor (which dispatches rows by
//! causality itself) → DMLWorker × worker-count, and the CheckpointActor. Everything that
//! carries rows is a batch.

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

/// SyncerActor → DMLWorker: changes for this worker, in order. Replies once queued; waits
/// while the worker's queue is full.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), DmError>")]
pub struct ExecuteBatch {
    pub changes: Vec<RowChange>,
}

/// SyncerActor → DMLWorker: replies when everything queued before is committed, or with
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
