//! Conflict detection: which DML worker a row change goes to.
//!
//! Each change carries conflict keys (a hash of target table + one unique index's values, for
//! its before and after images; tables without a usable key hash all columns). Changes that
//! share a key must apply in order, so they go to the same worker; unrelated changes spread
//! over the workers. A change whose keys are already bound to two different workers is a
//! conflict: the caller drains every worker, [`Causality::reset`]s, and assigns again.
//!
//! Assignment is a pure function of the change sequence since the last reset (no timing, no
//! random seed): the checkpoint's exactly-once replay depends on a resumed syncer sending each
//! change to the worker it went to before the crash. Resets therefore happen only at points
//! the stream determines: checkpoints, DDL, conflicts, and when the key map reaches
//! [`MAX_KEYS`] (which bounds its memory).

use std::collections::HashMap;
use std::collections::hash_map::Entry;

/// Keys held before a deterministic reset (about 40 MB of map).
pub const MAX_KEYS: usize = 1 << 20;

/// FNV-1a, 64 bit: stable across processes and versions, unlike the std hasher.
#[derive(Debug, Clone, Copy)]
pub struct KeyHasher(u64);

impl Default for KeyHasher {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl KeyHasher {
    /// Feeds bytes.
    pub fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// Feeds a separator so that ("ab","c") and ("a","bc") differ.
    pub fn sep(&mut self) {
        self.write(&[0xff, 0x00]);
    }

    /// The hash.
    pub fn finish(self) -> u64 {
        self.0
    }
}

/// Where a change goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assign {
    Worker(usize),
    /// Keys are bound to different workers: drain all, reset, assign again.
    Conflict,
}

/// The key → worker map of one causality bucket.
#[derive(Debug)]
pub struct Causality {
    workers: usize,
    map: HashMap<u64, usize>,
}

impl Causality {
    /// A map for `workers` workers (at least 1).
    pub fn new(workers: usize) -> Self {
        Self {
            workers: workers.max(1),
            map: HashMap::new(),
        }
    }

    /// Assigns a change with `keys` (at least one). On `Worker(i)` every key is bound to `i`.
    pub fn assign(&mut self, keys: &[u64]) -> Assign {
        let mut bound = None;
        for k in keys {
            if let Some(&w) = self.map.get(k) {
                match bound {
                    None => bound = Some(w),
                    Some(b) if b != w => return Assign::Conflict,
                    Some(_) => {}
                }
            }
        }
        let w = bound
            .unwrap_or_else(|| (keys.first().copied().unwrap_or(0) % self.workers as u64) as usize);
        for k in keys {
            if let Entry::Vacant(v) = self.map.entry(*k) {
                v.insert(w);
            }
        }
        Assign::Worker(w)
    }

    /// Forgets every binding (only after all workers are drained).
    pub fn reset(&mut self) {
        self.map.clear();
    }

    /// True when the map should be reset before more changes (deterministic bound).
    pub fn is_full(&self) -> bool {
        self.map.len() >= MAX_KEYS
    }

    /// Bound keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// No keys bound.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> u64 {
        let mut k = KeyHasher::default();
        k.write(s.as_bytes());
        k.finish()
    }

    #[test]
    fn same_key_same_worker_and_conflicts() {
        let mut c = Causality::new(4);
        let (a, b) = (h("t.id=1"), h("t.id=2"));
        let Assign::Worker(wa) = c.assign(&[a]) else {
            panic!()
        };
        assert_eq!(c.assign(&[a]), Assign::Worker(wa));
        // An update moving row 1 to key 2 binds key 2 to row 1's worker.
        assert_eq!(c.assign(&[a, b]), Assign::Worker(wa));
        assert_eq!(c.assign(&[b]), Assign::Worker(wa));
        // Find a key that lands elsewhere, then join it with `a`: conflict.
        let other = (0..100)
            .map(|i| h(&format!("t.id={i}x")))
            .find(|k| (k % 4) as usize != wa)
            .unwrap();
        let Assign::Worker(wo) = c.assign(&[other]) else {
            panic!()
        };
        assert_ne!(wo, wa);
        assert_eq!(c.assign(&[a, other]), Assign::Conflict);
        c.reset();
        assert!(matches!(c.assign(&[a, other]), Assign::Worker(_)));
    }

    #[test]
    fn assignment_is_deterministic() {
        let keys: Vec<u64> = (0..1000).map(|i| h(&format!("k{}", i % 37))).collect();
        let run = || {
            let mut c = Causality::new(7);
            keys.iter().map(|k| c.assign(&[*k])).collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
        assert_eq!(h("abc"), 0xe71fa2190541574b, "FNV-1a is stable");
    }
}

pub use actor::CausalityActor;

mod actor {
    //! The actor shell around [`Causality`]: one per bucket of target tables.

    use actix::prelude::*;
    use futures_util::future::try_join_all;
    use tracing::info;

    use super::{Assign, Causality, KeyHasher};
    use crate::binlog::value::Value;
    use crate::error::DmError;
    use crate::messages::syncer::{DrainWorker, ExecuteBatch, FlushBarrier, RowBatch};
    use crate::sql::dml::RowChange;

    use super::super::dml_worker::DmlWorkerActor;

    /// Routes row changes of its bucket's tables to its DML workers.
    pub struct CausalityActor {
        bucket: usize,
        map: Causality,
        workers: Vec<Addr<DmlWorkerActor>>,
        scratch: String,
    }

    /// One step of a batch's plan: send these per-worker changes, or drain everyone.
    enum Step {
        Send(Vec<Vec<RowChange>>),
        Drain,
    }

    impl CausalityActor {
        /// Bucket `bucket` with its own `workers` (their order is their index).
        pub fn new(bucket: usize, workers: Vec<Addr<DmlWorkerActor>>) -> Self {
            let n = workers.len();
            Self {
                bucket,
                map: Causality::new(n),
                workers,
                scratch: String::new(),
            }
        }

        /// Conflict keys of a change: one per unique key (PK or UK without NULLs) of each
        /// image; when no key applies, one over all columns. Text is case-folded and
        /// right-trimmed, as `_ci` PAD SPACE collations compare it (folding only merges keys,
        /// which can only add ordering).
        fn keys(&mut self, ch: &RowChange, out: &mut Vec<u64>) {
            out.clear();
            let t = &ch.table;
            let mut key_sets: Vec<&[usize]> = Vec::new();
            if let Some(h) = &t.handle {
                key_sets.push(h);
            }
            key_sets.extend(t.unique_keys.iter().map(Vec::as_slice));
            for image in [ch.before.as_deref(), ch.after.as_deref()]
                .into_iter()
                .flatten()
            {
                let before = out.len();
                for (ki, cols) in key_sets.iter().enumerate() {
                    if cols
                        .iter()
                        .any(|&i| matches!(image.get(i), Some(Value::Null) | None))
                    {
                        continue;
                    }
                    out.push(self.hash(
                        t.quoted.as_bytes(),
                        ki,
                        cols.iter().map(|&i| (i, &image[i])),
                        ch,
                    ));
                }
                if out.len() == before && key_sets.is_empty() {
                    let all = image.iter().enumerate();
                    out.push(self.hash(t.quoted.as_bytes(), usize::MAX, all, ch));
                }
            }
            if out.is_empty() {
                out.push(self.hash(t.quoted.as_bytes(), usize::MAX - 1, std::iter::empty(), ch));
            }
        }

        fn hash<'a>(
            &mut self,
            table: &[u8],
            key_index: usize,
            values: impl Iterator<Item = (usize, &'a Value)>,
            ch: &RowChange,
        ) -> u64 {
            let mut h = KeyHasher::default();
            h.write(table);
            h.sep();
            h.write(&key_index.to_le_bytes());
            for (i, v) in values {
                h.sep();
                self.scratch.clear();
                let col = &ch.table.columns[i];
                v.write_sql_literal(col, &mut self.scratch);
                if !col.binary && matches!(v, Value::Bytes(_)) {
                    let folded = self.scratch.trim_end_matches([' ', '\'']).to_lowercase();
                    h.write(folded.as_bytes());
                } else {
                    h.write(self.scratch.as_bytes());
                }
            }
            h.finish()
        }

        fn plan(&mut self, changes: Vec<RowChange>) -> Vec<Step> {
            let n = self.workers.len();
            let mut steps = Vec::new();
            let mut current: Vec<Vec<RowChange>> = vec![Vec::new(); n];
            let mut keys = Vec::new();
            for ch in changes {
                if self.map.is_full() {
                    steps.push(Step::Send(std::mem::replace(
                        &mut current,
                        vec![Vec::new(); n],
                    )));
                    steps.push(Step::Drain);
                    self.map.reset();
                }
                self.keys(&ch, &mut keys);
                let w = match self.map.assign(&keys) {
                    Assign::Worker(w) => w,
                    Assign::Conflict => {
                        steps.push(Step::Send(std::mem::replace(
                            &mut current,
                            vec![Vec::new(); n],
                        )));
                        steps.push(Step::Drain);
                        self.map.reset();
                        match self.map.assign(&keys) {
                            Assign::Worker(w) => w,
                            Assign::Conflict => unreachable!("an empty map has no conflicts"),
                        }
                    }
                };
                current[w].push(ch);
            }
            steps.push(Step::Send(current));
            steps
        }
    }

    async fn drain_all(workers: &[Addr<DmlWorkerActor>]) -> Result<(), DmError> {
        let replies = try_join_all(workers.iter().map(|w| w.send(DrainWorker)))
            .await
            .map_err(|_| DmError::bare(&crate::error::codes::ACTOR_MAILBOX_CLOSED))?;
        replies.into_iter().collect()
    }

    impl Actor for CausalityActor {
        type Context = Context<Self>;

        fn started(&mut self, _: &mut Context<Self>) {
            info!(
                actor = "Causality",
                parent = "Syncer",
                bucket = self.bucket,
                workers = self.workers.len(),
                "actor started"
            );
        }

        fn stopped(&mut self, _: &mut Context<Self>) {
            info!(
                actor = "Causality",
                parent = "Syncer",
                bucket = self.bucket,
                reason = "stopped",
                "actor stopped"
            );
        }
    }

    impl Handler<RowBatch> for CausalityActor {
        type Result = AtomicResponse<Self, Result<(), DmError>>;

        fn handle(&mut self, msg: RowBatch, _: &mut Context<Self>) -> Self::Result {
            let steps = self.plan(msg.changes);
            let workers = self.workers.clone();
            AtomicResponse::new(Box::pin(
                async move {
                    for step in steps {
                        match step {
                            Step::Drain => drain_all(&workers).await?,
                            Step::Send(per_worker) => {
                                for (w, changes) in per_worker.into_iter().enumerate() {
                                    if changes.is_empty() {
                                        continue;
                                    }
                                    workers[w].send(ExecuteBatch { changes }).await.map_err(
                                        |_| {
                                            DmError::bare(
                                                &crate::error::codes::ACTOR_MAILBOX_CLOSED,
                                            )
                                        },
                                    )??;
                                }
                            }
                        }
                    }
                    Ok(())
                }
                .into_actor(self),
            ))
        }
    }

    impl Handler<FlushBarrier> for CausalityActor {
        type Result = AtomicResponse<Self, Result<(), DmError>>;

        fn handle(&mut self, _: FlushBarrier, _: &mut Context<Self>) -> Self::Result {
            self.map.reset();
            let workers = self.workers.clone();
            AtomicResponse::new(Box::pin(
                async move { drain_all(&workers).await }.into_actor(self),
            ))
        }
    }
}
