//! DMLWorkerActor: applies its share of row changes on its own downstream connection.
//!
//! Messages in: [`ExecuteBatch`] (replies once the changes are queued; waits while the queue
//! holds `queue_limit` changes, which is the pipeline's backpressure) and [`DrainWorker`]
//! (replies when everything queued before is committed). Changes are applied in arrival order,
//! up to `batch` of them per transaction, and each transaction also bumps this worker's
//! progress row (see `sql::checkpoint`). After a crash the worker first drops the `skip`
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

use crate::error::{DmError, codes};
use crate::messages::syncer::{DrainWorker, ExecuteBatch};
use crate::sql::checkpoint::CheckpointTables;
use crate::sql::dml::{RowChange, batch_sql, compact};

/// How long connection failures are retried before the worker gives up.
pub const RETRY_WINDOW: Duration = Duration::from_secs(300);

const ER_LOCK_WAIT_TIMEOUT: u16 = 1205;
const ER_LOCK_DEADLOCK: u16 = 1213;
const ER_SERVER_SHUTDOWN: u16 = 1053;
const ER_CON_COUNT_ERROR: u16 = 1040;
const ER_CONNECTION_KILLED: u16 = 1927;
const ER_QUERY_INTERRUPTED: u16 = 1317;

/// What every worker of a subtask shares. (No `Debug`: the options hold the password.)
pub struct WorkerSettings {
    pub task: String,
    pub source: String,
    pub opts: Opts,
    /// Statements run on every new connection (time zone, sql_mode, user session vars).
    pub session: Vec<String>,
    pub batch: usize,
    pub multiple_rows: bool,
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
        let changes: Vec<RowChange> = self.queue.drain(..n).collect();
        self.executing_ts = changes.first().map_or(0, |c| c.ts);
        self.admit_waiting();
        self.executing = true;
        let settings = self.settings.clone();
        let index = self.index;
        let conn = self.conn.take();
        async move { execute(conn, &settings, index, &changes).await }
            .into_actor(self)
            .map(move |(conn, res), act, ctx| {
                act.executing = false;
                act.conn = conn;
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
        info!(actor = "DMLWorker", parent = "Causality", task = %self.settings.task, source = %self.settings.source, worker = self.index, skip = self.skip, "actor started");
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

/// How a failed statement is handled.
enum Failure {
    /// The connection is unusable; reconnect and find out whether the commit happened.
    Connection,
    /// The transaction was rolled back (deadlock) or must be; run it again.
    Retry,
    /// Retrying cannot help.
    Fatal,
}

/// True when `e` means the connection (or the server behind it) is gone, so reconnecting and
/// retrying may succeed.
pub fn is_connection_error(e: &mysql_async::Error) -> bool {
    matches!(classify(e), Failure::Connection)
}

fn classify(e: &mysql_async::Error) -> Failure {
    match e {
        mysql_async::Error::Server(s) => match s.code {
            ER_LOCK_DEADLOCK | ER_LOCK_WAIT_TIMEOUT => Failure::Retry,
            ER_SERVER_SHUTDOWN | ER_CON_COUNT_ERROR | ER_CONNECTION_KILLED
            | ER_QUERY_INTERRUPTED => Failure::Connection,
            _ => Failure::Fatal,
        },
        mysql_async::Error::Io(_) | mysql_async::Error::Driver(_) => Failure::Connection,
        _ => Failure::Fatal,
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

/// Runs one batch in one transaction; returns the connection (if still usable) and the result.
async fn execute(
    mut conn: Option<Conn>,
    settings: &WorkerSettings,
    index: usize,
    changes: &[RowChange],
) -> (Option<Conn>, Result<(), DmError>) {
    // Written with the batch, so that after a lost connection the worker can tell whether
    // this very batch committed (counters are reset by checkpoints, so they cannot tell).
    let batch_id = rand::random::<u64>() >> 1 | 1;
    let mut stmts = Vec::with_capacity(changes.len() + 3);
    stmts.push("BEGIN".to_string());
    if settings.compact {
        batch_sql(
            &compact(changes.to_vec()),
            settings.multiple_rows,
            &mut stmts,
        );
    } else {
        batch_sql(changes, settings.multiple_rows, &mut stmts);
    }
    stmts.push(
        settings
            .checkpoint
            .worker_progress_sql(index, changes.len(), batch_id),
    );
    stmts.push("COMMIT".to_string());
    let text = stmts.join(";\n");
    let started = Instant::now();
    let mut pause = Duration::from_millis(200);
    let mut verify = false;
    let mut session = None;
    loop {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match connect(settings).await {
                Ok(c) => conn.insert(c),
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
        match c.query_drop(&text).await {
            Ok(()) => return (conn, Ok(())),
            Err(e) => match classify(&e) {
                Failure::Retry => {
                    let _ = c.query_drop("ROLLBACK").await;
                    warn!(task = %settings.task, worker = index, error = %e, "batch rolled back; retrying");
                }
                Failure::Connection => {
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
                Failure::Fatal => {
                    let _ = c.query_drop("ROLLBACK").await;
                    let first = changes
                        .first()
                        .map(|ch| ch.table.quoted.clone())
                        .unwrap_or_default();
                    let err = DmError::new(
                        &codes::DB_EXECUTE_FAILED,
                        format!(
                            "applying a batch of {} changes (first on {first}) failed",
                            changes.len()
                        ),
                    )
                    .with_cause(e);
                    let resumable = false;
                    return (conn, Err(DmError { resumable, ..err }));
                }
            },
        }
    }
}
