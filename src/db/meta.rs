//! Every table dm-rs keeps in the target's meta schema (`<meta-schema>.<task>_<suffix>`): one
//! catalogue of names, as [`crate::store::etcd::keys`] is for etcd, and the helpers every
//! meta table shares (create on first use, delete a source's rows, absent tables).

use mysql_async::Conn;
use mysql_async::prelude::*;

use super::errno::{ER_BAD_DB_ERROR, ER_NO_SUCH_TABLE};
use crate::syntax::quote_ident;

/// A meta table of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaTable {
    /// DM's syncer checkpoint: global and per-table points.
    SyncerCheckpoint,
    /// dm-rs: each DML worker's committed changes since the checkpoint (exact replay).
    SyncerWorker,
    /// DM's loader checkpoint: the data files loaded.
    LoaderCheckpoint,
    /// dm-rs: secondary indexes deferred until a table's data is loaded.
    LoaderIndex,
    /// dm-rs: which dump a source's load may use (see `units::dump::owner`).
    DumpMeta,
    /// DM's pessimistic sharding groups.
    SyncerShardingMeta,
    /// DM's online DDL (gh-ost, pt-osc) records.
    OnlineDdl,
}

impl MetaTable {
    /// Every meta table (what `start-task --remove-meta` drops).
    pub const ALL: &[MetaTable] = &[
        MetaTable::SyncerCheckpoint,
        MetaTable::SyncerWorker,
        MetaTable::LoaderCheckpoint,
        MetaTable::LoaderIndex,
        MetaTable::DumpMeta,
        MetaTable::SyncerShardingMeta,
        MetaTable::OnlineDdl,
    ];

    /// The part after `<task>_`.
    pub const fn suffix(self) -> &'static str {
        match self {
            MetaTable::SyncerCheckpoint => "syncer_checkpoint",
            MetaTable::SyncerWorker => "syncer_worker",
            MetaTable::LoaderCheckpoint => "loader_checkpoint",
            MetaTable::LoaderIndex => "loader_index",
            MetaTable::DumpMeta => "dump_meta",
            MetaTable::SyncerShardingMeta => "syncer_sharding_meta",
            MetaTable::OnlineDdl => "onlineddl",
        }
    }

    /// `` `<meta-schema>`.`<task>_<suffix>` ``, quoted.
    pub fn name(self, meta_schema: &str, task: &str) -> String {
        format!(
            "{}.{}",
            quote_ident(meta_schema),
            quote_ident(&format!("{task}_{}", self.suffix()))
        )
    }
}

/// Whether `e` says the checkpoint table (or its schema) does not exist.
pub fn is_missing_table(e: &mysql_async::Error) -> bool {
    matches!(e, mysql_async::Error::Server(s) if s.code == ER_NO_SUCH_TABLE || s.code == ER_BAD_DB_ERROR)
}

/// `` `meta`.`<task>_<suffix>` ``: one of the load unit's tables in the meta schema.
pub fn meta_table_name(meta_schema: &str, task: &str, suffix: &str) -> String {
    format!(
        "{}.{}",
        quote_ident(meta_schema),
        quote_ident(&format!("{task}_{suffix}"))
    )
}

/// Creates `meta_schema` and `table` (`CREATE TABLE IF NOT EXISTS <table> <definition>`) when
/// missing.
pub async fn ensure_meta_table(
    conn: &mut Conn,
    meta_schema: &str,
    table: &str,
    definition: &str,
) -> Result<(), mysql_async::Error> {
    conn.query_drop(format!(
        "CREATE DATABASE IF NOT EXISTS {}",
        quote_ident(meta_schema)
    ))
    .await?;
    conn.query_drop(format!("CREATE TABLE IF NOT EXISTS {table} {definition}"))
        .await
}

/// Deletes the rows of `source_id` from the meta table `table`; an absent table is fine.
pub async fn delete_source_rows(
    conn: &mut Conn,
    table: &str,
    source_id: &str,
) -> Result<(), mysql_async::Error> {
    match conn
        .exec_drop(format!("DELETE FROM {table} WHERE `id` = ?"), (source_id,))
        .await
    {
        Err(e) if is_missing_table(&e) => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dms() {
        assert_eq!(
            MetaTable::SyncerCheckpoint.name("dm_meta", "t1"),
            "`dm_meta`.`t1_syncer_checkpoint`"
        );
        assert_eq!(
            MetaTable::LoaderIndex.name("dm_meta", "t`1"),
            "`dm_meta`.`t``1_loader_index`"
        );
        assert_eq!(MetaTable::ALL.len(), 7);
    }
}
