//! Messages to the dm-master's leader-only shard DDL actors (Pessimist, Optimist), sent by the
//! HTTP handlers behind `dmctl shard-ddl-lock` and by start/stop-task.

use actix::Message;

use crate::error::DmError;
use crate::shardddl::pessimism::LockView;

/// The locks of `task` (all when empty) involving any of `sources` (all when empty).
#[derive(Debug, Message)]
#[rtype(result = "Vec<LockView>")]
pub struct ShowLocks {
    pub task: String,
    pub sources: Vec<String>,
}

/// What `shard-ddl-lock unlock` asks of the executing side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnlockAction {
    Exec,
    Skip,
}

/// `shard-ddl-lock unlock <id>`: resolve a lock by hand.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), DmError>")]
pub struct UnlockLock {
    pub id: String,
    /// Pessimistic: execute on this source instead of the lock's owner.
    pub owner: Option<String>,
    /// Pessimistic: remove the lock even if some source did not finish.
    pub force_remove: bool,
    /// Optimistic: the table whose conflicting DDLs are executed or skipped.
    pub source: Option<String>,
    pub database: Option<String>,
    pub table: Option<String>,
    pub action: UnlockAction,
}

/// The same request for the Optimist: `Ok(false)` when the lock is not an optimistic one.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<bool, DmError>")]
pub struct UnlockOptimistic(pub UnlockLock);

/// Drops every lock of `task` (its etcd keys were deleted: `start-task --remove-meta`, or
/// stop-task in optimistic mode).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ForgetTask {
    pub task: String,
}
