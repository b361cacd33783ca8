//! Pessimistic sharding groups on one source (DM's `ShardingGroup` + `ShardingMeta`), plain
//! logic: no I/O, no actix.
//!
//! A **group** is every upstream table of this source routed into one target table. Each
//! member keeps the **sequence** of shard DDLs it ran; the group keeps the **global**
//! sequence (the longest one) and `active`, the index of the DDL being coordinated. Every
//! member must run the same DDLs in the same order (a member's sequence is a prefix of the
//! global one, compared as sets of routed statements per DDL), else 36008.
//!
//! - A member that has reached the active DDL is **synced**; its later rows are **withheld**
//!   (they have the new schema, the target does not yet).
//! - When every present member is synced, the group's active DDL is ready for the lock
//!   ([`TrySync::synced`]); once the lock resolved, [`Group::resolve`] moves `active` on and
//!   gives the **re-sync windows**: per member, from the end of its DDL to the start of its
//!   next one (or the resolving event), the rows withheld from it, to be applied now.
//! - A member that leaves (DROP TABLE / DROP DATABASE of a shard) no longer counts for being
//!   synced, but its withheld rows are still re-synced. A table created while DDLs are pending
//!   (DM refuses this with 36005) joins as synced for them: it was created with the new schema
//!   and its rows wait for the DDLs to reach the target.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::binlog::location::Position;
use crate::error::{DmError, codes};
use crate::sql::sharding_meta::MetaItem;

/// DM's table id: `` `schema`.`table` `` (no escaping, as DM's `GenTableID`).
pub fn table_id(schema: &str, table: &str) -> String {
    format!("`{schema}`.`{table}`")
}

/// Same DDL set: same length and every statement of one in the other (DM's
/// `CompareShardingDDLs`).
pub fn same_ddls(a: &[String], b: &[String]) -> bool {
    a.len() == b.len() && a.iter().all(|s| b.contains(s))
}

/// One shard DDL of one member: where it is in the binlog and its routed statements.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DdlItem {
    /// Start of the DDL's event.
    pub first: Position,
    /// End of the DDL's event.
    pub end: Position,
    /// The statements, routed to the target table.
    pub ddls: Vec<String>,
    /// The member's table id.
    pub source: String,
}

#[derive(Debug, Clone, Default)]
struct Member {
    seq: Vec<DdlItem>,
    /// Dropped upstream: not counted for synced, re-synced until the sequence ends.
    left: bool,
}

/// What [`Group::try_sync`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrySync {
    /// Index of the DDL in the global sequence.
    pub index: usize,
    /// The DDL is the active one (being coordinated).
    pub active: bool,
    /// Every present member reached the active DDL.
    pub synced: bool,
}

/// Rows of one member to apply after a lock resolved: `(from, to]` by event end position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub table: String,
    /// End of the member's DDL: rows ending after it.
    pub from: Position,
    /// Start of the member's next DDL or of the resolving event: rows ending at or before it.
    pub to: Position,
}

impl From<&DdlItem> for MetaItem {
    fn from(i: &DdlItem) -> Self {
        Self {
            ddls: i.ddls.clone(),
            source: i.source.clone(),
            first_position: (&i.first).into(),
            first_gtid_set: String::new(),
            end_position: Some((&i.end).into()),
        }
    }
}

/// A sharding group with pending DDLs, as query-status shows it (DM's `unresolvedGroups`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct UnresolvedGroup {
    pub target: String,
    #[serde(rename = "DDLs")]
    pub ddls: Vec<String>,
    #[serde(rename = "firstLocation")]
    pub first_location: String,
    pub synced: Vec<String>,
    pub unsynced: Vec<String>,
}

/// One sharding group (target table) on this source.
#[derive(Debug, Clone)]
pub struct Group {
    /// `` `schema`.`table` `` of the target.
    pub target: String,
    members: BTreeMap<String, Member>,
    global: Vec<DdlItem>,
    active: usize,
}

impl Group {
    /// A group of `members` (table ids) merged into `target`.
    pub fn new(target: impl Into<String>, members: impl IntoIterator<Item = String>) -> Self {
        Self {
            target: target.into(),
            members: members
                .into_iter()
                .map(|m| (m, Member::default()))
                .collect(),
            global: Vec::new(),
            active: 0,
        }
    }

    /// The present members (not left), sorted.
    pub fn members(&self) -> Vec<String> {
        self.members
            .iter()
            .filter(|(_, m)| !m.left)
            .map(|(t, _)| t.clone())
            .collect()
    }

    /// True when `table` is a present member.
    pub fn contains(&self, table: &str) -> bool {
        self.members.get(table).is_some_and(|m| !m.left)
    }

    /// DDLs are pending (DM's "in sequence sharding").
    pub fn in_sequence(&self) -> bool {
        self.active < self.global.len()
    }

    /// Some member reached the active DDL (DM's "unresolved": remain < members).
    pub fn unresolved(&self) -> bool {
        self.in_sequence()
    }

    /// The DDL being coordinated.
    pub fn active_item(&self) -> Option<&DdlItem> {
        self.global.get(self.active)
    }

    /// Index of the active DDL.
    pub fn active_index(&self) -> usize {
        self.active
    }

    /// The global sequence.
    pub fn global(&self) -> &[DdlItem] {
        &self.global
    }

    /// The sequence of member `table`.
    pub fn sequence(&self, table: &str) -> &[DdlItem] {
        self.members.get(table).map_or(&[], |m| m.seq.as_slice())
    }

    /// Present members that reached the active DDL, and those that did not.
    pub fn synced_split(&self) -> (Vec<String>, Vec<String>) {
        let mut synced = Vec::new();
        let mut unsynced = Vec::new();
        for (t, m) in &self.members {
            if m.left {
                continue;
            }
            if m.seq.len() > self.active {
                synced.push(t.clone());
            } else {
                unsynced.push(t.clone());
            }
        }
        (synced, unsynced)
    }

    fn all_synced(&self) -> bool {
        self.in_sequence()
            && self
                .members
                .values()
                .filter(|m| !m.left)
                .all(|m| m.seq.len() > self.active)
    }

    /// True when rows of member `table` are withheld: it reached the active DDL.
    pub fn withholds(&self, table: &str) -> bool {
        self.in_sequence()
            && self
                .members
                .get(table)
                .is_some_and(|m| m.seq.len() > self.active)
    }

    /// Member `table` ran the DDL `item`: record it in its sequence and the global one.
    pub fn try_sync(&mut self, item: DdlItem) -> Result<TrySync, DmError> {
        let table = item.source.clone();
        let active = self.active;
        let member = self.members.entry(table.clone()).or_default();
        member.left = false;
        let index = member.seq.len();
        match self.global.get(index) {
            Some(g) if !same_ddls(&g.ddls, &item.ddls) => {
                let mine: Vec<&[String]> = member
                    .seq
                    .iter()
                    .map(|i| i.ddls.as_slice())
                    .chain(std::iter::once(item.ddls.as_slice()))
                    .collect();
                let right: Vec<&[String]> = self.global.iter().map(|i| i.ddls.as_slice()).collect();
                return Err(DmError::new(
                    &codes::SYNC_UNIT_DDL_WRONG_SEQUENCE,
                    format!(
                        "detect inconsistent DDL sequence from source {table}: {mine:?}, right DDL sequence should be {right:?} (target {})",
                        self.target
                    ),
                ));
            }
            Some(_) => {}
            None => self.global.push(item.clone()),
        }
        member.seq.push(item);
        Ok(TrySync {
            index,
            active: index == active,
            synced: self.all_synced(),
        })
    }

    /// A table created upstream joins. While DDLs are pending it counts as having run them
    /// (its schema is the new one), at `at`.
    pub fn join(&mut self, table: &str, at: &Position) {
        let pending: Vec<DdlItem> = self
            .global
            .iter()
            .skip(self.active)
            .map(|g| DdlItem {
                first: at.clone(),
                end: at.clone(),
                ddls: g.ddls.clone(),
                source: table.to_string(),
            })
            .collect();
        let member = self.members.entry(table.to_string()).or_default();
        member.left = false;
        if !pending.is_empty() {
            // Resolved items are not its history; only the pending ones are.
            member.seq = self.global[..self.active].to_vec();
            member.seq.extend(pending);
        }
    }

    /// A member was dropped upstream at `_at`. Returns true when that makes the active DDL
    /// synced (every remaining member has it).
    pub fn leave(&mut self, table: &str) -> bool {
        match self.members.get_mut(table) {
            Some(m) if !m.seq.is_empty() && self.active < self.global.len() => m.left = true,
            Some(_) => {
                self.members.remove(table);
            }
            None => return false,
        }
        self.all_synced()
    }

    /// The active DDL was executed or skipped downstream, at the event starting at
    /// `resolving`: moves on and returns the rows to re-sync.
    pub fn resolve(&mut self, resolving: &Position) -> Vec<Window> {
        let k = self.active;
        let mut windows = Vec::new();
        for (t, m) in &self.members {
            let Some(item) = m.seq.get(k) else { continue };
            let to = m
                .seq
                .get(k + 1)
                .map_or_else(|| resolving.clone(), |n| n.first.clone());
            if item.end < to {
                windows.push(Window {
                    table: t.clone(),
                    from: item.end.clone(),
                    to,
                });
            }
        }
        self.active += 1;
        if self.active >= self.global.len() {
            self.global.clear();
            self.active = 0;
            self.members.retain(|_, m| !m.left);
            for m in self.members.values_mut() {
                m.seq.clear();
            }
        }
        windows
    }

    /// Where the re-sync of `windows` starts reading: the earliest window start.
    pub fn resync_from(windows: &[Window]) -> Option<Position> {
        windows.iter().map(|w| w.from.clone()).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pos: u32) -> Position {
        Position::new("mysql-bin.000001", pos)
    }

    fn item(t: &str, start: u32, ddl: &str) -> DdlItem {
        DdlItem {
            first: p(start),
            end: p(start + 10),
            ddls: vec![ddl.to_string()],
            source: t.to_string(),
        }
    }

    #[test]
    fn the_last_member_syncs_and_resolve_gives_windows() {
        let mut g = Group::new("`d`.`t`", ["a".to_string(), "b".to_string()]);
        assert!(!g.withholds("a"));
        let r = g.try_sync(item("a", 100, "ADD c")).unwrap();
        assert_eq!(
            r,
            TrySync {
                index: 0,
                active: true,
                synced: false
            }
        );
        assert!(g.withholds("a") && !g.withholds("b"));
        assert_eq!(g.synced_split(), (vec!["a".into()], vec!["b".into()]));
        let r = g.try_sync(item("b", 200, "ADD c")).unwrap();
        assert!(r.synced && r.active);
        let w = g.resolve(&p(200));
        // b's DDL is the resolving event: nothing of b was withheld.
        assert_eq!(
            w,
            vec![Window {
                table: "a".into(),
                from: p(110),
                to: p(200)
            }]
        );
        assert!(!g.in_sequence() && !g.withholds("a"));
        assert!(g.global().is_empty() && g.sequence("a").is_empty());
    }

    #[test]
    fn sequences_queue_and_resync_stop_at_the_next_ddl() {
        let mut g = Group::new("`d`.`t`", ["a".to_string(), "b".to_string()]);
        g.try_sync(item("a", 100, "ADD c")).unwrap();
        // a runs a second DDL before b ran the first: queued, not active.
        let r = g.try_sync(item("a", 150, "ADD d")).unwrap();
        assert_eq!(
            r,
            TrySync {
                index: 1,
                active: false,
                synced: false
            }
        );
        assert!(g.try_sync(item("b", 200, "ADD c")).unwrap().synced);
        let w = g.resolve(&p(200));
        assert_eq!(
            w,
            vec![Window {
                table: "a".into(),
                from: p(110),
                to: p(150)
            }]
        );
        // Still in sequence: a keeps waiting for `ADD d`, b does not.
        assert!(g.in_sequence() && g.withholds("a") && !g.withholds("b"));
        assert_eq!(g.active_item().unwrap().ddls, vec!["ADD d".to_string()]);
        let r = g.try_sync(item("b", 300, "ADD d")).unwrap();
        assert!(r.synced && r.active && r.index == 1);
        let w = g.resolve(&p(300));
        assert_eq!(
            w,
            vec![Window {
                table: "a".into(),
                from: p(160),
                to: p(300)
            }]
        );
        assert!(!g.in_sequence());
    }

    #[test]
    fn a_different_sequence_is_36008() {
        let mut g = Group::new("`d`.`t`", ["a".to_string(), "b".to_string()]);
        g.try_sync(item("a", 100, "ADD c")).unwrap();
        let e = g.try_sync(item("b", 200, "ADD x")).unwrap_err();
        assert_eq!(e.code, 36008);
        assert!(e.message.contains("ADD x") && e.message.contains("ADD c"));
        // The group is unchanged: b is still unsynced.
        assert_eq!(g.synced_split().1, vec!["b".to_string()]);
    }

    #[test]
    fn same_ddls_ignores_order_not_length() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(same_ddls(&s(&["a", "b"]), &s(&["b", "a"])));
        assert!(!same_ddls(&s(&["a"]), &s(&["a", "b"])));
        assert!(!same_ddls(&s(&["a", "b"]), &s(&["a", "c"])));
    }

    #[test]
    fn leaving_can_sync_and_the_leaver_is_still_resynced() {
        let mut g = Group::new("`d`.`t`", ["a", "b", "c"].map(String::from));
        g.try_sync(item("a", 100, "ADD c")).unwrap();
        g.try_sync(item("b", 120, "ADD c")).unwrap();
        // b is dropped upstream after its DDL: its withheld rows still count.
        assert!(!g.leave("b"));
        assert_eq!(g.members(), vec!["a".to_string(), "c".to_string()]);
        // c never ran the DDL and is dropped: the group is synced.
        assert!(g.leave("c"));
        let w = g.resolve(&p(400));
        assert_eq!(w.len(), 2);
        assert_eq!(w[1].table, "b");
        assert_eq!(g.members(), vec!["a".to_string()]);
        // Leaving when idle just removes.
        assert!(!g.leave("a"));
        assert!(g.members().is_empty());
    }

    #[test]
    fn a_table_created_while_pending_counts_as_synced() {
        let mut g = Group::new("`d`.`t`", ["a", "b"].map(String::from));
        g.try_sync(item("a", 100, "ADD c")).unwrap();
        g.join("n", &p(150));
        assert!(g.withholds("n"));
        assert_eq!(
            g.synced_split(),
            (vec!["a".into(), "n".into()], vec!["b".into()])
        );
        assert!(g.try_sync(item("b", 200, "ADD c")).unwrap().synced);
        let w = g.resolve(&p(200));
        assert_eq!(
            w.iter().map(|w| w.table.as_str()).collect::<Vec<_>>(),
            ["a", "n"]
        );
        assert_eq!(w[1].from, p(150));
        // Joining when idle is plain membership.
        g.join("m", &p(300));
        assert!(!g.withholds("m") && g.contains("m"));
    }
}
