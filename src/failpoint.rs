//! Test hooks, in the spirit of DM's failpoints: crash the process at a chosen point so that
//! tests can prove what a crash *there* does, instead of hoping a timer lands in the window.
//!
//! `DM_RS_FAILPOINTS="name=N,other=M"` (read once at the first hit) arms points: the N-th time
//! the process reaches point `name` it acts (most points abort the process, as `kill -9`
//! would). Unset (production), a point costs one relaxed atomic load.
//!
//! Points:
//! - `dml-after-commit`: a DML worker's batch transaction has committed (with its progress
//!   row) and the syncer has not been told, so no checkpoint covers it: aborts.
//! - `dml-lose-commit-reply`: a DML worker's batch has committed, and the worker behaves as if
//!   the connection died before the COMMIT's answer arrived (see [`lose`]).
//! - `shard-before-decide`: a sharding group is synced, before its Info goes to the master:
//!   aborts.
//! - `shard-after-info`: the Info is in etcd, before the Operation arrives: aborts.
//! - `shard-after-exec`: the lock's DDL ran downstream (or was skipped), before it is recorded
//!   as done: aborts.
//! - `shard-after-record`: recorded as done, before the master is told: aborts.
//! - `shard-resync`: in the middle of re-syncing withheld rows (before the 2nd rows event):
//!   aborts.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

struct Armed {
    /// name → (fire on this hit, hits so far).
    points: HashMap<String, (u64, AtomicU64)>,
}

fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let spec = std::env::var("DM_RS_FAILPOINTS").ok()?;
            let points: HashMap<String, (u64, AtomicU64)> = spec
                .split(',')
                .filter_map(|item| {
                    let (name, n) = item.trim().split_once('=')?;
                    Some((name.to_string(), (n.parse().ok()?, AtomicU64::new(0))))
                })
                .collect();
            (!points.is_empty()).then_some(Armed { points })
        })
        .as_ref()
}

/// Whether this hit of point `name` is the armed one.
fn fires(name: &str) -> bool {
    let Some(a) = armed() else { return false };
    let Some((at, hits)) = a.points.get(name) else {
        return false;
    };
    hits.fetch_add(1, Ordering::Relaxed) + 1 == *at
}

/// Aborts the process (as `kill -9` would: nothing flushed, no destructors) on the armed hit
/// of `name`.
pub fn crash(name: &str) {
    if fires(name) {
        eprintln!("failpoint {name}: aborting the process");
        std::process::abort();
    }
}

/// True on the armed hit of `name`: the caller then behaves as if its connection were lost.
pub fn lose(name: &str) -> bool {
    let hit = fires(name);
    if hit {
        tracing::warn!(
            failpoint = name,
            "failpoint: behaving as if the connection were lost"
        );
    }
    hit
}
