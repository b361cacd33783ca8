//! Optimistic shard DDL locks on the master (DM's `optimism.Lock`), plain logic: no I/O, no
//! actix; run by [`crate::actors::master::optimist`].
//!
//! One lock per target table of a task covers every upstream table (of every source) routed
//! into it. The lock keeps each table's current schema (what the worker tracked after its
//! last DDL) and their **join**: every column any table has, with the one shape all tables that
//! have it agree on, and every index any table has. A DDL is run downstream only when it
//! changes the join: an `ADD COLUMN` at the first table that adds it, a `DROP COLUMN` at the
//! last table that drops it (meanwhile the column is *partially dropped*; adding it back then
//! is 11128). A DDL replayed after a restart changes nothing and runs nothing.
//!
//! Two tables that disagree on a column's shape (a type changed on one shard only) cannot be
//! joined: a **conflict**. The lock keeps the last join that worked; the conflicting table is
//! told `detected` (strict mode: its task stops on 36062) or `skip and wait for redirect` (it
//! skips its DDL and rows until told); once every table made the same change the join works
//! again, the DDL that completed it runs downstream, and every table that waited is told
//! `resolved` (its worker replays what it skipped).

use std::collections::{BTreeMap, BTreeSet};

use crate::error::{DmError, codes};
use crate::sql::schema_tracker::{ColumnDef, TableSchema};
pub use crate::store::etcd::optimism::{ConflictStage, UpTable};

/// What the join compares of a column: all but its name and position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnShape {
    /// Lower-case full type (`int(11)`, `varchar(80)`, `bigint(20) unsigned` spelled as the
    /// tracker has it, unsigned folded in).
    pub column_type: String,
    pub nullable: bool,
    pub generated: bool,
}

impl From<&ColumnDef> for ColumnShape {
    fn from(c: &ColumnDef) -> Self {
        let mut t = c.column_type.to_ascii_lowercase();
        if c.unsigned && !t.contains("unsigned") {
            t.push_str(" unsigned");
        }
        Self {
            column_type: t,
            nullable: c.nullable,
            generated: c.generated,
        }
    }
}

impl std::fmt::Display for ColumnShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}{}{}",
            self.column_type,
            if self.nullable { "" } else { " NOT NULL" },
            if self.generated { " GENERATED" } else { "" }
        )
    }
}

/// The join of some tables' schemas.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Joined {
    /// Lower-case column name → (name as first seen, shape), in first-seen order.
    pub columns: Vec<(String, String, ColumnShape)>,
    /// Lower-case names of every index (`primary` for a primary key).
    pub indexes: BTreeSet<String>,
}

impl Joined {
    fn column(&self, lower: &str) -> Option<&ColumnShape> {
        self.columns
            .iter()
            .find(|(l, _, _)| l == lower)
            .map(|(_, _, s)| s)
    }

    /// Column names, as first seen.
    pub fn column_names(&self) -> Vec<String> {
        self.columns.iter().map(|(_, n, _)| n.clone()).collect()
    }
}

/// Two tables disagree on the shape of a column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incomparable {
    pub column: String,
    pub first: (UpTable, ColumnShape),
    pub second: (UpTable, ColumnShape),
}

impl std::fmt::Display for Incomparable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "column `{}` is {} in {} but {} in {}",
            self.column, self.first.1, self.first.0, self.second.1, self.second.0
        )
    }
}

fn index_names(t: &TableSchema) -> impl Iterator<Item = String> + '_ {
    let pk = (!t.primary_key.is_empty()).then(|| "primary".to_string());
    pk.into_iter().chain(
        t.unique_keys
            .iter()
            .chain(t.indexes.iter())
            .map(|(n, _)| n.to_ascii_lowercase()),
    )
}

/// The join of `tables` (in their order), or the first column they disagree on.
pub fn join<'a>(
    tables: impl IntoIterator<Item = (&'a UpTable, &'a TableSchema)>,
) -> Result<Joined, Box<Incomparable>> {
    let mut j = Joined::default();
    let mut owner: BTreeMap<String, &UpTable> = BTreeMap::new();
    for (up, t) in tables {
        for c in &t.columns {
            let lower = c.name.to_ascii_lowercase();
            let shape = ColumnShape::from(c);
            match j.column(&lower) {
                Some(have) if *have != shape => {
                    return Err(Box::new(Incomparable {
                        column: c.name.clone(),
                        first: ((*owner[&lower]).clone(), have.clone()),
                        second: (up.clone(), shape),
                    }));
                }
                Some(_) => {}
                None => {
                    owner.insert(lower.clone(), up);
                    j.columns.push((lower, c.name.clone(), shape));
                }
            }
        }
        j.indexes.extend(index_names(t));
    }
    Ok(j)
}

/// What the lock answers one table's DDLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The DDLs (of the ones reported) to run downstream, in order.
    pub ddls: Vec<String>,
    pub stage: ConflictStage,
    /// Why, when `stage` is not `None`.
    pub message: String,
    /// Tables that were waiting for a redirect and may now replay (this table excluded).
    pub resolved: Vec<UpTable>,
    /// Columns this table dropped while other tables still have them.
    pub partially_dropped: Vec<String>,
}

/// One optimistic lock.
#[derive(Debug, Clone)]
pub struct OptLock {
    pub id: String,
    pub task: String,
    pub down_schema: String,
    pub down_table: String,
    /// Every upstream table of the lock and its current schema.
    pub tables: BTreeMap<UpTable, TableSchema>,
    /// The last join that worked: what the downstream table has.
    pub joined: Joined,
    /// Tables whose last DDL conflicted: the conflict message.
    pub conflicts: BTreeMap<UpTable, String>,
    /// Conflicting tables' schemas before their first conflicting DDL (an unlock with
    /// `skip` puts them back).
    pub conflict_before: BTreeMap<UpTable, TableSchema>,
    /// Lower-case column → tables that dropped it while others still have it.
    pub dropped: BTreeMap<String, BTreeSet<UpTable>>,
    /// DDLs this lock ran downstream, in order (for `shard-ddl-lock`).
    pub ran: Vec<String>,
}

impl OptLock {
    /// A lock over `tables`, each assumed to have `initial` (DM: the first Info's schema
    /// before its DDLs stands for every table that has not reported yet).
    pub fn new(
        id: &str,
        task: &str,
        down: (&str, &str),
        tables: &[UpTable],
        initial: &TableSchema,
    ) -> Self {
        let tables: BTreeMap<UpTable, TableSchema> = tables
            .iter()
            .map(|t| (t.clone(), initial.clone()))
            .collect();
        let joined = join(tables.iter()).unwrap_or_default();
        Self {
            id: id.to_string(),
            task: task.to_string(),
            down_schema: down.0.to_string(),
            down_table: down.1.to_string(),
            tables,
            joined,
            conflicts: BTreeMap::new(),
            conflict_before: BTreeMap::new(),
            dropped: BTreeMap::new(),
            ran: Vec::new(),
        }
    }

    /// A table created upstream joins with its schema; nothing runs downstream for it (DM).
    pub fn add_table(&mut self, up: UpTable, schema: TableSchema) {
        self.tables.entry(up).or_insert(schema);
    }

    /// A dropped table (or database) leaves the lock without running anything downstream
    /// (the target keeps what it has, as in DM). A conflict of other tables stays: what they
    /// changed has not run downstream, so only their own DDLs or an unlock settle it.
    pub fn remove_table(&mut self, up: &UpTable) {
        self.tables.remove(up);
        self.conflicts.remove(up);
        self.conflict_before.remove(up);
        for tables in self.dropped.values_mut() {
            tables.remove(up);
        }
        self.dropped.retain(|_, t| !t.is_empty());
        if self.conflicts.is_empty()
            && let Ok(j) = join(self.tables.iter())
        {
            self.joined = j;
        }
    }

    /// `up` ran `ddls`, its schema before them `before` and after each `afters[i]`.
    /// `Err` for reports the lock cannot take (38054, 11128).
    pub fn try_sync(
        &mut self,
        up: &UpTable,
        ddls: &[String],
        before: &TableSchema,
        afters: &[TableSchema],
        strict: bool,
    ) -> Result<Answer, DmError> {
        if ddls.len() != afters.len() {
            return Err(DmError::new(
                &codes::MASTER_OPTIMISTIC_INCONSISTENT_DDLS,
                format!(
                    "{up}: {} DDLs but {} table-info-after",
                    ddls.len(),
                    afters.len()
                ),
            ));
        }
        self.tables
            .entry(up.clone())
            .or_insert_with(|| before.clone());
        let mut answer = Answer {
            ddls: Vec::new(),
            stage: ConflictStage::None,
            message: String::new(),
            resolved: Vec::new(),
            partially_dropped: Vec::new(),
        };
        for (ddl, after) in ddls.iter().zip(afters) {
            let prev = self.tables.insert(up.clone(), after.clone());
            // Re-adding a column this table dropped while others still have it.
            for c in &after.columns {
                let lower = c.name.to_ascii_lowercase();
                let had = prev.as_ref().is_some_and(|p| {
                    p.columns
                        .iter()
                        .any(|pc| pc.name.eq_ignore_ascii_case(&c.name))
                });
                if !had && self.dropped.get(&lower).is_some_and(|t| !t.is_empty()) {
                    if let Some(p) = prev {
                        self.tables.insert(up.clone(), p);
                    }
                    return Err(DmError::new(
                        &codes::SHARD_DDL_OPTIMISM_ADD_NOT_FULLY_DROPPED_COLUMN,
                        format!(
                            "{up}: `{ddl}` adds column `{}` which {:?} dropped while other tables still have it",
                            c.name,
                            self.dropped[&lower]
                                .iter()
                                .map(ToString::to_string)
                                .collect::<Vec<_>>()
                        ),
                    ));
                }
            }
            match join(self.tables.iter()) {
                Ok(j) => {
                    // Columns this DDL dropped that the join keeps: partially dropped.
                    if let Some(p) = &prev {
                        for pc in &p.columns {
                            let lower = pc.name.to_ascii_lowercase();
                            let gone = !after
                                .columns
                                .iter()
                                .any(|c| c.name.eq_ignore_ascii_case(&pc.name));
                            if gone && j.column(&lower).is_some() {
                                self.dropped.entry(lower).or_default().insert(up.clone());
                                answer.partially_dropped.push(pc.name.clone());
                            }
                        }
                    }
                    // Columns the join lost are fully dropped now.
                    self.dropped.retain(|c, _| j.column(c).is_some());
                    if j != self.joined {
                        answer.ddls.push(ddl.clone());
                        self.ran.push(ddl.clone());
                        self.joined = j;
                    }
                    if !self.conflicts.is_empty() {
                        self.conflict_before.clear();
                        let mut resolved: Vec<UpTable> =
                            std::mem::take(&mut self.conflicts).into_keys().collect();
                        resolved.retain(|t| t != up);
                        answer.resolved = resolved;
                    }
                }
                Err(c) => {
                    let message = format!(
                        "[code={}] {}: `{ddl}` conflicts: {c}",
                        codes::SYNCER_SHARD_DDL_CONFLICT.code,
                        self.id
                    );
                    self.conflicts.insert(up.clone(), message.clone());
                    self.conflict_before
                        .entry(up.clone())
                        .or_insert_with(|| prev.unwrap_or_else(|| before.clone()));
                    answer.stage = if strict {
                        ConflictStage::Detected
                    } else {
                        ConflictStage::SkipWaitRedirect
                    };
                    answer.message = message;
                    // The rest of the DDLs are held with this one.
                    return Ok(answer);
                }
            }
        }
        Ok(answer)
    }

    /// `shard-ddl-lock unlock --action skip` of conflicting table `up`: the lock forgets its
    /// conflicting change (its schema is what it was before), so the join holds again; what
    /// the table's later rows carry is the operator's call.
    pub fn skip_conflict(&mut self, up: &UpTable) -> Result<(), DmError> {
        let Some(before) = self.conflict_before.remove(up) else {
            return Err(DmError::new(
                &codes::MASTER_INVALID_OPERATE,
                format!("{up} has no conflicting DDL in lock {}", self.id),
            ));
        };
        self.conflicts.remove(up);
        self.tables.insert(up.clone(), before);
        Ok(())
    }

    /// Tables whose schema has every column of the join with the join's shape (DM's "synced").
    pub fn split(&self) -> (Vec<String>, Vec<String>) {
        let mut synced = Vec::new();
        let mut unsynced = Vec::new();
        for (up, t) in &self.tables {
            let same = join(std::iter::once((up, t))).is_ok_and(|j| {
                j.columns.len() == self.joined.columns.len()
                    && j.columns
                        .iter()
                        .all(|(l, _, s)| self.joined.column(l) == Some(s))
            });
            if same && !self.conflicts.contains_key(up) {
                synced.push(up.to_string());
            } else {
                unsynced.push(up.to_string());
            }
        }
        (synced, unsynced)
    }

    /// Every table agrees with the join and none waits: the lock has nothing left to do.
    pub fn resolved(&self) -> bool {
        self.conflicts.is_empty() && self.dropped.is_empty() && self.split().1.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(source: &str, table: &str) -> UpTable {
        UpTable {
            source: source.into(),
            schema: "db".into(),
            table: table.into(),
        }
    }

    fn schema(sql: &str) -> TableSchema {
        TableSchema::from_create_table(sql).unwrap()
    }

    const BASE: &str = "CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL)";
    const WITH_C: &str = "CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL, c INT)";
    const WITH_BIG_C: &str = "CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL, c BIGINT)";
    const ADD: &str = "ALTER TABLE `db`.`t` ADD COLUMN c INT";
    const DROP: &str = "ALTER TABLE `db`.`t` DROP COLUMN c";
    const MODIFY: &str = "ALTER TABLE `db`.`t` MODIFY c BIGINT";

    fn sync(
        l: &mut OptLock,
        t: &UpTable,
        ddl: &str,
        before: &TableSchema,
        after: &TableSchema,
    ) -> Result<Answer, DmError> {
        l.try_sync(
            t,
            &[ddl.to_string()],
            before,
            std::slice::from_ref(after),
            false,
        )
    }

    fn lock(tables: &[UpTable], initial: &str) -> OptLock {
        OptLock::new(
            "task-`db`.`t`",
            "task",
            ("db", "t"),
            tables,
            &schema(initial),
        )
    }

    #[test]
    fn add_runs_at_the_first_table_drop_at_the_last() {
        let (a, b, c) = (up("s1", "t1"), up("s1", "t2"), up("s2", "t1"));
        let mut l = lock(&[a.clone(), b.clone(), c.clone()], BASE);
        let (base, with_c) = (schema(BASE), schema(WITH_C));
        let r = sync(&mut l, &a, ADD, &base, &with_c).unwrap();
        assert_eq!(r.ddls, [ADD]);
        assert_eq!(r.stage, ConflictStage::None);
        assert_eq!(l.split().0, ["s1-`db`.`t1`"]);
        for t in [&b, &c] {
            let r = sync(&mut l, t, ADD, &base, &with_c).unwrap();
            assert!(r.ddls.is_empty(), "{t}: {r:?}");
        }
        assert!(l.resolved());
        // A replayed report runs nothing.
        let r = sync(&mut l, &a, ADD, &base, &with_c).unwrap();
        assert!(r.ddls.is_empty());

        // DROP: partially dropped until the last table.
        let r = sync(&mut l, &b, DROP, &with_c, &base).unwrap();
        assert!(r.ddls.is_empty());
        assert_eq!(r.partially_dropped, ["c"]);
        assert!(!l.resolved());
        let r = sync(&mut l, &a, DROP, &with_c, &base).unwrap();
        assert!(r.ddls.is_empty());
        let r = sync(&mut l, &c, DROP, &with_c, &base).unwrap();
        assert_eq!(r.ddls, [DROP]);
        assert!(l.dropped.is_empty() && l.resolved());
        assert_eq!(l.ran, [ADD, DROP]);
    }

    #[test]
    fn adding_back_a_partially_dropped_column_is_11128() {
        let (a, b) = (up("s1", "t1"), up("s2", "t1"));
        let mut l = lock(&[a.clone(), b.clone()], WITH_C);
        let (base, with_c) = (schema(BASE), schema(WITH_C));
        sync(&mut l, &a, DROP, &with_c, &base).unwrap();
        let e = sync(&mut l, &a, ADD, &base, &with_c).unwrap_err();
        assert_eq!(e.code, 11128, "{e}");
        // The lock is unchanged by the refused report.
        assert!(l.tables[&a].columns.iter().all(|c| c.name != "c"));
    }

    #[test]
    fn a_type_change_on_one_table_is_a_conflict_until_every_table_made_it() {
        let (a, b, c) = (up("s1", "t1"), up("s1", "t2"), up("s2", "t1"));
        let mut l = lock(&[a.clone(), b.clone(), c.clone()], WITH_C);
        let (with_c, big) = (schema(WITH_C), schema(WITH_BIG_C));
        let r = sync(&mut l, &a, MODIFY, &with_c, &big).unwrap();
        assert_eq!(r.stage, ConflictStage::SkipWaitRedirect);
        assert!(r.ddls.is_empty());
        assert!(
            r.message.contains("36062") && r.message.contains("bigint"),
            "{}",
            r.message
        );
        let r = sync(&mut l, &b, MODIFY, &with_c, &big).unwrap();
        assert_eq!(r.stage, ConflictStage::SkipWaitRedirect);
        assert_eq!(l.conflicts.len(), 2);
        // The last table completes it: its DDL runs, the others replay.
        let r = sync(&mut l, &c, MODIFY, &with_c, &big).unwrap();
        assert_eq!(r.stage, ConflictStage::None);
        assert_eq!(r.ddls, [MODIFY]);
        assert_eq!(r.resolved, [a.clone(), b.clone()]);
        assert!(l.resolved());
        // Strict mode: detected.
        let mut l = lock(&[a.clone(), c.clone()], WITH_C);
        let r = l
            .try_sync(&a, &[MODIFY.into()], &with_c, &[big], true)
            .unwrap();
        assert_eq!(r.stage, ConflictStage::Detected);
    }

    #[test]
    fn a_dropped_table_leaves_the_lock_but_not_a_conflict() {
        let (a, b, c) = (up("s1", "t1"), up("s2", "t1"), up("s2", "t2"));
        let mut l = lock(&[a.clone(), b.clone(), c.clone()], WITH_C);
        let (base, with_c, big) = (schema(BASE), schema(WITH_C), schema(WITH_BIG_C));
        // b drops c, then b is dropped: c is no longer partially dropped.
        l.try_sync(&b, &[DROP.into()], &with_c, &[base], false)
            .unwrap();
        assert!(!l.dropped.is_empty());
        l.remove_table(&b);
        assert!(l.dropped.is_empty() && l.resolved());
        // a's type change conflicts with c; dropping c does not run a's change downstream.
        let r = l
            .try_sync(&a, &[MODIFY.into()], &with_c, &[big], false)
            .unwrap();
        assert_eq!(r.stage, ConflictStage::SkipWaitRedirect);
        l.remove_table(&c);
        assert_eq!(l.conflicts.len(), 1);
        assert!(!l.resolved());
    }

    #[test]
    fn skipping_a_conflict_puts_the_tables_schema_back() {
        let (a, b) = (up("s1", "t1"), up("s2", "t1"));
        let mut l = lock(&[a.clone(), b.clone()], WITH_C);
        let (with_c, big) = (schema(WITH_C), schema(WITH_BIG_C));
        let r = sync(&mut l, &a, MODIFY, &with_c, &big).unwrap();
        assert_eq!(r.stage, ConflictStage::SkipWaitRedirect);
        assert!(l.skip_conflict(&b).is_err());
        l.skip_conflict(&a).unwrap();
        assert!(l.conflicts.is_empty() && l.resolved());
        assert_eq!(l.tables[&a], with_c);
    }

    #[test]
    fn indexes_join_by_name() {
        let (a, b) = (up("s1", "t1"), up("s2", "t1"));
        let mut l = lock(&[a.clone(), b.clone()], BASE);
        let base = schema(BASE);
        let idx = schema("CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL, KEY iv (v))");
        let add = "ALTER TABLE `db`.`t` ADD INDEX iv (v)";
        let r = sync(&mut l, &a, add, &base, &idx).unwrap();
        assert_eq!(r.ddls, [add]);
        let r = l.try_sync(&b, &[add.into()], &base, &[idx], false).unwrap();
        assert!(r.ddls.is_empty());
    }

    #[test]
    fn stage_names_are_dms() {
        for s in [
            ConflictStage::None,
            ConflictStage::Detected,
            ConflictStage::SkipWaitRedirect,
            ConflictStage::Resolved,
            ConflictStage::Error,
        ] {
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
    }
}
