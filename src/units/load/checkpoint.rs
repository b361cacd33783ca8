//! DM's loader checkpoint table, `<meta-schema>.<task>_loader_checkpoint`: one row per
//! finished data file of a source.
//!
//! A row is written only in the transaction that loads its file, with
//! `offset = end_pos = file size`, so a row exists exactly when the file's rows are committed.
//! (DM's old loader also wrote rows for unfinished files; dm-rs never does.)

use std::collections::HashMap;

use mysql_async::Conn;
use mysql_async::prelude::*;

use crate::db::meta::{MetaTable, delete_source_rows, ensure_meta_table, is_missing_table};
use crate::error::{DmError, codes};
use crate::sql::quote_string;

/// What the checkpoint says of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMark {
    pub offset: u64,
    pub end_pos: u64,
}

impl FileMark {
    /// Whether the row marks the whole file as loaded.
    pub fn finished(&self) -> bool {
        self.offset == self.end_pos
    }
}

/// The loader checkpoint of one subtask (task and source).
#[derive(Debug, Clone)]
pub struct LoaderCheckpoint {
    meta_schema: String,
    /// `` `meta`.`task_loader_checkpoint` ``.
    table: String,
    source_id: String,
}

fn exec_err(what: &str, e: mysql_async::Error) -> DmError {
    crate::db::error(
        &codes::DB_EXECUTE_FAILED,
        format!("loader checkpoint: {what}"),
        e,
    )
}

impl LoaderCheckpoint {
    /// The checkpoint of `task` for source `source_id` in `meta_schema`.
    pub fn new(meta_schema: &str, task: &str, source_id: &str) -> Self {
        Self {
            meta_schema: meta_schema.to_string(),
            table: MetaTable::LoaderCheckpoint.name(meta_schema, task),
            source_id: source_id.to_string(),
        }
    }

    /// The quoted, qualified table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Creates the meta schema and the table when missing.
    pub async fn ensure(&self, conn: &mut Conn) -> Result<(), mysql_async::Error> {
        ensure_meta_table(
            conn,
            &self.meta_schema,
            &self.table,
            "(\
             `id` VARCHAR(32) NOT NULL, \
             `filename` VARCHAR(255) NOT NULL, \
             `cp_schema` VARCHAR(128) NOT NULL, \
             `cp_table` VARCHAR(128) NOT NULL, \
             `offset` BIGINT NOT NULL, \
             `end_pos` BIGINT NOT NULL, \
             `create_time` TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, \
             `update_time` TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP, \
             PRIMARY KEY (`id`, `filename`)\
             ) DEFAULT CHARSET = utf8mb4",
        )
        .await
    }

    /// Every row of this source: file name → mark. An absent table is an empty checkpoint.
    pub async fn load(
        &self,
        conn: &mut Conn,
    ) -> Result<HashMap<String, FileMark>, mysql_async::Error> {
        let rows: Result<Vec<(String, i64, i64)>, _> = conn
            .exec(
                format!(
                    "SELECT `filename`, `offset`, `end_pos` FROM {} WHERE `id` = ?",
                    self.table
                ),
                (&self.source_id,),
            )
            .await;
        match rows {
            Ok(rows) => Ok(rows
                .into_iter()
                .map(|(f, o, e)| {
                    (
                        f,
                        FileMark {
                            offset: o.max(0) as u64,
                            end_pos: e.max(0) as u64,
                        },
                    )
                })
                .collect()),
            Err(e) if is_missing_table(&e) => Ok(HashMap::new()),
            Err(e) => Err(e),
        }
    }

    /// The statement marking `filename` (of upstream `schema`.`table`, `size` bytes) loaded;
    /// it runs inside the file's transaction. Literals carry `_utf8mb4` so a dump's
    /// `SET NAMES binary` earlier in the session does not matter.
    pub fn finish_sql(&self, filename: &str, schema: &str, table: &str, size: u64) -> String {
        format!(
            "INSERT INTO {} (`id`, `filename`, `cp_schema`, `cp_table`, `offset`, `end_pos`) \
             VALUES (_utf8mb4{}, _utf8mb4{}, _utf8mb4{}, _utf8mb4{}, {size}, {size}) \
             ON DUPLICATE KEY UPDATE `cp_schema` = VALUES(`cp_schema`), \
             `cp_table` = VALUES(`cp_table`), `offset` = VALUES(`offset`), \
             `end_pos` = VALUES(`end_pos`)",
            self.table,
            quote_string(&self.source_id),
            quote_string(filename),
            quote_string(schema),
            quote_string(table),
        )
    }

    /// After a connection died while a file's COMMIT was in flight: whether the file's row is
    /// committed. The locking read waits for a still-running transaction that wrote the row,
    /// so the answer is final.
    pub async fn committed(
        &self,
        conn: &mut Conn,
        filename: &str,
        size: u64,
    ) -> Result<bool, mysql_async::Error> {
        conn.query_drop("BEGIN").await?;
        let row: Option<(i64, i64)> = conn
            .exec_first(
                format!(
                    "SELECT `offset`, `end_pos` FROM {} WHERE `id` = ? AND `filename` = ? \
                     LOCK IN SHARE MODE",
                    self.table
                ),
                (&self.source_id, filename),
            )
            .await?;
        conn.query_drop("COMMIT").await?;
        Ok(row.is_some_and(|(o, e)| o == e && e as u64 == size))
    }

    /// Deletes this source's rows (after the sync unit took over); an absent table is fine.
    pub async fn clear(&self, conn: &mut Conn) -> Result<(), DmError> {
        delete_source_rows(conn, &self.table, &self.source_id)
            .await
            .map_err(|e| exec_err("clearing the rows", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_sql() {
        let cp = LoaderCheckpoint::new("dm_meta", "t`1", "src-1");
        assert_eq!(cp.table(), "`dm_meta`.`t``1_loader_checkpoint`");
        let sql = cp.finish_sql("db.t'x.000000001.sql", "db", "t'x", 42);
        assert!(sql.contains("_utf8mb4'db.t\\'x.000000001.sql'"), "{sql}");
        assert!(sql.contains("42, 42)"), "{sql}");
        assert!(
            FileMark {
                offset: 3,
                end_pos: 3
            }
            .finished()
        );
        assert!(
            !FileMark {
                offset: 0,
                end_pos: 3
            }
            .finished()
        );
    }
}
