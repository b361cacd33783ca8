//! The sync unit's optimistic shard DDL state (cluster only: the master's Optimist decides).
//!
//! - **Start:** the source's upstream tables, by the target each is routed into, are put as
//!   DM's source tables; a CREATE or DROP of a shard puts them again.
//! - **A shard's DDL:** tracked, then an Info with the table's schema before and after each
//!   statement; the Operation says which DDLs run downstream (maybe none), or that the DDL
//!   conflicts: the table then **skips** its rows from that point (strict mode: the task stops
//!   on 36062).
//! - **Redirect:** a skipping table whose Operation turns `resolved` has its skipped rows
//!   replayed (the re-sync stream of the pessimistic flow, from the conflicting DDL to here),
//!   then flows again.
//! - **Resume invariant:** no checkpoint is saved while a table skips, so a restart replays
//!   from before the conflicting DDL; its Info is put again and answered from the lock's
//!   current state (a replayed DDL runs nothing twice).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use etcd_client::Client;
use mysql_async::Conn;
use tracing::info;

use super::shard::{StopSignal, stopping};
use crate::binlog::location::Position;
use crate::error::{DmError, codes};
use crate::shardddl::group::table_id;
use crate::shardddl::optimism::{ConflictStage, UpTable};
use crate::sql::filter::BaFilter;
use crate::sql::route::Router;
use crate::sql::schema_tracker::TableSchema;
use crate::store::etcd::optimism::{self as store, OptimisticInfo, OptimisticOp, SourceTables};

/// How often a waiting worker reads its Operation, and how often skipping tables look for
/// `resolved`.
const OP_POLL: Duration = Duration::from_millis(100);
const REDIRECT_POLL: Duration = Duration::from_millis(500);

/// One optimistic subtask's state.
pub struct OptState {
    task: String,
    source: String,
    client: Client,
    strict: bool,
    /// `` `schema`.`table` `` → its target (schema, table).
    targets: HashMap<String, (String, String)>,
    /// Tables skipping their rows since a conflicting DDL: id → (up table, where the skip
    /// began: the end of that DDL).
    skipping: BTreeMap<String, (UpTable, Position)>,
    last_poll: Instant,
    /// The last conflict message, for query-status.
    pub blocking: Vec<String>,
}

impl OptState {
    /// Lists the source's upstream tables, routes them and puts the source tables.
    pub async fn init(
        cfg: &crate::config::SubTaskConfig,
        client: Client,
        router: &Router,
        ba: &BaFilter,
        upstream: &mut Conn,
    ) -> Result<Self, DmError> {
        let mut st = Self {
            task: cfg.name.clone(),
            source: cfg.source_id.clone(),
            client,
            strict: cfg.strict_optimistic_shard_mode,
            targets: HashMap::new(),
            skipping: BTreeMap::new(),
            last_poll: Instant::now(),
            blocking: Vec::new(),
        };
        for (schema, table) in super::shard::upstream_tables(upstream, ba).await? {
            let routed = router.route(&cfg.source_id, &schema, Some(&table))?;
            let t = routed.table.unwrap_or_else(|| table.clone());
            st.targets
                .insert(table_id(&schema, &table), (routed.schema, t));
        }
        st.put_source_tables().await?;
        info!(task = %st.task, source = %st.source, tables = st.targets.len(), "optimistic shard tables registered");
        Ok(st)
    }

    async fn put_source_tables(&mut self) -> Result<(), DmError> {
        let mut st = SourceTables {
            task: self.task.clone(),
            source: self.source.clone(),
            ..Default::default()
        };
        for (id, (ds, dt)) in &self.targets {
            if let Some((s, t)) = super::shard::split_table_id(id) {
                st.add((ds, dt), (&s, &t));
            }
        }
        store::put_source_tables(&mut self.client, &st).await
    }

    /// The target of `schema`.`table`, when it is one of this source's shards.
    pub fn target_of(&self, schema: &str, table: &str) -> Option<&(String, String)> {
        self.targets.get(&table_id(schema, table))
    }

    /// A table created upstream becomes a shard of `target`.
    pub async fn join(
        &mut self,
        schema: &str,
        table: &str,
        target: (String, String),
    ) -> Result<(), DmError> {
        self.targets.insert(table_id(schema, table), target);
        self.put_source_tables().await
    }

    /// This source's shards in database `schema`.
    pub fn tables_of_schema(&self, schema: &str) -> Vec<String> {
        self.targets
            .keys()
            .filter_map(|id| super::shard::split_table_id(id))
            .filter(|(s, _)| s == schema)
            .map(|(_, t)| t)
            .collect()
    }

    /// A dropped shard leaves (its lock goes on without it).
    pub async fn leave(&mut self, schema: &str, table: &str) -> Result<(), DmError> {
        let id = table_id(schema, table);
        self.skipping.remove(&id);
        if self.targets.remove(&id).is_some() {
            self.put_source_tables().await?;
        }
        Ok(())
    }

    /// Rows of `schema`.`table` are skipped (its DDL conflicts; they are replayed later).
    pub fn withholds(&self, schema: &str, table: &str) -> bool {
        !self.skipping.is_empty() && self.skipping.contains_key(&table_id(schema, table))
    }

    /// A checkpoint may be saved (no table skips rows a restart must read again).
    pub fn can_save(&self) -> bool {
        self.skipping.is_empty()
    }

    /// Puts the Info of `schema`.`table`'s DDLs and waits for its Operation.
    #[allow(clippy::too_many_arguments)]
    pub async fn report(
        &mut self,
        schema: &str,
        table: &str,
        ddls: Vec<String>,
        before: TableSchema,
        afters: Vec<TableSchema>,
        stop: &StopSignal,
    ) -> Result<OptimisticOp, DmError> {
        let (down_schema, down_table) =
            self.target_of(schema, table).cloned().ok_or_else(|| {
                DmError::new(
                    &codes::SYNC_SHARD_COORDINATION,
                    format!("{} is not a shard", table_id(schema, table)),
                )
            })?;
        let info = OptimisticInfo {
            task: self.task.clone(),
            source: self.source.clone(),
            up_schema: schema.to_string(),
            up_table: table.to_string(),
            down_schema,
            down_table,
            ddls,
            table_info_before: before,
            table_infos_after: afters,
            ignore_conflict: false,
        };
        let rev = store::put_optimistic_info(&mut self.client, &info).await?;
        info!(task = %self.task, source = %self.source, table = %table_id(schema, table), ddls = ?info.ddls, "optimistic shard DDL info put");
        let up = info.up();
        let mut client = self.client.clone();
        let task = self.task.clone();
        let wait = async move {
            loop {
                if let Some((op, mod_rev)) =
                    store::get_optimistic_op(&mut client, &up, &task).await?
                    && mod_rev > rev
                {
                    return Ok::<_, DmError>(op);
                }
                tokio::time::sleep(OP_POLL).await;
            }
        };
        tokio::select! {
            op = wait => op,
            () = stop.wait() => Err(stopping()),
        }
    }

    /// What the sync unit does with `op` for the DDL ending at `end`: the DDLs to run
    /// downstream, or an error (strict conflict, refused report). A conflict starts skipping.
    pub fn decide(
        &mut self,
        schema: &str,
        table: &str,
        op: &OptimisticOp,
        end: &Position,
    ) -> Result<Vec<String>, DmError> {
        self.blocking.clear();
        match op.conflict_stage {
            ConflictStage::None | ConflictStage::Resolved => Ok(op.ddls.clone()),
            ConflictStage::SkipWaitRedirect if !self.strict => {
                let id = table_id(schema, table);
                self.blocking.push(op.conflict_message.clone());
                self.skipping.entry(id.clone()).or_insert_with(|| {
                    (
                        UpTable {
                            source: self.source.clone(),
                            schema: schema.to_string(),
                            table: table.to_string(),
                        },
                        end.clone(),
                    )
                });
                info!(task = %self.task, source = %self.source, table = %id, from = %end, "optimistic conflict: the table's rows are skipped until it is resolved");
                Ok(Vec::new())
            }
            ConflictStage::SkipWaitRedirect | ConflictStage::Detected => Err(DmError::new(
                &codes::SYNCER_SHARD_DDL_CONFLICT,
                op.conflict_message.clone(),
            )),
            ConflictStage::Error => Err(DmError::new(
                &codes::SYNC_SHARD_COORDINATION,
                op.conflict_message.clone(),
            )),
        }
    }

    /// Tells the master the Operation was carried out.
    pub async fn done(&mut self, op: &OptimisticOp) -> Result<(), DmError> {
        store::done_optimistic(&mut self.client, op).await
    }

    /// Skipping tables whose Operation is now `resolved` (not more often than every
    /// [`REDIRECT_POLL`]): (table id, skip start, the Operation).
    pub async fn resolved(&mut self) -> Result<Vec<(String, Position, OptimisticOp)>, DmError> {
        if self.skipping.is_empty() || self.last_poll.elapsed() < REDIRECT_POLL {
            return Ok(Vec::new());
        }
        self.last_poll = Instant::now();
        let mut out = Vec::new();
        for (id, (up, from)) in &self.skipping {
            if let Some((op, _)) =
                store::get_optimistic_op(&mut self.client, up, &self.task).await?
                && op.conflict_stage == ConflictStage::Resolved
                && !op.done
            {
                out.push((id.clone(), from.clone(), op));
            }
        }
        Ok(out)
    }

    /// `id` was redirected: its rows flow again.
    pub fn redirected(&mut self, id: &str) {
        self.skipping.remove(id);
        if self.skipping.is_empty() {
            self.blocking.clear();
        }
    }
}
