//! The pessimistic shard DDL flow of a [`Run`] (see [`crate::actors::syncer::shard`] and
//! [`crate::shardddl::group`]):
//!
//! 1. A member's DDL is tracked, joins its group's sequence and is not executed; the member's
//!    later rows are withheld.
//! 2. When every member reached the active DDL, the lock decides (the master, or at once
//!    without one): the owner executes the DDL downstream, the others skip it.
//! 3. The DDL is recorded as done in the sharding meta, the master is told, and the group
//!    moves on.
//! 4. **Re-sync:** a second binlog stream reads from the end of the first member's DDL to the
//!    resolving event and applies only the withheld rows (per member, between its DDL and its
//!    next one), decoded with the member's schema after its DDL. Then the main stream goes on.
//!
//! CREATE TABLE joins a group (executed downstream, an existing table is fine); DROP TABLE and
//! DROP DATABASE leave it (never executed on the merged table); TRUNCATE is not executed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use mysql_async::binlog::events::TableMapEvent;
use tracing::{info, warn};

use super::{Run, TableEntry, decode_err, truncate};
use crate::actors::syncer::shard::Decision;
use crate::binlog::event::{BinlogEvent, types};
use crate::binlog::location::{Position, compare_binlog_names};
use crate::binlog::stream::{StartPoint, StreamRequest, open_stream};
use crate::error::{DmError, codes};
use crate::shardddl::group::{DdlItem, Window, table_id};
use crate::sql::ddl::{DdlKind, DdlPiece};
use crate::sql::schema_tracker::load_table;

impl Run {
    /// Handles the pieces of one DDL event (`start`..`end`) in shard mode.
    pub(super) async fn shard_ddl(
        &mut self,
        pieces: &[DdlPiece],
        start: Position,
        end: Position,
    ) -> Result<(), DmError> {
        let mut member_pieces: Vec<&DdlPiece> = Vec::new();
        for piece in pieces {
            let member = piece.table.as_deref().and_then(|t| {
                self.shard
                    .as_ref()
                    .and_then(|s| s.target_of(&piece.schema, t).cloned())
            });
            match piece.kind {
                DdlKind::CreateDatabase | DdlKind::AlterDatabase => self.apply_ddl(piece).await?,
                DdlKind::DropDatabase => {
                    if self.ddl_action(piece)?.is_none() {
                        continue;
                    }
                    self.track(piece);
                    let members = self
                        .shard
                        .as_ref()
                        .map(|s| s.members_of_schema(&piece.schema))
                        .unwrap_or_default();
                    for m in members {
                        if let Some((s, t)) = split_id(&m) {
                            self.leave_group(&s, &t, &start).await?;
                        }
                    }
                    self.note_skipped(piece);
                }
                DdlKind::DropTable | DdlKind::TruncateTable => {
                    if self.ddl_action(piece)?.is_none() {
                        continue;
                    }
                    self.track(piece);
                    if piece.kind == DdlKind::DropTable
                        && let Some(t) = piece.table.as_deref()
                    {
                        self.leave_group(&piece.schema, t, &start).await?;
                    }
                    self.note_skipped(piece);
                }
                DdlKind::CreateTable | DdlKind::CreateTableLike => {
                    self.apply_ddl(piece).await?;
                    if let Some(t) = piece.table.as_deref()
                        && self.ba.allows(&piece.schema, Some(t))
                    {
                        let routed =
                            self.router
                                .route(&self.cfg.source_id, &piece.schema, Some(t))?;
                        let tt = routed.table.unwrap_or_else(|| t.to_string());
                        if let Some(s) = self.shard.as_mut() {
                            s.join(&piece.schema, t, &routed.schema, &tt, &start);
                        }
                    }
                }
                DdlKind::RenameTable => {
                    // Renaming a shard is a shard leaving (and, when the new name is routed, a
                    // table joining); the merged table keeps its name.
                    if self.ddl_action(piece)?.is_none() {
                        continue;
                    }
                    self.track(piece);
                    if let Some(t) = piece.table.as_deref() {
                        self.leave_group(&piece.schema, t, &start).await?;
                    }
                    if let Some((s, t)) = &piece.new_table
                        && self.ba.allows(s, Some(t))
                    {
                        let routed = self.router.route(&self.cfg.source_id, s, Some(t))?;
                        let tt = routed.table.unwrap_or_else(|| t.to_string());
                        if let Some(sh) = self.shard.as_mut() {
                            sh.join(s, t, &routed.schema, &tt, &start);
                        }
                    }
                    self.note_skipped(piece);
                }
                _ if member.is_some() => member_pieces.push(piece),
                _ => self.apply_ddl(piece).await?,
            }
        }
        if member_pieces.is_empty() {
            return Ok(());
        }
        self.member_ddl(&member_pieces, start, end).await
    }

    fn note_skipped(&mut self, piece: &DdlPiece) {
        self.skipped_shard_ddls += 1;
        info!(task = %self.cfg.name, source = %self.cfg.source_id, ddl = %truncate(&piece.sql), "shard DDL left out of the merged table");
    }

    /// A member left its group (dropped or renamed upstream); a group that this synced is
    /// resolved at once.
    async fn leave_group(
        &mut self,
        schema: &str,
        table: &str,
        at: &Position,
    ) -> Result<(), DmError> {
        let synced = self.shard.as_mut().and_then(|s| s.leave(schema, table));
        if let Some(target) = synced {
            info!(task = %self.cfg.name, source = %self.cfg.source_id, table = %table_id(schema, table), target = %target, "a shard left its group; the others all reached the pending DDL");
            self.resolve_group(&target, at.clone()).await?;
        }
        Ok(())
    }

    /// The DDL pieces of one member table: tracked, added to its group's sequence; executed
    /// (once, by the lock's owner) when the group is synced.
    async fn member_ddl(
        &mut self,
        pieces: &[&DdlPiece],
        start: Position,
        end: Position,
    ) -> Result<(), DmError> {
        let first = pieces[0];
        let table = first.table.clone().unwrap_or_default();
        if pieces
            .iter()
            .any(|p| p.schema != first.schema || p.table.as_deref() != Some(table.as_str()))
        {
            return Err(DmError::new(
                &codes::SYNC_UNIT_DDL_ON_MULTIPLE_TABLE,
                format!(
                    "the DDL at {start} changes several tables of sharding groups: {:?}",
                    pieces.iter().map(|p| p.sql.as_str()).collect::<Vec<_>>()
                ),
            ));
        }
        let mut ddls = Vec::new();
        let mut ignored = true;
        for p in pieces {
            match self.ddl_action(p)? {
                None => {}
                Some(apply) => {
                    self.track(p);
                    if apply {
                        ignored = false;
                        ddls.push(self.route_piece(p)?.sql);
                    }
                }
            }
        }
        if ignored || ddls.is_empty() {
            return Ok(());
        }
        let member = table_id(&first.schema, &table);
        let shard = self.shard.as_mut().expect("shard mode");
        let target = shard
            .target_of(&first.schema, &table)
            .cloned()
            .expect("a member");
        let item = DdlItem {
            first: start.clone(),
            end,
            ddls,
            source: member.clone(),
        };
        let r = shard
            .group_mut(&target)
            .expect("the member's group")
            .try_sync(item)?;
        if let Some(ts) = self.tracker.get(&first.schema, &table).cloned() {
            self.shard
                .as_mut()
                .expect("shard mode")
                .snapshot(&member, r.index, ts);
        }
        info!(task = %self.cfg.name, source = %self.cfg.source_id, table = %member, target = %target, index = r.index, active = r.active, synced = r.synced, "shard DDL joined its group's sequence");
        if r.active && r.synced {
            self.resolve_group(&target, start).await?;
        }
        Ok(())
    }

    /// The group of `target` is synced at the event starting at `at`: decide, execute or skip,
    /// record, tell the master, re-sync the withheld rows. Groups further in their sequence
    /// may be synced by this too; each is resolved in turn.
    async fn resolve_group(&mut self, target: &str, at: Position) -> Result<(), DmError> {
        loop {
            let shard = self.shard.as_mut().expect("shard mode");
            let Some(group) = shard.group(target) else {
                return Ok(());
            };
            let Some(item) = group.active_item().cloned() else {
                return Ok(());
            };
            let (synced, unsynced) = group.synced_split();
            if !unsynced.is_empty() || synced.is_empty() {
                return Ok(());
            }
            let k = group.active_index();
            let replayed = shard.already_done(target);
            let decision = if replayed {
                info!(task = %self.cfg.name, source = %self.cfg.source_id, target = %target, ddls = ?item.ddls, "shard DDL done by an earlier run; not coordinated again");
                shard.ensure_done(target).await?;
                Decision {
                    exec: false,
                    op: None,
                }
            } else {
                shard.blocked_on(target, &item.ddls);
                crate::failpoint::crash("shard-before-decide");
                self.refresh_status().await;
                let stop = self.stop.clone();
                let shard = self.shard.as_mut().expect("shard mode");
                let started = std::time::Instant::now();
                let d = shard.decide(target, &stop).await?;
                info!(task = %self.cfg.name, source = %self.cfg.source_id, target = %target, exec = d.exec, waited_ms = started.elapsed().as_millis() as u64, "shard DDL lock decided");
                d
            };
            if decision.exec {
                let (schema, _) = self
                    .shard
                    .as_ref()
                    .and_then(|s| s.target_names(target).cloned())
                    .unwrap_or_default();
                for sql in &item.ddls {
                    self.exec_ddl(Some(&schema), sql, false).await?;
                }
            }
            crate::failpoint::crash("shard-after-exec");
            if !replayed {
                let shard = self.shard.as_mut().expect("shard mode");
                shard.record_done(&mut self.downstream, target).await?;
                crate::failpoint::crash("shard-after-record");
                shard.done(&decision).await?;
            }
            let windows = self
                .shard
                .as_mut()
                .expect("shard mode")
                .group_mut(target)
                .expect("the group")
                .resolve(&at);
            self.resync(target, k, &windows, &at).await?;
            let shard = self.shard.as_mut().expect("shard mode");
            shard.forget_snapshots(target);
            // A table's rows may be withheld no more.
            self.tables.clear();
        }
    }

    /// Applies the rows withheld in `windows` (DDL number `k` of the group of `target`), read
    /// again from the binlog up to `upto` (the resolving event's start).
    pub(super) async fn resync(
        &mut self,
        target: &str,
        k: usize,
        windows: &[Window],
        upto: &Position,
    ) -> Result<(), DmError> {
        let Some(from) = windows.iter().map(|w| w.from.clone()).min() else {
            return Ok(());
        };
        let started = std::time::Instant::now();
        let req = StreamRequest {
            // Another replica of the upstream next to the main stream.
            server_id: self.server_id ^ 0x2000_0000,
            flavor: self.flavor,
            start: StartPoint::Position(from.clone()),
            heartbeat: Duration::from_secs(1),
        };
        let mut stream = open_stream(self.up_opts.clone(), &req).await?;
        let by_table: HashMap<String, &Window> =
            windows.iter().map(|w| (w.table.clone(), w)).collect();
        let mut entries: HashMap<u64, Option<Arc<TableEntry>>> = HashMap::new();
        let mut file = from.name.clone();
        let mut rows = 0u64;

        loop {
            let ev = match stream.next().await {
                Some(Ok(ev)) => ev,
                Some(Err(e)) => {
                    return Err(
                        DmError::new(&codes::DB_BAD_CONN, "re-sync binlog stream failed")
                            .with_cause(e),
                    );
                }
                None => {
                    return Err(DmError::new(
                        &codes::DB_BAD_CONN,
                        "re-sync binlog stream ended",
                    ));
                }
            };
            let header = ev.header();
            let t = header.event_type_raw();
            let end = header.log_pos();
            if t == types::HEARTBEAT {
                // An idle upstream: the heartbeat carries its position; at or past `upto`
                // nothing is left to read.
                if end > 0 && Position::new(file.clone(), end) >= *upto {
                    break;
                }
                continue;
            }
            if t == types::ROTATE {
                if let Ok(BinlogEvent::Rotate { next, .. }) = BinlogEvent::classify(&ev) {
                    file = next;
                }
                if compare_binlog_names(&file, &upto.name).is_gt() {
                    break;
                }
                continue;
            }
            if end == 0 {
                continue;
            }
            let here = Position::new(file.clone(), end);
            if here > *upto {
                break;
            }
            match BinlogEvent::classify(&ev)? {
                BinlogEvent::TableMap => {
                    let tme: TableMapEvent = ev.read_event().map_err(|e| {
                        decode_err(e, &crate::binlog::location::Location::at(here.clone()))
                    })?;
                    let id = tme.table_id();
                    if entries.contains_key(&id) {
                        continue;
                    }
                    let member = table_id(tme.database_name().as_ref(), tme.table_name().as_ref());
                    let entry = if by_table.contains_key(&member) {
                        let schema = self.resync_schema(&member, k, &tme).await?;
                        let mut e = self.entry_for(&tme, &schema, end)?;
                        e.withheld = false;
                        Some(Arc::new(e))
                    } else {
                        None
                    };
                    entries.insert(id, entry);
                }
                BinlogEvent::Rows { event_type } => {
                    let id = crate::binlog::decode::rows_table_id(ev.data()).map_err(|e| {
                        decode_err(
                            e.to_dm(),
                            &crate::binlog::location::Location::at(here.clone()),
                        )
                    })?;
                    let Some(Some(entry)) = entries.get(&id).cloned() else {
                        continue;
                    };
                    let member = table_id(&entry.schema, &entry.table);
                    let Some(w) = by_table.get(&member) else {
                        continue;
                    };
                    if here > w.from && here <= w.to {
                        rows += 1;
                        if rows == 2 {
                            crate::failpoint::crash("shard-resync");
                        }
                        self.rows_of(&entry, &ev, event_type, header.timestamp(), end)
                            .await?;
                    }
                }
                _ => {}
            }
            if here >= *upto {
                break;
            }
        }
        drop(stream);
        self.barrier().await?;
        info!(task = %self.cfg.name, source = %self.cfg.source_id, target = %target, from = %from, to = %upto, rows_events = rows, ms = started.elapsed().as_millis() as u64, "withheld rows re-synced");
        Ok(())
    }

    /// The schema `member`'s rows had after its DDL number `k`: the snapshot taken then, else
    /// (a table that joined while DDLs were pending) the tracked or upstream schema.
    async fn resync_schema(
        &mut self,
        member: &str,
        k: usize,
        tme: &TableMapEvent<'_>,
    ) -> Result<crate::sql::schema_tracker::TableSchema, DmError> {
        if let Some(s) = self.shard.as_ref().and_then(|s| s.schema_after(member, k)) {
            return Ok(s.clone());
        }
        let (schema, table) = (
            tme.database_name().to_string(),
            tme.table_name().to_string(),
        );
        if let Some(s) = self.tracker.get(&schema, &table) {
            return Ok(s.clone());
        }
        warn!(task = %self.cfg.name, table = %member, "no schema recorded for a re-synced table; reading the upstream's");
        load_table(&mut self.upstream, &schema, &table)
            .await?
            .ok_or_else(|| {
                DmError::new(
                    &codes::SYNC_TABLE_NOT_FOUND,
                    format!("{member}: no schema to decode its withheld rows"),
                )
            })
    }
}

fn split_id(id: &str) -> Option<(String, String)> {
    let inner = id.strip_prefix('`')?.strip_suffix('`')?;
    let (s, t) = inner.split_once("`.`")?;
    Some((s.to_string(), t.to_string()))
}
