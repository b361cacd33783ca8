//! Loading a table's schema from a server's `information_schema`.

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::column::{collation_charset, parse_members};
use super::{ColumnDef, TableSchema};
use crate::error::{DmError, codes};

fn db_err(what: &str, schema: &str, table: &str, e: mysql_async::Error) -> DmError {
    crate::db::error(
        &codes::DB_QUERY_FAILED,
        format!("reading {what} of `{schema}`.`{table}`"),
        e,
    )
}

type ColumnRow = (
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
);

/// An index as read: (name, unique, `(SEQ_IN_INDEX, column)` parts, has an expression part).
type LoadedIndex = (String, bool, Vec<(i64, String)>, bool);

/// Reads `schema.table` from `information_schema` (`COLUMNS` by `ORDINAL_POSITION`,
/// `STATISTICS` for keys, `TABLES` for the default character set); `None` when it has no
/// columns (no such table, or no privilege on it).
///
/// Unique indexes with an expression part (MySQL 8 functional indexes) are listed among the
/// non-unique indexes, without their expression parts: they cannot identify rows.
pub async fn load_table(
    conn: &mut Conn,
    schema: &str,
    table: &str,
) -> Result<Option<TableSchema>, DmError> {
    let rows: Vec<ColumnRow> = conn
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, CHARACTER_SET_NAME, \
             COLLATION_NAME, EXTRA FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (schema, table),
        )
        .await
        .map_err(|e| db_err("columns", schema, table, e))?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut t = TableSchema::new(schema, table);
    for (name, data_type, column_type, nullable, charset, collation, extra) in rows {
        let data_type = data_type.to_ascii_lowercase();
        let members = if matches!(data_type.as_str(), "enum" | "set") {
            parse_members(&column_type)
        } else {
            Vec::new()
        };
        t.columns.push(ColumnDef {
            name,
            unsigned: column_type.to_ascii_lowercase().contains(" unsigned"),
            data_type,
            column_type,
            nullable: nullable.eq_ignore_ascii_case("YES"),
            charset,
            collation,
            members,
            generated: extra.to_ascii_uppercase().contains("GENERATED"),
        });
    }

    let collation: Option<Option<String>> = conn
        .exec_first(
            "SELECT TABLE_COLLATION FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (schema, table),
        )
        .await
        .map_err(|e| db_err("the table collation", schema, table, e))?;
    t.charset = collation
        .flatten()
        .map(|c| collation_charset(&c))
        .unwrap_or_default();

    // Rows come in the server's index order; parts by SEQ_IN_INDEX within each index.
    let stats: Vec<(String, i64, i64, Option<String>)> = conn
        .exec(
            "SELECT INDEX_NAME, NON_UNIQUE, SEQ_IN_INDEX, COLUMN_NAME \
             FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (schema, table),
        )
        .await
        .map_err(|e| db_err("indexes", schema, table, e))?;
    let mut indexes: Vec<LoadedIndex> = Vec::new();
    for (name, non_unique, seq, column) in stats {
        let i = match indexes.iter().position(|(n, ..)| *n == name) {
            Some(i) => i,
            None => {
                indexes.push((name, non_unique == 0, Vec::new(), false));
                indexes.len() - 1
            }
        };
        match column {
            Some(c) => indexes[i].2.push((seq, c)),
            None => indexes[i].3 = true,
        }
    }
    for (name, unique, mut parts, functional) in indexes {
        parts.sort_by_key(|(seq, _)| *seq);
        let cols: Vec<String> = parts.into_iter().map(|(_, c)| c).collect();
        if name == "PRIMARY" {
            t.primary_key = cols;
        } else if unique && !functional {
            t.unique_keys.push((name, cols));
        } else {
            t.indexes.push((name, cols));
        }
    }
    Ok(Some(t))
}

/// The default character set of database `schema` (`information_schema.SCHEMATA`); `None`
/// when there is no such database.
pub async fn load_schema_charset(conn: &mut Conn, schema: &str) -> Result<Option<String>, DmError> {
    conn.exec_first(
        "SELECT DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
        (schema,),
    )
    .await
    .map_err(|e| db_err("the default character set", schema, "", e))
}
