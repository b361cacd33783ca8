//! OpenAPI JSON models with DM's field names (`openapi/spec/dm.yaml` in DM), and strict
//! parsing of request bodies.
//!
//! Optional fields of DM's spec are `Option`s and are left out of answers when `None` (DM's
//! generated Go types use `omitempty` pointers). Required fields have no default, so a body
//! missing one is an error naming it. Unknown keys are errors too: [`from_value`] lists every
//! unknown key with its path (`source.purge.intervl`), as the YAML and TOML loaders do.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::config::Issues;
use crate::error::{DmError, codes};

/// TLS material of a connection. Answers never carry the contents.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Security {
    pub ssl_ca_content: String,
    pub ssl_cert_content: String,
    pub ssl_key_content: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_allowed_cn: Option<Vec<String>>,
}

/// Relay log purging (`purge` of source.yaml).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Purge {
    /// Seconds between purge checks (3600).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<u64>,
    /// Hours after which relay files are purged (0 = never).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<u64>,
    /// GB of free space below which relay files are purged (15).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remain_space: Option<u64>,
}

/// Relay settings of a source.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RelayConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_relay: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay_binlog_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay_binlog_gtid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay_dir: Option<String>,
}

/// Relay status of a source on its worker.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RelayStatus {
    pub master_binlog: String,
    pub master_binlog_gtid: String,
    pub relay_dir: String,
    pub relay_binlog_gtid: String,
    pub relay_catch_up_master: bool,
    pub stage: String,
}

/// Status of a source: the worker it is bound to, relay, and errors.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SourceStatus {
    pub source_name: String,
    pub worker_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay_status: Option<RelayStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_msg: Option<String>,
}

/// An upstream data source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    pub source_name: String,
    pub host: String,
    pub port: u16,
    pub user: String,
    /// Plain or DM cipher text in requests (absent on update = keep the old one); always
    /// `******` in answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    pub enable_gtid: bool,
    pub enable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flavor: Option<String>,
    /// Tasks using the source (answers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_name_list: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<Security>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purge: Option<Purge>,
    /// Answers with `with_status=true` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_list: Option<Vec<SourceStatus>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay_config: Option<RelayConfig>,
}

/// Target database session settings (only `foreign_key_checks`, `"0"` or `"1"`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TaskTargetSession {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub foreign_key_checks: Option<String>,
}

/// The downstream of a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskTargetDataBase {
    pub host: String,
    pub port: u16,
    pub user: String,
    /// Plain or DM cipher text in requests; `******` in answers.
    pub password: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<Security>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<TaskTargetSession>,
}

/// A named binlog event filter template: events and statements to ignore.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TaskBinLogFilterRule {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignore_event: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignore_sql: Option<Vec<String>>,
}

/// Upstream side of a table migrate rule (wildcards allowed; empty `table` = whole schema).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskTableMigrateRuleSource {
    pub source_name: String,
    pub schema: String,
    #[serde(default)]
    pub table: String,
}

/// Downstream side of a table migrate rule (no wildcards).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TaskTableMigrateRuleTarget {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
}

/// Which upstream tables migrate, where to, and with which filters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskTableMigrateRule {
    pub source: TaskTableMigrateRuleSource,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<TaskTableMigrateRuleTarget>,
    /// Names of `binlog_filter_rule` templates applied to these tables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binlog_filter_rule: Option<Vec<String>>,
}

/// Dump and load settings shared by every source of the task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TaskFullMigrateConf {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub export_threads: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub import_threads: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consistency: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub import_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sorting_dir: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_quota: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub analyze: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range_concurrency: Option<u32>,
    /// DM's spec spells this one with dashes.
    #[serde(rename = "compress-kv-pairs", skip_serializing_if = "Option::is_none")]
    pub compress_kv_pairs: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pd_addr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security: Option<Security>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_duplicate_logical: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_duplicate_physical: Option<String>,
}

/// Replication settings shared by every source of the task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TaskIncrMigrateConf {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repl_threads: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repl_batch: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub safe_mode: Option<bool>,
}

/// One source of the task, with where incremental replication starts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskSourceConf {
    pub source_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binlog_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binlog_pos: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binlog_gtid: Option<String>,
}

/// The sources of a task and their unit settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskSourceConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_migrate_conf: Option<TaskFullMigrateConf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incr_migrate_conf: Option<TaskIncrMigrateConf>,
    pub source_conf: Vec<TaskSourceConf>,
}

/// A migration task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub name: String,
    /// `full`, `incremental`, `all`, `dump`, `load` (dm-rs also takes `load&sync`).
    pub task_mode: String,
    /// `pessimistic` or `optimistic`; absent = no shard merge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict_optimistic_shard_mode: Option<bool>,
    /// Downstream schema of the task's meta tables (`dm_meta`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta_schema: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// `online-ddl` of task.yaml.
    pub enhance_online_schema_change: bool,
    /// `replace`, `error` or `ignore`.
    pub on_duplicate: String,
    pub target_config: TaskTargetDataBase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binlog_filter_rule: Option<BTreeMap<String, TaskBinLogFilterRule>>,
    pub table_migrate_rule: Vec<TaskTableMigrateRule>,
    pub source_config: TaskSourceConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_checking_items: Option<Vec<String>>,
    /// Answers with `with_status=true` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_list: Option<Vec<SubTaskStatus>>,
}

/// Dump unit progress.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DumpStatus {
    pub total_tables: i64,
    pub completed_tables: f64,
    pub finished_bytes: f64,
    pub finished_rows: f64,
    pub estimate_total_rows: f64,
    pub bps: i64,
    pub progress: String,
}

/// Load unit progress.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LoadStatus {
    pub finished_bytes: i64,
    pub total_bytes: i64,
    pub progress: String,
    pub meta_binlog: String,
    pub meta_binlog_gtid: String,
    pub bps: i64,
}

/// A shard DDL group not yet resolved.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ShardingGroup {
    pub target: String,
    pub ddl_list: Vec<String>,
    pub first_location: String,
    pub synced: Vec<String>,
    pub unsynced: Vec<String>,
}

/// Sync unit progress.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SyncStatus {
    pub total_events: i64,
    pub total_tps: i64,
    pub recent_tps: i64,
    pub master_binlog: String,
    pub master_binlog_gtid: String,
    pub syncer_binlog: String,
    pub syncer_binlog_gtid: String,
    pub blocking_ddls: Vec<String>,
    pub unresolved_groups: Vec<ShardingGroup>,
    pub synced: bool,
    pub binlog_type: String,
    pub seconds_behind_master: i64,
    pub io_total_bytes: u64,
    pub dump_io_total_bytes: u64,
}

/// One task on one source.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SubTaskStatus {
    pub name: String,
    pub source_name: String,
    pub worker_name: String,
    /// `Stopped`, `Running`, `Finished` or `Paused`.
    pub stage: String,
    /// `Dump`, `Load`, `Sync` (dm-rs writes the unit as DM's query-status does).
    pub unit: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unresolved_ddl_lock_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_status: Option<LoadStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync_status: Option<SyncStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dump_status: Option<DumpStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_msg: Option<String>,
}

/// A dm-master member.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterMaster {
    pub name: String,
    pub alive: bool,
    pub leader: bool,
    pub addr: String,
}

/// A dm-worker: `bound_stage` is `offline`, `free` or `bound`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterWorker {
    pub name: String,
    pub addr: String,
    pub bound_stage: String,
    pub bound_source_name: String,
}

/// Every list answer: `{total, data}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ListResponse<T> {
    pub total: usize,
    pub data: Vec<T>,
}

impl<T> ListResponse<T> {
    /// Wraps `data`, counting it.
    pub fn new(data: Vec<T>) -> Self {
        Self {
            total: data.len(),
            data,
        }
    }
}

/// The body of every error answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorWithMessage {
    pub error_msg: String,
    pub error_code: u32,
}

/// POST `/api/v1/sources`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateSourceRequest {
    pub source: Source,
    /// Bind the source to this worker instead of any free one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_name: Option<String>,
}

/// PUT `/api/v1/sources/{source-name}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateSourceRequest {
    pub source: Source,
}

/// POST `/api/v1/tasks`, PUT `/api/v1/tasks/{task-name}`. dm-rs also accepts `task` as a
/// string holding task.yaml: parse such bodies with
/// [`task_from_request`](super::convert::task_from_request) instead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateTaskRequest {
    pub task: Task,
}

/// Answer to task create and update: the task and the precheck's text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperateTaskResponse {
    pub task: Task,
    pub check_result: String,
}

/// POST `/api/v1/tasks/{task-name}/start`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StartTaskRequest {
    /// Remove the task's checkpoints and meta tables downstream first.
    pub remove_meta: bool,
    /// Start on these sources only; absent = every source of the task.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_name_list: Option<Vec<String>>,
    /// Start replication from this time (`2006-01-02T15:04:05+08:00`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// Safe mode for this long after the start (`10s`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub safe_mode_time_duration: Option<String>,
}

/// POST `/api/v1/tasks/{task-name}/stop`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StopTaskRequest {
    /// How long to wait for the current transaction (`15s`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_duration: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_name_list: Option<Vec<String>>,
}

/// POST `/api/v1/sources/{source-name}/transfer`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerNameRequest {
    pub worker_name: String,
}

fn render_ignored(p: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path as P;
    match p {
        P::Root => String::new(),
        P::Seq { parent, index } => format!("{}[{index}]", render_ignored(parent)),
        P::Map { parent, key } => {
            let head = render_ignored(parent);
            if head.is_empty() {
                key.to_string()
            } else {
                format!("{head}.{key}")
            }
        }
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
            render_ignored(parent)
        }
    }
}

fn join_path(prefix: &str, path: &str) -> String {
    match (prefix.is_empty(), path.is_empty()) {
        (true, _) => path.to_string(),
        (false, true) => prefix.to_string(),
        (false, false) if path.starts_with('[') => format!("{prefix}{path}"),
        (false, false) => format!("{prefix}.{path}"),
    }
}

/// Deserializes `value` into `T`, recording every unknown key (with
/// [`codes::CONFIG_UNKNOWN_KEY`]) and a type error or missing field (with
/// [`codes::OPENAPI_COMMON`]) into `issues`, each at its path below `prefix`.
pub fn parse_value<T: DeserializeOwned>(
    value: serde_json::Value,
    prefix: &str,
    issues: &mut Issues,
) -> Option<T> {
    let mut unknown = Vec::new();
    let result: Result<T, _> = {
        let mut record = |p: serde_ignored::Path<'_>| unknown.push(render_ignored(&p));
        let tracked = serde_ignored::Deserializer::new(value, &mut record);
        serde_path_to_error::deserialize(tracked)
    };
    for key in unknown {
        issues.push(
            join_path(prefix, &key),
            &codes::CONFIG_UNKNOWN_KEY,
            "unknown key",
        );
    }
    match result {
        Ok(v) => Some(v),
        Err(e) => {
            let path = e.path().to_string();
            let path = if path == "." { String::new() } else { path };
            issues.push(
                join_path(prefix, &path),
                &codes::OPENAPI_COMMON,
                e.inner().to_string(),
            );
            None
        }
    }
}

/// Strictly parses a JSON request body: every unknown key, or the type error, in one
/// [`DmError`] naming `what` (`request body of POST /api/v1/sources`).
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value, what: &str) -> Result<T, DmError> {
    let mut issues = Issues::default();
    let parsed = parse_value(value, "", &mut issues);
    issues.into_result(what, &codes::OPENAPI_COMMON)?;
    Ok(parsed.expect("no issues means parsed"))
}

/// [`from_value`] over raw bytes; an empty body parses as `{}` (so bodies whose fields are
/// all optional may be left out).
pub fn from_slice<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, DmError> {
    let value = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::Value::Object(Default::default())
    } else {
        serde_json::from_slice(body).map_err(|e| {
            DmError::new(
                &codes::OPENAPI_COMMON,
                format!("{what} is not valid JSON: {e}"),
            )
        })?
    };
    from_value(value, what)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn source_json() -> serde_json::Value {
        json!({
            "source_name": "mysql-01", "host": "127.0.0.1", "port": 3306, "user": "root",
            "password": "123456", "enable_gtid": false, "enable": true,
            "purge": {"interval": 3600},
        })
    }

    #[test]
    fn every_unknown_key_is_listed_with_its_path() {
        let mut body = json!({ "source": source_json(), "wroker_name": "w1" });
        body["source"]["purge"]["intervl"] = json!(1);
        body["source"]["hots"] = json!("x");
        let err = from_value::<CreateSourceRequest>(body, "request body").unwrap_err();
        assert_eq!(err.code, codes::CONFIG_UNKNOWN_KEY.code);
        for key in ["`wroker_name`", "`source.purge.intervl`", "`source.hots`"] {
            assert!(err.message.contains(key), "{key} in {}", err.message);
        }
        assert!(err.message.contains("3 problems"), "{}", err.message);
    }

    #[test]
    fn missing_and_mistyped_fields_name_the_path() {
        let mut body = json!({ "source": source_json() });
        body["source"].as_object_mut().unwrap().remove("host");
        let err = from_value::<CreateSourceRequest>(body, "request body").unwrap_err();
        assert_eq!(err.code, codes::OPENAPI_COMMON.code);
        assert!(
            err.message.contains("`source`") && err.message.contains("host"),
            "{}",
            err.message
        );

        let mut body = json!({ "source": source_json() });
        body["source"]["port"] = json!("3306");
        let err = from_value::<CreateSourceRequest>(body, "request body").unwrap_err();
        assert!(err.message.contains("`source.port`"), "{}", err.message);
    }

    #[test]
    fn a_good_body_parses_and_round_trips() {
        let req: CreateSourceRequest =
            from_value(json!({ "source": source_json(), "worker_name": "w1" }), "b").unwrap();
        assert_eq!(req.source.port, 3306);
        assert_eq!(req.worker_name.as_deref(), Some("w1"));
        let back = serde_json::to_value(&req).unwrap();
        assert_eq!(back["source"]["purge"], json!({"interval": 3600}));
        assert!(
            back["source"].get("flavor").is_none(),
            "None fields are left out"
        );
    }

    #[test]
    fn optional_bodies_may_be_empty() {
        let r: StartTaskRequest = from_slice(b"", "b").unwrap();
        assert!(!r.remove_meta);
        let r: StopTaskRequest = from_slice(br#"{"timeout_duration":"15s"}"#, "b").unwrap();
        assert_eq!(r.timeout_duration.as_deref(), Some("15s"));
        assert!(from_slice::<StopTaskRequest>(b"{", "b").is_err());
        assert!(from_slice::<WorkerNameRequest>(b"{}", "b").is_err());
    }

    #[test]
    fn list_and_error_shapes() {
        let l = ListResponse::new(vec![ClusterMaster {
            name: "m1".into(),
            alive: true,
            leader: true,
            addr: "127.0.0.1:8261".into(),
        }]);
        assert_eq!(
            serde_json::to_value(&l).unwrap(),
            json!({"total": 1, "data": [{"name": "m1", "alive": true, "leader": true, "addr": "127.0.0.1:8261"}]})
        );
    }
}
