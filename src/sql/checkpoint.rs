//! The syncer's checkpoint tables in the target's meta schema.
//!
//! `<meta-schema>.<task>_syncer_checkpoint` has DM's columns: one global row (`is_global`,
//! `cp_schema = cp_table = ''`) with the position every applied change is at or before, and
//! one row per tracked table whose `table_info` holds the table's schema as of that position,
//! so a resume decodes older events with the schema of their time.
//!
//! dm-rs adds `<meta-schema>.<task>_syncer_worker`: per DML worker, how many changes it has
//! committed since the global checkpoint (`base_*` says which checkpoint). Each worker bumps
//! its row in the same transaction as its batch, and a checkpoint flush resets the rows in the
//! same transaction as the global row. Because dispatch to workers is deterministic from a
//! checkpoint, a resume replays from the global checkpoint and each worker skips exactly the
//! changes it had committed: nothing is applied twice, even on tables without a key.

use mysql_async::prelude::*;
use mysql_async::{Conn, TxOpts};

use super::quote_ident;
use crate::binlog::gtid::GtidSet;
use crate::binlog::location::{Location, Position};
use crate::db::meta::MetaTable;
use crate::db::{self, Step, StepExt};
use crate::error::{DmError, codes};
use crate::sql::sharding_meta::{ShardingMetaTable, SourceRows};

/// Names of one subtask's checkpoint tables.
#[derive(Debug, Clone)]
pub struct CheckpointTables {
    /// The subtask's source id (`id` column).
    pub source_id: String,
    /// `` `meta`.`task_syncer_checkpoint` ``.
    pub checkpoint: String,
    /// `` `meta`.`task_syncer_worker` ``.
    pub workers: String,
    meta_schema: String,
}

/// What a checkpoint holds.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedCheckpoint {
    pub location: Location,
    /// `(schema, table, table_info JSON)` of every tracked table.
    pub tables: Vec<(String, String, String)>,
    /// Changes each worker committed since `location`; `None` when the worker rows do not
    /// belong to this checkpoint (older dm-rs, other worker count): replay needs safe mode.
    pub applied: Option<Vec<u64>>,
    /// DM's exit-safe location: safe mode stays on until the stream passes it.
    pub exit_safe: Option<Location>,
}

fn exec_err(what: &str, e: mysql_async::Error) -> DmError {
    db::error(&codes::DB_EXECUTE_FAILED, format!("checkpoint: {what}"), e)
}

impl CheckpointTables {
    /// The tables of `task` on source `source_id` in `meta_schema`.
    pub fn new(meta_schema: &str, task: &str, source_id: &str) -> Self {
        Self {
            source_id: source_id.to_string(),
            checkpoint: MetaTable::SyncerCheckpoint.name(meta_schema, task),
            workers: MetaTable::SyncerWorker.name(meta_schema, task),
            meta_schema: meta_schema.to_string(),
        }
    }

    /// Creates the meta schema and both tables when missing.
    pub async fn ensure(&self, conn: &mut Conn) -> Result<(), DmError> {
        conn.query_drop(format!(
            "CREATE DATABASE IF NOT EXISTS {}",
            quote_ident(&self.meta_schema)
        ))
        .await
        .map_err(|e| exec_err("creating the meta schema", e))?;
        conn.query_drop(format!(
            "CREATE TABLE IF NOT EXISTS {} (
                id VARCHAR(32) NOT NULL,
                cp_schema VARCHAR(128) NOT NULL,
                cp_table VARCHAR(128) NOT NULL,
                binlog_name VARCHAR(128),
                binlog_pos INT UNSIGNED,
                binlog_gtid TEXT,
                exit_safe_binlog_name VARCHAR(128) DEFAULT '',
                exit_safe_binlog_pos INT UNSIGNED DEFAULT 0,
                exit_safe_binlog_gtid TEXT,
                table_info JSON NOT NULL,
                is_global BOOLEAN,
                create_time TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
                update_time TIMESTAMP DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
                UNIQUE KEY uk_id_schema_table (id, cp_schema, cp_table)
            )",
            self.checkpoint
        ))
        .await
        .map_err(|e| exec_err("creating the checkpoint table", e))?;
        conn.query_drop(format!(
            "CREATE TABLE IF NOT EXISTS {} (
                id VARCHAR(32) NOT NULL,
                worker INT UNSIGNED NOT NULL,
                base_binlog_name VARCHAR(128) NOT NULL,
                base_binlog_pos INT UNSIGNED NOT NULL,
                applied BIGINT UNSIGNED NOT NULL,
                last_batch BIGINT UNSIGNED NOT NULL DEFAULT 0,
                update_time TIMESTAMP DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
                PRIMARY KEY (id, worker)
            )",
            self.workers
        ))
        .await
        .map_err(|e| exec_err("creating the worker progress table", e))?;
        Ok(())
    }

    /// Reads the checkpoint of this source; `None` when the syncer never flushed one.
    pub async fn load(
        &self,
        conn: &mut Conn,
        worker_count: usize,
    ) -> Result<Option<SavedCheckpoint>, DmError> {
        type Row = (
            String,
            String,
            Option<String>,
            Option<u32>,
            Option<String>,
            Option<String>,
            Option<u32>,
            Option<String>,
            String,
            bool,
        );
        let rows: Vec<Row> = conn
            .exec(
                format!(
                    "SELECT cp_schema, cp_table, binlog_name, binlog_pos, binlog_gtid, exit_safe_binlog_name,
                            exit_safe_binlog_pos, exit_safe_binlog_gtid, table_info, is_global
                     FROM {} WHERE id = ?",
                    self.checkpoint
                ),
                (&self.source_id,),
            )
            .await
            .map_err(|e| exec_err("reading the checkpoint", e))?;
        let mut global = None;
        let mut tables = Vec::new();
        for (schema, table, name, pos, gtid, es_name, es_pos, es_gtid, info, is_global) in rows {
            if is_global {
                let location = location_of(name.unwrap_or_default(), pos.unwrap_or(4), gtid)?;
                let exit_safe = match es_name.filter(|n| !n.is_empty()) {
                    Some(n) => Some(location_of(n, es_pos.unwrap_or(0), es_gtid)?),
                    None => None,
                };
                global = Some((location, exit_safe));
            } else {
                tables.push((schema, table, info));
            }
        }
        let Some((location, exit_safe)) = global else {
            return Ok(None);
        };
        let markers: Vec<(u32, String, u32, u64)> = conn
            .exec(
                format!("SELECT worker, base_binlog_name, base_binlog_pos, applied FROM {} WHERE id = ? ORDER BY worker", self.workers),
                (&self.source_id,),
            )
            .await
            .map_err(|e| exec_err("reading worker progress", e))?;
        let belongs = markers.len() == worker_count
            && markers.iter().enumerate().all(|(i, (w, name, pos, _))| {
                *w as usize == i && *name == location.position.name && *pos == location.position.pos
            });
        let applied = belongs.then(|| markers.iter().map(|m| m.3).collect());
        Ok(Some(SavedCheckpoint {
            location,
            tables,
            applied,
            exit_safe,
        }))
    }

    /// Writes the global point, the tracked tables' schemas, and resets the worker rows, in
    /// one transaction. Call only when every change before `location` is committed.
    pub async fn save(
        &self,
        conn: &mut Conn,
        location: &Location,
        tables: &[(String, String, String)],
        worker_count: usize,
        exit_safe: Option<&Location>,
        sharding: Option<&(ShardingMetaTable, SourceRows)>,
    ) -> Result<(), DmError> {
        // Every subtask of the task writes these tables: two sources flushing at once can
        // deadlock on InnoDB's gap locks; the transaction is then simply run again.
        db::retry_transient(&codes::DB_EXECUTE_FAILED, "checkpoint", async || {
            self.save_once(conn, location, tables, worker_count, exit_safe, sharding)
                .await
        })
        .await
    }

    async fn save_once(
        &self,
        conn: &mut Conn,
        location: &Location,
        tables: &[(String, String, String)],
        worker_count: usize,
        exit_safe: Option<&Location>,
        sharding: Option<&(ShardingMetaTable, SourceRows)>,
    ) -> Step<()> {
        let mut tx = conn
            .start_transaction(TxOpts::default())
            .await
            .step("begin")?;
        let gtid = location
            .gtid
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        let (es_name, es_pos, es_gtid) = match exit_safe {
            Some(l) => (
                l.position.name.clone(),
                l.position.pos,
                l.gtid.as_ref().map(ToString::to_string).unwrap_or_default(),
            ),
            None => (String::new(), 0, String::new()),
        };
        let upsert = format!(
            "INSERT INTO {} (id, cp_schema, cp_table, binlog_name, binlog_pos, binlog_gtid, exit_safe_binlog_name,
                             exit_safe_binlog_pos, exit_safe_binlog_gtid, table_info, is_global)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON DUPLICATE KEY UPDATE binlog_name = VALUES(binlog_name), binlog_pos = VALUES(binlog_pos),
                binlog_gtid = VALUES(binlog_gtid), exit_safe_binlog_name = VALUES(exit_safe_binlog_name),
                exit_safe_binlog_pos = VALUES(exit_safe_binlog_pos), exit_safe_binlog_gtid = VALUES(exit_safe_binlog_gtid),
                table_info = VALUES(table_info), is_global = VALUES(is_global)",
            self.checkpoint
        );
        let pos = &location.position;
        let mut params = vec![(
            self.source_id.clone(),
            String::new(),
            String::new(),
            pos.name.clone(),
            pos.pos,
            gtid.clone(),
            es_name.clone(),
            es_pos,
            es_gtid.clone(),
            "null".to_string(),
            true,
        )];
        for (schema, table, info) in tables {
            params.push((
                self.source_id.clone(),
                schema.clone(),
                table.clone(),
                pos.name.clone(),
                pos.pos,
                gtid.clone(),
                es_name.clone(),
                es_pos,
                es_gtid.clone(),
                info.clone(),
                false,
            ));
        }
        tx.exec_batch(&upsert, params)
            .await
            .step("writing the checkpoint")?;
        // Tables dropped since the last flush have no row any more.
        let keep: Vec<String> = tables
            .iter()
            .map(|(s, t, _)| format!("{s}\u{0}{t}"))
            .collect();
        let existing: Vec<(String, String)> = tx
            .exec(
                format!(
                    "SELECT cp_schema, cp_table FROM {} WHERE id = ? AND NOT is_global",
                    self.checkpoint
                ),
                (&self.source_id,),
            )
            .await
            .step("listing table points")?;
        let stale: Vec<(String, String, String)> = existing
            .into_iter()
            .filter(|(s, t)| !keep.contains(&format!("{s}\u{0}{t}")))
            .map(|(s, t)| (self.source_id.clone(), s, t))
            .collect();
        if !stale.is_empty() {
            tx.exec_batch(
                format!(
                    "DELETE FROM {} WHERE id = ? AND cp_schema = ? AND cp_table = ?",
                    self.checkpoint
                ),
                stale,
            )
            .await
            .step("removing dropped tables' points")?;
        }
        tx.exec_drop(
            format!("DELETE FROM {} WHERE id = ?", self.workers),
            (&self.source_id,),
        )
        .await
        .step("resetting worker progress")?;
        let markers: Vec<(String, u32, String, u32)> = (0..worker_count as u32)
            .map(|w| (self.source_id.clone(), w, pos.name.clone(), pos.pos))
            .collect();
        tx.exec_batch(
            format!("INSERT INTO {} (id, worker, base_binlog_name, base_binlog_pos, applied) VALUES (?, ?, ?, ?, 0)", self.workers),
            markers,
        )
        .await
        .step("resetting worker progress")?;
        if let Some((table, rows)) = sharding {
            table.replace_in(&mut tx, rows).await?;
        }
        tx.commit().await.step("commit")
    }

    /// The statement a DML worker runs inside its batch transaction after `n` changes;
    /// `batch_id` identifies the batch, so a worker that lost its connection during COMMIT can
    /// read back whether this batch committed.
    pub fn worker_progress_sql(&self, worker: usize, n: usize, batch_id: u64) -> String {
        format!(
            "UPDATE {} SET applied = applied + {n}, last_batch = {batch_id} WHERE id = {} AND worker = {worker}",
            self.workers,
            super::quote_string(&self.source_id)
        )
    }

    /// Removes this source's rows (`start-task --remove-meta`).
    pub async fn remove(&self, conn: &mut Conn) -> Result<(), DmError> {
        for t in [&self.checkpoint, &self.workers] {
            conn.exec_drop(format!("DELETE FROM {t} WHERE id = ?"), (&self.source_id,))
                .await
                .map_err(|e| exec_err("removing checkpoint rows", e))?;
        }
        Ok(())
    }
}

fn location_of(name: String, pos: u32, gtid: Option<String>) -> Result<Location, DmError> {
    let gtid = match gtid.filter(|g| !g.is_empty()) {
        Some(g) => Some(
            GtidSet::parse_any(&g)
                .map_err(|e| DmError::new(&codes::PARSE_GTID, format!("checkpoint GTID: {e}")))?,
        ),
        None => None,
    };
    Ok(Location {
        position: Position::new(name, pos),
        gtid,
    })
}
