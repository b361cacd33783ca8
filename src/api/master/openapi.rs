//! DM's OpenAPI under `/api/v1/` (DM's `openapi/spec/dm.yaml`): sources, tasks and cluster
//! members, with the models and conversions of [`crate::api::openapi`]. Errors are HTTP 400
//! (404 for a missing source or task) with `{error_msg, error_code}`; lists are
//! `{total, data}`. Task status reuses the gateway's query-status aggregation.
//!
//! As in DM, `POST /tasks` creates the task Stopped (after the precheck) and
//! `POST /tasks/{t}/start` runs it. Difference: the OpenAPI is always served (DM needs
//! `openapi = true`).

use std::collections::BTreeSet;
use std::fmt;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError, web};
use serde::Deserialize;
use serde_json::Value;

use super::status::{self, Expect};
use super::{MasterState, members, service};
use crate::api::extract::{self, ApiQuery, Force, SourceNames, StrictJson, WithStatus};
use crate::api::openapi::convert::{
    config_to_source, config_to_task, error_body, source_to_config, task_from_request,
    task_status_from_worker,
};
use crate::api::openapi::model::{
    ClusterMaster, ClusterWorker, CreateSourceRequest, ListResponse, OperateTaskResponse, Source,
    SourceStatus, StartTaskRequest, StopTaskRequest, SubTaskStatus, Task, UpdateSourceRequest,
    WorkerNameRequest,
};
use crate::api::openapi::spec;
use crate::config::task::Keyword;
use crate::config::task::MySqlInstance;
use crate::config::{SubTaskConfig, TaskConfig};
use crate::error::{DmError, codes};
use crate::messages::master::{ClusterView, UpdateSubtasks};
use crate::messages::rpc::QueryStatusResponse;
use crate::store::etcd::ha::Stage;

/// An OpenAPI error answer: `status` with `{error_msg, error_code}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub err: DmError,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.err.fmt(f)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(error_body(&self.err))
    }
}

impl From<DmError> for ApiError {
    fn from(err: DmError) -> Self {
        let status = if err.code == codes::SCHEDULER_SOURCE_CFG_NOT_EXIST.code
            || err.code == codes::SCHEDULER_TASK_NOT_EXIST.code
        {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::BAD_REQUEST
        };
        Self { status, err }
    }
}

type ApiResult = Result<HttpResponse, ApiError>;

/// `GET /sources` query.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SourceListQuery {
    #[serde(deserialize_with = "extract::flag")]
    with_status: bool,
    #[serde(deserialize_with = "extract::flag")]
    enable_relay: bool,
}

/// `GET /tasks` query.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct TaskListQuery {
    #[serde(deserialize_with = "extract::flag")]
    with_status: bool,
    #[serde(deserialize_with = "extract::list")]
    stage: Vec<String>,
    #[serde(deserialize_with = "extract::list")]
    source_name_list: Vec<String>,
}

/// `DELETE /tasks/{name}` query.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct DeleteTaskQuery {
    #[serde(deserialize_with = "extract::flag")]
    force: bool,
    #[serde(deserialize_with = "extract::flag")]
    keep_meta: bool,
}

// ---- sources ----

/// The OpenAPI view of a source: its tasks, and with `with_status` its worker's status.
async fn source_view(
    state: &MasterState,
    view: &ClusterView,
    name: &str,
    with_status: bool,
) -> Result<Source, DmError> {
    let cfg = service::source_of(view, name)?;
    let mut s = config_to_source(cfg);
    let tasks: BTreeSet<String> = view
        .subtasks
        .keys()
        .filter(|k| k.source.0 == name)
        .map(|k| k.task.0.clone())
        .collect();
    s.task_name_list = Some(tasks.into_iter().collect());
    if with_status {
        s.status_list = Some(source_status(state, view, name).await);
    }
    Ok(s)
}

/// The status of a source on its bound worker (just the name when unbound).
async fn source_status(state: &MasterState, view: &ClusterView, name: &str) -> Vec<SourceStatus> {
    let Some((worker, addr)) = status::bound_worker(view, name) else {
        return vec![SourceStatus {
            source_name: name.to_string(),
            ..Default::default()
        }];
    };
    let error_msg = match status::ask_worker(state, &worker, &addr, None).await {
        Ok(resp) if resp.result => {
            Some(status::result_msg(resp.source_status.result.as_ref())).filter(|m| !m.is_empty())
        }
        Ok(resp) => Some(resp.msg),
        Err(e) => Some(crate::messages::rpc::error_msg(&e)),
    };
    vec![SourceStatus {
        source_name: name.to_string(),
        worker_name: worker,
        relay_status: None,
        error_msg,
    }]
}

async fn create_source(
    state: web::Data<MasterState>,
    StrictJson(r): StrictJson<CreateSourceRequest>,
) -> ApiResult {
    let cfg = source_to_config(&r.source, None)?;
    let name = cfg.source_id.clone();
    service::add_sources(&state, vec![cfg], r.worker_name.filter(|w| !w.is_empty())).await?;
    let view = state.view().await?;
    Ok(HttpResponse::Created().json(source_view(&state, &view, &name, false).await?))
}

async fn list_sources(
    state: web::Data<MasterState>,
    ApiQuery(q): ApiQuery<SourceListQuery>,
) -> ApiResult {
    let (with_status, relay_only) = (q.with_status, q.enable_relay);
    let view = state.view().await?;
    let mut data = Vec::new();
    for (name, cfg) in &view.sources {
        if relay_only && !cfg.enable_relay {
            continue;
        }
        data.push(source_view(&state, &view, name, with_status).await?);
    }
    Ok(HttpResponse::Ok().json(ListResponse::new(data)))
}

async fn get_source(
    state: web::Data<MasterState>,
    ApiQuery(WithStatus { with_status }): ApiQuery<WithStatus>,
    path: web::Path<String>,
) -> ApiResult {
    let view = state.view().await?;
    Ok(HttpResponse::Ok().json(source_view(&state, &view, &path, with_status).await?))
}

async fn update_source(
    state: web::Data<MasterState>,
    path: web::Path<String>,
    StrictJson(r): StrictJson<UpdateSourceRequest>,
) -> ApiResult {
    if r.source.source_name != *path {
        return Err(DmError::new(
            &codes::OPENAPI_COMMON,
            format!(
                "source_name `{}` in the body differs from `{}` in the path",
                r.source.source_name, path
            ),
        )
        .into());
    }
    let view = state.view().await?;
    let old = service::source_of(&view, &path)?;
    let cfg = source_to_config(&r.source, Some(old))?;
    service::update_sources(&state, vec![cfg]).await?;
    let view = state.view().await?;
    Ok(HttpResponse::Ok().json(source_view(&state, &view, &path, false).await?))
}

async fn delete_source(
    state: web::Data<MasterState>,
    ApiQuery(Force { force }): ApiQuery<Force>,
    path: web::Path<String>,
) -> ApiResult {
    service::remove_source(&state, &path, force).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn get_source_status(state: web::Data<MasterState>, path: web::Path<String>) -> ApiResult {
    let view = state.view().await?;
    service::source_of(&view, &path)?;
    Ok(HttpResponse::Ok().json(ListResponse::new(source_status(&state, &view, &path).await)))
}

/// enable / disable: every task of the source to Running / Paused.
async fn set_source_stage(state: &MasterState, source: &str, stage: Stage) -> ApiResult {
    let view = state.view().await?;
    service::source_of(&view, source)?;
    if view.subtasks.keys().any(|k| k.source.0 == source) {
        service::set_stage(state, None, &[source.to_string()], stage).await?;
    }
    Ok(HttpResponse::Ok().finish())
}

async fn enable_source(state: web::Data<MasterState>, path: web::Path<String>) -> ApiResult {
    set_source_stage(&state, &path, Stage::Running).await
}

async fn disable_source(state: web::Data<MasterState>, path: web::Path<String>) -> ApiResult {
    set_source_stage(&state, &path, Stage::Paused).await
}

async fn transfer_source(
    state: web::Data<MasterState>,
    path: web::Path<String>,
    StrictJson(r): StrictJson<WorkerNameRequest>,
) -> ApiResult {
    service::transfer_source(&state, &path, &r.worker_name).await?;
    Ok(HttpResponse::Ok().finish())
}

// ---- tasks ----

/// A task config rebuilt from its subtasks (as stored in etcd), for the OpenAPI's task view:
/// each source's rules become named rules `<source>-<kind>-<i>`.
pub fn task_config_of(subtasks: &[&SubTaskConfig]) -> TaskConfig {
    let Some(first) = subtasks.first() else {
        return TaskConfig::default();
    };
    let mut cfg = TaskConfig {
        name: first.name.clone(),
        task_mode: Keyword::Known(first.task_mode),
        shard_mode: Keyword::Known(first.shard_mode),
        is_sharding: first.shard_mode.is_some(),
        strict_optimistic_shard_mode: first.strict_optimistic_shard_mode,
        ignore_checking_items: first.ignore_checking_items.clone(),
        meta_schema: first.meta_schema.clone(),
        timezone: first.timezone.clone(),
        case_sensitive: first.case_sensitive,
        collation_compatible: first.collation_compatible.clone(),
        target_database: Some(first.to.clone()),
        online_ddl: first.online_ddl,
        shadow_table_rules: first.shadow_table_rules.clone(),
        trash_table_rules: first.trash_table_rules.clone(),
        clean_dump_file: first.clean_dump_file,
        experimental: first.experimental.clone(),
        ..TaskConfig::default()
    };
    let suffix = format!(".{}", first.name);
    for st in subtasks {
        let src = &st.source_id;
        let names = |kind: &str, n: usize| -> Vec<String> {
            (0..n).map(|i| format!("{src}-{kind}-{i}")).collect()
        };
        // A route rule several sources share keeps one name, so the rebuilt task expands to
        // the same subtasks (which record the rules other sources use too).
        let route_rules: Vec<String> = st
            .route_rules
            .iter()
            .enumerate()
            .map(|(i, rule)| {
                let shared = st.shared_route_rules.contains(&i);
                let existing = cfg
                    .routes
                    .iter()
                    .find(|(_, r)| shared && *r == rule)
                    .map(|(n, _)| n.clone());
                existing.unwrap_or_else(|| {
                    let n = format!("{src}-route-rule-{i}");
                    cfg.routes.insert(n.clone(), rule.clone());
                    n
                })
            })
            .collect();
        let filter_rules = names("filter-rule", st.filter_rules.len());
        let expr_rules = names("expr-filter", st.expression_filter.len());
        cfg.filters.extend(
            filter_rules
                .iter()
                .cloned()
                .zip(st.filter_rules.iter().cloned()),
        );
        cfg.expression_filter.extend(
            expr_rules
                .iter()
                .cloned()
                .zip(st.expression_filter.iter().cloned()),
        );
        let ba_name = st.block_allow_list.as_ref().map(|ba| {
            let n = format!("{src}-ba-list");
            cfg.block_allow_list.insert(n.clone(), ba.clone());
            n
        });
        let mut loader = st.loader.clone();
        if st.task_mode.dumps()
            && let Some(dir) = loader.dir.strip_suffix(&suffix)
        {
            loader.dir = dir.to_string();
        }
        let validator = format!("{src}-validator");
        cfg.validators
            .insert(validator.clone(), st.validator.clone());
        cfg.mysql_instances.push(MySqlInstance {
            source_id: src.clone(),
            meta: st.meta.clone(),
            filter_rules,
            route_rules,
            expression_filters: expr_rules,
            block_allow_list: ba_name.unwrap_or_default(),
            mydumper: Some(st.mydumper.clone()),
            loader: Some(loader),
            syncer: Some(st.syncer.clone()),
            validator_config_name: validator,
            ..MySqlInstance::default()
        });
    }
    cfg
}

/// The subtasks of `task` in `view`, or `SCHEDULER_TASK_NOT_EXIST`.
fn subtasks_of<'a>(view: &'a ClusterView, task: &str) -> Result<Vec<&'a SubTaskConfig>, DmError> {
    let st: Vec<&SubTaskConfig> = view.task(task).into_iter().map(|v| &v.cfg).collect();
    if st.is_empty() {
        return Err(status::task_not_exist(task));
    }
    Ok(st)
}

/// The status of `task` on `sources` (empty = all of its sources) as OpenAPI statuses.
async fn task_status(
    state: &MasterState,
    task: &str,
    sources: &[String],
) -> Result<Vec<SubTaskStatus>, DmError> {
    let resps: Vec<QueryStatusResponse> = status::query_status(state, Some(task), sources).await?;
    Ok(resps
        .iter()
        .map(|r| {
            let mut st = task_status_from_worker(task, r);
            // A source whose worker did not answer still shows the expected stage.
            if st.stage.is_empty()
                && let Some(v) = r.sub_task_status.iter().find(|s| s.name == task)
            {
                st.stage = v.stage.clone();
            }
            st
        })
        .collect())
}

async fn task_view(
    state: &MasterState,
    view: &ClusterView,
    task: &str,
    with_status: bool,
) -> Result<Task, DmError> {
    let mut t = config_to_task(&task_config_of(&subtasks_of(view, task)?));
    if with_status {
        t.status_list = Some(task_status(state, task, &[]).await?);
    }
    Ok(t)
}

/// The body of a task create/update: `{"task": <an OpenAPI Task, or task.yaml as a string>}`.
#[derive(Debug, Deserialize)]
struct TaskBody {
    task: Value,
}

async fn create_task(
    state: web::Data<MasterState>,
    StrictJson(TaskBody { task }): StrictJson<TaskBody>,
) -> ApiResult {
    let cfg = task_from_request(task)?;
    let task = service::prepare_task(&state, cfg, &[]).await?;
    let report = service::precheck(&state, &task).await;
    let check_result = report.check_result();
    report
        .into_result()
        .map_err(|e| e.with_cause_text(check_result.clone()))?;
    service::start_task(&state, &task, false, "", Stage::Stopped).await?;
    Ok(HttpResponse::Created().json(OperateTaskResponse {
        task: config_to_task(&task.cfg),
        check_result,
    }))
}

async fn update_task(
    state: web::Data<MasterState>,
    path: web::Path<String>,
    StrictJson(TaskBody { task }): StrictJson<TaskBody>,
) -> ApiResult {
    let cfg = task_from_request(task)?;
    if cfg.name != *path {
        return Err(DmError::new(
            &codes::OPENAPI_COMMON,
            format!(
                "task name `{}` in the body differs from `{}` in the path",
                cfg.name, path
            ),
        )
        .into());
    }
    let view = state.view().await?;
    subtasks_of(&view, &path)?;
    let task = service::prepare_task(&state, cfg, &[]).await?;
    let report = service::precheck(&state, &task).await;
    let check_result = report.check_result();
    report
        .into_result()
        .map_err(|e| e.with_cause_text(check_result.clone()))?;
    state
        .ask(UpdateSubtasks {
            subtasks: task.subtasks.clone(),
        })
        .await?;
    Ok(HttpResponse::Ok().json(OperateTaskResponse {
        task: config_to_task(&task.cfg),
        check_result,
    }))
}

async fn list_tasks(
    state: web::Data<MasterState>,
    ApiQuery(q): ApiQuery<TaskListQuery>,
) -> ApiResult {
    let (with_status, stages, sources) = (q.with_status, q.stage, q.source_name_list);
    let view = state.view().await?;
    let mut data = Vec::new();
    for name in view.tasks() {
        let subs = view.task(&name);
        if !sources.is_empty() && !subs.iter().any(|s| sources.contains(&s.cfg.source_id)) {
            continue;
        }
        if !stages.is_empty()
            && !subs
                .iter()
                .any(|s| stages.iter().any(|st| st == s.expect.as_str()))
        {
            continue;
        }
        data.push(task_view(&state, &view, &name, with_status).await?);
    }
    Ok(HttpResponse::Ok().json(ListResponse::new(data)))
}

async fn get_task(
    state: web::Data<MasterState>,
    ApiQuery(WithStatus { with_status }): ApiQuery<WithStatus>,
    path: web::Path<String>,
) -> ApiResult {
    let view = state.view().await?;
    Ok(HttpResponse::Ok().json(task_view(&state, &view, &path, with_status).await?))
}

async fn delete_task(
    state: web::Data<MasterState>,
    ApiQuery(DeleteTaskQuery { force, keep_meta }): ApiQuery<DeleteTaskQuery>,
    path: web::Path<String>,
) -> ApiResult {
    let view = state.view().await?;
    let subs = view.task(&path);
    let Some(first) = subs.first().map(|s| s.cfg.clone()) else {
        return Err(status::task_not_exist(&path).into());
    };
    if !force && subs.iter().any(|s| s.expect == Stage::Running) {
        return Err(DmError::new(
            &codes::OPENAPI_COMMON,
            format!(
                "task `{path}` has running subtasks; stop it first or delete it with force=true"
            ),
        )
        .into());
    }
    let removed = service::delete_task(&state, &path, &[]).await?;
    status::wait_all(&state, &path, &removed, Expect::Gone).await;
    if !keep_meta {
        service::remove_downstream_meta(
            &path,
            &first.meta_schema,
            &first.to,
            state.handle.secret_key(),
        )
        .await?;
    }
    service::put_cli_args(&state, &path, &[], "", "").await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn get_task_status(
    state: web::Data<MasterState>,
    ApiQuery(SourceNames {
        source_name_list: sources,
    }): ApiQuery<SourceNames>,
    path: web::Path<String>,
) -> ApiResult {
    Ok(HttpResponse::Ok().json(ListResponse::new(
        task_status(&state, &path, &sources).await?,
    )))
}

async fn start_task(
    state: web::Data<MasterState>,
    path: web::Path<String>,
    StrictJson(r): StrictJson<StartTaskRequest>,
) -> ApiResult {
    let sources = r.source_name_list.unwrap_or_default();
    let start_time = r.start_time.unwrap_or_default();
    let safe_mode = r.safe_mode_time_duration.unwrap_or_default();
    if !start_time.is_empty() {
        service::check_start_time(&start_time)?;
    }
    let view = state.view().await?;
    let subs = view.task(&path);
    let Some(first) = subs.first().map(|s| s.cfg.clone()) else {
        return Err(status::task_not_exist(&path).into());
    };
    let chosen: Vec<String> = subs
        .iter()
        .map(|s| s.cfg.source_id.clone())
        .filter(|s| sources.is_empty() || sources.contains(s))
        .collect();
    if r.remove_meta {
        if subs.iter().any(|s| s.expect == Stage::Running) {
            return Err(DmError::new(
                &codes::OPENAPI_COMMON,
                format!("task `{path}` is running; stop it before starting with remove_meta"),
            )
            .into());
        }
        service::remove_downstream_meta(
            &path,
            &first.meta_schema,
            &first.to,
            state.handle.secret_key(),
        )
        .await?;
    }
    service::put_cli_args(&state, &path, &chosen, &start_time, &safe_mode).await?;
    service::set_stage(&state, Some(&path), &sources, Stage::Running).await?;
    Ok(HttpResponse::Ok().finish())
}

async fn stop_task(
    state: web::Data<MasterState>,
    path: web::Path<String>,
    StrictJson(r): StrictJson<StopTaskRequest>,
) -> ApiResult {
    let view = state.view().await?;
    subtasks_of(&view, &path)?;
    let sources = r.source_name_list.unwrap_or_default();
    service::set_stage(&state, Some(&path), &sources, Stage::Stopped).await?;
    Ok(HttpResponse::Ok().finish())
}

// ---- cluster ----

async fn list_masters(state: web::Data<MasterState>) -> ApiResult {
    let leader = state.handle.leader().map(|l| l.name).unwrap_or_default();
    let data = members::masters(&state, &[])
        .await?
        .into_iter()
        .map(|m| ClusterMaster {
            leader: m.name == leader,
            addr: m.peer_urls.first().cloned().unwrap_or_default(),
            name: m.name,
            alive: m.alive,
        })
        .collect();
    Ok(HttpResponse::Ok().json(ListResponse::new(data)))
}

async fn offline_master(state: web::Data<MasterState>, path: web::Path<String>) -> ApiResult {
    members::offline_master(&state, &path).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn list_workers(state: web::Data<MasterState>) -> ApiResult {
    let data = members::workers(&state, &[])
        .await?
        .into_iter()
        .map(|w| ClusterWorker {
            name: w.name,
            addr: w.addr,
            bound_stage: w.stage,
            bound_source_name: w.source,
        })
        .collect();
    Ok(HttpResponse::Ok().json(ListResponse::new(data)))
}

async fn offline_worker(state: web::Data<MasterState>, path: web::Path<String>) -> ApiResult {
    members::offline_worker(&state, &path).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn spec() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(spec::spec_json())
}

async fn docs() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(spec::docs_html())
}

/// Mounts the OpenAPI routes (inside the `/api/v1` scope).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/dm.json", web::get().to(spec))
        .route("/docs", web::get().to(docs))
        .route("/sources", web::post().to(create_source))
        .route("/sources", web::get().to(list_sources))
        .route("/sources/{s}", web::get().to(get_source))
        .route("/sources/{s}", web::put().to(update_source))
        .route("/sources/{s}", web::delete().to(delete_source))
        .route("/sources/{s}/status", web::get().to(get_source_status))
        .route("/sources/{s}/enable", web::post().to(enable_source))
        .route("/sources/{s}/disable", web::post().to(disable_source))
        .route("/sources/{s}/transfer", web::post().to(transfer_source))
        .route("/tasks", web::post().to(create_task))
        .route("/tasks", web::get().to(list_tasks))
        .route("/tasks/{t}", web::get().to(get_task))
        .route("/tasks/{t}", web::put().to(update_task))
        .route("/tasks/{t}", web::delete().to(delete_task))
        .route("/tasks/{t}/status", web::get().to(get_task_status))
        .route("/tasks/{t}/start", web::post().to(start_task))
        .route("/tasks/{t}/stop", web::post().to(stop_task))
        .route("/cluster/masters", web::get().to(list_masters))
        .route("/cluster/masters/{name}", web::delete().to(offline_master))
        .route("/cluster/workers", web::get().to(list_workers))
        .route("/cluster/workers/{name}", web::delete().to(offline_worker));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_rebuilt_from_its_subtasks_expands_to_the_same_subtasks() {
        for file in [
            "task-single.yaml",
            "task-shard-merge.yaml",
            "task-incremental.yaml",
        ] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("config")
                .join(file);
            let cfg = TaskConfig::load(&path).unwrap();
            let subs = cfg.subtasks();
            let refs: Vec<&SubTaskConfig> = subs.iter().collect();
            let rebuilt = task_config_of(&refs);
            assert_eq!(rebuilt.name, cfg.name, "{file}");
            assert_eq!(rebuilt.subtasks(), subs, "{file}");
        }
    }
}
