//! The current schema of every replicated table, kept in memory by the syncer (DM keeps it in
//! an embedded TiDB; dm-rs applies the DDL pieces itself).
//!
//! - [`TableSchema`] is what DML handling needs: columns in order with their types, the primary
//!   key, the unique keys ([`TableSchema::handle_key`] picks DM's identity key), the other
//!   indexes (for MySQL's generated index names). It is serde, stored as JSON in the
//!   checkpoint's `table_info` column.
//! - [`SchemaTracker`] maps `(schema, table)` to its [`TableSchema`] and [`SchemaTracker::apply`]s
//!   the pieces of [`crate::sql::ddl::split`] to it. A change to a table it does not know is an
//!   error; the syncer then reloads that table with [`load_table`] (after the DDL ran).
//! - [`load_table`] reads a table from `information_schema`, and
//!   [`TableSchema::from_create_table`] parses a `CREATE TABLE` (dump files,
//!   `SHOW CREATE TABLE`).
//!
//! Names compare as MySQL compares them: columns and indexes case-insensitively, schemas and
//! tables case-insensitively unless the tracker is `case_sensitive` (`lower_case_table_names=0`).
//!
//! Where the tracker and a server can differ (the types' module docs in `column.rs` list
//! the type-level ones): MariaDB stores JSON as LONGTEXT (tracked as `json`); ZEROFILL is not
//! kept; `CONVERT TO CHARACTER SET` changes column character sets but not the TEXT-type
//! promotions a server may make; DROP COLUMN removes the column from every key, as MySQL does
//! (MariaDB refuses it for a multi-column unique key, so such a DDL never reaches the binlog);
//! a table created without a character set gets its database's only when known
//! ([`SchemaTracker::set_schema_charset`], or a CREATE/ALTER DATABASE naming one).
//!
//! Pieces are applied with `IF [NOT] EXISTS` semantics (as [`crate::sql::ddl::split`] renders
//! them): creating what exists and dropping what does not are no-ops.

mod column;
mod load;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::error::{DmError, codes};
use crate::sql::ddl::{
    AlterKind, Change, ColumnPosition, DdlKind, DdlPiece, IndexDef, IndexKind, ParsedTable,
    column_level_indexes,
};

pub use load::{load_schema_charset, load_table};

/// One column of a tracked table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnDef {
    /// The column name as the table spells it.
    pub name: String,
    /// Lower-case `DATA_TYPE`: `int`, `varchar`, `decimal`, `enum`, `json`, ...
    pub data_type: String,
    /// Full `COLUMN_TYPE`: `int(10) unsigned`, `enum('a','b')`, ...
    pub column_type: String,
    /// An UNSIGNED numeric type.
    pub unsigned: bool,
    /// NULL allowed.
    pub nullable: bool,
    /// Character set of a textual column (CHAR/VARCHAR/TEXT/ENUM/SET); `None` for other types
    /// or when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charset: Option<String>,
    /// Collation: declared, the table's declared one (same character set), or loaded; `None`
    /// when only the server's default would tell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collation: Option<String>,
    /// ENUM/SET members, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
    /// A generated (virtual or stored) column: not in INSERT column lists.
    #[serde(default)]
    pub generated: bool,
}

/// The tracked schema of one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSchema {
    /// The database.
    pub schema: String,
    /// The table name.
    pub name: String,
    /// Columns in table order.
    pub columns: Vec<ColumnDef>,
    /// Primary key column names, in key order (empty: none).
    #[serde(default)]
    pub primary_key: Vec<String>,
    /// Unique keys other than the primary key: `(index name, column names)`, in the order they
    /// were created (loaded tables: the server's index order).
    #[serde(default)]
    pub unique_keys: Vec<(String, Vec<String>)>,
    /// Non-unique indexes (KEY, FULLTEXT, SPATIAL, foreign-key indexes, and unique indexes with
    /// an expression part): `(index name, column names)`.
    #[serde(default)]
    pub indexes: Vec<(String, Vec<String>)>,
    /// The table's default character set (empty when unknown).
    #[serde(default)]
    pub charset: String,
}

fn ddl_error(msg: impl Into<String>) -> DmError {
    DmError::new(&codes::SYNCER_UNIT_HANDLE_DDL_FAILED, msg)
}

fn same(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

fn is_textual(data_type: &str) -> bool {
    matches!(
        data_type,
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" | "enum" | "set"
    )
}

impl TableSchema {
    /// An empty table (no columns) named `schema.name`.
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            schema: schema.into(),
            name: name.into(),
            columns: Vec::new(),
            primary_key: Vec::new(),
            unique_keys: Vec::new(),
            indexes: Vec::new(),
            charset: String::new(),
        }
    }

    /// Parses a `CREATE TABLE` statement. `schema` is the statement's qualifier, empty when
    /// the name is unqualified (dump files): the caller sets it.
    pub fn from_create_table(sql: &str) -> Result<TableSchema, DmError> {
        let (schema, name, parsed) = crate::sql::ddl::parse_create_table(sql)?;
        Self::from_parsed(schema.unwrap_or_default(), name, &parsed)
            .map_err(|e| ddl_error(format!("cannot track `{sql}`")).with_cause_text(e.message))
    }

    pub(crate) fn from_parsed(
        schema: String,
        name: String,
        parsed: &ParsedTable,
    ) -> Result<TableSchema, DmError> {
        let mut t = TableSchema::new(schema, name);
        t.charset = parsed
            .charset
            .clone()
            .or_else(|| parsed.collation.as_deref().map(column::collation_charset))
            .unwrap_or_default();
        for c in &parsed.columns {
            if t.column_index(&c.name.value).is_some() {
                return Err(ddl_error(format!("duplicate column `{}`", c.name.value)));
            }
            let col = column::column_from_ast(c, &t.charset, parsed.collation.as_deref());
            t.columns.push(col);
        }
        for idx in &parsed.indexes {
            t.add_index(idx)?;
        }
        Ok(t)
    }

    /// Index of the column named `name` (case-insensitive).
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| same(&c.name, name))
    }

    fn indexes_of(&self, names: &[String]) -> Option<Vec<usize>> {
        names.iter().map(|n| self.column_index(n)).collect()
    }

    /// The columns identifying a row, as DM picks them: the primary key, else the first unique
    /// key whose columns are all NOT NULL; `None` when there is neither.
    pub fn handle_key(&self) -> Option<Vec<usize>> {
        if !self.primary_key.is_empty() {
            return self.indexes_of(&self.primary_key);
        }
        self.unique_keys.iter().find_map(|(_, cols)| {
            let idx = self.indexes_of(cols)?;
            idx.iter()
                .all(|&i| !self.columns[i].nullable)
                .then_some(idx)
        })
    }

    /// Column indexes of the primary key (first, if any) and of every unique key: the keys
    /// causality builds conflict keys from.
    pub fn unique_keys_all(&self) -> Vec<Vec<usize>> {
        let pk = (!self.primary_key.is_empty()).then(|| self.primary_key.clone());
        pk.into_iter()
            .chain(self.unique_keys.iter().map(|(_, c)| c.clone()))
            .filter_map(|cols| self.indexes_of(&cols))
            .collect()
    }

    /// Whether an index (unique or not, or PRIMARY) is named `name`.
    fn index_name_taken(&self, name: &str) -> bool {
        same(name, "PRIMARY")
            || self
                .unique_keys
                .iter()
                .chain(&self.indexes)
                .any(|(n, _)| same(n, name))
    }

    /// MySQL's name for an unnamed index on `first`: the column name, else `<name>_2`, ...
    fn generated_index_name(&self, first: &str) -> String {
        if !self.index_name_taken(first) {
            return first.to_string();
        }
        (2..)
            .map(|i| format!("{first}_{i}"))
            .find(|n| !self.index_name_taken(n))
            .unwrap_or_default()
    }

    /// Column names as the table spells them.
    fn resolve_columns(&self, names: &[String]) -> Result<Vec<String>, DmError> {
        names
            .iter()
            .map(|n| match self.column_index(n) {
                Some(i) => Ok(self.columns[i].name.clone()),
                None => Err(ddl_error(format!(
                    "key column `{n}` is not a column of `{}`.`{}`",
                    self.schema, self.name
                ))),
            })
            .collect()
    }

    /// Adds a key (`IF NOT EXISTS` semantics for named indexes).
    fn add_index(&mut self, def: &IndexDef) -> Result<(), DmError> {
        if def.functional {
            let name = match &def.name {
                Some(n) if self.index_name_taken(n) => return Ok(()),
                Some(n) => n.clone(),
                None => self.generated_index_name("functional_index"),
            };
            let cols: Vec<String> = def
                .columns
                .iter()
                .filter_map(|c| self.column_index(c).map(|i| self.columns[i].name.clone()))
                .collect();
            self.indexes.push((name, cols));
            return Ok(());
        }
        let cols = self.resolve_columns(&def.columns)?;
        let Some(first) = cols.first().cloned() else {
            return Err(ddl_error("a key without columns"));
        };
        match def.kind {
            IndexKind::Primary => {
                for c in &cols {
                    if let Some(i) = self.column_index(c) {
                        self.columns[i].nullable = false;
                    }
                }
                self.primary_key = cols;
            }
            IndexKind::Unique | IndexKind::Plain => {
                let name = match &def.name {
                    Some(n) if self.index_name_taken(n) => return Ok(()),
                    Some(n) => n.clone(),
                    None => self.generated_index_name(&first),
                };
                if def.kind == IndexKind::Unique {
                    self.unique_keys.push((name, cols));
                } else {
                    self.indexes.push((name, cols));
                }
            }
            IndexKind::ForeignKey => {
                // InnoDB needs an index whose first columns are the foreign key's columns; it
                // creates one when no index has them.
                let covered = std::iter::once(&self.primary_key)
                    .chain(self.unique_keys.iter().map(|(_, c)| c))
                    .chain(self.indexes.iter().map(|(_, c)| c))
                    .any(|k| k.len() >= cols.len() && k.iter().zip(&cols).all(|(a, b)| same(a, b)));
                if !covered {
                    let name = match &def.name {
                        Some(n) if !self.index_name_taken(n) => n.clone(),
                        _ => self.generated_index_name(&first),
                    };
                    self.indexes.push((name, cols));
                }
            }
        }
        Ok(())
    }

    /// Drops the index `name` (no-op if absent).
    fn drop_index(&mut self, name: &str) {
        self.unique_keys.retain(|(n, _)| !same(n, name));
        self.indexes.retain(|(n, _)| !same(n, name));
    }

    /// Renames column `old` to `new` in every key.
    fn rename_in_keys(&mut self, old: &str, new: &str) {
        let keys = std::iter::once(&mut self.primary_key)
            .chain(self.unique_keys.iter_mut().map(|(_, c)| c))
            .chain(self.indexes.iter_mut().map(|(_, c)| c));
        for k in keys {
            for c in k.iter_mut().filter(|c| same(c, old)) {
                *c = new.to_string();
            }
        }
    }

    /// Inserts `col` at `position` (end when `None`).
    fn place(&mut self, col: ColumnDef, position: Option<&ColumnPosition>) -> Result<(), DmError> {
        let at = match position {
            None => self.columns.len(),
            Some(ColumnPosition::First) => 0,
            Some(ColumnPosition::After(x)) => {
                self.column_index(x).ok_or_else(|| {
                    ddl_error(format!(
                        "AFTER column `{x}` is not a column of `{}`",
                        self.name
                    ))
                })? + 1
            }
        };
        self.columns.insert(at, col);
        Ok(())
    }

    /// Applies one column/key change.
    fn apply_change(&mut self, change: &Change) -> Result<(), DmError> {
        match change {
            Change::None | Change::CreateTable(_) => {}
            Change::AddColumn { def, position } => {
                if self.column_index(&def.name.value).is_some() {
                    return Ok(());
                }
                let col = column::column_from_ast(def, &self.charset, None);
                self.place(col, position.as_ref())?;
                for idx in column_level_indexes(def) {
                    self.add_index(&idx)?;
                }
            }
            Change::DropColumn(name) => {
                let Some(i) = self.column_index(name) else {
                    return Ok(());
                };
                self.columns.remove(i);
                // MySQL removes the column from every key and drops keys left empty.
                self.primary_key.retain(|c| !same(c, name));
                for (_, cols) in self.unique_keys.iter_mut().chain(self.indexes.iter_mut()) {
                    cols.retain(|c| !same(c, name));
                }
                self.unique_keys.retain(|(_, c)| !c.is_empty());
                self.indexes.retain(|(_, c)| !c.is_empty());
            }
            Change::ModifyColumn { old, def, position } => {
                let i = self.column_index(old).ok_or_else(|| {
                    ddl_error(format!("column `{old}` is not a column of `{}`", self.name))
                })?;
                let mut col = column::column_from_ast(def, &self.charset, None);
                if self.primary_key.iter().any(|c| same(c, old)) {
                    col.nullable = false;
                }
                let new = col.name.clone();
                self.columns.remove(i);
                if position.is_some() {
                    self.place(col, position.as_ref())?;
                } else {
                    self.columns.insert(i, col);
                }
                self.rename_in_keys(old, &new);
                for idx in column_level_indexes(def) {
                    self.add_index(&idx)?;
                }
            }
            Change::RenameColumn { old, new } => {
                let i = self.column_index(old).ok_or_else(|| {
                    ddl_error(format!("column `{old}` is not a column of `{}`", self.name))
                })?;
                self.columns[i].name = new.clone();
                self.rename_in_keys(old, new);
            }
            Change::AddIndex(def) => self.add_index(def)?,
            Change::DropIndex(name) => self.drop_index(name),
            Change::DropPrimaryKey => self.primary_key.clear(),
            Change::RenameIndex { old, new } => {
                let entry = self
                    .unique_keys
                    .iter_mut()
                    .chain(self.indexes.iter_mut())
                    .find(|(n, _)| same(n, old))
                    .ok_or_else(|| {
                        ddl_error(format!("index `{old}` is not an index of `{}`", self.name))
                    })?;
                entry.0 = new.clone();
            }
            Change::DropConstraint(name) => {
                self.unique_keys.retain(|(n, _)| !same(n, name));
            }
            Change::Charset {
                charset,
                collation,
                convert,
            } => {
                let cs = charset
                    .clone()
                    .or_else(|| collation.as_deref().map(column::collation_charset));
                if let Some(cs) = cs {
                    if *convert {
                        for c in self.columns.iter_mut().filter(|c| is_textual(&c.data_type)) {
                            c.charset = Some(cs.clone());
                            c.collation = collation.clone();
                        }
                    }
                    self.charset = cs;
                }
            }
        }
        Ok(())
    }
}

/// The tracked schemas of all replicated tables.
#[derive(Debug, Clone, Default)]
pub struct SchemaTracker {
    case_sensitive: bool,
    tables: HashMap<(String, String), TableSchema>,
    /// Default character sets of databases, for tables created without one.
    schema_charsets: HashMap<String, String>,
}

impl SchemaTracker {
    /// An empty tracker; `case_sensitive` compares schema and table names exactly
    /// (`lower_case_table_names=0`), else ASCII case-insensitively.
    pub fn new(case_sensitive: bool) -> Self {
        Self {
            case_sensitive,
            tables: HashMap::new(),
            schema_charsets: HashMap::new(),
        }
    }

    fn key(&self, schema: &str, table: &str) -> (String, String) {
        if self.case_sensitive {
            (schema.to_string(), table.to_string())
        } else {
            (schema.to_ascii_lowercase(), table.to_ascii_lowercase())
        }
    }

    /// The schema of `schema.table`.
    pub fn get(&self, schema: &str, table: &str) -> Option<&TableSchema> {
        self.tables.get(&self.key(schema, table))
    }

    /// Tracks `t` under its `schema` and `name`, replacing what was tracked there.
    pub fn insert(&mut self, t: TableSchema) {
        let key = self.key(&t.schema, &t.name);
        self.tables.insert(key, t);
    }

    /// Sets the default character set of database `schema` (from
    /// [`load_schema_charset`], or known otherwise): a table created there without a character
    /// set gets it. CREATE/ALTER DATABASE pieces naming one set it too.
    pub fn set_schema_charset(&mut self, schema: &str, charset: impl Into<String>) {
        let key = self.key(schema, "").0;
        self.schema_charsets.insert(key, charset.into());
    }

    /// The default character set of database `schema`, if known.
    pub fn schema_charset(&self, schema: &str) -> Option<&str> {
        self.schema_charsets
            .get(&self.key(schema, "").0)
            .map(String::as_str)
    }

    /// Stops tracking `schema.table`.
    pub fn remove(&mut self, schema: &str, table: &str) -> Option<TableSchema> {
        let key = self.key(schema, table);
        self.tables.remove(&key)
    }

    /// Every tracked table, in no particular order.
    pub fn tables(&self) -> impl Iterator<Item = &TableSchema> {
        self.tables.values()
    }

    /// How many tables are tracked.
    pub fn len(&self) -> usize {
        self.tables.len()
    }

    /// Whether no table is tracked.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }

    fn unknown(schema: &str, table: &str) -> DmError {
        ddl_error(format!("table `{schema}`.`{table}` is not tracked"))
            .with_workaround("The syncer reloads the table's schema from the database.")
    }

    /// Applies one DDL piece. An ALTER, index DDL, RENAME or CREATE TABLE ... LIKE naming a
    /// table the tracker does not know is an error (coded
    /// [`codes::SYNCER_UNIT_HANDLE_DDL_FAILED`]); the tracker is unchanged by a failed piece.
    pub fn apply(&mut self, piece: &DdlPiece) -> Result<(), DmError> {
        let schema = piece.schema.as_str();
        let table = piece.table.as_deref().unwrap_or("");
        match piece.kind {
            DdlKind::TruncateTable => Ok(()),
            DdlKind::CreateDatabase | DdlKind::AlterDatabase => {
                if let Change::Charset {
                    charset, collation, ..
                } = &piece.change
                {
                    let cs = charset
                        .clone()
                        .or_else(|| collation.as_deref().map(column::collation_charset));
                    if let Some(cs) = cs {
                        self.set_schema_charset(schema, cs);
                    }
                }
                Ok(())
            }
            DdlKind::DropDatabase => {
                let s = self.key(schema, "").0;
                self.tables.retain(|(ks, _), _| *ks != s);
                self.schema_charsets.remove(&s);
                Ok(())
            }
            DdlKind::CreateTable => {
                if self.get(schema, table).is_some() {
                    return Ok(());
                }
                let Change::CreateTable(parsed) = &piece.change else {
                    return Err(ddl_error(format!(
                        "`{}` carries no table definition",
                        piece.sql
                    )));
                };
                let mut parsed = parsed.as_ref().clone();
                if parsed.charset.is_none() && parsed.collation.is_none() {
                    parsed.charset = self.schema_charset(schema).map(str::to_string);
                }
                let t = TableSchema::from_parsed(schema.to_string(), table.to_string(), &parsed)?;
                self.insert(t);
                Ok(())
            }
            DdlKind::CreateTableLike => {
                if self.get(schema, table).is_some() {
                    return Ok(());
                }
                let (ls, lt) = piece
                    .like_table
                    .as_ref()
                    .map(|(s, t)| (s.as_str(), t.as_str()))
                    .unwrap_or_default();
                let mut t = self
                    .get(ls, lt)
                    .cloned()
                    .ok_or_else(|| Self::unknown(ls, lt))?;
                t.schema = schema.to_string();
                t.name = table.to_string();
                self.insert(t);
                Ok(())
            }
            DdlKind::DropTable => {
                self.remove(schema, table);
                Ok(())
            }
            DdlKind::RenameTable | DdlKind::AlterTable(AlterKind::RenameTable) => {
                let Some((ns, nt)) = &piece.new_table else {
                    return Err(ddl_error(format!("`{}` has no new name", piece.sql)));
                };
                let mut t = self
                    .remove(schema, table)
                    .ok_or_else(|| Self::unknown(schema, table))?;
                t.schema = ns.clone();
                t.name = nt.clone();
                self.insert(t);
                Ok(())
            }
            DdlKind::AlterTable(_) | DdlKind::CreateIndex | DdlKind::DropIndex => {
                let key = self.key(schema, table);
                let current = self
                    .tables
                    .get(&key)
                    .ok_or_else(|| Self::unknown(schema, table))?;
                let mut t = current.clone();
                t.apply_change(&piece.change)
                    .map_err(|e| e.with_cause_text(format!("applying `{}`", piece.sql)))?;
                self.tables.insert(key, t);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests;
