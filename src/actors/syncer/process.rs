//! The sync unit's per-incarnation state ([`Run`]) and its event loop: decode, filter, route,
//! batch, dispatch, DDL, flush. The SyncerActor hands it one [`EventBatch`] at a time.
//!
//! [`EventBatch`]: crate::messages::syncer::EventBatch

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures_util::future::try_join_all;
use mysql_async::binlog::events::{Event, TableMapEvent};
use mysql_async::prelude::*;
use mysql_async::{Conn, Opts};
use tracing::{debug, info, warn};

use super::SyncerActor;
use super::causality::KeyHasher;
use super::causality_actor::CausalityActor;
use super::checkpoint::CheckpointActor;
use super::dml_worker::{DmlWorkerActor, RETRY_WINDOW, WorkerSettings, is_connection_error};
use super::opt_shard::OptState;
use super::resume::{PendingGtid, Resume, StreamPosition};
use super::shard::{Coordinator, ShardState, StopSignal};
use super::stream::{StreamControllerActor, StreamSpec};
use crate::binlog::decode::{DecodePlan, RowKind, decode_rows, rows_table_id};
use crate::binlog::event::BinlogEvent;
use crate::binlog::gtid::GtidSet;
use crate::binlog::location::{Location, Position};
use crate::binlog::stream::{Flavor, detect_flavor, master_status};
use crate::binlog::value::{ColumnInfo, Value};
use crate::config::rules::ExpressionFilter;
use crate::config::task::ShardMode;
use crate::config::{SecretKey, SubTaskConfig};
use crate::db::{self, errno};
use crate::error::{DmError, codes};
use crate::messages::syncer::{
    DrainBucket, Halt, RouteRows, SaveCheckpoint, SyncStatus, lag_seconds,
};
use crate::sql::checkpoint::CheckpointTables;
use crate::sql::ddl::{self, DdlKind, DdlPiece, StatementKind};
use crate::sql::dml::{ChangeKeys, DmlKind, RowChange, TargetTable};
use crate::sql::expr::RowExpr;
use crate::sql::filter::{BaFilter, EventFilter, EventKind, FilterAction};
use crate::sql::route::Router;
use crate::sql::schema_tracker::{SchemaTracker, TableSchema, load_table};

mod opt_flow;
mod shard_flow;

/// Changes buffered before they are dispatched even inside a batch of events.
const DISPATCH_ROWS: usize = 4096;
/// DML workers per causality bucket.
const WORKERS_PER_BUCKET: usize = 8;
/// How often the upstream's own position is read for status.
const MASTER_STATUS_EVERY: Duration = Duration::from_secs(5);

/// One TABLE_MAP's worth of preparation.
struct TableEntry {
    plan: DecodePlan,
    target: Arc<TargetTable>,
    bucket: usize,
    schema: String,
    table: String,
    /// The task's expression filters for this table.
    filters: Vec<ExprFilter>,
    /// Its sharding group waits for a DDL this table already ran: its rows wait for the
    /// re-sync (valid until the next DDL, when the table map is cleared).
    withheld: bool,
}

/// A compiled `expression-filter`: which rows of one kind it drops.
enum ExprFilter {
    Insert(RowExpr),
    /// Old-row and new-row conditions; a missing one holds for every row.
    Update(Option<Box<RowExpr>>, Option<Box<RowExpr>>),
    Delete(RowExpr),
}

impl ExprFilter {
    fn compile(f: &ExpressionFilter, columns: &[ColumnInfo]) -> Result<Self, DmError> {
        let c = |t: &str| RowExpr::compile(t, columns);
        Ok(if !f.insert_value_expr.is_empty() {
            Self::Insert(c(&f.insert_value_expr)?)
        } else if !f.delete_value_expr.is_empty() {
            Self::Delete(c(&f.delete_value_expr)?)
        } else {
            let opt = |t: &str| {
                if t.is_empty() {
                    Ok(None)
                } else {
                    c(t).map(|e| Some(Box::new(e)))
                }
            };
            Self::Update(
                opt(&f.update_old_value_expr)?,
                opt(&f.update_new_value_expr)?,
            )
        })
    }

    /// True when the row is to be dropped.
    fn drops(
        &self,
        kind: DmlKind,
        before: Option<&[Value]>,
        after: Option<&[Value]>,
        columns: &[ColumnInfo],
    ) -> bool {
        match (self, kind) {
            (Self::Insert(e), DmlKind::Insert) => after.is_some_and(|r| e.matches(r, columns)),
            (Self::Delete(e), DmlKind::Delete) => before.is_some_and(|r| e.matches(r, columns)),
            (Self::Update(old, new), DmlKind::Update) => {
                let holds = |e: &Option<Box<RowExpr>>, r: Option<&[Value]>| {
                    e.as_ref()
                        .is_none_or(|e| r.is_some_and(|r| e.matches(r, columns)))
                };
                holds(old, before) && holds(new, after)
            }
            _ => false,
        }
    }
}

/// State of one incarnation of the sync unit.
pub struct Run {
    cfg: Arc<SubTaskConfig>,
    status: Arc<Mutex<SyncStatus>>,
    flavor: Flavor,
    ba: BaFilter,
    events: EventFilter,
    router: Router,
    tracker: SchemaTracker,
    tables: HashMap<u64, Option<Arc<TableEntry>>>,
    upstream: Conn,
    downstream: Conn,
    to_opts: Opts,
    session: Vec<String>,
    /// One CausalityActor per bucket of target tables: which worker each change goes to.
    buckets: Vec<Addr<CausalityActor>>,
    /// The DML workers, by global index.
    workers: Vec<Addr<DmlWorkerActor>>,
    checkpoint: Addr<CheckpointActor>,
    stream: Addr<StreamControllerActor>,
    /// Where the stream is; the last transaction boundary.
    pos: StreamPosition,
    /// Read once per batch of events: the safe-mode window since the start is open, and the
    /// checkpoint flush interval has passed.
    in_safe_window: bool,
    flush_due: bool,
    /// The last saved checkpoint.
    flushed: Location,
    /// No checkpoint exists yet (GTID start): save one before the first change.
    needs_initial_save: bool,
    last_flush: Instant,
    pending: Vec<Vec<RowChange>>,
    pending_rows: usize,
    /// Per DML worker, and for the batch of events this syncer is working on: event time of
    /// the oldest change not yet applied (0: idle). A syncer blocked on a DDL, a flush or a
    /// full worker queue thus shows a growing lag.
    in_flight: Vec<Arc<AtomicU64>>,
    busy_ts: Arc<AtomicU64>,
    started: Instant,
    exit_safe: Option<Location>,
    total_events: u64,
    total_rows: u64,
    /// Shard DROP TABLE / TRUNCATE / DROP DATABASE kept from merge targets.
    skipped_shard_ddls: u64,
    last_master_status: Instant,
    /// Sharding groups (`shard-mode: pessimistic`).
    shard: Option<ShardState>,
    /// Optimistic shard mode's state (cluster only).
    opt: Option<OptState>,
    stop: Arc<StopSignal>,
    /// For re-sync streams: the upstream and the main stream's server id.
    up_opts: Opts,
    server_id: u32,
}

impl Drop for Run {
    fn drop(&mut self) {
        // The pipeline lives on this arbiter: stop it with the run (a worker retrying a dead
        // downstream would otherwise keep going).
        for w in &self.workers {
            w.do_send(Halt);
        }
        self.checkpoint.do_send(Halt);
        self.stream.do_send(Halt);
    }
}

fn db_err(what: &str, e: mysql_async::Error) -> DmError {
    db::error(&codes::DB_QUERY_FAILED, what, e)
}

async fn connect(opts: Opts, session: &[String], what: &str) -> Result<Conn, DmError> {
    db::connect(opts, session, what).await
}

/// Checks the upstream logs full row images.
async fn check_upstream(conn: &mut Conn) -> Result<(), DmError> {
    db::upstream::BinlogSettings::read(conn)
        .await
        .map_err(|e| db_err("reading the upstream binlog settings", e))?
        .check()
}

fn decode_err(e: impl std::fmt::Display, at: &Location) -> DmError {
    DmError::new(
        &codes::SYNC_DECODE_FAILED,
        format!("decoding the event ending at {at}: {e}"),
    )
}

impl Run {
    /// Connects, loads the checkpoint, and starts the pipeline and the stream.
    pub async fn start(
        cfg: Arc<SubTaskConfig>,
        key: Option<SecretKey>,
        status: Arc<Mutex<SyncStatus>>,
        me: Addr<SyncerActor>,
        coordinator: Coordinator,
        stop: Arc<StopSignal>,
    ) -> Result<Self, DmError> {
        let from = cfg.from.clone().ok_or_else(|| {
            DmError::new(
                &codes::CONFIG_SOURCE_ID_NOT_FOUND,
                format!("subtask has no upstream for source `{}`", cfg.source_id),
            )
        })?;
        let up_opts = from.to_opts(key.as_ref());
        let to_opts = cfg.to.to_opts(key.as_ref());
        let mut upstream = connect(
            up_opts.clone(),
            &["SET SESSION time_zone = '+00:00'".to_string()],
            "upstream",
        )
        .await?;
        check_upstream(&mut upstream).await?;
        debug!(task = %cfg.name, "upstream checked");
        let flavor = match Flavor::from_config(&cfg.flavor) {
            Some(f) => f,
            None => detect_flavor(&mut upstream).await?,
        };
        let session = db::downstream_session(cfg.to.session_sql());
        let mut downstream = connect(to_opts.clone(), &session, "downstream").await?;
        debug!(task = %cfg.name, "downstream connected");

        let worker_count = cfg.syncer.worker_count.max(1) as usize;
        let tables = Arc::new(CheckpointTables::new(
            &cfg.meta_schema,
            &cfg.name,
            &cfg.source_id,
        ));
        tables.ensure(&mut downstream).await?;
        debug!(task = %cfg.name, "checkpoint tables ready");
        let saved = tables.load(&mut downstream, worker_count).await?;
        debug!(task = %cfg.name, found = saved.is_some(), "checkpoint read");

        let mut tracker = SchemaTracker::new(cfg.case_sensitive);
        if let Some(cp) = &saved {
            for (_, _, info) in &cp.tables {
                let t: TableSchema = serde_json::from_str(info).map_err(|e| {
                    DmError::new(
                        &codes::DB_UNEXPECTED,
                        "checkpoint table_info is not a tracked schema",
                    )
                    .with_cause(e)
                })?;
                tracker.insert(t);
            }
        }
        let router = Router::for_subtask(&cfg)?;
        let ba = BaFilter::new(cfg.block_allow_list.as_ref(), cfg.case_sensitive)?;
        let coordinator_for_opt = coordinator.clone();
        let shard = match cfg.shard_mode {
            Some(ShardMode::Pessimistic) => Some(
                ShardState::init(
                    &cfg,
                    coordinator,
                    &router,
                    &ba,
                    &mut upstream,
                    &mut downstream,
                    saved.is_some(),
                )
                .await?,
            ),
            _ => None,
        };
        let opt = match (cfg.shard_mode, &coordinator_for_opt) {
            (Some(ShardMode::Optimistic), Coordinator::Etcd(client)) => Some(
                OptState::init(
                    &cfg,
                    etcd_client::Client::clone(client),
                    &router,
                    &ba,
                    &mut upstream,
                )
                .await?,
            ),
            (Some(ShardMode::Optimistic), Coordinator::Local) => {
                return Err(DmError::new(
                    &codes::CONFIG_SHARD_MODE_NOT_SUPPORT,
                    "shard-mode optimistic needs dm-master to coordinate; run the task in a cluster (dmctl start-task)",
                ));
            }
            _ => None,
        };
        let Resume {
            start,
            location,
            applied,
            exit_safe,
            needs_initial_save,
        } = Resume::resolve(saved.as_ref(), cfg.meta.as_ref(), cfg.enable_gtid)?;
        if applied.is_none() && saved.is_some() {
            warn!(task = %cfg.name, source = %cfg.source_id, "checkpoint has no worker progress for this worker-count (changed since the last run): replay is not exact, safe mode covers safe-mode-duration as in DM");
        }

        // The pipeline (workers, checkpoint) runs on this unit's own arbiter, the
        // SyncerActor's: on a machine shared with the target, one thread without cross-thread
        // wake-ups, hand-offs and frees costs the least CPU per row, and decoding one batch
        // of events takes well under a millisecond, so the workers' I/O is not held up.
        let pipeline = Arbiter::current();
        let settings = Arc::new(WorkerSettings {
            task: cfg.name.clone(),
            source: cfg.source_id.clone(),
            opts: to_opts.clone(),
            session: session.clone(),
            batch: cfg.syncer.batch.max(1) as usize,
            // Rows of one table and kind always share statements (exact forms; DM's
            // `multiple-rows` changes nothing more); with foreign key checks on, only
            // consecutive ones, so that parents and children keep their order.
            keep_order: cfg
                .to
                .session_var("foreign_key_checks")
                .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("on")),
            compact: cfg.syncer.compact,
            checkpoint: (*tables).clone(),
        });
        let bucket_count = worker_count.div_ceil(WORKERS_PER_BUCKET).max(1);
        let queue_limit = (cfg.syncer.queue_size as usize / 2).max(cfg.syncer.batch as usize);
        let mut workers = Vec::with_capacity(worker_count);
        let mut in_flight = Vec::with_capacity(worker_count + 1);
        for index in 0..worker_count {
            let committed = applied.as_ref().map_or(0, |a| a[index]);
            let s = settings.clone();
            let oldest = Arc::new(AtomicU64::new(0));
            in_flight.push(oldest.clone());
            workers.push(DmlWorkerActor::start_in_arbiter(&pipeline, move |_| {
                DmlWorkerActor::new(index, s, queue_limit, committed, oldest)
            }));
        }
        // Worker `i` belongs to bucket `i % buckets`, in index order within it.
        let buckets: Vec<Addr<CausalityActor>> = (0..bucket_count)
            .map(|b| {
                let mine: Vec<Addr<DmlWorkerActor>> = (b..worker_count)
                    .step_by(bucket_count)
                    .map(|w| workers[w].clone())
                    .collect();
                CausalityActor::start_in_arbiter(&pipeline, move |_| CausalityActor::new(mine))
            })
            .collect();
        in_flight.push(Arc::new(AtomicU64::new(0)));
        let (task, cp_tables) = (cfg.name.clone(), tables.clone());
        let checkpoint = CheckpointActor::start_in_arbiter(&pipeline, move |_| {
            CheckpointActor::new(task, to_opts, cp_tables, worker_count)
        });

        let server_id = if cfg.server_id != 0 {
            cfg.server_id
        } else {
            0x4000_0000 | (rand::random::<u32>() & 0x0fff_ffff)
        };
        let stream = StreamControllerActor::new(
            StreamSpec {
                task: cfg.name.clone(),
                opts: up_opts.clone(),
                server_id,
                flavor,
                start: start.clone(),
                // An idle upstream's heartbeats pace the idle checkpoint flush.
                heartbeat: cfg
                    .syncer
                    .flush_interval()
                    .clamp(Duration::from_secs(1), Duration::from_secs(30)),
            },
            me,
        )
        .start();
        info!(task = %cfg.name, source = %cfg.source_id, start = ?start, workers = worker_count, buckets = bucket_count, "sync unit started");

        let mut run = Self {
            router,
            ba,
            events: EventFilter::new(&cfg.filter_rules, cfg.case_sensitive)?,
            cfg,
            status,
            flavor,
            tracker,
            tables: HashMap::new(),
            upstream,
            downstream,
            to_opts: settings.opts.clone(),
            session: settings.session.clone(),
            buckets,
            workers,
            checkpoint,
            stream,
            pos: StreamPosition::new(&location),
            in_safe_window: true,
            flush_due: false,
            flushed: location,
            needs_initial_save,
            last_flush: Instant::now(),
            pending: vec![Vec::new(); bucket_count],
            pending_rows: 0,
            busy_ts: in_flight
                .last()
                .expect("the syncer's slot is pushed last")
                .clone(),
            in_flight,
            started: Instant::now(),
            exit_safe,
            total_events: 0,
            skipped_shard_ddls: 0,
            total_rows: 0,
            last_master_status: Instant::now() - MASTER_STATUS_EVERY,
            shard,
            opt,
            stop,
            up_opts,
            server_id,
        };
        run.read_clocks();
        if run.needs_initial_save && !run.pos.boundary().position.name.is_empty() {
            run.save_checkpoint().await?;
        }
        run.refresh_status().await;
        Ok(run)
    }

    /// The DML workers' oldest in-flight event times, for the lag metric.
    pub fn in_flight(&self) -> Vec<Arc<AtomicU64>> {
        self.in_flight.clone()
    }

    /// The last saved checkpoint.
    pub fn flushed(&self) -> &Location {
        &self.flushed
    }

    fn safe_mode(&mut self) -> bool {
        if self.cfg.syncer.safe_mode || self.in_safe_window {
            return true;
        }
        if self.exit_safe.is_none() {
            return false;
        }
        let at = &self.pos.boundary().position;
        self.exit_safe.as_ref().is_some_and(|e| *at < e.position)
    }

    /// Reads the clocks the per-event paths need, once per batch of events.
    fn read_clocks(&mut self) {
        self.in_safe_window = self.started.elapsed() < self.cfg.syncer.safe_mode_window();
        self.flush_due = self.last_flush.elapsed() >= self.cfg.syncer.flush_interval();
    }

    /// Handles a batch of events in stream order.
    pub async fn process(&mut self, events: Vec<Event>) -> Result<(), DmError> {
        let oldest = events
            .iter()
            .map(|e| e.header().timestamp())
            .find(|&t| t > 0)
            .unwrap_or(0);
        self.busy_ts.store(u64::from(oldest), Ordering::Relaxed);
        self.read_clocks();
        for ev in events {
            self.total_events += 1;
            let header = ev.header();
            let end = header.log_pos();
            let ts = header.timestamp();
            match BinlogEvent::classify(&ev)? {
                BinlogEvent::Rotate { next, .. } => self.pos.rotate(next),
                BinlogEvent::MariaGtid { gtid, .. } => {
                    let unsaved = self.needs_initial_save;
                    self.pos
                        .note_first_transaction(end, header.event_size(), unsaved);
                    self.pos.gtid(PendingGtid::Maria(gtid));
                }
                BinlogEvent::MysqlGtid { uuid, gno } => {
                    let unsaved = self.needs_initial_save;
                    self.pos
                        .note_first_transaction(end, header.event_size(), unsaved);
                    self.pos.gtid(PendingGtid::Mysql(uuid, gno));
                }
                BinlogEvent::MariaGtidList(list) => self.pos.gtid_list(list, self.flavor),
                BinlogEvent::Query { schema, sql } => match ddl::classify(&sql) {
                    StatementKind::Begin => self.pos.begin(),
                    StatementKind::Commit | StatementKind::Skip => self.end_txn(end).await?,
                    StatementKind::Ddl => {
                        self.handle_ddl(&schema, &sql, end, header.event_size())
                            .await?
                    }
                    StatementKind::Dml => {
                        return Err(DmError::new(
                            &codes::SYNCER_UNIT_DML_STATEMENT_FOUND,
                            format!("statement `{}` at {}", truncate(&sql), self.here(end)),
                        ));
                    }
                },
                BinlogEvent::TableMap => self.table_map(&ev, end).await?,
                BinlogEvent::Rows { event_type } => self.rows(&ev, event_type, ts, end).await?,
                BinlogEvent::Xid { .. } => self.end_txn(end).await?,
                BinlogEvent::Heartbeat => {
                    if !self.pos.in_txn() && self.opt.is_some() {
                        self.redirect_resolved().await?;
                    }
                    if !self.pos.in_txn() && self.flush_due {
                        self.flush().await?;
                    }
                }
                BinlogEvent::FormatDescription | BinlogEvent::Other(_) => {}
            }
        }
        self.dispatch().await?;
        // Everything read is with the workers now (their slots carry the lag from here).
        self.busy_ts.store(0, Ordering::Relaxed);
        self.refresh_status().await;
        Ok(())
    }

    async fn end_txn(&mut self, end: u32) -> Result<(), DmError> {
        self.pos.close_txn(end);
        if self.opt.is_some() {
            self.redirect_resolved().await?;
        }
        if self.flush_due {
            self.flush().await?;
        }
        Ok(())
    }

    /// Where the event ending at `end` is, for error messages.
    fn here(&self, end: u32) -> Location {
        self.pos.here(end)
    }

    async fn table_map(&mut self, ev: &Event, end: u32) -> Result<(), DmError> {
        // A TABLE_MAP body starts with the table id too: known tables skip the full decode
        // (every transaction maps its tables again).
        if let Ok(id) = rows_table_id(ev.data())
            && self.tables.contains_key(&id)
        {
            return Ok(());
        }
        let tme: TableMapEvent = ev
            .read_event()
            .map_err(|e| decode_err(e, &self.here(end)))?;
        let id = tme.table_id();
        if self.tables.contains_key(&id) {
            return Ok(());
        }
        let schema = tme.database_name().to_string();
        let table = tme.table_name().to_string();
        if !self.ba.allows(&schema, Some(&table)) {
            self.tables.insert(id, None);
            return Ok(());
        }
        if self.tracker.get(&schema, &table).is_none() {
            match load_table(&mut self.upstream, &schema, &table).await? {
                Some(t) => self.tracker.insert(t),
                None => {
                    return Err(DmError::new(
                        &codes::SYNC_TABLE_NOT_FOUND,
                        format!(
                            "`{schema}`.`{table}` (binlog at {}) is not in the upstream",
                            self.here(end)
                        ),
                    ));
                }
            }
        }
        let ts = self
            .tracker
            .get(&schema, &table)
            .expect("inserted above")
            .clone();
        let entry = self.entry_for(&tme, &ts, end)?;
        self.tables.insert(id, Some(Arc::new(entry)));
        Ok(())
    }

    /// The decode plan, target and filters of the table `tme` maps, whose schema is `ts`.
    fn entry_for(
        &self,
        tme: &TableMapEvent,
        ts: &TableSchema,
        end: u32,
    ) -> Result<TableEntry, DmError> {
        let schema = tme.database_name().to_string();
        let table = tme.table_name().to_string();
        let columns: Vec<ColumnInfo> = ts
            .columns
            .iter()
            .map(|c| {
                ColumnInfo::from_information_schema(
                    &c.name,
                    &c.data_type,
                    &c.column_type,
                    c.charset.as_deref(),
                )
            })
            .collect();
        let plan = DecodePlan::new(tme, &columns).map_err(|e| {
            DmError::new(
                &codes::SYNCER_UNIT_DML_COLUMN_NOT_MATCH,
                format!("`{schema}`.`{table}` at {}: {e}", self.here(end)),
            )
        })?;
        let same = |a: &str, b: &str| {
            if self.cfg.case_sensitive {
                a == b
            } else {
                a.eq_ignore_ascii_case(b)
            }
        };
        let filters = self
            .cfg
            .expression_filter
            .iter()
            .filter(|f| same(&f.schema, &schema) && same(&f.table, &table))
            .map(|f| ExprFilter::compile(f, &columns))
            .collect::<Result<Vec<_>, _>>()?;
        let handle = ts.handle_key();
        let uniques: Vec<Vec<usize>> = ts
            .unique_keys_all()
            .into_iter()
            .filter(|k| Some(k) != handle.as_ref())
            .collect();
        let routed = self
            .router
            .route(&self.cfg.source_id, &schema, Some(&table))?;
        let target_table = routed.table.clone().unwrap_or_else(|| table.clone());
        let mut target = TargetTable::new(&routed.schema, &target_table, columns, handle, uniques);
        target.extra = routed.extra_columns;
        let mut h = KeyHasher::default();
        h.write(target.quoted.as_bytes());
        let bucket = (h.finish() % self.pending.len() as u64) as usize;
        let withheld = self
            .shard
            .as_ref()
            .is_some_and(|s| s.withholds(&schema, &table))
            || self
                .opt
                .as_ref()
                .is_some_and(|o| o.withholds(&schema, &table));
        Ok(TableEntry {
            plan,
            target: Arc::new(target),
            bucket,
            schema,
            table,
            filters,
            withheld,
        })
    }

    async fn rows(&mut self, ev: &Event, event_type: u8, ts: u32, end: u32) -> Result<(), DmError> {
        let data = ev.data();
        let id = rows_table_id(data).map_err(|e| decode_err(e.to_dm(), &self.here(end)))?;
        let Some(entry) = self.tables.get(&id).cloned().flatten() else {
            return Ok(());
        };
        if entry.withheld {
            return Ok(());
        }
        self.rows_of(&entry, ev, event_type, ts, end).await
    }

    /// Decodes, filters and buffers the rows of `ev` (a rows event of `entry`'s table).
    async fn rows_of(
        &mut self,
        entry: &TableEntry,
        ev: &Event,
        event_type: u8,
        ts: u32,
        end: u32,
    ) -> Result<(), DmError> {
        let data = ev.data();
        let batch = decode_rows(&entry.plan, event_type, data).map_err(|e| {
            let mut err = e.to_dm();
            err.message = format!(
                "`{}`.`{}` at {}: {}",
                entry.schema,
                entry.table,
                self.here(end),
                err.message
            );
            err
        })?;
        let (kind, ek) = match batch.kind {
            RowKind::Insert => (DmlKind::Insert, EventKind::Insert),
            RowKind::Update => (DmlKind::Update, EventKind::Update),
            RowKind::Delete => (DmlKind::Delete, EventKind::Delete),
        };
        if !self.events.is_empty() {
            match self
                .events
                .action(&entry.schema, Some(&entry.table), ek, "")
            {
                FilterAction::Do => {}
                FilterAction::Ignore => return Ok(()),
                FilterAction::Error => {
                    return Err(DmError::new(
                        &codes::CONFIG_BINLOG_EVENT_FILTER,
                        format!(
                            "a filter rule with action Error matched {ek:?} on `{}`.`{}` at {}",
                            entry.schema,
                            entry.table,
                            self.here(end)
                        ),
                    ));
                }
            }
        }
        if self.needs_initial_save {
            self.save_checkpoint().await?;
        }
        let safe = self.safe_mode();
        let n = batch.rows.len();
        let out = &mut self.pending[entry.bucket];
        let cols = &entry.target.columns;
        for row in batch.rows {
            if entry
                .filters
                .iter()
                .any(|f| f.drops(kind, row.before.as_deref(), row.after.as_deref(), cols))
            {
                continue;
            }
            out.push(RowChange {
                table: entry.target.clone(),
                kind,
                before: row.before,
                after: row.after,
                safe_mode: safe,
                ts,
                keys: ChangeKeys::default(),
            });
        }
        self.total_rows += n as u64;
        self.pending_rows += n;
        if self.pending_rows >= DISPATCH_ROWS {
            self.dispatch().await?;
        }
        Ok(())
    }

    /// Hands buffered changes to their buckets' CausalityActors (returns once every change is
    /// queued at its worker).
    async fn dispatch(&mut self) -> Result<(), DmError> {
        if self.pending_rows == 0 {
            return Ok(());
        }
        self.pending_rows = 0;
        let routes = self
            .pending
            .iter_mut()
            .zip(&self.buckets)
            .filter(|(changes, _)| !changes.is_empty())
            .map(|(changes, bucket)| {
                bucket.send(RouteRows {
                    changes: std::mem::take(changes),
                })
            });
        let replies = try_join_all(routes)
            .await
            .map_err(|_| DmError::bare(&codes::ACTOR_MAILBOX_CLOSED))?;
        replies.into_iter().collect()
    }

    /// Waits until every dispatched change is committed; the conflict maps start over.
    async fn barrier(&mut self) -> Result<(), DmError> {
        self.dispatch().await?;
        let replies = try_join_all(self.buckets.iter().map(|b| b.send(DrainBucket)))
            .await
            .map_err(|_| DmError::bare(&codes::ACTOR_MAILBOX_CLOSED))?;
        replies.into_iter().collect()
    }

    /// No checkpoint may be saved: a sharding group waits, or a table skips its rows until
    /// its optimistic conflict is resolved; the last checkpoint and the workers' progress
    /// since it stay exact, and a resume replays from there.
    fn checkpoint_held(&self) -> bool {
        self.shard.as_ref().is_some_and(|s| !s.can_save())
            || self.opt.as_ref().is_some_and(|o| !o.can_save())
    }

    async fn save_checkpoint(&mut self) -> Result<(), DmError> {
        if self.checkpoint_held() {
            // A sharding group has pending DDLs: the last checkpoint (before the first of them)
            // and the workers' progress since it stay exact; a resume replays the group.
            self.last_flush = Instant::now();
            self.flush_due = false;
            return Ok(());
        }
        let sharding = self.shard.as_mut().and_then(|s| s.checkpoint_rows());
        let tables = self
            .tracker
            .tables()
            .map(|t| {
                (
                    t.schema.clone(),
                    t.name.clone(),
                    serde_json::to_string(t).expect("schemas serialize"),
                )
            })
            .collect();
        let location = self.pos.boundary().clone();
        let saved = self
            .checkpoint
            .send(SaveCheckpoint {
                location,
                tables,
                exit_safe: self.exit_safe.clone(),
                sharding,
            })
            .await
            .map_err(|_| DmError::bare(&codes::ACTOR_MAILBOX_CLOSED))
            .and_then(|r| r);
        if let Err(e) = saved {
            if let Some(s) = self.shard.as_mut() {
                s.checkpoint_failed();
            }
            return Err(e);
        }
        self.flushed = self.pos.boundary().clone();
        self.needs_initial_save = false;
        self.last_flush = Instant::now();
        self.flush_due = false;
        if self
            .exit_safe
            .as_ref()
            .is_some_and(|e| self.flushed.position >= e.position)
        {
            self.exit_safe = None;
        }
        debug!(task = %self.cfg.name, location = %self.flushed, "flushed");
        Ok(())
    }

    /// Drains every worker and saves the checkpoint at the last transaction boundary. Only
    /// valid when no change after the boundary was read (outside a transaction); inside one
    /// it only drains, and the previous checkpoint with the workers' progress stays exact.
    pub async fn flush(&mut self) -> Result<(), DmError> {
        if self.checkpoint_held() {
            // Nothing can be saved while a sharding group waits (see save_checkpoint).
            self.last_flush = Instant::now();
            self.flush_due = false;
            self.refresh_status().await;
            return Ok(());
        }
        self.barrier().await?;
        if !self.pos.in_txn() {
            self.save_checkpoint().await?;
        }
        self.refresh_status().await;
        Ok(())
    }

    async fn handle_ddl(
        &mut self,
        schema: &str,
        sql: &str,
        end: u32,
        size: u32,
    ) -> Result<(), DmError> {
        let pieces = ddl::split(sql, schema)?;
        self.barrier().await?;
        if self.shard.is_some() {
            let at = self.here(end).position;
            let start = Position::new(at.name.clone(), end.saturating_sub(size));
            self.shard_ddl(&pieces, start, at).await?;
        } else if self.opt.is_some() {
            let at = self.here(end).position;
            let start = Position::new(at.name.clone(), end.saturating_sub(size));
            self.opt_ddl(&pieces, start, at).await?;
        } else {
            for piece in &pieces {
                self.apply_ddl(piece).await?;
            }
        }
        self.tables.clear();
        self.pos.close_txn(end);
        self.save_checkpoint().await
    }

    /// Whether the block-allow list and the binlog event filter let `piece` through: `None`
    /// when not allowed at all, `Some(false)` when the filter ignores it (the tracker still
    /// follows it), `Some(true)` to apply it.
    fn ddl_action(&self, piece: &DdlPiece) -> Result<Option<bool>, DmError> {
        let table = piece.table.as_deref();
        let allowed = self.ba.allows(&piece.schema, table)
            || piece
                .new_table
                .as_ref()
                .is_some_and(|(s, t)| self.ba.allows(s, Some(t)));
        if !allowed {
            return Ok(None);
        }
        let action = if self.events.is_empty() {
            FilterAction::Do
        } else {
            self.events.action(
                &piece.schema,
                table,
                EventKind::Ddl(piece.kind.filter_name()),
                &piece.sql,
            )
        };
        match action {
            FilterAction::Ignore => Ok(Some(false)),
            FilterAction::Error => Err(DmError::new(
                &codes::CONFIG_BINLOG_EVENT_FILTER,
                format!(
                    "a filter rule with action Error matched DDL `{}`",
                    truncate(&piece.sql)
                ),
            )),
            FilterAction::Do => Ok(Some(true)),
        }
    }

    /// `piece` with every table routed to its target.
    fn route_piece(&self, piece: &DdlPiece) -> Result<DdlPiece, DmError> {
        let router = &self.router;
        let source = self.cfg.source_id.clone();
        let mut route_err = None;
        let routed = ddl::rename_tables(piece, |s, t| {
            match router.route(&source, s, if t.is_empty() { None } else { Some(t) }) {
                Ok(r) => (r.schema, r.table.unwrap_or_else(|| t.to_string())),
                Err(e) => {
                    route_err = Some(e);
                    (s.to_string(), t.to_string())
                }
            }
        })?;
        match route_err {
            Some(e) => Err(e),
            None => Ok(routed),
        }
    }

    /// The tracker follows `piece`; when it cannot, the table is dropped from it and loaded
    /// from the upstream on its next row event.
    fn track(&mut self, piece: &DdlPiece) {
        if let Err(e) = self.tracker.apply(piece) {
            warn!(task = %self.cfg.name, error = %e.chain(), "schema tracker could not follow the DDL; the table is reloaded on its next row event");
            if let Some(t) = piece.table.as_deref() {
                self.tracker.remove(&piece.schema, t);
            }
        }
    }

    async fn apply_ddl(&mut self, piece: &DdlPiece) -> Result<(), DmError> {
        let Some(apply) = self.ddl_action(piece)? else {
            return Ok(());
        };
        // The tracker follows every allowed DDL, even those the event filter skips.
        self.track(piece);
        if !apply {
            return Ok(());
        }
        // A shard must not drop or empty the table (or database) every shard merges into:
        // such statements stop here; the tracker has followed the shard, the merge target
        // keeps the other shards' rows.
        let table = piece.table.as_deref();
        if matches!(
            piece.kind,
            DdlKind::DropTable | DdlKind::TruncateTable | DdlKind::DropDatabase
        ) && self.router.merges(&piece.schema, table)?
        {
            self.skipped_shard_ddls += 1;
            let shard = match table {
                Some(t) => format!("`{}`.`{t}`", piece.schema),
                None => format!("`{}`", piece.schema),
            };
            warn!(task = %self.cfg.name, source = %self.cfg.source_id, shard = %shard, ddl = %truncate(&piece.sql), skipped = self.skipped_shard_ddls, "shard DDL not applied to its merge target");
            return Ok(());
        }
        let routed = self.route_piece(piece)?;
        let use_schema = routed.table.is_some().then_some(routed.schema.as_str());
        self.exec_ddl(use_schema, &routed.sql, piece.kind.drops_or_moves())
            .await
    }

    /// Executes a (routed) DDL downstream; `use_schema` first (unqualified names inside the
    /// statement, FOREIGN KEY targets, resolve in the target schema as they did upstream).
    /// Errors saying it is already done (an existing column, a missing table it drops) are
    /// success: a replay may run it again.
    async fn exec_ddl(
        &mut self,
        use_schema: Option<&str>,
        sql: &str,
        drops_or_moves: bool,
    ) -> Result<(), DmError> {
        if let Some(schema) = use_schema {
            let use_db = format!("USE {}", crate::sql::quote_ident(schema));
            if let Err(e) = self.exec_downstream(&use_db).await {
                debug!(task = %self.cfg.name, error = %e, "target schema not selectable before DDL");
            }
        }
        match self.exec_downstream(sql).await {
            Ok(()) => {
                info!(task = %self.cfg.name, source = %self.cfg.source_id, ddl = %truncate(sql), "DDL applied");
                Ok(())
            }
            Err(mysql_async::Error::Server(s))
                if errno::IDEMPOTENT_DDL.contains(&s.code)
                    || (s.code == errno::ER_NO_SUCH_TABLE && drops_or_moves) =>
            {
                info!(task = %self.cfg.name, ddl = %truncate(sql), code = s.code, "DDL already applied downstream");
                Ok(())
            }
            Err(e) => Err(db::error(
                &codes::SYNCER_UNIT_HANDLE_DDL_FAILED,
                format!("executing `{}` downstream", truncate(sql)),
                e,
            )),
        }
    }

    /// Runs `sql` on the DDL connection, reconnecting through a downstream outage for up to
    /// [`RETRY_WINDOW`].
    async fn exec_downstream(&mut self, sql: &str) -> Result<(), mysql_async::Error> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(200);
        loop {
            match self.downstream.query_drop(sql).await {
                Err(e) if is_connection_error(&e) && started.elapsed() < RETRY_WINDOW => {
                    warn!(task = %self.cfg.name, error = %e, "downstream connection lost; reconnecting");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                    match connect(self.to_opts.clone(), &self.session, "downstream").await {
                        Ok(c) => self.downstream = c,
                        Err(err) => {
                            warn!(task = %self.cfg.name, error = %err.chain(), "downstream still unreachable")
                        }
                    }
                }
                other => return other,
            }
        }
    }

    async fn refresh_status(&mut self) {
        let mut master = None;
        if self.last_master_status.elapsed() >= MASTER_STATUS_EVERY {
            self.last_master_status = Instant::now();
            match master_status(&mut self.upstream, self.flavor).await {
                Ok(m) => master = Some(m),
                Err(e) => {
                    debug!(task = %self.cfg.name, error = %e.chain(), "master status unavailable")
                }
            }
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let safe_mode = self.safe_mode();
        let boundary = self.pos.boundary().clone();
        let status = self.status.clone();
        let mut s = status.lock().expect("status lock");
        s.total_events = self.total_events;
        s.skipped_shard_ddls = self.skipped_shard_ddls;
        s.total_rows = self.total_rows;
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        s.total_tps = self.total_rows as f64 / secs;
        s.syncer_binlog = self.flushed.position.to_string();
        s.syncer_binlog_gtid = self
            .flushed
            .gtid
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        s.current_binlog = boundary.position.to_string();
        if let Some(o) = &self.opt {
            s.blocking_ddls = o.blocking.clone();
        }
        if let Some(sh) = &self.shard {
            s.blocking_ddls = sh.blocking.clone();
            s.unresolved_ddl_lock_id = sh.lock_id.clone();
            s.unresolved_groups = sh.unresolved();
        }
        s.safe_mode = safe_mode;
        s.seconds_behind_master = lag_seconds(&self.in_flight, now);
        if s.lag_sources.is_empty() {
            s.lag_sources = self.in_flight.clone();
        }
        if let Some((pos, gtid)) = master {
            s.master_binlog = pos.as_ref().map(ToString::to_string).unwrap_or_default();
            s.master_binlog_gtid = gtid.as_ref().map(ToString::to_string).unwrap_or_default();
            s.synced = match (&gtid, &boundary.gtid) {
                (Some(GtidSet::MariaDb(m)), Some(GtidSet::MariaDb(b))) => b.contains(m),
                (Some(GtidSet::MySql(m)), Some(GtidSet::MySql(b))) => b.contains(m),
                _ => pos.as_ref() == Some(&boundary.position),
            };
        }
    }
}

fn truncate(sql: &str) -> String {
    const MAX: usize = 256;
    if sql.len() <= MAX {
        sql.to_string()
    } else {
        let mut end = MAX;
        while !sql.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &sql[..end])
    }
}
