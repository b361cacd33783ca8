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
//! Everything here is plain data, unit-tested without a runtime: each [`Bucket`] (one
//! [`Causality`] map over the target tables hashed to it) turns routed changes into [`Step`]s,
//! which its thin actor shell, [`super::causality_actor::CausalityActor`], executes with the
//! bucket's DML workers.

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
    /// Keys held before a reset ([`MAX_KEYS`]; smaller in tests).
    max_keys: usize,
}

impl Causality {
    /// A map for `workers` workers (at least 1).
    pub fn new(workers: usize) -> Self {
        Self::with_max_keys(workers, MAX_KEYS)
    }

    /// A map that resets after `max_keys` keys (tests use a small bound).
    pub fn with_max_keys(workers: usize, max_keys: usize) -> Self {
        Self {
            workers: workers.max(1),
            map: KeyMap::default(),
            max_keys: max_keys.max(1),
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
        self.map.len() >= self.max_keys
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

/// What a bucket does with its routed changes, in order.
#[derive(Debug)]
pub enum Step {
    /// Queue these changes at the bucket's workers (indexed by position in the bucket).
    Send(Vec<Vec<RowChange>>),
    /// Wait until every worker of the bucket has committed all it was sent (a conflict, or
    /// a full key map: the map is reset after it).
    Drain,
}

/// One causality bucket: which of its workers each change goes to.
#[derive(Debug)]
pub struct Bucket {
    map: Causality,
    workers: usize,
    keys: ConflictKeys,
    scratch: Vec<u64>,
}

impl Bucket {
    /// A bucket of `workers` workers (at least 1); the order of the workers is part of the
    /// deterministic assignment.
    pub fn new(workers: usize) -> Self {
        Self::with_max_keys(workers, MAX_KEYS)
    }

    /// A bucket whose key map resets after `max_keys` keys (tests use a small bound).
    pub fn with_max_keys(workers: usize, max_keys: usize) -> Self {
        Self {
            map: Causality::with_max_keys(workers, max_keys),
            workers: workers.max(1),
            keys: ConflictKeys::default(),
            scratch: Vec::new(),
        }
    }

    /// The bucket's worker count.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Routes `changes` (in binlog order) into `steps`: sends per worker, with a drain (and
    /// a reset of the key map) before a change that conflicts and whenever the map is full.
    pub fn route(&mut self, changes: Vec<RowChange>, steps: &mut Vec<Step>) {
        let n = self.workers;
        let mut current: Vec<Vec<RowChange>> = vec![Vec::new(); n];
        for mut ch in changes {
            if self.map.is_full() {
                steps.push(Step::Send(std::mem::replace(
                    &mut current,
                    vec![Vec::new(); n],
                )));
                steps.push(Step::Drain);
                self.map.reset();
            }
            self.keys.keys(&ch, &mut self.scratch);
            ch.keys = ChangeKeys::new(&self.scratch);
            let w = match self.map.assign(&self.scratch) {
                Assign::Worker(w) => w,
                Assign::Conflict => {
                    steps.push(Step::Send(std::mem::replace(
                        &mut current,
                        vec![Vec::new(); n],
                    )));
                    steps.push(Step::Drain);
                    self.map.reset();
                    match self.map.assign(&self.scratch) {
                        Assign::Worker(w) => w,
                        Assign::Conflict => unreachable!("an empty map has no conflicts"),
                    }
                }
            };
            current[w].push(ch);
        }
        steps.push(Step::Send(current));
    }

    /// Forgets every binding (after all the bucket's workers were drained).
    pub fn reset(&mut self) {
        self.map.reset();
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

    use std::sync::Arc;

    use crate::binlog::value::{ColumnInfo, SqlType};
    use crate::sql::dml::{DmlKind, TargetTable};

    /// `t (id INT, u VARCHAR, v INT)` with primary key `id` and unique key `u` when `keyed`,
    /// no key at all otherwise.
    fn table(keyed: bool) -> Arc<TargetTable> {
        let cols = vec![
            ColumnInfo::new("id", SqlType::Int),
            ColumnInfo::new("u", SqlType::VarChar),
            ColumnInfo::new("v", SqlType::Int),
        ];
        let (handle, uniques) = if keyed {
            (Some(vec![0]), vec![vec![1]])
        } else {
            (None, Vec::new())
        };
        Arc::new(TargetTable::new("db", "t", cols, handle, uniques))
    }

    fn row(id: i64, u: Option<&str>, v: i64) -> Vec<Value> {
        vec![
            Value::Int(id),
            u.map_or(Value::Null, |s| Value::Bytes(s.as_bytes().to_vec())),
            Value::Int(v),
        ]
    }

    fn insert(t: &Arc<TargetTable>, id: i64, u: Option<&str>) -> RowChange {
        RowChange {
            table: t.clone(),
            kind: DmlKind::Insert,
            before: None,
            after: Some(row(id, u, 0)),
            safe_mode: false,
            ts: 0,
            keys: ChangeKeys::default(),
        }
    }

    fn update(t: &Arc<TargetTable>, from: i64, to: i64) -> RowChange {
        RowChange {
            table: t.clone(),
            kind: DmlKind::Update,
            before: Some(row(from, None, 0)),
            after: Some(row(to, None, 1)),
            safe_mode: false,
            ts: 0,
            keys: ChangeKeys::default(),
        }
    }

    /// The steps as `S[[ids per worker]…]` and `D`, for comparisons.
    fn shape(steps: &[Step]) -> Vec<String> {
        steps
            .iter()
            .map(|s| match s {
                Step::Drain => "D".to_string(),
                Step::Send(per) => format!(
                    "S{:?}",
                    per.iter()
                        .map(|w| w
                            .iter()
                            .map(
                                |c| match c.after.as_ref().or(c.before.as_ref()).unwrap()[0] {
                                    Value::Int(i) => i,
                                    _ => -1,
                                }
                            )
                            .collect::<Vec<_>>())
                        .collect::<Vec<_>>()
                ),
            })
            .collect()
    }

    fn keys(ch: &RowChange) -> Vec<u64> {
        let mut out = Vec::new();
        ConflictKeys::default().keys(ch, &mut out);
        out
    }

    #[test]
    fn a_conflict_sends_what_came_before_then_drains_and_resets() {
        let t = table(true);
        let mut b = Bucket::new(4);
        // Find two ids on different workers.
        let worker_of = |id: i64| {
            let mut c = Causality::new(4);
            match c.assign(&keys(&insert(&t, id, None))) {
                Assign::Worker(w) => w,
                Assign::Conflict => unreachable!(),
            }
        };
        let a = 1;
        let other = (2..100).find(|&i| worker_of(i) != worker_of(a)).unwrap();
        let mut steps = Vec::new();
        // Row `a`, row `other`, then an update moving `a` onto `other`'s key: a conflict.
        b.route(
            vec![
                insert(&t, a, None),
                insert(&t, other, None),
                update(&t, a, other),
            ],
            &mut steps,
        );
        let s = shape(&steps);
        assert_eq!(s.len(), 3, "{s:?}");
        assert!(s[0].starts_with('S') && s[0].contains(&a.to_string()));
        assert_eq!(s[1], "D");
        assert!(s[2].starts_with('S'));
        // The key map was reset: the update is the only change it knows, on one worker.
        let Step::Send(last) = &steps[2] else {
            panic!()
        };
        assert_eq!(last.iter().filter(|w| !w.is_empty()).count(), 1);
        // Every change carries its conflict keys for the batch planner.
        assert!(steps.iter().all(|s| match s {
            Step::Send(per) => per.iter().flatten().all(|c| c.keys.get().is_some()),
            Step::Drain => true,
        }));
    }

    #[test]
    fn a_full_key_map_drains_and_resets_at_the_same_change_every_time() {
        let t = table(true);
        let changes: Vec<RowChange> = (0..10).map(|i| insert(&t, i, None)).collect();
        let route = || {
            let mut b = Bucket::with_max_keys(3, 4);
            let mut steps = Vec::new();
            b.route(changes.clone(), &mut steps);
            shape(&steps)
        };
        let s = route();
        // One key per row (its primary key; the NULL unique key gives none) and room for 4
        // keys: the map is drained and reset before the 5th and the 9th row.
        assert_eq!(s.iter().filter(|x| *x == "D").count(), 2, "{s:?}");
        assert_eq!(s, route(), "deterministic");
    }

    #[test]
    fn dispatch_is_the_same_across_a_reset_and_a_replay() {
        let t = table(true);
        let changes: Vec<RowChange> = (0..200)
            .map(|i| {
                if i % 7 == 3 {
                    update(&t, i % 13, (i * 5) % 17)
                } else {
                    insert(&t, i % 29, Some(&format!("u{}", i % 11)))
                }
            })
            .collect();
        let full = {
            let mut b = Bucket::with_max_keys(5, 16);
            let mut steps = Vec::new();
            b.route(changes.clone(), &mut steps);
            shape(&steps)
        };
        // Routed in two calls (as two event batches would be) with a barrier between: after
        // a reset the assignment restarts exactly as a fresh bucket's would (a replay from a
        // checkpoint starts with a fresh bucket too).
        let mut b = Bucket::with_max_keys(5, 16);
        let mut first = Vec::new();
        b.route(changes[..100].to_vec(), &mut first);
        b.reset();
        let mut second = Vec::new();
        b.route(changes[100..].to_vec(), &mut second);
        let mut fresh = Bucket::with_max_keys(5, 16);
        let mut replay = Vec::new();
        fresh.route(changes[100..].to_vec(), &mut replay);
        assert_eq!(shape(&second), shape(&replay));
        // And routing the same stream twice gives the same steps.
        let mut again = Bucket::with_max_keys(5, 16);
        let mut steps = Vec::new();
        again.route(changes, &mut steps);
        assert_eq!(shape(&steps), full);
    }

    #[test]
    fn conflict_keys_skip_null_unique_keys_fold_case_and_cover_keyless_rows() {
        let keyed = table(true);
        // A NULL unique key gives no key; the primary key still does.
        assert_eq!(keys(&insert(&keyed, 1, None)).len(), 1);
        assert_eq!(keys(&insert(&keyed, 1, Some("a"))).len(), 2);
        // `_ci` text compares case- and trailing-space-insensitively: same key.
        let ku = |u: &str| keys(&insert(&keyed, 1, Some(u)))[1];
        assert_eq!(ku("Abc"), ku("abc "));
        assert_ne!(ku("abc"), ku("abd"));
        // A keyless table hashes the whole row: equal rows share a key, others do not.
        let bare = table(false);
        let k1 = keys(&insert(&bare, 1, Some("x")));
        assert_eq!(k1.len(), 1);
        assert_eq!(k1, keys(&insert(&bare, 1, Some("x"))));
        assert_ne!(k1, keys(&insert(&bare, 2, Some("x"))));
        // An update has keys of both images.
        assert_eq!(keys(&update(&keyed, 1, 2)).len(), 2);
    }
}
