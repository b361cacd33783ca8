//! The schema phase: CREATE DATABASE and CREATE TABLE from the dump's schema files, routed,
//! before any row is loaded; and the per-table plan of where rows go.
//!
//! Every statement is idempotent (`IF NOT EXISTS` is added by [`ddl::split`]), so the phase
//! simply runs again on resume. Shard tables routed to one target all run their CREATE TABLE:
//! the first creates the table, the others are no-ops. A route with extract-* columns adds them
//! with `ALTER TABLE ... ADD COLUMN IF NOT EXISTS <col> VARCHAR(64)` after the CREATE, which
//! also leaves a pre-created target (that has the columns) as it is.
//!
//! With `defer-secondary-indexes` (default), a table the phase creates leaves out its plain
//! non-unique `KEY`s, recorded first in `<meta-schema>.<task>_loader_index`; they are added
//! after the data phase ([`super::indexes`]). All CREATE TABLE texts are read before the first
//! one runs, because a table that another table's foreign key references keeps its indexes.
//! A target table that already exists is created by nobody and altered only when this source
//! recorded it in an earlier run.
//!
//! Only the CREATE statement of a schema file runs; its SET lines (dumpling's
//! `SET NAMES binary`) are skipped, because SHOW CREATE TABLE text is UTF-8 and must be read
//! as such (default values in other charsets stay correct).

use std::sync::Arc;

use sqlparser::ast::{ColumnDef, ColumnOption, DataType};
use tracing::{info, warn};

use super::downstream::Downstream;
use super::files::{DataFile, DumpDir, TableFiles, main_statement};
use super::indexes::Deferral;
use super::insert::{InsertPlan, OnDuplicate};
use crate::error::{DmError, codes};
use crate::sql::ddl::{self, DdlKind, DdlPiece};
use crate::sql::filter::BaFilter;
use crate::sql::quote_ident;
use crate::sql::route::Router;

/// One upstream table to load, and where its rows go.
#[derive(Debug, Clone)]
pub struct TableLoad {
    /// Upstream schema and table (the checkpoint's `cp_schema`, `cp_table`).
    pub schema: String,
    pub table: String,
    /// Target schema and table.
    pub target: (String, String),
    pub plan: Arc<InsertPlan>,
    pub data: Vec<DataFile>,
}

/// What the phase needs from the subtask.
pub struct SchemaContext<'a> {
    pub source_id: &'a str,
    pub router: &'a Router,
    pub ba: &'a BaFilter,
    pub mode: OnDuplicate,
}

fn parse_err(path: &std::path::Path, e: DmError) -> DmError {
    DmError::new(
        &codes::LOAD_UNIT_PARSE_STATEMENT,
        format!("`{}`: cannot parse its CREATE statement", path.display()),
    )
    .with_cause_text(e.chain())
}

fn not_create(path: &std::path::Path, what: &str) -> DmError {
    DmError::new(
        &codes::LOAD_UNIT_NOT_CREATE_TABLE,
        format!("`{}` does not hold a {what} statement", path.display()),
    )
}

/// Reads a small schema file off the async thread.
async fn statement_of(path: &std::path::Path) -> Result<String, DmError> {
    let p = path.to_path_buf();
    tokio::task::spawn_blocking(move || main_statement(&p))
        .await
        .map_err(|e| {
            DmError::new(&codes::LOAD_UNIT_READ_SCHEMA_FILE, "reading a schema file").with_cause(e)
        })?
}

/// One allowed table of the dump with its CREATE statement read.
struct Prepared<'d> {
    files: &'d TableFiles,
    /// Upstream names (the statement's when there is one).
    schema: String,
    table: String,
    /// The parsed statement and its text.
    create: Option<(DdlPiece, String)>,
}

/// Reads and checks a table's schema file (if any).
async fn read_table(t: &TableFiles) -> Result<Prepared<'_>, DmError> {
    let mut p = Prepared {
        files: t,
        schema: t.schema.clone(),
        table: t.table.clone(),
        create: None,
    };
    let Some(path) = &t.schema_file else {
        return Ok(p);
    };
    let sql = match &t.create {
        Some(s) => s.clone(),
        None => statement_of(path).await?,
    };
    let pieces = ddl::split(&sql, &t.schema).map_err(|e| parse_err(path, e))?;
    let [piece] = pieces.as_slice() else {
        return Err(not_create(path, "CREATE TABLE"));
    };
    let Some((s, tb)) = piece
        .table_ref()
        .filter(|_| piece.kind == DdlKind::CreateTable)
    else {
        return Err(not_create(path, "CREATE TABLE"));
    };
    // The statement's names are the authority (a file name may be ambiguous).
    p.schema = s.to_string();
    p.table = tb.to_string();
    p.create = Some((piece.clone(), sql));
    Ok(p)
}

/// Creates the allowed databases and tables on the target and returns the tables to load.
/// `deferral` decides which indexes wait for the data (see [`super::indexes`]); its pending
/// tables are the ones the caller completes after the data phase.
pub async fn create_schemas(
    down: &mut Downstream,
    dump: &DumpDir,
    ctx: &SchemaContext<'_>,
    deferral: &mut Deferral,
) -> Result<Vec<TableLoad>, DmError> {
    for db in &dump.databases {
        if !ctx.ba.allows(&db.schema, None) {
            continue;
        }
        let sql = statement_of(&db.path).await?;
        let pieces = ddl::split(&sql, &db.schema).map_err(|e| parse_err(&db.path, e))?;
        let [piece] = pieces.as_slice() else {
            return Err(not_create(&db.path, "CREATE DATABASE"));
        };
        if piece.kind != DdlKind::CreateDatabase {
            return Err(not_create(&db.path, "CREATE DATABASE"));
        }
        let target = ctx.router.route(ctx.source_id, &piece.schema, None)?.schema;
        let routed = ddl::rename_tables(piece, |_, _| (target.clone(), String::new()))?;
        down.exec(&routed.sql, &format!("creating database `{target}`"))
            .await?;
    }

    let mut prepared = Vec::new();
    for t in &dump.tables {
        if ctx.ba.allows(&t.schema, Some(&t.table)) {
            prepared.push(read_table(t).await?);
        }
    }
    // First every foreign key: a table another one references keeps its indexes.
    for p in &prepared {
        if let Some((_, sql)) = &p.create {
            deferral.note_references(&p.schema, sql);
        }
    }
    let mut out = Vec::new();
    for p in prepared {
        out.push(create_table(down, ctx, deferral, p).await?);
    }
    info!(
        databases = dump.databases.len(),
        tables = out.len(),
        "schemas created"
    );
    Ok(out)
}

/// Creates one table on the target (its CREATE, deferred indexes left out when `deferral`
/// says so, then the route's extract columns) and returns its load plan.
async fn create_table(
    down: &mut Downstream,
    ctx: &SchemaContext<'_>,
    deferral: &mut Deferral,
    p: Prepared<'_>,
) -> Result<TableLoad, DmError> {
    let Prepared {
        files,
        schema,
        table,
        create,
    } = p;
    let routed = ctx.router.route(ctx.source_id, &schema, Some(&table))?;
    let target = (
        routed.schema.clone(),
        routed.table.clone().unwrap_or_else(|| table.clone()),
    );
    let what = format!("creating table `{}`.`{}`", target.0, target.1);
    let mut columns = None;
    let mut binary = Vec::new();
    // Whether the table has generated columns (or its columns are unknown).
    let mut generated = true;
    if let Some((piece, sql)) = &create {
        let piece = ddl::rename_tables(piece, |_, _| target.clone())?;
        down.exec(
            &format!("CREATE DATABASE IF NOT EXISTS {}", quote_ident(&target.0)),
            &what,
        )
        .await?;
        let create_sql = deferral
            .create_sql(down, (&schema, &table), &target, &piece.sql)
            .await?;
        // In the target schema: FOREIGN KEY references are copied unqualified.
        down.exec(
            &format!("USE {};\n{}", quote_ident(&target.0), create_sql),
            &what,
        )
        .await?;
        // For INSERTs without a column list: extract columns, and LOAD DATA's row width.
        if let Some(t) = table_columns(sql) {
            columns = Some(t.insertable);
            binary = t.binary;
            generated = t.generated;
        }
    } else {
        warn!(schema = %schema, table = %table, "no schema file for the table; its target table must exist");
    }
    for (col, _) in &routed.extra_columns {
        down.exec(
            &format!(
                "ALTER TABLE {}.{} ADD COLUMN IF NOT EXISTS {} VARCHAR(64)",
                quote_ident(&target.0),
                quote_ident(&target.1),
                quote_ident(col)
            ),
            &format!(
                "adding extract column `{col}` to `{}`.`{}`",
                target.0, target.1
            ),
        )
        .await?;
    }
    let plan = InsertPlan::new(
        ctx.mode,
        &target.0,
        &target.1,
        &routed.extra_columns,
        columns.as_deref(),
    )
    .with_binary_columns(binary)
    .with_generated_columns(generated);
    Ok(TableLoad {
        schema,
        table,
        target,
        plan: Arc::new(plan),
        data: files.data.clone(),
    })
}

/// What the loader needs to know of a table's columns, from one parse of its CREATE TABLE.
#[derive(Debug, PartialEq, Eq)]
struct TableColumns {
    /// The non-generated columns, in order (the row of an INSERT without a column list).
    insertable: Vec<String>,
    /// The columns whose values are raw bytes: BINARY, VARBINARY and the BLOB types, or
    /// `CHARACTER SET binary`.
    binary: Vec<String>,
    /// Whether there are generated columns.
    generated: bool,
}

/// The [`TableColumns`] of a CREATE TABLE; `None` when the statement does not parse.
fn table_columns(create: &str) -> Option<TableColumns> {
    let (_, _, parsed) = ddl::parse_create_table(create).ok()?;
    let is_generated = |c: &ColumnDef| {
        c.options
            .iter()
            .any(|o| matches!(o.option, ColumnOption::Generated { .. }))
    };
    let is_binary = |c: &ColumnDef| {
        matches!(
            c.data_type,
            DataType::Binary(_)
                | DataType::Varbinary(_)
                | DataType::Blob(_)
                | DataType::TinyBlob
                | DataType::MediumBlob
                | DataType::LongBlob
        ) || c.options.iter().any(|o| {
            matches!(&o.option, ColumnOption::CharacterSet(n)
                if n.to_string().eq_ignore_ascii_case("binary"))
        })
    };
    let names = |keep: &dyn Fn(&ColumnDef) -> bool| {
        parsed
            .columns
            .iter()
            .filter(|c| keep(c))
            .map(|c| c.name.value.clone())
            .collect::<Vec<_>>()
    };
    Some(TableColumns {
        insertable: names(&|c| !is_generated(c)),
        binary: names(&is_binary),
        generated: parsed.columns.iter().any(is_generated),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_skip_generated_ones() {
        let t = table_columns(
            "CREATE TABLE `t` (`a` INT, `b c` VARCHAR(3), `g` INT AS (a + 1) VIRTUAL, PRIMARY KEY (`a`))",
        )
        .unwrap();
        assert_eq!(t.insertable, vec!["a".to_string(), "b c".to_string()]);
        assert!(t.generated);
    }

    #[test]
    fn binary_columns_from_the_create() {
        let t = table_columns(
            "CREATE TABLE t (a INT, b VARBINARY(3), c BLOB, d LONGBLOB, e BINARY(2), \
             f VARCHAR(3) CHARACTER SET binary, g TEXT, h VARCHAR(2) CHARACTER SET latin1)",
        )
        .unwrap();
        assert_eq!(t.binary, vec!["b", "c", "d", "e", "f"]);
        assert!(!t.generated);
        assert!(table_columns("not sql").is_none());
    }
}
