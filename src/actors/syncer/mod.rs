//! The sync unit: binlog → target, in parallel and crash-safe.
//!
//! ```text
//! StreamControllerActor ─EventBatch─► SyncerActor: decode, filter, route, schema tracker
//!                                        ├─RouteRows─► CausalityActor × buckets (target tables
//!                                        │              hashed to buckets; conflict keys → worker)
//!                                        │                ├─ExecuteBatch─► DMLWorkerActor × worker-count
//!                                        │                │  (BatchPlanner → one multi-statement
//!                                        │                │   transaction per batch, progress row)
//!                                        │                └─DrainWorker (a conflict: this bucket only)
//!                                        ├─ DDL / flush: DrainBucket to every bucket, then execute,
//!                                        │  track, SaveCheckpoint
//!                                        └─ SaveCheckpoint ─► CheckpointActor (after a drain)
//! ```
//!
//! Threads: the whole unit (stream, syncer, causality buckets, workers, checkpoint) runs on
//! the SyncerActor's own arbiter. On a machine shared with the target, one thread without
//! cross-thread wake-ups, hand-offs and frees costs the least CPU per row; decoding one batch
//! of events takes well under a millisecond, so the workers' I/O is not held up.
//!
//! Children: the SyncerActor's run creates the others and holds their only strong
//! addresses; when the run ends it halts them. Failures: any child error ends the unit with
//! that error, reported to the parent as [`SyncerExited`] (the parent decides whether to
//! re-create it from the checkpoint). The live status is shared memory
//! (`Arc<Mutex<SyncStatus>>`), not a message: it is updated once per batch of events and read
//! by the parent even after the unit ended.
//!
//! Resume invariant: the checkpoint's global point is a transaction boundary before which every
//! change is committed; each worker's progress row counts its commits since then. A new
//! incarnation replays from the point, dispatches deterministically (see [`causality`]), and
//! each worker skips what it had committed, so nothing is lost or applied twice. Safe mode
//! (REPLACE forms) additionally covers `safe-mode-duration` after each start, as in DM.

pub mod causality;
pub mod causality_actor;
pub mod checkpoint;
pub mod dml_worker;
pub mod opt_shard;
mod process;
pub mod resume;
pub mod shard;
pub mod stream;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use actix::prelude::*;
use tracing::{error, info};

use crate::binlog::location::Location;
use crate::config::{SecretKey, SubTaskConfig};
use crate::error::DmError;
use crate::messages::syncer::{EventBatch, StopSyncer, StreamFailed, SyncStatus, SyncerExited};

pub use process::Run;
pub use shard::{Coordinator, StopSignal};

/// The sync unit of one subtask.
pub struct SyncerActor {
    cfg: Arc<SubTaskConfig>,
    key: Option<SecretKey>,
    coordinator: Coordinator,
    stop: Arc<StopSignal>,
    run: Option<Run>,
    status: Arc<Mutex<SyncStatus>>,
    /// The parent, told once how the unit ended.
    exit: Option<Recipient<SyncerExited>>,
    started_at: Instant,
}

impl SyncerActor {
    /// A unit for `cfg` (with its source applied); `parent` learns how it ended
    /// ([`SyncerExited`]).
    pub fn new(
        cfg: SubTaskConfig,
        key: Option<SecretKey>,
        parent: Recipient<SyncerExited>,
    ) -> Self {
        Self {
            cfg: Arc::new(cfg),
            key,
            coordinator: Coordinator::Local,
            stop: Arc::default(),
            run: None,
            status: Arc::default(),
            exit: Some(parent),
            started_at: Instant::now(),
        }
    }

    /// Shard DDL locks are decided by `coordinator` (default: [`Coordinator::Local`]).
    pub fn with_coordinator(mut self, coordinator: Coordinator) -> Self {
        self.coordinator = coordinator;
        self
    }

    /// A handle on the live status.
    pub fn status_handle(&self) -> Arc<Mutex<SyncStatus>> {
        self.status.clone()
    }

    /// Set it before sending [`StopSyncer`]: a unit waiting for a shard DDL lock stops waiting.
    pub fn stop_handle(&self) -> Arc<StopSignal> {
        self.stop.clone()
    }

    fn finish(&mut self, result: Result<(), DmError>, ctx: &mut Context<Self>) {
        if let Err(e) = &result {
            error!(task = %self.cfg.name, source = %self.cfg.source_id, unit = "Sync", code = e.code, error = %e.chain(), "sync unit failed");
        }
        if let Some(parent) = self.exit.take() {
            parent.do_send(SyncerExited { result });
        }
        ctx.stop();
    }
}

impl Actor for SyncerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        info!(actor = "Syncer", parent = "SubTask", task = %self.cfg.name, source = %self.cfg.source_id, "actor started");
        ctx.set_mailbox_capacity(4);
        let (cfg, key, status, me) = (
            self.cfg.clone(),
            self.key.clone(),
            self.status.clone(),
            ctx.address(),
        );
        Run::start(
            cfg,
            key,
            status,
            me,
            self.coordinator.clone(),
            self.stop.clone(),
        )
        .into_actor(self)
        .map(|res, act, ctx| match res {
            Ok(run) => act.run = Some(run),
            Err(e) => act.finish(Err(e), ctx),
        })
        .wait(ctx);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        info!(actor = "Syncer", parent = "SubTask", task = %self.cfg.name, source = %self.cfg.source_id, uptime_s = self.started_at.elapsed().as_secs(), reason = "stopped", "actor stopped");
    }
}

impl Handler<EventBatch> for SyncerActor {
    type Result = AtomicResponse<Self, Result<(), DmError>>;

    fn handle(&mut self, msg: EventBatch, _: &mut Context<Self>) -> Self::Result {
        let Some(mut run) = self.run.take() else {
            return AtomicResponse::new(Box::pin(fut::ready(Err(DmError::bare(
                &crate::error::codes::ACTOR_RESTARTING,
            )))));
        };
        AtomicResponse::new(Box::pin(
            async move {
                let res = run.process(msg.events).await;
                (run, res)
            }
            .into_actor(self)
            .map(|(run, res), act, ctx| {
                act.run = Some(run);
                // Stopped while waiting for a shard DDL lock: the StopSyncer queued behind
                // this batch finishes the unit.
                if let Err(e) = &res
                    && !act.stop.is_set()
                {
                    act.finish(Err(e.clone()), ctx);
                }
                res
            }),
        ))
    }
}

impl Handler<StreamFailed> for SyncerActor {
    type Result = ();

    fn handle(&mut self, msg: StreamFailed, ctx: &mut Context<Self>) {
        self.finish(Err(msg.error), ctx);
    }
}

impl Handler<StopSyncer> for SyncerActor {
    type Result = AtomicResponse<Self, Result<Location, DmError>>;

    fn handle(&mut self, _: StopSyncer, _: &mut Context<Self>) -> Self::Result {
        let Some(mut run) = self.run.take() else {
            return AtomicResponse::new(Box::pin(fut::ready(Err(DmError::bare(
                &crate::error::codes::ACTOR_RESTARTING,
            )))));
        };
        AtomicResponse::new(Box::pin(
            async move {
                let res = run.flush().await.map(|()| run.flushed().clone());
                (run, res)
            }
            .into_actor(self)
            .map(|(run, res), act, ctx| {
                act.run = Some(run);
                act.finish(res.clone().map(|_| ()), ctx);
                res
            }),
        ))
    }
}
