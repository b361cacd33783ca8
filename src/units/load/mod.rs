//! The load unit: creates the target schemas and loads a dump directory in parallel,
//! resumably. Plain async logic ([`run_load`]); the subtask runs it between the dump and the
//! sync unit.
//!
//! # Phases
//!
//! 1. **Directory** ([`files::DumpDir::scan`]): `metadata` must exist and say the dump
//!    finished, else `LOAD_DUMP_DIR_INVALID`. Files are sorted to their schema and table.
//! 2. **Schemas** (`schema`): the CREATE DATABASE / CREATE TABLE of every table the
//!    block-allow-list lets through, routed by the route rules, with `IF NOT EXISTS` (shards
//!    merged into one target create it once). Extract-* route columns are added to the target.
//!    With `defer-secondary-indexes` (default on), a table this load creates leaves out its
//!    plain non-unique `KEY`s, recorded first in `<meta-schema>.<task>_loader_index`.
//! 3. **Data** (`worker`): `pool-size` connections, each with the sync unit's downstream
//!    session, take data files largest first; a file is one transaction. Its rows go to the
//!    routed target with `on-duplicate-logical`'s verb and the extract columns, either as
//!    `LOAD DATA LOCAL INFILE` requests of about 4 MiB of text translated from the INSERTs
//!    (`tsv`; `data-statement: auto` chooses this on MySQL/MariaDB targets with
//!    `local_infile` on; UTF-8 text into tables whose text columns are all utf8mb4 is read
//!    as `CHARACTER SET binary`), or as rewritten INSERTs in requests of about 1 MiB (TiDB,
//!    `data-statement: insert`, and every statement whose values have no exact LOAD DATA
//!    form).
//! 4. **Indexes** ([`indexes::add_deferred`]): once every file is loaded (by this run or an
//!    earlier one), each table with deferred indexes gets the missing ones in one
//!    `ALTER TABLE ... ADD ..., ADD ...` (up to `pool-size` tables at once; InnoDB builds them
//!    by sorting, faster than maintaining them row by row), then its row is deleted.
//!
//! # Resume invariant
//!
//! A data file's rows and its row in DM's loader checkpoint table
//! `<meta-schema>.<task>_loader_checkpoint` (`offset = end_pos = file size`) commit in one
//! transaction. So at any moment — a kill, a crash of the target, an error in another file —
//! every file is either wholly loaded and listed, or not loaded at all and not listed. A new
//! run skips the listed files and loads the others from their start: no row is lost or
//! loaded twice, even in tables without a key. A file whose COMMIT answer was lost is looked
//! up in the checkpoint (with a locking read) before it is loaded again.
//!
//! Deferred indexes are recorded before their table is created and deleted after they are
//! added, and adding is by name: a run that finds a row creates the table without them (if
//! missing) and adds those still missing after the data. [`load_finished`] is false while a
//! row is pending, so a restarted worker runs the unit again, which then only adds indexes.
//!
//! # Status
//!
//! [`LoadStatus`] has DM's fields; `finished_bytes` counts whole files (files skipped at
//! start count as finished), `bps` is this run's loaded bytes over its elapsed time.
//!
//! # Not supported
//!
//! CSV and compressed dump files (an error), views, triggers and routines (not loaded, as in
//! DM), Lightning's physical import. A dump whose data files change the client character set
//! to something other than `binary` or UTF-8 (`SET NAMES latin1`) with non-ASCII table names
//! would see the routed names misread.

pub mod checkpoint;
pub mod downstream;
pub mod files;
pub mod indexes;
pub mod insert;
pub mod schema;
pub mod split;
pub mod status;
pub mod tsv;
pub mod worker;

pub use status::{LoadStatus, progress_text};

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use mysql_async::Conn;
use serde::Serialize;
use tracing::info;

pub use self::checkpoint::LoaderCheckpoint;
use self::downstream::Downstream;
use self::files::DumpDir;
use self::indexes::{AddContext, Deferral, IndexMeta, add_deferred};
use self::insert::OnDuplicate;
use self::schema::{SchemaContext, create_schemas};
use self::worker::{Job, Settings, Shared, load_files};
use crate::config::{SecretKey, SubTaskConfig};
use crate::error::{DmError, codes};
use crate::sql::filter::BaFilter;
use crate::sql::route::Router;

/// What a successful [`run_load`] did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LoadSummary {
    /// Data files loaded by this run.
    pub files_loaded: usize,
    /// Data files an earlier run had loaded (listed in the checkpoint).
    pub files_skipped: usize,
    /// Rows this run loaded (counted from the dump's INSERTs).
    pub rows: u64,
    /// Of `rows`, those sent by `LOAD DATA LOCAL INFILE` (`loader.data-statement`).
    pub load_data_rows: u64,
    /// Bytes of the data files this run loaded.
    pub bytes: u64,
    /// Deferred secondary indexes this run added after the data phase.
    pub indexes_added: usize,
    /// Wall time of the run, schema and index phases included.
    pub seconds: f64,
}

/// The session of every load connection: a UTF-8 client, then the sync unit's downstream
/// session (UTC time zone, permissive sql_mode, no foreign key checks, the task's `session`
/// variables), then the loader's `sql-mode` when set.
/// Session of every load connection: UTF-8, then the syncer's downstream session (UTC,
/// permissive sql_mode, no FK checks, the task's `session`), then `loader.sql-mode` if set.
fn session(cfg: &SubTaskConfig) -> Vec<String> {
    let mut s = vec!["SET NAMES utf8mb4".to_string()];
    s.extend(crate::db::downstream_session(cfg.to.session_sql()));
    if !cfg.loader.sql_mode.is_empty() {
        s.push(format!(
            "SET SESSION sql_mode = {}",
            crate::sql::quote_string(&cfg.loader.sql_mode)
        ));
    }
    s
}

fn router(cfg: &SubTaskConfig) -> Result<Router, DmError> {
    Router::for_subtask(cfg)
}

async fn scan(dir: &Path) -> Result<DumpDir, DmError> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || DumpDir::scan(&dir))
        .await
        .map_err(|e| {
            DmError::new(&codes::LOAD_DUMP_DIR_INVALID, "scanning the dump directory").with_cause(e)
        })?
}

pub fn checkpoint_of(cfg: &SubTaskConfig) -> LoaderCheckpoint {
    LoaderCheckpoint::new(&cfg.meta_schema, &cfg.name, &cfg.source_id)
}

fn index_meta_of(cfg: &SubTaskConfig) -> IndexMeta {
    IndexMeta::new(&cfg.meta_schema, &cfg.name, &cfg.source_id)
}

/// Loads the dump in `dir` (normally `cfg.loader.dir`) into the subtask's target (see the
/// module docs), publishing progress in `status`. Returns when every data file of the allowed
/// tables is loaded; an error leaves the finished files checkpointed, and running again
/// resumes. `key` decrypts the target password when it is DM cipher text.
///
/// Errors: `LOAD_DUMP_DIR_INVALID` (no finished `metadata`, unsupported or changed files),
/// `LOAD_UNIT_*` for unreadable or unparsable files, `LOAD_DUPLICATE_ENTRY` (34902) under
/// `on-duplicate-logical: error`, `LOAD_EXECUTE_FAILED` (34901, resumable) for other target
/// errors and for connection failures lasting longer than the retry window.
pub async fn run_load(
    cfg: &SubTaskConfig,
    key: Option<&SecretKey>,
    dir: &Path,
    status: Arc<Mutex<LoadStatus>>,
) -> Result<LoadSummary, DmError> {
    let started = Instant::now();
    let dump = scan(dir).await?;
    {
        let mut st = status.lock().expect("not poisoned");
        st.meta_binlog = dump.metadata.location.position.to_string();
        st.meta_binlog_gtid = dump
            .metadata
            .location
            .gtid
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
    }
    let router = router(cfg)?;
    let ba = BaFilter::new(cfg.block_allow_list.as_ref(), cfg.case_sensitive)?;
    let mode = OnDuplicate::parse(&cfg.loader.on_duplicate());
    let opts = cfg.to.to_opts(key);
    let session = session(cfg);
    let cp = checkpoint_of(cfg);

    let mut down = Downstream::new(opts.clone(), session.clone());
    down.call(
        "creating the loader checkpoint table",
        async |c: &mut Conn| cp.ensure(c).await,
    )
    .await?;
    let marks = down
        .call("reading the loader checkpoint", async |c: &mut Conn| {
            cp.load(c).await
        })
        .await?;
    let index_meta = index_meta_of(cfg);
    let defer = cfg.loader.defer_secondary_indexes;
    if defer {
        down.call("creating the deferred-index table", async |c: &mut Conn| {
            index_meta.ensure(c).await
        })
        .await?;
    }
    let earlier = down
        .call("reading the deferred-index table", async |c: &mut Conn| {
            index_meta.rows(c).await
        })
        .await?;
    let earlier = index_meta.parse(earlier)?;
    let mut deferral = Deferral::new(index_meta.clone(), defer, earlier);
    let ctx = SchemaContext {
        source_id: &cfg.source_id,
        router: &router,
        ba: &ba,
        mode,
    };
    let tables = create_schemas(&mut down, &dump, &ctx, &mut deferral).await?;
    let pending_indexes = deferral.into_pending();
    let load_data = worker::choose_load_data(&mut down, &cfg.loader.data_statement).await?;
    let mut tables = tables;
    let mut utf8mb4_tables = 0;
    if load_data {
        let utf8mb4 = worker::utf8mb4_tables(&mut down, &tables).await?;
        for t in &mut tables {
            let yes = utf8mb4.contains(&t.target);
            utf8mb4_tables += usize::from(yes);
            t.plan = std::sync::Arc::new((*t.plan).clone().with_utf8mb4_target(yes));
        }
    }
    down.close().await;

    let mut jobs = Vec::new();
    let (mut total, mut skipped_bytes, mut skipped) = (0u64, 0u64, 0usize);
    for t in &tables {
        for f in &t.data {
            total += f.size;
            match marks.get(&f.name) {
                Some(m) if m.finished() && m.end_pos == f.size => {
                    info!(task = %cfg.name, source = %cfg.source_id, file = %f.name, "chunk already loaded, skipped");
                    skipped += 1;
                    skipped_bytes += f.size;
                    continue;
                }
                Some(m) if m.finished() => {
                    return Err(DmError::new(
                        &codes::LOAD_DUMP_DIR_INVALID,
                        format!(
                            "`{}` has {} bytes but the loader checkpoint says {} were loaded: \
                             the dump changed after loading began",
                            f.name, f.size, m.end_pos
                        ),
                    )
                    .with_workaround(
                        "Restore the original dump, or empty the target tables and delete \
                         this source's rows from the loader checkpoint table, then resume.",
                    ));
                }
                _ => {}
            }
            jobs.push(Job {
                file: f.clone(),
                schema: t.schema.clone(),
                table: t.table.clone(),
                target: format!(
                    "{}.{}",
                    crate::sql::quote_ident(&t.target.0),
                    crate::sql::quote_ident(&t.target.1)
                ),
                plan: t.plan.clone(),
            });
        }
    }
    // Largest first: the pool ends together instead of waiting on one late big file.
    jobs.sort_by_key(|j| std::cmp::Reverse(j.file.size));
    let pending: u64 = jobs.iter().map(|j| j.file.size).sum();
    {
        let mut st = status.lock().expect("not poisoned");
        st.total_bytes = total;
        st.finished_bytes = skipped_bytes;
        st.progress = progress_text(skipped_bytes, total);
        st.bps = 0;
    }
    let pool = (cfg.loader.pool_size.max(1) as usize)
        .min(jobs.len())
        .max(1);
    info!(
        task = %cfg.name, source = %cfg.source_id, dir = %dir.display(),
        files = jobs.len(), skipped, bytes = pending, total_bytes = total, pool_size = pool,
        data_statement = if load_data { "load-data" } else { "insert" }, utf8mb4_tables,
        "load started"
    );

    let files = jobs.len();
    let shared = Shared::new(
        Settings {
            task: cfg.name.clone(),
            source: cfg.source_id.clone(),
            opts,
            session,
            checkpoint: cp,
            mode,
            status,
            load_data,
        },
        jobs,
    );
    let result = load_files(&shared, pool).await;
    let worker::Loaded {
        bytes,
        rows,
        load_data_rows,
        files: loaded,
    } = shared.loaded();
    result?;
    debug_assert_eq!(loaded, files);
    let indexes_added = add_deferred(
        &AddContext {
            task: &cfg.name,
            source: &cfg.source_id,
            opts: &shared.settings.opts,
            session: &shared.settings.session,
            meta: &index_meta,
            concurrency: cfg.loader.pool_size.max(1) as usize,
        },
        &pending_indexes,
    )
    .await?;
    let seconds = started.elapsed().as_secs_f64();
    let mbps = if seconds > 0.0 {
        bytes as f64 / seconds / 1e6
    } else {
        0.0
    };
    info!(
        task = %cfg.name, source = %cfg.source_id, files = loaded, skipped, rows, load_data_rows, bytes,
        indexes_added, seconds = format!("{seconds:.2}"), mb_per_sec = format!("{mbps:.2}"),
        "load finished"
    );
    Ok(LoadSummary {
        files_loaded: loaded,
        files_skipped: skipped,
        rows,
        load_data_rows,
        bytes,
        indexes_added,
        seconds,
    })
}

/// Whether every data file of the allowed tables in `dir` is listed as loaded in the
/// subtask's loader checkpoint and no deferred index of this source is pending (for a worker
/// deciding, after a restart, whether the load unit still has work; a load whose data is in
/// but whose indexes are not then only adds them). An invalid `dir` is an error.
pub async fn load_finished(
    cfg: &SubTaskConfig,
    key: Option<&SecretKey>,
    dir: &Path,
) -> Result<bool, DmError> {
    let dump = scan(dir).await?;
    let ba = BaFilter::new(cfg.block_allow_list.as_ref(), cfg.case_sensitive)?;
    let cp = checkpoint_of(cfg);
    let index_meta = index_meta_of(cfg);
    let mut down = Downstream::new(cfg.to.to_opts(key), session(cfg));
    let marks = down
        .call("reading the loader checkpoint", async |c: &mut Conn| {
            cp.load(c).await
        })
        .await?;
    let indexes_pending = down
        .call("reading the deferred-index table", async |c: &mut Conn| {
            index_meta.has_pending(c).await
        })
        .await?;
    down.close().await;
    if indexes_pending {
        return Ok(false);
    }
    Ok(dump
        .tables
        .iter()
        .filter(|t| ba.allows(&t.schema, Some(&t.table)))
        .flat_map(|t| &t.data)
        .all(|f| {
            marks
                .get(&f.name)
                .is_some_and(|m| m.finished() && m.end_pos == f.size)
        }))
}

/// Deletes the subtask's rows from the loader checkpoint and the deferred-index table (after
/// the sync unit took over); absent tables are fine.
pub async fn clear_checkpoint(conn: &mut Conn, cfg: &SubTaskConfig) -> Result<(), DmError> {
    checkpoint_of(cfg).clear(conn).await?;
    index_meta_of(cfg).clear(conn).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_is_dm_text() {
        assert_eq!(progress_text(0, 0), "100.00 %");
        assert_eq!(progress_text(1, 3), "33.33 %");
        assert_eq!(progress_text(3, 3), "100.00 %");
    }

    #[test]
    fn status_serializes_with_dm_names() {
        // Distinct values, none a default: a field under another key or carrying another
        // field's value changes the document.
        let status = LoadStatus {
            finished_bytes: 1_111,
            total_bytes: 2_222,
            progress: "50.00 %".into(),
            meta_binlog: "(mysql-bin.000003, 1234)".into(),
            meta_binlog_gtid: "0-1-42".into(),
            bps: 333,
        };
        assert_eq!(
            serde_json::to_value(&status).unwrap(),
            serde_json::json!({
                "finished_bytes": 1_111,
                "total_bytes": 2_222,
                "progress": "50.00 %",
                "meta_binlog": "(mysql-bin.000003, 1234)",
                "meta_binlog_gtid": "0-1-42",
                "bps": 333,
            })
        );
    }
}
