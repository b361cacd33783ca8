//! DM's grpc-gateway API under `/apis/v1alpha1/`, which dmctl uses: DM's paths and JSON
//! shapes ([`crate::messages::rpc`]). Every answer is HTTP 200; a failure is `result: false` with
//! DM's error text in `msg`. Per-source outcomes go in `sources`.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::status::{self, Expect};
use super::{MasterState, members, service};
use crate::api::extract::{self, ApiQuery};
use crate::error::{DmError, codes};
use crate::messages::rpc::{
    self, CheckTaskRequest, CheckTaskResponse, CommonResponse, CommonWorkerResponse,
    ListLeaderMember, ListMasterMember, ListMemberResponse, ListWorkerMember, Members,
    OperateSourceRequest, OperateSourceResponse, OperateTaskRequest, OperateTaskResponse,
    QueryStatusListResponse, SourceOp, StartTaskRequest, StartTaskResponse, TaskOp,
    TransferSourceRequest,
};
use crate::store::etcd::ha::Stage;

fn ok<T: Serialize>(body: T) -> HttpResponse {
    HttpResponse::Ok().json(body)
}

/// `query-status` query: the sources to ask (grpc-gateway's repeated `sources`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct StatusQuery {
    #[serde(deserialize_with = "extract::list")]
    sources: Vec<String>,
}

/// `list-member` query.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct MemberQuery {
    #[serde(deserialize_with = "extract::flag")]
    leader: bool,
    #[serde(deserialize_with = "extract::flag")]
    master: bool,
    #[serde(deserialize_with = "extract::flag")]
    worker: bool,
    #[serde(deserialize_with = "extract::list")]
    names: Vec<String>,
}

fn failed_source(source: &str, e: &DmError) -> CommonWorkerResponse {
    CommonWorkerResponse {
        result: false,
        msg: rpc::error_msg(e),
        source: source.to_string(),
        worker: String::new(),
    }
}

// ---- sources ----

async fn operate_source(
    state: web::Data<MasterState>,
    req: web::Json<OperateSourceRequest>,
) -> HttpResponse {
    let req = req.into_inner();
    ok(match do_operate_source(&state, req).await {
        Ok(r) => r,
        Err(e) => OperateSourceResponse {
            result: false,
            msg: rpc::error_msg(&e),
            sources: Vec::new(),
        },
    })
}

async fn do_operate_source(
    state: &MasterState,
    req: OperateSourceRequest,
) -> Result<OperateSourceResponse, DmError> {
    let sources = match req.op {
        SourceOp::StartSource => {
            let cfgs = service::parse_sources(&req.config)?;
            if cfgs.is_empty() {
                return Err(DmError::new(
                    &codes::MASTER_INVALID_OPERATE,
                    "operate-source create needs at least one source config",
                ));
            }
            let worker = (!req.worker_name.is_empty()).then(|| req.worker_name.clone());
            let added = service::add_sources(state, cfgs, worker).await?;
            after_start_source(state, &added).await?
        }
        SourceOp::UpdateSource => {
            let cfgs = service::parse_sources(&req.config)?;
            let ids: Vec<String> = cfgs.iter().map(|c| c.source_id.clone()).collect();
            service::update_sources(state, cfgs).await?;
            let view = state.view().await?;
            ids.iter()
                .map(|s| CommonWorkerResponse {
                    result: true,
                    msg: String::new(),
                    source: s.clone(),
                    worker: view.bound.get(s).cloned().unwrap_or_default(),
                })
                .collect()
        }
        SourceOp::StopSource => {
            let mut ids = req.source_id.clone();
            ids.extend(
                service::parse_sources(&req.config)?
                    .into_iter()
                    .map(|c| c.source_id),
            );
            if ids.is_empty() {
                return Err(DmError::new(
                    &codes::MASTER_INVALID_OPERATE,
                    "operate-source stop needs source configs or source ids",
                ));
            }
            let view = state.view().await?;
            let mut out = Vec::new();
            for id in ids {
                service::remove_source(state, &id, false).await?;
                out.push(CommonWorkerResponse {
                    result: true,
                    msg: String::new(),
                    worker: view.bound.get(&id).cloned().unwrap_or_default(),
                    source: id,
                });
            }
            out
        }
        SourceOp::ShowSource => show_sources(state, &req.source_id).await?,
        SourceOp::InvalidSourceOp => {
            return Err(DmError::new(
                &codes::MASTER_INVALID_OPERATE,
                "invalid op InvalidSourceOp on source",
            ));
        }
    };
    Ok(OperateSourceResponse {
        result: true,
        msg: String::new(),
        sources,
    })
}

/// Per-source answers after adding sources: the bound worker once it reports the source, or
/// a note that no worker is free.
async fn after_start_source(
    state: &MasterState,
    added: &[String],
) -> Result<Vec<CommonWorkerResponse>, DmError> {
    let view = state.view().await?;
    let mut waits = Vec::new();
    let mut out = Vec::new();
    for s in added {
        if view.bound.contains_key(s) {
            waits.push(s.clone());
        } else {
            out.push(CommonWorkerResponse {
                result: true,
                msg: "source is added but there is no free worker to bound".into(),
                source: s.clone(),
                worker: String::new(),
            });
        }
    }
    out.extend(status::wait_all(state, "", &waits, Expect::SourceBound).await);
    out.sort_by(|a, b| a.source.cmp(&b.source));
    Ok(out)
}

async fn show_sources(
    state: &MasterState,
    ids: &[String],
) -> Result<Vec<CommonWorkerResponse>, DmError> {
    let view = state.view().await?;
    let ids: Vec<String> = if ids.is_empty() {
        view.sources.keys().cloned().collect()
    } else {
        ids.to_vec()
    };
    Ok(ids
        .iter()
        .map(|id| match service::source_of(&view, id) {
            Ok(cfg) => CommonWorkerResponse {
                result: true,
                msg: service::redacted_yaml(cfg),
                source: id.clone(),
                worker: view.bound.get(id).cloned().unwrap_or_default(),
            },
            Err(e) => failed_source(id, &e),
        })
        .collect())
}

async fn transfer_source(
    state: web::Data<MasterState>,
    req: web::Json<TransferSourceRequest>,
) -> HttpResponse {
    let req = req.into_inner();
    ok(common(
        service::transfer_source(&state, &req.source, &req.worker).await,
    ))
}

fn common(res: Result<(), DmError>) -> CommonResponse {
    match res {
        Ok(()) => CommonResponse {
            result: true,
            msg: String::new(),
        },
        Err(e) => CommonResponse {
            result: false,
            msg: rpc::error_msg(&e),
        },
    }
}

// ---- tasks ----

async fn check_task(
    state: web::Data<MasterState>,
    req: web::Json<CheckTaskRequest>,
) -> HttpResponse {
    let req = req.into_inner();
    let res = async {
        if !req.start_time.is_empty() {
            service::check_start_time(&req.start_time)?;
        }
        let cfg = service::parse_task(&req.task)?;
        let task = service::prepare_task(&state, cfg, &[]).await?;
        Ok::<_, DmError>(service::precheck(&state, &task).await)
    }
    .await;
    ok(match res {
        Ok(report) => CheckTaskResponse {
            result: report.passed,
            msg: report.check_result(),
        },
        Err(e) => CheckTaskResponse {
            result: false,
            msg: rpc::error_msg(&e),
        },
    })
}

async fn start_task(
    state: web::Data<MasterState>,
    req: web::Json<StartTaskRequest>,
) -> HttpResponse {
    let req = req.into_inner();
    ok(match do_start_task(&state, &req).await {
        Ok(r) => r,
        Err(e) => StartTaskResponse {
            result: false,
            msg: rpc::error_msg(&e),
            ..Default::default()
        },
    })
}

async fn do_start_task(
    state: &MasterState,
    req: &StartTaskRequest,
) -> Result<StartTaskResponse, DmError> {
    if !req.start_time.is_empty() {
        service::check_start_time(&req.start_time)?;
    }
    let cfg = service::parse_task(&req.task)?;
    let task = service::prepare_task(state, cfg, &req.sources).await?;
    let report = service::precheck(state, &task).await;
    let check_result = report.check_result();
    if let Err(e) = report.into_result() {
        return Ok(StartTaskResponse {
            result: false,
            msg: rpc::error_msg(&e),
            sources: Vec::new(),
            check_result,
        });
    }
    let sources = match service::start_task(
        state,
        &task,
        req.remove_meta,
        &req.start_time,
        Stage::Running,
    )
    .await
    {
        Ok(s) => s,
        Err(e) => {
            return Ok(StartTaskResponse {
                result: false,
                msg: rpc::error_msg(&e),
                sources: Vec::new(),
                check_result,
            });
        }
    };
    let msg = if task.cfg.remove_meta == Some(true) {
        "`remove-meta` in task config is deprecated, please use `start-task ... --remove-meta` instead".to_string()
    } else {
        String::new()
    };
    let sources = status::wait_all(
        state,
        &task.cfg.name,
        &sources,
        Expect::Stage(Stage::Running),
    )
    .await;
    Ok(StartTaskResponse {
        result: true,
        msg,
        sources,
        check_result,
    })
}

async fn operate_task(
    state: web::Data<MasterState>,
    path: Option<web::Path<String>>,
    req: web::Json<OperateTaskRequest>,
) -> HttpResponse {
    let mut req = req.into_inner();
    if let Some(name) = path {
        req.name = name.into_inner();
    }
    let op = req.op;
    ok(match do_operate_task(&state, req).await {
        Ok(sources) => OperateTaskResponse {
            op,
            result: true,
            msg: String::new(),
            sources,
        },
        Err(e) => OperateTaskResponse {
            op,
            result: false,
            msg: rpc::error_msg(&e),
            sources: Vec::new(),
        },
    })
}

async fn do_operate_task(
    state: &MasterState,
    req: OperateTaskRequest,
) -> Result<Vec<CommonWorkerResponse>, DmError> {
    let stage = match req.op {
        TaskOp::Pause => Some(Stage::Paused),
        TaskOp::Resume => Some(Stage::Running),
        TaskOp::Stop | TaskOp::Delete => None,
        other => {
            return Err(DmError::new(
                &codes::MASTER_INVALID_OPERATE,
                format!("invalid op {other:?} on task"),
            ));
        }
    };
    if req.name.is_empty() {
        return operate_sources_tasks(state, &req.sources, stage).await;
    }
    let view = state.view().await?;
    service::task_sources(&view, &req.name)?;
    let (changed, expect) = match stage {
        Some(stage) => (
            service::set_stage(state, Some(&req.name), &req.sources, stage).await?,
            Expect::Stage(stage),
        ),
        None => (
            service::delete_task(state, &req.name, &req.sources).await?,
            Expect::Gone,
        ),
    };
    Ok(status::wait_all(state, &req.name, &changed, expect).await)
}

/// pause/resume/stop of every task on `sources` (dmctl's `-s` without a task name).
async fn operate_sources_tasks(
    state: &MasterState,
    sources: &[String],
    stage: Option<Stage>,
) -> Result<Vec<CommonWorkerResponse>, DmError> {
    if sources.is_empty() {
        return Err(DmError::new(
            &codes::MASTER_INVALID_OPERATE,
            "give a task name, or sources whose every task is operated on",
        ));
    }
    let view = state.view().await?;
    for s in sources {
        service::source_of(&view, s)?;
    }
    let mut changed: Vec<String> = match stage {
        Some(stage) => service::set_stage(state, None, sources, stage).await?,
        None => {
            let mut changed = Vec::new();
            let tasks: Vec<String> = view
                .subtasks
                .keys()
                .filter(|k| sources.contains(&k.source.0))
                .map(|k| k.task.0.clone())
                .collect();
            for t in dedup(tasks) {
                changed.extend(service::delete_task(state, &t, sources).await?);
            }
            changed
        }
    };
    changed = dedup(changed);
    Ok(changed
        .into_iter()
        .map(|s| CommonWorkerResponse {
            result: true,
            msg: String::new(),
            worker: view.bound.get(&s).cloned().unwrap_or_default(),
            source: s,
        })
        .collect())
}

fn dedup(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

async fn query_status(
    state: web::Data<MasterState>,
    path: Option<web::Path<String>>,
    ApiQuery(StatusQuery { sources }): ApiQuery<StatusQuery>,
) -> HttpResponse {
    let name = path.map(|p| p.into_inner()).filter(|n| !n.is_empty());
    ok(
        match status::query_status(&state, name.as_deref(), &sources).await {
            Ok(sources) => QueryStatusListResponse {
                result: true,
                msg: String::new(),
                sources,
            },
            Err(e) => QueryStatusListResponse {
                result: false,
                msg: rpc::error_msg(&e),
                sources: Vec::new(),
            },
        },
    )
}

// ---- members ----

async fn list_member(
    state: web::Data<MasterState>,
    ApiQuery(q): ApiQuery<MemberQuery>,
) -> HttpResponse {
    let names = q.names;
    let (mut leader, mut master, mut worker) = (q.leader, q.master, q.worker);
    if !leader && !master && !worker {
        (leader, master, worker) = (true, true, true);
    }
    let mut out = Vec::new();
    if leader {
        let mut l = ListLeaderMember::default();
        match state.handle.leader() {
            Some(info) if names.is_empty() || names.contains(&info.name) => {
                l.name = info.name;
                l.addr = info.addr;
            }
            Some(_) => {}
            None => l.msg = "no leader is elected yet".into(),
        }
        out.push(Members {
            leader: Some(l),
            ..Default::default()
        });
    }
    if master {
        let m = match members::masters(&state, &names).await {
            Ok(masters) => ListMasterMember {
                msg: String::new(),
                masters,
            },
            Err(e) => {
                return ok(ListMemberResponse {
                    result: false,
                    msg: rpc::error_msg(&e),
                    members: Vec::new(),
                });
            }
        };
        out.push(Members {
            master: Some(m),
            ..Default::default()
        });
    }
    if worker {
        let w = match members::workers(&state, &names).await {
            Ok(workers) => ListWorkerMember {
                msg: String::new(),
                workers,
            },
            Err(e) => ListWorkerMember {
                msg: rpc::error_msg(&e),
                workers: Vec::new(),
            },
        };
        out.push(Members {
            worker: Some(w),
            ..Default::default()
        });
    }
    ok(ListMemberResponse {
        result: true,
        msg: String::new(),
        members: out,
    })
}

async fn offline_member(
    state: web::Data<MasterState>,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (kind, name) = path.into_inner();
    let res = match kind.as_str() {
        "master" => members::offline_master(&state, &name).await,
        "worker" => members::offline_worker(&state, &name).await,
        other => Err(DmError::new(
            &codes::MASTER_OFFLINE_MEMBER_TYPE_INVALID,
            format!("offline member type `{other}` is invalid; use master or worker"),
        )),
    };
    ok(common(res))
}

/// Mounts the gateway routes (inside the `/apis/v1alpha1` scope).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/sources", web::put().to(operate_source))
        .route("/sources/transfer", web::put().to(transfer_source))
        .route("/check-task", web::post().to(check_task))
        .route("/tasks", web::post().to(start_task))
        .route("/tasks", web::put().to(operate_task))
        .route("/tasks/", web::put().to(operate_task))
        .route("/tasks/{name}", web::put().to(operate_task))
        .route("/status", web::get().to(query_status))
        .route("/status/", web::get().to(query_status))
        .route("/status/{name}", web::get().to(query_status))
        .route("/members", web::get().to(list_member))
        .route("/members/{type}/{name}", web::delete().to(offline_member));
}
