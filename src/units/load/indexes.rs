//! Deferred secondary indexes (`loader.defer-secondary-indexes`, default on): tables the load
//! creates get their plain non-unique indexes only after their rows are loaded, which InnoDB
//! builds by sorting instead of one B-tree insert per row (myloader's `--innodb-optimize-keys`).
//!
//! # What is deferred
//!
//! In the CREATE TABLE the loader runs (the dump's SHOW CREATE TABLE text, routed), the
//! top-level items of the definition list that start with `KEY` or `INDEX` and have a name
//! ([`CreateTable::deferrable`]). Never `PRIMARY KEY`, `UNIQUE`, `FULLTEXT`, `SPATIAL`, checks
//! or periods; nothing at all in a table with a foreign key (the key needs its index), in a
//! table another table of the dump references by foreign key (InnoDB refuses a reference to
//! an unindexed column even with `foreign_key_checks = 0`), in a system-versioned table, in
//! `CREATE TABLE ... LIKE/SELECT`, nor when the text cannot be scanned. A key whose first
//! column is the AUTO_INCREMENT column stays (InnoDB requires it).
//!
//! # State and resume
//!
//! `<meta-schema>.<task>_loader_index` ([`IndexMeta`]) has one row per (source, target table)
//! with pending indexes: `indexes` holds a JSON array of the deferred items' texts, verbatim
//! (`["KEY `k_1` (`k`)", "KEY `c` (`c`(10)) COMMENT 'x'"]`). In the schema phase
//! ([`Deferral::create_sql`]), per target table:
//!
//! - a row of this source exists (resume): the CREATE (IF NOT EXISTS) runs without those items;
//! - else, with deferral on, deferrable items, and no such table on the target: the row is
//!   written first, then the CREATE without the items;
//! - else the full CREATE runs, as without deferral. A table that exists on the target
//!   (pre-created, or created by another source's subtask) is never altered by this unit
//!   unless this source has a row for it.
//!
//! After the data phase, [`add_deferred`] reads each pending table's index names and adds the
//! missing items in one `ALTER TABLE ... ADD <item>, ADD <item>`, then deletes the row. Adding
//! is by name, so it is idempotent: a crash between the ALTER and the delete, or two sources
//! that both recorded the same table, end with each index added once.

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use futures_util::StreamExt;
use mysql_async::prelude::*;
use mysql_async::{Conn, Opts};
use tracing::{info, warn};

use super::downstream::Downstream;
use crate::db::is_connection_error;
use crate::db::meta::{MetaTable, delete_source_rows, ensure_meta_table, is_missing_table};
use crate::error::{DmError, codes};
use crate::sql::quote_ident;

/// How many times an ALTER that lost a race on an index name is planned again.
const DUP_NAME_RETRIES: usize = 3;

// ---- scanning CREATE TABLE text ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Word,
    /// `` `name` ``.
    Quoted,
    /// `'text'` or `"text"`.
    Str,
    Punct(u8),
    Comment,
    /// `/*! ... */` and `/*M! ... */`: executed by the server, so opaque here.
    ExecComment,
}

#[derive(Debug, Clone, Copy)]
struct Tok {
    kind: Kind,
    start: usize,
    end: usize,
}

fn is_word_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

/// The byte after the quote closing the one at `i`; `None` when unterminated. Backquoted
/// names escape by doubling; strings also by backslash.
fn end_of_quoted(b: &[u8], i: usize) -> Option<usize> {
    let q = b[i];
    let mut j = i + 1;
    while j < b.len() {
        let c = b[j];
        if c == b'\\' && q != b'`' {
            j += 2;
        } else if c == q {
            if b.get(j + 1) == Some(&q) {
                j += 2;
            } else {
                return Some(j + 1);
            }
        } else {
            j += 1;
        }
    }
    None
}

fn line_end(b: &[u8], i: usize) -> usize {
    b[i..]
        .iter()
        .position(|&c| c == b'\n')
        .map_or(b.len(), |p| i + p)
}

/// Tokens of `sql` (whitespace dropped); `None` for an unterminated string or comment.
fn lex(sql: &str) -> Option<Vec<Tok>> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        let kind = match c {
            c if c.is_ascii_whitespace() || c == 0x0b => {
                i += 1;
                continue;
            }
            b'`' | b'\'' | b'"' => {
                i = end_of_quoted(b, i)?;
                if c == b'`' { Kind::Quoted } else { Kind::Str }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let close = sql[i + 2..].find("*/")? + i + 2;
                let exec = b.get(i + 2) == Some(&b'!')
                    || (b.get(i + 2) == Some(&b'M') && b.get(i + 3) == Some(&b'!'));
                i = close + 2;
                if exec {
                    Kind::ExecComment
                } else {
                    Kind::Comment
                }
            }
            b'-' if b.get(i + 1) == Some(&b'-')
                && b.get(i + 2)
                    .is_none_or(|c| c.is_ascii_whitespace() || *c < 0x20) =>
            {
                i = line_end(b, i);
                Kind::Comment
            }
            b'#' => {
                i = line_end(b, i);
                Kind::Comment
            }
            c if is_word_byte(c) => {
                while i < b.len() && is_word_byte(b[i]) {
                    i += 1;
                }
                Kind::Word
            }
            c => {
                i += 1;
                Kind::Punct(c)
            }
        };
        out.push(Tok {
            kind,
            start,
            end: i,
        });
    }
    Some(out)
}

/// A name token's value: a bare word, or a backquoted name unescaped.
fn name_of(sql: &str, t: &Tok) -> Option<String> {
    let text = &sql[t.start..t.end];
    match t.kind {
        Kind::Word => Some(text.to_string()),
        Kind::Quoted => Some(text[1..text.len() - 1].replace("``", "`")),
        _ => None,
    }
}

/// Index and table names compare case-insensitively (conservatively for tables).
fn fold(name: &str) -> String {
    name.to_lowercase()
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ItemKind {
    /// `KEY|INDEX name [USING t] (first, ...) ...`.
    Key {
        name: String,
        first_column: Option<String>,
    },
    Column {
        name: String,
        auto_increment: bool,
    },
    /// `[CONSTRAINT c] FOREIGN KEY ... REFERENCES t`, or a column with `REFERENCES t`.
    ForeignKey {
        references: Option<(Option<String>, String)>,
    },
    /// Anything that stays in the CREATE (primary, unique, fulltext, spatial, check, unnamed
    /// keys, items behind executable comments).
    Other,
    /// PERIOD FOR ...: the table is left alone.
    Doubtful,
}

/// One top-level item of the definition list.
#[derive(Debug, Clone)]
struct Item {
    /// Bytes between the separators (`(` or `,` before, `,` or `)` after).
    start: usize,
    end: usize,
    kind: ItemKind,
}

/// A CREATE TABLE statement's definition list cut into its top-level items.
#[derive(Debug, Clone)]
pub struct CreateTable<'a> {
    sql: &'a str,
    items: Vec<Item>,
    /// Byte of the `)` closing the list.
    close: usize,
    /// System versioning or a period: nothing is deferred.
    doubtful: bool,
}

/// One deferred index: its name and its item's text, verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecondaryIndex {
    pub name: String,
    pub item: String,
}

fn is_word(sql: &str, t: &Tok, w: &str) -> bool {
    t.kind == Kind::Word && sql[t.start..t.end].eq_ignore_ascii_case(w)
}

/// Tokens of an item at its own top level (outside its parentheses).
fn top_level(toks: &[Tok]) -> impl Iterator<Item = (usize, &Tok)> {
    let mut depth = 0i32;
    toks.iter().enumerate().filter(move |(_, t)| match t.kind {
        Kind::Punct(b'(') => {
            depth += 1;
            false
        }
        Kind::Punct(b')') => {
            depth -= 1;
            false
        }
        _ => depth == 0,
    })
}

/// `name` or `schema.name` at the start of `toks`.
fn table_name(sql: &str, toks: &[Tok]) -> Option<(Option<String>, String)> {
    let first = name_of(sql, toks.first()?)?;
    match (toks.get(1), toks.get(2)) {
        (Some(dot), Some(t)) if dot.kind == Kind::Punct(b'.') => {
            Some((Some(first), name_of(sql, t)?))
        }
        _ => Some((None, first)),
    }
}

fn references_of(sql: &str, toks: &[Tok]) -> Option<Option<(Option<String>, String)>> {
    let (i, _) = top_level(toks).find(|(_, t)| is_word(sql, t, "REFERENCES"))?;
    Some(table_name(sql, &toks[i + 1..]))
}

/// `KEY|INDEX` item tokens (after the keyword): its name and first column, when it has the
/// plain shape `name [USING|TYPE method] (column ...`.
fn key_item(sql: &str, toks: &[Tok]) -> ItemKind {
    let Some(name_tok) = toks.first() else {
        return ItemKind::Other;
    };
    if name_tok.kind == Kind::Word
        && ["USING", "TYPE", "IF"]
            .iter()
            .any(|w| is_word(sql, name_tok, w))
    {
        return ItemKind::Other;
    }
    let Some(name) = name_of(sql, name_tok) else {
        return ItemKind::Other; // `KEY (a)`: unnamed
    };
    let mut i = 1;
    if toks
        .get(i)
        .is_some_and(|t| is_word(sql, t, "USING") || is_word(sql, t, "TYPE"))
    {
        i += 2;
    }
    if toks.get(i).map(|t| t.kind) != Some(Kind::Punct(b'(')) {
        return ItemKind::Other;
    }
    let first_column = toks.get(i + 1).and_then(|t| name_of(sql, t));
    ItemKind::Key { name, first_column }
}

fn classify_item(sql: &str, toks: &[Tok]) -> ItemKind {
    let toks = match toks.iter().position(|t| t.kind != Kind::Comment) {
        Some(p) => &toks[p..],
        None => return ItemKind::Other,
    };
    let first = &toks[0];
    if first.kind == Kind::ExecComment {
        return ItemKind::Other;
    }
    let is = |w: &str| is_word(sql, first, w);
    if is("KEY") || is("INDEX") {
        return key_item(sql, &toks[1..]);
    }
    if is("FOREIGN")
        || (is("CONSTRAINT") && top_level(toks).any(|(_, t)| is_word(sql, t, "FOREIGN")))
    {
        return ItemKind::ForeignKey {
            references: references_of(sql, toks).flatten(),
        };
    }
    if is("PERIOD") {
        return ItemKind::Doubtful;
    }
    let keyword = [
        "PRIMARY",
        "UNIQUE",
        "FULLTEXT",
        "SPATIAL",
        "CONSTRAINT",
        "CHECK",
        "VECTOR",
        "LIKE",
    ]
    .iter()
    .any(|w| is(w));
    if keyword || !matches!(first.kind, Kind::Word | Kind::Quoted) {
        return ItemKind::Other;
    }
    if let Some(references) = references_of(sql, toks) {
        return ItemKind::ForeignKey { references };
    }
    ItemKind::Column {
        name: name_of(sql, first).unwrap_or_default(),
        auto_increment: top_level(toks)
            .any(|(_, t)| is_word(sql, t, "AUTO_INCREMENT") || is_word(sql, t, "SERIAL")),
    }
}

impl<'a> CreateTable<'a> {
    /// Cuts `sql` (a whole CREATE TABLE statement) into items; `None` when it is not a
    /// CREATE TABLE with a definition list, is `... LIKE` or `... SELECT`, or does not scan.
    pub fn scan(sql: &'a str) -> Option<Self> {
        let toks = lex(sql)?;
        let open = toks.iter().position(|t| t.kind == Kind::Punct(b'('))?;
        let head = &toks[..open];
        if !head.first().is_some_and(|t| is_word(sql, t, "CREATE"))
            || !head.iter().any(|t| is_word(sql, t, "TABLE"))
            || head
                .iter()
                .any(|t| is_word(sql, t, "LIKE") || is_word(sql, t, "SELECT"))
        {
            return None;
        }
        let mut depth = 0i32;
        let mut seps = vec![open];
        let mut close = None;
        for (i, t) in toks.iter().enumerate().skip(open) {
            match t.kind {
                Kind::Punct(b'(') => depth += 1,
                Kind::Punct(b')') => {
                    depth -= 1;
                    if depth == 0 {
                        close = Some(i);
                        break;
                    }
                }
                Kind::Punct(b',') if depth == 1 => seps.push(i),
                _ => {}
            }
        }
        let close = close?;
        seps.push(close);
        let tail = &toks[close + 1..];
        let mut depth = 0i32;
        for t in tail {
            match t.kind {
                Kind::Punct(b'(') => depth += 1,
                Kind::Punct(b')') => depth -= 1,
                _ if is_word(sql, t, "SELECT") => return None,
                _ if depth == 0
                    && ["AS", "TABLE", "VALUES", "LIKE"]
                        .iter()
                        .any(|w| is_word(sql, t, w)) =>
                {
                    return None;
                }
                _ => {}
            }
        }
        let mut items = Vec::new();
        for w in seps.windows(2) {
            let (a, b) = (w[0], w[1]);
            let item_toks = &toks[a + 1..b];
            if item_toks.iter().all(|t| t.kind == Kind::Comment) {
                return None; // `(a INT,,)` or `()`
            }
            items.push(Item {
                start: toks[a].end,
                end: toks[b].start,
                kind: classify_item(sql, item_toks),
            });
        }
        if matches!(items.first().map(|i| &i.kind), Some(ItemKind::Other))
            && toks.get(open + 1).is_some_and(|t| is_word(sql, t, "LIKE"))
        {
            return None; // CREATE TABLE t (LIKE u)
        }
        let doubtful = toks.iter().any(|t| is_word(sql, t, "VERSIONING"))
            || items.iter().any(|i| i.kind == ItemKind::Doubtful);
        Some(Self {
            sql,
            items,
            close: toks[close].start,
            doubtful,
        })
    }

    /// Whether the table has a foreign key (table- or column-level).
    pub fn has_foreign_keys(&self) -> bool {
        self.items
            .iter()
            .any(|i| matches!(i.kind, ItemKind::ForeignKey { .. }))
    }

    /// The tables the foreign keys reference, `(schema if qualified, table)`; `None` when one
    /// cannot be read.
    pub fn references(&self) -> Option<Vec<(Option<String>, String)>> {
        self.items
            .iter()
            .filter_map(|i| match &i.kind {
                ItemKind::ForeignKey { references } => Some(references.clone()),
                _ => None,
            })
            .collect()
    }

    fn text(&self, i: &Item) -> &'a str {
        &self.sql[i.start..i.end]
    }

    /// The named plain non-unique indexes that can be added after the load (see the module
    /// docs); empty for a table with foreign keys, periods or system versioning.
    pub fn deferrable(&self) -> Vec<SecondaryIndex> {
        if self.doubtful || self.has_foreign_keys() {
            return Vec::new();
        }
        let auto: HashSet<String> = self
            .items
            .iter()
            .filter_map(|i| match &i.kind {
                ItemKind::Column {
                    name,
                    auto_increment: true,
                } => Some(fold(name)),
                _ => None,
            })
            .collect();
        let out: Vec<SecondaryIndex> = self
            .items
            .iter()
            .filter_map(|i| match &i.kind {
                ItemKind::Key { name, first_column }
                    if !first_column
                        .as_deref()
                        .is_some_and(|c| auto.contains(&fold(c))) =>
                {
                    Some(SecondaryIndex {
                        name: name.clone(),
                        item: self.text(i).trim().to_string(),
                    })
                }
                _ => None,
            })
            .collect();
        // Something must stay in the list (a table has columns; this is only a guard).
        if out.len() == self.items.len() {
            return Vec::new();
        }
        out
    }

    /// The statement without the `KEY`/`INDEX` items named in `names` (case-insensitive),
    /// separators and the rest of the text unchanged.
    pub fn without(&self, names: &[String]) -> String {
        let drop: HashSet<String> = names.iter().map(|n| fold(n)).collect();
        let kept: Vec<&Item> = self
            .items
            .iter()
            .filter(
                |i| !matches!(&i.kind, ItemKind::Key { name, .. } if drop.contains(&fold(name))),
            )
            .collect();
        if kept.len() == self.items.len() || kept.is_empty() {
            return self.sql.to_string();
        }
        let first = &self.items[0];
        let last = self.items.last().expect("at least one item");
        let trailing = &self.text(last)[self.text(last).trim_end().len()..];
        let body: Vec<&str> = kept.iter().map(|i| self.text(i).trim_end()).collect();
        format!(
            "{}{}{}{}",
            &self.sql[..first.start],
            body.join(","),
            trailing,
            &self.sql[self.close..]
        )
    }
}

/// The name of a stored `KEY`/`INDEX` item; `None` when it is not one.
pub fn index_name(item: &str) -> Option<String> {
    let toks = lex(item)?;
    match classify_item(item, &toks) {
        ItemKind::Key { name, .. } => Some(name),
        _ => None,
    }
}

// ---- the meta table ----

/// A target table with deferred indexes still to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingTable {
    pub schema: String,
    pub table: String,
    /// The deferred items, verbatim (`KEY `k` (`a`)`).
    pub items: Vec<String>,
}

/// One subtask's rows of `<meta-schema>.<task>_loader_index`.
#[derive(Debug, Clone)]
pub struct IndexMeta {
    meta_schema: String,
    task: String,
    table: String,
    source_id: String,
}

fn meta_err(what: &str, e: mysql_async::Error) -> DmError {
    crate::db::error(
        &codes::DB_EXECUTE_FAILED,
        format!("deferred-index table: {what}"),
        e,
    )
}

impl IndexMeta {
    /// The rows of `task`, source `source_id`, in `meta_schema`.
    pub fn new(meta_schema: &str, task: &str, source_id: &str) -> Self {
        Self {
            meta_schema: meta_schema.to_string(),
            task: task.to_string(),
            table: MetaTable::LoaderIndex.name(meta_schema, task),
            source_id: source_id.to_string(),
        }
    }

    /// The quoted, qualified table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Creates the meta schema and the table when missing. Names compare as binary strings:
    /// target tables `T` and `t` are two rows.
    pub async fn ensure(&self, conn: &mut Conn) -> Result<(), mysql_async::Error> {
        ensure_meta_table(
            conn,
            &self.meta_schema,
            &self.table,
            "(\
             `id` VARCHAR(32) NOT NULL, \
             `target_schema` VARCHAR(128) NOT NULL, \
             `target_table` VARCHAR(128) NOT NULL, \
             `indexes` MEDIUMTEXT NOT NULL, \
             `create_time` TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, \
             PRIMARY KEY (`id`, `target_schema`, `target_table`)\
             ) DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin",
        )
        .await
    }

    /// This source's rows, `(target schema, target table, indexes)`; an absent table has
    /// none. [`IndexMeta::parse`] reads them.
    pub async fn rows(
        &self,
        conn: &mut Conn,
    ) -> Result<Vec<(String, String, String)>, mysql_async::Error> {
        let rows = conn
            .exec(
                format!(
                    "SELECT `target_schema`, `target_table`, `indexes` FROM {} WHERE `id` = ? \
                     ORDER BY `target_schema`, `target_table`",
                    self.table
                ),
                (&self.source_id,),
            )
            .await;
        match rows {
            Err(e) if is_missing_table(&e) => Ok(Vec::new()),
            other => other,
        }
    }

    /// The pending tables of [`IndexMeta::rows`]; a row whose `indexes` is not a JSON array of
    /// named KEY items is an error.
    pub fn parse(&self, rows: Vec<(String, String, String)>) -> Result<Vec<PendingTable>, DmError> {
        rows.into_iter()
            .map(|(schema, table, json)| {
                let items: Vec<String> = serde_json::from_str(&json)
                    .ok()
                    .filter(|items: &Vec<String>| items.iter().all(|i| index_name(i).is_some()))
                    .ok_or_else(|| {
                        DmError::new(
                            &codes::LOAD_ADD_INDEX_FAILED,
                            format!(
                                "the row of {} in {} is not a JSON array of KEY items: {json}",
                                target_text(&schema, &table),
                                self.table
                            ),
                        )
                        .with_workaround(
                            "Delete the row (the table then keeps the indexes it has), or \
                             write the missing KEY items into it, then resume.",
                        )
                    })?;
                Ok(PendingTable {
                    schema,
                    table,
                    items,
                })
            })
            .collect()
    }

    /// Whether this source has pending tables (an absent table: no).
    pub async fn has_pending(&self, conn: &mut Conn) -> Result<bool, mysql_async::Error> {
        let row: Result<Option<i64>, _> = conn
            .exec_first(
                format!("SELECT 1 FROM {} WHERE `id` = ? LIMIT 1", self.table),
                (&self.source_id,),
            )
            .await;
        match row {
            Ok(r) => Ok(r.is_some()),
            Err(e) if is_missing_table(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Records `items` as deferred for the target table.
    pub async fn record(
        &self,
        conn: &mut Conn,
        schema: &str,
        table: &str,
        items: &[String],
    ) -> Result<(), mysql_async::Error> {
        let json = serde_json::to_string(items).expect("strings serialize");
        conn.exec_drop(
            format!(
                "INSERT INTO {} (`id`, `target_schema`, `target_table`, `indexes`) \
                 VALUES (?, ?, ?, ?) ON DUPLICATE KEY UPDATE `indexes` = VALUES(`indexes`)",
                self.table
            ),
            (&self.source_id, schema, table, json),
        )
        .await
    }

    /// Deletes the row of a target table whose indexes are all present.
    pub async fn remove(
        &self,
        conn: &mut Conn,
        schema: &str,
        table: &str,
    ) -> Result<(), mysql_async::Error> {
        conn.exec_drop(
            format!(
                "DELETE FROM {} WHERE `id` = ? AND `target_schema` = ? AND `target_table` = ?",
                self.table
            ),
            (&self.source_id, schema, table),
        )
        .await
    }

    /// Deletes this source's rows (after the sync unit took over); an absent table is fine.
    pub async fn clear(&self, conn: &mut Conn) -> Result<(), DmError> {
        delete_source_rows(conn, &self.table, &self.source_id)
            .await
            .map_err(|e| meta_err("clearing the rows", e))
    }
}

// ---- the schema phase ----

fn target_text(schema: &str, table: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(table))
}

/// The schema phase's decisions: which target tables get which CREATE text, and which are
/// pending (see the module docs).
#[derive(Debug)]
pub struct Deferral {
    meta: IndexMeta,
    enabled: bool,
    /// Target table → deferred items (rows read at start, and rows written by this run).
    pending: BTreeMap<(String, String), Vec<String>>,
    /// Target tables whose CREATE this run already decided (shards merged into one target).
    handled: HashSet<(String, String)>,
    /// Upstream `(schema, table)`, folded, that a foreign key of the dump references.
    referenced: HashSet<(String, String)>,
}

impl Deferral {
    /// `pending` are the rows an earlier run left (resume); `enabled` is the config switch.
    pub fn new(meta: IndexMeta, enabled: bool, pending: Vec<PendingTable>) -> Self {
        Self {
            meta,
            enabled,
            pending: pending
                .into_iter()
                .map(|p| ((p.schema, p.table), p.items))
                .collect(),
            handled: HashSet::new(),
            referenced: HashSet::new(),
        }
    }

    /// Notes the tables the foreign keys of upstream `schema`'s CREATE TABLE `create`
    /// reference (they keep their indexes). A text that cannot be scanned but mentions
    /// REFERENCES turns deferral off for the whole load.
    pub fn note_references(&mut self, schema: &str, create: &str) {
        let refs = CreateTable::scan(create).and_then(|ct| ct.references());
        match refs {
            Some(refs) => {
                for (s, t) in refs {
                    let s = s.as_deref().unwrap_or(schema);
                    self.referenced.insert((fold(s), fold(&t)));
                }
            }
            None if create.to_ascii_uppercase().contains("REFERENCES") => {
                warn!(schema = %schema, "a foreign key could not be read; no index is deferred");
                self.enabled = false;
            }
            None => {}
        }
    }

    /// The CREATE TABLE text to run for upstream `upstream` routed to `target`, recording the
    /// deferred items first when it defers (`create` is the routed statement).
    pub async fn create_sql(
        &mut self,
        down: &mut Downstream,
        upstream: (&str, &str),
        target: &(String, String),
        create: &str,
    ) -> Result<String, DmError> {
        if let Some(items) = self.pending.get(target) {
            let names: Vec<String> = items.iter().filter_map(|i| index_name(i)).collect();
            return Ok(CreateTable::scan(create)
                .map_or_else(|| create.to_string(), |ct| ct.without(&names)));
        }
        let first = self.handled.insert(target.clone());
        let referenced = self
            .referenced
            .contains(&(fold(upstream.0), fold(upstream.1)));
        if !first || !self.enabled || referenced {
            return Ok(create.to_string());
        }
        let Some(ct) = CreateTable::scan(create) else {
            return Ok(create.to_string());
        };
        let deferred = ct.deferrable();
        if deferred.is_empty() {
            return Ok(create.to_string());
        }
        let (schema, table) = (target.0.as_str(), target.1.as_str());
        let t = target_text(schema, table);
        let exists = down
            .call(
                &format!("checking whether {t} exists"),
                async |c: &mut Conn| {
                    c.exec_first::<i64, _, _>(
                        "SELECT COUNT(*) FROM information_schema.TABLES \
                         WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                        (schema, table),
                    )
                    .await
                },
            )
            .await?
            .unwrap_or(0)
            > 0;
        if exists {
            return Ok(create.to_string());
        }
        let items: Vec<String> = deferred.iter().map(|d| d.item.clone()).collect();
        let names: Vec<String> = deferred.iter().map(|d| d.name.clone()).collect();
        let meta = &self.meta;
        down.call(
            &format!("recording the deferred indexes of {t}"),
            async |c: &mut Conn| meta.record(c, schema, table, &items).await,
        )
        .await?;
        info!(
            task = %meta.task, source = %meta.source_id, table = %t, indexes = %names.join(","),
            "secondary indexes deferred"
        );
        self.pending.insert(target.clone(), items);
        Ok(ct.without(&names))
    }

    /// The target tables whose deferred indexes are to be added after the data phase.
    pub fn into_pending(self) -> Vec<PendingTable> {
        self.pending
            .into_iter()
            .map(|((schema, table), items)| PendingTable {
                schema,
                table,
                items,
            })
            .collect()
    }
}

// ---- adding them ----

/// Where [`add_deferred`] connects and what it logs.
pub struct AddContext<'a> {
    pub task: &'a str,
    pub source: &'a str,
    pub opts: &'a Opts,
    pub session: &'a [String],
    pub meta: &'a IndexMeta,
    /// Tables altered at once (`loader.pool-size`).
    pub concurrency: usize,
}

/// Adds every pending table's missing deferred indexes and deletes its row; returns how many
/// indexes were added. Tables run concurrently on their own connections; the first error is
/// returned after all have finished.
pub async fn add_deferred(
    ctx: &AddContext<'_>,
    pending: &[PendingTable],
) -> Result<usize, DmError> {
    if pending.is_empty() {
        return Ok(0);
    }
    info!(task = %ctx.task, source = %ctx.source, tables = pending.len(), "adding deferred indexes");
    let results: Vec<Result<usize, DmError>> = futures_util::stream::iter(pending)
        .map(|p| add_table(ctx, p))
        .buffer_unordered(ctx.concurrency.max(1))
        .collect()
        .await;
    let mut added = 0;
    let mut first_err = None;
    for r in results {
        match r {
            Ok(n) => added += n,
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    first_err.map_or(Ok(added), Err)
}

/// A server error of one ALTER, with the indexes it tried to add.
type AlterFailure = (mysql_async::Error, Vec<String>);

/// Index names of the table, folded.
async fn index_names(
    c: &mut Conn,
    schema: &str,
    table: &str,
) -> Result<HashSet<String>, mysql_async::Error> {
    let names: Vec<String> = c
        .exec(
            "SELECT DISTINCT INDEX_NAME FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (schema, table),
        )
        .await?;
    Ok(names.iter().map(|n| fold(n)).collect())
}

/// Adds the items whose names the table lacks, in one ALTER. Connection errors are the outer
/// error (the caller reconnects and runs this again); server errors the inner one.
async fn add_missing(
    c: &mut Conn,
    p: &PendingTable,
    named: &[(String, &str)],
) -> Result<Result<Vec<String>, AlterFailure>, mysql_async::Error> {
    let all = || named.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    let mut attempt = 0;
    loop {
        let present = match index_names(c, &p.schema, &p.table).await {
            Ok(p) => p,
            Err(e) if is_connection_error(&e) => return Err(e),
            Err(e) => return Ok(Err((e, all()))),
        };
        let missing: Vec<&(String, &str)> = named
            .iter()
            .filter(|(n, _)| !present.contains(&fold(n)))
            .collect();
        if missing.is_empty() {
            return Ok(Ok(Vec::new()));
        }
        let adds: Vec<String> = missing.iter().map(|(_, i)| format!("ADD {i}")).collect();
        let sql = format!(
            "ALTER TABLE {} {}",
            target_text(&p.schema, &p.table),
            adds.join(", ")
        );
        let names: Vec<String> = missing.iter().map(|(n, _)| n.clone()).collect();
        match c.query_drop(&sql).await {
            Ok(()) => return Ok(Ok(names)),
            Err(e) if is_connection_error(&e) => return Err(e),
            // Another source's load added one of them meanwhile: read the names again.
            Err(mysql_async::Error::Server(s))
                // ER_DUP_KEYNAME: another session added the index since its name was read.
                if s.code == crate::db::errno::ER_DUP_KEYNAME && attempt < DUP_NAME_RETRIES =>
            {
                attempt += 1;
            }
            Err(e) => return Ok(Err((e, names))),
        }
    }
}

fn quoted_names(names: &[String]) -> String {
    names
        .iter()
        .map(|n| quote_ident(n))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn add_table(ctx: &AddContext<'_>, p: &PendingTable) -> Result<usize, DmError> {
    let started = Instant::now();
    let t = target_text(&p.schema, &p.table);
    let named: Vec<(String, &str)> = p
        .items
        .iter()
        .filter_map(|i| index_name(i).map(|n| (n, i.as_str())))
        .collect();
    let all: Vec<String> = named.iter().map(|(n, _)| n.clone()).collect();
    let mut down = Downstream::new(ctx.opts.clone(), ctx.session.to_vec());
    let res = down
        .call(
            &format!("adding deferred indexes {} to {t}", quoted_names(&all)),
            async |c: &mut Conn| add_missing(c, p, &named).await,
        )
        .await;
    let added = match res {
        Ok(Ok(added)) => added,
        Ok(Err((e, names))) => {
            down.close().await;
            return Err(DmError::new(
                &codes::LOAD_ADD_INDEX_FAILED,
                format!("adding index {} to {t} failed", quoted_names(&names)),
            )
            .with_cause(e));
        }
        Err(e) => {
            down.close().await;
            return Err(e);
        }
    };
    let meta = ctx.meta;
    let removed = down
        .call(
            &format!("deleting the deferred-index row of {t}"),
            async |c: &mut Conn| meta.remove(c, &p.schema, &p.table).await,
        )
        .await;
    down.close().await;
    removed?;
    let present: Vec<&String> = all.iter().filter(|n| !added.contains(n)).collect();
    info!(
        task = %ctx.task, source = %ctx.source, table = %t, indexes = %added.join(","),
        already_present = present.len(), seconds = format!("{:.2}", started.elapsed().as_secs_f64()),
        "deferred indexes added"
    );
    Ok(added.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(ct: &CreateTable<'_>) -> Vec<String> {
        ct.deferrable().into_iter().map(|d| d.name).collect()
    }

    const SYSBENCH: &str = "CREATE TABLE IF NOT EXISTS `db`.`sbtest1` (\n  `id` int(11) NOT NULL AUTO_INCREMENT,\n  `k` int(11) NOT NULL DEFAULT 0,\n  `c` char(120) NOT NULL DEFAULT '',\n  `pad` char(60) NOT NULL DEFAULT '',\n  PRIMARY KEY (`id`),\n  KEY `k_1` (`k`)\n) ENGINE=InnoDB AUTO_INCREMENT=250001 DEFAULT CHARSET=utf8mb4";

    #[test]
    fn sysbench_key_is_deferred_and_removed_with_its_comma() {
        let ct = CreateTable::scan(SYSBENCH).unwrap();
        assert_eq!(
            ct.deferrable(),
            vec![SecondaryIndex {
                name: "k_1".into(),
                item: "KEY `k_1` (`k`)".into()
            }]
        );
        assert_eq!(
            ct.without(&["K_1".into()]),
            "CREATE TABLE IF NOT EXISTS `db`.`sbtest1` (\n  `id` int(11) NOT NULL AUTO_INCREMENT,\n  `k` int(11) NOT NULL DEFAULT 0,\n  `c` char(120) NOT NULL DEFAULT '',\n  `pad` char(60) NOT NULL DEFAULT '',\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB AUTO_INCREMENT=250001 DEFAULT CHARSET=utf8mb4"
        );
        // Nothing named: the text is unchanged.
        assert_eq!(ct.without(&[]), SYSBENCH);
        assert_eq!(ct.without(&["other".into()]), SYSBENCH);
    }

    #[test]
    fn only_plain_named_keys_are_deferred() {
        let sql = "CREATE TABLE `t` (\n  `a` int NOT NULL,\n  `b` varchar(100) DEFAULT 'KEY x (y), INDEX',\n  `c` text,\n  `KEY` int,\n  `p` point NOT NULL,\n  PRIMARY KEY (`a`),\n  UNIQUE KEY `u` (`b`),\n  FULLTEXT KEY `f` (`c`),\n  SPATIAL INDEX `s` (`p`),\n  KEY `b_pre` (`b`(10)) USING BTREE COMMENT 'has ) and , inside',\n  index IdX2 (`KEY`, a) IGNORED,\n  KEY `inv` (`a`) /*!80000 INVISIBLE */,\n  KEY (`c`(3)),\n  KEY USING BTREE (`a`),\n  CONSTRAINT `chk` CHECK (`a` > 0),\n  KEY `last` (`a`,`b`(2))\n) ENGINE=InnoDB";
        let ct = CreateTable::scan(sql).unwrap();
        let d = ct.deferrable();
        assert_eq!(
            d.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(),
            vec!["b_pre", "IdX2", "inv", "last"]
        );
        assert_eq!(
            d[0].item,
            "KEY `b_pre` (`b`(10)) USING BTREE COMMENT 'has ) and , inside'"
        );
        assert_eq!(d[1].item, "index IdX2 (`KEY`, a) IGNORED");
        assert_eq!(d[2].item, "KEY `inv` (`a`) /*!80000 INVISIBLE */");
        let names: Vec<String> = d.iter().map(|d| d.name.clone()).collect();
        let out = ct.without(&names);
        assert_eq!(
            out,
            "CREATE TABLE `t` (\n  `a` int NOT NULL,\n  `b` varchar(100) DEFAULT 'KEY x (y), INDEX',\n  `c` text,\n  `KEY` int,\n  `p` point NOT NULL,\n  PRIMARY KEY (`a`),\n  UNIQUE KEY `u` (`b`),\n  FULLTEXT KEY `f` (`c`),\n  SPATIAL INDEX `s` (`p`),\n  KEY (`c`(3)),\n  KEY USING BTREE (`a`),\n  CONSTRAINT `chk` CHECK (`a` > 0)\n) ENGINE=InnoDB"
        );
        // The result scans again and has nothing more to defer.
        assert!(names_of_sql(&out).is_empty());
        for d in &d {
            assert_eq!(index_name(&d.item).as_deref(), Some(d.name.as_str()));
        }
    }

    fn names_of_sql(sql: &str) -> Vec<String> {
        names(&CreateTable::scan(sql).unwrap())
    }

    #[test]
    fn comments_and_strings_do_not_confuse_the_scanner() {
        let sql = "CREATE TABLE `we(ird``, KEY` ( -- a comment, with ) and KEY\n  `a` int /* (, KEY k (a) */ NOT NULL COMMENT 'x\\', KEY y (a)',\n  # KEY hash comment ,)\n  `b` int DEFAULT NULL COMMENT \"q\"\"), \",\n  KEY `we``ird, KEY (x)` (`b`) COMMENT 'it''s, )'\n) COMMENT='KEY z (a), SELECT'";
        let ct = CreateTable::scan(sql).unwrap();
        assert_eq!(
            ct.deferrable(),
            vec![SecondaryIndex {
                name: "we`ird, KEY (x)".into(),
                item: "KEY `we``ird, KEY (x)` (`b`) COMMENT 'it''s, )'".into()
            }]
        );
        assert_eq!(
            ct.without(&["we`ird, KEY (x)".into()]),
            "CREATE TABLE `we(ird``, KEY` ( -- a comment, with ) and KEY\n  `a` int /* (, KEY k (a) */ NOT NULL COMMENT 'x\\', KEY y (a)',\n  # KEY hash comment ,)\n  `b` int DEFAULT NULL COMMENT \"q\"\"), \"\n) COMMENT='KEY z (a), SELECT'"
        );
        // `--` without a space is not a comment (a minus sign twice).
        let sql = "CREATE TABLE t (a int DEFAULT (1--1), b int, KEY k (b))";
        assert_eq!(names_of_sql(sql), vec!["k".to_string()]);
    }

    #[test]
    fn last_and_middle_items() {
        let sql = "CREATE TABLE t (a int, KEY k1 (a), b int, KEY k2 (b))";
        let ct = CreateTable::scan(sql).unwrap();
        assert_eq!(names(&ct), vec!["k1", "k2"]);
        assert_eq!(
            ct.without(&["k1".into(), "k2".into()]),
            "CREATE TABLE t (a int, b int)"
        );
        assert_eq!(
            ct.without(&["k2".into()]),
            "CREATE TABLE t (a int, KEY k1 (a), b int)"
        );
        assert_eq!(
            ct.without(&["k1".into()]),
            "CREATE TABLE t (a int, b int, KEY k2 (b))"
        );
        // All items keys but the columns.
        let sql = "CREATE TABLE t (\n`a` int,\n`b` int,\nKEY `x` (`a`),\nINDEX `y` (`b`),\nKEY `z` (`a`, `b`)\n)";
        let ct = CreateTable::scan(sql).unwrap();
        assert_eq!(names(&ct), vec!["x", "y", "z"]);
        assert_eq!(
            ct.without(&names(&ct)),
            "CREATE TABLE t (\n`a` int,\n`b` int\n)"
        );
    }

    #[test]
    fn foreign_keys_and_references_defer_nothing() {
        let fk = "CREATE TABLE `c` (`id` int, `pid` int, KEY `fk_p` (`pid`), KEY `o` (`id`), CONSTRAINT `fk_p` FOREIGN KEY (`pid`) REFERENCES `p` (`id`))";
        let ct = CreateTable::scan(fk).unwrap();
        assert!(ct.has_foreign_keys());
        assert!(ct.deferrable().is_empty());
        assert_eq!(ct.references(), Some(vec![(None, "p".to_string())]));
        let fk =
            "CREATE TABLE c (id int, pid int, KEY o (id), FOREIGN KEY (pid) REFERENCES o.p (id))";
        let ct = CreateTable::scan(fk).unwrap();
        assert!(ct.deferrable().is_empty());
        assert_eq!(
            ct.references(),
            Some(vec![(Some("o".to_string()), "p".to_string())])
        );
        let col = "CREATE TABLE c (id int, pid int REFERENCES p (id), KEY o (id))";
        let ct = CreateTable::scan(col).unwrap();
        assert!(ct.deferrable().is_empty());
        assert_eq!(ct.references(), Some(vec![(None, "p".to_string())]));
        let check = "CREATE TABLE c (id int, CONSTRAINT x CHECK (id > 0), KEY o (id))";
        assert_eq!(names_of_sql(check), vec!["o"]);
    }

    #[test]
    fn auto_increment_keys_stay() {
        let sql = "CREATE TABLE t (`id` bigint NOT NULL AUTO_INCREMENT, `b` int, KEY `ki` (`id`, `b`), KEY `kb` (`b`, `id`))";
        assert_eq!(names_of_sql(sql), vec!["kb"]);
    }

    #[test]
    fn doubtful_statements_defer_nothing() {
        for sql in [
            "CREATE TABLE t LIKE u",
            "CREATE TABLE IF NOT EXISTS `d`.`t` LIKE `d`.`u`",
            "CREATE TABLE t (LIKE u)",
            "CREATE TABLE t (a int, KEY k (a)) SELECT 1 AS a",
            "CREATE TABLE t (a int, KEY k (a)) AS SELECT 1",
            "CREATE TABLE t (a int, KEY k (a)) IGNORE (SELECT 1)",
            "CREATE TABLE t SELECT 1",
            "CREATE TABLE t (a int, KEY k (a)",
            "CREATE TABLE t (a int, KEY k (a)) COMMENT 'x",
            "CREATE TABLE t (a int, KEY k (a)) /* open",
            "CREATE TABLE t (a int,, KEY k (a))",
            "DROP TABLE t",
        ] {
            assert!(
                CreateTable::scan(sql).is_none_or(|ct| ct.deferrable().is_empty()),
                "{sql}"
            );
        }
        for sql in [
            "CREATE TABLE t (a int, KEY k (a)) WITH SYSTEM VERSIONING",
            "CREATE TABLE t (a int WITHOUT SYSTEM VERSIONING, b int, KEY k (a))",
            "CREATE TABLE t (s date, e date, a int, PERIOD FOR p (s, e), KEY k (a))",
            "CREATE TABLE t (a int, /*!50100 KEY k (a) */ b int)",
            "CREATE TABLE t (KEY k (a))",
        ] {
            let ct = CreateTable::scan(sql).unwrap_or_else(|| panic!("{sql}"));
            assert!(ct.deferrable().is_empty(), "{sql}");
        }
        // A partitioned table defers (its VALUES are inside parentheses).
        let sql = "CREATE TABLE t (a int, KEY k (a)) PARTITION BY RANGE (a) (PARTITION p0 VALUES LESS THAN (10), PARTITION p1 VALUES LESS THAN MAXVALUE)";
        let ct = CreateTable::scan(sql).unwrap();
        assert_eq!(names(&ct), vec!["k"]);
        assert_eq!(
            ct.without(&["k".into()]),
            "CREATE TABLE t (a int) PARTITION BY RANGE (a) (PARTITION p0 VALUES LESS THAN (10), PARTITION p1 VALUES LESS THAN MAXVALUE)"
        );
    }

    #[test]
    fn item_names() {
        assert_eq!(index_name("KEY `a``b` (`x`)").as_deref(), Some("a`b"));
        assert_eq!(index_name("INDEX ü USING HASH (x)").as_deref(), Some("ü"));
        assert_eq!(index_name("KEY (x)"), None);
        assert_eq!(index_name("UNIQUE KEY `u` (x)"), None);
        assert_eq!(index_name("`a` int"), None);
        assert_eq!(index_name("KEY `k` x"), None);
        assert_eq!(index_name("KEY 'k"), None);
    }

    #[test]
    fn meta_names() {
        let m = IndexMeta::new("dm_meta", "t`1", "src");
        assert_eq!(m.table(), "`dm_meta`.`t``1_loader_index`");
        assert_eq!(MetaTable::LoaderIndex.name("dm_meta", "t`1"), m.table());
    }
}
