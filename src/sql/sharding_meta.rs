//! `<meta-schema>.<task>_syncer_sharding_meta`: the pessimistic sharding groups of each source,
//! with DM's columns and row shapes.
//!
//! Per `(source_id, target_table_id)`: one row per member table (`is_global = 0`, `data` its
//! DDL sequence as a JSON array, `[]` when idle) and, while DDLs are pending or just resolved,
//! one global row (`source_table_id = ''`, `is_global = 1`, `data` the global sequence,
//! `active_index` how many of them are resolved). Items are DM's
//! `{"ddls", "source", "first-position": {"Name", "Pos"}, "first-gtid-set"}`, plus
//! `"end-position"` (dm-rs: where the member's DDL event ends).
//!
//! dm-rs uses the rows for two things, both needed for exact replay:
//! - **membership**: the member tables as of the last checkpoint, written in the checkpoint's
//!   transaction, so that a resume rebuilds the same groups the first run had at that point
//!   (listing the upstream again could see tables created or dropped since);
//! - **done locks**: the global row is written right after a lock's DDL was executed (owner) or
//!   skipped downstream, before telling the master; a resume that replays the binlog to that
//!   DDL again sees `active_index` past it and does not coordinate (or execute) it twice.

use std::collections::BTreeMap;

use mysql_async::prelude::*;
use mysql_async::{Conn, Transaction};
use serde::{Deserialize, Serialize};

use crate::binlog::location::Position;
use crate::db::meta::MetaTable;
use crate::db::{self, Step, StepExt};
use crate::error::{DmError, codes};

/// DM's binlog position JSON (`mysql.Position`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DmPosition {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Pos")]
    pub pos: u32,
}

impl From<&Position> for DmPosition {
    fn from(p: &Position) -> Self {
        Self {
            name: p.name.clone(),
            pos: p.pos,
        }
    }
}

impl From<DmPosition> for Position {
    fn from(p: DmPosition) -> Self {
        Position::new(p.name, p.pos)
    }
}

/// DM's `DDLItem` JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaItem {
    pub ddls: Vec<String>,
    pub source: String,
    #[serde(rename = "first-position")]
    pub first_position: DmPosition,
    #[serde(rename = "first-gtid-set", default)]
    pub first_gtid_set: String,
    #[serde(
        rename = "end-position",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub end_position: Option<DmPosition>,
}

/// One group's rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupRows {
    /// Member table id → its sequence.
    pub members: BTreeMap<String, Vec<MetaItem>>,
    /// The global sequence (empty: no global row).
    pub global: Vec<MetaItem>,
    pub active_index: usize,
}

/// Every group of one source: target table id → rows.
pub type SourceRows = BTreeMap<String, GroupRows>;

/// One row as read: target table, source table, active index, is_global, data.
type MetaRow = (String, String, Option<i64>, Option<bool>, Option<String>);

/// The table of one task.
#[derive(Debug, Clone)]
pub struct ShardingMetaTable {
    pub source_id: String,
    /// Quoted `` `meta`.`task_syncer_sharding_meta` ``.
    pub name: String,
}

fn exec_err(what: &str, e: mysql_async::Error) -> DmError {
    db::error(
        &codes::DB_EXECUTE_FAILED,
        format!("sharding meta: {what}"),
        e,
    )
}

impl ShardingMetaTable {
    pub fn new(meta_schema: &str, task: &str, source_id: &str) -> Self {
        Self {
            source_id: source_id.to_string(),
            name: MetaTable::SyncerShardingMeta.name(meta_schema, task),
        }
    }

    /// Creates the table (DM's definition) when missing.
    pub async fn ensure(&self, conn: &mut Conn) -> Result<(), DmError> {
        conn.query_drop(format!(
            "CREATE TABLE IF NOT EXISTS {} (
                source_id VARCHAR(32) NOT NULL COMMENT 'replica source id, defined in task.yaml',
                target_table_id VARCHAR(144) NOT NULL,
                source_table_id VARCHAR(144) NOT NULL,
                active_index INT,
                is_global BOOLEAN,
                data JSON,
                create_time TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
                update_time TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
                UNIQUE KEY uk_source_id_table_id_source (source_id, target_table_id, source_table_id)
            )",
            self.name
        ))
        .await
        .map_err(|e| exec_err("creating the table", e))
    }

    /// This source's rows (empty when none).
    pub async fn load(&self, conn: &mut Conn) -> Result<SourceRows, DmError> {
        let rows: Vec<MetaRow> = conn
            .exec(
                format!(
                    "SELECT target_table_id, source_table_id, active_index, is_global, data FROM {} WHERE source_id = ?",
                    self.name
                ),
                (&self.source_id,),
            )
            .await
            .map_err(|e| exec_err("reading", e))?;
        let mut out = SourceRows::new();
        for (target, source, active, is_global, data) in rows {
            let items: Vec<MetaItem> = match data.as_deref() {
                None | Some("") | Some("null") => Vec::new(),
                Some(d) => serde_json::from_str(d).map_err(|e| {
                    DmError::new(
                        &codes::DB_UNEXPECTED,
                        format!("sharding meta of {target} / {source} is not a DDL sequence"),
                    )
                    .with_cause(e)
                })?,
            };
            let g = out.entry(target).or_default();
            if is_global.unwrap_or(false) {
                g.global = items;
                g.active_index = active.unwrap_or(0).max(0) as usize;
            } else {
                g.members.insert(source, items);
            }
        }
        Ok(out)
    }

    fn row_params(
        &self,
        target: &str,
        g: &GroupRows,
    ) -> Vec<(String, String, String, i64, bool, String)> {
        let json = |items: &[MetaItem]| serde_json::to_string(items).expect("items serialize");
        let mut out: Vec<_> = g
            .members
            .iter()
            .map(|(t, seq)| {
                (
                    self.source_id.clone(),
                    target.to_string(),
                    t.clone(),
                    g.active_index as i64,
                    false,
                    json(seq),
                )
            })
            .collect();
        if !g.global.is_empty() {
            out.push((
                self.source_id.clone(),
                target.to_string(),
                String::new(),
                g.active_index as i64,
                true,
                json(&g.global),
            ));
        }
        out
    }

    fn insert_sql(&self) -> String {
        format!(
            "INSERT INTO {} (source_id, target_table_id, source_table_id, active_index, is_global, data)
             VALUES (?, ?, ?, ?, ?, ?)",
            self.name
        )
    }

    /// Replaces this source's rows with `rows`, inside `tx` (the checkpoint's transaction).
    pub async fn replace_in(&self, tx: &mut Transaction<'_>, rows: &SourceRows) -> Step<()> {
        tx.exec_drop(
            format!("DELETE FROM {} WHERE source_id = ?", self.name),
            (&self.source_id,),
        )
        .await
        .step("clearing sharding meta")?;
        let params: Vec<_> = rows
            .iter()
            .flat_map(|(target, g)| self.row_params(target, g))
            .collect();
        if !params.is_empty() {
            tx.exec_batch(self.insert_sql(), params)
                .await
                .step("writing sharding meta")?;
        }
        Ok(())
    }

    /// Replaces the rows of one group (a lock just done), in its own transaction.
    pub async fn write_group(
        &self,
        conn: &mut Conn,
        target: &str,
        rows: &GroupRows,
    ) -> Result<(), DmError> {
        db::retry_transient(&codes::DB_EXECUTE_FAILED, "sharding meta", async || {
            let mut tx = conn
                .start_transaction(mysql_async::TxOpts::default())
                .await
                .step("begin")?;
            tx.exec_drop(
                format!(
                    "DELETE FROM {} WHERE source_id = ? AND target_table_id = ?",
                    self.name
                ),
                (&self.source_id, target),
            )
            .await
            .step("clearing the group")?;
            tx.exec_batch(self.insert_sql(), self.row_params(target, rows))
                .await
                .step("writing the group")?;
            tx.commit().await.step("commit")
        })
        .await
    }

    /// Removes this source's rows (`start-task --remove-meta`).
    pub async fn remove(&self, conn: &mut Conn) -> Result<(), DmError> {
        match conn
            .exec_drop(
                format!("DELETE FROM {} WHERE source_id = ?", self.name),
                (&self.source_id,),
            )
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if crate::db::meta::is_missing_table(&e) => Ok(()),
            Err(e) => Err(exec_err("removing rows", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_are_dm_json() {
        let item = MetaItem {
            ddls: vec!["ALTER TABLE `db`.`t` ADD COLUMN `c` INT".into()],
            source: "`db1`.`tbl1`".into(),
            first_position: DmPosition {
                name: "mysql-bin.000002".into(),
                pos: 123,
            },
            first_gtid_set: String::new(),
            end_position: Some(DmPosition {
                name: "mysql-bin.000002".into(),
                pos: 200,
            }),
        };
        let json = serde_json::to_string(&item).unwrap();
        assert_eq!(
            json,
            r#"{"ddls":["ALTER TABLE `db`.`t` ADD COLUMN `c` INT"],"source":"`db1`.`tbl1`","first-position":{"Name":"mysql-bin.000002","Pos":123},"first-gtid-set":"","end-position":{"Name":"mysql-bin.000002","Pos":200}}"#
        );
        // DM's own rows (no end position) read back.
        let dm = r#"[{"ddls":["x"],"source":"`a`.`b`","first-position":{"Name":"f.1","Pos":4},"first-gtid-set":""}]"#;
        let items: Vec<MetaItem> = serde_json::from_str(dm).unwrap();
        assert_eq!(items[0].end_position, None);
        assert_eq!(
            Position::from(items[0].first_position.clone()),
            Position::new("f.1", 4)
        );
    }
}
