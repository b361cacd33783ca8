//! The Scheduler (leader only): which worker runs which source, and the subtask configs and
//! expected stages workers obey, kept in etcd under DM's keys (dm-reference §5, §10).
//!
//! - **Start:** [`SchedulerActor::start_rebuilt`] reads the whole state at one revision
//!   ([`ha::load_state`]), deletes the bindings of workers without a keepalive, binds every
//!   unbound source it can, then starts the actor, which watches `/dm-worker/a/` from the next
//!   revision (re-listing and reconciling when the watch fails or is compacted).
//! - **Worker stages:** offline (registered, no keepalive), free (alive, unbound), bound.
//!   A keepalive put makes a worker free and pulls an unbound source (its last source first);
//!   a keepalive delete makes it offline, deletes its binding and rebinds the source to another
//!   free worker in the same handling.
//! - **Bind order** for a source: a free worker whose last binding was this source, then any
//!   free worker by name. A binding is written only while the worker's keepalive exists.
//! - **Messages** ([`crate::messages::master`]): validated against the in-memory state, written
//!   in one transaction, and only then applied in memory; an error reply changed nothing.
//! - **Fencing:** every write is conditional on this master's election key
//!   ([`ha::Fence`]); when it is gone the Scheduler stops and tells the Election.
//!
//! Requests are served one at a time (a FIFO lock over [`Scheduler`]); keepalive events take
//! the same lock, so the state never interleaves half-done changes.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use actix::prelude::*;
use etcd_client::Client;
use tokio::sync::Mutex;
use tracing::{info, warn};

use super::watch::{LeaderTerm, Watched};
use crate::config::{SourceConfig, SubTaskConfig};
use crate::error::{DmError, codes};
use crate::ids::SubtaskKey;
use crate::messages::master::*;
use crate::store::etcd::ha::{
    self, ClusterState, Fence, Guarded, KeepaliveEvent, Op, SourceBound, Stage, SubTaskStage,
    WorkerInfo,
};

/// The Scheduler's in-memory mirror of etcd.
#[derive(Debug, Default, Clone)]
struct State {
    sources: BTreeMap<String, SourceConfig>,
    workers: BTreeMap<String, WorkerInfo>,
    /// Workers holding a keepalive (registered or not).
    alive: BTreeSet<String>,
    /// source → bound worker.
    bound: BTreeMap<String, String>,
    /// worker → its last bound source.
    last_bound: BTreeMap<String, String>,
    subtasks: BTreeMap<SubtaskKey, SubTaskConfig>,
    stages: BTreeMap<SubtaskKey, Stage>,
}

impl State {
    fn from_etcd(cs: ClusterState) -> Self {
        let mut st = State {
            sources: cs.sources,
            workers: cs.workers,
            alive: cs.alive.into_keys().collect(),
            last_bound: cs
                .last_bounds
                .into_iter()
                .map(|(w, b)| (w, b.source))
                .collect(),
            ..Default::default()
        };
        for (w, b) in cs.bounds {
            st.bound.entry(b.source).or_insert(w);
        }
        st.subtasks = cs.subtasks;
        for (k, s) in cs.stages {
            st.stages.insert(k, s.expect);
        }
        st
    }

    fn source_of(&self, worker: &str) -> Option<&String> {
        self.bound
            .iter()
            .find(|(_, w)| w.as_str() == worker)
            .map(|(s, _)| s)
    }

    fn stage(&self, worker: &str) -> WorkerStage {
        if !self.alive.contains(worker) {
            WorkerStage::Offline
        } else if self.source_of(worker).is_some() {
            WorkerStage::Bound
        } else {
            WorkerStage::Free
        }
    }

    fn is_free(&self, worker: &str) -> bool {
        self.workers.contains_key(worker) && self.stage(worker) == WorkerStage::Free
    }

    /// Free workers in bind order for `source`: last bound to it first, then by name.
    fn candidates(&self, source: &str) -> Vec<String> {
        let free: Vec<&String> = self.workers.keys().filter(|w| self.is_free(w)).collect();
        let (mut first, rest): (Vec<&String>, Vec<&String>) = free
            .into_iter()
            .partition(|w| self.last_bound.get(*w).is_some_and(|s| s == source));
        first.extend(rest);
        first.into_iter().cloned().collect()
    }

    /// The source a free `worker` should take: its last one if unbound, else the first
    /// unbound source by name.
    fn source_for(&self, worker: &str) -> Option<String> {
        let unbound = |s: &String| self.sources.contains_key(s) && !self.bound.contains_key(s);
        self.last_bound
            .get(worker)
            .filter(|s| unbound(s))
            .or_else(|| self.sources.keys().find(|s| unbound(s)))
            .cloned()
    }

    fn task_sources(&self, task: &str) -> Vec<String> {
        self.subtasks
            .keys()
            .filter(|k| k.task.0 == task)
            .map(|k| k.source.0.clone())
            .collect()
    }

    fn source_tasks(&self, source: &str) -> Vec<String> {
        self.subtasks
            .keys()
            .filter(|k| k.source.0 == source)
            .map(|k| k.task.0.clone())
            .collect()
    }

    fn view(&self) -> ClusterView {
        let workers = self
            .workers
            .values()
            .map(|w| {
                let v = WorkerView {
                    name: w.name.clone(),
                    addr: w.addr.clone(),
                    stage: self.stage(&w.name),
                    source: self.source_of(&w.name).cloned(),
                };
                (w.name.clone(), v)
            })
            .collect();
        let subtasks = self
            .subtasks
            .iter()
            .map(|(k, cfg)| {
                let expect = self.stages.get(k).copied().unwrap_or(Stage::Stopped);
                (
                    k.clone(),
                    SubtaskView {
                        cfg: cfg.clone(),
                        expect,
                    },
                )
            })
            .collect();
        ClusterView {
            sources: self.sources.clone(),
            workers,
            bound: self.bound.clone(),
            subtasks,
        }
    }
}

fn stage_op(task: &str, source: &str, expect: Stage) -> Op {
    Op::PutStage(SubTaskStage {
        expect,
        source: source.to_string(),
        task: task.to_string(),
    })
}

fn deposed() -> DmError {
    DmError::new(
        &codes::SCHEDULER_NOT_STARTED,
        "this dm-master is no longer the leader",
    )
}

/// The scheduling logic over one etcd client; the actor serialises calls.
pub struct Scheduler {
    client: Client,
    fence: Option<Fence>,
    st: State,
    deposed: Rc<Cell<bool>>,
}

impl Scheduler {
    /// Reads the state from etcd and reconciles it (dead bindings deleted, unbound sources
    /// bound). Returns the scheduler and the revision the keepalive watch starts after.
    pub async fn rebuild(client: Client, fence: Option<Fence>) -> Result<(Self, i64), DmError> {
        let mut s = Scheduler {
            client,
            fence,
            st: State::default(),
            deposed: Rc::new(Cell::new(false)),
        };
        let rev = s.reload().await?;
        Ok((s, rev))
    }

    /// Re-reads everything and reconciles; returns the revision of the read.
    async fn reload(&mut self) -> Result<i64, DmError> {
        let cs = ha::load_state(&mut self.client).await?;
        let rev = cs.revision;
        let raw_bounds: Vec<(String, String)> = cs
            .bounds
            .iter()
            .map(|(w, b)| (w.clone(), b.source.clone()))
            .collect();
        self.st = State::from_etcd(cs);
        // Bindings to drop: the worker is not alive or unknown, the source is gone, or a
        // second worker claims a source.
        let dead: Vec<(String, String)> = raw_bounds
            .into_iter()
            .filter(|(w, s)| {
                !self.st.alive.contains(w)
                    || !self.st.workers.contains_key(w)
                    || !self.st.sources.contains_key(s)
                    || self.st.bound.get(s) != Some(w)
            })
            .collect();
        if !dead.is_empty() {
            self.write(
                dead.iter()
                    .map(|(w, _)| Op::DeleteBound(w.clone()))
                    .collect(),
            )
            .await?;
            for (w, s) in &dead {
                if self.st.bound.get(s) == Some(w) {
                    self.st.bound.remove(s);
                }
                info!(worker = %w, source = %s, "binding of a worker without keepalive deleted");
            }
        }
        let unbound: Vec<String> = self
            .st
            .sources
            .keys()
            .filter(|s| !self.st.bound.contains_key(*s))
            .cloned()
            .collect();
        for s in unbound {
            self.try_bind_source(&s).await?;
        }
        Ok(rev)
    }

    /// True once a write found the fence gone.
    pub fn is_deposed(&self) -> bool {
        self.deposed.get()
    }

    async fn guarded(&mut self, alive: Option<&str>, ops: Vec<Op>) -> Result<Guarded, DmError> {
        let r = ha::apply_guarded(&mut self.client, self.fence.as_ref(), alive, ops).await?;
        if r == Guarded::FenceLost {
            self.deposed.set(true);
            return Err(deposed());
        }
        Ok(r)
    }

    /// Writes `ops` in one fenced transaction.
    async fn write(&mut self, ops: Vec<Op>) -> Result<(), DmError> {
        self.guarded(None, ops).await.map(drop)
    }

    /// Writes `ops` only while `worker` is alive; false when it is not.
    async fn write_if_alive(&mut self, worker: &str, ops: Vec<Op>) -> Result<bool, DmError> {
        Ok(matches!(
            self.guarded(Some(worker), ops).await?,
            Guarded::Applied(_)
        ))
    }

    fn record_bound(&mut self, source: &str, worker: &str) {
        self.st.bound.insert(source.to_string(), worker.to_string());
        self.st
            .last_bound
            .insert(worker.to_string(), source.to_string());
    }

    /// Binds `source` to the first free worker that is still alive at write time.
    async fn try_bind_source(&mut self, source: &str) -> Result<bool, DmError> {
        for w in self.st.candidates(source) {
            let b = SourceBound {
                source: source.to_string(),
                worker: w.clone(),
            };
            if self.write_if_alive(&w, vec![Op::PutBound(b)]).await? {
                self.record_bound(source, &w);
                info!(source, worker = %w, "source bound");
                return Ok(true);
            }
            warn!(source, worker = %w, "worker lost its keepalive before the binding; trying the next");
        }
        info!(source, "no free worker: source stays unbound");
        Ok(false)
    }

    /// A free worker pulls an unbound source.
    async fn try_bind_worker(&mut self, worker: &str) -> Result<bool, DmError> {
        if !self.st.is_free(worker) {
            return Ok(false);
        }
        let Some(source) = self.st.source_for(worker) else {
            return Ok(false);
        };
        let b = SourceBound {
            source: source.clone(),
            worker: worker.to_string(),
        };
        if self.write_if_alive(worker, vec![Op::PutBound(b)]).await? {
            self.record_bound(&source, worker);
            info!(source = %source, worker, "source bound");
            return Ok(true);
        }
        Ok(false)
    }

    /// A keepalive appeared or disappeared.
    pub async fn on_keepalive(&mut self, ev: KeepaliveEvent) -> Result<(), DmError> {
        match ev {
            KeepaliveEvent::Put(w) => self.worker_online(&w).await,
            KeepaliveEvent::Delete(w) => self.worker_offline(&w).await,
        }
    }

    async fn worker_online(&mut self, worker: &str) -> Result<(), DmError> {
        let was = self.st.alive.insert(worker.to_string());
        if !self.st.workers.contains_key(worker) {
            // Registered straight in etcd (a worker given etcd endpoints, no master)?
            match ha::get_worker(&mut self.client, worker).await? {
                Some(info) => {
                    info!(worker, addr = %info.addr, "worker registration found in etcd");
                    self.st.workers.insert(worker.to_string(), info);
                }
                None => {
                    warn!(
                        worker,
                        "keepalive of an unregistered worker; waiting for its registration"
                    );
                    return Ok(());
                }
            }
        }
        if let Some(source) = self.st.source_of(worker).cloned() {
            // A worker that lost and regained its keepalive stopped its source: re-put the
            // binding so it sees it again (as DM does).
            let b = SourceBound {
                source: source.clone(),
                worker: worker.to_string(),
            };
            self.write_if_alive(worker, vec![Op::PutBound(b)]).await?;
            info!(worker, source = %source, "bound worker online again; binding re-put");
            return Ok(());
        }
        if !was {
            info!(worker, "worker online (free)");
        }
        self.try_bind_worker(worker).await.map(drop)
    }

    async fn worker_offline(&mut self, worker: &str) -> Result<(), DmError> {
        self.st.alive.remove(worker);
        let Some(source) = self.st.source_of(worker).cloned() else {
            info!(worker, "worker offline");
            return Ok(());
        };
        self.write(vec![Op::DeleteBound(worker.to_string())])
            .await?;
        self.st.bound.remove(&source);
        info!(worker, source = %source, "worker offline; source unbound");
        self.try_bind_source(&source).await.map(drop)
    }

    /// [`RegisterWorker`].
    pub async fn register_worker(&mut self, name: String, addr: String) -> Result<(), DmError> {
        if let Some(w) = self.st.workers.get(&name) {
            if w.addr == addr {
                info!(worker = %name, addr = %addr, "worker registered again");
                return Ok(());
            }
            if self.st.alive.contains(&name) {
                return Err(DmError::new(
                    &codes::SCHEDULER_WORKER_EXIST,
                    format!(
                        "dm-worker `{name}` already exists at `{}` and is online (asked for `{addr}`)",
                        w.addr
                    ),
                ));
            }
        }
        let info = WorkerInfo {
            name: name.clone(),
            addr: addr.clone(),
        };
        self.write(vec![Op::PutWorker(info.clone())]).await?;
        let old = self.st.workers.insert(name.clone(), info);
        info!(worker = %name, addr = %addr, replaced = ?old.map(|o| o.addr), "worker registered");
        // Its keepalive may have come first.
        self.try_bind_worker(&name).await.map(drop)
    }

    /// [`AddSource`].
    pub async fn add_source(
        &mut self,
        cfg: SourceConfig,
        worker: Option<String>,
    ) -> Result<(), DmError> {
        let source = cfg.source_id.clone();
        if self.st.sources.contains_key(&source) {
            return Err(DmError::new(
                &codes::SCHEDULER_SOURCE_CFG_EXIST,
                format!("source config with ID `{source}` already exists"),
            ));
        }
        let candidates = match &worker {
            Some(w) => {
                self.check_free(w)?;
                vec![w.clone()]
            }
            None => self.st.candidates(&source),
        };
        for w in candidates {
            let b = SourceBound {
                source: source.clone(),
                worker: w.clone(),
            };
            let ops = vec![Op::PutSource(cfg.clone()), Op::PutBound(b)];
            if self.write_if_alive(&w, ops).await? {
                self.st.sources.insert(source.clone(), cfg);
                self.record_bound(&source, &w);
                info!(source = %source, worker = %w, "source added and bound");
                return Ok(());
            }
            warn!(source = %source, worker = %w, "worker lost its keepalive before the binding");
        }
        if let Some(w) = worker {
            return Err(DmError::new(
                &codes::SCHEDULER_WORKER_NOT_FREE,
                format!("dm-worker `{w}` went offline; source `{source}` not added"),
            ));
        }
        self.write(vec![Op::PutSource(cfg.clone())]).await?;
        self.st.sources.insert(source.clone(), cfg);
        info!(source = %source, "source added; no free worker, unbound");
        Ok(())
    }

    fn check_free(&self, worker: &str) -> Result<(), DmError> {
        if !self.st.workers.contains_key(worker) {
            return Err(DmError::new(
                &codes::SCHEDULER_WORKER_NOT_EXIST,
                format!("dm-worker with name `{worker}` does not exist"),
            ));
        }
        if !self.st.is_free(worker) {
            return Err(DmError::new(
                &codes::SCHEDULER_WORKER_NOT_FREE,
                format!(
                    "dm-worker `{worker}` is {}, not free",
                    self.st.stage(worker).as_str()
                ),
            ));
        }
        Ok(())
    }

    fn check_source(&self, source: &str) -> Result<(), DmError> {
        if self.st.sources.contains_key(source) {
            Ok(())
        } else {
            Err(DmError::new(
                &codes::SCHEDULER_SOURCE_CFG_NOT_EXIST,
                format!("source config with ID `{source}` does not exist"),
            ))
        }
    }

    /// [`UpdateSource`].
    pub async fn update_source(&mut self, cfg: SourceConfig) -> Result<(), DmError> {
        let source = cfg.source_id.clone();
        self.check_source(&source)?;
        let tasks = self.st.source_tasks(&source);
        if !tasks.is_empty() {
            return Err(DmError::new(
                &codes::SCHEDULER_SOURCE_CFG_UPDATE,
                format!(
                    "source `{source}` has tasks {}; it can only be updated without tasks",
                    tasks.join(", ")
                ),
            ));
        }
        self.write(vec![Op::PutSource(cfg.clone())]).await?;
        self.st.sources.insert(source.clone(), cfg);
        info!(source = %source, "source updated");
        Ok(())
    }

    /// [`RemoveSource`].
    pub async fn remove_source(&mut self, source: String, force: bool) -> Result<(), DmError> {
        self.check_source(&source)?;
        let tasks = self.st.source_tasks(&source);
        if !tasks.is_empty() && !force {
            return Err(DmError::new(
                &codes::SCHEDULER_SOURCE_HAS_TASKS,
                format!(
                    "source `{source}` still has tasks {}; stop them first",
                    tasks.join(", ")
                ),
            ));
        }
        let worker = self.st.bound.get(&source).cloned();
        let mut ops = vec![Op::DeleteSource(source.clone())];
        if let Some(w) = &worker {
            ops.push(Op::DeleteBound(w.clone()));
        }
        for t in &tasks {
            ops.push(Op::DeleteSubtask {
                source: source.clone(),
                task: t.clone(),
            });
            ops.push(Op::DeleteStage {
                source: source.clone(),
                task: t.clone(),
            });
        }
        self.write(ops).await?;
        self.st.sources.remove(&source);
        self.st.bound.remove(&source);
        for t in &tasks {
            let k = SubtaskKey::new(t, &source);
            self.st.subtasks.remove(&k);
            self.st.stages.remove(&k);
        }
        info!(source = %source, worker = ?worker, tasks = ?tasks, "source removed");
        if let Some(w) = worker {
            self.try_bind_worker(&w).await?;
        }
        Ok(())
    }

    /// [`TransferSource`].
    pub async fn transfer_source(&mut self, source: String, worker: String) -> Result<(), DmError> {
        self.check_source(&source)?;
        let old = self.st.bound.get(&source).cloned();
        if old.as_deref() == Some(worker.as_str()) {
            info!(source = %source, worker = %worker, "source already bound to this worker");
            return Ok(());
        }
        self.check_free(&worker)?;
        let new_bound = Op::PutBound(SourceBound {
            source: source.clone(),
            worker: worker.clone(),
        });
        let Some(old) = old else {
            if !self.write_if_alive(&worker, vec![new_bound]).await? {
                return Err(went_offline(&worker, &source));
            }
            self.record_bound(&source, &worker);
            info!(source = %source, worker = %worker, "unbound source bound by transfer");
            return Ok(());
        };
        let running: Vec<String> = self
            .st
            .source_tasks(&source)
            .into_iter()
            .filter(|t| self.st.stages.get(&SubtaskKey::new(t, &source)) == Some(&Stage::Running))
            .collect();
        self.set_stages(&source, &running, Stage::Paused)
            .await
            .map_err(|e| {
                DmError::new(
                    &codes::SCHEDULER_PAUSE_TASK_FOR_TRANSFER_SOURCE,
                    format!(
                        "pausing tasks {} of source `{source}` failed",
                        running.join(", ")
                    ),
                )
                .with_cause_text(e.chain())
            })?;
        let moved = self
            .write_if_alive(&worker, vec![Op::DeleteBound(old.clone()), new_bound])
            .await;
        let moved = match moved {
            Ok(true) => {
                self.st.bound.remove(&source);
                self.record_bound(&source, &worker);
                info!(source = %source, from = %old, to = %worker, tasks = ?running, "source transferred");
                Ok(())
            }
            Ok(false) => Err(went_offline(&worker, &source)),
            Err(e) => Err(e),
        };
        // Resume what was running, on whichever worker now holds the source.
        let resumed = self.set_stages(&source, &running, Stage::Running).await;
        moved?;
        resumed.map_err(|e| {
            DmError::new(
                &codes::SCHEDULER_PAUSE_TASK_FOR_TRANSFER_SOURCE,
                format!(
                    "source `{source}` moved to `{worker}` but resuming tasks {} failed; resume them",
                    running.join(", ")
                ),
            )
            .with_cause_text(e.chain())
        })
    }

    /// Puts `stage` for `tasks` of one source in one transaction.
    async fn set_stages(
        &mut self,
        source: &str,
        tasks: &[String],
        stage: Stage,
    ) -> Result<(), DmError> {
        if tasks.is_empty() {
            return Ok(());
        }
        self.write(tasks.iter().map(|t| stage_op(t, source, stage)).collect())
            .await?;
        for t in tasks {
            self.st.stages.insert(SubtaskKey::new(t, source), stage);
        }
        info!(source, tasks = ?tasks, stage = stage.as_str(), "subtask stages set");
        Ok(())
    }

    fn one_task(subtasks: &[SubTaskConfig]) -> Result<Option<String>, DmError> {
        let names: BTreeSet<&str> = subtasks.iter().map(|c| c.name.as_str()).collect();
        if names.len() > 1 {
            return Err(DmError::new(
                &codes::SCHEDULER_MULTI_TASK,
                format!(
                    "the scheduler cannot perform multiple different tasks {names:?} in one operation"
                ),
            ));
        }
        Ok(names.into_iter().next().map(String::from))
    }

    /// [`StartTask`].
    pub async fn start_task(
        &mut self,
        subtasks: Vec<SubTaskConfig>,
        stage: Stage,
    ) -> Result<(), DmError> {
        let Some(task) = Self::one_task(&subtasks)? else {
            return Ok(());
        };
        let mut seen = BTreeSet::new();
        let mut exist = Vec::new();
        for c in &subtasks {
            self.check_source(&c.source_id)?;
            if !seen.insert(c.source_id.clone())
                || self
                    .st
                    .subtasks
                    .contains_key(&SubtaskKey::new(&task, &c.source_id))
            {
                exist.push(c.source_id.clone());
            }
        }
        if !exist.is_empty() {
            return Err(DmError::new(
                &codes::SCHEDULER_SUBTASK_EXIST,
                format!(
                    "subtasks with name `{task}` for sources {} already exist",
                    exist.join(", ")
                ),
            ));
        }
        let mut ops = Vec::new();
        for c in &subtasks {
            ops.push(Op::PutSubtask(c.clone()));
            ops.push(stage_op(&task, &c.source_id, stage));
        }
        self.write(ops).await?;
        for c in subtasks {
            let k = SubtaskKey::new(&task, &c.source_id);
            self.st.stages.insert(k.clone(), stage);
            self.st.subtasks.insert(k, c);
        }
        info!(task = %task, sources = ?seen, stage = stage.as_str(), "task created");
        Ok(())
    }

    fn check_task_sources(&self, task: &str, sources: &[String]) -> Result<Vec<String>, DmError> {
        let all = self.st.task_sources(task);
        if all.is_empty() {
            return Err(DmError::new(
                &codes::SCHEDULER_TASK_NOT_EXIST,
                format!("task with name `{task}` does not exist"),
            ));
        }
        if sources.is_empty() {
            return Ok(all);
        }
        let missing: Vec<&String> = sources.iter().filter(|s| !all.contains(s)).collect();
        if !missing.is_empty() {
            return Err(DmError::new(
                &codes::SCHEDULER_SUBTASK_NOT_EXIST,
                format!("subtasks with name `{task}` for sources {missing:?} do not exist"),
            ));
        }
        let mut out: Vec<String> = sources.to_vec();
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// [`UpdateSubtasks`].
    pub async fn update_subtasks(&mut self, subtasks: Vec<SubTaskConfig>) -> Result<(), DmError> {
        let Some(task) = Self::one_task(&subtasks)? else {
            return Ok(());
        };
        let sources: Vec<String> = subtasks.iter().map(|c| c.source_id.clone()).collect();
        self.check_task_sources(&task, &sources)?;
        let running: Vec<&String> = sources
            .iter()
            .filter(|s| self.st.stages.get(&SubtaskKey::new(&task, *s)) == Some(&Stage::Running))
            .collect();
        if !running.is_empty() {
            return Err(DmError::new(
                &codes::SCHEDULER_SUBTASK_CFG_UPDATE,
                format!(
                    "subtasks of `{task}` on sources {running:?} are running; pause them first"
                ),
            ));
        }
        self.write(subtasks.iter().cloned().map(Op::PutSubtask).collect())
            .await?;
        for c in subtasks {
            self.st
                .subtasks
                .insert(SubtaskKey::new(&task, &c.source_id), c);
        }
        info!(task = %task, sources = ?sources, "subtask configs updated");
        Ok(())
    }

    /// [`SetStage`].
    pub async fn set_stage(
        &mut self,
        task: Option<String>,
        sources: Vec<String>,
        stage: Stage,
    ) -> Result<Vec<String>, DmError> {
        if !matches!(stage, Stage::Running | Stage::Paused | Stage::Stopped) {
            return Err(DmError::new(
                &codes::SCHEDULER_SUBTASK_STAGE_INVALID_UPDATE,
                format!("invalid new expected subtask stage {}", stage.as_str()),
            ));
        }
        let targets: Vec<SubtaskKey> = match &task {
            Some(t) => self
                .check_task_sources(t, &sources)?
                .into_iter()
                .map(|s| SubtaskKey::new(t, s))
                .collect(),
            None => {
                for s in &sources {
                    self.check_source(s)?;
                }
                self.st
                    .subtasks
                    .keys()
                    .filter(|k| sources.is_empty() || sources.contains(&k.source.0))
                    .cloned()
                    .collect()
            }
        };
        if targets.is_empty() {
            return Ok(Vec::new());
        }
        self.write(
            targets
                .iter()
                .map(|k| stage_op(&k.task.0, &k.source.0, stage))
                .collect(),
        )
        .await?;
        for k in &targets {
            self.st.stages.insert(k.clone(), stage);
        }
        let mut changed: Vec<String> = targets.iter().map(|k| k.source.0.clone()).collect();
        changed.sort();
        changed.dedup();
        info!(task = ?task, sources = ?changed, stage = stage.as_str(), "subtask stages set");
        Ok(changed)
    }

    /// [`DeleteTask`].
    pub async fn delete_task(
        &mut self,
        task: String,
        sources: Vec<String>,
    ) -> Result<Vec<String>, DmError> {
        let sources = self.check_task_sources(&task, &sources)?;
        let mut ops = Vec::new();
        for s in &sources {
            ops.push(Op::DeleteSubtask {
                source: s.clone(),
                task: task.clone(),
            });
            ops.push(Op::DeleteStage {
                source: s.clone(),
                task: task.clone(),
            });
        }
        self.write(ops).await?;
        for s in &sources {
            let k = SubtaskKey::new(&task, s);
            self.st.subtasks.remove(&k);
            self.st.stages.remove(&k);
        }
        info!(task = %task, sources = ?sources, "task deleted");
        Ok(sources)
    }

    /// [`OfflineWorker`].
    pub async fn offline_worker(&mut self, name: String) -> Result<(), DmError> {
        if !self.st.workers.contains_key(&name) {
            return Err(DmError::new(
                &codes::SCHEDULER_WORKER_NOT_EXIST,
                format!("dm-worker with name `{name}` does not exist"),
            ));
        }
        if self.st.alive.contains(&name) {
            return Err(DmError::new(
                &codes::SCHEDULER_WORKER_ONLINE,
                format!("dm-worker `{name}` is still online; shut it down first"),
            ));
        }
        let mut ops = vec![
            Op::DeleteWorker(name.clone()),
            Op::DeleteLastBound(name.clone()),
        ];
        let source = self.st.source_of(&name).cloned();
        if source.is_some() {
            ops.push(Op::DeleteBound(name.clone()));
        }
        self.write(ops).await?;
        self.st.workers.remove(&name);
        self.st.last_bound.remove(&name);
        if let Some(s) = &source {
            self.st.bound.remove(s);
        }
        info!(worker = %name, "worker offlined (registration deleted)");
        if let Some(s) = source {
            self.try_bind_source(&s).await?;
        }
        Ok(())
    }

    /// [`GetClusterView`].
    pub fn view(&self) -> ClusterView {
        self.st.view()
    }
}

fn went_offline(worker: &str, source: &str) -> DmError {
    DmError::new(
        &codes::SCHEDULER_WORKER_NOT_FREE,
        format!("dm-worker `{worker}` went offline before source `{source}` moved to it"),
    )
}

/// The leader-only Scheduler actor: a FIFO-locked [`Scheduler`] plus the keepalive watch.
pub struct SchedulerActor {
    core: Rc<Mutex<Scheduler>>,
    term: LeaderTerm,
}

impl SchedulerActor {
    /// Rebuilds from etcd (see the module doc), then starts the actor on the current arbiter.
    /// Every write is conditional on `fence` (None: unfenced, for tests and tools). `parent`
    /// hears when the Scheduler stops on its own.
    pub async fn start_rebuilt(
        client: Client,
        fence: Option<Fence>,
        parent: Option<Recipient<SchedulerStopped>>,
    ) -> Result<Addr<Self>, DmError> {
        let (core, rev) = Scheduler::rebuild(client.clone(), fence.clone()).await?;
        let deposed = core.deposed.clone();
        Ok(SchedulerActor {
            core: Rc::new(Mutex::new(core)),
            term: LeaderTerm::new(client, deposed, rev, fence, parent),
        }
        .start())
    }

    /// Runs `f` on the locked core; stops the actor if it found itself deposed.
    fn serve<R: 'static>(
        &mut self,
        f: impl AsyncFnOnce(&mut Scheduler) -> Result<R, DmError> + 'static,
    ) -> ResponseActFuture<Self, Result<R, DmError>> {
        let core = self.core.clone();
        let fut = async move {
            let mut guard = core.lock().await;
            f(&mut guard).await
        };
        Box::pin(fut.into_actor(self).map(|res, act, ctx| {
            act.term.check_deposed(ctx);
            res
        }))
    }
}

impl Watched for Scheduler {
    type Event = KeepaliveEvent;
    const WHAT: &'static str = "keepalive";

    fn is_deposed(&self) -> bool {
        Scheduler::is_deposed(self)
    }

    async fn start(client: &mut Client, from: i64) -> Result<etcd_client::WatchStream, DmError> {
        ha::watch_keepalives(client, from).await
    }

    /// After a failure everything is re-listed, so the next revision is unused.
    fn events(resp: &etcd_client::WatchResponse) -> Result<Vec<KeepaliveEvent>, DmError> {
        ha::keepalive_events(resp).map(|(events, _next)| events)
    }

    async fn on_event(&mut self, ev: KeepaliveEvent) -> Result<(), DmError> {
        self.on_keepalive(ev).await
    }

    /// Re-lists the cluster state and reconciles.
    async fn rebuild(&mut self) -> Result<i64, DmError> {
        self.reload().await
    }
}

impl Actor for SchedulerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        info!(
            actor = "Scheduler",
            parent = "Election",
            reason = "won election",
            "actor started"
        );
        let watch = self.term.watch(&self.core);
        ctx.spawn(watch.into_actor(self).map(|(), act, ctx| {
            // The watch loop ends only when deposed.
            act.term.check_deposed(ctx);
        }));
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.term.stopped("Scheduler");
    }
}

impl Handler<RegisterWorker> for SchedulerActor {
    type Result = ResponseActFuture<Self, Result<(), DmError>>;
    fn handle(&mut self, m: RegisterWorker, _: &mut Context<Self>) -> Self::Result {
        self.serve(async move |s| s.register_worker(m.name, m.addr).await)
    }
}

impl Handler<AddSource> for SchedulerActor {
    type Result = ResponseActFuture<Self, Result<(), DmError>>;
    fn handle(&mut self, m: AddSource, _: &mut Context<Self>) -> Self::Result {
        self.serve(async move |s| s.add_source(m.cfg, m.worker).await)
    }
}

impl Handler<UpdateSource> for SchedulerActor {
    type Result = ResponseActFuture<Self, Result<(), DmError>>;
    fn handle(&mut self, m: UpdateSource, _: &mut Context<Self>) -> Self::Result {
        self.serve(async move |s| s.update_source(m.cfg).await)
    }
}

impl Handler<RemoveSource> for SchedulerActor {
    type Result = ResponseActFuture<Self, Result<(), DmError>>;
    fn handle(&mut self, m: RemoveSource, _: &mut Context<Self>) -> Self::Result {
        self.serve(async move |s| s.remove_source(m.source, m.force).await)
    }
}

impl Handler<TransferSource> for SchedulerActor {
    type Result = ResponseActFuture<Self, Result<(), DmError>>;
    fn handle(&mut self, m: TransferSource, _: &mut Context<Self>) -> Self::Result {
        self.serve(async move |s| s.transfer_source(m.source, m.worker).await)
    }
}

impl Handler<StartTask> for SchedulerActor {
    type Result = ResponseActFuture<Self, Result<(), DmError>>;
    fn handle(&mut self, m: StartTask, _: &mut Context<Self>) -> Self::Result {
        self.serve(async move |s| s.start_task(m.subtasks, m.stage).await)
    }
}

impl Handler<UpdateSubtasks> for SchedulerActor {
    type Result = ResponseActFuture<Self, Result<(), DmError>>;
    fn handle(&mut self, m: UpdateSubtasks, _: &mut Context<Self>) -> Self::Result {
        self.serve(async move |s| s.update_subtasks(m.subtasks).await)
    }
}

impl Handler<SetStage> for SchedulerActor {
    type Result = ResponseActFuture<Self, Result<Vec<String>, DmError>>;
    fn handle(&mut self, m: SetStage, _: &mut Context<Self>) -> Self::Result {
        self.serve(async move |s| s.set_stage(m.task, m.sources, m.stage).await)
    }
}

impl Handler<DeleteTask> for SchedulerActor {
    type Result = ResponseActFuture<Self, Result<Vec<String>, DmError>>;
    fn handle(&mut self, m: DeleteTask, _: &mut Context<Self>) -> Self::Result {
        self.serve(async move |s| s.delete_task(m.task, m.sources).await)
    }
}

impl Handler<OfflineWorker> for SchedulerActor {
    type Result = ResponseActFuture<Self, Result<(), DmError>>;
    fn handle(&mut self, m: OfflineWorker, _: &mut Context<Self>) -> Self::Result {
        self.serve(async move |s| s.offline_worker(m.name).await)
    }
}

impl Handler<GetClusterView> for SchedulerActor {
    type Result = ResponseActFuture<Self, ClusterView>;
    fn handle(&mut self, _: GetClusterView, _: &mut Context<Self>) -> Self::Result {
        let core = self.core.clone();
        Box::pin(async move { core.lock().await.view() }.into_actor(self))
    }
}

impl Handler<StopScheduler> for SchedulerActor {
    type Result = ();
    fn handle(&mut self, m: StopScheduler, ctx: &mut Context<Self>) {
        self.term.stop_reason = m.reason;
        ctx.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(n: &str) -> WorkerInfo {
        WorkerInfo {
            name: n.into(),
            addr: format!("127.0.0.1:{}", n.len()),
        }
    }

    #[test]
    fn bind_order_prefers_last_bound_then_name() {
        let mut st = State::default();
        for w in ["w1", "w2", "w3"] {
            st.workers.insert(w.into(), worker(w));
            st.alive.insert(w.into());
        }
        st.last_bound.insert("w3".into(), "s1".into());
        assert_eq!(st.candidates("s1"), ["w3", "w1", "w2"]);
        assert_eq!(st.candidates("s2"), ["w1", "w2", "w3"]);
        st.bound.insert("s9".into(), "w1".into());
        st.alive.remove("w2");
        assert_eq!(st.candidates("s2"), ["w3"]);
        assert_eq!(st.stage("w1"), WorkerStage::Bound);
        assert_eq!(st.stage("w2"), WorkerStage::Offline);
        assert_eq!(st.stage("w3"), WorkerStage::Free);
    }
}
