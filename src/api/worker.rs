//! dm-worker's HTTP routes: `/status`, `/metrics`, and the internal API the master calls:
//! GET `/internal/v1/status?task=<name>` → [`rpc::WorkerStatusResponse`] (DM's
//! `QueryStatusResponse` of the bound source; `result: false` with the DM-style error text in
//! `msg` when the worker holds no lease or is not bound).

use std::collections::HashMap;
use std::time::Instant;

use actix::Addr;
use actix_web::{HttpResponse, web};
use serde::Serialize;

use crate::actors::worker::master_probe::MasterProbeActor;
use crate::actors::worker::server::WorkerActor;
use crate::error::{DmError, codes};
use crate::messages::rpc::{
    self, DumpStatusView, LoadStatusView, ProcessError, ProcessResult, ShardingGroupView,
    SourceStatusView, SubTaskStatusView, SyncStatusView,
};
use crate::messages::worker::{
    MasterReachability, QueryMasters, QueryWorkerInfo, QueryWorkerStatus, SourceStatusReport,
    WorkerInfo,
};
use crate::messages::worker::{SubtaskStatus, Unit};

/// Shared state of the worker's handlers.
pub struct WorkerState {
    pub name: String,
    pub advertise_addr: String,
    pub probe: Addr<MasterProbeActor>,
    pub worker: Addr<WorkerActor>,
    pub started: Instant,
}

/// Body of `GET /status`.
#[derive(Debug, Serialize)]
pub struct WorkerStatus {
    pub name: String,
    pub version: &'static str,
    pub role: &'static str,
    pub advertise_addr: String,
    pub uptime_seconds: u64,
    pub masters: Vec<MasterReachability>,
    /// Registration, lease and binding.
    pub cluster: WorkerInfo,
}

async fn status(state: web::Data<WorkerState>) -> HttpResponse {
    let masters = state.probe.send(QueryMasters).await.unwrap_or_default();
    let cluster = state.worker.send(QueryWorkerInfo).await.unwrap_or_default();
    HttpResponse::Ok().json(WorkerStatus {
        name: state.name.clone(),
        version: super::VERSION,
        role: "worker",
        advertise_addr: state.advertise_addr.clone(),
        uptime_seconds: state.started.elapsed().as_secs(),
        masters,
        cluster,
    })
}

async fn internal_status(
    state: web::Data<WorkerState>,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let task = query.get("task").filter(|t| !t.is_empty()).cloned();
    let answer = state
        .worker
        .send(QueryWorkerStatus { task: task.clone() })
        .await
        .unwrap_or_else(|_| Err(DmError::bare(&codes::ACTOR_MAILBOX_CLOSED)));
    HttpResponse::Ok().json(status_response(&state.name, task.as_deref(), answer))
}

/// The internal status answer for `answer` (of `worker`, filtered on `task`).
pub fn status_response(
    worker: &str,
    task: Option<&str>,
    answer: Result<SourceStatusReport, DmError>,
) -> rpc::WorkerStatusResponse {
    match answer {
        Err(e) => rpc::WorkerStatusResponse {
            result: false,
            msg: rpc::error_msg(&e),
            source_status: SourceStatusView {
                worker: worker.to_string(),
                ..Default::default()
            },
            sub_task_status: Vec::new(),
        },
        Ok(report) => {
            let msg = match (report.subtasks.is_empty(), task) {
                (false, _) => String::new(),
                (true, Some(t)) => format!("no sub task with name `{t}` has started"),
                (true, None) => "no sub task started".to_string(),
            };
            rpc::WorkerStatusResponse {
                result: true,
                msg,
                source_status: SourceStatusView {
                    source: report.source,
                    worker: report.worker,
                    result: None,
                },
                sub_task_status: report.subtasks.iter().map(subtask_view).collect(),
            }
        }
    }
}

/// DM's `SubTaskStatus` of one subtask: stage and unit names, the current unit's status, and
/// the error (if any) in `result.errors`.
pub fn subtask_view(st: &SubtaskStatus) -> SubTaskStatusView {
    let unit = st.unit;
    SubTaskStatusView {
        name: st.name.clone(),
        stage: st.stage.clone(),
        unit: unit.map_or("InvalidUnit", Unit::as_str).to_string(),
        result: st.error.as_ref().map(|e| ProcessResult {
            is_canceled: false,
            errors: vec![ProcessError::from(e)],
        }),
        unresolved_ddl_lock_id: st
            .sync_status
            .as_ref()
            .map(|s| s.unresolved_ddl_lock_id.clone())
            .unwrap_or_default(),
        dump: match (unit, &st.dump_status) {
            (Some(Unit::Dump), Some(d)) => Some(DumpStatusView {
                total_tables: d.total_tables as i64,
                completed_tables: d.completed_tables as f64,
                finished_bytes: d.finished_bytes as f64,
                finished_rows: d.finished_rows as f64,
                estimate_total_rows: d.estimate_total_rows as f64,
                bps: d.bps as i64,
                progress: d.progress.clone(),
            }),
            _ => None,
        },
        load: match (unit, &st.load_status) {
            (Some(Unit::Load), Some(l)) => Some(LoadStatusView {
                finished_bytes: l.finished_bytes as i64,
                total_bytes: l.total_bytes as i64,
                progress: l.progress.clone(),
                meta_binlog: l.meta_binlog.clone(),
                meta_binlog_gtid: l.meta_binlog_gtid.clone(),
                bps: l.bps as i64,
            }),
            _ => None,
        },
        sync: match (unit, &st.sync_status) {
            (Some(Unit::Sync), Some(s)) => Some(SyncStatusView {
                total_events: s.total_events as i64,
                total_tps: s.total_tps as i64,
                recent_tps: s.total_tps as i64,
                master_binlog: s.master_binlog.clone(),
                master_binlog_gtid: s.master_binlog_gtid.clone(),
                syncer_binlog: s.syncer_binlog.clone(),
                syncer_binlog_gtid: s.syncer_binlog_gtid.clone(),
                blocking_ddls: s.blocking_ddls.clone(),
                synced: s.synced,
                binlog_type: "remote".to_string(),
                seconds_behind_master: s.seconds_behind_master as i64,
                total_rows: s.total_rows as i64,
                total_rps: s.total_tps as i64,
                recent_rps: s.total_tps as i64,
                skipped_shard_ddls: s.skipped_shard_ddls as i64,
                unresolved_groups: s
                    .unresolved_groups
                    .iter()
                    .map(|g| ShardingGroupView {
                        target: g.target.clone(),
                        ddls: g.ddls.clone(),
                        first_location: g.first_location.clone(),
                        synced: g.synced.clone(),
                        unsynced: g.unsynced.clone(),
                    })
                    .collect(),
            }),
            _ => None,
        },
    }
}

/// Mounts the worker's routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/status", web::get().to(status))
        .route("/metrics", web::get().to(super::metrics))
        .route("/internal/v1/status", web::get().to(internal_status));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::syncer::SyncStatus;

    #[test]
    fn sync_status_maps_to_dm_names() {
        let st = SubtaskStatus {
            name: "t".into(),
            source: "s".into(),
            stage: "Running".into(),
            unit: Some(Unit::Sync),
            sync_status: Some(SyncStatus {
                total_events: 7,
                master_binlog: "(mysql-bin.000001, 1234)".into(),
                syncer_binlog: "(mysql-bin.000001, 1000)".into(),
                synced: false,
                ..Default::default()
            }),
            ..Default::default()
        };
        let v = serde_json::to_value(subtask_view(&st)).unwrap();
        assert_eq!(v["unit"], "Sync");
        assert_eq!(v["sync"]["masterBinlog"], "(mysql-bin.000001, 1234)");
        assert_eq!(v["sync"]["syncerBinlog"], "(mysql-bin.000001, 1000)");
        assert_eq!(v["sync"]["totalEvents"], 7);
        assert!(v.get("dump").is_none());
    }

    #[test]
    fn errors_become_result_false_or_process_errors() {
        let r = status_response("w1", None, Err(DmError::bare(&codes::WORKER_NO_START)));
        assert!(!r.result);
        assert!(r.msg.contains("code=40070"), "{}", r.msg);
        assert_eq!(r.source_status.worker, "w1");
        let st = SubtaskStatus {
            name: "t".into(),
            stage: "Paused".into(),
            error: Some(DmError::new(&codes::DB_BAD_CONN, "down")),
            ..Default::default()
        };
        let v = subtask_view(&st);
        assert_eq!(v.unit, "InvalidUnit");
        assert_eq!(v.result.unwrap().errors[0].err_code, 10002);
    }
}
