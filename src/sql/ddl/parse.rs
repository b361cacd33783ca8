//! What a DDL piece changes, in parsed form, and the sqlparser calls that produce it.
//!
//! Only the schema tracker reads these types; they keep sqlparser's column definitions (the
//! tracker maps their `DataType`) and reduce every key definition to an [`IndexDef`].

use sqlparser::ast::{
    self, AlterTableOperation, ColumnOption, Expr, IndexColumn, MySQLColumnPosition, Statement,
    TableConstraint,
};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;

/// The schema change a piece makes, for the schema tracker.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Change {
    /// Nothing the tracker records (table options, partitions, checks, database DDL...).
    None,
    /// A whole table definition (CREATE TABLE).
    CreateTable(Box<ParsedTable>),
    /// ADD COLUMN.
    AddColumn {
        def: Box<ast::ColumnDef>,
        position: Option<ColumnPosition>,
    },
    /// DROP COLUMN.
    DropColumn(String),
    /// MODIFY (`old` equals the new name) or CHANGE COLUMN.
    ModifyColumn {
        old: String,
        def: Box<ast::ColumnDef>,
        position: Option<ColumnPosition>,
    },
    /// RENAME COLUMN.
    RenameColumn { old: String, new: String },
    /// ADD INDEX/UNIQUE/PRIMARY KEY/FOREIGN KEY, CREATE INDEX.
    AddIndex(IndexDef),
    /// DROP INDEX (not the primary key).
    DropIndex(String),
    /// DROP PRIMARY KEY.
    DropPrimaryKey,
    /// RENAME INDEX.
    RenameIndex { old: String, new: String },
    /// DROP CONSTRAINT: drops a unique key of that name, if any.
    DropConstraint(String),
    /// Table character set options; `convert` for CONVERT TO CHARACTER SET (columns too).
    Charset {
        charset: Option<String>,
        collation: Option<String>,
        convert: bool,
    },
}

/// A parsed CREATE TABLE body.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ParsedTable {
    pub columns: Vec<ast::ColumnDef>,
    /// Column-level keys (in column order), then table-level ones (in order).
    pub indexes: Vec<IndexDef>,
    pub charset: Option<String>,
    pub collation: Option<String>,
}

/// What kind of key an index is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IndexKind {
    Primary,
    Unique,
    /// Non-unique: KEY/INDEX, FULLTEXT, SPATIAL.
    Plain,
    /// A FOREIGN KEY, which creates a plain index when no index covers its columns.
    ForeignKey,
}

/// One key definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IndexDef {
    pub kind: IndexKind,
    pub name: Option<String>,
    /// Column names (prefix lengths dropped).
    pub columns: Vec<String>,
    /// Some part is an expression, not a column.
    pub functional: bool,
}

/// FIRST / AFTER of ADD/MODIFY/CHANGE COLUMN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ColumnPosition {
    First,
    After(String),
}

impl From<MySQLColumnPosition> for ColumnPosition {
    fn from(p: MySQLColumnPosition) -> Self {
        match p {
            MySQLColumnPosition::First => Self::First,
            MySQLColumnPosition::After(id) => Self::After(id.value),
        }
    }
}

/// Parses exactly one statement with the MySQL dialect.
pub(crate) fn parse_statement(text: &str) -> Result<Statement, String> {
    let mut stmts = Parser::parse_sql(&MySqlDialect {}, text).map_err(|e| e.to_string())?;
    match stmts.len() {
        1 => Ok(stmts.remove(0)),
        n => Err(format!("expected one statement, parsed {n}")),
    }
}

/// Parses `ALTER TABLE t <spec>` and returns its one operation.
pub(crate) fn parse_alter_op(spec: &str) -> Result<AlterTableOperation, String> {
    match parse_statement(&format!("ALTER TABLE `t` {spec}"))? {
        Statement::AlterTable(mut a) if a.operations.len() == 1 => Ok(a.operations.remove(0)),
        _ => Err(format!("`{spec}` is not one ALTER TABLE operation")),
    }
}

/// Column names of an index's parts; `true` if some part is an expression.
fn index_columns(cols: &[IndexColumn]) -> (Vec<String>, bool) {
    let mut names = Vec::with_capacity(cols.len());
    let mut functional = false;
    for c in cols {
        match &c.column.expr {
            Expr::Identifier(id) => names.push(id.value.clone()),
            Expr::CompoundIdentifier(ids) if !ids.is_empty() => {
                names.push(ids[ids.len() - 1].value.clone());
            }
            // `col(10)`: MySQL reads a call-like part as a prefix of column `col`
            // (expression parts need their own parentheses).
            Expr::Function(f) if f.name.0.len() == 1 => match f.name.0[0].as_ident() {
                Some(id) => names.push(id.value.clone()),
                None => functional = true,
            },
            _ => functional = true,
        }
    }
    (names, functional)
}

/// The key a table constraint defines; `None` for CHECK and others.
pub(crate) fn index_def(c: &TableConstraint) -> Option<IndexDef> {
    let (kind, name, cols): (_, Option<&ast::Ident>, _) = match c {
        TableConstraint::PrimaryKey(p) => (IndexKind::Primary, None, &p.columns),
        TableConstraint::Unique(u) => (
            IndexKind::Unique,
            u.index_name.as_ref().or(u.name.as_ref()),
            &u.columns,
        ),
        TableConstraint::Index(i) => (IndexKind::Plain, i.name.as_ref(), &i.columns),
        TableConstraint::FulltextOrSpatial(f) => {
            (IndexKind::Plain, f.opt_index_name.as_ref(), &f.columns)
        }
        TableConstraint::ForeignKey(f) => {
            return Some(IndexDef {
                kind: IndexKind::ForeignKey,
                name: f
                    .index_name
                    .as_ref()
                    .or(f.name.as_ref())
                    .map(|n| n.value.clone()),
                columns: f.columns.iter().map(|c| c.value.clone()).collect(),
                functional: false,
            });
        }
        _ => return None,
    };
    let (columns, functional) = index_columns(cols);
    Some(IndexDef {
        kind,
        name: name.map(|n| n.value.clone()),
        columns,
        functional,
    })
}

/// Keys a column definition declares itself (`PRIMARY KEY`, `UNIQUE [KEY]`, `SERIAL`).
pub(crate) fn column_level_indexes(def: &ast::ColumnDef) -> Vec<IndexDef> {
    let one = |kind| IndexDef {
        kind,
        name: None,
        columns: vec![def.name.value.clone()],
        functional: false,
    };
    let mut out = Vec::new();
    if let ast::DataType::Custom(name, _) = &def.data_type
        && name.to_string().eq_ignore_ascii_case("SERIAL")
    {
        out.push(one(IndexKind::Unique));
    }
    for o in &def.options {
        match o.option {
            ColumnOption::PrimaryKey(_) => out.push(one(IndexKind::Primary)),
            ColumnOption::Unique(_) => out.push(one(IndexKind::Unique)),
            _ => {}
        }
    }
    out
}

impl ParsedTable {
    /// The table a parsed CREATE TABLE statement defines.
    pub(crate) fn from_create(
        ct: ast::CreateTable,
        charset: Option<String>,
        collation: Option<String>,
    ) -> Self {
        let mut indexes: Vec<IndexDef> = ct.columns.iter().flat_map(column_level_indexes).collect();
        indexes.extend(ct.constraints.iter().filter_map(index_def));
        Self {
            columns: ct.columns,
            indexes,
            charset,
            collation,
        }
    }
}

/// Builds a column definition from MODIFY/CHANGE parts.
pub(crate) fn column_def(
    name: ast::Ident,
    data_type: ast::DataType,
    options: Vec<ColumnOption>,
) -> ast::ColumnDef {
    ast::ColumnDef {
        name,
        data_type,
        options: options
            .into_iter()
            .map(|option| ast::ColumnOptionDef { name: None, option })
            .collect(),
    }
}
