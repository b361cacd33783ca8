//! The sync unit: binlog → target, in parallel and crash-safe.
//!
//! ```text
//! StreamControllerActor ─EventBatch─► SyncerActor: decode, filter, route, causality (Dispatch)
//!                                        ├─ExecuteBatch─► DMLWorkerActor × worker-count
//!                                        │                 (each: BatchPlanner → one multi-statement
//!                                        │                  transaction per batch, progress row)
//!                                        ├─ DDL: drain every worker, execute, track, SaveCheckpoint
//!                                        └─ SaveCheckpoint ─► CheckpointActor (after a drain)
//! ```
//!
//! Threads: the whole unit (stream, syncer, workers, checkpoint) runs on the SyncerActor's
//! own arbiter. On a machine shared with the target, one thread without cross-thread
//! wake-ups, hand-offs and frees costs the least CPU per row; decoding one batch of events
//! takes well under a millisecond, so the workers' I/O is not held up.
//!
//! Children: the SyncerActor's run creates the others and holds their only strong
//! addresses; when the run ends it halts them. Failures: any child error ends the unit with
//! that error (the parent decides whether to re-create it from the checkpoint).
//!
//! Resume invariant: the checkpoint's global point is a transaction boundary before which every
//! change is committed; each worker's progress row counts its commits since then. A new
//! incarnation replays from the point, dispatches deterministically (see [`causality`]), and
//! each worker skips what it had committed, so nothing is lost or applied twice. Safe mode
//! (REPLACE forms) additionally covers `safe-mode-duration` after each start, as in DM.

pub mod causality;
pub mod checkpoint;
pub mod dml_worker;
mod process;
pub mod stream;

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use actix::prelude::*;
use serde::Serialize;
use tokio::sync::oneshot;
use tracing::{error, info};

use crate::binlog::location::Location;
use crate::config::{SecretKey, SubTaskConfig};
use crate::error::DmError;
use crate::messages::syncer::{EventBatch, StreamFailed};

pub use process::{Run, downstream_session, lag_seconds};

/// What query-status shows of a running sync unit.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncStatus {
    pub total_events: u64,
    pub total_rows: u64,
    /// Rows per second since the unit started.
    pub total_tps: f64,
    pub master_binlog: String,
    pub master_binlog_gtid: String,
    /// The flushed checkpoint.
    pub syncer_binlog: String,
    pub syncer_binlog_gtid: String,
    /// The last position read.
    pub current_binlog: String,
    pub synced: bool,
    /// Seconds between now and the event time of the oldest change not yet applied (DM's
    /// definition; 0 when nothing is in flight).
    pub seconds_behind_master: u64,
    pub safe_mode: bool,
    /// Shard `DROP TABLE` / `TRUNCATE TABLE` / `DROP DATABASE` statements not applied because
    /// their target merges several upstream tables.
    pub skipped_shard_ddls: u64,
    /// Where the lag is read from: each DML worker's and the DDL slot's oldest in-flight
    /// event time.
    #[serde(skip)]
    pub lag_sources: Vec<Arc<AtomicU64>>,
}

impl SyncStatus {
    /// A copy with the lag computed now (the lag moves while the syncer is blocked, e.g. on a
    /// slow target, so it is read from the workers, not stored).
    pub fn snapshot(&self) -> SyncStatus {
        let mut s = self.clone();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        s.seconds_behind_master = lag_seconds(&self.lag_sources, now);
        s
    }
}

/// How the unit ended.
pub type ExitSender = oneshot::Sender<Result<(), DmError>>;

/// The sync unit of one subtask.
pub struct SyncerActor {
    cfg: Arc<SubTaskConfig>,
    key: Option<SecretKey>,
    run: Option<Run>,
    status: Arc<Mutex<SyncStatus>>,
    exit: Option<ExitSender>,
    started_at: Instant,
}

impl SyncerActor {
    /// A unit for `cfg` (with its source applied); `exit` learns how it ended.
    pub fn new(cfg: SubTaskConfig, key: Option<SecretKey>, exit: ExitSender) -> Self {
        Self {
            cfg: Arc::new(cfg),
            key,
            run: None,
            status: Arc::default(),
            exit: Some(exit),
            started_at: Instant::now(),
        }
    }

    /// A handle on the live status.
    pub fn status_handle(&self) -> Arc<Mutex<SyncStatus>> {
        self.status.clone()
    }

    fn finish(&mut self, result: Result<(), DmError>, ctx: &mut Context<Self>) {
        if let Err(e) = &result {
            error!(task = %self.cfg.name, source = %self.cfg.source_id, unit = "Sync", code = e.code, error = %e.chain(), "sync unit failed");
        }
        if let Some(tx) = self.exit.take() {
            let _ = tx.send(result);
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
        Run::start(cfg, key, status, me)
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
                if let Err(e) = &res {
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

/// Asks the unit to stop after flushing a checkpoint at the last transaction boundary.
#[derive(Debug, Message)]
#[rtype(result = "Result<Location, DmError>")]
pub struct StopSyncer;

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
