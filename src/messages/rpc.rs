//! JSON shapes shared by dm-master, dm-worker and dmctl.
//!
//! - DM's gRPC-gateway messages under `/apis/v1alpha1/` (field names as in DM's
//!   `dmmaster.proto` / `dmworker.proto`, which dmctl prints and scripts parse).
//! - The master ↔ worker internal API (`/internal/v1/`).
//!
//! Every response with `result` carries `msg`: empty on success, otherwise the DM-style error
//! text `[code=…:class=…:scope=…:level=…], Message: …, Workaround: …`.

use serde::{Deserialize, Serialize};

/// `sources[]` item of most responses.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CommonWorkerResponse {
    pub result: bool,
    pub msg: String,
    pub source: String,
    pub worker: String,
}

/// POST `/apis/v1alpha1/tasks` (dmctl `start-task`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct StartTaskRequest {
    /// The task YAML.
    pub task: String,
    /// Sources to start; empty = every source of the task.
    pub sources: Vec<String>,
    pub remove_meta: bool,
    /// `2021-10-21 00:01:00`: start replication from this time (accepted, stored in
    /// task-cli-args).
    pub start_time: String,
}

/// Answer to [`StartTaskRequest`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct StartTaskResponse {
    pub result: bool,
    pub msg: String,
    pub sources: Vec<CommonWorkerResponse>,
    pub check_result: String,
}

/// DM's `TaskOp` (serialized by name, as grpc-gateway does).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskOp {
    #[default]
    InvalidOp,
    Stop,
    Pause,
    Resume,
    Start,
    Update,
    AutoResume,
    Delete,
}

/// PUT `/apis/v1alpha1/tasks/{name}` (dmctl `stop-task` = Delete or Stop, `pause-task`,
/// `resume-task`). With an empty `name`, `sources` names the sources whose every task is
/// operated on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OperateTaskRequest {
    pub op: TaskOp,
    pub name: String,
    pub sources: Vec<String>,
}

/// Answer to [`OperateTaskRequest`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OperateTaskResponse {
    pub op: TaskOp,
    pub result: bool,
    pub msg: String,
    pub sources: Vec<CommonWorkerResponse>,
}

/// POST `/apis/v1alpha1/check-task` (dm-rs: DM has this as a gRPC call only).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct CheckTaskRequest {
    pub task: String,
    pub err_cnt: i64,
    pub warn_cnt: i64,
    pub start_time: String,
}

/// Answer to [`CheckTaskRequest`]: `msg` is the check report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CheckTaskResponse {
    pub result: bool,
    pub msg: String,
}

/// DM's `SourceOp`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SourceOp {
    #[default]
    InvalidSourceOp,
    StartSource,
    UpdateSource,
    StopSource,
    ShowSource,
}

/// PUT `/apis/v1alpha1/sources` (dmctl `operate-source`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OperateSourceRequest {
    pub op: SourceOp,
    /// source.yaml texts (create, update).
    pub config: Vec<String>,
    /// Source ids (stop, show; empty show = all).
    #[serde(rename = "sourceID")]
    pub source_id: Vec<String>,
    /// Bind to this worker on create.
    #[serde(rename = "workerName")]
    pub worker_name: String,
}

/// Answer to [`OperateSourceRequest`]. For `ShowSource` each item's `msg` is the source's
/// config as YAML with the password replaced by `******`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OperateSourceResponse {
    pub result: bool,
    pub msg: String,
    pub sources: Vec<CommonWorkerResponse>,
}

/// PUT `/apis/v1alpha1/sources/transfer` (dm-rs: DM has this as a gRPC call only).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TransferSourceRequest {
    pub source: String,
    pub worker: String,
}

/// Generic `{result, msg}` answer (transfer-source, offline-member).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CommonResponse {
    pub result: bool,
    pub msg: String,
}

/// DM's `ProcessError`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProcessError {
    #[serde(rename = "ErrCode")]
    pub err_code: i32,
    #[serde(rename = "ErrClass")]
    pub err_class: String,
    #[serde(rename = "ErrScope")]
    pub err_scope: String,
    #[serde(rename = "ErrLevel")]
    pub err_level: String,
    #[serde(rename = "Message")]
    pub message: String,
    #[serde(rename = "RawCause")]
    pub raw_cause: String,
    #[serde(rename = "Workaround")]
    pub workaround: String,
}

impl From<&crate::error::DmError> for ProcessError {
    fn from(e: &crate::error::DmError) -> Self {
        Self {
            err_code: e.code as i32,
            err_class: e.class.name().to_string(),
            err_scope: e.scope.name().to_string(),
            err_level: e.level.name().to_string(),
            message: e.message.clone(),
            raw_cause: e.causes.join(": "),
            workaround: e.workaround.to_string(),
        }
    }
}

/// DM's `ProcessResult`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ProcessResult {
    pub is_canceled: bool,
    pub errors: Vec<ProcessError>,
}

/// DM's `DumpStatus`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DumpStatusView {
    pub total_tables: i64,
    pub completed_tables: f64,
    pub finished_bytes: f64,
    pub finished_rows: f64,
    pub estimate_total_rows: f64,
    pub bps: i64,
    pub progress: String,
}

/// DM's `LoadStatus`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LoadStatusView {
    #[serde(rename = "finishedBytes")]
    pub finished_bytes: i64,
    #[serde(rename = "totalBytes")]
    pub total_bytes: i64,
    pub progress: String,
    #[serde(rename = "metaBinlog")]
    pub meta_binlog: String,
    #[serde(rename = "metaBinlogGTID")]
    pub meta_binlog_gtid: String,
    pub bps: i64,
}

/// DM's `SyncStatus`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SyncStatusView {
    #[serde(rename = "totalEvents")]
    pub total_events: i64,
    #[serde(rename = "totalTps")]
    pub total_tps: i64,
    #[serde(rename = "recentTps")]
    pub recent_tps: i64,
    #[serde(rename = "masterBinlog")]
    pub master_binlog: String,
    #[serde(rename = "masterBinlogGtid")]
    pub master_binlog_gtid: String,
    #[serde(rename = "syncerBinlog")]
    pub syncer_binlog: String,
    #[serde(rename = "syncerBinlogGtid")]
    pub syncer_binlog_gtid: String,
    #[serde(rename = "blockingDDLs")]
    pub blocking_ddls: Vec<String>,
    pub synced: bool,
    #[serde(rename = "binlogType")]
    pub binlog_type: String,
    #[serde(rename = "secondsBehindMaster")]
    pub seconds_behind_master: i64,
    #[serde(rename = "totalRows")]
    pub total_rows: i64,
    #[serde(rename = "totalRps")]
    pub total_rps: i64,
    #[serde(rename = "recentRps")]
    pub recent_rps: i64,
    /// dm-rs: shard DROP TABLE / TRUNCATE TABLE / DROP DATABASE statements kept from their
    /// merge target.
    #[serde(rename = "skippedShardDDLs")]
    pub skipped_shard_ddls: i64,
    /// Sharding groups with pending DDLs (pessimistic shard mode).
    #[serde(rename = "unresolvedGroups")]
    pub unresolved_groups: Vec<ShardingGroupView>,
}

/// DM's `ShardingGroup` of query-status.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ShardingGroupView {
    pub target: String,
    #[serde(rename = "DDLs")]
    pub ddls: Vec<String>,
    #[serde(rename = "firstLocation")]
    pub first_location: String,
    pub synced: Vec<String>,
    pub unsynced: Vec<String>,
}

/// DM's `SubTaskStatus` (one task on one source). `stage` is `Running`, `Paused`,
/// `Stopped` or `Finished`; `unit` is `Dump`, `Load`, `Sync` (or `InvalidUnit` before the
/// first unit started).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SubTaskStatusView {
    pub name: String,
    pub stage: String,
    pub unit: String,
    pub result: Option<ProcessResult>,
    #[serde(rename = "unresolvedDDLLockID")]
    pub unresolved_ddl_lock_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dump: Option<DumpStatusView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load: Option<LoadStatusView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync: Option<SyncStatusView>,
}

/// DM's `SourceStatus`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SourceStatusView {
    pub source: String,
    pub worker: String,
    pub result: Option<ProcessResult>,
}

/// DM's `QueryStatusResponse`: one source's answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct QueryStatusResponse {
    pub result: bool,
    pub msg: String,
    #[serde(rename = "sourceStatus")]
    pub source_status: SourceStatusView,
    #[serde(rename = "subTaskStatus")]
    pub sub_task_status: Vec<SubTaskStatusView>,
}

/// GET `/apis/v1alpha1/status/{name}` (and `/apis/v1alpha1/status` for every task), query
/// `sources=a&sources=b` (dmctl `query-status`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct QueryStatusListResponse {
    pub result: bool,
    pub msg: String,
    pub sources: Vec<QueryStatusResponse>,
}

/// DM's `MasterInfo`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MasterInfo {
    pub name: String,
    #[serde(rename = "memberID")]
    pub member_id: u64,
    pub alive: bool,
    #[serde(rename = "peerURLs")]
    pub peer_urls: Vec<String>,
    #[serde(rename = "clientURLs")]
    pub client_urls: Vec<String>,
}

/// DM's `WorkerInfo` as listed: `stage` is `offline`, `free` or `bound`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ListedWorker {
    pub name: String,
    pub addr: String,
    pub stage: String,
    pub source: String,
}

/// DM's `ListLeaderMember`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ListLeaderMember {
    pub msg: String,
    pub name: String,
    pub addr: String,
}

/// DM's `ListMasterMember`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ListMasterMember {
    pub msg: String,
    pub masters: Vec<MasterInfo>,
}

/// DM's `ListWorkerMember`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ListWorkerMember {
    pub msg: String,
    pub workers: Vec<ListedWorker>,
}

/// DM's `Members` (a oneof: exactly one field is set).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Members {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader: Option<ListLeaderMember>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master: Option<ListMasterMember>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker: Option<ListWorkerMember>,
}

/// GET `/apis/v1alpha1/members?leader=true&master=true&worker=true&names=a` (dmctl
/// `list-member`; no flag = all three).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ListMemberResponse {
    pub result: bool,
    pub msg: String,
    pub members: Vec<Members>,
}

/// Worker → master: POST `/internal/v1/workers/register`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RegisterWorkerRequest {
    pub name: String,
    /// The worker's advertise address (host:port of its HTTP server).
    pub address: String,
}

/// Answer to [`RegisterWorkerRequest`]: where the cluster's etcd is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RegisterWorkerResponse {
    pub result: bool,
    pub msg: String,
    /// Client URLs of every etcd member (`http://host:port`).
    pub etcd_endpoints: Vec<String>,
    /// The master's secret key (hex) for encrypted passwords in source configs; empty when
    /// the master has none (DM sends it in `RegisterWorkerResponse.secretKey`).
    #[serde(default)]
    pub secret_key: String,
}

/// Master → worker: GET `/internal/v1/status?task=<name>` (no `task` = every task) answers
/// the worker's view of its bound source. `result` is false with `msg` when the worker is not
/// bound or holds no lease.
pub type WorkerStatusResponse = QueryStatusResponse;

/// DM's text of an error in a `msg` field: `[code=…:class=…:scope=…:level=…], Message: …,
/// RawCause: …, Workaround: …` (parts that are empty are left out).
pub fn error_msg(e: &crate::error::DmError) -> String {
    let mut s = format!(
        "[code={}:class={}:scope={}:level={}]",
        e.code,
        e.class.name(),
        e.scope.name(),
        e.level.name()
    );
    if !e.message.is_empty() {
        s.push_str(", Message: ");
        s.push_str(&e.message);
    }
    if !e.causes.is_empty() {
        s.push_str(", RawCause: ");
        s.push_str(&e.causes.join(": "));
    }
    if !e.workaround.is_empty() {
        s.push_str(", Workaround: ");
        s.push_str(&e.workaround);
    }
    s
}

/// DM's `ShowDDLLocksResponse`.
#[derive(Debug, Serialize, Deserialize, Default)]
pub struct ShowDdlLocksResponse {
    pub result: bool,
    pub msg: String,
    pub locks: Vec<crate::shardddl::pessimism::LockView>,
}

/// DM's `UnlockDDLLockRequest` (`op`: 1 skip, 2 exec).
#[derive(Debug, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct UnlockDdlLockRequest {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "replaceOwner")]
    pub replace_owner: String,
    #[serde(rename = "forceRemove")]
    pub force_remove: bool,
    pub op: i32,
    pub sources: Vec<String>,
    pub database: String,
    pub table: String,
}

/// DM's lock op numbers.
pub const SKIP_LOCK: i32 = 1;
pub const EXEC_LOCK: i32 = 2;
