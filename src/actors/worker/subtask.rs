//! SubtaskActor: one task on one source in a dm-worker. It follows the expected stage the
//! master writes to etcd and supervises the units (DM's `SubTask` plus its task checker).
//!
//! - Expected `Running`: a [`UnitsActor`] runs the units on an arbiter of its own. `Paused` /
//!   `Stopped`: the units are stopped gracefully (the syncer flushes its checkpoint) and the
//!   stage becomes `Paused` / `Stopped`. A task-mode without a sync unit that completes is
//!   `Finished`.
//! - A unit failure is logged with task, source, unit and error code, and the stage becomes
//!   `Paused` with the error in the status. A resumable error ([`DmError::resumable`])
//!   re-creates the units after [`Backoff::auto_resume`] (1 s doubling to 5 min, reset after
//!   5 min of healthy running); each incarnation resumes from the persisted checkpoints. A
//!   non-resumable error waits for a resume: `Running` put again (DM's `resume-task`).
//! - Stopping (expected stage paused, subtask removed, source unbound, lease lost) takes the
//!   units incarnation away at once, stops its arbiters and waits for their threads, so no
//!   unit of this subtask runs once the reply is sent.
//!
//! Children: one [`UnitsActor`] at a time, whose only strong address (and arbiter) this actor
//! holds. Messages in: [`SetExpectedStage`], [`ShutdownSubtask`], [`QuerySubtaskStatus`].

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tracing::{error, info, warn};

use super::units::{Reaper, UnitsActor, UnitsShared};
use crate::actors::syncer::Coordinator;
use crate::backoff::Backoff;
use crate::config::{SecretKey, SubTaskConfig};
use crate::error::DmError;
use crate::messages::worker::{QuerySubtaskStatus, StopSubtask, SubtaskStatus, UnitsExited};
use crate::messages::worker::{SetExpectedStage, ShutdownSubtask};
use crate::store::etcd::ha::Stage;

/// Longest wait for a graceful stop (checkpoint flush) before the units are dropped.
pub const GRACEFUL_STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for a stopped arbiter's thread to end.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);

/// One units incarnation: its actor, its arbiter and the arbiters its children left.
struct UnitsRun {
    addr: Addr<UnitsActor>,
    arbiter: Arbiter,
    reaper: Reaper,
}

/// Stops `run`'s arbiters and waits for their threads: first the units' own (whose teardown
/// stops the sync unit's arbiter and hands it to the reaper), then those in the reaper.
async fn end_run(run: UnitsRun, task: String) {
    let UnitsRun {
        addr: _addr,
        arbiter,
        reaper,
    } = run;
    join_arbiter(arbiter, &task).await;
    let children: Vec<Arbiter> = reaper.lock().expect("reaper lock").drain(..).collect();
    for a in children {
        join_arbiter(a, &task).await;
    }
}

async fn join_arbiter(arbiter: Arbiter, task: &str) {
    arbiter.stop();
    let joined = tokio::time::timeout(
        JOIN_TIMEOUT,
        actix_rt::task::spawn_blocking(move || arbiter.join()),
    )
    .await;
    if joined.is_err() {
        warn!(
            task,
            timeout_s = JOIN_TIMEOUT.as_secs(),
            "a units thread did not end in time"
        );
    }
}

/// The actor.
pub struct SubtaskActor {
    cfg: Arc<SubTaskConfig>,
    key: Option<SecretKey>,
    expect: Stage,
    stage: Stage,
    error: Option<DmError>,
    backoff: Backoff,
    run: Option<UnitsRun>,
    shared: Arc<UnitsShared>,
    resume: Option<SpawnHandle>,
    /// Incarnation counter: an exit report of an older incarnation is ignored.
    epoch: u64,
    auto_resumes: u32,
    stopping: bool,
    stop_reason: &'static str,
    /// The arbiter of an incarnation being stopped gracefully, so that an immediate stop
    /// (lease lost) can still cut the flush short.
    draining: Option<ArbiterHandle>,
    coordinator: Coordinator,
}

impl SubtaskActor {
    /// A subtask for `cfg` (its source already applied) that starts in stage `expect`.
    pub fn new(cfg: SubTaskConfig, key: Option<SecretKey>, expect: Stage) -> Self {
        Self {
            cfg: Arc::new(cfg),
            key,
            expect,
            stage: Stage::New,
            error: None,
            backoff: Backoff::auto_resume(),
            run: None,
            shared: Arc::default(),
            resume: None,
            epoch: 0,
            auto_resumes: 0,
            stopping: false,
            stop_reason: "stopped",
            draining: None,
            coordinator: Coordinator::Local,
        }
    }

    /// Shard DDL locks are decided by `coordinator` (a worker: the master, through etcd).
    pub fn with_coordinator(mut self, coordinator: Coordinator) -> Self {
        self.coordinator = coordinator;
        self
    }

    /// The config the subtask runs with.
    pub fn config(&self) -> &SubTaskConfig {
        &self.cfg
    }

    fn start_units(&mut self, reason: &'static str, ctx: &mut Context<Self>) {
        if self.stopping || self.run.is_some() {
            return;
        }
        self.cancel_resume(ctx);
        self.epoch += 1;
        let epoch = self.epoch;
        let restarted_after = self.error.take().map(|e| e.code);
        self.stage = Stage::Running;
        let reaper = Reaper::default();
        let actor = UnitsActor::new(
            (*self.cfg).clone(),
            self.key.clone(),
            ctx.address().recipient(),
            epoch,
        )
        .supervised_by("SubTask", reaper.clone())
        .with_coordinator(self.coordinator.clone());
        self.shared = actor.status_handle();
        let arbiter = Arbiter::new();
        let addr = UnitsActor::start_in_arbiter(&arbiter.handle(), move |_| actor);
        self.run = Some(UnitsRun {
            addr,
            arbiter,
            reaper,
        });
        self.backoff.mark_started();
        if let Some(code) = restarted_after {
            info!(actor = "Units", parent = "SubTask", task = %self.cfg.name, source = %self.cfg.source_id, reason, code, "actor restarted");
        }
    }

    fn units_exited(&mut self, epoch: u64, res: Result<(), DmError>, ctx: &mut Context<Self>) {
        if epoch != self.epoch {
            return;
        }
        let Some(run) = self.run.take() else { return };
        ctx.spawn(end_run(run, self.cfg.name.clone()).into_actor(self));
        let unit = self.shared.unit().map_or("InvalidUnit", |u| u.as_str());
        let (task, source) = (&self.cfg.name, &self.cfg.source_id);
        match res {
            Ok(()) => {
                self.stage = Stage::Finished;
                info!(task = %task, source = %source, unit, "subtask finished");
            }
            Err(e) => {
                self.stage = Stage::Paused;
                if e.resumable && self.expect == Stage::Running {
                    let delay = self.backoff.next_delay();
                    warn!(task = %task, source = %source, unit, code = e.code, error = %e.chain(), retry_in_ms = delay.as_millis() as u64, "subtask paused by a resumable error; auto-resume scheduled");
                    self.resume = Some(ctx.run_later(delay, |act, ctx| {
                        act.resume = None;
                        act.auto_resume(ctx);
                    }));
                } else {
                    error!(task = %task, source = %source, unit, code = e.code, error = %e.chain(), "subtask paused by an error that is not resumable; fix the cause, then resume the task");
                }
                self.error = Some(e);
            }
        }
    }

    fn auto_resume(&mut self, ctx: &mut Context<Self>) {
        if self.expect == Stage::Running && self.run.is_none() && self.stage == Stage::Paused {
            self.auto_resumes += 1;
            self.start_units("auto-resume", ctx);
        }
    }

    fn cancel_resume(&mut self, ctx: &mut Context<Self>) {
        if let Some(h) = self.resume.take() {
            ctx.cancel_future(h);
        }
    }

    /// Takes the units away now; the future waits until their threads ended. Without
    /// `graceful` the arbiters are stopped before this returns.
    fn stop_units(&mut self, graceful: bool) -> impl Future<Output = ()> + 'static {
        let run = self.run.take();
        let task = self.cfg.name.clone();
        if !graceful {
            if let Some(h) = self.draining.take() {
                h.stop();
            }
            if let Some(r) = &run {
                r.arbiter.stop();
            }
        } else if let Some(r) = &run {
            self.draining = Some(r.arbiter.handle());
        }
        async move {
            let Some(run) = run else { return };
            if graceful
                && tokio::time::timeout(GRACEFUL_STOP_TIMEOUT, run.addr.send(StopSubtask))
                    .await
                    .is_err()
            {
                warn!(task = %task, timeout_s = GRACEFUL_STOP_TIMEOUT.as_secs(), "graceful stop timed out; dropping the units");
            }
            end_run(run, task).await;
        }
    }
}

impl Actor for SubtaskActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        info!(actor = "SubTask", parent = "SourceWorker", task = %self.cfg.name, source = %self.cfg.source_id, mode = self.cfg.task_mode.as_str(), expect = self.expect.as_str(), reason = "subtask in etcd", "actor started");
        match self.expect {
            Stage::Running => self.start_units("expected stage Running", ctx),
            s => self.stage = s,
        }
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        // Normally the units are gone already (ShutdownSubtask); if this actor is dropped with
        // its arbiter, its units must not outlive it.
        if let Some(run) = self.run.take() {
            run.arbiter.stop();
        }
        info!(actor = "SubTask", parent = "SourceWorker", task = %self.cfg.name, source = %self.cfg.source_id, reason = self.stop_reason, "actor stopped");
    }
}

impl Handler<SetExpectedStage> for SubtaskActor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, msg: SetExpectedStage, ctx: &mut Context<Self>) -> Self::Result {
        let (task, source) = (&self.cfg.name, &self.cfg.source_id);
        info!(task = %task, source = %source, expect = msg.stage.as_str(), stage = self.stage.as_str(), "expected stage");
        self.expect = msg.stage;
        match msg.stage {
            Stage::Running => {
                if self.run.is_none() && self.stage != Stage::Finished {
                    let reason = if self.error.is_some() {
                        "resume"
                    } else {
                        "expected stage Running"
                    };
                    self.start_units(reason, ctx);
                }
                Box::pin(fut::ready(()))
            }
            Stage::Paused | Stage::Stopped => {
                self.cancel_resume(ctx);
                let was_running = self.run.is_some();
                if !was_running && self.stage != Stage::Finished {
                    self.stage = msg.stage;
                }
                // A running subtask shows the new stage once its units really stopped.
                Box::pin(
                    self.stop_units(true)
                        .into_actor(self)
                        .map(move |(), act, _| {
                            act.draining = None;
                            if was_running && act.run.is_none() && act.stage != Stage::Finished {
                                act.stage = msg.stage;
                            }
                        }),
                )
            }
            other => {
                warn!(task = %task, source = %source, expect = other.as_str(), "expected stage ignored");
                Box::pin(fut::ready(()))
            }
        }
    }
}

impl Handler<ShutdownSubtask> for SubtaskActor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, msg: ShutdownSubtask, ctx: &mut Context<Self>) -> Self::Result {
        self.stopping = true;
        self.stop_reason = msg.reason;
        self.cancel_resume(ctx);
        if self.stage == Stage::Running {
            self.stage = Stage::Stopped;
        }
        Box::pin(
            self.stop_units(msg.graceful)
                .into_actor(self)
                .map(|(), _, ctx| ctx.stop()),
        )
    }
}

impl Handler<UnitsExited> for SubtaskActor {
    type Result = ();

    fn handle(&mut self, msg: UnitsExited, ctx: &mut Context<Self>) {
        self.units_exited(msg.epoch, msg.result, ctx);
    }
}

impl Handler<QuerySubtaskStatus> for SubtaskActor {
    type Result = MessageResult<QuerySubtaskStatus>;

    fn handle(&mut self, _: QuerySubtaskStatus, _: &mut Context<Self>) -> Self::Result {
        let mut st = SubtaskStatus {
            name: self.cfg.name.clone(),
            source: self.cfg.source_id.clone(),
            stage: self.stage.as_str().to_string(),
            error: self.error.clone(),
            auto_resumes: self.auto_resumes,
            ..Default::default()
        };
        self.shared.fill(&self.cfg, &mut st);
        MessageResult(st)
    }
}
