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
//!
//! Everything here is plain data: the SyncerActor's run routes its changes with a
//! [`Dispatch`] (one [`Causality`] map per bucket of target tables) on its own thread and
//! executes the resulting [`Step`]s with its DML worker actors.

use std::collections::hash_map::Entry;

use crate::binlog::value::Value;
use crate::sql::dml::{ChangeKeys, KeyMap, RowChange};

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
    map: KeyMap<u32>,
}

impl Causality {
    /// A map for `workers` workers (at least 1).
    pub fn new(workers: usize) -> Self {
        Self {
            workers: workers.max(1),
            map: KeyMap::default(),
        }
    }

    /// Assigns a change with `keys` (at least one). On `Worker(i)` every key is bound to `i`.
    pub fn assign(&mut self, keys: &[u64]) -> Assign {
        let mut bound = None;
        for k in keys {
            if let Some(&w) = self.map.get(k) {
                let w = w as usize;
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
                v.insert(w as u32);
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

/// Computes the conflict keys of row changes (reusing a scratch buffer).
#[derive(Debug, Default)]
pub struct ConflictKeys {
    scratch: String,
}

impl ConflictKeys {
    /// Conflict keys of a change: one per unique key (PK or UK without NULLs) of each
    /// image; when no key applies, one over all columns. Text is case-folded and
    /// right-trimmed, as `_ci` PAD SPACE collations compare it (folding only merges keys,
    /// which can only add ordering).
    pub fn keys(&mut self, ch: &RowChange, out: &mut Vec<u64>) {
        out.clear();
        let t = &ch.table;
        let handle = t.handle.as_deref().into_iter();
        let key_sets = handle.chain(t.unique_keys.iter().map(Vec::as_slice));
        let no_keys = t.handle.is_none() && t.unique_keys.is_empty();
        for image in [ch.before.as_deref(), ch.after.as_deref()]
            .into_iter()
            .flatten()
        {
            let before = out.len();
            for (ki, cols) in key_sets.clone().enumerate() {
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
            if out.len() == before && no_keys {
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

/// What the syncer does with a bucket's routed changes, in order.
#[derive(Debug)]
pub enum Step {
    /// Queue these changes at the bucket's workers (indexed like [`Dispatch::workers`]).
    Send(Vec<Vec<RowChange>>),
    /// Wait until every worker of the bucket has committed all it was sent (a conflict, or
    /// a full key map: the map is reset after it).
    Drain,
}

/// The routing of every bucket: which worker each change goes to.
#[derive(Debug)]
pub struct Dispatch {
    buckets: Vec<(Causality, Vec<usize>)>,
    keys: ConflictKeys,
    scratch: Vec<u64>,
}

impl Dispatch {
    /// Buckets with their workers' global indexes (the order within a bucket is part of the
    /// deterministic assignment).
    pub fn new(buckets: Vec<Vec<usize>>) -> Self {
        Self {
            buckets: buckets
                .into_iter()
                .map(|w| (Causality::new(w.len()), w))
                .collect(),
            keys: ConflictKeys::default(),
            scratch: Vec::new(),
        }
    }

    /// The global worker indexes of `bucket`.
    pub fn workers(&self, bucket: usize) -> &[usize] {
        &self.buckets[bucket].1
    }

    /// Routes `changes` (in binlog order) of `bucket` into `steps`.
    pub fn route(&mut self, bucket: usize, changes: Vec<RowChange>, steps: &mut Vec<Step>) {
        let (map, workers) = &mut self.buckets[bucket];
        let n = workers.len();
        let mut current: Vec<Vec<RowChange>> = vec![Vec::new(); n];
        for mut ch in changes {
            if map.is_full() {
                steps.push(Step::Send(std::mem::replace(
                    &mut current,
                    vec![Vec::new(); n],
                )));
                steps.push(Step::Drain);
                map.reset();
            }
            self.keys.keys(&ch, &mut self.scratch);
            ch.keys = ChangeKeys::new(&self.scratch);
            let w = match map.assign(&self.scratch) {
                Assign::Worker(w) => w,
                Assign::Conflict => {
                    steps.push(Step::Send(std::mem::replace(
                        &mut current,
                        vec![Vec::new(); n],
                    )));
                    steps.push(Step::Drain);
                    map.reset();
                    match map.assign(&self.scratch) {
                        Assign::Worker(w) => w,
                        Assign::Conflict => unreachable!("an empty map has no conflicts"),
                    }
                }
            };
            current[w].push(ch);
        }
        steps.push(Step::Send(current));
    }

    /// Forgets every binding (after all workers were drained).
    pub fn reset(&mut self) {
        for (map, _) in &mut self.buckets {
            map.reset();
        }
    }
}
