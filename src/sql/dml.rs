//! SQL for row changes: INSERT / UPDATE / DELETE keyed by the table's handle, and the
//! safe-mode forms (REPLACE; DELETE + REPLACE when a key changes) that make replay idempotent.
//!
//! WHERE clauses use, in DM's order: the primary key, else a unique key whose columns are all
//! NOT NULL, else a unique key whose values are non-NULL in this row, else every column (with
//! `LIMIT 1`, so that of two identical rows in a keyless table one is touched, as upstream).
//! DM's `compact` (merging a batch's changes to the same row) is in [`compact`].
//! Values are written as literals (`Value::write_sql_literal`), so a batch is one text
//! round trip; TIMESTAMP literals are UTC, so the connection runs with `time_zone='+00:00'`.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use crate::binlog::value::{ColumnInfo, SqlType, Value};
use crate::sql::quote_ident;

mod compact;
pub use compact::compact;

/// A downstream table as the DML generator needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetTable {
    pub schema: String,
    pub table: String,
    /// `` `schema`.`table` ``.
    pub quoted: String,
    /// Upstream columns, in row-image order.
    pub columns: Vec<ColumnInfo>,
    /// `columns`' names, quoted (computed once: SQL is built per row).
    pub quoted_columns: Vec<String>,
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
            quoted_columns: columns.iter().map(|c| quote_ident(&c.name)).collect(),
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
    /// Its conflict keys, once the dispatcher computed them (the batch planner reuses them).
    pub keys: ChangeKeys,
}

/// A change's conflict keys, kept inline; unknown (to be computed) when not set or when
/// there are more than [`ChangeKeys::INLINE`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChangeKeys {
    keys: [u64; ChangeKeys::INLINE],
    len: u8,
}

impl ChangeKeys {
    /// Keys kept inline.
    pub const INLINE: usize = 4;

    /// Keys `keys` (unknown if there are too many to keep).
    pub fn new(keys: &[u64]) -> Self {
        let mut k = Self::default();
        if (1..=Self::INLINE).contains(&keys.len()) {
            k.keys[..keys.len()].copy_from_slice(keys);
            k.len = keys.len() as u8;
        }
        k
    }

    /// The keys, when known.
    pub fn get(&self) -> Option<&[u64]> {
        (self.len > 0).then(|| &self.keys[..usize::from(self.len)])
    }
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
    for (i, n) in t.quoted_columns.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(n);
    }
    for (n, _) in &t.extra {
        out.push(',');
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
        out.push_str(&t.quoted_columns[i]);
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
        out.push_str(&t.quoted_columns[i]);
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

/// A map keyed by conflict keys, which are already hashes (FNV-1a): they index the table
/// as they are instead of being hashed again.
pub type KeyMap<V> = HashMap<u64, V, BuildHasherDefault<KeyIdentity>>;

/// The [`Hasher`] of [`KeyMap`]: passes a `u64` through.
#[derive(Debug, Default, Clone, Copy)]
pub struct KeyIdentity(u64);

impl Hasher for KeyIdentity {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed; fold anything else in, FNV-style.
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// The statement shape a change (or one half of a safe-mode key-changing update) takes in a
/// planned batch. Within a layer, statements run in rank order: deletes, updates, inserts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Form {
    /// Rows of one table deleted by handle in one `DELETE ... WHERE <handle> IN (...)`.
    DeleteKeyed,
    /// A DELETE of its own (no handle, or extra route columns).
    DeleteOne,
    /// Rows of one table updated by handle in one `UPDATE ... SET c = CASE ... END`.
    UpdateKeyed,
    /// An UPDATE of its own (key change, no handle, or extra route columns).
    UpdateOne,
    Insert,
    Replace,
}

impl Form {
    fn rank(self) -> u8 {
        match self {
            Self::DeleteKeyed | Self::DeleteOne => 0,
            Self::UpdateKeyed | Self::UpdateOne => 1,
            Self::Insert | Self::Replace => 2,
        }
    }

    fn merges(self) -> bool {
        !matches!(self, Self::DeleteOne | Self::UpdateOne)
    }
}

/// One statement's worth of a planned batch: (layer, rank, group, change index, form).
type Item = (u32, u8, u32, u32, Form);

/// Turns a batch of row changes into few statements that the target executes cheaply, with
/// the outcome of applying the changes one by one in order.
///
/// Two changes that share no conflict key (see `actors::syncer::causality`: every unique
/// key's values in each image) commute: the causality stage already applies such changes on
/// different workers in any order. So each change is placed in the earliest *layer* after
/// every earlier change it shares a key with, and within a layer the rows of one table and
/// one statement shape are merged: one multi-row INSERT or REPLACE, one
/// `DELETE ... WHERE <handle> IN (...)`, one `UPDATE ... SET c = CASE <handle> ... END
/// WHERE <handle> IN (...)`. Layers run in order and, inside a layer, deletes before updates
/// before inserts, which also lets a change follow an earlier one of a lower rank in the
/// same layer (a row deleted then inserted again is one DELETE and one INSERT). Rows of one
/// statement never share a key, so the statement is equivalent to its rows in any order.
///
/// With foreign key checks on in the target session, changes to different tables must not be
/// reordered (a child row could be written before its parent): [`BatchPlanner::in_order`]
/// only merges consecutive changes of one table and shape that share no key.
#[derive(Debug, Default)]
pub struct BatchPlanner {
    /// Keep the changes' order (see above).
    keep_order: bool,
    /// Conflict key → (layer, rank) of the last statement that touched it.
    last: KeyMap<(u32, u8)>,
    /// (layer, form, table) → group number, for the mergeable forms.
    open: HashMap<(u32, Form, usize), u32>,
    items: Vec<Item>,
    keys: Vec<u64>,
}

impl BatchPlanner {
    /// A planner that keeps the changes' order (for sessions with foreign key checks on).
    pub fn in_order() -> Self {
        Self {
            keep_order: true,
            ..Self::default()
        }
    }

    /// Appends the statements for `changes` to `out`, each preceded by `;\n` when `out` is
    /// not empty. `keys` gives a change's conflict keys. Returns the number of statements.
    pub fn plan(
        &mut self,
        changes: &[RowChange],
        keys: &mut dyn FnMut(&RowChange, &mut Vec<u64>),
        out: &mut String,
    ) -> usize {
        self.last.clear();
        self.open.clear();
        self.items.clear();
        if self.keep_order {
            self.plan_in_order(changes, keys);
            return self.emit(changes, out);
        }
        let mut groups = 0u32;
        for (i, ch) in changes.iter().enumerate() {
            let forms = forms(ch);
            let (Some(first), Some(last)) = (forms.first(), forms.last()) else {
                continue;
            };
            keys(ch, &mut self.keys);
            let mut layer = 0;
            for k in &self.keys {
                if let Some(&(l, r)) = self.last.get(k) {
                    layer = layer.max(if first.rank() > r { l } else { l + 1 });
                }
            }
            for k in &self.keys {
                self.last.insert(*k, (layer, last.rank()));
            }
            for &form in forms.iter() {
                let group = if form.merges() {
                    let table = Arc::as_ptr(&ch.table) as usize;
                    *self.open.entry((layer, form, table)).or_insert_with(|| {
                        groups += 1;
                        groups
                    })
                } else {
                    groups += 1;
                    groups
                };
                self.items.push((layer, form.rank(), group, i as u32, form));
            }
        }
        self.emit(changes, out)
    }

    /// Every change in its own layer after the previous one, except that a change joins the
    /// previous one's statement when that merges rows of the same table and shape and holds
    /// none of its keys.
    fn plan_in_order(
        &mut self,
        changes: &[RowChange],
        keys: &mut dyn FnMut(&RowChange, &mut Vec<u64>),
    ) {
        // `last` holds the current group's keys; layer = group number.
        let mut group = 0u32;
        let mut current: Option<(Form, usize)> = None;
        for (i, ch) in changes.iter().enumerate() {
            let forms = forms(ch);
            let single = forms.first() == forms.last();
            keys(ch, &mut self.keys);
            let table = Arc::as_ptr(&ch.table) as usize;
            for &form in forms.iter() {
                let joins = single
                    && form.merges()
                    && current == Some((form, table))
                    && !self.keys.iter().any(|k| self.last.contains_key(k));
                if !joins {
                    group += 1;
                    current = Some((form, table));
                    self.last.clear();
                }
                for k in &self.keys {
                    self.last.insert(*k, (group, 0));
                }
                self.items.push((group, form.rank(), group, i as u32, form));
            }
        }
    }

    /// Writes the planned items' statements; returns how many.
    fn emit(&mut self, changes: &[RowChange], out: &mut String) -> usize {
        self.items
            .sort_unstable_by_key(|&(l, r, g, i, _)| (l, r, g, i));
        let mut statements = 0;
        let mut rows = Vec::new();
        let mut i = 0;
        while i < self.items.len() {
            let (_, _, group, _, form) = self.items[i];
            rows.clear();
            while i < self.items.len() && self.items[i].2 == group {
                rows.push(&changes[self.items[i].3 as usize]);
                i += 1;
            }
            let len = out.len();
            if !out.is_empty() {
                out.push_str(";\n");
            }
            let body = out.len();
            group_sql(form, &rows, out);
            if out.len() == body {
                out.truncate(len);
            } else {
                statements += 1;
            }
        }
        statements
    }
}

/// The statement shapes of one change, in execution order (empty: nothing to do).
fn forms(ch: &RowChange) -> SmallForms {
    let t = &ch.table;
    let delete = if t.handle.is_some() && t.extra.is_empty() {
        Form::DeleteKeyed
    } else {
        Form::DeleteOne
    };
    match (ch.kind, &ch.before, &ch.after) {
        (DmlKind::Insert, _, Some(_)) if ch.safe_mode => SmallForms::one(Form::Replace),
        (DmlKind::Insert, _, Some(_)) => SmallForms::one(Form::Insert),
        (DmlKind::Delete, Some(_), _) => SmallForms::one(delete),
        (DmlKind::Update, Some(b), Some(_)) if ch.safe_mode => {
            // Idempotent: remove the old row when its key moves (or when no key identifies
            // it, so REPLACE could not find it), then write the new one whole.
            if ch.changes_key() || ch.key_columns(b).is_none() {
                SmallForms::two(delete, Form::Replace)
            } else {
                SmallForms::one(Form::Replace)
            }
        }
        (DmlKind::Update, Some(_), Some(_)) => {
            if t.handle.is_some() && t.extra.is_empty() && !ch.changes_key() {
                SmallForms::one(Form::UpdateKeyed)
            } else {
                SmallForms::one(Form::UpdateOne)
            }
        }
        _ => SmallForms::default(),
    }
}

/// At most two forms, without allocating.
#[derive(Default)]
struct SmallForms {
    forms: [Option<Form>; 2],
}

impl SmallForms {
    fn one(f: Form) -> Self {
        Self {
            forms: [Some(f), None],
        }
    }

    fn two(a: Form, b: Form) -> Self {
        Self {
            forms: [Some(a), Some(b)],
        }
    }

    fn first(&self) -> Option<Form> {
        self.forms[0]
    }

    fn last(&self) -> Option<Form> {
        self.forms[1].or(self.forms[0])
    }

    fn iter(&self) -> impl Iterator<Item = &Form> {
        self.forms.iter().flatten()
    }
}

fn before(c: &RowChange) -> &[Value] {
    c.before.as_deref().unwrap_or(&[])
}

fn after(c: &RowChange) -> &[Value] {
    c.after.as_deref().unwrap_or(&[])
}

/// Appends one statement for `rows` (all of one table, at least one) in `form`.
fn group_sql(form: Form, rows: &[&RowChange], out: &mut String) {
    let ch = rows[0];
    match form {
        Form::Insert | Form::Replace => {
            insert_sql(out, ch, form == Form::Replace, after(ch));
            for o in &rows[1..] {
                out.push(',');
                push_row(out, &o.table, after(o));
            }
        }
        Form::DeleteOne | Form::DeleteKeyed if rows.len() == 1 => delete_sql(out, ch, before(ch)),
        Form::DeleteKeyed => {
            out.push_str("DELETE FROM ");
            out.push_str(&ch.table.quoted);
            out.push_str(" WHERE ");
            push_handle_in(out, &ch.table, rows);
        }
        Form::UpdateOne | Form::UpdateKeyed if rows.len() == 1 => {
            update_sql(out, ch, before(ch), after(ch))
        }
        Form::UpdateKeyed => update_case_sql(out, rows),
        Form::DeleteOne | Form::UpdateOne => unreachable!("one row per group"),
    }
}

/// `<handle> IN (...)` over the before images of `rows` (or `(a = 1 AND b = 2) OR ...` for
/// a handle of several columns).
fn push_handle_in(out: &mut String, t: &TargetTable, rows: &[&RowChange]) {
    let handle = t.handle.as_deref().unwrap_or(&[]);
    if let [k] = handle {
        out.push_str(&t.quoted_columns[*k]);
        out.push_str(" IN (");
        for (r, o) in rows.iter().enumerate() {
            if r > 0 {
                out.push(',');
            }
            push_value(
                out,
                before(o).get(*k).unwrap_or(&Value::Null),
                &t.columns[*k],
            );
        }
        out.push(')');
        return;
    }
    for (r, o) in rows.iter().enumerate() {
        if r > 0 {
            out.push_str(" OR ");
        }
        out.push('(');
        push_handle_eq(out, t, before(o));
        out.push(')');
    }
}

/// `a = 1 AND b = 2` for the handle's values in `image`.
fn push_handle_eq(out: &mut String, t: &TargetTable, image: &[Value]) {
    for (n, &k) in t.handle.as_deref().unwrap_or(&[]).iter().enumerate() {
        if n > 0 {
            out.push_str(" AND ");
        }
        out.push_str(&t.quoted_columns[k]);
        out.push_str(" = ");
        push_value(out, image.get(k).unwrap_or(&Value::Null), &t.columns[k]);
    }
}

/// One UPDATE for rows of a table with a handle, none changing a key: each column that some
/// row changes is set by `CASE` on the handle (rows that keep it fall to `ELSE` the column
/// itself); the `WHERE` lists the handles, as the rows' own UPDATEs would.
fn update_case_sql(out: &mut String, rows: &[&RowChange]) {
    let t = &rows[0].table;
    let handle = t.handle.as_deref().unwrap_or(&[]);
    // Per row, once: which of the first 64 columns change, and the handle's literal
    // (`v`, or `a = 1 AND b = 2` for a handle of several columns).
    let mut masks = Vec::with_capacity(rows.len());
    let mut keys = String::with_capacity(16 * rows.len());
    let mut key_ends = Vec::with_capacity(rows.len());
    for c in rows {
        let (b, a) = (before(c), after(c));
        let mut mask = 0u64;
        for i in 0..t.columns.len().min(64) {
            if b.get(i) != a.get(i) {
                mask |= 1 << i;
            }
        }
        masks.push(mask);
        if let [k] = handle {
            push_value(&mut keys, b.get(*k).unwrap_or(&Value::Null), &t.columns[*k]);
        } else {
            push_handle_eq(&mut keys, t, b);
        }
        key_ends.push(keys.len());
    }
    let key = |r: usize| &keys[if r == 0 { 0 } else { key_ends[r - 1] }..key_ends[r]];
    let changed = |r: usize, i: usize| {
        if i < 64 {
            masks[r] >> i & 1 == 1
        } else {
            before(rows[r]).get(i) != after(rows[r]).get(i)
        }
    };
    let start = out.len();
    out.push_str("UPDATE ");
    out.push_str(&t.quoted);
    out.push_str(" SET ");
    let mut any = false;
    for (i, col) in t.columns.iter().enumerate() {
        if handle.contains(&i) || !(0..rows.len()).any(|r| changed(r, i)) {
            continue;
        }
        if any {
            out.push(',');
        }
        any = true;
        let name = &t.quoted_columns[i];
        out.push_str(name);
        out.push_str("=CASE");
        if let [k] = handle {
            out.push(' ');
            out.push_str(&t.quoted_columns[*k]);
        }
        for r in (0..rows.len()).filter(|&r| changed(r, i)) {
            out.push_str(" WHEN ");
            out.push_str(key(r));
            out.push_str(" THEN ");
            push_value(out, after(rows[r]).get(i).unwrap_or(&Value::Null), col);
        }
        out.push_str(" ELSE ");
        out.push_str(name);
        out.push_str(" END");
    }
    if !any {
        // No column changes: nothing to do.
        out.truncate(start);
        return;
    }
    out.push_str(" WHERE ");
    if let [k] = handle {
        out.push_str(&t.quoted_columns[*k]);
        out.push_str(" IN (");
        for r in 0..rows.len() {
            if r > 0 {
                out.push(',');
            }
            out.push_str(key(r));
        }
        out.push(')');
    } else {
        for r in 0..rows.len() {
            if r > 0 {
                out.push_str(" OR ");
            }
            out.push('(');
            out.push_str(key(r));
            out.push(')');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `db`.`u`, with the columns of `t` and `id` as its key.
    fn table_u(t: &TargetTable) -> Arc<TargetTable> {
        Arc::new(TargetTable::new(
            "db",
            "u",
            t.columns.clone(),
            Some(vec![0]),
            vec![],
        ))
    }

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
            keys: ChangeKeys::default(),
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

    /// Plans `changes` with conflict keys = the handle's values (as causality computes them
    /// for these tables) and returns the statements.
    fn plan(changes: &[RowChange]) -> Vec<String> {
        plan_with(BatchPlanner::default(), changes)
    }

    fn plan_with(mut planner: BatchPlanner, changes: &[RowChange]) -> Vec<String> {
        let mut text = String::new();
        let mut keys = |ch: &RowChange, out: &mut Vec<u64>| {
            out.clear();
            for image in [&ch.before, &ch.after].into_iter().flatten() {
                let mut k = ch.table.quoted.clone();
                for &i in ch.table.handle.as_deref().unwrap_or(&[]) {
                    k.push_str(&format!("/{:?}", image[i]));
                }
                out.push(
                    k.bytes()
                        .fold(0u64, |h, b| h.wrapping_mul(31) ^ u64::from(b)),
                );
            }
        };
        let n = planner.plan(changes, &mut keys, &mut text);
        let out: Vec<String> = text.split(";\n").map(str::to_string).collect();
        assert_eq!(n, out.len());
        out
    }

    #[test]
    fn batches_merge_rows_of_one_table_and_kind() {
        let t = table(Some(vec![0]), vec![]);
        let t2 = table_u(&t);
        let upd = |t: &Arc<TargetTable>, id, from, to| {
            change(
                t,
                DmlKind::Update,
                Some(row(id, from)),
                Some(row(id, to)),
                false,
            )
        };
        let changes = vec![
            change(&t, DmlKind::Insert, None, Some(row(1, "a")), false),
            change(&t2, DmlKind::Insert, None, Some(row(1, "z")), false),
            change(&t, DmlKind::Insert, None, Some(row(2, "b")), false),
            change(&t, DmlKind::Delete, Some(row(3, "c")), None, false),
            change(&t, DmlKind::Delete, Some(row(4, "d")), None, false),
            upd(&t, 5, "e", "f"),
            upd(&t, 6, "g", "h"),
            upd(&t2, 5, "e", "f"),
        ];
        assert_eq!(
            plan(&changes),
            [
                "DELETE FROM `db`.`t` WHERE `id` IN (3,4)",
                "UPDATE `db`.`t` SET `name`=CASE `id` WHEN 5 THEN 'f' WHEN 6 THEN 'h' ELSE `name` END WHERE `id` IN (5,6)",
                "UPDATE `db`.`u` SET `id`=5,`name`='f',`f`=1.5e0 WHERE `id` = 5",
                "INSERT INTO `db`.`t` (`id`,`name`,`f`) VALUES (1,'a',1.5e0),(2,'b',1.5e0)",
                "INSERT INTO `db`.`u` (`id`,`name`,`f`) VALUES (1,'z',1.5e0)",
            ]
        );
    }

    #[test]
    fn in_order_batches_merge_only_consecutive_rows() {
        let t = table(Some(vec![0]), vec![]);
        let t2 = table_u(&t);
        let ins =
            |t: &Arc<TargetTable>, id, v| change(t, DmlKind::Insert, None, Some(row(id, v)), false);
        let del =
            |t: &Arc<TargetTable>, id, v| change(t, DmlKind::Delete, Some(row(id, v)), None, false);
        assert_eq!(
            plan_with(
                BatchPlanner::in_order(),
                &[
                    ins(&t, 1, "a"),
                    ins(&t, 2, "b"),
                    ins(&t2, 1, "c"),
                    del(&t, 1, "a"),
                    del(&t, 2, "b"),
                    ins(&t, 1, "d"),
                    ins(&t, 1, "e"),
                ]
            ),
            [
                "INSERT INTO `db`.`t` (`id`,`name`,`f`) VALUES (1,'a',1.5e0),(2,'b',1.5e0)",
                "INSERT INTO `db`.`u` (`id`,`name`,`f`) VALUES (1,'c',1.5e0)",
                "DELETE FROM `db`.`t` WHERE `id` IN (1,2)",
                "INSERT INTO `db`.`t` (`id`,`name`,`f`) VALUES (1,'d',1.5e0)",
                "INSERT INTO `db`.`t` (`id`,`name`,`f`) VALUES (1,'e',1.5e0)",
            ]
        );
    }

    #[test]
    fn batches_keep_the_order_of_changes_to_one_row() {
        let t = table(Some(vec![0]), vec![]);
        let ins = |id, v| change(&t, DmlKind::Insert, None, Some(row(id, v)), false);
        let del = |id, v| change(&t, DmlKind::Delete, Some(row(id, v)), None, false);
        let upd = |id, from, to| {
            change(
                &t,
                DmlKind::Update,
                Some(row(id, from)),
                Some(row(id, to)),
                false,
            )
        };
        // Deleted then inserted again: one layer (deletes run before inserts).
        assert_eq!(
            plan(&[ins(1, "a"), del(2, "b"), ins(2, "c")]),
            [
                "DELETE FROM `db`.`t` WHERE `id` = 2",
                "INSERT INTO `db`.`t` (`id`,`name`,`f`) VALUES (1,'a',1.5e0),(2,'c',1.5e0)",
            ]
        );
        // Inserted, updated twice, deleted, inserted: four layers for row 1.
        assert_eq!(
            plan(&[
                ins(1, "a"),
                upd(1, "a", "b"),
                upd(1, "b", "c"),
                ins(2, "x"),
                del(1, "c"),
                ins(1, "d")
            ]),
            [
                "INSERT INTO `db`.`t` (`id`,`name`,`f`) VALUES (1,'a',1.5e0),(2,'x',1.5e0)",
                "UPDATE `db`.`t` SET `id`=1,`name`='b',`f`=1.5e0 WHERE `id` = 1",
                "UPDATE `db`.`t` SET `id`=1,`name`='c',`f`=1.5e0 WHERE `id` = 1",
                "DELETE FROM `db`.`t` WHERE `id` = 1",
                "INSERT INTO `db`.`t` (`id`,`name`,`f`) VALUES (1,'d',1.5e0)",
            ]
        );
    }

    #[test]
    fn batches_in_safe_mode_and_with_composite_handles() {
        let t = table(Some(vec![0]), vec![]);
        let moved = change(
            &t,
            DmlKind::Update,
            Some(row(1, "a")),
            Some(row(2, "a")),
            true,
        );
        let kept = change(
            &t,
            DmlKind::Update,
            Some(row(3, "a")),
            Some(row(3, "b")),
            true,
        );
        assert_eq!(
            plan(&[moved, kept]),
            [
                "DELETE FROM `db`.`t` WHERE `id` = 1",
                "REPLACE INTO `db`.`t` (`id`,`name`,`f`) VALUES (2,'a',1.5e0),(3,'b',1.5e0)",
            ]
        );
        let c = table(Some(vec![0, 1]), vec![]);
        // Only `f` changes: the handle is (id, name).
        let upd = |id, name| {
            let (mut b, mut a) = (row(id, name), row(id, name));
            b[2] = Value::Float(1.0);
            a[2] = Value::Float(2.0);
            change(&c, DmlKind::Update, Some(b), Some(a), false)
        };
        let del = |id, v| change(&c, DmlKind::Delete, Some(row(id, v)), None, false);
        assert_eq!(
            plan(&[upd(1, "a"), upd(2, "b"), del(3, "c"), del(4, "d")]),
            [
                "DELETE FROM `db`.`t` WHERE (`id` = 3 AND `name` = 'c') OR (`id` = 4 AND `name` = 'd')",
                "UPDATE `db`.`t` SET `f`=CASE WHEN `id` = 1 AND `name` = 'a' THEN 2e0 WHEN `id` = 2 AND `name` = 'b' THEN 2e0 ELSE `f` END WHERE (`id` = 1 AND `name` = 'a') OR (`id` = 2 AND `name` = 'b')",
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
