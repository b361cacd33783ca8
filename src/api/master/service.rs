//! The master's operations on sources and tasks, shared by the gateway (dmctl) and the
//! OpenAPI: strict parsing, validation against the Scheduler's state, precheck, the
//! Scheduler call, and the extra writes DM does around start-task (`--remove-meta`,
//! task-cli-args).

use std::collections::BTreeMap;

use etcd_client::{DeleteOptions, Txn, TxnOp};
use mysql_async::prelude::Queryable;
use tracing::{info, warn};

use super::MasterState;
use crate::checker::{self, CheckReport};
use crate::config::db::DbConfig;
use crate::config::{Secret, SecretKey, SourceConfig, SubTaskConfig, TaskConfig};
use crate::db::meta::MetaTable;
use crate::error::{DmError, codes};
use crate::messages::master::{
    AddSource, ClusterView, DeleteTask, RemoveSource, SetStage, StartTask, TransferSource,
    UpdateSource,
};
use crate::store::etcd::ha::Stage;
use crate::store::etcd::keys;

/// Parses every source YAML strictly (`SourceConfig::from_yaml`); one bad text fails all.
pub fn parse_sources(texts: &[String]) -> Result<Vec<SourceConfig>, DmError> {
    texts
        .iter()
        .enumerate()
        .map(|(i, t)| SourceConfig::from_yaml(t, &format!("request config #{}", i + 1)))
        .collect()
}

/// Adds `cfgs` in order (bound to `worker` when given). On the first failure the sources
/// added so far are removed again, so the same request can be sent once the cause is fixed.
pub async fn add_sources(
    state: &MasterState,
    cfgs: Vec<SourceConfig>,
    worker: Option<String>,
) -> Result<Vec<String>, DmError> {
    let mut added: Vec<String> = Vec::new();
    for cfg in cfgs {
        let id = cfg.source_id.clone();
        let res = state
            .ask(AddSource {
                cfg,
                worker: worker.clone(),
            })
            .await;
        if let Err(e) = res {
            for sid in &added {
                if let Err(e2) = remove_source(state, sid, false).await {
                    warn!(source = %sid, code = e2.code, error = %e2.chain(), "reverting a started source failed");
                }
            }
            return Err(e);
        }
        info!(source = %id, worker = ?worker, "source added");
        added.push(id);
    }
    Ok(added)
}

/// Replaces the config of existing sources.
pub async fn update_sources(state: &MasterState, cfgs: Vec<SourceConfig>) -> Result<(), DmError> {
    for cfg in cfgs {
        let id = cfg.source_id.clone();
        state.ask(UpdateSource { cfg }).await?;
        info!(source = %id, "source updated");
    }
    Ok(())
}

/// Removes a source (with its subtasks only when `force`).
pub async fn remove_source(state: &MasterState, source: &str, force: bool) -> Result<(), DmError> {
    state
        .ask(RemoveSource {
            source: source.to_string(),
            force,
        })
        .await?;
    info!(source = %source, force, "source removed");
    Ok(())
}

/// The source config with every password replaced by `******`.
pub fn redacted(cfg: &SourceConfig) -> SourceConfig {
    let mut c = cfg.clone();
    if !c.from.password.is_empty() {
        c.from.password = Secret::new(c.from.password.redacted());
    }
    c
}

/// The source config as YAML, password shown as `******` (operate-source show).
pub fn redacted_yaml(cfg: &SourceConfig) -> String {
    serde_yaml_ng::to_string(&redacted(cfg)).unwrap_or_else(|e| format!("# cannot render: {e}"))
}

/// The source config of `source`, or `SCHEDULER_SOURCE_CFG_NOT_EXIST`.
pub fn source_of<'a>(view: &'a ClusterView, source: &str) -> Result<&'a SourceConfig, DmError> {
    view.sources.get(source).ok_or_else(|| {
        DmError::new(
            &codes::SCHEDULER_SOURCE_CFG_NOT_EXIST,
            format!("source `{source}` does not exist"),
        )
    })
}

/// Parses a task YAML strictly (`TaskConfig::from_yaml`).
pub fn parse_task(text: &str) -> Result<TaskConfig, DmError> {
    TaskConfig::from_yaml(text, "request task")
}

/// A validated task ready to start: its sources' configs and its subtasks (filtered to the
/// requested sources, upstream filled in).
#[derive(Debug, Clone)]
pub struct PreparedTask {
    pub cfg: TaskConfig,
    /// Config of every source of the task.
    pub sources: BTreeMap<String, SourceConfig>,
    pub subtasks: Vec<SubTaskConfig>,
}

impl PreparedTask {
    /// Source ids of the subtasks.
    pub fn subtask_sources(&self) -> Vec<String> {
        self.subtasks.iter().map(|s| s.source_id.clone()).collect()
    }
}

/// Checks every source of `cfg` exists (`CONFIG_SOURCE_ID_NOT_FOUND`, as DM) and builds the subtasks of the sources in `only`
/// (empty = all of the task's sources; each must be one of them).
pub async fn prepare_task(
    state: &MasterState,
    cfg: TaskConfig,
    only: &[String],
) -> Result<PreparedTask, DmError> {
    let view = state.view().await?;
    let mut sources = BTreeMap::new();
    for inst in &cfg.mysql_instances {
        let src = view.sources.get(&inst.source_id).ok_or_else(|| {
            DmError::new(
                &codes::CONFIG_SOURCE_ID_NOT_FOUND,
                format!(
                    "source `{}` of task `{}` is not found; create it first",
                    inst.source_id, cfg.name
                ),
            )
        })?;
        sources.insert(inst.source_id.clone(), src.clone());
    }
    if let Some(s) = only.iter().find(|s| !sources.contains_key(*s)) {
        return Err(DmError::new(
            &codes::CONFIG_SOURCE_ID_NOT_FOUND,
            format!(
                "source `{s}` is not in the mysql-instances of task `{}`",
                cfg.name
            ),
        ));
    }
    let subtasks = cfg
        .subtasks()
        .into_iter()
        .filter(|st| only.is_empty() || only.contains(&st.source_id))
        .map(|mut st| {
            st.apply_source(&sources[&st.source_id]);
            st
        })
        .collect();
    Ok(PreparedTask {
        cfg,
        sources,
        subtasks,
    })
}

/// Runs the precheck of a prepared task against all of its sources.
pub async fn precheck(state: &MasterState, task: &PreparedTask) -> CheckReport {
    checker::check_task(&task.cfg, &task.sources, state.handle.secret_key()).await
}

/// Checks `start-time` is `YYYY-MM-DD HH:MM:SS` (or with `T` between date and time),
/// optionally followed by `Z` or a `±HH:MM` offset (the OpenAPI's RFC 3339 form).
pub fn check_start_time(s: &str) -> Result<(), DmError> {
    let b = s.as_bytes();
    let digits = |b: &[u8], r: std::ops::Range<usize>| r.into_iter().all(|i| b[i].is_ascii_digit());
    let base = b.len() >= 19
        && digits(b, 0..4)
        && b[4] == b'-'
        && digits(b, 5..7)
        && b[7] == b'-'
        && digits(b, 8..10)
        && (b[10] == b' ' || b[10] == b'T')
        && digits(b, 11..13)
        && b[13] == b':'
        && digits(b, 14..16)
        && b[16] == b':'
        && digits(b, 17..19);
    let zone = b.get(19..).unwrap_or_default();
    let zone_ok = matches!(zone, [] | [b'Z'])
        || (zone.len() == 6
            && (zone[0] == b'+' || zone[0] == b'-')
            && digits(zone, 1..3)
            && zone[3] == b':'
            && digits(zone, 4..6));
    if base && zone_ok {
        Ok(())
    } else {
        Err(DmError::new(
            &codes::CONFIG_INVALID_VALUE,
            format!("start-time `{s}` is not like `2021-10-21 00:01:00`"),
        ))
    }
}

/// Starts a prepared task: `remove_meta` first drops its checkpoints downstream and its
/// shard-DDL meta in etcd (only while no subtask of the task exists), `start_time` is stored
/// in `/dm-master/task-cli-args/` as DM does (dm-rs workers do not read it yet: the task
/// starts from its meta or checkpoint), then the Scheduler writes the subtasks with stage
/// Running. Returns the sources started.
pub async fn start_task(
    state: &MasterState,
    task: &PreparedTask,
    remove_meta: bool,
    start_time: &str,
    stage: Stage,
) -> Result<Vec<String>, DmError> {
    if !start_time.is_empty() {
        check_start_time(start_time)?;
    }
    let name = &task.cfg.name;
    let sources = task.subtask_sources();
    if remove_meta {
        let view = state.view().await?;
        let existing: Vec<&String> = view
            .subtasks
            .keys()
            .filter(|k| k.task.0 == *name)
            .map(|k| &k.source.0)
            .collect();
        if !existing.is_empty() {
            return Err(DmError::new(
                &codes::SCHEDULER_SUBTASK_EXIST,
                format!(
                    "task `{name}` already has subtasks on {existing:?}; stop it before starting with remove-meta"
                ),
            ));
        }
        let target = task.cfg.target_database.as_ref().ok_or_else(|| {
            DmError::new(
                &codes::CONFIG_NEED_TARGET_DB,
                "remove-meta needs target-database",
            )
        })?;
        remove_downstream_meta(
            name,
            &task.cfg.meta_schema,
            target,
            state.handle.secret_key(),
        )
        .await?;
        remove_shard_meta(state, name).await?;
    }
    put_cli_args(state, name, &sources, start_time, "").await?;
    state
        .ask(StartTask {
            subtasks: task.subtasks.clone(),
            stage,
        })
        .await?;
    info!(task = %name, sources = ?sources, remove_meta, "task started");
    Ok(sources)
}

/// The downstream tables holding the progress of `task` in `meta_schema`.
fn meta_tables(task: &str, meta_schema: &str) -> Vec<String> {
    MetaTable::ALL
        .iter()
        .map(|t| t.name(meta_schema, task))
        .collect()
}

/// Drops the checkpoint tables of `task` (in `meta_schema`) on the downstream `target`.
pub async fn remove_downstream_meta(
    task: &str,
    meta_schema: &str,
    target: &DbConfig,
    key: Option<&SecretKey>,
) -> Result<(), DmError> {
    let mut conn = mysql_async::Conn::new(target.to_opts(key))
        .await
        .map_err(|e| {
            DmError::new(
                &codes::DB_BAD_CONN,
                format!(
                    "connecting downstream {}:{} to remove the meta of task `{task}`",
                    target.host, target.port
                ),
            )
            .with_cause(e)
        })?;
    for t in meta_tables(task, meta_schema) {
        conn.query_drop(format!("DROP TABLE IF EXISTS {t}"))
            .await
            .map_err(|e| {
                DmError::new(&codes::DB_EXECUTE_FAILED, format!("dropping {t}")).with_cause(e)
            })?;
    }
    let _ = conn.disconnect().await;
    info!(task = %task, meta_schema = %meta_schema, "task meta removed downstream");
    Ok(())
}

fn etcd_err(what: impl Into<String>) -> impl FnOnce(etcd_client::Error) -> DmError {
    let what = what.into();
    move |e| DmError::new(&codes::HA_FAIL_TXN_OPERATION, what).with_cause(e)
}

/// Deletes the task's shard-DDL infos, operations and source tables in etcd.
async fn remove_shard_meta(state: &MasterState, task: &str) -> Result<(), DmError> {
    crate::store::etcd::shardddl::delete_task(&mut state.handle.etcd(), task).await?;
    let forget = || crate::messages::shardddl::ForgetTask {
        task: task.to_string(),
    };
    if let Ok(p) = state.handle.pessimist() {
        let _ = p.send(forget()).await;
    }
    if let Ok(o) = state.handle.optimist() {
        let _ = o.send(forget()).await;
    }
    Ok(())
}

/// DM's `TaskCliArgs` JSON.
#[derive(serde::Serialize)]
struct TaskCliArgs<'a> {
    start_time: &'a str,
    safe_mode_duration: &'a str,
    wait_time_on_stop: &'a str,
}

/// Stores `start_time` and `safe_mode_duration` per (task, source) in
/// `/dm-master/task-cli-args/`, or clears the task's args when both are empty.
pub async fn put_cli_args(
    state: &MasterState,
    task: &str,
    sources: &[String],
    start_time: &str,
    safe_mode_duration: &str,
) -> Result<(), DmError> {
    let mut etcd = state.handle.etcd();
    if start_time.is_empty() && safe_mode_duration.is_empty() {
        etcd.delete(
            keys::prefix(keys::TASK_CLI_ARGS, &[task]),
            Some(DeleteOptions::new().with_prefix()),
        )
        .await
        .map_err(etcd_err(format!(
            "removing the start arguments of task `{task}`"
        )))?;
        return Ok(());
    }
    let value = serde_json::to_string(&TaskCliArgs {
        start_time,
        safe_mode_duration,
        wait_time_on_stop: "",
    })
    .expect("cli args serialize");
    let ops = sources
        .iter()
        .map(|s| {
            TxnOp::put(
                keys::key(keys::TASK_CLI_ARGS, &[task, s]),
                value.clone(),
                None,
            )
        })
        .collect::<Vec<_>>();
    etcd.txn(Txn::new().and_then(ops))
        .await
        .map_err(etcd_err(format!(
            "storing the start arguments of task `{task}`"
        )))?;
    Ok(())
}

/// The sources `task` has subtasks on, or `SCHEDULER_TASK_NOT_EXIST`.
pub fn task_sources(view: &ClusterView, task: &str) -> Result<Vec<String>, DmError> {
    let s: Vec<String> = view
        .subtasks
        .keys()
        .filter(|k| k.task.0 == task)
        .map(|k| k.source.0.clone())
        .collect();
    if s.is_empty() {
        return Err(super::status::task_not_exist(task));
    }
    Ok(s)
}

/// Sets the expected stage of `task` (None = every task) on `sources` (empty = all of the
/// task's); returns the sources changed.
pub async fn set_stage(
    state: &MasterState,
    task: Option<&str>,
    sources: &[String],
    stage: Stage,
) -> Result<Vec<String>, DmError> {
    let changed = state
        .ask(SetStage {
            task: task.map(str::to_string),
            sources: sources.to_vec(),
            stage,
        })
        .await?;
    info!(task = ?task, sources = ?changed, stage = stage.as_str(), "task stage set");
    Ok(changed)
}

/// Deletes the subtasks of `task` on `sources` (empty = all); returns the sources removed.
pub async fn delete_task(
    state: &MasterState,
    task: &str,
    sources: &[String],
) -> Result<Vec<String>, DmError> {
    let removed = state
        .ask(DeleteTask {
            task: task.to_string(),
            sources: sources.to_vec(),
        })
        .await?;
    info!(task = %task, sources = ?removed, "task stopped");
    Ok(removed)
}

/// `transfer-source`: when the source is bound to another worker and has Running tasks, they
/// are paused first and the old worker must report them Paused (units stopped, checkpoint
/// flushed) before the binding moves, so the source never runs on two workers at once; then
/// they are resumed on the new worker. A task that does not pause in time aborts the transfer
/// (code 46032) and is resumed where it was.
pub async fn transfer_source(
    state: &MasterState,
    source: &str,
    worker: &str,
) -> Result<(), DmError> {
    let view = state.view().await?;
    let moves = view.bound.get(source).is_some_and(|w| w != worker);
    let running: Vec<String> = view
        .subtasks
        .iter()
        .filter(|(k, v)| k.source.0 == source && v.expect == Stage::Running)
        .map(|(k, _)| k.task.0.clone())
        .collect();
    let sources = [source.to_string()];
    let pause_first = moves && !running.is_empty();
    if pause_first {
        for t in &running {
            set_stage(state, Some(t), &sources, Stage::Paused).await?;
        }
        for t in &running {
            let r = super::status::wait_operation(
                state,
                t,
                source,
                super::status::Expect::Stage(Stage::Paused),
            )
            .await;
            if !r.result {
                for t in &running {
                    let _ = set_stage(state, Some(t), &sources, Stage::Running).await;
                }
                return Err(DmError::new(
                    &codes::SCHEDULER_PAUSE_TASK_FOR_TRANSFER_SOURCE,
                    format!(
                        "task `{t}` on source `{source}` did not pause on its worker: {}",
                        r.msg
                    ),
                ));
            }
        }
    }
    let moved = state
        .ask(TransferSource {
            source: source.to_string(),
            worker: worker.to_string(),
        })
        .await;
    if pause_first {
        for t in &running {
            set_stage(state, Some(t), &sources, Stage::Running).await?;
        }
    }
    moved?;
    info!(source, worker, resumed = ?running, "source transferred");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_format() {
        assert!(check_start_time("2021-10-21 00:01:00").is_ok());
        assert!(check_start_time("2021-10-21T00:01:00").is_ok());
        assert!(check_start_time("2021-10-21T00:01:00+08:00").is_ok());
        assert!(check_start_time("2021-10-21T00:01:00Z").is_ok());
        assert!(check_start_time("2021-10-21T00:01:00+0800").is_err());
        assert!(check_start_time("2021-10-21").is_err());
        assert!(check_start_time("2021/10/21 00:01:00").is_err());
    }

    #[test]
    fn redacted_yaml_hides_the_password() {
        let cfg = SourceConfig::from_yaml(
            "source-id: s1\nfrom:\n  host: 127.0.0.1\n  port: 3306\n  user: root\n  password: topsecret\n",
            "t",
        )
        .unwrap();
        let y = redacted_yaml(&cfg);
        assert!(!y.contains("topsecret"), "{y}");
        assert!(y.contains("******"), "{y}");
        assert!(y.contains("source-id: s1"), "{y}");
    }

    #[test]
    fn meta_tables_are_dms_names() {
        let t = meta_tables("t1", "dm_meta");
        assert!(
            t.contains(&"`dm_meta`.`t1_syncer_checkpoint`".to_string()),
            "{t:?}"
        );
        assert!(
            t.contains(&"`dm_meta`.`t1_loader_checkpoint`".to_string()),
            "{t:?}"
        );
        assert!(
            t.contains(&"`dm_meta`.`t1_syncer_worker`".to_string()),
            "{t:?}"
        );
        assert!(
            t.contains(&"`dm_meta`.`t1_loader_index`".to_string()),
            "{t:?}"
        );
    }
}
