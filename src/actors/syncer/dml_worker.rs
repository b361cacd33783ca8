//! DMLWorkerActor: applies its share of row changes on its own downstream connection.
//!
//! Messages in: [`ExecuteBatch`] (replies once the changes are queued; waits while the queue
//! holds `queue_limit` changes, which is the pipeline's backpressure) and [`DrainWorker`]
//! (replies when everything queued before is committed). Changes are taken in arrival order,
//! up to `batch` of them per transaction; a [`BatchPlanner`] turns them into few multi-row
//! statements with the same outcome, and the transaction also bumps this worker's progress row
//! (see `sql::checkpoint`); the whole transaction is one round trip. After a crash the worker first drops the `skip`
//! changes it had already committed, so replay applies nothing twice.
//!
//! Failures: connection errors (downstream restarting, network) are retried with backoff for
//! up to [`RETRY_WINDOW`]; after reconnecting, the progress row tells whether the interrupted
//! commit happened, so a batch is never applied twice. Deadlocks and lock wait timeouts retry
//! the batch. Any other server error stops the worker: every later reply carries the error.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix::prelude::*;
use mysql_async::prelude::*;
use mysql_async::{Conn, Opts};
use tokio::sync::oneshot;
use tracing::{info, warn};

use super::causality::ConflictKeys;
use crate::db::{self, Fault};
use crate::error::{DmError, codes};
use crate::messages::syncer::{DrainWorker, ExecuteBatch, Halt};
use crate::sql::checkpoint::CheckpointTables;
use crate::sql::dml::{BatchPlanner, RowChange, TargetTable, compact};

pub use crate::db::{RETRY_WINDOW, is_connection_error};

/// The largest batch text buffer a worker keeps for the next batch.
const MAX_KEPT_TEXT: usize = 1 << 20;

/// What every worker of a subtask shares. (No `Debug`: the options hold the password.)
pub struct WorkerSettings {
    pub task: String,
    pub source: String,
    pub opts: Opts,
    /// Statements run on every new connection (time zone, sql_mode, user session vars).
    pub session: Vec<String>,
    pub batch: usize,
    /// Keep the order of changes to different tables inside a batch (the target session has
    /// foreign key checks on); see [`BatchPlanner::in_order`].
    pub keep_order: bool,
    /// DM's `compact`: merge a batch's changes to the same row.
    pub compact: bool,
    pub checkpoint: CheckpointTables,
}

/// Where a parked sender learns its changes were queued (or the worker failed).
type Reply = oneshot::Sender<Result<(), DmError>>;

/// The actor.
pub struct DmlWorkerActor {
    index: usize,
    settings: Arc<WorkerSettings>,
    queue: VecDeque<RowChange>,
    queue_limit: usize,
    /// Senders waiting for room, with their changes.
    waiting: VecDeque<(Vec<RowChange>, Reply)>,
    drains: Vec<Reply>,
    executing: bool,
    failed: Option<DmError>,
    conn: Option<Conn>,
    /// Changes still to drop: they were committed before the last crash.
    skip: u64,
    /// Event time of the oldest change not yet committed (0: idle), read by the syncer for
    /// the lag metric.
    oldest: Arc<AtomicU64>,
    /// Event time of the first change of the batch being executed.
    executing_ts: u32,
    /// Reused for every batch's SQL.
    planner: BatchPlanner,
    keys: ConflictKeys,
    /// The last batch's text buffer, reused (`None` while a batch is executing).
    text: Option<String>,
}

impl DmlWorkerActor {
    /// Worker `index`; `committed` is its progress counter from the checkpoint, all of which
    /// the replay will send again and which are therefore skipped.
    pub fn new(
        index: usize,
        settings: Arc<WorkerSettings>,
        queue_limit: usize,
        committed: u64,
        oldest: Arc<AtomicU64>,
    ) -> Self {
        let planner = if settings.keep_order {
            BatchPlanner::in_order()
        } else {
            BatchPlanner::default()
        };
        Self {
            index,
            settings,
            queue: VecDeque::new(),
            queue_limit: queue_limit.max(1),
            waiting: VecDeque::new(),
            drains: Vec::new(),
            executing: false,
            failed: None,
            conn: None,
            skip: committed,
            oldest,
            executing_ts: 0,
            planner,
            keys: ConflictKeys::default(),
            text: None,
        }
    }

    fn admit(&mut self, mut changes: Vec<RowChange>) {
        if self.skip > 0 {
            let n = (self.skip as usize).min(changes.len());
            changes.drain(..n);
            self.skip -= n as u64;
        }
        self.queue.extend(changes);
    }

    fn admit_waiting(&mut self) {
        while self.queue.len() < self.queue_limit {
            let Some((changes, tx)) = self.waiting.pop_front() else {
                break;
            };
            self.admit(changes);
            let _ = tx.send(Ok(()));
        }
    }

    fn fail(&mut self, e: DmError) {
        warn!(task = %self.settings.task, source = %self.settings.source, worker = self.index, error = %e.chain(), "dml worker stopped");
        for (_, tx) in self.waiting.drain(..) {
            let _ = tx.send(Err(e.clone()));
        }
        for tx in self.drains.drain(..) {
            let _ = tx.send(Err(e.clone()));
        }
        self.queue.clear();
        self.failed = Some(e);
    }

    /// Publishes the event time of the oldest change not yet committed: the executing batch's
    /// first, else the queue's front, else the first waiting one (arrival order is binlog
    /// order), 0 when idle.
    fn publish_oldest(&self) {
        let ts = if self.executing {
            self.executing_ts
        } else if let Some(c) = self.queue.front() {
            c.ts
        } else {
            self.waiting
                .front()
                .and_then(|(c, _)| c.first())
                .map_or(0, |c| c.ts)
        };
        self.oldest.store(u64::from(ts), Ordering::Relaxed);
    }

    fn pump(&mut self, ctx: &mut Context<Self>) {
        self.pump_batch(ctx);
        self.publish_oldest();
    }

    fn pump_batch(&mut self, ctx: &mut Context<Self>) {
        if self.executing || self.failed.is_some() {
            return;
        }
        if self.queue.is_empty() {
            for tx in self.drains.drain(..) {
                let _ = tx.send(Ok(()));
            }
            return;
        }
        let n = self.queue.len().min(self.settings.batch.max(1));
        // Written with the batch, so that after a lost connection the worker can tell whether
        // this very batch committed (counters are reset by checkpoints, so they cannot tell).
        let batch_id = rand::random::<u64>() >> 1 | 1;
        let mut text = self.text.take().unwrap_or_default();
        let changes = &self.queue.make_contiguous()[..n];
        batch_text(
            &self.settings,
            self.index,
            (&mut self.planner, &mut self.keys),
            changes,
            batch_id,
            &mut text,
        );
        self.executing_ts = changes[0].ts;
        let batch = Batch {
            text,
            id: batch_id,
            len: n,
            first_table: changes[0].table.clone(),
        };
        self.queue.drain(..n);
        self.admit_waiting();
        self.executing = true;
        let settings = self.settings.clone();
        let index = self.index;
        let conn = self.conn.take();
        async move {
            let (conn, res) = execute(conn, &settings, index, &batch).await;
            (conn, res, batch.text)
        }
        .into_actor(self)
        .map(move |(conn, res, text), act, ctx| {
            act.executing = false;
            act.conn = conn;
            // Keep the buffer unless a huge batch (big BLOBs) grew it.
            act.text = (text.capacity() <= MAX_KEPT_TEXT).then_some(text);
            match res {
                Ok(()) => {
                    act.pump(ctx);
                }
                Err(e) => act.fail(e),
            }
        })
        .spawn(ctx);
    }
}

impl Actor for DmlWorkerActor {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Context<Self>) {
        info!(actor = "DMLWorker", parent = "Syncer", task = %self.settings.task, source = %self.settings.source, worker = self.index, skip = self.skip, "actor started");
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        info!(actor = "DMLWorker", task = %self.settings.task, source = %self.settings.source, worker = self.index, reason = if self.failed.is_some() { "failed" } else { "stopped" }, "actor stopped");
    }
}

impl Handler<ExecuteBatch> for DmlWorkerActor {
    type Result = ResponseFuture<Result<(), DmError>>;

    fn handle(&mut self, msg: ExecuteBatch, ctx: &mut Context<Self>) -> Self::Result {
        if let Some(e) = &self.failed {
            let e = e.clone();
            return Box::pin(async move { Err(e) });
        }
        if self.queue.len() < self.queue_limit && self.waiting.is_empty() {
            self.admit(msg.changes);
            self.pump(ctx);
            return Box::pin(async { Ok(()) });
        }
        let (tx, rx) = oneshot::channel();
        self.waiting.push_back((msg.changes, tx));
        Box::pin(async move {
            rx.await
                .unwrap_or_else(|_| Err(DmError::bare(&codes::ACTOR_MAILBOX_CLOSED)))
        })
    }
}

impl Handler<DrainWorker> for DmlWorkerActor {
    type Result = ResponseFuture<Result<(), DmError>>;

    fn handle(&mut self, _: DrainWorker, ctx: &mut Context<Self>) -> Self::Result {
        if let Some(e) = &self.failed {
            let e = e.clone();
            return Box::pin(async move { Err(e) });
        }
        let (tx, rx) = oneshot::channel();
        self.drains.push(tx);
        self.pump(ctx);
        Box::pin(async move {
            rx.await
                .unwrap_or_else(|_| Err(DmError::bare(&codes::ACTOR_MAILBOX_CLOSED)))
        })
    }
}

impl Handler<Halt> for DmlWorkerActor {
    type Result = ();

    fn handle(&mut self, _: Halt, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

async fn connect(settings: &WorkerSettings) -> Result<Conn, mysql_async::Error> {
    let mut conn = Conn::new(settings.opts.clone()).await?;
    for s in &settings.session {
        conn.query_drop(s).await?;
    }
    Ok(conn)
}

/// After a lost connection: stops the old session (so a COMMIT still in flight either lands
/// or rolls back now) and reads the id of the last batch this worker committed; the locking
/// read waits for any transaction still holding the row.
async fn last_committed_batch(
    conn: &mut Conn,
    settings: &WorkerSettings,
    index: usize,
    old_session: Option<u32>,
) -> Result<Option<u64>, mysql_async::Error> {
    if let Some(id) = old_session {
        // Unknown thread (1094): the server already ended it.
        let _ = conn.query_drop(format!("KILL {id}")).await;
    }
    conn.exec_first(
        format!(
            "SELECT last_batch FROM {} WHERE id = ? AND worker = ? LOCK IN SHARE MODE",
            settings.checkpoint.workers
        ),
        (&settings.checkpoint.source_id, index as u32),
    )
    .await
}

/// Writes the transaction text of one batch into `text` (cleared first): BEGIN, the batch's
/// statements (see [`BatchPlanner`]), the worker's progress row, COMMIT; one round trip.
fn batch_text(
    settings: &WorkerSettings,
    index: usize,
    (planner, keys): (&mut BatchPlanner, &mut ConflictKeys),
    changes: &[RowChange],
    batch_id: u64,
    text: &mut String,
) {
    text.clear();
    text.push_str("BEGIN");
    // The dispatcher's keys when it kept them (compacted changes get theirs computed).
    let mut key_fn = |ch: &RowChange, out: &mut Vec<u64>| match ch.keys.get() {
        Some(k) => {
            out.clear();
            out.extend_from_slice(k);
        }
        None => keys.keys(ch, out),
    };
    if settings.compact {
        let compacted = compact(changes.to_vec());
        planner.plan(&compacted, &mut key_fn, text);
    } else {
        planner.plan(changes, &mut key_fn, text);
    }
    text.push_str(";\n");
    text.push_str(
        &settings
            .checkpoint
            .worker_progress_sql(index, changes.len(), batch_id),
    );
    text.push_str(";\nCOMMIT");
}

/// One transaction's worth of changes, as SQL.
struct Batch {
    text: String,
    /// Random, written to the progress row with the batch.
    id: u64,
    len: usize,
    first_table: Arc<TargetTable>,
}

/// Runs one batch in one transaction; returns the connection (if still usable) and the result.
async fn execute(
    mut conn: Option<Conn>,
    settings: &WorkerSettings,
    index: usize,
    batch: &Batch,
) -> (Option<Conn>, Result<(), DmError>) {
    let (text, batch_id) = (&batch.text, batch.id);
    let started = Instant::now();
    let mut pause = Duration::from_millis(200);
    let mut verify = false;
    let mut session = None;
    loop {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match connect(settings).await {
                Ok(c) => conn.insert(c),
                Err(e) if db::classify(&e) == Fault::Permanent => {
                    let err = db::error(
                        &codes::DB_BAD_CONN,
                        "the downstream refused the connection or its session settings",
                        e,
                    );
                    return (None, Err(err));
                }
                Err(e) => {
                    if started.elapsed() > RETRY_WINDOW {
                        return (
                            None,
                            Err(DmError::new(
                                &codes::DB_BAD_CONN,
                                "downstream unreachable; retries exhausted",
                            )
                            .with_cause(e)),
                        );
                    }
                    warn!(task = %settings.task, worker = index, error = %e, "downstream connect failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                    continue;
                }
            },
        };
        if verify {
            // The last attempt died with the connection: did its COMMIT land?
            match last_committed_batch(c, settings, index, session).await {
                Ok(Some(id)) if id == batch_id => return (conn, Ok(())),
                Ok(Some(_)) => verify = false,
                Ok(None) => {
                    let msg = format!(
                        "worker {index} has no progress row in {}",
                        settings.checkpoint.workers
                    );
                    return (conn, Err(DmError::new(&codes::DB_UNEXPECTED, msg)));
                }
                Err(e) => {
                    warn!(task = %settings.task, worker = index, error = %e, "reading progress failed; reconnecting");
                    conn = None;
                    continue;
                }
            }
        }
        session = Some(c.id());
        match c.query_drop(text).await {
            Ok(()) if crate::failpoint::lose("dml-lose-commit-reply") => {
                // As if the COMMIT's answer never arrived: find out from the progress row.
                conn = None;
                verify = true;
            }
            Ok(()) => {
                crate::failpoint::crash("dml-after-commit");
                return (conn, Ok(()));
            }
            Err(e) => match db::classify(&e) {
                Fault::Transient => {
                    let _ = c.query_drop("ROLLBACK").await;
                    warn!(task = %settings.task, worker = index, error = %e, "batch rolled back; retrying");
                }
                Fault::ConnectionLost => {
                    warn!(task = %settings.task, worker = index, error = %e, "downstream connection lost; reconnecting");
                    conn = None;
                    verify = true;
                    if started.elapsed() > RETRY_WINDOW {
                        return (
                            None,
                            Err(DmError::new(
                                &codes::DB_BAD_CONN,
                                "downstream unreachable; retries exhausted",
                            )
                            .with_cause(e)),
                        );
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
                Fault::Permanent | Fault::Other => {
                    let _ = c.query_drop("ROLLBACK").await;
                    let err = db::error(
                        &codes::DB_EXECUTE_FAILED,
                        format!(
                            "applying a batch of {} changes (first on {}) failed",
                            batch.len, batch.first_table.quoted
                        ),
                        e,
                    );
                    let resumable = false;
                    return (conn, Err(DmError { resumable, ..err }));
                }
            },
        }
    }
}
