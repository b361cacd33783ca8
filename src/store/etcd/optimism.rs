//! Optimistic shard DDL state in etcd, DM's keys and JSON field names (dm-reference §5, §9):
//! source tables per (task, source), Info and Operation per (task, source, upstream schema,
//! upstream table). `table-info-before`/`table-info-after` hold dm-rs's tracked schema
//! ([`TableSchema`]), not TiDB's TableInfo. Master writes are fenced by the election key.

use std::collections::BTreeMap;

use etcd_client::{Client, TxnOp};
use serde::{Deserialize, Serialize};

use super::ha::{Fence, decode_json, json};
use super::keys::{self, key};
use super::shardddl::{Written, fenced, get_values, txn_err};
use crate::error::DmError;
use crate::sql::schema_tracker::TableSchema;

/// One upstream table of a lock.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct UpTable {
    pub source: String,
    pub schema: String,
    pub table: String,
}

impl std::fmt::Display for UpTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-`{}`.`{}`", self.source, self.schema, self.table)
    }
}

/// DM's conflict stages of an Operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum ConflictStage {
    /// Run the returned DDLs (maybe none) and go on.
    #[default]
    #[serde(rename = "none")]
    None,
    /// The DDL conflicts; strict mode: the task stops.
    #[serde(rename = "detected")]
    Detected,
    /// The DDL conflicts: skip it and the table's rows until `resolved`.
    #[serde(rename = "skip and wait for redirect")]
    SkipWaitRedirect,
    /// The conflict this table waited on is gone: replay what was skipped.
    #[serde(rename = "resolved")]
    Resolved,
    /// The lock refused the report (the message holds the coded error); the task stops.
    #[serde(rename = "error")]
    Error,
}

impl ConflictStage {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Detected => "detected",
            Self::SkipWaitRedirect => "skip and wait for redirect",
            Self::Resolved => "resolved",
            Self::Error => "error",
        }
    }
}

/// DM's empty struct value of the source-tables map.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// The upstream tables of one source's subtask, by target table: down schema → down table →
/// up schema → up table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceTables {
    pub task: String,
    pub source: String,
    #[allow(clippy::type_complexity)]
    pub tables: BTreeMap<String, BTreeMap<String, BTreeMap<String, BTreeMap<String, Empty>>>>,
}

impl SourceTables {
    pub fn key(&self) -> String {
        key(
            keys::SHARDDDL_OPTIMISM_SOURCE_TABLES,
            &[&self.task, &self.source],
        )
    }

    /// Records `up` as routed into `down`.
    pub fn add(&mut self, down: (&str, &str), up: (&str, &str)) {
        self.tables
            .entry(down.0.to_string())
            .or_default()
            .entry(down.1.to_string())
            .or_default()
            .entry(up.0.to_string())
            .or_default()
            .insert(up.1.to_string(), Empty {});
    }

    /// The upstream tables routed into `down`.
    pub fn routed_into(&self, down: (&str, &str)) -> Vec<UpTable> {
        self.tables
            .get(down.0)
            .and_then(|t| t.get(down.1))
            .map(|schemas| {
                schemas
                    .iter()
                    .flat_map(|(schema, tables)| {
                        tables.keys().map(move |table| UpTable {
                            source: self.source.clone(),
                            schema: schema.clone(),
                            table: table.clone(),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// An optimistic Info: one upstream table's DDLs with its schema before and after each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimisticInfo {
    pub task: String,
    pub source: String,
    #[serde(rename = "up-schema")]
    pub up_schema: String,
    #[serde(rename = "up-table")]
    pub up_table: String,
    #[serde(rename = "down-schema")]
    pub down_schema: String,
    #[serde(rename = "down-table")]
    pub down_table: String,
    pub ddls: Vec<String>,
    #[serde(rename = "table-info-before")]
    pub table_info_before: TableSchema,
    #[serde(rename = "table-info-after")]
    pub table_infos_after: Vec<TableSchema>,
    #[serde(rename = "ignore-conflict", default)]
    pub ignore_conflict: bool,
}

impl OptimisticInfo {
    pub fn key(&self) -> String {
        info_key(&self.task, &self.source, &self.up_schema, &self.up_table)
    }

    pub fn lock_id(&self) -> String {
        super::shardddl::lock_id(&self.task, &self.down_schema, &self.down_table)
    }

    pub fn up(&self) -> UpTable {
        UpTable {
            source: self.source.clone(),
            schema: self.up_schema.clone(),
            table: self.up_table.clone(),
        }
    }
}

/// An optimistic Operation: what one upstream table does with its DDLs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OptimisticOp {
    pub id: String,
    pub task: String,
    pub source: String,
    #[serde(rename = "up-schema")]
    pub up_schema: String,
    #[serde(rename = "up-table")]
    pub up_table: String,
    /// The DDLs to run downstream (maybe none).
    pub ddls: Vec<String>,
    #[serde(rename = "conflict-stage")]
    pub conflict_stage: ConflictStage,
    #[serde(rename = "conflict-message")]
    pub conflict_message: String,
    pub done: bool,
    /// Columns this table dropped while others still have them.
    #[serde(default)]
    pub cols: Vec<String>,
}

impl OptimisticOp {
    pub fn key(&self) -> String {
        op_key(&self.task, &self.source, &self.up_schema, &self.up_table)
    }
}

fn info_key(task: &str, source: &str, schema: &str, table: &str) -> String {
    key(keys::SHARDDDL_OPTIMISM_INFO, &[task, source, schema, table])
}

fn op_key(task: &str, source: &str, schema: &str, table: &str) -> String {
    key(
        keys::SHARDDDL_OPTIMISM_OPERATION,
        &[task, source, schema, table],
    )
}

/// Worker: registers the subtask's upstream tables by target (at start and when a shard is
/// created or dropped).
pub async fn put_source_tables(client: &mut Client, st: &SourceTables) -> Result<(), DmError> {
    client
        .put(st.key(), json(st), None)
        .await
        .map_err(txn_err("putting source tables"))?;
    Ok(())
}

/// Worker: puts `info`; returns the revision it was written at.
pub async fn put_optimistic_info(
    client: &mut Client,
    info: &OptimisticInfo,
) -> Result<i64, DmError> {
    let resp = client
        .put(info.key(), json(info), None)
        .await
        .map_err(txn_err("putting an optimistic info"))?;
    Ok(resp.header().map_or(0, |h| h.revision()))
}

/// The Operation of one upstream table with its mod revision.
pub async fn get_optimistic_op(
    client: &mut Client,
    up: &UpTable,
    task: &str,
) -> Result<Option<(OptimisticOp, i64)>, DmError> {
    let k = op_key(task, &up.source, &up.schema, &up.table);
    let resp = client
        .get(k.clone(), None)
        .await
        .map_err(txn_err("reading an optimistic operation"))?;
    match resp.kvs().first() {
        Some(kv) => Ok(Some((decode_json(&k, kv.value())?, kv.mod_revision()))),
        None => Ok(None),
    }
}

/// Worker: marks `op` done.
pub async fn done_optimistic(client: &mut Client, op: &OptimisticOp) -> Result<(), DmError> {
    let mut done = op.clone();
    done.done = true;
    client
        .put(done.key(), json(&done), None)
        .await
        .map_err(txn_err("marking an optimistic operation done"))?;
    Ok(())
}

/// Master: every optimistic key, read at one revision; Infos with their mod revision.
#[derive(Debug, Default)]
pub struct OptimisticState {
    pub revision: i64,
    pub source_tables: Vec<SourceTables>,
    pub infos: Vec<(OptimisticInfo, i64)>,
    pub ops: Vec<OptimisticOp>,
}

/// Master: reads the whole optimistic state.
pub async fn load_optimistic(client: &mut Client) -> Result<OptimisticState, DmError> {
    let (revision, source_tables) =
        get_values(client, keys::SHARDDDL_OPTIMISM_SOURCE_TABLES, 0).await?;
    let (_, kvs) =
        super::ha::get_prefix_revisions(client, keys::SHARDDDL_OPTIMISM_INFO, revision).await?;
    let mut infos = Vec::with_capacity(kvs.len());
    for (k, v, rev) in kvs {
        infos.push((decode_json(&k, &v)?, rev));
    }
    infos.sort_by_key(|(_, rev)| *rev);
    let (_, ops) = get_values(client, keys::SHARDDDL_OPTIMISM_OPERATION, revision).await?;
    Ok(OptimisticState {
        revision,
        source_tables,
        infos,
        ops,
    })
}

/// A change of the optimistic state seen by the master's watch.
#[derive(Debug, Clone, PartialEq)]
pub enum OptimisticEvent {
    SourceTablesPut(SourceTables),
    InfoPut(OptimisticInfo),
    OpPut(OptimisticOp),
}

/// Everything below `/dm-master/shardddl-optimism/`.
const OPTIMISM_PREFIX: &str = "/dm-master/shardddl-optimism/";

/// Master: watches the optimistic state from `revision`.
pub async fn watch_optimistic(
    client: &mut Client,
    revision: i64,
) -> Result<etcd_client::WatchStream, DmError> {
    super::ha::watch_prefix(client, OPTIMISM_PREFIX, revision).await
}

/// The PUT events of one watch response; `Err` when the watch was cancelled or compacted.
pub fn optimistic_events(
    resp: &etcd_client::WatchResponse,
) -> Result<Vec<OptimisticEvent>, DmError> {
    super::ha::watch_alive(resp, "optimistic shard DDL")?;
    let mut out = Vec::new();
    for ev in resp.events() {
        if ev.event_type() != etcd_client::EventType::Put {
            continue;
        }
        let Some(kv) = ev.kv() else { continue };
        let k = String::from_utf8_lossy(kv.key()).into_owned();
        if k.starts_with(keys::SHARDDDL_OPTIMISM_SOURCE_TABLES) {
            out.push(OptimisticEvent::SourceTablesPut(decode_json(
                &k,
                kv.value(),
            )?));
        } else if k.starts_with(keys::SHARDDDL_OPTIMISM_INFO) {
            out.push(OptimisticEvent::InfoPut(decode_json(&k, kv.value())?));
        } else if k.starts_with(keys::SHARDDDL_OPTIMISM_OPERATION) {
            out.push(OptimisticEvent::OpPut(decode_json(&k, kv.value())?));
        }
    }
    Ok(out)
}

/// Master: puts `ops` in one fenced transaction.
pub async fn put_optimistic_ops(
    client: &mut Client,
    fence: Option<&Fence>,
    ops: &[OptimisticOp],
) -> Result<Written, DmError> {
    let puts = ops
        .iter()
        .map(|op| TxnOp::put(op.key(), json(op), None))
        .collect();
    fenced(
        client,
        fence,
        Vec::new(),
        puts,
        "putting optimistic operations",
    )
    .await
}

/// Master: records that `up` dropped `columns` of lock `lock_id` while other tables still
/// have them (DM's `DropNotDone` = 0).
pub async fn put_dropped_columns(
    client: &mut Client,
    fence: Option<&Fence>,
    lock_id: &str,
    columns: &[String],
    up: &UpTable,
) -> Result<Written, DmError> {
    let puts = columns
        .iter()
        .map(|c| {
            TxnOp::put(
                key(
                    keys::SHARDDDL_OPTIMISM_DROPPED_COLUMNS,
                    &[lock_id, c, &up.source, &up.schema, &up.table],
                ),
                "0",
                None,
            )
        })
        .collect();
    fenced(client, fence, Vec::new(), puts, "recording dropped columns").await
}

/// Master: forgets the partially dropped `columns` of lock `lock_id` (every column when
/// empty).
pub async fn delete_dropped_columns(
    client: &mut Client,
    fence: Option<&Fence>,
    lock_id: &str,
    columns: &[String],
) -> Result<Written, DmError> {
    let prefixes: Vec<String> = if columns.is_empty() {
        vec![keys::prefix(
            keys::SHARDDDL_OPTIMISM_DROPPED_COLUMNS,
            &[lock_id],
        )]
    } else {
        columns
            .iter()
            .map(|c| keys::prefix(keys::SHARDDDL_OPTIMISM_DROPPED_COLUMNS, &[lock_id, c]))
            .collect()
    };
    let dels = prefixes
        .into_iter()
        .map(|p| TxnOp::delete(p, Some(etcd_client::DeleteOptions::new().with_prefix())))
        .collect();
    fenced(
        client,
        fence,
        Vec::new(),
        dels,
        "forgetting dropped columns",
    )
    .await
}

/// Master: deletes the Infos and Operations of `tables` of `task` (a resolved lock).
pub async fn delete_optimistic_lock(
    client: &mut Client,
    fence: Option<&Fence>,
    task: &str,
    tables: &[UpTable],
) -> Result<Written, DmError> {
    let ops = tables
        .iter()
        .flat_map(|t| {
            [
                TxnOp::delete(info_key(task, &t.source, &t.schema, &t.table), None),
                TxnOp::delete(op_key(task, &t.source, &t.schema, &t.table), None),
            ]
        })
        .collect();
    fenced(
        client,
        fence,
        Vec::new(),
        ops,
        "deleting optimistic infos and operations",
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_use_dms_field_names() {
        let mut st = SourceTables {
            task: "test".into(),
            source: "mysql-replica-01".into(),
            ..Default::default()
        };
        st.add(("db", "tb"), ("shard1", "t1"));
        assert_eq!(
            serde_json::to_string(&st).unwrap(),
            r#"{"task":"test","source":"mysql-replica-01","tables":{"db":{"tb":{"shard1":{"t1":{}}}}}}"#
        );
        assert_eq!(
            st.routed_into(("db", "tb")),
            [UpTable {
                source: "mysql-replica-01".into(),
                schema: "shard1".into(),
                table: "t1".into()
            }]
        );
        // DM's SourceTables JSON reads as is.
        let dm: SourceTables = serde_json::from_str(
            r#"{"task":"t","source":"s","tables":{"db":{"tb":{"a":{"x":{},"y":{}}}}}}"#,
        )
        .unwrap();
        assert_eq!(dm.routed_into(("db", "tb")).len(), 2);

        let op = OptimisticOp {
            id: "test-`db`.`tb`".into(),
            task: "test".into(),
            source: "s".into(),
            up_schema: "shard1".into(),
            up_table: "t1".into(),
            ddls: vec!["ALTER TABLE `db`.`tb` ADD COLUMN c INT".into()],
            conflict_stage: ConflictStage::SkipWaitRedirect,
            conflict_message: "m".into(),
            done: false,
            cols: vec![],
        };
        let v: serde_json::Value = serde_json::to_value(&op).unwrap();
        assert_eq!(v["conflict-stage"], "skip and wait for redirect");
        assert_eq!(v["up-schema"], "shard1");
        assert_eq!(
            op.key(),
            key(
                keys::SHARDDDL_OPTIMISM_OPERATION,
                &["test", "s", "shard1", "t1"]
            )
        );
    }
}
