//! The optimistic shard DDL flow of a [`Run`] (see [`crate::actors::syncer::opt_shard`] and
//! [`crate::shardddl::optimism`]): a shard's ALTER is tracked, reported with the table's
//! schema before and after each statement, and only what the master's Operation returns runs
//! downstream; a conflicting table skips its rows until its Operation turns `resolved`, then
//! they are replayed (redirect). CREATE and DROP of shards update the source tables; a
//! shard's DROP TABLE / TRUNCATE / DROP DATABASE never reaches the merged table.

use tracing::info;

use super::Run;
use crate::binlog::location::Position;
use crate::error::{DmError, codes};
use crate::shardddl::group::Window;
use crate::sql::ddl::{DdlKind, DdlPiece};

impl Run {
    /// Handles the pieces of one DDL event (`start`..`end`) in optimistic mode.
    pub(super) async fn opt_ddl(
        &mut self,
        pieces: &[DdlPiece],
        _start: Position,
        end: Position,
    ) -> Result<(), DmError> {
        for piece in pieces {
            let table = piece.table.clone();
            let shard = table.as_deref().and_then(|t| {
                self.opt
                    .as_ref()
                    .and_then(|o| o.target_of(&piece.schema, t).cloned())
            });
            match piece.kind {
                DdlKind::CreateTable | DdlKind::CreateTableLike => {
                    self.apply_ddl(piece).await?;
                    if let Some(t) = table.as_deref()
                        && self.ba.allows(&piece.schema, Some(t))
                    {
                        let routed =
                            self.router
                                .route(&self.cfg.source_id, &piece.schema, Some(t))?;
                        let tt = routed.table.unwrap_or_else(|| t.to_string());
                        if let Some(o) = self.opt.as_mut() {
                            o.join(&piece.schema, t, (routed.schema, tt)).await?;
                        }
                    }
                }
                DdlKind::DropTable => {
                    self.apply_ddl(piece).await?;
                    if let (Some(t), Some(o)) = (table.as_deref(), self.opt.as_mut()) {
                        o.leave(&piece.schema, t).await?;
                    }
                }
                DdlKind::DropDatabase => {
                    let gone = self
                        .opt
                        .as_ref()
                        .map(|o| o.tables_of_schema(&piece.schema))
                        .unwrap_or_default();
                    self.apply_ddl(piece).await?;
                    if let Some(o) = self.opt.as_mut() {
                        for t in gone {
                            o.leave(&piece.schema, &t).await?;
                        }
                    }
                }
                DdlKind::AlterTable(_) | DdlKind::CreateIndex | DdlKind::DropIndex
                    if shard.is_some() =>
                {
                    if self.ddl_action(piece)?.is_none() {
                        continue;
                    }
                    let t = table.clone().unwrap_or_default();
                    if self
                        .opt
                        .as_ref()
                        .is_some_and(|o| o.withholds(&piece.schema, &t))
                    {
                        // Its skipped rows are replayed with one schema: a second change
                        // before the redirect would decode some of them wrongly.
                        return Err(DmError::new(
                            &codes::SYNCER_SHARD_DDL_CONFLICT,
                            format!(
                                "`{}`.`{t}` changes again (`{}`) while its rows wait for an optimistic conflict to be resolved; run the conflicting change on every shard first, then resume-task",
                                piece.schema,
                                super::truncate(&piece.sql)
                            ),
                        ));
                    }
                    let before = self.tracker.get(&piece.schema, &t).cloned();
                    self.track(piece);
                    let after = self.tracker.get(&piece.schema, &t).cloned();
                    let (Some(before), Some(after)) = (before, after) else {
                        // Untracked table: run it as without shard mode.
                        self.apply_ddl(piece).await?;
                        continue;
                    };
                    let routed = self.route_piece(piece)?;
                    let stop = self.stop.clone();
                    let o = self.opt.as_mut().expect("optimistic mode");
                    let op = o
                        .report(
                            &piece.schema,
                            &t,
                            vec![routed.sql.clone()],
                            before,
                            vec![after],
                            &stop,
                        )
                        .await?;
                    let run = o.decide(&piece.schema, &t, &op, &end)?;
                    let use_schema = routed.table.is_some().then_some(routed.schema.clone());
                    for sql in &run {
                        self.exec_ddl(use_schema.as_deref(), sql, false).await?;
                    }
                    self.opt
                        .as_mut()
                        .expect("optimistic mode")
                        .done(&op)
                        .await?;
                }
                _ => self.apply_ddl(piece).await?,
            }
        }
        Ok(())
    }

    /// Replays the skipped rows of tables whose conflict was resolved (at a transaction
    /// boundary, after the workers drained).
    pub(super) async fn redirect_resolved(&mut self) -> Result<(), DmError> {
        let Some(o) = self.opt.as_mut() else {
            return Ok(());
        };
        let resolved = o.resolved().await?;
        if resolved.is_empty() {
            return Ok(());
        }
        self.barrier().await?;
        let upto = self.pos.boundary().position.clone();
        for (id, from, op) in resolved {
            info!(task = %self.cfg.name, source = %self.cfg.source_id, table = %id, from = %from, to = %upto, "optimistic conflict resolved: replaying the table's skipped rows");
            let window = Window {
                table: id.clone(),
                from: from.clone(),
                to: upto.clone(),
            };
            let o = self.opt.as_mut().expect("optimistic mode");
            o.redirected(&id);
            self.resync(&id, 0, std::slice::from_ref(&window), &upto)
                .await?;
            self.opt
                .as_mut()
                .expect("optimistic mode")
                .done(&op)
                .await?;
        }
        self.tables.clear();
        Ok(())
    }
}
