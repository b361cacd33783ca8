//! The sync unit's shard DDL state (`shard-mode: pessimistic`): the sharding groups of this
//! source ([`Group`]), what the sharding meta table remembers, and the coordinator that turns a
//! synced group into an executed or skipped DDL.
//!
//! - **Coordinator:** [`Coordinator::Etcd`] in a cluster (the master's Pessimist decides, see
//!   [`crate::actors::master::pessimist`]); [`Coordinator::Local`] for `dm-syncer`/`dm-migrate`
//!   run alone, where this source is the task's only source and a synced group executes at
//!   once.
//! - **Exact replay:** no checkpoint is saved while a group has pending DDLs
//!   ([`ShardState::can_save`]), so a resume replays from before the first of them and rebuilds
//!   the same groups (membership comes from the sharding meta written with the checkpoint). A
//!   lock's DDL is recorded as done in the sharding meta right after it ran downstream, so the
//!   replay neither coordinates nor executes it again ([`ShardState::already_done`]).
//! - **Stop:** waiting for the master's Operation ends when the unit is asked to stop
//!   ([`StopSignal`]); nothing was written, the next run waits again.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use etcd_client::Client;
use mysql_async::Conn;
use mysql_async::prelude::*;
use tokio::sync::Notify;
use tracing::{info, warn};

use crate::binlog::location::Position;
use crate::error::{DmError, codes};
use crate::shardddl::group::{DdlItem, Group, UnresolvedGroup, table_id};
use crate::sql::filter::BaFilter;
use crate::sql::route::Router;
use crate::sql::schema_tracker::TableSchema;
use crate::sql::sharding_meta::{GroupRows, MetaItem, ShardingMetaTable, SourceRows};
use crate::store::etcd::shardddl::{
    self as store, DoneOutcome, PessimisticInfo, PessimisticOp, lock_id,
};

/// How often a waiting worker reads its Operation.
const OP_POLL: Duration = Duration::from_millis(100);

/// Who decides what a synced sharding group does.
#[derive(Clone)]
pub enum Coordinator {
    /// No master: this source is the task's only one.
    Local,
    /// The master's Pessimist, through the cluster's etcd.
    Etcd(Box<Client>),
}

/// Asks a running sync unit to stop waiting (set by the parent before [`StopSyncer`]).
///
/// [`StopSyncer`]: crate::messages::syncer::StopSyncer
#[derive(Debug, Default)]
pub struct StopSignal {
    set: AtomicBool,
    notify: Notify,
}

impl StopSignal {
    pub fn stop(&self) {
        self.set.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    pub fn is_set(&self) -> bool {
        self.set.load(Ordering::SeqCst)
    }

    /// Returns once [`Self::stop`] was called.
    pub async fn wait(&self) {
        loop {
            let n = self.notify.notified();
            if self.is_set() {
                return;
            }
            n.await;
        }
    }
}

/// The error a wait ends with when the unit is stopping.
pub fn stopping() -> DmError {
    DmError::new(
        &codes::SYNC_SHARD_COORDINATION,
        "stopped while waiting for the shard DDL lock",
    )
}

/// What the lock decided for this source.
#[derive(Debug, Clone)]
pub struct Decision {
    /// Execute the DDLs downstream (the owner), else skip them.
    pub exec: bool,
    /// The master's Operation to mark done (cluster mode, not yet done).
    pub op: Option<PessimisticOp>,
}

/// The shard state of one sync unit.
pub struct ShardState {
    task: String,
    source: String,
    coordinator: Coordinator,
    groups: BTreeMap<String, Group>,
    /// Present member table id → its target id.
    target_of: HashMap<String, String>,
    /// Target id → (schema, table).
    targets: BTreeMap<String, (String, String)>,
    /// (member, index in its sequence) → its schema after that DDL (re-sync decodes with it).
    snapshots: HashMap<(String, usize), TableSchema>,
    meta: ShardingMetaTable,
    /// Done locks recorded by an earlier run (target → global rows).
    records: SourceRows,
    /// Membership changed since the last checkpoint.
    dirty: bool,
    /// The Info this source is waiting on (query-status `blockingDDLs`).
    pub blocking: Vec<String>,
    /// The lock id once the Operation arrived (query-status `unresolvedDDLLockID`).
    pub lock_id: String,
}

impl ShardState {
    /// Loads (or, without a checkpoint, builds from the upstream) the sharding groups.
    pub async fn init(
        cfg: &crate::config::SubTaskConfig,
        coordinator: Coordinator,
        router: &Router,
        ba: &BaFilter,
        upstream: &mut Conn,
        downstream: &mut Conn,
        has_checkpoint: bool,
    ) -> Result<Self, DmError> {
        let meta = ShardingMetaTable::new(&cfg.meta_schema, &cfg.name, &cfg.source_id);
        meta.ensure(downstream).await?;
        let rows = meta.load(downstream).await?;
        let mut st = Self {
            task: cfg.name.clone(),
            source: cfg.source_id.clone(),
            coordinator,
            groups: BTreeMap::new(),
            target_of: HashMap::new(),
            targets: BTreeMap::new(),
            snapshots: HashMap::new(),
            meta,
            records: SourceRows::new(),
            dirty: true,
            blocking: Vec::new(),
            lock_id: String::new(),
        };
        let saved_members = rows.values().any(|g| !g.members.is_empty());
        if has_checkpoint && saved_members {
            for (target, g) in &rows {
                let Some((schema, table)) = split_table_id(target) else {
                    continue;
                };
                for m in g.members.keys() {
                    st.add_member(m, target, &schema, &table);
                }
            }
            st.dirty = false;
        } else {
            for (schema, table) in upstream_tables(upstream, ba).await? {
                let routed = router.route(&cfg.source_id, &schema, Some(&table))?;
                let t = routed.table.unwrap_or_else(|| table.clone());
                let target = table_id(&routed.schema, &t);
                st.add_member(&table_id(&schema, &table), &target, &routed.schema, &t);
            }
        }
        if has_checkpoint {
            st.records = rows
                .into_iter()
                .filter(|(_, g)| !g.global.is_empty())
                .collect();
        }
        info!(task = %st.task, source = %st.source, groups = st.groups.len(), tables = st.target_of.len(), from_meta = has_checkpoint && saved_members, "sharding groups ready");
        Ok(st)
    }

    fn add_member(&mut self, member: &str, target: &str, schema: &str, table: &str) {
        self.targets
            .entry(target.to_string())
            .or_insert_with(|| (schema.to_string(), table.to_string()));
        self.groups
            .entry(target.to_string())
            .or_insert_with(|| Group::new(target, Vec::<String>::new()))
            .join(member, &Position::new("", 0));
        self.target_of
            .insert(member.to_string(), target.to_string());
    }

    /// The target id of member `schema`.`table`.
    pub fn target_of(&self, schema: &str, table: &str) -> Option<&String> {
        self.target_of.get(&table_id(schema, table))
    }

    /// Rows of `schema`.`table` are withheld (its group waits for the DDL it already ran).
    pub fn withholds(&self, schema: &str, table: &str) -> bool {
        let id = table_id(schema, table);
        self.target_of
            .get(&id)
            .and_then(|t| self.groups.get(t))
            .is_some_and(|g| g.withholds(&id))
    }

    /// A checkpoint may be saved: no group has pending DDLs.
    pub fn can_save(&self) -> bool {
        self.groups.values().all(|g| !g.in_sequence())
    }

    /// The rows to write with the next checkpoint (membership), when they changed.
    pub fn checkpoint_rows(&mut self) -> Option<(ShardingMetaTable, SourceRows)> {
        if !self.dirty {
            return None;
        }
        self.dirty = false;
        self.records.clear();
        let mut rows = SourceRows::new();
        for (target, g) in &self.groups {
            let e: &mut GroupRows = rows.entry(target.clone()).or_default();
            for m in g.members() {
                e.members.insert(m, Vec::new());
            }
        }
        Some((self.meta.clone(), rows))
    }

    /// Undoes [`Self::checkpoint_rows`] when the checkpoint could not be written.
    pub fn checkpoint_failed(&mut self) {
        self.dirty = true;
    }

    pub fn group(&self, target: &str) -> Option<&Group> {
        self.groups.get(target)
    }

    pub fn group_mut(&mut self, target: &str) -> Option<&mut Group> {
        self.groups.get_mut(target)
    }

    pub fn target_names(&self, target: &str) -> Option<&(String, String)> {
        self.targets.get(target)
    }

    /// From now until [`Self::done`], query-status shows `ddls` as blocking and the lock of
    /// `target` as unresolved.
    pub fn blocked_on(&mut self, target: &str, ddls: &[String]) {
        self.blocking = ddls.to_vec();
        self.lock_id = self
            .targets
            .get(target)
            .map(|(schema, table)| lock_id(&self.task, schema, table))
            .unwrap_or_default();
    }

    /// A table created upstream joins the group of its target (`at`: the CREATE's start).
    pub fn join(
        &mut self,
        schema: &str,
        table: &str,
        target_schema: &str,
        target_table: &str,
        at: &Position,
    ) {
        let id = table_id(schema, table);
        let target = table_id(target_schema, target_table);
        self.targets
            .entry(target.clone())
            .or_insert_with(|| (target_schema.to_string(), target_table.to_string()));
        self.groups
            .entry(target.clone())
            .or_insert_with(|| Group::new(&target, Vec::<String>::new()))
            .join(&id, at);
        self.target_of.insert(id, target);
        self.dirty = true;
    }

    /// A member was dropped upstream. Returns its target when that synced the group.
    pub fn leave(&mut self, schema: &str, table: &str) -> Option<String> {
        let id = table_id(schema, table);
        let target = self.target_of.remove(&id)?;
        self.dirty = true;
        let synced = self.groups.get_mut(&target).is_some_and(|g| g.leave(&id));
        synced.then_some(target)
    }

    /// Members of `schema` (DROP DATABASE).
    pub fn members_of_schema(&self, schema: &str) -> Vec<String> {
        let prefix = format!("`{schema}`.");
        let mut v: Vec<String> = self
            .target_of
            .keys()
            .filter(|k| k.starts_with(&prefix))
            .cloned()
            .collect();
        v.sort();
        v
    }

    /// Records the schema of `member` after its DDL number `index`.
    pub fn snapshot(&mut self, member: &str, index: usize, schema: TableSchema) {
        self.snapshots.insert((member.to_string(), index), schema);
    }

    /// The schema of `member` after its DDL number `index`.
    pub fn schema_after(&self, member: &str, index: usize) -> Option<&TableSchema> {
        self.snapshots.get(&(member.to_string(), index))
    }

    /// Forgets the snapshots of a group whose sequence ended.
    pub fn forget_snapshots(&mut self, target: &str) {
        if self.groups.get(target).is_some_and(|g| !g.in_sequence()) {
            let members: Vec<String> = self
                .target_of
                .iter()
                .filter(|(_, t)| *t == target)
                .map(|(m, _)| m.clone())
                .collect();
            self.snapshots.retain(|(m, _), _| !members.contains(m));
        }
    }

    /// A previous run recorded the active DDL of `target` as done (exactly this DDL event).
    pub fn already_done(&self, target: &str) -> bool {
        let Some(g) = self.groups.get(target) else {
            return false;
        };
        let Some(item) = g.active_item() else {
            return false;
        };
        let k = g.active_index();
        self.records.get(target).is_some_and(|r| {
            r.active_index > k
                && r.global.get(k).is_some_and(|m| {
                    m.first_position.name == item.first.name
                        && m.first_position.pos == item.first.pos
                        && crate::shardddl::group::same_ddls(&m.ddls, &item.ddls)
                })
        })
    }

    /// Records the active DDL of `target` as done, before the group moves on.
    pub async fn record_done(&mut self, conn: &mut Conn, target: &str) -> Result<(), DmError> {
        let Some(g) = self.groups.get(target) else {
            return Ok(());
        };
        let mut rows = GroupRows {
            members: BTreeMap::new(),
            global: g.global().iter().map(MetaItem::from).collect(),
            active_index: g.active_index() + 1,
        };
        for m in g.members() {
            rows.members.insert(
                m.clone(),
                g.sequence(&m).iter().map(MetaItem::from).collect(),
            );
        }
        self.meta.write_group(conn, target, &rows).await?;
        self.records.insert(target.to_string(), rows);
        self.dirty = true;
        Ok(())
    }

    /// Groups with pending DDLs, for query-status.
    pub fn unresolved(&self) -> Vec<UnresolvedGroup> {
        self.groups
            .values()
            .filter(|g| g.in_sequence())
            .map(|g| {
                let item = g.active_item().expect("in sequence");
                let (synced, unsynced) = g.synced_split();
                UnresolvedGroup {
                    target: g.target.clone(),
                    ddls: item.ddls.clone(),
                    first_location: format!("position: {}, gtid-set: ", item.first),
                    synced,
                    unsynced,
                }
            })
            .collect()
    }

    /// The active DDL of `target` is synced on this source: what to do with it. Waits for the
    /// master in a cluster (until `stop`).
    pub async fn decide(&mut self, target: &str, stop: &StopSignal) -> Result<Decision, DmError> {
        let (schema, table) = self.targets.get(target).cloned().ok_or_else(|| {
            DmError::new(
                &codes::SYNC_SHARD_COORDINATION,
                format!("no sharding group for {target}"),
            )
        })?;
        let item: DdlItem = self
            .groups
            .get(target)
            .and_then(|g| g.active_item().cloned())
            .ok_or_else(|| {
                DmError::new(
                    &codes::SYNC_SHARD_COORDINATION,
                    format!("no pending DDL for {target}"),
                )
            })?;
        let client = match &self.coordinator {
            Coordinator::Local => {
                return Ok(Decision {
                    exec: true,
                    op: None,
                });
            }
            Coordinator::Etcd(c) => Client::clone(c),
        };
        let info = PessimisticInfo {
            task: self.task.clone(),
            source: self.source.clone(),
            schema,
            table,
            ddls: item.ddls.clone(),
        };
        self.blocking = info.ddls.clone();
        let id = info.lock_id();
        let fut = wait_for_op(client, info);
        let op = tokio::select! {
            op = fut => op?,
            () = stop.wait() => return Err(stopping()),
        };
        self.lock_id = op.id.clone();
        info!(task = %self.task, source = %self.source, lock = %id, exec = op.exec, "shard DDL operation received");
        Ok(Decision {
            exec: op.exec,
            op: Some(op),
        })
    }

    /// Tells the master this source did its part (cluster mode); clears the status.
    pub async fn done(&mut self, decision: &Decision) -> Result<(), DmError> {
        self.blocking.clear();
        self.lock_id.clear();
        let (Some(op), Coordinator::Etcd(client)) = (&decision.op, &self.coordinator) else {
            return Ok(());
        };
        let mut client = client.clone();
        match store::done_pessimistic(&mut client, op).await? {
            DoneOutcome::Done => {}
            DoneOutcome::InfoGone => {
                info!(task = %self.task, source = %self.source, lock = %op.id, "shard DDL info already gone (done before, or unlocked)")
            }
        }
        Ok(())
    }

    /// A replayed lock a previous run finished: make sure the master heard (its done may have
    /// been lost with the crash).
    pub async fn ensure_done(&mut self, target: &str) -> Result<(), DmError> {
        let Coordinator::Etcd(client) = &self.coordinator else {
            return Ok(());
        };
        let mut client = client.clone();
        let Some((schema, table)) = self.targets.get(target).cloned() else {
            return Ok(());
        };
        let id = lock_id(&self.task, &schema, &table);
        if let (_, Some((op, _))) =
            store::get_pessimistic_op(&mut client, &self.task, &self.source).await?
            && op.id == id
            && !op.done
        {
            warn!(task = %self.task, source = %self.source, lock = %id, "replayed a done shard DDL whose done was not sent; sending it");
            store::done_pessimistic(&mut client, &op).await?;
        }
        Ok(())
    }
}

/// Puts `info` and polls for its Operation: an undone Operation of this lock already there (a
/// restart while waiting) is used at once; a done one of an earlier lock is waited out first.
async fn wait_for_op(mut client: Client, info: PessimisticInfo) -> Result<PessimisticOp, DmError> {
    let id = info.lock_id();
    loop {
        match store::get_pessimistic_op(&mut client, &info.task, &info.source).await? {
            (_, Some((op, _))) if op.id == id && !op.done => return Ok(op),
            (_, Some((op, _))) if op.done => {
                // The master deletes done Operations once its lock resolved.
                tokio::time::sleep(OP_POLL).await;
                continue;
            }
            _ => {}
        }
        match store::put_pessimistic_info(&mut client, &info).await? {
            None => break,
            Some(op) if op.id == id && !op.done => return Ok(op),
            Some(_) => tokio::time::sleep(OP_POLL).await,
        }
    }
    crate::failpoint::crash("shard-after-info");
    info!(task = %info.task, source = %info.source, lock = %id, ddls = ?info.ddls, "shard DDL info put; waiting for the lock");
    store::wait_pessimistic_op(&mut client, &info.task, &info.source, &id, OP_POLL).await
}

/// `` `schema`.`table` `` back into its parts.
pub(crate) fn split_table_id(id: &str) -> Option<(String, String)> {
    let inner = id.strip_prefix('`')?.strip_suffix('`')?;
    let (s, t) = inner.split_once("`.`")?;
    Some((s.to_string(), t.to_string()))
}

/// The upstream's base tables the block-allow list lets through.
pub(crate) async fn upstream_tables(
    conn: &mut Conn,
    ba: &BaFilter,
) -> Result<Vec<(String, String)>, DmError> {
    let rows: Vec<(String, String)> = conn
        .query(
            "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_SCHEMA, TABLE_NAME",
        )
        .await
        .map_err(|e| crate::db::error(&codes::DB_QUERY_FAILED, "listing the upstream's tables for sharding groups", e))?;
    Ok(rows
        .into_iter()
        .filter(|(s, t)| ba.allows(s, Some(t)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_ids_split_back() {
        assert_eq!(
            split_table_id("`db`.`t_1`"),
            Some(("db".to_string(), "t_1".to_string()))
        );
        assert_eq!(split_table_id("db.t"), None);
    }

    #[tokio::test]
    async fn stop_signal_wakes_waiters() {
        use std::sync::Arc;
        let s = Arc::new(StopSignal::default());
        let w = {
            let s = s.clone();
            tokio::spawn(async move { s.wait().await })
        };
        s.stop();
        w.await.unwrap();
        // Already set: returns at once.
        s.wait().await;
    }
}
