//! What to dump: the upstream's schemas, base tables and views that the block-allow-list
//! selects (system schemas never), and for each table its columns, its split key and its
//! `CREATE` statement.
//!
//! The object list is read before the consistency point (consistency `lock` needs it for
//! `LOCK TABLES`); the descriptions are read on a dump connection after it (inside its
//! snapshot transaction, which then holds a shared metadata lock on each table it described,
//! so DDL on a dumped table waits for the dump). Tables of other types are left out:
//! MariaDB's `SYSTEM VERSIONED` tables (their history cannot be written back with INSERT)
//! and `SEQUENCE`s are logged and skipped.

use std::collections::HashMap;

use mysql_async::prelude::*;
use mysql_async::{Conn, Row, Value};
use tracing::warn;

use super::writer::{ValueKind, select_expr};
use crate::binlog::value::ColumnInfo;
use crate::db::errno::{ER_TABLEACCESS_DENIED_ERROR, ER_VIEW_INVALID, ER_VIEW_NO_EXPLAIN};
use crate::error::{DmError, codes};
use crate::sql::filter::{BaFilter, is_system_schema};
use crate::sql::{quote_ident, quote_string};

/// A schema to create, with its default charset and collation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    /// Schema name.
    pub name: String,
    /// `DEFAULT_CHARACTER_SET_NAME`.
    pub charset: Option<String>,
    /// `DEFAULT_COLLATION_NAME`.
    pub collation: Option<String>,
}

impl Schema {
    /// The `CREATE DATABASE IF NOT EXISTS` statement of `<db>-schema-create.sql`.
    pub fn create_sql(&self) -> String {
        let mut s = format!("CREATE DATABASE IF NOT EXISTS {}", quote_ident(&self.name));
        if let Some(c) = &self.charset {
            s.push_str(&format!(" DEFAULT CHARACTER SET {c}"));
        }
        if let Some(c) = &self.collation {
            s.push_str(&format!(" COLLATE {c}"));
        }
        s.push_str(";\n");
        s
    }
}

/// A base table to dump, with the statistics that size its chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRef {
    /// Schema name.
    pub schema: String,
    /// Table name.
    pub name: String,
    /// `TABLE_ROWS` (an estimate for InnoDB).
    pub rows_estimate: u64,
    /// `AVG_ROW_LENGTH`.
    pub avg_row_length: u64,
}

impl TableRef {
    /// `` `db`.`tbl` ``.
    pub fn qualified(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }
}

/// Everything the block-allow-list selects.
#[derive(Debug, Clone, Default)]
pub struct Objects {
    /// Schemas the block-allow-list allows, by name.
    pub schemas: Vec<Schema>,
    /// Base tables it allows, by schema and name.
    pub tables: Vec<TableRef>,
    /// (schema, view).
    pub views: Vec<(String, String)>,
}

/// A dumped column.
#[derive(Debug, Clone)]
pub struct DumpColumn {
    /// The SELECT expression.
    pub select: String,
    /// The quoted name for the INSERT's column list.
    pub quoted: String,
    /// How its values become literals.
    pub kind: ValueKind,
}

/// How one table is dumped.
#[derive(Debug, Clone)]
pub struct TableDesc {
    /// Non-generated columns in table order.
    pub columns: Vec<DumpColumn>,
    /// The single integer column ranges are cut on, if any.
    pub split_key: Option<String>,
    /// `SHOW CREATE TABLE` text.
    pub create_sql: String,
}

fn query_err(what: &str, e: mysql_async::Error) -> DmError {
    crate::db::error(&codes::DUMP_TABLE_FAILED, what, e)
}

/// Column `i` of a text-protocol row as text; `None` for NULL.
pub fn text(row: &Row, i: usize) -> Option<String> {
    match row.as_ref(i)? {
        Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::NULL => None,
        other => Some(other.as_sql(true).trim_matches('\'').to_string()),
    }
}

fn number(row: &Row, i: usize) -> u64 {
    text(row, i).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// `'a','b'` for an `IN (…)`.
fn in_list(names: impl Iterator<Item = impl AsRef<str>>) -> String {
    names
        .map(|n| quote_string(n.as_ref()))
        .collect::<Vec<_>>()
        .join(",")
}

/// Lists the schemas, base tables and views `filter` selects, in name order.
pub async fn list_objects(conn: &mut Conn, filter: &BaFilter) -> Result<Objects, DmError> {
    let rows: Vec<Row> = conn
        .query(
            "SELECT SCHEMA_NAME, DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME \
             FROM information_schema.SCHEMATA",
        )
        .await
        .map_err(|e| query_err("listing the upstream schemas", e))?;
    let mut schemas: Vec<Schema> = rows
        .iter()
        .filter_map(|r| {
            let name = text(r, 0)?;
            (!is_system_schema(&name) && filter.allows(&name, None)).then(|| Schema {
                name,
                charset: text(r, 1),
                collation: text(r, 2),
            })
        })
        .collect();
    schemas.sort_by(|a, b| a.name.cmp(&b.name));
    let mut objects = Objects::default();
    if schemas.is_empty() {
        return Ok(objects);
    }
    let sql = format!(
        "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE, TABLE_ROWS, AVG_ROW_LENGTH \
         FROM information_schema.TABLES WHERE TABLE_SCHEMA IN ({})",
        in_list(schemas.iter().map(|s| &s.name))
    );
    let rows: Vec<Row> = conn
        .query(sql)
        .await
        .map_err(|e| query_err("listing the upstream tables", e))?;
    for r in &rows {
        let (Some(schema), Some(name)) = (text(r, 0), text(r, 1)) else {
            continue;
        };
        if !filter.allows(&schema, Some(&name)) {
            continue;
        }
        match text(r, 2).as_deref() {
            Some("BASE TABLE") => objects.tables.push(TableRef {
                schema,
                name,
                rows_estimate: number(r, 3),
                avg_row_length: number(r, 4),
            }),
            Some("VIEW") => objects.views.push((schema, name)),
            other => warn!(
                table = %format!("{schema}.{name}"),
                table_type = other.unwrap_or(""),
                "table type not dumped, skipped"
            ),
        }
    }
    objects
        .tables
        .sort_by(|a, b| (&a.schema, &a.name).cmp(&(&b.schema, &b.name)));
    objects.views.sort();
    objects.schemas = schemas;
    Ok(objects)
}

/// Whether `EXTRA` marks a generated (virtual, stored, persistent) column.
fn is_generated(extra: &str) -> bool {
    let e = extra.to_ascii_uppercase();
    e.contains("VIRTUAL") || e.contains("STORED") || e.contains("PERSISTENT")
}

/// The split key among `indexes` (name → (unique, columns)): PRIMARY if it is one integer
/// column, else a unique index over one NOT NULL integer column (by name order).
fn split_key(
    indexes: &[(String, bool, Vec<String>)],
    integer_not_null: &HashMap<String, (bool, bool)>,
) -> Option<String> {
    let single = |(_, unique, cols): &(String, bool, Vec<String>)| {
        if !unique || cols.len() != 1 {
            return None;
        }
        let (int, not_null) = integer_not_null.get(&cols[0])?;
        (*int && *not_null).then(|| cols[0].clone())
    };
    indexes
        .iter()
        .find(|i| i.0 == "PRIMARY")
        .and_then(single)
        .or_else(|| {
            let mut others: Vec<_> = indexes.iter().filter(|i| i.0 != "PRIMARY").collect();
            others.sort_by(|a, b| a.0.cmp(&b.0));
            others.into_iter().find_map(single)
        })
}

/// Describes every table of `tables` (same order): columns, split key, `CREATE TABLE`.
pub async fn describe(conn: &mut Conn, tables: &[TableRef]) -> Result<Vec<TableDesc>, DmError> {
    if tables.is_empty() {
        return Ok(Vec::new());
    }
    let mut schemas: Vec<&str> = tables.iter().map(|t| t.schema.as_str()).collect();
    schemas.dedup();
    let schema_list = in_list(schemas.iter());
    type Key = (String, String);
    // (schema, table) → columns (name, info, not null, generated) in table order.
    let mut columns: HashMap<Key, Vec<(String, ColumnInfo, bool, bool)>> = HashMap::new();
    let rows: Vec<Row> = conn
        .query(format!(
            "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, \
             CHARACTER_SET_NAME, IS_NULLABLE, EXTRA FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA IN ({schema_list}) ORDER BY ORDINAL_POSITION"
        ))
        .await
        .map_err(|e| query_err("reading the upstream columns", e))?;
    for r in &rows {
        let (Some(s), Some(t), Some(c)) = (text(r, 0), text(r, 1), text(r, 2)) else {
            continue;
        };
        let info = ColumnInfo::from_information_schema(
            &c,
            &text(r, 3).unwrap_or_default(),
            &text(r, 4).unwrap_or_default(),
            text(r, 5).as_deref(),
        );
        let not_null = text(r, 6).as_deref() == Some("NO");
        let generated = is_generated(&text(r, 7).unwrap_or_default());
        columns
            .entry((s, t))
            .or_default()
            .push((c, info, not_null, generated));
    }
    // (schema, table) → [(index, unique, columns in order)].
    let mut indexes: HashMap<Key, Vec<(String, bool, Vec<String>)>> = HashMap::new();
    let rows: Vec<Row> = conn
        .query(format!(
            "SELECT TABLE_SCHEMA, TABLE_NAME, INDEX_NAME, NON_UNIQUE, COLUMN_NAME \
             FROM information_schema.STATISTICS WHERE TABLE_SCHEMA IN ({schema_list}) \
             ORDER BY SEQ_IN_INDEX"
        ))
        .await
        .map_err(|e| query_err("reading the upstream indexes", e))?;
    for r in &rows {
        let (Some(s), Some(t), Some(i), Some(c)) = (text(r, 0), text(r, 1), text(r, 2), text(r, 4))
        else {
            continue;
        };
        let list = indexes.entry((s, t)).or_default();
        match list.iter_mut().find(|x| x.0 == i) {
            Some(x) => x.2.push(c),
            None => list.push((i, number(r, 3) == 0, vec![c])),
        }
    }
    let mut out = Vec::with_capacity(tables.len());
    for t in tables {
        let key = (t.schema.clone(), t.name.clone());
        let cols = columns.remove(&key).unwrap_or_default();
        let int_nn: HashMap<String, (bool, bool)> = cols
            .iter()
            .map(|(n, info, nn, _)| (n.clone(), (info.sql_type.is_integer(), *nn)))
            .collect();
        let split = split_key(indexes.get(&key).map_or(&[][..], |v| v), &int_nn);
        let row: Option<Row> = conn
            .query_first(format!("SHOW CREATE TABLE {}", t.qualified()))
            .await
            .map_err(|e| query_err(&format!("SHOW CREATE TABLE {}", t.qualified()), e))?;
        let create_sql = row.and_then(|r| text(&r, 1)).ok_or_else(|| {
            DmError::new(
                &codes::DUMP_TABLE_FAILED,
                format!("SHOW CREATE TABLE {} returned nothing", t.qualified()),
            )
        })?;
        let columns = cols
            .into_iter()
            .filter(|c| !c.3)
            .map(|(name, info, _, _)| DumpColumn {
                select: select_expr(&name, info.sql_type),
                quoted: quote_ident(&name),
                kind: ValueKind::of(&info),
            })
            .collect();
        out.push(TableDesc {
            columns,
            split_key: split,
            create_sql,
        });
    }
    Ok(out)
}

/// `SHOW CREATE VIEW` text of `schema`.`view` (names in `schema` unqualified; this changes
/// `conn`'s default database); `None` (logged) when the account may not see it or the view
/// is broken.
pub async fn view_sql(
    conn: &mut Conn,
    schema: &str,
    view: &str,
) -> Result<Option<String>, DmError> {
    // With the view's schema as the default database the server leaves that schema's names
    // unqualified, so the view can be created in a routed (renamed) schema.
    conn.query_drop(format!("USE {}", quote_ident(schema)))
        .await
        .map_err(|e| query_err(&format!("USE {}", quote_ident(schema)), e))?;
    let q = format!(
        "SHOW CREATE VIEW {}.{}",
        quote_ident(schema),
        quote_ident(view)
    );
    match conn.query_first::<Row, _>(&q).await {
        Ok(row) => Ok(row.and_then(|r| text(&r, 1))),
        Err(mysql_async::Error::Server(s))
            if matches!(
                s.code,
                ER_TABLEACCESS_DENIED_ERROR | ER_VIEW_INVALID | ER_VIEW_NO_EXPLAIN
            ) =>
        {
            warn!(table = %format!("{schema}.{view}"), error = %s.message, "view not dumped");
            Ok(None)
        }
        Err(e) => Err(query_err(&q, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_split_keys() {
        let cols: HashMap<String, (bool, bool)> = [
            ("id".to_string(), (true, true)),
            ("a".to_string(), (true, true)),
            ("n".to_string(), (true, false)),
            ("s".to_string(), (false, true)),
        ]
        .into();
        let idx = |n: &str, u: bool, c: &[&str]| {
            (
                n.to_string(),
                u,
                c.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            )
        };
        assert_eq!(
            split_key(&[idx("PRIMARY", true, &["id"])], &cols).as_deref(),
            Some("id")
        );
        // Composite primary key, nullable unique, string unique, non-unique: none.
        assert_eq!(
            split_key(
                &[
                    idx("PRIMARY", true, &["id", "a"]),
                    idx("u1", true, &["n"]),
                    idx("u2", true, &["s"]),
                    idx("k", false, &["a"]),
                ],
                &cols
            ),
            None
        );
        assert_eq!(
            split_key(
                &[idx("PRIMARY", true, &["s"]), idx("uk", true, &["a"])],
                &cols
            )
            .as_deref(),
            Some("a")
        );
        assert!(is_generated("VIRTUAL GENERATED"));
        assert!(is_generated("STORED GENERATED"));
        assert!(!is_generated("auto_increment"));
        assert!(!is_generated("on update current_timestamp()"));
    }

    #[test]
    fn create_database() {
        let s = Schema {
            name: "d`b".into(),
            charset: Some("utf8mb4".into()),
            collation: Some("utf8mb4_bin".into()),
        };
        assert_eq!(
            s.create_sql(),
            "CREATE DATABASE IF NOT EXISTS `d``b` DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;\n"
        );
    }
}
