//! DDL from the binlog (QUERY events), handled as DM's syncer does (`syncer/ddl.go`,
//! `pkg/parser/common.go`):
//!
//! 1. [`classify`] sorts a QUERY event's text without parsing it: `BEGIN`, `COMMIT`, DDL, a
//!    statement DM skips (savepoints, FLUSH, table maintenance, temporary tables, triggers,
//!    routines, events, views, tablespaces, servers, accounts and privileges, plugins, XA), or a
//!    statement-format DML (which DM cannot replicate; the caller errors).
//! 2. [`split`] parses a DDL and returns single-operation [`DdlPiece`]s: one per table of a
//!    multi-table DROP/RENAME, one ALTER per operation (`ADD COLUMN (a, b)` per column), every
//!    table name qualified, `IF [NOT] EXISTS` added (see below), each piece rendered as SQL text.
//! 3. [`rename_tables`] maps a piece's tables (route rules) and renders it again.
//!
//! # Text and parsing
//!
//! A piece's SQL is the user's own text with only its head rewritten: the parts that name
//! tables are rendered from the piece's fields (backquoted and qualified) and the rest (column
//! definitions, index definitions, table options, partitions, executable comments) is copied
//! verbatim, so what reaches the target is what the source server accepted. sqlparser (MySQL
//! dialect) parses the column and key definitions to learn the schema change the tracker
//! applies; its text is rebuilt by `lex::parser_text`, which rewrites the MySQL/MariaDB
//! attributes sqlparser 0.63 rejects (ZEROFILL, `CHARSET x`, `BINARY` collation shorthand,
//! `PERSISTENT`, `USING BTREE` in front of key columns, ...). A small hand-written recognizer
//! reads the statement heads, because sqlparser 0.63 cannot parse several forms MariaDB writes:
//! `ALTER TABLE ... ADD COLUMN (a INT, b INT)`, `DROP KEY`, `RENAME u` without `TO`, the
//! `IF [NOT] EXISTS` clauses inside ALTER, `ALTER DATABASE`, `ALTER ONLINE TABLE`, and ALTER
//! table options (`ENGINE=`, `COMMENT`, `CONVERT TO CHARACTER SET`, `FORCE`, `ORDER BY`).
//! Those table options, ALTER DATABASE options and partition clauses do not change the tracked
//! schema and pass through verbatim after a shape check; everything that changes columns or
//! keys must parse with sqlparser, else [`split`] fails with a [`codes::PARSE_SQL`] error naming
//! the statement (the syncer pauses; the user can skip or replace the DDL).
//!
//! # `IF [NOT] EXISTS`
//!
//! Added to CREATE/DROP DATABASE, CREATE/DROP TABLE (and CREATE TABLE ... LIKE), CREATE INDEX,
//! DROP INDEX, and inside ALTER TABLE to ADD COLUMN, DROP COLUMN, DROP INDEX/KEY and to ADD
//! INDEX/KEY/UNIQUE when the index is named (an unnamed index gets a new generated name on
//! every run, so the clause would not make it idempotent). These are MariaDB and TiDB syntax:
//! MySQL 8 rejects the ALTER TABLE and index forms. ALGORITHM/LOCK clauses of ALTER TABLE and
//! DROP INDEX, `ALTER ONLINE`, `ALTER TABLE IF EXISTS` and `WITH[OUT] VALIDATION` are dropped
//! (the target chooses how to run the DDL); MariaDB's `CREATE OR REPLACE TABLE|DATABASE|INDEX`
//! becomes a DROP piece and a CREATE piece.
//!
//! # Not supported
//!
//! `CREATE TABLE ... SELECT` (a row-format binlog never carries it), sequences, and any DDL
//! whose column or key definitions sqlparser cannot parse fail with a coded error. FOREIGN KEY
//! `REFERENCES` targets are copied verbatim, so they are neither qualified nor routed: run the
//! pieces with the target schema as the connection's default database.

mod lex;
mod parse;
mod split;

use serde::{Deserialize, Serialize};

use crate::error::{DmError, codes};
use crate::sql::quote_ident;

pub(crate) use lex::quote_str;
pub(crate) use parse::{
    Change, ColumnPosition, IndexDef, IndexKind, ParsedTable, column_level_indexes,
};

/// How the syncer treats a QUERY event's statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StatementKind {
    /// `BEGIN` (start of a transaction).
    Begin,
    /// `COMMIT`.
    Commit,
    /// A DDL the syncer handles through [`split`].
    Ddl,
    /// A statement DM skips.
    Skip,
    /// A statement-format DML: DM cannot replicate it, the caller reports an error.
    Dml,
}

/// The DDL statement a piece is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DdlKind {
    /// `CREATE DATABASE|SCHEMA`.
    CreateDatabase,
    /// `DROP DATABASE|SCHEMA`.
    DropDatabase,
    /// `ALTER DATABASE|SCHEMA` (options only).
    AlterDatabase,
    /// `CREATE TABLE` with a column list.
    CreateTable,
    /// `CREATE TABLE ... LIKE`; the piece's `like_table` is the source.
    CreateTableLike,
    /// `DROP TABLE`, one table.
    DropTable,
    /// `TRUNCATE [TABLE]`.
    TruncateTable,
    /// `RENAME TABLE`, one pair; the piece's `new_table` is the target.
    RenameTable,
    /// `ALTER TABLE` with one operation.
    AlterTable(AlterKind),
    /// `CREATE [UNIQUE|FULLTEXT|SPATIAL] INDEX`.
    CreateIndex,
    /// `DROP INDEX ... ON`.
    DropIndex,
}

impl DdlKind {
    /// The binlog event filter's name for this DDL (`create table`, `add column`, ...; DM's
    /// `binlog-filter` event types). ALTER TABLE operations without a finer name are
    /// `alter table`.
    pub fn filter_name(self) -> &'static str {
        match self {
            Self::CreateDatabase => "create database",
            Self::DropDatabase => "drop database",
            Self::AlterDatabase => "alter database",
            Self::CreateTable | Self::CreateTableLike => "create table",
            Self::DropTable => "drop table",
            Self::TruncateTable => "truncate table",
            Self::RenameTable | Self::AlterTable(AlterKind::RenameTable) => "rename table",
            Self::CreateIndex => "create index",
            Self::DropIndex | Self::AlterTable(AlterKind::DropIndex) => "drop index",
            Self::AlterTable(k) => match k {
                AlterKind::AddColumn => "add column",
                AlterKind::DropColumn => "drop column",
                AlterKind::ModifyColumn | AlterKind::ChangeColumn => "modify column",
                AlterKind::RenameColumn => "rename column",
                AlterKind::RenameIndex => "rename index",
                AlterKind::DropPrimaryKey => "drop primary key",
                AlterKind::AlterColumn => "modify default value",
                AlterKind::DropConstraint | AlterKind::DropForeignKey => "modify constraint",
                AlterKind::ConvertCharset => "modify charset",
                _ => "alter table",
            },
        }
    }

    /// Whether the DDL removes or renames a table or database, so that "no such table" from
    /// the target means it already ran.
    pub fn drops_or_moves(self) -> bool {
        matches!(
            self,
            Self::DropTable
                | Self::DropDatabase
                | Self::RenameTable
                | Self::AlterTable(AlterKind::RenameTable)
        )
    }
}

/// The one operation of an ALTER TABLE piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlterKind {
    /// `ADD [COLUMN]` (one column; `ADD (a, b)` gives one piece per column).
    AddColumn,
    /// `DROP [COLUMN]`.
    DropColumn,
    /// `MODIFY [COLUMN]`.
    ModifyColumn,
    /// `CHANGE [COLUMN] old new ...`.
    ChangeColumn,
    /// `RENAME COLUMN a TO b`.
    RenameColumn,
    /// `ALTER [COLUMN] c SET/DROP DEFAULT`, `ALTER INDEX ... [IN]VISIBLE` and the like.
    AlterColumn,
    /// A non-unique index: `ADD INDEX/KEY`, `ADD FULLTEXT/SPATIAL`.
    AddIndex,
    /// `ADD [CONSTRAINT [c]] UNIQUE [INDEX|KEY]`.
    AddUniqueKey,
    /// `ADD [CONSTRAINT [c]] PRIMARY KEY`.
    AddPrimaryKey,
    /// `ADD [CONSTRAINT [c]] FOREIGN KEY`.
    AddForeignKey,
    /// `DROP INDEX/KEY` (the name `PRIMARY` drops the primary key).
    DropIndex,
    /// `DROP PRIMARY KEY`.
    DropPrimaryKey,
    /// `DROP FOREIGN KEY`.
    DropForeignKey,
    /// `DROP CONSTRAINT` (a CHECK or, on MariaDB/MySQL 8, a unique key).
    DropConstraint,
    /// `RENAME {INDEX|KEY} a TO b`.
    RenameIndex,
    /// `RENAME [TO|AS] t`; the piece's `new_table` is the new name.
    RenameTable,
    /// Table options (`ENGINE=`, `COMMENT=`, `[DEFAULT] CHARSET=`, `AUTO_INCREMENT=`, ...).
    TableOptions,
    /// `CONVERT TO CHARACTER SET`.
    ConvertCharset,
    /// Partition clauses (`PARTITION BY`, `ADD/DROP/... PARTITION`, `REMOVE PARTITIONING`),
    /// kept together as one piece.
    Partition,
    /// Anything else passed through (`ADD CHECK`, `DROP CHECK`, `FORCE`, `ORDER BY`,
    /// `ENABLE/DISABLE KEYS`, system versioning).
    Other,
}

/// One rendered part of a piece's SQL (see [`DdlPiece::sql`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Part {
    /// Literal text.
    Text(String),
    /// The piece's schema, quoted.
    Schema,
    /// The piece's table, qualified and quoted.
    Table,
    /// The rename target, qualified and quoted.
    NewTable,
    /// The CREATE TABLE ... LIKE source, qualified and quoted.
    LikeTable,
}

/// One single-operation DDL statement from [`split`].
#[derive(Debug, Clone, PartialEq)]
pub struct DdlPiece {
    pub kind: DdlKind,
    /// The schema the statement acts on (the database itself for database DDL).
    pub schema: String,
    /// The table (none for database DDL).
    pub table: Option<String>,
    /// The new `(schema, table)` of RENAME TABLE and `ALTER TABLE ... RENAME`.
    pub new_table: Option<(String, String)>,
    /// The source `(schema, table)` of CREATE TABLE ... LIKE.
    pub like_table: Option<(String, String)>,
    /// The piece as SQL, executable on MariaDB and TiDB (see the module docs for the clauses
    /// MySQL 8 rejects), every table name qualified and backquoted.
    pub sql: String,
    pub(crate) template: Vec<Part>,
    pub(crate) change: Change,
}

fn qualified(schema: &str, table: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(table))
}

impl DdlPiece {
    fn render(&self) -> String {
        let mut out = String::new();
        let pair = |p: &Option<(String, String)>| {
            p.as_ref().map(|(s, t)| qualified(s, t)).unwrap_or_default()
        };
        for part in &self.template {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Schema => out.push_str(&quote_ident(&self.schema)),
                Part::Table => {
                    out.push_str(&qualified(
                        &self.schema,
                        self.table.as_deref().unwrap_or(""),
                    ));
                }
                Part::NewTable => out.push_str(&pair(&self.new_table)),
                Part::LikeTable => out.push_str(&pair(&self.like_table)),
            }
        }
        out
    }

    /// `(schema, table)` when the piece acts on a table.
    pub fn table_ref(&self) -> Option<(&str, &str)> {
        self.table.as_deref().map(|t| (self.schema.as_str(), t))
    }
}

/// Words after CREATE/DROP/ALTER naming objects DM skips.
const SKIPPED_OBJECTS: &[&str] = &[
    "TRIGGER",
    "PROCEDURE",
    "FUNCTION",
    "EVENT",
    "VIEW",
    "TABLESPACE",
    "LOGFILE",
    "SERVER",
    "USER",
    "ROLE",
    "PACKAGE",
    "AGGREGATE",
    "RESOURCE",
    "REFERENCE",
    "INSTANCE",
    "PREPARE",
];

/// Words after CREATE/DROP/ALTER naming objects [`split`] handles (or reports).
const DDL_OBJECTS: &[&str] = &["TABLE", "TABLES", "DATABASE", "SCHEMA", "INDEX", "SEQUENCE"];

/// Sorts a QUERY event's statement by its first words, without parsing it.
///
/// Leading comments, `/*!NNNNN ... */` executable comments, whitespace and case do not
/// matter; an empty statement or a comment only (`# Dummy event ...`) is [`StatementKind::Skip`].
pub fn classify(sql: &str) -> StatementKind {
    use StatementKind::*;
    let mut toks = lex::Lexer::new(sql).map_while(Result::ok);
    let Some(first) = toks.next() else {
        return Skip;
    };
    if first.kind != lex::TokKind::Word {
        return Skip;
    }
    let is = |w: &str| first.text.eq_ignore_ascii_case(w);
    if is("BEGIN") {
        Begin
    } else if is("COMMIT") {
        Commit
    } else if is("START") {
        match toks.next() {
            Some(t) if t.is("TRANSACTION") => Begin,
            _ => Skip,
        }
    } else if ["INSERT", "UPDATE", "DELETE", "REPLACE", "LOAD", "WITH"]
        .iter()
        .any(|w| is(w))
    {
        Dml
    } else if is("TRUNCATE") {
        Ddl
    } else if is("RENAME") {
        match toks.next() {
            Some(t) if t.is_any(&["TABLE", "TABLES"]) => Ddl,
            _ => Skip,
        }
    } else if is("CREATE") || is("DROP") || is("ALTER") {
        for t in toks.take(16) {
            if t.kind != lex::TokKind::Word {
                continue;
            }
            if t.is("TEMPORARY") || t.is_any(SKIPPED_OBJECTS) {
                return Skip;
            }
            if t.is_any(DDL_OBJECTS) {
                return Ddl;
            }
        }
        // Unknown object: let `split` name it in its error rather than drop it silently.
        Ddl
    } else {
        Skip
    }
}

/// Shortens a statement for an error message.
fn abbreviate(sql: &str) -> String {
    const MAX: usize = 1000;
    let sql = sql.trim();
    if sql.len() <= MAX {
        return sql.to_string();
    }
    let mut end = MAX;
    while !sql.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &sql[..end])
}

/// Splits one DDL statement into single-operation pieces (see the module docs).
///
/// `default_schema` is the QUERY event's current database; it qualifies unqualified names
/// (an unqualified name with an empty default schema is an error). A statement [`classify`]
/// calls [`StatementKind::Skip`] gives no pieces; BEGIN, COMMIT and DML are errors.
///
/// Errors: [`codes::PARSE_SQL`] when the statement cannot be parsed,
/// [`codes::SYNCER_UNIT_HANDLE_DDL_FAILED`] when it parses but cannot be handled.
pub fn split(sql: &str, default_schema: &str) -> Result<Vec<DdlPiece>, DmError> {
    match classify(sql) {
        StatementKind::Ddl => {}
        StatementKind::Skip => return Ok(Vec::new()),
        other => {
            return Err(DmError::new(
                &codes::SYNCER_UNIT_HANDLE_DDL_FAILED,
                format!("`{}` is not a DDL statement ({other:?})", abbreviate(sql)),
            ));
        }
    }
    let lexed = lex::lex(sql).map_err(|e| split::SplitError::Parse(e).into_dm(sql))?;
    split::Splitter::new(&lexed, default_schema)
        .run()
        .map_err(|e| e.into_dm(sql))
}

/// The table `sql` (a `CREATE TABLE` statement, as in dump files and `SHOW CREATE TABLE`)
/// defines: `(schema if qualified, table, definition)`.
pub(crate) fn parse_create_table(
    sql: &str,
) -> Result<(Option<String>, String, ParsedTable), DmError> {
    let lexed = lex::lex(sql).map_err(|e| split::SplitError::Parse(e).into_dm(sql))?;
    split::Splitter::new(&lexed, "")
        .create_table_only()
        .map_err(|e| e.into_dm(sql))
}

/// The piece with every table it names (its table, the rename target, the LIKE source) mapped
/// through `map(schema, table) -> (schema, table)`, and its SQL rendered again. Database
/// pieces map `(schema, "")` and keep the returned schema.
pub fn rename_tables(
    piece: &DdlPiece,
    mut map: impl FnMut(&str, &str) -> (String, String),
) -> Result<DdlPiece, DmError> {
    let mut out = piece.clone();
    let mut map_pair = |s: &str, t: &str| {
        let (s2, t2) = map(s, t);
        if s2.is_empty() || (t2.is_empty() && !t.is_empty()) {
            return Err(DmError::new(
                &codes::SYNCER_UNIT_HANDLE_DDL_FAILED,
                format!("routing `{}` gives an empty name `{s2}`.`{t2}`", piece.sql),
            ));
        }
        Ok((s2, t2))
    };
    let (s, t) = map_pair(&piece.schema, piece.table.as_deref().unwrap_or(""))?;
    out.schema = s;
    if piece.table.is_some() {
        out.table = Some(t);
    }
    if let Some((s, t)) = &piece.new_table {
        out.new_table = Some(map_pair(s, t)?);
    }
    if let Some((s, t)) = &piece.like_table {
        out.like_table = Some(map_pair(s, t)?);
    }
    out.sql = out.render();
    Ok(out)
}

#[cfg(test)]
mod tests;
