//! CheckpointActor: writes the syncer's checkpoint on its own downstream connection.
//!
//! Messages in: [`SaveCheckpoint`], sent by the SyncerActor only after draining every DML
//! worker confirmed every earlier change committed. A failed write is retried on a new
//! connection with backoff for up to the DML workers' retry window, then reported: the syncer
//! stops rather than go on without a durable point.

use std::sync::Arc;

use actix::prelude::*;
use mysql_async::{Conn, Opts};
use tracing::{debug, info};

use crate::error::DmError;
use crate::messages::syncer::SaveCheckpoint;
use crate::sql::checkpoint::CheckpointTables;

/// The actor.
pub struct CheckpointActor {
    task: String,
    opts: Opts,
    tables: Arc<CheckpointTables>,
    worker_count: usize,
    conn: Option<Conn>,
}

impl CheckpointActor {
    /// Checkpoints of `tables` for `worker_count` DML workers.
    pub fn new(
        task: String,
        opts: Opts,
        tables: Arc<CheckpointTables>,
        worker_count: usize,
    ) -> Self {
        Self {
            task,
            opts,
            tables,
            worker_count,
            conn: None,
        }
    }
}

impl Actor for CheckpointActor {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Context<Self>) {
        info!(actor = "Checkpoint", parent = "Syncer", task = %self.task, "actor started");
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        info!(actor = "Checkpoint", parent = "Syncer", task = %self.task, reason = "stopped", "actor stopped");
    }
}

impl Handler<SaveCheckpoint> for CheckpointActor {
    type Result = AtomicResponse<Self, Result<(), DmError>>;

    fn handle(&mut self, msg: SaveCheckpoint, _: &mut Context<Self>) -> Self::Result {
        let conn = self.conn.take();
        let (opts, tables, workers, task) = (
            self.opts.clone(),
            self.tables.clone(),
            self.worker_count,
            self.task.clone(),
        );
        let fut = async move {
            let mut last = None;
            let mut conn = conn;
            let started = std::time::Instant::now();
            let mut pause = std::time::Duration::from_millis(200);
            // A downstream outage is waited out (as the DML workers do); the error is
            // returned once the retry window has passed.
            while started.elapsed() < super::dml_worker::RETRY_WINDOW || last.is_none() {
                if last.is_some() {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(std::time::Duration::from_secs(5));
                }
                let c = match conn.take() {
                    Some(c) => c,
                    None => match Conn::new(opts.clone()).await {
                        Ok(c) => c,
                        Err(e) => {
                            last = Some(
                                DmError::new(
                                    &crate::error::codes::DB_BAD_CONN,
                                    "checkpoint connection failed",
                                )
                                .with_cause(e),
                            );
                            continue;
                        }
                    },
                };
                let mut c = c;
                match tables
                    .save(
                        &mut c,
                        &msg.location,
                        &msg.tables,
                        workers,
                        msg.exit_safe.as_ref(),
                        msg.sharding.as_ref(),
                    )
                    .await
                {
                    Ok(()) => {
                        debug!(task = %task, location = %msg.location, tables = msg.tables.len(), "checkpoint saved");
                        return (Some(c), Ok(()));
                    }
                    Err(e) => {
                        tracing::warn!(task = %task, error = %e.chain(), "checkpoint write failed; retrying");
                        last = Some(e);
                    }
                }
            }
            (None, Err(last.expect("the loop ran and failed")))
        };
        AtomicResponse::new(Box::pin(fut.into_actor(self).map(|(conn, res), act, _| {
            act.conn = conn;
            res
        })))
    }
}

impl Handler<crate::messages::syncer::Halt> for CheckpointActor {
    type Result = ();

    fn handle(&mut self, _: crate::messages::syncer::Halt, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
