//! Which task incarnation and which upstream a dump belongs to, so that a finished dump is
//! reused only by the run that made it.
//!
//! A finished dump directory alone proves nothing: a task started again under the same name
//! (`start-task --remove-meta`), or with its source pointed at another server, finds the
//! earlier run's files under the same `<loader.dir>/<source-id>`. Loading them would fill the
//! target with another server's snapshot and start sync at a position of that other server.
//!
//! So every dump gets a fresh random `dump-id`:
//! - written into the dump directory as `dm-dump-owner.json` ([`DumpOwner`]: task, source,
//!   dump-id and the upstream's identity, see [`upstream_identity`]) before any data file;
//! - for task-modes that load, recorded downstream in `<meta-schema>.<task>_dump_meta` (one
//!   row per source: dump-id and upstream) in the same transaction that clears the source's
//!   loader checkpoint, because the file names of a new dump repeat those of the old one.
//!
//! A finished dump is reused ([`check`]) only when its owner file names this task and source,
//! the upstream answers with the same identity, and (task-modes that load) the downstream row
//! holds the same dump-id. `--remove-meta` drops the meta tables, so the row is gone and the
//! dump is made again; so is one left by another tool, an older dm-rs, or a crash before the
//! record. The handover to sync deletes the row with the loader checkpoint.

use std::path::Path;

use mysql_async::Conn;
use mysql_async::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::SecretKey;
use crate::config::subtask::SubTaskConfig;
use crate::db::meta::{MetaTable, delete_source_rows, ensure_meta_table, is_missing_table};
use crate::db::{self, StepExt};
use crate::error::{DmError, codes};
use crate::units::load::checkpoint::LoaderCheckpoint;

/// The owner file in a dump directory.
pub const OWNER_FILE: &str = "dm-dump-owner.json";

/// Who a dump belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct DumpOwner {
    pub task: String,
    pub source_id: String,
    /// Random, fresh for every dump.
    pub dump_id: String,
    /// [`upstream_identity`] of the server dumped.
    pub upstream: String,
}

impl DumpOwner {
    /// A new owner for a dump of `task`'s `source_id` (upstream identity `upstream`).
    pub fn fresh(task: &str, source_id: &str, upstream: String) -> Self {
        Self {
            task: task.to_string(),
            source_id: source_id.to_string(),
            dump_id: format!("{:032x}", rand::random::<u128>()),
            upstream,
        }
    }

    /// The owner file of `dir`, if there is a readable one.
    pub fn read(dir: &Path) -> Option<Self> {
        let text = std::fs::read(dir.join(OWNER_FILE)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Writes the owner file into `dir` (through a `.tmp` and a rename).
    pub fn write(&self, dir: &Path) -> Result<(), DmError> {
        let tmp = dir.join(format!("{OWNER_FILE}.tmp"));
        let text = serde_json::to_vec_pretty(self).expect("owner serializes");
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, dir.join(OWNER_FILE)))
            .map_err(|e| {
                DmError::new(
                    &codes::DUMP_WRITE_FILE,
                    format!("writing `{}`", dir.join(OWNER_FILE).display()),
                )
                .with_cause(e)
            })
    }
}

/// The upstream server's identity: MySQL's `server_uuid` when it has one; otherwise (MariaDB
/// has none) `server_id`, `hostname`, `port` and `datadir` together.
pub async fn upstream_identity(conn: &mut Conn) -> Result<String, DmError> {
    let rows: Vec<(String, String)> = conn
        .query(
            "SHOW GLOBAL VARIABLES WHERE Variable_name IN \
             ('server_uuid', 'server_id', 'hostname', 'port', 'datadir')",
        )
        .await
        .map_err(|e| {
            DmError::new(&codes::DUMP_UNIT_RUNTIME, "reading the upstream's identity").with_cause(e)
        })?;
    let get = |k: &str| {
        rows.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map_or("", |(_, v)| v.as_str())
    };
    Ok(match get("server_uuid") {
        "" => format!(
            "server_id={};hostname={};port={};datadir={}",
            get("server_id"),
            get("hostname"),
            get("port"),
            get("datadir")
        ),
        uuid => format!("server_uuid={uuid}"),
    })
}

/// Connects to `cfg`'s upstream and reads its identity.
pub async fn upstream_identity_of(
    cfg: &SubTaskConfig,
    key: Option<&SecretKey>,
) -> Result<String, DmError> {
    let from = cfg.from.as_ref().ok_or_else(|| {
        DmError::new(
            &codes::DUMP_UNIT_RUNTIME,
            "the subtask has no upstream (`from`) to dump",
        )
    })?;
    let mut conn = Conn::new(from.to_opts(key)).await.map_err(|e| {
        DmError::new(&codes::DB_BAD_CONN, "cannot connect to the upstream").with_cause(e)
    })?;
    let id = upstream_identity(&mut conn).await;
    let _ = conn.disconnect().await;
    id
}

/// The downstream record of a task's dumps: `<meta-schema>.<task>_dump_meta`.
#[derive(Debug, Clone)]
pub struct DumpRecord {
    meta_schema: String,
    table: String,
    source_id: String,
}

fn exec_err(what: &str, e: mysql_async::Error) -> DmError {
    db::error(&codes::DB_EXECUTE_FAILED, format!("dump meta: {what}"), e)
}

impl DumpRecord {
    /// The record of `cfg`'s task and source.
    pub fn of(cfg: &SubTaskConfig) -> Self {
        Self {
            meta_schema: cfg.meta_schema.clone(),
            table: MetaTable::DumpMeta.name(&cfg.meta_schema, &cfg.name),
            source_id: cfg.source_id.clone(),
        }
    }

    /// The quoted, qualified table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// `(dump-id, upstream)` recorded for the source, if any.
    pub async fn load(&self, conn: &mut Conn) -> Result<Option<(String, String)>, DmError> {
        match conn
            .exec_first(
                format!("SELECT dump_id, upstream FROM {} WHERE id = ?", self.table),
                (&self.source_id,),
            )
            .await
        {
            Ok(r) => Ok(r),
            Err(e) if is_missing_table(&e) => Ok(None),
            Err(e) => Err(exec_err("reading", e)),
        }
    }

    /// Records `owner` as the source's dump and clears the source's loader checkpoint (its
    /// file names would match the new dump's), in one transaction.
    pub async fn record(
        &self,
        conn: &mut Conn,
        owner: &DumpOwner,
        loader: &LoaderCheckpoint,
    ) -> Result<(), DmError> {
        ensure_meta_table(
            conn,
            &self.meta_schema,
            &self.table,
            "(`id` VARCHAR(32) NOT NULL PRIMARY KEY, `dump_id` VARCHAR(64) NOT NULL, \
             `upstream` TEXT NOT NULL, \
             `update_time` TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP)",
        )
        .await
        .map_err(|e| exec_err("creating the table", e))?;
        loader
            .ensure(conn)
            .await
            .map_err(|e| exec_err("creating the loader checkpoint", e))?;
        // Subtasks of one task share the meta tables: retry through deadlocks.
        db::retry_transient(&codes::DB_EXECUTE_FAILED, "dump meta", async || {
            let mut tx = conn
                .start_transaction(mysql_async::TxOpts::default())
                .await
                .step("begin")?;
            tx.exec_drop(
                format!(
                    "REPLACE INTO {} (id, dump_id, upstream) VALUES (?, ?, ?)",
                    self.table
                ),
                (&self.source_id, &owner.dump_id, &owner.upstream),
            )
            .await
            .step("recording the dump")?;
            tx.exec_drop(
                format!("DELETE FROM {} WHERE id = ?", loader.table()),
                (&self.source_id,),
            )
            .await
            .step("clearing the loader checkpoint")?;
            tx.commit().await.step("commit")
        })
        .await
    }

    /// Deletes the source's row (after the handover to sync); an absent table is fine.
    pub async fn delete(&self, conn: &mut Conn) -> Result<(), DmError> {
        delete_source_rows(conn, &self.table, &self.source_id)
            .await
            .map_err(|e| exec_err("deleting", e))
    }
}

/// Whether a finished dump in a directory may be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It belongs to this run: load it.
    Reuse,
    /// Dump again; the reason is logged (None: there is no finished dump).
    Redo(Option<String>),
}

/// Decides whether the finished dump `owner` (None: no owner file) may be used by `task`'s
/// `source_id`, given the upstream's identity now and the downstream record (`None` when the
/// task does not load, `Some(None)` when it loads and nothing is recorded).
pub fn judge(
    task: &str,
    source_id: &str,
    owner: Option<&DumpOwner>,
    upstream: &str,
    recorded: Option<Option<&(String, String)>>,
) -> Verdict {
    let Some(owner) = owner else {
        return Verdict::Redo(Some(format!(
            "the finished dump has no `{OWNER_FILE}` (made by another tool or an older dm-rs)"
        )));
    };
    if owner.task != task || owner.source_id != source_id {
        return Verdict::Redo(Some(format!(
            "the dump belongs to task `{}` source `{}`",
            owner.task, owner.source_id
        )));
    }
    if owner.upstream != upstream {
        return Verdict::Redo(Some(format!(
            "the dump was taken from another upstream server ({}; now {upstream})",
            owner.upstream
        )));
    }
    match recorded {
        None => Verdict::Reuse,
        Some(Some((id, _))) if *id == owner.dump_id => Verdict::Reuse,
        Some(Some((id, _))) => Verdict::Redo(Some(format!(
            "the downstream records dump {id}, not this dump {}",
            owner.dump_id
        ))),
        Some(None) => Verdict::Redo(Some(
            "the downstream records no dump for this source (the task was started with \
             --remove-meta, or its meta schema was dropped)"
                .into(),
        )),
    }
}

/// Reads what [`judge`] needs and judges the dump in `dir`. `down` is a downstream connection
/// for task-modes that load.
pub async fn check(
    cfg: &SubTaskConfig,
    key: Option<&SecretKey>,
    dir: &Path,
    down: Option<&mut Conn>,
) -> Result<Verdict, DmError> {
    let finished = super::metadata::DumpMetadata::read(dir).is_ok_and(|m| m.finished.is_some());
    if !finished {
        return Ok(Verdict::Redo(None));
    }
    let upstream = upstream_identity_of(cfg, key).await?;
    let owner = DumpOwner::read(dir);
    let recorded = match down {
        Some(conn) => Some(DumpRecord::of(cfg).load(conn).await?),
        None => None,
    };
    Ok(judge(
        &cfg.name,
        &cfg.source_id,
        owner.as_ref(),
        &upstream,
        recorded.as_ref().map(Option::as_ref),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dump_is_reused_only_by_its_own_task_upstream_and_record() {
        let owner = DumpOwner::fresh("t", "s", "server_id=1".into());
        let rec = (owner.dump_id.clone(), "server_id=1".to_string());
        let j = |task: &str,
                 owner: Option<&DumpOwner>,
                 up: &str,
                 rec: Option<Option<&(String, String)>>| {
            judge(task, "s", owner, up, rec)
        };
        assert_eq!(
            j("t", Some(&owner), "server_id=1", Some(Some(&rec))),
            Verdict::Reuse
        );
        // Dump-only modes have no record to check.
        assert_eq!(j("t", Some(&owner), "server_id=1", None), Verdict::Reuse);
        let redo = |v: Verdict, needle: &str| match v {
            Verdict::Redo(Some(r)) => assert!(r.contains(needle), "{r}"),
            other => panic!("{other:?}"),
        };
        redo(j("t", None, "server_id=1", Some(Some(&rec))), OWNER_FILE);
        redo(
            j("t", Some(&owner), "server_id=2", Some(Some(&rec))),
            "another upstream",
        );
        redo(
            j("t", Some(&owner), "server_id=1", Some(None)),
            "--remove-meta",
        );
        let other = ("0".repeat(32), "server_id=1".to_string());
        redo(
            j("t", Some(&owner), "server_id=1", Some(Some(&other))),
            "records dump",
        );
        redo(
            j("t2", Some(&owner), "server_id=1", None),
            "belongs to task `t`",
        );
    }

    #[test]
    fn owner_file_round_trips_and_ids_are_fresh() {
        let dir = tempfile::tempdir().unwrap();
        let a = DumpOwner::fresh("t", "s", "x".into());
        let b = DumpOwner::fresh("t", "s", "x".into());
        assert_ne!(a.dump_id, b.dump_id);
        assert_eq!(DumpOwner::read(dir.path()), None);
        a.write(dir.path()).unwrap();
        assert_eq!(DumpOwner::read(dir.path()), Some(a));
    }
}
