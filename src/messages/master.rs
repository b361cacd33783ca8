//! Messages to the dm-master's leader-only Scheduler actor. Every change is validated against
//! the Scheduler's state (rebuilt from etcd) and written to etcd in one transaction before the
//! reply; an error reply changed nothing.

use std::collections::BTreeMap;

use actix::Message;
use serde::Serialize;

use crate::config::{SourceConfig, SubTaskConfig};
use crate::error::DmError;
use crate::ids::SubtaskKey;
use crate::store::etcd::ha::{Fence, Stage};

/// A worker's scheduling stage (DM's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerStage {
    /// Registered, no keepalive lease.
    Offline,
    /// Alive, no source.
    Free,
    /// Alive, bound to a source.
    Bound,
}

impl WorkerStage {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerStage::Offline => "offline",
            WorkerStage::Free => "free",
            WorkerStage::Bound => "bound",
        }
    }
}

/// One worker as the Scheduler sees it.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerView {
    pub name: String,
    pub addr: String,
    pub stage: WorkerStage,
    /// The bound source (stage `bound`).
    pub source: Option<String>,
}

/// One subtask: its config and expected stage.
#[derive(Debug, Clone)]
pub struct SubtaskView {
    pub cfg: SubTaskConfig,
    pub expect: Stage,
}

/// A snapshot of everything the Scheduler holds.
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    pub sources: BTreeMap<String, SourceConfig>,
    /// worker name → view.
    pub workers: BTreeMap<String, WorkerView>,
    /// source → bound worker.
    pub bound: BTreeMap<String, String>,
    pub subtasks: BTreeMap<SubtaskKey, SubtaskView>,
}

impl ClusterView {
    /// The names of the tasks, sorted.
    pub fn tasks(&self) -> Vec<String> {
        let mut t: Vec<String> = self.subtasks.keys().map(|k| k.task.0.clone()).collect();
        t.dedup();
        t
    }

    /// The subtasks of `task`, by source.
    pub fn task(&self, task: &str) -> Vec<&SubtaskView> {
        self.subtasks
            .iter()
            .filter(|(k, _)| k.task.0 == task)
            .map(|(_, v)| v)
            .collect()
    }
}

/// A worker announces itself (`/dm-worker/r/`). Re-registering the same name with the same
/// address is fine; another address while the old one is alive is
/// `SCHEDULER_WORKER_EXIST`.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), DmError>")]
pub struct RegisterWorker {
    pub name: String,
    pub addr: String,
}

/// `operate-source create`: stores the config and binds the source (to `worker` when given,
/// which must be free).
#[derive(Debug, Message)]
#[rtype(result = "Result<(), DmError>")]
pub struct AddSource {
    pub cfg: SourceConfig,
    pub worker: Option<String>,
}

/// `operate-source update`: only while the source has no subtasks.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), DmError>")]
pub struct UpdateSource {
    pub cfg: SourceConfig,
}

/// `operate-source stop`: removes config and binding; with subtasks it fails
/// (`SCHEDULER_SOURCE_HAS_TASKS`) unless `force`, which removes them too.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), DmError>")]
pub struct RemoveSource {
    pub source: String,
    pub force: bool,
}

/// `transfer-source`: rebinds to a free worker; running subtasks are paused around the move
/// and resumed on the new worker.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), DmError>")]
pub struct TransferSource {
    pub source: String,
    pub worker: String,
}

/// `start-task`: the validated subtasks (sources applied) and their expected stage, in one
/// transaction. Every source must exist; none of the subtasks may exist. dmctl's start-task
/// writes Running; the OpenAPI's `POST /tasks` writes Stopped (DM's create-then-start).
#[derive(Debug, Message)]
#[rtype(result = "Result<(), DmError>")]
pub struct StartTask {
    pub subtasks: Vec<SubTaskConfig>,
    pub stage: Stage,
}

/// Replaces existing subtask configs (`PUT /tasks/{t}`): only while none of them is Running.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), DmError>")]
pub struct UpdateSubtasks {
    pub subtasks: Vec<SubTaskConfig>,
}

/// Sets the expected stage (Running = resume, Paused = pause, Stopped = the OpenAPI's stop)
/// of `task` on `sources` (empty = all its sources). With `task` None, every task on
/// `sources`. Replies with the sources changed.
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<String>, DmError>")]
pub struct SetStage {
    pub task: Option<String>,
    pub sources: Vec<String>,
    pub stage: Stage,
}

/// `stop-task` / `DELETE /tasks/{t}`: deletes the subtask configs and stages of `task` on
/// `sources` (empty = all) in one transaction. Replies with the sources removed.
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<String>, DmError>")]
pub struct DeleteTask {
    pub task: String,
    pub sources: Vec<String>,
}

/// `offline-member --worker`: the worker must be offline; deletes its registration and last
/// binding.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), DmError>")]
pub struct OfflineWorker {
    pub name: String,
}

/// A snapshot for listings and query-status routing.
#[derive(Debug, Message)]
#[rtype(result = "ClusterView")]
pub struct GetClusterView;

/// Election → Scheduler: stop now (leadership lost or the process is shutting down). Pending
/// requests are dropped unanswered (callers see a closed mailbox).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct StopScheduler {
    pub reason: String,
}

/// Scheduler → Election: the Scheduler stopped on its own (it found this master deposed).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct SchedulerStopped {
    pub reason: String,
    /// The fence (election key) the Scheduler wrote under: identifies its term.
    pub fence: Option<Fence>,
}

/// dm-master's shutdown → Election: stop the Scheduler, give up leadership (revoke the lease so
/// a follower wins at once) and stop campaigning. Replies once etcd answered (or after 2 s).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Resign;
