//! The Pessimist (leader only): DM's pessimistic shard DDL coordinator. A thin actor over
//! [`LockKeeper`] (plain logic) and the etcd state of `/dm-master/shardddl-pessimism/`.
//!
//! - **Start:** reads every Info and Operation at one revision, rebuilds the locks
//!   ([`LockKeeper::rebuild`]), finishes what a synced lock still needs, then watches from the
//!   next revision. A failed or compacted watch rebuilds again after a backoff.
//! - **Info put** (a source's sharding group reached the DDLs): the lock records it; when every
//!   source of the task reported, the owner gets `exec`. DDLs that differ are 38016 (logged,
//!   shown by `shard-ddl-lock`; the lock waits).
//! - **Operation put with done:** the owner done ⇒ the others get `skip`; all done ⇒ the
//!   Operations are deleted and the lock is gone.
//! - **Unlock** ([`UnlockLock`]): DM's `shard-ddl-lock unlock`: the owner (or `--owner`) is made
//!   to execute, then the others skip; with `--force-remove` the lock is removed even if some
//!   source did not answer. Polls etcd meanwhile, so the watch keeps being served.
//! - **Fencing:** every write is conditional on the election key; a lost fence stops the actor
//!   and tells the Election.
//!
//! Started and stopped by the Election together with the Scheduler.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use actix::prelude::*;
use etcd_client::Client;
use tokio::sync::Mutex;
use tracing::{info, warn};

use super::watch::{LeaderTerm, Watched};
use crate::error::{DmError, codes};
use crate::messages::master::{SchedulerStopped, StopScheduler};
use crate::messages::shardddl::{ForgetTask, ShowLocks, UnlockLock};
use crate::shardddl::pessimism::{LockKeeper, LockView};
use crate::store::etcd::ha::Fence;
use crate::store::etcd::shardddl::{
    self as store, PessimisticEvent, PessimisticInfo, PessimisticOp, Written,
};

/// How long an unlock waits for a source to finish, and how often it looks.
const UNLOCK_WAIT: Duration = Duration::from_secs(10);
const UNLOCK_POLL: Duration = Duration::from_millis(200);

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The Pessimist's state; one handler at a time (FIFO lock).
pub struct Pessimist {
    client: Client,
    fence: Option<Fence>,
    keeper: LockKeeper,
    deposed: Rc<Cell<bool>>,
}

impl Pessimist {
    fn deposed_err(&self) -> DmError {
        self.deposed.set(true);
        DmError::new(
            &codes::HA_FAIL_LEASE_OPERATION,
            "the election key is gone: this master no longer leads",
        )
    }

    fn check(&self, w: Written) -> Result<Written, DmError> {
        if w == Written::FenceLost {
            Err(self.deposed_err())
        } else {
            Ok(w)
        }
    }

    async fn put_ops(&mut self, ops: &[PessimisticOp], skip_done: bool) -> Result<(), DmError> {
        let w = store::put_pessimistic_ops(&mut self.client, self.fence.as_ref(), ops, skip_done)
            .await?;
        self.check(w).map(|_| ())
    }

    /// Reads everything and rebuilds the locks; returns the revision read.
    async fn rebuild(&mut self) -> Result<i64, DmError> {
        let st = store::load_pessimistic(&mut self.client).await?;
        let sources = store::task_sources(&mut self.client).await?;
        for e in self.keeper.rebuild(st.infos, &st.ops, &sources, now()) {
            warn!(code = e.code, error = %e.chain(), "pessimistic lock rebuilt with differing DDLs");
        }
        for id in self.keeper.ids() {
            if self.keeper.get(&id).is_some_and(|l| l.synced()) {
                self.handle_lock(&id, None).await?;
            }
        }
        info!(
            locks = self.keeper.ids().len(),
            revision = st.revision,
            "pessimistic locks rebuilt"
        );
        Ok(st.revision)
    }

    async fn on_event(&mut self, ev: PessimisticEvent) -> Result<(), DmError> {
        match ev {
            PessimisticEvent::InfoPut(info) => self.on_info(info).await,
            PessimisticEvent::OpPut(op) if op.done => self.on_done(op).await,
            PessimisticEvent::OpPut(_) => Ok(()),
        }
    }

    async fn on_info(&mut self, info: PessimisticInfo) -> Result<(), DmError> {
        let sources = store::task_sources(&mut self.client)
            .await?
            .remove(&info.task)
            .unwrap_or_default();
        match self.keeper.try_sync(&info, &sources, now()) {
            Ok(s) => {
                info!(lock = %s.lock, source = %info.source, ddls = ?info.ddls, remain = s.remain, "shard DDL info received");
                if s.synced {
                    self.handle_lock(&s.lock, Some(&info.source)).await?;
                }
            }
            Err(e) => {
                warn!(source = %info.source, code = e.code, error = %e.chain(), "shard DDL info does not match its lock");
            }
        }
        Ok(())
    }

    /// A synced lock: resolved ⇒ removed; owner done ⇒ others skip; else the owner executes.
    async fn handle_lock(&mut self, id: &str, source: Option<&str>) -> Result<(), DmError> {
        let Some(lock) = self.keeper.get(id).cloned() else {
            return Ok(());
        };
        if lock.resolved() {
            return self.remove_lock(id).await;
        }
        if lock.done.get(&lock.owner).copied().unwrap_or(false) {
            let targets: Vec<String> = match source {
                Some(s) if s != lock.owner => vec![s.to_string()],
                _ => lock.waiting_non_owners(),
            };
            let ops: Vec<PessimisticOp> = targets.iter().map(|s| lock.op_for(s)).collect();
            self.put_ops(&ops, true).await?;
        } else {
            let op = lock.op_for(&lock.owner);
            info!(lock = %id, owner = %lock.owner, "shard DDL lock synced; the owner executes");
            self.put_ops(&[op], true).await?;
        }
        Ok(())
    }

    async fn on_done(&mut self, op: PessimisticOp) -> Result<(), DmError> {
        let Some(lock) = self.keeper.get_mut(&op.id) else {
            warn!(lock = %op.id, source = %op.source, "done operation of an unknown lock");
            return Ok(());
        };
        lock.mark_done(&op.source);
        let lock = lock.clone();
        info!(lock = %op.id, source = %op.source, exec = op.exec, "shard DDL operation done");
        if lock.resolved() {
            return self.remove_lock(&op.id).await;
        }
        if op.source == lock.owner {
            let ops: Vec<PessimisticOp> = lock
                .ready
                .keys()
                .filter(|s| **s != lock.owner && !lock.done.get(*s).copied().unwrap_or(false))
                .map(|s| lock.op_for(s))
                .collect();
            self.put_ops(&ops, false).await?;
        }
        Ok(())
    }

    async fn remove_lock(&mut self, id: &str) -> Result<(), DmError> {
        let Some(lock) = self.keeper.get(id).cloned() else {
            return Ok(());
        };
        let sources: Vec<String> = lock.ready.keys().cloned().collect();
        let w = store::delete_pessimistic_ops(
            &mut self.client,
            self.fence.as_ref(),
            &lock.task,
            &sources,
        )
        .await?;
        self.check(w)?;
        self.keeper.remove(id);
        info!(lock = %id, "shard DDL lock resolved");
        Ok(())
    }

    fn show(&self, m: &ShowLocks) -> Vec<LockView> {
        self.keeper.show(&m.task, &m.sources, now())
    }
}

/// Polls the Operation of (`task`, `source`) until it is done (true) or `UNLOCK_WAIT` passed.
async fn wait_done(client: &mut Client, task: &str, source: &str, id: &str) -> bool {
    let deadline = tokio::time::Instant::now() + UNLOCK_WAIT;
    loop {
        match store::get_pessimistic_op(client, task, source).await {
            Ok((_, Some((op, _)))) if op.id == id && op.done => return true,
            // Deleted: the lock resolved on its own.
            Ok((_, None)) => return true,
            _ => {}
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(UNLOCK_POLL).await;
    }
}

/// The actor.
pub struct PessimistActor {
    core: Rc<Mutex<Pessimist>>,
    term: LeaderTerm,
}

impl PessimistActor {
    /// Rebuilds from etcd, then starts the actor on the current arbiter. Writes are fenced by
    /// `fence`; `parent` hears when the actor stops because it was deposed.
    pub async fn start_rebuilt(
        client: Client,
        fence: Option<Fence>,
        parent: Option<Recipient<SchedulerStopped>>,
    ) -> Result<Addr<Self>, DmError> {
        let deposed = Rc::new(Cell::new(false));
        let mut core = Pessimist {
            client: client.clone(),
            fence: fence.clone(),
            keeper: LockKeeper::default(),
            deposed: deposed.clone(),
        };
        let rev = core.rebuild().await?;
        Ok(PessimistActor {
            core: Rc::new(Mutex::new(core)),
            term: LeaderTerm::new(client, deposed, rev, fence, parent),
        }
        .start())
    }
}

impl Watched for Pessimist {
    type Event = PessimisticEvent;
    const WHAT: &'static str = "pessimistic shard DDL";

    fn is_deposed(&self) -> bool {
        self.deposed.get()
    }

    async fn start(client: &mut Client, from: i64) -> Result<etcd_client::WatchStream, DmError> {
        store::watch_pessimistic(client, from).await
    }

    fn events(resp: &etcd_client::WatchResponse) -> Result<Vec<PessimisticEvent>, DmError> {
        store::pessimistic_events(resp)
    }

    async fn on_event(&mut self, ev: PessimisticEvent) -> Result<(), DmError> {
        Pessimist::on_event(self, ev).await
    }

    async fn rebuild(&mut self) -> Result<i64, DmError> {
        Pessimist::rebuild(self).await
    }
}

impl Actor for PessimistActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        info!(
            actor = "Pessimist",
            parent = "Election",
            reason = "won election",
            "actor started"
        );
        let w = self.term.watch(&self.core);
        ctx.spawn(
            w.into_actor(self)
                .map(|(), act, ctx| act.term.check_deposed(ctx)),
        );
        // A lost fence is noticed on the next write; check now and then as well.
        ctx.run_interval(Duration::from_secs(1), |act, ctx| {
            act.term.check_deposed(ctx)
        });
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.term.stopped("Pessimist");
    }
}

impl Handler<StopScheduler> for PessimistActor {
    type Result = ();
    fn handle(&mut self, m: StopScheduler, ctx: &mut Context<Self>) {
        self.term.stop_reason = m.reason;
        ctx.stop();
    }
}

impl Handler<ShowLocks> for PessimistActor {
    type Result = ResponseActFuture<Self, Vec<LockView>>;
    fn handle(&mut self, m: ShowLocks, _: &mut Context<Self>) -> Self::Result {
        let core = self.core.clone();
        Box::pin(async move { core.lock().await.show(&m) }.into_actor(self))
    }
}

impl Handler<ForgetTask> for PessimistActor {
    type Result = ResponseActFuture<Self, ()>;
    fn handle(&mut self, m: ForgetTask, _: &mut Context<Self>) -> Self::Result {
        let core = self.core.clone();
        Box::pin(
            async move {
                let mut g = core.lock().await;
                for id in g.keeper.of_task(&m.task) {
                    g.keeper.remove(&id);
                }
            }
            .into_actor(self),
        )
    }
}

impl Handler<UnlockLock> for PessimistActor {
    type Result = ResponseActFuture<Self, Result<(), DmError>>;
    fn handle(&mut self, m: UnlockLock, _: &mut Context<Self>) -> Self::Result {
        let core = self.core.clone();
        let mut client = self.term.client.clone();
        let fut = async move {
            // 1. The owner executes.
            let (lock, owner) = {
                let mut g = core.lock().await;
                let Some(lock) = g.keeper.get(&m.id).cloned() else {
                    return Err(DmError::new(
                        &codes::MASTER_LOCK_NOT_FOUND,
                        format!("lock with ID {} not found", m.id),
                    ));
                };
                if lock.resolved() {
                    g.remove_lock(&m.id).await?;
                    return Err(DmError::new(
                        &codes::MASTER_LOCK_IS_RESOLVING,
                        format!("the lock {} has been resolved before", m.id),
                    ));
                }
                let owner = m.owner.clone().unwrap_or_else(|| lock.owner.clone());
                if !lock.ready.get(&owner).copied().unwrap_or(false) && !m.force_remove {
                    let (synced, _) = lock.split();
                    return Err(DmError::new(
                        &codes::MASTER_WORKER_NOT_WAIT_LOCK,
                        format!(
                            "owner {owner} is not waiting for a lock, but sources {synced:?} are waiting for the lock"
                        ),
                    ));
                }
                let l = g.keeper.get_mut(&m.id).expect("read above");
                l.owner = owner.clone();
                l.force_synced();
                let lock = l.clone();
                if !lock.done.get(&owner).copied().unwrap_or(false) {
                    g.put_ops(&[lock.op_for(&owner)], true).await?;
                }
                (lock, owner)
            };
            info!(lock = %m.id, owner = %owner, force_remove = m.force_remove, "unlocking a shard DDL lock by hand");
            let owner_done = lock.done.get(&owner).copied().unwrap_or(false)
                || wait_done(&mut client, &lock.task, &owner, &lock.id).await;
            if !owner_done && !m.force_remove {
                return Err(DmError::new(
                    &codes::MASTER_OWNER_EXEC_DDL,
                    format!(
                        "the owner {owner} of lock {} did not execute its DDLs within {UNLOCK_WAIT:?}; retry, or add --force-remove",
                        m.id
                    ),
                ));
            }
            // 2. The others skip.
            let others: Vec<String> = lock
                .ready
                .keys()
                .filter(|s| **s != owner)
                .cloned()
                .collect();
            {
                let mut g = core.lock().await;
                if let Some(l) = g.keeper.get(&m.id).cloned() {
                    let ops: Vec<PessimisticOp> = others
                        .iter()
                        .filter(|s| !l.done.get(*s).copied().unwrap_or(false))
                        .map(|s| l.op_for(s))
                        .collect();
                    g.put_ops(&ops, true).await?;
                }
            }
            let mut failed = Vec::new();
            for s in &others {
                if !wait_done(&mut client, &lock.task, s, &lock.id).await {
                    failed.push(s.clone());
                }
            }
            // 3. The lock goes, with its Infos and Operations.
            let mut g = core.lock().await;
            let all: Vec<String> = lock.ready.keys().cloned().collect();
            let fence = g.fence.clone();
            let w = store::delete_pessimistic_infos_ops(
                &mut g.client,
                fence.as_ref(),
                &lock.task,
                &all,
            )
            .await?;
            g.check(w)?;
            g.keeper.remove(&m.id);
            if !failed.is_empty() {
                warn!(lock = %m.id, sources = ?failed, "sources did not skip the unlocked DDLs in time; the lock was removed anyway");
                return Err(DmError::new(
                    &codes::MASTER_PART_WORKER_EXEC_DDL_FAIL,
                    format!(
                        "sources {failed:?} did not skip the DDLs of lock {} in time; the lock was removed",
                        m.id
                    ),
                ));
            }
            Ok(())
        };
        Box::pin(fut.into_actor(self).map(|res, act, ctx| {
            act.term.check_deposed(ctx);
            res
        }))
    }
}
