//! The Optimist (leader only): DM's optimistic shard DDL coordinator. A thin actor over
//! [`OptLock`] (plain logic) and the etcd state of `/dm-master/shardddl-optimism/`.
//!
//! - **Start:** reads source tables, Infos (in revision order) and Operations at one
//!   revision and replays the Infos into fresh locks (no writes: the Operations in etcd are
//!   what the workers were told), then watches from the next revision.
//! - **Source tables put:** a worker's list of upstream tables by target; a lock created later
//!   covers every table of every source of the task routed into its target.
//! - **Info put:** the lock of the Info's target answers (`try_sync`): an Operation for the
//!   table (the DDLs that change the join, maybe none; or a conflict stage), plus `resolved`
//!   Operations for tables whose conflict the Info ended, in one fenced transaction.
//! - **Operation put with done:** once no Operation of a lock is pending and every table
//!   agrees with the join, the lock's Infos and Operations are deleted and the lock is gone.
//!   A table dropped upstream (its source's tables put without it) leaves its locks.
//!
//! The workers' side: [`crate::actors::syncer::opt_shard`]. Started and stopped by the
//! Election together with the Scheduler.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

use actix::prelude::*;
use etcd_client::Client;
use tokio::sync::Mutex;
use tracing::info;

use super::watch::{LeaderTerm, Watched};
use crate::error::{DmError, codes};
use crate::messages::master::{SchedulerStopped, StopScheduler};
use crate::messages::shardddl::{
    ForgetTask, ShowLocks, UnlockAction, UnlockLock, UnlockOptimistic,
};
use crate::shardddl::optimism::{Answer, ConflictStage, OptLock, UpTable};
use crate::shardddl::pessimism::{LockView, Waiting};
use crate::store::etcd::ha::Fence;
use crate::store::etcd::optimism::{
    self as store, OptimisticEvent, OptimisticInfo, OptimisticOp, SourceTables,
};
use crate::store::etcd::shardddl::Written;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The Optimist's state; one handler at a time (FIFO lock).
pub struct Optimist {
    client: Client,
    fence: Option<Fence>,
    deposed: Rc<Cell<bool>>,
    locks: BTreeMap<String, OptLock>,
    /// Unix seconds each lock was created.
    since: BTreeMap<String, u64>,
    /// (task, source) → its upstream tables by target.
    source_tables: BTreeMap<(String, String), SourceTables>,
    /// Lock → tables whose last Operation is not done.
    pending: BTreeMap<String, BTreeSet<UpTable>>,
    /// `resolved` Operations held until the table whose DDL settled the conflict reports
    /// done: a table must not replay its rows before the DDL ran downstream.
    deferred: BTreeMap<(String, UpTable), Vec<OptimisticOp>>,
}

fn up_of(op: &OptimisticOp) -> UpTable {
    UpTable {
        source: op.source.clone(),
        schema: op.up_schema.clone(),
        table: op.up_table.clone(),
    }
}

impl Optimist {
    fn check(&self, w: Written) -> Result<(), DmError> {
        if w == Written::FenceLost {
            self.deposed.set(true);
            return Err(DmError::new(
                &codes::HA_FAIL_LEASE_OPERATION,
                "the election key is gone: this master no longer leads",
            ));
        }
        Ok(())
    }

    /// Every upstream table of `task` routed into `down`, over all its sources.
    fn tables_of(&self, task: &str, down: (&str, &str)) -> Vec<UpTable> {
        self.source_tables
            .iter()
            .filter(|((t, _), _)| t == task)
            .flat_map(|(_, st)| st.routed_into(down))
            .collect()
    }

    /// The lock's answer to `info` as Operations (no writes).
    fn answer(&mut self, info: &OptimisticInfo) -> Vec<OptimisticOp> {
        let id = info.lock_id();
        if !self.locks.contains_key(&id) {
            let tables = self.tables_of(&info.task, (&info.down_schema, &info.down_table));
            let lock = OptLock::new(
                &id,
                &info.task,
                (&info.down_schema, &info.down_table),
                &tables,
                &info.table_info_before,
            );
            self.locks.insert(id.clone(), lock);
            self.since.insert(id.clone(), now());
        }
        let lock = self.locks.get_mut(&id).expect("inserted above");
        let up = info.up();
        let answer = match lock.try_sync(
            &up,
            &info.ddls,
            &info.table_info_before,
            &info.table_infos_after,
            false,
        ) {
            Ok(a) => a,
            Err(e) => Answer {
                ddls: Vec::new(),
                stage: ConflictStage::Error,
                message: e.to_string(),
                resolved: Vec::new(),
                partially_dropped: Vec::new(),
            },
        };
        let op = |t: &UpTable, ddls: Vec<String>, stage, message: String, cols| OptimisticOp {
            id: id.clone(),
            task: info.task.clone(),
            source: t.source.clone(),
            up_schema: t.schema.clone(),
            up_table: t.table.clone(),
            ddls,
            conflict_stage: stage,
            conflict_message: message,
            done: false,
            cols,
        };
        let mut ops = vec![op(
            &up,
            answer.ddls,
            answer.stage,
            answer.message,
            answer.partially_dropped,
        )];
        for t in &answer.resolved {
            ops.push(op(
                t,
                Vec::new(),
                ConflictStage::Resolved,
                String::new(),
                Vec::new(),
            ));
        }
        ops
    }

    /// Reads everything and replays the Infos; returns the revision read.
    async fn rebuild(&mut self) -> Result<i64, DmError> {
        let st = store::load_optimistic(&mut self.client).await?;
        self.locks.clear();
        self.since.clear();
        self.pending.clear();
        self.source_tables = st
            .source_tables
            .into_iter()
            .map(|s| ((s.task.clone(), s.source.clone()), s))
            .collect();
        self.deferred.clear();
        for (info, _) in &st.infos {
            self.answer(info);
        }
        for op in st.ops.iter().filter(|o| !o.done) {
            self.pending
                .entry(op.id.clone())
                .or_default()
                .insert(up_of(op));
        }
        // Tables told to wait for a redirect whose conflict the replay shows settled: they
        // are told `resolved` now, or once the settling DDL's Operation is done.
        let mut resolved: Vec<OptimisticOp> = Vec::new();
        for op in &st.ops {
            let up = up_of(op);
            if op.conflict_stage != ConflictStage::SkipWaitRedirect
                || self
                    .locks
                    .get(&op.id)
                    .is_none_or(|l| l.conflicts.contains_key(&up))
            {
                continue;
            }
            resolved.push(OptimisticOp {
                ddls: Vec::new(),
                conflict_stage: ConflictStage::Resolved,
                conflict_message: String::new(),
                done: false,
                cols: Vec::new(),
                ..op.clone()
            });
        }
        for op in resolved {
            let settling = st
                .ops
                .iter()
                .find(|o| o.id == op.id && !o.done && !o.ddls.is_empty())
                .map(up_of);
            self.pending
                .entry(op.id.clone())
                .or_default()
                .insert(up_of(&op));
            match settling {
                Some(t) => self
                    .deferred
                    .entry((op.id.clone(), t))
                    .or_default()
                    .push(op),
                None => {
                    let w = store::put_optimistic_ops(&mut self.client, self.fence.as_ref(), &[op])
                        .await?;
                    self.check(w)?;
                }
            }
        }
        info!(
            locks = self.locks.len(),
            revision = st.revision,
            "optimistic locks rebuilt"
        );
        Ok(st.revision)
    }

    async fn on_info(&mut self, info: OptimisticInfo) -> Result<(), DmError> {
        let id = info.lock_id();
        let dropped_before: BTreeSet<String> = self
            .locks
            .get(&id)
            .map(|l| l.dropped.keys().cloned().collect())
            .unwrap_or_default();
        let ops = self.answer(&info);
        // DM's dropped-columns keys follow the lock's partially dropped columns (written
        // before the Operations, so a worker that sees its Operation sees them too).
        let dropped_after: BTreeSet<String> = self
            .locks
            .get(&id)
            .map(|l| l.dropped.keys().cloned().collect())
            .unwrap_or_default();
        if let Some(own) = ops.first()
            && !own.cols.is_empty()
        {
            let w = store::put_dropped_columns(
                &mut self.client,
                self.fence.as_ref(),
                &id,
                &own.cols
                    .iter()
                    .map(|c| c.to_ascii_lowercase())
                    .collect::<Vec<_>>(),
                &info.up(),
            )
            .await?;
            self.check(w)?;
        }
        let gone: Vec<String> = dropped_before.difference(&dropped_after).cloned().collect();
        if !gone.is_empty() {
            let w =
                store::delete_dropped_columns(&mut self.client, self.fence.as_ref(), &id, &gone)
                    .await?;
            self.check(w)?;
        }
        // The settling table's DDL runs first; the waiting tables hear `resolved` after.
        let (now, later) = match ops.split_first() {
            Some((own, rest)) if !own.ddls.is_empty() && !rest.is_empty() => {
                (vec![own.clone()], rest.to_vec())
            }
            _ => (ops.clone(), Vec::new()),
        };
        let w = store::put_optimistic_ops(&mut self.client, self.fence.as_ref(), &now).await?;
        self.check(w)?;
        if !later.is_empty() {
            self.deferred
                .entry((id.clone(), info.up()))
                .or_default()
                .extend(later);
        }
        for op in &ops {
            self.pending
                .entry(op.id.clone())
                .or_default()
                .insert(UpTable {
                    source: op.source.clone(),
                    schema: op.up_schema.clone(),
                    table: op.up_table.clone(),
                });
            info!(lock = %op.id, source = %op.source, table = %format!("`{}`.`{}`", op.up_schema, op.up_table), stage = op.conflict_stage.as_str(), ddls = ?op.ddls, "optimistic shard DDL operation");
        }
        Ok(())
    }

    /// A source's tables changed: tables it no longer has (dropped upstream) leave its
    /// locks; a lock that this settles is removed.
    async fn on_source_tables(&mut self, st: SourceTables) -> Result<(), DmError> {
        let (task, source) = (st.task.clone(), st.source.clone());
        self.source_tables
            .insert((task.clone(), source.clone()), st);
        let ids: Vec<String> = self
            .locks
            .values()
            .filter(|l| l.task == task)
            .map(|l| l.id.clone())
            .collect();
        for id in ids {
            let Some(lock) = self.locks.get(&id) else {
                continue;
            };
            let still = self.tables_of(&task, (&lock.down_schema, &lock.down_table));
            let gone: Vec<UpTable> = lock
                .tables
                .keys()
                .filter(|t| t.source == source && !still.contains(t))
                .cloned()
                .collect();
            if gone.is_empty() {
                continue;
            }
            let lock = self.locks.get_mut(&id).expect("read above");
            for t in &gone {
                lock.remove_table(t);
                info!(lock = %id, table = %t, "a dropped table left the optimistic lock");
            }
            if let Some(p) = self.pending.get_mut(&id) {
                p.retain(|t| !gone.contains(t));
            }
            self.settle(&id).await?;
        }
        Ok(())
    }

    /// Removes lock `id` (its Infos and Operations too) when no Operation is pending and every
    /// table agrees with the join.
    async fn settle(&mut self, id: &str) -> Result<(), DmError> {
        let idle = self.pending.get(id).is_none_or(|p| p.is_empty());
        let Some(lock) = self.locks.get(id) else {
            return Ok(());
        };
        if !(idle && lock.resolved()) {
            return Ok(());
        }
        let tables: Vec<UpTable> = lock.tables.keys().cloned().collect();
        let task = lock.task.clone();
        let w =
            store::delete_optimistic_lock(&mut self.client, self.fence.as_ref(), &task, &tables)
                .await?;
        self.check(w)?;
        let w =
            store::delete_dropped_columns(&mut self.client, self.fence.as_ref(), id, &[]).await?;
        self.check(w)?;
        self.locks.remove(id);
        self.since.remove(id);
        self.pending.remove(id);
        info!(lock = %id, "optimistic shard DDL lock resolved");
        Ok(())
    }

    async fn on_done(&mut self, op: OptimisticOp) -> Result<(), DmError> {
        let up = UpTable {
            source: op.source.clone(),
            schema: op.up_schema.clone(),
            table: op.up_table.clone(),
        };
        if let Some(p) = self.pending.get_mut(&op.id) {
            p.remove(&up);
        }
        if let Some(ops) = self.deferred.remove(&(op.id.clone(), up)) {
            let w = store::put_optimistic_ops(&mut self.client, self.fence.as_ref(), &ops).await?;
            self.check(w)?;
            info!(lock = %op.id, tables = ops.len(), "the settling DDL ran; waiting tables told resolved");
        }
        self.settle(&op.id).await
    }

    /// `shard-ddl-lock unlock <id> -s <source> -d <db> -t <table> --action skip`: the table's
    /// conflicting DDL is dropped from the lock and the table is told `resolved` (its worker
    /// replays the rows it skipped). `Ok(false)` when `m.id` is not an optimistic lock.
    async fn unlock(&mut self, m: &UnlockLock) -> Result<bool, DmError> {
        let Some(lock) = self.locks.get_mut(&m.id) else {
            return Ok(false);
        };
        let invalid = |msg: String| Err(DmError::new(&codes::MASTER_INVALID_OPERATE, msg));
        if m.action == UnlockAction::Exec || m.force_remove || m.owner.is_some() {
            return invalid(format!(
                "lock {}: an optimistic lock is unlocked with --action skip and -s, -d, -t naming the conflicting table (exec, --force-remove and --owner are not supported)",
                m.id
            ));
        }
        let (Some(source), Some(schema), Some(table)) = (&m.source, &m.database, &m.table) else {
            return invalid(format!(
                "lock {}: name the conflicting table with -s <source> -d <database> -t <table>",
                m.id
            ));
        };
        let up = UpTable {
            source: source.clone(),
            schema: schema.clone(),
            table: table.clone(),
        };
        lock.skip_conflict(&up)?;
        let op = OptimisticOp {
            id: m.id.clone(),
            task: lock.task.clone(),
            source: up.source.clone(),
            up_schema: up.schema.clone(),
            up_table: up.table.clone(),
            ddls: Vec::new(),
            conflict_stage: ConflictStage::Resolved,
            conflict_message: "unlocked by hand (--action skip)".into(),
            done: false,
            cols: Vec::new(),
        };
        let w = store::put_optimistic_ops(&mut self.client, self.fence.as_ref(), &[op]).await?;
        self.check(w)?;
        self.pending
            .entry(m.id.clone())
            .or_default()
            .insert(up.clone());
        info!(lock = %m.id, table = %up, "optimistic conflict skipped by hand");
        Ok(true)
    }

    fn show(&self, m: &ShowLocks) -> Vec<LockView> {
        let t = now();
        self.locks
            .values()
            .filter(|l| m.task.is_empty() || l.task == m.task)
            .filter(|l| {
                m.sources.is_empty() || l.tables.keys().any(|u| m.sources.contains(&u.source))
            })
            .map(|l| {
                let (synced, unsynced) = l.split();
                let since = self.since.get(&l.id).copied().unwrap_or(t);
                let waiting = if let Some((table, message)) = l.conflicts.iter().next() {
                    Waiting {
                        state: "conflict".into(),
                        detail: format!(
                            "tables {:?} changed a column differently from the others; each skips its DDL and rows until every table made the same change",
                            l.conflicts.keys().map(ToString::to_string).collect::<Vec<_>>()
                        ),
                        since,
                        seconds: t.saturating_sub(since),
                        resolve: format!(
                            "run the same change on every table of the lock upstream (the last one settles it), or give up {table}'s change: `dmctl shard-ddl-lock unlock '{}' -s {} -d {} -t {} --action skip`",
                            l.id, table.source, table.schema, table.table
                        ),
                        error: message.clone(),
                    }
                } else if !l.dropped.is_empty() {
                    Waiting {
                        state: "partially-dropped".into(),
                        detail: format!(
                            "columns {:?} are dropped by some tables only; the DROP runs downstream when the last table drops them",
                            l.dropped.keys().collect::<Vec<_>>()
                        ),
                        since,
                        seconds: t.saturating_sub(since),
                        resolve: "nothing while the other tables replicate".into(),
                        error: String::new(),
                    }
                } else {
                    Waiting {
                        state: "tables".into(),
                        detail: format!("tables {unsynced:?} do not have the joined schema yet"),
                        since,
                        seconds: t.saturating_sub(since),
                        resolve: "nothing while those tables replicate".into(),
                        error: String::new(),
                    }
                };
                LockView {
                    id: l.id.clone(),
                    task: l.task.clone(),
                    mode: "optimistic".into(),
                    owner: String::new(),
                    ddls: l.ran.clone(),
                    synced,
                    unsynced,
                    waiting,
                }
            })
            .collect()
    }
}

impl Watched for Optimist {
    type Event = OptimisticEvent;
    const WHAT: &'static str = "optimistic shard DDL";

    fn is_deposed(&self) -> bool {
        self.deposed.get()
    }

    async fn start(client: &mut Client, from: i64) -> Result<etcd_client::WatchStream, DmError> {
        store::watch_optimistic(client, from).await
    }

    fn events(resp: &etcd_client::WatchResponse) -> Result<Vec<OptimisticEvent>, DmError> {
        store::optimistic_events(resp)
    }

    async fn on_event(&mut self, ev: OptimisticEvent) -> Result<(), DmError> {
        match ev {
            OptimisticEvent::SourceTablesPut(st) => self.on_source_tables(st).await,
            OptimisticEvent::InfoPut(info) => self.on_info(info).await,
            OptimisticEvent::OpPut(op) if op.done => self.on_done(op).await,
            OptimisticEvent::OpPut(_) => Ok(()),
        }
    }

    async fn rebuild(&mut self) -> Result<i64, DmError> {
        Optimist::rebuild(self).await
    }
}

/// The actor.
pub struct OptimistActor {
    core: Rc<Mutex<Optimist>>,
    term: LeaderTerm,
}

impl OptimistActor {
    /// Rebuilds from etcd, then starts the actor on the current arbiter (see
    /// [`super::pessimist::PessimistActor::start_rebuilt`]).
    pub async fn start_rebuilt(
        client: Client,
        fence: Option<Fence>,
        parent: Option<Recipient<SchedulerStopped>>,
    ) -> Result<Addr<Self>, DmError> {
        let deposed = Rc::new(Cell::new(false));
        let mut core = Optimist {
            client: client.clone(),
            fence: fence.clone(),
            deposed: deposed.clone(),
            locks: BTreeMap::new(),
            since: BTreeMap::new(),
            source_tables: BTreeMap::new(),
            pending: BTreeMap::new(),
            deferred: BTreeMap::new(),
        };
        let rev = core.rebuild().await?;
        Ok(OptimistActor {
            core: Rc::new(Mutex::new(core)),
            term: LeaderTerm::new(client, deposed, rev, fence, parent),
        }
        .start())
    }
}

impl Actor for OptimistActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        info!(
            actor = "Optimist",
            parent = "Election",
            reason = "won election",
            "actor started"
        );
        let w = self.term.watch(&self.core);
        ctx.spawn(
            w.into_actor(self)
                .map(|(), act, ctx| act.term.check_deposed(ctx)),
        );
        ctx.run_interval(Duration::from_secs(1), |act, ctx| {
            act.term.check_deposed(ctx)
        });
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.term.stopped("Optimist");
    }
}

impl Handler<StopScheduler> for OptimistActor {
    type Result = ();
    fn handle(&mut self, m: StopScheduler, ctx: &mut Context<Self>) {
        self.term.stop_reason = m.reason;
        ctx.stop();
    }
}

impl Handler<ShowLocks> for OptimistActor {
    type Result = ResponseActFuture<Self, Vec<LockView>>;
    fn handle(&mut self, m: ShowLocks, _: &mut Context<Self>) -> Self::Result {
        let core = self.core.clone();
        Box::pin(async move { core.lock().await.show(&m) }.into_actor(self))
    }
}

impl Handler<UnlockOptimistic> for OptimistActor {
    type Result = ResponseActFuture<Self, Result<bool, DmError>>;
    fn handle(&mut self, m: UnlockOptimistic, _: &mut Context<Self>) -> Self::Result {
        let core = self.core.clone();
        Box::pin(async move { core.lock().await.unlock(&m.0).await }.into_actor(self))
    }
}

impl Handler<ForgetTask> for OptimistActor {
    type Result = ResponseActFuture<Self, ()>;
    fn handle(&mut self, m: ForgetTask, _: &mut Context<Self>) -> Self::Result {
        let core = self.core.clone();
        Box::pin(
            async move {
                let mut g = core.lock().await;
                g.locks.retain(|_, l| l.task != m.task);
                g.source_tables.retain(|(t, _), _| *t != m.task);
                let Optimist {
                    locks,
                    since,
                    pending,
                    deferred,
                    ..
                } = &mut *g;
                since.retain(|id, _| locks.contains_key(id));
                pending.retain(|id, _| locks.contains_key(id));
                deferred.retain(|(id, _), _| locks.contains_key(id));
            }
            .into_actor(self),
        )
    }
}
