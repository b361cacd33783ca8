//! query-status: the master asks the worker bound to each source for its live view
//! (`GET http://<worker>/internal/v1/status?task=<name>`, concurrently, [`WORKER_TIMEOUT`]
//! each) and merges the answers. A source without a bound worker, or whose worker does not
//! answer, is listed with `result: false`, a coded `msg`, and its subtasks at their expected
//! stage, so an operator still sees every subtask.
//!
//! The same worker call checks the outcome of an operation: after start/pause/resume/stop
//! the master polls the worker until the subtask reaches the expected stage (DM's
//! `waitOperationOk`), and reports per source whether it did.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::future::join_all;

use super::{MasterState, WORKER_TIMEOUT};
use crate::error::{DmError, codes};
use crate::messages::master::ClusterView;
use crate::messages::rpc::{
    self, CommonWorkerResponse, ProcessResult, QueryStatusResponse, SourceStatusView,
    SubTaskStatusView, WorkerStatusResponse,
};
use crate::store::etcd::ha::Stage;

/// How long an operation waits for the workers to reach the expected stage.
pub const OPERATION_WAIT: Duration = Duration::from_secs(10);
/// Pause between two checks of an operation.
const OPERATION_POLL: Duration = Duration::from_millis(300);

/// Asks the worker at `addr` for its status of `task` (None = every task).
pub async fn ask_worker(
    state: &MasterState,
    worker: &str,
    addr: &str,
    task: Option<&str>,
) -> Result<WorkerStatusResponse, DmError> {
    let url = format!("http://{addr}/internal/v1/status");
    let mut rb = state.http.get(&url).timeout(WORKER_TIMEOUT);
    if let Some(t) = task {
        rb = rb.query(&[("task", t)]);
    }
    let fail = |e: reqwest::Error| {
        let code = if e.is_timeout() {
            &codes::MASTER_REQUEST_WORKER_TIMEOUT
        } else {
            &codes::MASTER_WORKER_ERROR
        };
        DmError::new(
            code,
            format!("asking dm-worker `{worker}` at {addr} for its status"),
        )
        .with_cause(e)
    };
    let resp = rb.send().await.map_err(fail)?;
    let resp = resp.error_for_status().map_err(fail)?;
    resp.json::<WorkerStatusResponse>().await.map_err(fail)
}

/// The sources a query covers: `sources` if given (each must exist), else the task's
/// sources (the task must exist), else every source.
pub fn query_sources(
    view: &ClusterView,
    task: Option<&str>,
    sources: &[String],
) -> Result<Vec<String>, DmError> {
    if !sources.is_empty() {
        let missing: Vec<&str> = sources
            .iter()
            .filter(|s| !view.sources.contains_key(*s))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(DmError::new(
                &codes::SCHEDULER_SOURCE_CFG_NOT_EXIST,
                format!("sources {missing:?} haven't been added"),
            ));
        }
        let mut s = sources.to_vec();
        s.sort();
        s.dedup();
        return Ok(s);
    }
    if let Some(t) = task {
        let s: Vec<String> = view
            .subtasks
            .keys()
            .filter(|k| k.task.0 == *t)
            .map(|k| k.source.0.clone())
            .collect();
        if s.is_empty() {
            return Err(task_not_exist(t));
        }
        return Ok(s);
    }
    Ok(view.sources.keys().cloned().collect())
}

/// `SCHEDULER_TASK_NOT_EXIST` for `task`.
pub fn task_not_exist(task: &str) -> DmError {
    DmError::new(
        &codes::SCHEDULER_TASK_NOT_EXIST,
        format!("task `{task}` has no source or does not exist"),
    )
}

/// The subtasks the Scheduler expects on `source` (of `task`, or all), at their expected
/// stage, for answers that cannot come from the worker.
fn expected_subtasks(
    view: &ClusterView,
    task: Option<&str>,
    source: &str,
) -> Vec<SubTaskStatusView> {
    view.subtasks
        .iter()
        .filter(|(k, _)| k.source.0 == source && task.is_none_or(|want| want == k.task.0))
        .map(|(k, st)| SubTaskStatusView {
            name: k.task.0.clone(),
            stage: st.expect.as_str().to_string(),
            unit: "InvalidUnit".to_string(),
            ..Default::default()
        })
        .collect()
}

/// The bound worker of `source` and its address.
pub fn bound_worker(view: &ClusterView, source: &str) -> Option<(String, String)> {
    let worker = view.bound.get(source)?;
    let addr = view.workers.get(worker)?.addr.clone();
    Some((worker.clone(), addr))
}

/// `MASTER_WORKER_ERROR` for a source with no bound worker.
pub fn unbound(source: &str) -> DmError {
    DmError::new(
        &codes::MASTER_WORKER_ERROR,
        format!("source `{source}` is not bound to any dm-worker; check `list-member --worker`"),
    )
}

/// One source's answer.
async fn query_source(
    state: &MasterState,
    view: &ClusterView,
    task: Option<&str>,
    source: &str,
) -> QueryStatusResponse {
    let failed = |worker: String, e: DmError| QueryStatusResponse {
        result: false,
        msg: rpc::error_msg(&e),
        source_status: SourceStatusView {
            source: source.to_string(),
            worker,
            result: None,
        },
        sub_task_status: expected_subtasks(view, task, source),
    };
    let Some((worker, addr)) = bound_worker(view, source) else {
        return failed(String::new(), unbound(source));
    };
    match ask_worker(state, &worker, &addr, task).await {
        Ok(mut resp) => {
            resp.source_status.source = source.to_string();
            if resp.source_status.worker.is_empty() {
                resp.source_status.worker = worker;
            }
            resp
        }
        Err(e) => failed(worker, e),
    }
}

/// query-status of `task` (None = every task) on `sources` (empty = all relevant), one
/// answer per source, sorted by source.
pub async fn query_status(
    state: &MasterState,
    task: Option<&str>,
    sources: &[String],
) -> Result<Vec<QueryStatusResponse>, DmError> {
    let view = state.view().await?;
    if let Some(t) = task
        && !view.subtasks.keys().any(|k| k.task.0 == *t)
    {
        return Err(task_not_exist(t));
    }
    let sources = query_sources(&view, task, sources)?;
    let asks = sources
        .iter()
        .map(|s| query_source(state, &view, task, s))
        .collect::<Vec<_>>();
    Ok(join_all(asks).await)
}

/// The worker's error text of a process result (DM's `extractWorkerError`); empty if none.
pub fn result_msg(r: Option<&ProcessResult>) -> String {
    r.map(|r| {
        r.errors
            .iter()
            .map(|e| {
                let mut s = format!(
                    "[code={}:class={}:scope={}:level={}]",
                    e.err_code, e.err_class, e.err_scope, e.err_level
                );
                for (k, v) in [
                    ("Message", &e.message),
                    ("RawCause", &e.raw_cause),
                    ("Workaround", &e.workaround),
                ] {
                    if !v.is_empty() {
                        s.push_str(&format!(", {k}: {v}"));
                    }
                }
                s
            })
            .collect::<Vec<_>>()
            .join("; ")
    })
    .unwrap_or_default()
}

/// What an operation waits for on one source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The subtask of the task reaches this stage (Running also accepts Finished).
    Stage(Stage),
    /// The worker no longer lists the subtask.
    Gone,
    /// The worker reports the source as its bound source.
    SourceBound,
}

/// Whether `resp` shows `expect` for `task` on `source`: `Some((ok, msg))` to stop waiting.
fn judge(
    resp: &WorkerStatusResponse,
    task: &str,
    source: &str,
    expect: Expect,
) -> Option<(bool, String)> {
    match expect {
        Expect::SourceBound => (resp.source_status.source == source)
            .then(|| (true, result_msg(resp.source_status.result.as_ref()))),
        Expect::Gone => {
            (!resp.sub_task_status.iter().any(|s| s.name == task)).then(|| (true, String::new()))
        }
        Expect::Stage(stage) => {
            let st = resp.sub_task_status.iter().find(|s| s.name == task)?;
            let reached = st.stage == stage.as_str()
                || (stage == Stage::Running && st.stage == Stage::Finished.as_str());
            let msg = result_msg(st.result.as_ref());
            (reached || !msg.is_empty()).then_some((reached, msg))
        }
    }
}

/// Polls the worker of `source` until it shows `expect` for `task` (or [`OPERATION_WAIT`]
/// passes) and reports the outcome as DM's per-source answer.
pub async fn wait_operation(
    state: &MasterState,
    task: &str,
    source: &str,
    expect: Expect,
) -> CommonWorkerResponse {
    let answer = |result: bool, msg: String, worker: String| CommonWorkerResponse {
        result,
        msg,
        source: source.to_string(),
        worker,
    };
    let deadline = Instant::now() + OPERATION_WAIT;
    let mut last_err = None;
    loop {
        let view = match state.view().await {
            Ok(v) => v,
            Err(e) => return answer(false, rpc::error_msg(&e), String::new()),
        };
        let Some((worker, addr)) = bound_worker(&view, source) else {
            return answer(false, rpc::error_msg(&unbound(source)), String::new());
        };
        match ask_worker(state, &worker, &addr, (!task.is_empty()).then_some(task)).await {
            Ok(resp) => {
                if let Some((ok, msg)) = judge(&resp, task, source, expect) {
                    return answer(ok, msg, worker);
                }
            }
            Err(e) => last_err = Some(e),
        }
        if Instant::now() + OPERATION_POLL > deadline {
            let e = last_err.unwrap_or_else(|| {
                DmError::new(
                    &codes::MASTER_FAIL_TO_GET_EXPECT_RESULT,
                    format!(
                        "dm-worker `{worker}` did not report {expect:?} for task `{task}` on source `{source}` within {OPERATION_WAIT:?}"
                    ),
                )
            });
            return answer(false, rpc::error_msg(&e), worker);
        }
        tokio::time::sleep(OPERATION_POLL).await;
    }
}

/// [`wait_operation`] on every source concurrently, answers sorted by source.
pub async fn wait_all(
    state: &MasterState,
    task: &str,
    sources: &[String],
    expect: Expect,
) -> Vec<CommonWorkerResponse> {
    let mut by_source: BTreeMap<String, CommonWorkerResponse> = BTreeMap::new();
    let waits = sources
        .iter()
        .map(|s| wait_operation(state, task, s, expect))
        .collect::<Vec<_>>();
    for r in join_all(waits).await {
        by_source.insert(r.source.clone(), r);
    }
    by_source.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::rpc::ProcessError;

    fn status(stage: &str, errors: Vec<ProcessError>) -> WorkerStatusResponse {
        WorkerStatusResponse {
            result: true,
            source_status: SourceStatusView {
                source: "s1".into(),
                ..Default::default()
            },
            sub_task_status: vec![SubTaskStatusView {
                name: "t".into(),
                stage: stage.into(),
                result: Some(ProcessResult {
                    is_canceled: false,
                    errors,
                }),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn an_operation_is_done_at_the_expected_stage_or_on_an_error() {
        let running = Expect::Stage(Stage::Running);
        assert_eq!(
            judge(&status("Running", vec![]), "t", "s1", running),
            Some((true, String::new()))
        );
        assert_eq!(
            judge(&status("Finished", vec![]), "t", "s1", running),
            Some((true, String::new()))
        );
        assert_eq!(judge(&status("Paused", vec![]), "t", "s1", running), None);
        let err = ProcessError {
            err_code: 36001,
            err_class: "sync-unit".into(),
            message: "boom".into(),
            ..Default::default()
        };
        let (ok, msg) = judge(&status("Paused", vec![err]), "t", "s1", running).unwrap();
        assert!(!ok);
        assert!(
            msg.contains("code=36001") && msg.contains("Message: boom"),
            "{msg}"
        );
        assert_eq!(
            judge(&status("Running", vec![]), "t", "s1", Expect::Gone),
            None
        );
        assert_eq!(
            judge(&status("Running", vec![]), "x", "s1", Expect::Gone),
            Some((true, String::new()))
        );
        assert_eq!(
            judge(&status("Running", vec![]), "t", "s1", Expect::SourceBound),
            Some((true, String::new()))
        );
        assert_eq!(
            judge(&status("Running", vec![]), "t", "s2", Expect::SourceBound),
            None
        );
    }

    #[test]
    fn query_sources_follow_dm() {
        let mut view = ClusterView::default();
        for s in ["a", "b", "c"] {
            view.sources.insert(s.into(), Default::default());
        }
        assert_eq!(query_sources(&view, None, &[]).unwrap(), ["a", "b", "c"]);
        assert_eq!(
            query_sources(&view, None, &["c".into(), "a".into(), "c".into()]).unwrap(),
            ["a", "c"]
        );
        let e = query_sources(&view, None, &["zz".into()]).unwrap_err();
        assert_eq!(e.code, codes::SCHEDULER_SOURCE_CFG_NOT_EXIST.code);
        let e = query_sources(&view, Some("t"), &[]).unwrap_err();
        assert_eq!(e.code, codes::SCHEDULER_TASK_NOT_EXIST.code);
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/task-single.yaml");
        let mut cfg = crate::config::TaskConfig::load(&path)
            .unwrap()
            .subtasks()
            .remove(0);
        cfg.name = "t".into();
        cfg.source_id = "b".into();
        let sub = crate::messages::master::SubtaskView {
            cfg,
            expect: Stage::Paused,
        };
        view.subtasks
            .insert(crate::ids::SubtaskKey::new("t", "b"), sub);
        assert_eq!(query_sources(&view, Some("t"), &[]).unwrap(), ["b"]);
        let expected = expected_subtasks(&view, Some("t"), "b");
        assert_eq!(expected.len(), 1);
        assert_eq!(expected[0].stage, "Paused");
        assert!(expected_subtasks(&view, Some("other"), "b").is_empty());
    }
}
