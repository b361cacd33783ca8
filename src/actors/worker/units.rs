//! UnitsActor: one incarnation of a subtask's units, run once in DM's order by task-mode
//! (`all` = dump → load → sync, `full` = dump → load, `dump`, `load`, `load&sync`,
//! `incremental` = sync). It ends at the first error or when the units are done; re-running
//! is its parent's decision (the [`super::subtask::SubtaskActor`] re-creates it for DM's
//! auto-resume; `dm-migrate` runs it once).
//!
//! Resume: every start decides from persisted state where to continue, so a killed process
//! picks up where it was: a syncer checkpoint means the sync unit already took over; a
//! finished dump is not dumped again when it belongs to this run (its owner file names this
//! task, source and upstream server, and the downstream records its dump-id: see
//! [`crate::units::dump::owner`]; after `--remove-meta` or an upstream change it is dumped
//! again); the loader skips files its checkpoint lists as loaded. The handover writes the syncer's first checkpoint from the
//! dump's `metadata` (position, and for consistency `none` the safe-mode exit point) with the
//! dump's table schemas for the schema tracker, before the dump files are removed.
//!
//! Children: the SyncerActor (on an arbiter of its own), whose only strong address this actor
//! holds. When this actor stops, the sync arbiter is stopped and handed to the `reaper` (if
//! any) so that the parent can wait for the thread to end. Messages in: [`StopSubtask`],
//! [`QuerySubtaskStatus`], and the sync unit's [`SyncerExited`]. The outcome goes to the
//! parent as [`UnitsExited`]; the live status is in [`UnitsShared`] (shared memory rather than
//! a message: the parent reads it after this actor ended, e.g. the sync position of a paused
//! subtask, and the sync unit updates it per batch of events).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use actix::prelude::*;
use tracing::{info, warn};

use crate::actors::syncer::{Coordinator, StopSignal, SyncerActor};
use crate::config::{SecretKey, SubTaskConfig};
use crate::error::{DmError, codes};
use crate::messages::syncer::{StopSyncer, SyncStatus, SyncerExited};
use crate::messages::worker::{QuerySubtaskStatus, StopSubtask, SubtaskStatus, Unit, UnitsExited};
use crate::sql::checkpoint::CheckpointTables;
use crate::sql::filter::BaFilter;
use crate::sql::schema_tracker::TableSchema;
use crate::store::etcd::ha::Stage;
use crate::units::dump::owner::{self, DumpOwner, DumpRecord, Verdict};
use crate::units::dump::{self, DumpStatus};
use crate::units::load::files::DumpDir;
use crate::units::load::{self, LoadStatus};

/// The live status of one units incarnation, shared with the parent (which keeps reading it
/// after the incarnation ended, e.g. the sync position of a paused subtask).
#[derive(Debug, Default)]
pub struct UnitsShared {
    unit: Mutex<Option<Unit>>,
    dump: Arc<Mutex<DumpStatus>>,
    load: Arc<Mutex<LoadStatus>>,
    sync: Mutex<Option<Arc<Mutex<SyncStatus>>>>,
}

impl UnitsShared {
    /// The unit running (or last run).
    pub fn unit(&self) -> Option<Unit> {
        *self.unit.lock().expect("status lock")
    }

    /// Fills the unit and per-unit views of `st` (dump/load only for modes that have them).
    pub fn fill(&self, cfg: &SubTaskConfig, st: &mut SubtaskStatus) {
        st.unit = self.unit();
        st.dump_status = cfg
            .task_mode
            .dumps()
            .then(|| self.dump.lock().expect("status lock").clone());
        st.load_status = cfg
            .task_mode
            .loads()
            .then(|| self.load.lock().expect("status lock").clone());
        st.sync_status = self
            .sync
            .lock()
            .expect("status lock")
            .as_ref()
            .map(|s| s.lock().expect("status lock").snapshot());
    }

    fn set_unit(&self, unit: Unit) {
        *self.unit.lock().expect("status lock") = Some(unit);
    }
}

/// Arbiters of stopped children, handed to the parent so that it can wait for their threads.
pub type Reaper = Arc<Mutex<Vec<Arbiter>>>;

/// The actor.
pub struct UnitsActor {
    cfg: Arc<SubTaskConfig>,
    key: Option<SecretKey>,
    parent: &'static str,
    status: Arc<UnitsShared>,
    stage: Stage,
    error: Option<DmError>,
    syncer: Option<Addr<SyncerActor>>,
    sync_stop: Option<Arc<StopSignal>>,
    coordinator: Coordinator,
    sync_arbiter: Option<Arbiter>,
    reaper: Option<Reaper>,
    /// The parent, told once how the units ended ([`UnitsExited`] with `epoch`).
    exit: Option<Recipient<UnitsExited>>,
    epoch: u64,
}

impl UnitsActor {
    /// Units for `cfg` (with its source applied); `parent` learns how incarnation `epoch`
    /// ended ([`UnitsExited`]).
    pub fn new(
        cfg: SubTaskConfig,
        key: Option<SecretKey>,
        parent: Recipient<UnitsExited>,
        epoch: u64,
    ) -> Self {
        Self {
            cfg: Arc::new(cfg),
            key,
            parent: "dm-migrate",
            status: Arc::default(),
            stage: Stage::Running,
            error: None,
            syncer: None,
            sync_stop: None,
            coordinator: Coordinator::Local,
            sync_arbiter: None,
            reaper: None,
            exit: Some(parent),
            epoch,
        }
    }

    /// Names the parent in supervisor logs, and gives it the arbiters of stopped children.
    pub fn supervised_by(mut self, parent: &'static str, reaper: Reaper) -> Self {
        self.parent = parent;
        self.reaper = Some(reaper);
        self
    }

    /// Shard DDL locks are decided by `coordinator` (default: [`Coordinator::Local`]).
    pub fn with_coordinator(mut self, coordinator: Coordinator) -> Self {
        self.coordinator = coordinator;
        self
    }

    /// A handle on the live status.
    pub fn status_handle(&self) -> Arc<UnitsShared> {
        self.status.clone()
    }

    fn finish(&mut self, result: Result<(), DmError>, ctx: &mut Context<Self>) {
        match &result {
            Ok(()) => {
                if self.stage != Stage::Stopped {
                    self.stage = Stage::Finished;
                }
            }
            Err(e) => {
                self.stage = Stage::Paused;
                self.error = Some(e.clone());
                warn!(task = %self.cfg.name, source = %self.cfg.source_id, unit = ?self.status.unit(), code = e.code, error = %e.chain(), "subtask unit failed");
            }
        }
        if let Some(parent) = self.exit.take() {
            parent.do_send(UnitsExited {
                epoch: self.epoch,
                result,
            });
        }
        ctx.stop();
    }

    fn start_sync(&mut self, ctx: &mut Context<Self>) {
        self.status.set_unit(Unit::Sync);
        let actor = SyncerActor::new(
            (*self.cfg).clone(),
            self.key.clone(),
            ctx.address().recipient(),
        )
        .with_coordinator(self.coordinator.clone());
        self.sync_stop = Some(actor.stop_handle());
        *self.status.sync.lock().expect("status lock") = Some(actor.status_handle());
        let arbiter = Arbiter::new();
        self.syncer = Some(SyncerActor::start_in_arbiter(
            &arbiter.handle(),
            move |_| actor,
        ));
        self.sync_arbiter = Some(arbiter);
    }
}

/// Where this subtask's dump lives: `<loader dir>/<source-id>` when the subtask dumps, the
/// configured directory itself for `load` and `load&sync` (an existing dump).
pub fn dump_dir(cfg: &SubTaskConfig) -> PathBuf {
    let base = PathBuf::from(&cfg.loader.dir);
    if cfg.task_mode.dumps() {
        base.join(&cfg.source_id)
    } else {
        base
    }
}

/// What a (re)started subtask does first.
enum Step {
    Dump,
    Load,
    Sync,
}

async fn connect_downstream(
    cfg: &SubTaskConfig,
    key: Option<&SecretKey>,
) -> Result<mysql_async::Conn, DmError> {
    mysql_async::Conn::new(cfg.to.to_opts(key))
        .await
        .map_err(|e| {
            DmError::new(&codes::DB_BAD_CONN, "cannot connect to the downstream").with_cause(e)
        })
}

async fn first_step(
    cfg: &SubTaskConfig,
    key: Option<&SecretKey>,
    dir: &Path,
) -> Result<Step, DmError> {
    let mode = cfg.task_mode;
    let mut down = if mode.syncs() || (mode.dumps() && mode.loads()) {
        Some(connect_downstream(cfg, key).await?)
    } else {
        None
    };
    if mode.syncs() {
        let conn = down.as_mut().expect("connected for sync");
        let tables = CheckpointTables::new(&cfg.meta_schema, &cfg.name, &cfg.source_id);
        tables.ensure(conn).await?;
        if tables
            .load(conn, cfg.syncer.worker_count.max(1) as usize)
            .await?
            .is_some()
        {
            return Ok(Step::Sync);
        }
        if !mode.loads() {
            return Ok(Step::Sync);
        }
    }
    if mode.dumps() {
        let record = if mode.loads() { down.as_mut() } else { None };
        match owner::check(cfg, key, dir, record).await? {
            Verdict::Reuse => {
                info!(task = %cfg.name, source = %cfg.source_id, dir = %dir.display(), "finished dump of this run found; not dumping again");
            }
            Verdict::Redo(reason) => {
                if let Some(reason) = reason {
                    warn!(task = %cfg.name, source = %cfg.source_id, dir = %dir.display(), reason = %reason, "finished dump not reused; dumping again");
                }
                return Ok(Step::Dump);
            }
        }
    }
    Ok(if mode.loads() { Step::Load } else { Step::Sync })
}

/// Starts a new dump's ownership: a fresh dump-id for the upstream as it answers now, recorded
/// downstream (clearing the source's loader checkpoint) when the task loads.
async fn own_new_dump(cfg: &SubTaskConfig, key: Option<&SecretKey>) -> Result<DumpOwner, DmError> {
    let upstream = owner::upstream_identity_of(cfg, key).await?;
    let owner = DumpOwner::fresh(&cfg.name, &cfg.source_id, upstream);
    if cfg.task_mode.loads() {
        let mut conn = connect_downstream(cfg, key).await?;
        DumpRecord::of(cfg)
            .record(&mut conn, &owner, &load::checkpoint_of(cfg))
            .await?;
    }
    info!(task = %cfg.name, source = %cfg.source_id, dump_id = %owner.dump_id, upstream = %owner.upstream, "new dump");
    Ok(owner)
}

/// Writes the syncer's first checkpoint from the dump: the snapshot's position, the exit point
/// of safe mode (consistency `none`), and the dumped tables' schemas for the tracker.
async fn handover(cfg: &SubTaskConfig, key: Option<&SecretKey>, dir: &Path) -> Result<(), DmError> {
    let dump = DumpDir::scan(dir)?;
    let ba = BaFilter::new(cfg.block_allow_list.as_ref(), cfg.case_sensitive)?;
    let mut tables = Vec::new();
    for t in dump
        .tables
        .iter()
        .filter(|t| ba.allows(&t.schema, Some(&t.table)))
    {
        let Some(file) = &t.schema_file else { continue };
        let parsed =
            load::files::main_statement(file).and_then(|sql| TableSchema::from_create_table(&sql));
        match parsed {
            Ok(mut schema) => {
                schema.schema = t.schema.clone();
                schema.name = t.table.clone();
                tables.push((
                    t.schema.clone(),
                    t.table.clone(),
                    serde_json::to_string(&schema).expect("schemas serialize"),
                ));
            }
            // The tracker loads such a table from the upstream on first use instead.
            Err(e) => {
                warn!(task = %cfg.name, table = %format!("{}.{}", t.schema, t.table), error = %e.chain(), "dumped schema not tracked")
            }
        }
    }
    let mut conn = connect_downstream(cfg, key).await?;
    let cp = CheckpointTables::new(&cfg.meta_schema, &cfg.name, &cfg.source_id);
    cp.ensure(&mut conn).await?;
    let location = &dump.metadata.location;
    cp.save(
        &mut conn,
        location,
        &tables,
        cfg.syncer.worker_count.max(1) as usize,
        dump.metadata.after.as_ref(),
        None,
    )
    .await?;
    load::clear_checkpoint(&mut conn, cfg).await?;
    DumpRecord::of(cfg).delete(&mut conn).await?;
    info!(task = %cfg.name, source = %cfg.source_id, location = %location, tables = tables.len(), "load handed over to sync");
    Ok(())
}

/// Removes the dump directory after the handover (`clean-dump-file`).
fn clean(cfg: &SubTaskConfig, dir: &Path) {
    if cfg.clean_dump_file && cfg.task_mode.dumps() && dir.exists() {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => info!(task = %cfg.name, dir = %dir.display(), "dump files removed"),
            Err(e) => {
                warn!(task = %cfg.name, dir = %dir.display(), error = %e, "removing dump files failed")
            }
        }
    }
}

impl Actor for UnitsActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        info!(actor = "Units", parent = self.parent, task = %self.cfg.name, source = %self.cfg.source_id, mode = self.cfg.task_mode.as_str(), reason = "start units", "actor started");
        let (cfg, key) = (self.cfg.clone(), self.key.clone());
        let (dump_status, load_status) = (self.status.dump.clone(), self.status.load.clone());
        let addr = ctx.address();
        async move {
            let dir = dump_dir(&cfg);
            let mut step = first_step(&cfg, key.as_ref(), &dir).await?;
            if let Step::Dump = step {
                addr.do_send(UnitChanged(Unit::Dump));
                std::fs::create_dir_all(&dir).map_err(|e| {
                    DmError::new(
                        &codes::DUMP_WRITE_FILE,
                        format!("cannot create `{}`", dir.display()),
                    )
                    .with_cause(e)
                })?;
                let owner = own_new_dump(&cfg, key.as_ref()).await?;
                dump::run_dump(&cfg, key.as_ref(), &dir, &owner, dump_status).await?;
                step = if cfg.task_mode.loads() {
                    Step::Load
                } else {
                    return Ok(false);
                };
            }
            if let Step::Load = step {
                addr.do_send(UnitChanged(Unit::Load));
                load::run_load(&cfg, key.as_ref(), &dir, load_status).await?;
                if !cfg.task_mode.syncs() {
                    return Ok(false);
                }
                handover(&cfg, key.as_ref(), &dir).await?;
            }
            clean(&cfg, &dir);
            Ok(cfg.task_mode.syncs())
        }
        .into_actor(self)
        .map(|res: Result<bool, DmError>, act, ctx| match res {
            Ok(true) => act.start_sync(ctx),
            Ok(false) => act.finish(Ok(()), ctx),
            Err(e) => act.finish(Err(e), ctx),
        })
        .spawn(ctx);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.release_sync_arbiter();
        let code = self.error.as_ref().map(|e| e.code);
        info!(actor = "Units", parent = self.parent, task = %self.cfg.name, source = %self.cfg.source_id, reason = self.stage.as_str(), code, "actor stopped");
    }
}

impl UnitsActor {
    /// Stops the sync unit's arbiter and hands it to the reaper (idempotent).
    fn release_sync_arbiter(&mut self) {
        if let Some(a) = self.sync_arbiter.take() {
            a.stop();
            if let Some(r) = &self.reaper {
                r.lock().expect("reaper lock").push(a);
            }
        }
    }
}

// NOTE: an actor dropped with its arbiter may skip `stopped()`; an arbiter that is dropped
// without `stop()` keeps its thread, so the drop releases it too.
impl Drop for UnitsActor {
    fn drop(&mut self) {
        self.release_sync_arbiter();
    }
}

/// Internal: the running unit changed.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct UnitChanged(Unit);

impl Handler<UnitChanged> for UnitsActor {
    type Result = ();

    fn handle(&mut self, msg: UnitChanged, _: &mut Context<Self>) {
        info!(task = %self.cfg.name, source = %self.cfg.source_id, unit = ?msg.0, "unit started");
        self.status.set_unit(msg.0);
    }
}

impl Handler<SyncerExited> for UnitsActor {
    type Result = ();

    fn handle(&mut self, msg: SyncerExited, ctx: &mut Context<Self>) {
        // During a stop the StopSubtask handler finishes, once the syncer answered.
        if self.stage != Stage::Stopped {
            self.finish(msg.result, ctx);
        }
    }
}

impl Handler<StopSubtask> for UnitsActor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: StopSubtask, _: &mut Context<Self>) -> Self::Result {
        self.stage = Stage::Stopped;
        if let Some(stop) = &self.sync_stop {
            stop.stop();
        }
        let syncer = self.syncer.clone();
        Box::pin(
            async move {
                match syncer {
                    Some(s) => match s.send(StopSyncer).await {
                        Ok(Ok(at)) => Ok(Some(at)),
                        Ok(Err(e)) => Err(e),
                        Err(_) => Ok(None),
                    },
                    None => Ok(None),
                }
            }
            .into_actor(self)
            .map(|res, act, ctx| {
                if let Ok(Some(at)) = &res {
                    info!(task = %act.cfg.name, location = %at, "sync stopped at a flushed checkpoint");
                }
                act.finish(res.map(|_| ()), ctx);
            }),
        )
    }
}

impl Handler<QuerySubtaskStatus> for UnitsActor {
    type Result = MessageResult<QuerySubtaskStatus>;

    fn handle(&mut self, _: QuerySubtaskStatus, _: &mut Context<Self>) -> Self::Result {
        let mut st = SubtaskStatus {
            name: self.cfg.name.clone(),
            source: self.cfg.source_id.clone(),
            stage: self.stage.as_str().to_string(),
            error: self.error.clone(),
            ..Default::default()
        };
        self.status.fill(&self.cfg, &mut st);
        MessageResult(st)
    }
}
