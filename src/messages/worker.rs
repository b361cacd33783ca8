//! Messages to the dm-worker's actors, grouped by receiver:
//!
//! - MasterProbeActor: [`QueryMasters`].
//! - KeepAliveActor: [`ReleaseLease`].
//! - WorkerActor (server): [`LeaseGranted`], [`LeaseLost`] (from KeepAlive),
//!   [`QueryWorkerStatus`], [`QueryWorkerInfo`], [`ShutdownWorker`] (HTTP handlers, main).
//! - SourceWorkerActor: [`StopSourceWorker`], [`QuerySourceStatus`].
//! - SubtaskActor: [`SetExpectedStage`], [`ShutdownSubtask`], [`QuerySubtaskStatus`].
//! - UnitsActor: [`StopSubtask`], [`QuerySubtaskStatus`], and the sync unit's
//!   [`crate::messages::syncer::SyncerExited`]; its parent gets [`UnitsExited`].

use actix::Message;
use serde::{Deserialize, Serialize};

use crate::error::DmError;
use crate::messages::syncer::SyncStatus;
use crate::store::etcd::ha::Stage;
use crate::units::dump::DumpStatus;
use crate::units::load::LoadStatus;

/// What the worker last saw of one master.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MasterReachability {
    pub addr: String,
    pub reachable: bool,
    /// The master's `/status` `name`, when reachable.
    pub name: Option<String>,
    pub last_error: Option<String>,
}

/// HTTP handler → MasterProbeActor: the reachability of every `join` master.
#[derive(Debug, Message)]
#[rtype(result = "Vec<MasterReachability>")]
pub struct QueryMasters;

/// KeepAliveActor → WorkerActor: a lease is held and `/dm-worker/a/<name>` is put under it.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct LeaseGranted {
    pub lease: i64,
}

/// KeepAliveActor → WorkerActor: the lease is (or may be) gone. Replies once every source
/// work of the worker has stopped; only then is the old lease revoked.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct LeaseLost {
    pub reason: String,
}

/// HTTP handler → WorkerActor: the status of the bound source's subtasks (`task` = one task,
/// `None` = all). An error when the worker holds no lease or is not bound.
#[derive(Debug, Message)]
#[rtype(result = "Result<SourceStatusReport, DmError>")]
pub struct QueryWorkerStatus {
    pub task: Option<String>,
}

/// The bound source and its subtasks' status.
#[derive(Debug, Clone, Default)]
pub struct SourceStatusReport {
    pub source: String,
    pub worker: String,
    pub subtasks: Vec<SubtaskStatus>,
}

/// HTTP handler → WorkerActor: the worker's cluster state for `/status`.
#[derive(Debug, Message)]
#[rtype(result = "WorkerInfo")]
pub struct QueryWorkerInfo;

/// What `/status` shows of the worker's cluster state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// The worker reached etcd (registered with a master, or given `etcd-endpoints`).
    pub registered: bool,
    pub etcd_endpoints: Vec<String>,
    /// The keepalive lease is held.
    pub lease_held: bool,
    /// The lease id (hex), when held.
    pub lease: Option<String>,
    /// The source `/dm-master/bound-worker/<name>` names, while the lease is held.
    pub bound_source: Option<String>,
    /// The source whose SourceWorker runs.
    pub running_source: Option<String>,
    /// Leases lost since the start.
    pub leases_lost: u64,
}

/// main → WorkerActor: stop the source work gracefully (checkpoints flushed) and give up the
/// lease, before the process exits.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ShutdownWorker;

/// WorkerActor → SourceWorkerActor: stop every subtask, then the actor. `graceful` flushes
/// sync checkpoints first (binding removed or changed); otherwise the units are dropped at
/// once (lease lost: the source may already run elsewhere). Replies when their threads ended.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct StopSourceWorker {
    pub graceful: bool,
}

/// WorkerActor → SourceWorkerActor: the status of its subtasks (`task` = one task).
#[derive(Debug, Message)]
#[rtype(result = "Vec<SubtaskStatus>")]
pub struct QuerySourceStatus {
    pub task: Option<String>,
}

/// SourceWorkerActor → SubtaskActor: follow this expected stage (from etcd). `Running` also
/// resumes a subtask paused by an error. Replies when the units started or stopped.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct SetExpectedStage {
    pub stage: Stage,
}

/// SourceWorkerActor → SubtaskActor: stop the units (see [`StopSourceWorker`] for
/// `graceful`) and the actor. Replies when the units' threads ended.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ShutdownSubtask {
    pub graceful: bool,
    pub reason: &'static str,
}

/// WorkerActor → KeepAliveActor: revoke the lease and stop (the process is exiting).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ReleaseLease;

/// The unit a subtask is in (DM's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Unit {
    Dump,
    Load,
    Sync,
}

impl Unit {
    /// DM's unit name (`Dump`, `Load`, `Sync`).
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Dump => "Dump",
            Unit::Load => "Load",
            Unit::Sync => "Sync",
        }
    }
}

/// What query-status shows of a subtask.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SubtaskStatus {
    pub name: String,
    pub source: String,
    /// `New`, `Running`, `Paused` (by request or after an error), `Stopped`, `Finished`.
    pub stage: String,
    pub unit: Option<Unit>,
    pub dump_status: Option<DumpStatus>,
    pub load_status: Option<LoadStatus>,
    pub sync_status: Option<SyncStatus>,
    pub error: Option<DmError>,
    /// Automatic restarts after resumable errors since the subtask was created.
    pub auto_resumes: u32,
}

/// Stops the units: the sync unit flushes a checkpoint first; dump and load stop where they
/// are (both resume from their own state).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct StopSubtask;

/// Reads the live status.
#[derive(Debug, Message)]
#[rtype(result = "SubtaskStatus")]
pub struct QuerySubtaskStatus;

/// UnitsActor → its parent (SubtaskActor, or the standalone runner): the units of
/// incarnation `epoch` ended (`Ok`: finished or stopped). Sent once, as the actor stops.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct UnitsExited {
    pub epoch: u64,
    pub result: Result<(), DmError>,
}
