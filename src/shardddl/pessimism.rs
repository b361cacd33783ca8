//! Pessimistic shard DDL locks on the master (DM's `pessimism.Lock` / `LockKeeper`), plain
//! logic: no I/O, no actix.
//!
//! A lock is one target table of one task: its DDLs, its **owner** (the first source to
//! report), and per source of the task whether it reported (`ready`) and whether it executed
//! or skipped the DDLs (`done`). Every source with a subtask of the task takes part; each must
//! report the same DDL set (else 38016, the lock unchanged). Once all are ready the owner
//! executes, then the others skip; when all are done the lock is resolved.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::group::same_ddls;
use crate::error::{DmError, codes};
use crate::store::etcd::shardddl::{PessimisticInfo, PessimisticOp};

/// One lock.
#[derive(Debug, Clone, PartialEq)]
pub struct Lock {
    pub id: String,
    pub task: String,
    pub schema: String,
    pub table: String,
    pub owner: String,
    pub ddls: Vec<String>,
    /// Source → reported the DDLs.
    pub ready: BTreeMap<String, bool>,
    /// Source → executed or skipped them.
    pub done: BTreeMap<String, bool>,
    /// Unix seconds of the first report.
    pub since: u64,
    /// Source → unix seconds of its report.
    pub reported_at: BTreeMap<String, u64>,
    /// The last report whose DDLs differ from the lock's: (source, its DDLs, the error).
    pub conflict: Option<(String, Vec<String>, String)>,
}

impl Lock {
    fn new(info: &PessimisticInfo, sources: &[String], now: u64) -> Self {
        let mut l = Self {
            id: info.lock_id(),
            task: info.task.clone(),
            schema: info.schema.clone(),
            table: info.table.clone(),
            owner: info.source.clone(),
            ddls: info.ddls.clone(),
            ready: BTreeMap::new(),
            done: BTreeMap::new(),
            since: now,
            reported_at: BTreeMap::new(),
            conflict: None,
        };
        l.add_sources(sources);
        l
    }

    fn add_sources(&mut self, sources: &[String]) {
        for s in sources {
            self.ready.entry(s.clone()).or_insert(false);
            self.done.entry(s.clone()).or_insert(false);
        }
    }

    /// Every source reported.
    pub fn synced(&self) -> bool {
        self.ready.values().all(|r| *r)
    }

    /// Every source executed or skipped.
    pub fn resolved(&self) -> bool {
        self.done.values().all(|d| *d)
    }

    /// Sources that reported and those that did not, each sorted.
    pub fn split(&self) -> (Vec<String>, Vec<String>) {
        let (a, b): (Vec<_>, Vec<_>) = self.ready.iter().partition(|(_, r)| **r);
        (
            a.into_iter().map(|(s, _)| s.clone()).collect(),
            b.into_iter().map(|(s, _)| s.clone()).collect(),
        )
    }

    /// Marks `source` done.
    pub fn mark_done(&mut self, source: &str) {
        if let Some(d) = self.done.get_mut(source) {
            *d = true;
        }
    }

    /// Treats every source as ready (recovery from Operations, manual unlock).
    pub fn force_synced(&mut self) {
        for r in self.ready.values_mut() {
            *r = true;
        }
    }

    /// The Operation for `source`: exec on the owner, skip on the others.
    pub fn op_for(&self, source: &str) -> PessimisticOp {
        PessimisticOp {
            id: self.id.clone(),
            task: self.task.clone(),
            source: source.to_string(),
            ddls: self.ddls.clone(),
            exec: source == self.owner,
            done: false,
        }
    }

    /// The sources that are ready but not done, other than the owner.
    pub fn waiting_non_owners(&self) -> Vec<String> {
        self.ready
            .iter()
            .filter(|(s, r)| {
                **r && *s != &self.owner && !self.done.get(*s).copied().unwrap_or(false)
            })
            .map(|(s, _)| s.clone())
            .collect()
    }
}

/// What the keeper decided for a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synced {
    pub lock: String,
    pub synced: bool,
    pub remain: usize,
}

/// Every lock of this master's term.
#[derive(Debug, Clone, Default)]
pub struct LockKeeper {
    locks: BTreeMap<String, Lock>,
}

/// DM's `pb.DDLLock` with what the lock waits for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LockView {
    #[serde(rename = "ID")]
    pub id: String,
    pub task: String,
    pub mode: String,
    pub owner: String,
    #[serde(rename = "DDLs")]
    pub ddls: Vec<String>,
    pub synced: Vec<String>,
    pub unsynced: Vec<String>,
    /// dm-rs: what the lock waits for, since when, and what would resolve it.
    pub waiting: Waiting,
}

/// What a lock waits for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default)]
pub struct Waiting {
    /// `sources` (reach the DDLs), `owner` (execute them), `others` (skip them), `conflict`.
    pub state: String,
    pub detail: String,
    /// Unix seconds since the lock exists.
    pub since: u64,
    pub seconds: u64,
    /// The command that resolves the lock by hand, when waiting will not.
    pub resolve: String,
    /// The coded error that holds the lock (differing DDLs), empty otherwise.
    pub error: String,
}

impl LockKeeper {
    /// A source reported `info` for a task whose sources are `sources`.
    pub fn try_sync(
        &mut self,
        info: &PessimisticInfo,
        sources: &[String],
        now: u64,
    ) -> Result<Synced, DmError> {
        let id = info.lock_id();
        let lock = self
            .locks
            .entry(id.clone())
            .or_insert_with(|| Lock::new(info, sources, now));
        lock.add_sources(sources);
        lock.add_sources(std::slice::from_ref(&info.source));
        if !same_ddls(&info.ddls, &lock.ddls) {
            let e = DmError::new(
                &codes::MASTER_SHARDING_DDL_DIFF,
                format!(
                    "sharding ddls in ddl lock {id} is different with {:?}: the lock has {:?} (owner {}), source {} reported {:?}",
                    info.ddls, lock.ddls, lock.owner, info.source, info.ddls
                ),
            );
            lock.conflict = Some((info.source.clone(), info.ddls.clone(), e.message.clone()));
            return Err(e);
        }
        if lock
            .conflict
            .as_ref()
            .is_some_and(|(s, _, _)| *s == info.source)
        {
            lock.conflict = None;
        }
        lock.ready.insert(info.source.clone(), true);
        lock.reported_at.entry(info.source.clone()).or_insert(now);
        let remain = lock.ready.values().filter(|r| !**r).count();
        Ok(Synced {
            lock: id,
            synced: remain == 0,
            remain,
        })
    }

    pub fn get(&self, id: &str) -> Option<&Lock> {
        self.locks.get(id)
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut Lock> {
        self.locks.get_mut(id)
    }

    pub fn remove(&mut self, id: &str) -> Option<Lock> {
        self.locks.remove(id)
    }

    pub fn clear(&mut self) {
        self.locks.clear();
    }

    /// Locks of `task`.
    pub fn of_task(&self, task: &str) -> Vec<String> {
        self.locks
            .values()
            .filter(|l| l.task == task)
            .map(|l| l.id.clone())
            .collect()
    }

    pub fn ids(&self) -> Vec<String> {
        self.locks.keys().cloned().collect()
    }

    /// Rebuilds the locks from etcd's Infos and Operations (a new leader): Infos in source
    /// order (the smallest source owns a lock rebuilt without its first report), then each
    /// Operation marks its lock synced, its source done, and an `exec` one names the owner.
    pub fn rebuild(
        &mut self,
        mut infos: Vec<PessimisticInfo>,
        ops: &[PessimisticOp],
        sources: &BTreeMap<String, Vec<String>>,
        now: u64,
    ) -> Vec<DmError> {
        self.locks.clear();
        let mut errors = Vec::new();
        infos.sort_by(|a, b| (&a.task, &a.source).cmp(&(&b.task, &b.source)));
        for info in &infos {
            let srcs = sources.get(&info.task).cloned().unwrap_or_default();
            if let Err(e) = self.try_sync(info, &srcs, now) {
                errors.push(e);
            }
        }
        for op in ops {
            let Some(lock) = self.locks.get_mut(&op.id) else {
                continue;
            };
            lock.force_synced();
            if op.done {
                lock.mark_done(&op.source);
            }
            if op.exec {
                lock.owner = op.source.clone();
            }
        }
        errors
    }

    /// The locks of `task` (all when empty) involving any of `sources` (all when empty).
    pub fn show(&self, task: &str, sources: &[String], now: u64) -> Vec<LockView> {
        self.locks
            .values()
            .filter(|l| task.is_empty() || l.task == task)
            .filter(|l| sources.is_empty() || sources.iter().any(|s| l.ready.contains_key(s)))
            .map(|l| view(l, now))
            .collect()
    }
}

fn view(l: &Lock, now: u64) -> LockView {
    let (synced, unsynced) = l.split();
    let unlock = format!("dmctl shard-ddl-lock unlock '{}'", l.id);
    let waiting = if let Some((source, ddls, error)) = &l.conflict {
        Waiting {
            error: format!("[code={}] {error}", codes::MASTER_SHARDING_DDL_DIFF.code),
            state: "conflict".into(),
            detail: format!(
                "source {source} reported DDLs {ddls:?} that differ from the lock's {:?} (owner {}); it waits until the DDLs agree",
                l.ddls, l.owner
            ),
            since: l.since,
            seconds: now.saturating_sub(l.since),
            resolve: format!(
                "make the shards' DDLs agree (the lock waits), or `{unlock} --force-remove`: the owner {} executes the lock's DDLs and source {source} skips its own",
                l.owner
            ),
        }
    } else if !unsynced.is_empty() {
        Waiting {
            state: "sources".into(),
            error: String::new(),
            detail: format!(
                "waiting for sources {unsynced:?} to reach the DDLs (see `dmctl query-status {}` for the tables of each source still before them)",
                l.task
            ),
            since: l.since,
            seconds: now.saturating_sub(l.since),
            resolve: format!(
                "nothing while those sources replicate; if a source will never run the DDLs: `{unlock}` (the owner executes, the synced sources skip)"
            ),
        }
    } else if !l.done.get(&l.owner).copied().unwrap_or(false) {
        Waiting {
            state: "owner".into(),
            error: String::new(),
            detail: format!(
                "waiting for the owner {} to execute the DDLs downstream",
                l.owner
            ),
            since: l.since,
            seconds: now.saturating_sub(l.since),
            resolve: format!(
                "nothing while the owner's worker runs (it retries after a restart); if its subtask is gone: `{unlock} --owner <other source>`"
            ),
        }
    } else {
        Waiting {
            state: "others".into(),
            error: String::new(),
            detail: format!(
                "the owner executed the DDLs; waiting for {:?} to skip them",
                l.waiting_non_owners()
            ),
            since: l.since,
            seconds: now.saturating_sub(l.since),
            resolve: "nothing while those workers run".into(),
        }
    };
    LockView {
        id: l.id.clone(),
        task: l.task.clone(),
        mode: "pessimistic".into(),
        owner: l.owner.clone(),
        ddls: l.ddls.clone(),
        synced,
        unsynced,
        waiting,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(source: &str, ddl: &str) -> PessimisticInfo {
        PessimisticInfo {
            task: "test".into(),
            source: source.into(),
            schema: "db".into(),
            table: "tb".into(),
            ddls: vec![ddl.into()],
        }
    }

    fn sources() -> Vec<String> {
        vec!["s1".into(), "s2".into()]
    }

    #[test]
    fn the_first_reporter_owns_and_all_must_report() {
        let mut k = LockKeeper::default();
        let r = k.try_sync(&info("s2", "ADD c"), &sources(), 10).unwrap();
        assert_eq!(r.remain, 1);
        assert!(!r.synced);
        let l = k.get(&r.lock).unwrap();
        assert_eq!(l.owner, "s2");
        assert_eq!(l.split(), (vec!["s2".into()], vec!["s1".into()]));
        let v = &k.show("", &[], 25)[0];
        assert_eq!(v.waiting.state, "sources");
        assert_eq!(v.waiting.seconds, 15);
        let r = k.try_sync(&info("s1", "ADD c"), &sources(), 11).unwrap();
        assert!(r.synced);
        let l = k.get(&r.lock).unwrap();
        assert!(l.op_for("s2").exec && !l.op_for("s1").exec);
        assert_eq!(k.show("", &[], 25)[0].waiting.state, "owner");
        k.get_mut(&r.lock).unwrap().mark_done("s2");
        assert_eq!(k.get(&r.lock).unwrap().waiting_non_owners(), vec!["s1"]);
        k.get_mut(&r.lock).unwrap().mark_done("s1");
        assert!(k.get(&r.lock).unwrap().resolved());
    }

    #[test]
    fn different_ddls_are_38016_and_change_nothing() {
        let mut k = LockKeeper::default();
        k.try_sync(&info("s1", "ADD c INT DEFAULT 0"), &sources(), 1)
            .unwrap();
        let e = k
            .try_sync(&info("s2", "ADD c INT DEFAULT -1"), &sources(), 2)
            .unwrap_err();
        assert_eq!(e.code, 38016);
        assert!(e.message.contains("DEFAULT 0") && e.message.contains("DEFAULT -1"));
        let v = &k.show("test", &[], 3)[0];
        assert_eq!(v.waiting.state, "conflict");
        assert!(v.waiting.resolve.contains("--force-remove"));
        assert_eq!(v.unsynced, vec!["s2".to_string()]);
    }

    #[test]
    fn rebuild_from_infos_and_ops() {
        let mut k = LockKeeper::default();
        let mut srcs = BTreeMap::new();
        srcs.insert("test".to_string(), sources());
        // Owner s2 executed (done) and s1's info is gone (it skipped and deleted it)...
        let l = Lock::new(&info("s2", "ADD c"), &sources(), 0);
        let mut exec = l.op_for("s2");
        exec.done = true;
        let skip = l.op_for("s1");
        // ... while s2's info is still there? No: done deletes it. Only s1 is left waiting.
        let errors = k.rebuild(vec![info("s1", "ADD c")], &[exec, skip], &srcs, 5);
        assert!(errors.is_empty());
        let l = k.get("test-`db`.`tb`").unwrap();
        assert_eq!(l.owner, "s2");
        assert!(l.synced() && !l.resolved());
        assert_eq!(l.waiting_non_owners(), vec!["s1"]);
    }
}
