//! SourceWorkerActor: the work of one bound source in a dm-worker (DM's `SourceWorker`).
//!
//! It reads the source's subtask configs and expected stages (`ha::get_source_subtasks`) and
//! watches both prefixes (`/dm-master/upstream/subtask/<source>/`,
//! `/dm-master/stage/subtask/<source>/`) from the read's revision + 1, on one etcd watch
//! stream. For each task it keeps one [`SubtaskActor`], reconciled from the desired state:
//! - stage and config present, no subtask ⇒ create it (config with the source applied);
//! - stage put ⇒ the subtask follows it (`Running` again after a pause is a resume);
//! - config changed while the expected stage is not `Running` ⇒ the subtask is replaced (a
//!   running subtask keeps its config until it is paused, as DM's update-task requires);
//! - stage deleted ⇒ the subtask is stopped (checkpoint flushed) and removed.
//!
//! A stage may arrive before its config (two watches of one stream): the task waits for the
//! config. Changes are level-triggered: events update the desired maps and mark the task;
//! one reconcile step runs at a time, so a stop finishes before the next start. A failed or
//! compacted watch re-reads everything and watches again after [`Backoff::infrastructure`].
//!
//! Children: the SubtaskActors (only strong addresses here). Messages in:
//! [`StopSourceWorker`] (graceful on unbind, immediate on lease loss), [`QuerySourceStatus`].

use std::collections::{BTreeMap, BTreeSet};

use actix::prelude::*;
use etcd_client::{Client, EventType, WatchOptions, WatchRequestSender, WatchResponse};
use futures_util::future::join_all;
use tracing::{debug, info, warn};

use super::subtask::SubtaskActor;
use crate::actors::syncer::Coordinator;
use crate::backoff::Backoff;
use crate::config::{SecretKey, SourceConfig, SubTaskConfig};
use crate::error::{DmError, codes};
use crate::messages::worker::QuerySubtaskStatus;
use crate::messages::worker::{
    QuerySourceStatus, SetExpectedStage, ShutdownSubtask, StopSourceWorker,
};
use crate::store::etcd::ha::{self, Stage, SubTaskStage};
use crate::store::etcd::keys;

/// A running subtask and what it was created from.
struct Entry {
    addr: Addr<SubtaskActor>,
    /// The config as stored in etcd (before the source is applied).
    cfg: SubTaskConfig,
    expect: Stage,
}

type Step = std::pin::Pin<Box<dyn ActorFuture<SourceWorkerActor, Output = ()>>>;

/// The actor.
pub struct SourceWorkerActor {
    worker: String,
    source: SourceConfig,
    client: Client,
    key: Option<SecretKey>,
    /// Desired state from etcd: task → config, task → expected stage.
    configs: BTreeMap<String, SubTaskConfig>,
    stages: BTreeMap<String, SubTaskStage>,
    subtasks: BTreeMap<String, Entry>,
    /// Subtasks being stopped gracefully (an immediate stop must still reach them).
    retiring: Vec<Addr<SubtaskActor>>,
    /// Tasks to reconcile; `true` when their stage key was put since.
    dirty: BTreeMap<String, bool>,
    busy: bool,
    watch: Option<(SpawnHandle, WatchRequestSender)>,
    backoff: Backoff,
    epoch: u64,
    stopping: bool,
}

impl SourceWorkerActor {
    /// The work of `source` on worker `worker`.
    pub fn new(
        worker: String,
        source: SourceConfig,
        client: Client,
        key: Option<SecretKey>,
    ) -> Self {
        Self {
            worker,
            source,
            client,
            key,
            configs: BTreeMap::new(),
            stages: BTreeMap::new(),
            subtasks: BTreeMap::new(),
            retiring: Vec::new(),
            dirty: BTreeMap::new(),
            busy: false,
            watch: None,
            backoff: Backoff::infrastructure(),
            epoch: 0,
            stopping: false,
        }
    }

    fn source_id(&self) -> &str {
        &self.source.source_id
    }

    fn cancel_watch(&mut self, ctx: &mut Context<Self>) {
        if let Some((h, _)) = self.watch.take() {
            ctx.cancel_future(h);
        }
    }

    /// Reads the whole desired state and watches from the read's revision + 1.
    fn resync(&mut self, ctx: &mut Context<Self>) {
        if self.stopping {
            return;
        }
        self.epoch += 1;
        let epoch = self.epoch;
        self.cancel_watch(ctx);
        let mut client = self.client.clone();
        let source = self.source_id().to_string();
        async move {
            let (rev, cfgs, stages) = ha::get_source_subtasks(&mut client, &source).await?;
            let opts = WatchOptions::new()
                .with_prefix()
                .with_start_revision(rev + 1);
            let watch_err = |e: etcd_client::Error| {
                DmError::new(&codes::HA_FAIL_WATCH_ETCD, "watching the source's subtasks")
                    .with_cause(e)
            };
            let mut ws = client
                .watch(
                    keys::prefix(keys::SUBTASK_CONFIG, &[&source]),
                    Some(opts.clone()),
                )
                .await
                .map_err(watch_err)?;
            ws.watch(keys::prefix(keys::SUBTASK_STAGE, &[&source]), Some(opts))
                .await
                .map_err(watch_err)?;
            Ok::<_, DmError>((rev, cfgs, stages, ws))
        }
        .into_actor(self)
        .map(move |res, act, ctx| {
            if epoch != act.epoch || act.stopping {
                return;
            }
            match res {
                Ok((rev, cfgs, stages, ws)) => {
                    let (tx, rx) = ws.split();
                    act.watch = Some((ctx.add_stream(rx), tx));
                    act.backoff.mark_started();
                    info!(worker = %act.worker, source = %act.source_id(), revision = rev, subtasks = cfgs.len(), stages = stages.len(), "subtasks read; watching changes");
                    act.replace_desired(cfgs, stages);
                    act.drive(ctx);
                }
                Err(e) => act.retry_resync(e, ctx),
            }
        })
        .spawn(ctx);
    }

    fn retry_resync(&mut self, e: DmError, ctx: &mut Context<Self>) {
        let wait = self.backoff.next_delay();
        warn!(worker = %self.worker, source = %self.source_id(), code = e.code, error = %e.chain(), wait_ms = wait.as_millis() as u64, "reading the source's subtasks failed; retrying");
        let epoch = self.epoch;
        ctx.run_later(wait, move |act, ctx| {
            if epoch == act.epoch {
                act.resync(ctx);
            }
        });
    }

    fn replace_desired(
        &mut self,
        cfgs: BTreeMap<String, SubTaskConfig>,
        stages: BTreeMap<String, SubTaskStage>,
    ) {
        let tasks: BTreeSet<String> = cfgs
            .keys()
            .chain(stages.keys())
            .chain(self.subtasks.keys())
            .cloned()
            .collect();
        for t in tasks {
            let changed = self.stages.get(&t) != stages.get(&t);
            self.mark(t, changed);
        }
        self.configs = cfgs;
        self.stages = stages;
    }

    fn mark(&mut self, task: String, stage_put: bool) {
        *self.dirty.entry(task).or_insert(false) |= stage_put;
    }

    fn apply_event(&mut self, ev: &etcd_client::Event) {
        let Some(kv) = ev.kv() else { return };
        let key = String::from_utf8_lossy(kv.key()).into_owned();
        let put = ev.event_type() == EventType::Put;
        let source = self.source_id().to_string();
        let task_of = |prefix: &str| {
            keys::decode(prefix, &key)
                .filter(|s| s.len() == 2 && s[0] == source)
                .map(|mut s| s.swap_remove(1))
        };
        if let Some(task) = task_of(keys::SUBTASK_CONFIG) {
            if put {
                match SubTaskConfig::from_toml(&String::from_utf8_lossy(kv.value())) {
                    Ok(cfg) => {
                        self.configs.insert(task.clone(), cfg);
                    }
                    Err(e) => {
                        warn!(worker = %self.worker, source = %source, task = %task, code = e.code, error = %e.chain(), "subtask config in etcd is not valid; ignored");
                        return;
                    }
                }
            } else {
                self.configs.remove(&task);
            }
            self.mark(task, false);
        } else if let Some(task) = task_of(keys::SUBTASK_STAGE) {
            if put {
                match ha::decode_stage(&key, kv.value()) {
                    Ok(st) => {
                        self.stages.insert(task.clone(), st);
                    }
                    Err(e) => {
                        warn!(worker = %self.worker, source = %source, task = %task, code = e.code, error = %e.chain(), "subtask stage in etcd is not valid; ignored");
                        return;
                    }
                }
            } else {
                self.stages.remove(&task);
            }
            self.mark(task, put);
        }
    }

    /// Runs reconcile steps one at a time until nothing is left to do.
    fn drive(&mut self, ctx: &mut Context<Self>) {
        if self.busy || self.stopping {
            return;
        }
        while let Some((task, stage_put)) = self.dirty.pop_first() {
            if let Some(step) = self.plan(task, stage_put, ctx) {
                self.busy = true;
                ctx.spawn(step.map(|(), act, ctx| {
                    act.busy = false;
                    act.drive(ctx);
                }));
                return;
            }
        }
    }

    /// What `task` needs; synchronous changes happen here, waiting ones return a step.
    fn plan(&mut self, task: String, stage_put: bool, ctx: &mut Context<Self>) -> Option<Step> {
        let stage = self.stages.get(&task).cloned();
        let cfg = self.configs.get(&task).cloned();
        let Some(stage) = stage else {
            let entry = self.subtasks.remove(&task)?;
            info!(worker = %self.worker, source = %self.source_id(), task = %task, "subtask stage deleted; stopping and removing the subtask");
            return Some(self.retire(entry.addr, "stage deleted"));
        };
        let Some(entry) = self.subtasks.get_mut(&task) else {
            match cfg {
                Some(cfg) => self.create(task, cfg, stage.expect, ctx),
                None => {
                    debug!(worker = %self.worker, source = %self.source_id(), task = %task, "expected stage without a config yet")
                }
            }
            return None;
        };
        if let Some(cfg) = cfg.filter(|c| *c != entry.cfg) {
            if stage.expect != Stage::Running {
                let entry = self.subtasks.remove(&task).expect("entry exists");
                info!(worker = %self.worker, source = %self.source_id(), task = %task, "subtask config changed; replacing the subtask");
                let expect = stage.expect;
                return Some(Box::pin(
                    self.retire(entry.addr, "config changed")
                        .map(move |(), act, ctx| act.create(task, cfg, expect, ctx)),
                ));
            }
            warn!(worker = %self.worker, source = %self.source.source_id, task = %task, "config of a running subtask changed; it applies once the task is paused");
        }
        if !stage_put && stage.expect == entry.expect {
            return None;
        }
        entry.expect = stage.expect;
        let addr = entry.addr.clone();
        Some(Box::pin(
            async move {
                let _ = addr
                    .send(SetExpectedStage {
                        stage: stage.expect,
                    })
                    .await;
            }
            .into_actor(self),
        ))
    }

    fn create(&mut self, task: String, cfg: SubTaskConfig, expect: Stage, _: &mut Context<Self>) {
        if self.stopping || self.subtasks.contains_key(&task) {
            return;
        }
        let mut applied = cfg.clone();
        applied.apply_source(&self.source);
        let addr = SubtaskActor::new(applied, self.key.clone(), expect)
            .with_coordinator(Coordinator::Etcd(Box::new(self.client.clone())))
            .start();
        self.subtasks.insert(task, Entry { addr, cfg, expect });
    }
}

impl SourceWorkerActor {
    /// Stops a removed subtask gracefully; it stays reachable for an immediate stop meanwhile.
    fn retire(&mut self, addr: Addr<SubtaskActor>, reason: &'static str) -> Step {
        self.retiring.push(addr.clone());
        let ask = addr.clone();
        Box::pin(
            fut::wrap_future(async move {
                let _ = ask
                    .send(ShutdownSubtask {
                        graceful: true,
                        reason,
                    })
                    .await;
            })
            .map(move |(), act: &mut Self, _| act.retiring.retain(|a| *a != addr)),
        )
    }
}

impl Actor for SourceWorkerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        info!(actor = "SourceWorker", parent = "Worker", worker = %self.worker, source = %self.source_id(), reason = "source bound", "actor started");
        self.resync(ctx);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        info!(actor = "SourceWorker", parent = "Worker", worker = %self.worker, source = %self.source_id(), reason = "stopped", "actor stopped");
    }
}

impl StreamHandler<Result<WatchResponse, etcd_client::Error>> for SourceWorkerActor {
    fn handle(&mut self, item: Result<WatchResponse, etcd_client::Error>, ctx: &mut Context<Self>) {
        if self.watch.is_none() {
            // Items of a watch already given up (a failure is reported once).
            return;
        }
        match item {
            Ok(resp) if resp.canceled() || resp.compact_revision() > 0 => {
                let e = DmError::new(&codes::HA_FAIL_WATCH_ETCD, "the subtask watch was canceled")
                    .with_cause_text(resp.cancel_reason().to_string());
                self.cancel_watch(ctx);
                self.retry_resync(e, ctx);
            }
            Ok(resp) => {
                for ev in resp.events() {
                    self.apply_event(ev);
                }
                self.drive(ctx);
            }
            Err(e) => {
                let e = DmError::new(&codes::HA_FAIL_WATCH_ETCD, "the subtask watch failed")
                    .with_cause(e);
                self.cancel_watch(ctx);
                self.retry_resync(e, ctx);
            }
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        if !self.stopping && self.watch.take().is_some() {
            self.retry_resync(
                DmError::new(&codes::HA_FAIL_WATCH_ETCD, "the subtask watch ended"),
                ctx,
            );
        }
    }
}

impl Handler<StopSourceWorker> for SourceWorkerActor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, msg: StopSourceWorker, ctx: &mut Context<Self>) -> Self::Result {
        self.stopping = true;
        self.cancel_watch(ctx);
        self.dirty.clear();
        let reason = if msg.graceful {
            "source unbound"
        } else {
            "keepalive lease lost"
        };
        info!(worker = %self.worker, source = %self.source_id(), graceful = msg.graceful, subtasks = self.subtasks.len(), reason, "stopping the source's subtasks");
        let current: Vec<_> = std::mem::take(&mut self.subtasks)
            .into_values()
            .map(|e| e.addr)
            .collect();
        self.retiring.extend(current.iter().cloned());
        let addrs = if msg.graceful {
            current
        } else {
            self.retiring.clone()
        };
        let stops: Vec<_> = addrs
            .into_iter()
            .map(|addr| {
                addr.send(ShutdownSubtask {
                    graceful: msg.graceful,
                    reason,
                })
            })
            .collect();
        Box::pin(
            async move {
                join_all(stops).await;
            }
            .into_actor(self)
            .map(|(), _, ctx| ctx.stop()),
        )
    }
}

impl Handler<QuerySourceStatus> for SourceWorkerActor {
    type Result = ResponseFuture<Vec<crate::messages::worker::SubtaskStatus>>;

    fn handle(&mut self, msg: QuerySourceStatus, _: &mut Context<Self>) -> Self::Result {
        let asks: Vec<_> = self
            .subtasks
            .iter()
            .filter(|(t, _)| msg.task.as_ref().is_none_or(|want| want == *t))
            .map(|(_, e)| e.addr.send(QuerySubtaskStatus))
            .collect();
        Box::pin(async move {
            join_all(asks)
                .await
                .into_iter()
                .filter_map(Result::ok)
                .collect()
        })
    }
}
