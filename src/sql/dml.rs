//! SQL for row changes: INSERT / UPDATE / DELETE keyed by the table's handle, and the
//! safe-mode forms (REPLACE; DELETE + REPLACE when a key changes) that make replay idempotent.
//!
//! WHERE clauses use, in DM's order: the primary key, else a unique key whose columns are all
//! NOT NULL, else a unique key whose values are non-NULL in this row, else every column (with
//! `LIMIT 1`, so that of two identical rows in a keyless table one is touched, as upstream).
//! Values are written as literals (`Value::write_sql_literal`), so a batch is one text
//! round trip; TIMESTAMP literals are UTC, so the connection runs with `time_zone='+00:00'`.

use std::sync::Arc;

use crate::binlog::value::{ColumnInfo, SqlType, Value};
use crate::sql::quote_ident;

/// A downstream table as the DML generator needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetTable {
    pub schema: String,
    pub table: String,
    /// `` `schema`.`table` ``.
    pub quoted: String,
    /// Upstream columns, in row-image order.
    pub columns: Vec<ColumnInfo>,
    /// Downstream-only columns filled by route `extract-*` rules: (name, value).
    pub extra: Vec<(String, String)>,
    /// Column indexes of the primary key, or of a unique key whose columns are all NOT NULL.
    pub handle: Option<Vec<usize>>,
    /// Column indexes of every other unique key (may hold NULLs).
    pub unique_keys: Vec<Vec<usize>>,
}

impl TargetTable {
    /// A table with its columns and keys.
    pub fn new(
        schema: &str,
        table: &str,
        columns: Vec<ColumnInfo>,
        handle: Option<Vec<usize>>,
        unique_keys: Vec<Vec<usize>>,
    ) -> Self {
        Self {
            schema: schema.to_string(),
            table: table.to_string(),
            quoted: format!("{}.{}", quote_ident(schema), quote_ident(table)),
            columns,
            extra: Vec::new(),
            handle,
            unique_keys,
        }
    }
}

/// What a row change does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmlKind {
    Insert,
    Update,
    Delete,
}

/// One row's change, ready for SQL.
#[derive(Debug, Clone)]
pub struct RowChange {
    pub table: Arc<TargetTable>,
    pub kind: DmlKind,
    /// Image before the change (update, delete).
    pub before: Option<Vec<Value>>,
    /// Image after the change (insert, update).
    pub after: Option<Vec<Value>>,
    /// Write the idempotent form.
    pub safe_mode: bool,
    /// The binlog event's timestamp (seconds since the epoch), for the lag metric.
    pub ts: u32,
}

impl RowChange {
    /// The columns that identify this row in `image`: the handle, else a unique key with no
    /// NULL in `image`; `None` means every column.
    pub fn key_columns<'a>(&'a self, image: &[Value]) -> Option<&'a [usize]> {
        if let Some(h) = &self.table.handle {
            return Some(h);
        }
        self.table
            .unique_keys
            .iter()
            .find(|k| {
                k.iter()
                    .all(|&i| !matches!(image.get(i), Some(Value::Null) | None))
            })
            .map(Vec::as_slice)
    }

    /// True when an update changes the values of its identifying key (or of any unique key).
    pub fn changes_key(&self) -> bool {
        let (Some(b), Some(a)) = (&self.before, &self.after) else {
            return false;
        };
        let differs = |k: &[usize]| k.iter().any(|&i| b.get(i) != a.get(i));
        self.table.handle.as_deref().is_some_and(differs)
            || self.table.unique_keys.iter().any(|k| differs(k))
    }
}

fn push_value(out: &mut String, v: &Value, col: &ColumnInfo) {
    v.write_sql_literal(col, out);
}

fn push_extra_literal(out: &mut String, v: &str) {
    out.push_str(&super::quote_string(v));
}

/// `(c1,c2,...)` including extra columns.
fn push_column_list(out: &mut String, t: &TargetTable) {
    out.push('(');
    let names = t
        .columns
        .iter()
        .map(|c| c.name.as_str())
        .chain(t.extra.iter().map(|(n, _)| n.as_str()));
    for (i, n) in names.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&quote_ident(n));
    }
    out.push(')');
}

/// `(v1,v2,...)` including extra column values.
fn push_row(out: &mut String, t: &TargetTable, image: &[Value]) {
    out.push('(');
    for (i, col) in t.columns.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_value(out, image.get(i).unwrap_or(&Value::Null), col);
    }
    for (_, v) in &t.extra {
        out.push(',');
        push_extra_literal(out, v);
    }
    out.push(')');
}

/// Columns whose equality test is unreliable: FLOAT is stored with less precision than any
/// literal we could write. They are left out of all-column WHERE clauses when other columns
/// remain.
fn comparable(col: &ColumnInfo) -> bool {
    col.sql_type != SqlType::Float
}

/// `WHERE ...` identifying `image` (with `LIMIT 1` when no key identifies it).
fn push_where(out: &mut String, ch: &RowChange, image: &[Value]) {
    let t = &ch.table;
    out.push_str(" WHERE ");
    let key = ch.key_columns(image);
    let all: Vec<usize>;
    let cols: &[usize] = match key {
        Some(k) => k,
        None => {
            all = (0..t.columns.len())
                .filter(|&i| comparable(&t.columns[i]))
                .collect();
            if all.is_empty() { &[] } else { &all }
        }
    };
    let mut first = true;
    for &i in cols {
        if !first {
            out.push_str(" AND ");
        }
        first = false;
        let col = &t.columns[i];
        out.push_str(&quote_ident(&col.name));
        match image.get(i).unwrap_or(&Value::Null) {
            Value::Null => out.push_str(" IS NULL"),
            v => {
                out.push_str(" = ");
                push_value(out, v, col);
            }
        }
    }
    for (n, v) in &t.extra {
        if !first {
            out.push_str(" AND ");
        }
        first = false;
        out.push_str(&quote_ident(n));
        out.push_str(" = ");
        push_extra_literal(out, v);
    }
    if first {
        out.push_str("1 = 1");
    }
    if key.is_none() {
        out.push_str(" LIMIT 1");
    }
}

fn insert_sql(out: &mut String, ch: &RowChange, replace: bool, image: &[Value]) {
    out.push_str(if replace {
        "REPLACE INTO "
    } else {
        "INSERT INTO "
    });
    out.push_str(&ch.table.quoted);
    out.push(' ');
    push_column_list(out, &ch.table);
    out.push_str(" VALUES ");
    push_row(out, &ch.table, image);
}

fn delete_sql(out: &mut String, ch: &RowChange, image: &[Value]) {
    out.push_str("DELETE FROM ");
    out.push_str(&ch.table.quoted);
    push_where(out, ch, image);
}

fn update_sql(out: &mut String, ch: &RowChange, before: &[Value], after: &[Value]) {
    let t = &ch.table;
    out.push_str("UPDATE ");
    out.push_str(&t.quoted);
    out.push_str(" SET ");
    for (i, col) in t.columns.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&quote_ident(&col.name));
        out.push('=');
        push_value(out, after.get(i).unwrap_or(&Value::Null), col);
    }
    push_where(out, ch, before);
}

/// Appends the statements of one change to `out` (each a complete statement, no `;`).
pub fn change_sql(ch: &RowChange, out: &mut Vec<String>) {
    let mut s = String::with_capacity(128);
    match (ch.kind, &ch.before, &ch.after) {
        (DmlKind::Insert, _, Some(a)) => insert_sql(&mut s, ch, ch.safe_mode, a),
        (DmlKind::Delete, Some(b), _) => delete_sql(&mut s, ch, b),
        (DmlKind::Update, Some(b), Some(a)) if ch.safe_mode => {
            // Idempotent: remove the old row when its key moves (or when no key identifies
            // it, so REPLACE could not find it), then write the new one whole.
            if ch.changes_key() || ch.key_columns(b).is_none() {
                delete_sql(&mut s, ch, b);
                out.push(std::mem::take(&mut s));
            }
            insert_sql(&mut s, ch, true, a);
        }
        (DmlKind::Update, Some(b), Some(a)) => update_sql(&mut s, ch, b, a),
        _ => return,
    }
    out.push(s);
}

/// Appends the statements for `changes`, merging runs of inserts into one table into a
/// multi-row INSERT/REPLACE and runs of keyed deletes into one `DELETE ... WHERE (k) IN (...)`
/// when `multiple_rows` is set. Order between runs is kept.
pub fn batch_sql(changes: &[RowChange], multiple_rows: bool, out: &mut Vec<String>) {
    if !multiple_rows {
        for ch in changes {
            change_sql(ch, out);
        }
        return;
    }
    let mut i = 0;
    while i < changes.len() {
        let ch = &changes[i];
        let same_run = |o: &RowChange| {
            Arc::ptr_eq(&o.table, &ch.table) && o.kind == ch.kind && o.safe_mode == ch.safe_mode
        };
        let mut j = i + 1;
        while j < changes.len() && same_run(&changes[j]) {
            j += 1;
        }
        let run = &changes[i..j];
        match ch.kind {
            DmlKind::Insert if run.len() > 1 => {
                let mut s = String::with_capacity(64 * run.len());
                insert_sql(&mut s, ch, ch.safe_mode, ch.after.as_deref().unwrap_or(&[]));
                for o in &run[1..] {
                    s.push(',');
                    push_row(&mut s, &o.table, o.after.as_deref().unwrap_or(&[]));
                }
                out.push(s);
            }
            DmlKind::Delete
                if run.len() > 1 && ch.table.handle.is_some() && ch.table.extra.is_empty() =>
            {
                let t = &ch.table;
                let key = t.handle.as_ref().expect("checked");
                let mut s = format!("DELETE FROM {} WHERE (", t.quoted);
                for (n, &k) in key.iter().enumerate() {
                    if n > 0 {
                        s.push(',');
                    }
                    s.push_str(&quote_ident(&t.columns[k].name));
                }
                s.push_str(") IN (");
                for (r, o) in run.iter().enumerate() {
                    if r > 0 {
                        s.push(',');
                    }
                    s.push('(');
                    let b = o.before.as_deref().unwrap_or(&[]);
                    for (n, &k) in key.iter().enumerate() {
                        if n > 0 {
                            s.push(',');
                        }
                        push_value(&mut s, b.get(k).unwrap_or(&Value::Null), &t.columns[k]);
                    }
                    s.push(')');
                }
                s.push(')');
                out.push(s);
            }
            _ => {
                for o in run {
                    change_sql(o, out);
                }
            }
        }
        i = j;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(handle: Option<Vec<usize>>, uks: Vec<Vec<usize>>) -> Arc<TargetTable> {
        Arc::new(TargetTable::new(
            "db",
            "t",
            vec![
                ColumnInfo::new("id", SqlType::Int),
                ColumnInfo::new("name", SqlType::VarChar),
                ColumnInfo::new("f", SqlType::Float),
            ],
            handle,
            uks,
        ))
    }

    fn row(id: i64, name: &str) -> Vec<Value> {
        vec![
            Value::Int(id),
            Value::Bytes(name.as_bytes().to_vec()),
            Value::Float(1.5),
        ]
    }

    fn sql(ch: RowChange) -> Vec<String> {
        let mut out = Vec::new();
        change_sql(&ch, &mut out);
        out
    }

    fn change(
        t: &Arc<TargetTable>,
        kind: DmlKind,
        before: Option<Vec<Value>>,
        after: Option<Vec<Value>>,
        safe: bool,
    ) -> RowChange {
        RowChange {
            table: t.clone(),
            kind,
            before,
            after,
            safe_mode: safe,
            ts: 0,
        }
    }

    #[test]
    fn keyed_statements() {
        let t = table(Some(vec![0]), vec![]);
        assert_eq!(
            sql(change(
                &t,
                DmlKind::Insert,
                None,
                Some(row(1, "a'b")),
                false
            )),
            ["INSERT INTO `db`.`t` (`id`,`name`,`f`) VALUES (1,'a\\'b',1.5e0)"]
        );
        assert_eq!(
            sql(change(
                &t,
                DmlKind::Update,
                Some(row(1, "a")),
                Some(row(1, "b")),
                false
            )),
            ["UPDATE `db`.`t` SET `id`=1,`name`='b',`f`=1.5e0 WHERE `id` = 1"]
        );
        assert_eq!(
            sql(change(&t, DmlKind::Delete, Some(row(1, "a")), None, false)),
            ["DELETE FROM `db`.`t` WHERE `id` = 1"]
        );
    }

    #[test]
    fn safe_mode_is_idempotent_form() {
        let t = table(Some(vec![0]), vec![]);
        assert_eq!(
            sql(change(&t, DmlKind::Insert, None, Some(row(1, "a")), true)),
            ["REPLACE INTO `db`.`t` (`id`,`name`,`f`) VALUES (1,'a',1.5e0)"]
        );
        assert_eq!(
            sql(change(
                &t,
                DmlKind::Update,
                Some(row(1, "a")),
                Some(row(1, "b")),
                true
            )),
            ["REPLACE INTO `db`.`t` (`id`,`name`,`f`) VALUES (1,'b',1.5e0)"]
        );
        assert_eq!(
            sql(change(
                &t,
                DmlKind::Update,
                Some(row(1, "a")),
                Some(row(2, "a")),
                true
            )),
            [
                "DELETE FROM `db`.`t` WHERE `id` = 1",
                "REPLACE INTO `db`.`t` (`id`,`name`,`f`) VALUES (2,'a',1.5e0)"
            ]
        );
    }

    #[test]
    fn keyless_safe_update_deletes_one_row_then_inserts() {
        let t = table(None, vec![]);
        assert_eq!(
            sql(change(
                &t,
                DmlKind::Update,
                Some(row(1, "a")),
                Some(row(1, "b")),
                true
            )),
            [
                "DELETE FROM `db`.`t` WHERE `id` = 1 AND `name` = 'a' LIMIT 1",
                "REPLACE INTO `db`.`t` (`id`,`name`,`f`) VALUES (1,'b',1.5e0)"
            ]
        );
    }

    #[test]
    fn keyless_and_nullable_unique_keys() {
        let t = table(None, vec![vec![1]]);
        // The unique key is usable when its value is not NULL...
        assert_eq!(
            sql(change(&t, DmlKind::Delete, Some(row(1, "a")), None, false)),
            ["DELETE FROM `db`.`t` WHERE `name` = 'a'"]
        );
        // ...else every comparable column, one row only.
        let nul = vec![Value::Int(1), Value::Null, Value::Float(2.0)];
        assert_eq!(
            sql(change(&t, DmlKind::Delete, Some(nul), None, false)),
            ["DELETE FROM `db`.`t` WHERE `id` = 1 AND `name` IS NULL LIMIT 1"]
        );
    }

    #[test]
    fn multiple_rows_merge_runs() {
        let t = table(Some(vec![0]), vec![]);
        let changes = vec![
            change(&t, DmlKind::Insert, None, Some(row(1, "a")), false),
            change(&t, DmlKind::Insert, None, Some(row(2, "b")), false),
            change(&t, DmlKind::Delete, Some(row(3, "c")), None, false),
            change(&t, DmlKind::Delete, Some(row(4, "d")), None, false),
            change(
                &t,
                DmlKind::Update,
                Some(row(5, "e")),
                Some(row(5, "f")),
                false,
            ),
        ];
        let mut out = Vec::new();
        batch_sql(&changes, true, &mut out);
        assert_eq!(
            out,
            [
                "INSERT INTO `db`.`t` (`id`,`name`,`f`) VALUES (1,'a',1.5e0),(2,'b',1.5e0)",
                "DELETE FROM `db`.`t` WHERE (`id`) IN ((3),(4))",
                "UPDATE `db`.`t` SET `id`=5,`name`='f',`f`=1.5e0 WHERE `id` = 5",
            ]
        );
    }

    #[test]
    fn extract_columns_are_written_and_matched() {
        let mut t = (*table(Some(vec![0]), vec![])).clone();
        t.extra = vec![("c_source".into(), "s1".into())];
        let t = Arc::new(t);
        assert_eq!(
            sql(change(&t, DmlKind::Insert, None, Some(row(1, "a")), false)),
            ["INSERT INTO `db`.`t` (`id`,`name`,`f`,`c_source`) VALUES (1,'a',1.5e0,'s1')"]
        );
        assert_eq!(
            sql(change(&t, DmlKind::Delete, Some(row(1, "a")), None, false)),
            ["DELETE FROM `db`.`t` WHERE `id` = 1 AND `c_source` = 's1'"]
        );
    }
}

/// DM's `compact`: merges the changes of one batch that touch the same row into one.
///
/// Only tables whose handle (primary key, or not-null unique key) is their only unique key
/// are compacted: changes to different rows of such a table cannot conflict, so merging a
/// row's changes into the place of its first change keeps the batch's outcome. A
/// key-changing UPDATE becomes DELETE old + INSERT new first. Rules, per row:
/// INSERT+UPDATE → INSERT; UPDATE+UPDATE → UPDATE; UPDATE+DELETE → DELETE;
/// INSERT+DELETE → DELETE; DELETE+INSERT → INSERT in safe mode (REPLACE).
/// Other tables' changes pass through in order.
pub fn compact(changes: Vec<RowChange>) -> Vec<RowChange> {
    use std::collections::HashMap;
    let compactable = |t: &TargetTable| t.handle.is_some() && t.unique_keys.is_empty();
    let mut out: Vec<Option<RowChange>> = Vec::with_capacity(changes.len());
    let mut slot: HashMap<(usize, String), usize> = HashMap::new();
    let mut key = String::new();
    for ch in changes {
        if !compactable(&ch.table) {
            out.push(Some(ch));
            continue;
        }
        let split: Vec<RowChange> = if ch.kind == DmlKind::Update && ch.changes_key() {
            vec![
                RowChange {
                    kind: DmlKind::Delete,
                    after: None,
                    ..ch.clone()
                },
                RowChange {
                    kind: DmlKind::Insert,
                    before: None,
                    ..ch
                },
            ]
        } else {
            vec![ch]
        };
        for ch in split {
            let image = match ch.kind {
                DmlKind::Insert => ch.after.as_deref(),
                _ => ch.before.as_deref(),
            };
            let Some(image) = image else {
                out.push(Some(ch));
                continue;
            };
            key.clear();
            for &i in ch.table.handle.as_deref().unwrap_or(&[]) {
                image
                    .get(i)
                    .unwrap_or(&Value::Null)
                    .write_sql_literal(&ch.table.columns[i], &mut key);
                key.push('\u{0}');
            }
            let id = (Arc::as_ptr(&ch.table) as usize, key.clone());
            match slot.get(&id) {
                Some(&i) => {
                    let prev = out[i].take().expect("a slot holds its row's change");
                    out[i] = Some(merge(prev, ch));
                }
                None => {
                    slot.insert(id, out.len());
                    out.push(Some(ch));
                }
            }
        }
    }
    out.into_iter().flatten().collect()
}

/// Merges `next` into `prev`, two changes of the same row in order.
fn merge(prev: RowChange, next: RowChange) -> RowChange {
    let safe = prev.safe_mode || next.safe_mode;
    match (prev.kind, next.kind) {
        (DmlKind::Insert, DmlKind::Update) => RowChange {
            kind: DmlKind::Insert,
            before: None,
            after: next.after,
            safe_mode: safe,
            ..prev
        },
        (DmlKind::Update, DmlKind::Update) => RowChange {
            after: next.after,
            safe_mode: safe,
            ..prev
        },
        (DmlKind::Update, DmlKind::Delete) => RowChange {
            kind: DmlKind::Delete,
            after: None,
            safe_mode: safe,
            ..prev
        },
        (DmlKind::Insert, DmlKind::Delete) => RowChange {
            safe_mode: safe,
            ..next
        },
        (DmlKind::Delete, DmlKind::Insert) => RowChange {
            safe_mode: true,
            ..next
        },
        // Not reachable for a consistent stream (e.g. INSERT after INSERT); the later change
        // wins in its idempotent form.
        _ => RowChange {
            safe_mode: true,
            ..next
        },
    }
}

#[cfg(test)]
mod compact_tests {
    use super::*;
    use crate::binlog::value::SqlType;

    fn t() -> Arc<TargetTable> {
        Arc::new(TargetTable::new(
            "db",
            "t",
            vec![
                ColumnInfo::new("id", SqlType::Int),
                ColumnInfo::new("v", SqlType::Int),
            ],
            Some(vec![0]),
            vec![],
        ))
    }

    fn r(id: i64, v: i64) -> Option<Vec<Value>> {
        Some(vec![Value::Int(id), Value::Int(v)])
    }

    fn ch(
        t: &Arc<TargetTable>,
        kind: DmlKind,
        before: Option<Vec<Value>>,
        after: Option<Vec<Value>>,
    ) -> RowChange {
        RowChange {
            table: t.clone(),
            kind,
            before,
            after,
            safe_mode: false,
            ts: 0,
        }
    }

    type Shape = (DmlKind, Option<Vec<Value>>, Option<Vec<Value>>, bool);

    fn shape(v: &[RowChange]) -> Vec<Shape> {
        v.iter()
            .map(|c| (c.kind, c.before.clone(), c.after.clone(), c.safe_mode))
            .collect()
    }

    #[test]
    fn merges_per_row() {
        let t = t();
        let out = compact(vec![
            ch(&t, DmlKind::Insert, None, r(1, 1)),
            ch(&t, DmlKind::Update, r(1, 1), r(1, 2)),
            ch(&t, DmlKind::Insert, None, r(2, 1)),
            ch(&t, DmlKind::Update, r(3, 1), r(3, 2)),
            ch(&t, DmlKind::Update, r(3, 2), r(3, 3)),
            ch(&t, DmlKind::Delete, r(2, 1), None),
            ch(&t, DmlKind::Delete, r(4, 1), None),
            ch(&t, DmlKind::Insert, None, r(4, 9)),
        ]);
        assert_eq!(
            shape(&out),
            [
                (DmlKind::Insert, None, r(1, 2), false),
                (DmlKind::Delete, r(2, 1), None, false),
                (DmlKind::Update, r(3, 1), r(3, 3), false),
                (DmlKind::Insert, None, r(4, 9), true),
            ]
        );
    }

    #[test]
    fn key_change_splits_and_other_tables_pass() {
        let t = t();
        let keyless = Arc::new(TargetTable::new(
            "db",
            "k",
            vec![ColumnInfo::new("v", SqlType::Int)],
            None,
            vec![],
        ));
        let out = compact(vec![
            ch(&t, DmlKind::Update, r(1, 1), r(2, 1)),
            ch(&keyless, DmlKind::Insert, None, Some(vec![Value::Int(1)])),
            ch(&t, DmlKind::Update, r(2, 1), r(2, 5)),
            ch(&keyless, DmlKind::Insert, None, Some(vec![Value::Int(1)])),
        ]);
        assert_eq!(out.len(), 4);
        assert_eq!(
            (out[0].kind, out[1].kind, out[3].kind),
            (DmlKind::Delete, DmlKind::Insert, DmlKind::Insert)
        );
        assert_eq!(
            out[1].after,
            r(2, 5),
            "the moved row's later update merges into its insert"
        );
        assert!(Arc::ptr_eq(&out[2].table, &keyless) && Arc::ptr_eq(&out[3].table, &keyless));
    }
}
