//! The dump unit: a consistent, parallel logical dump of the upstream into a directory in
//! dumpling's layout. Plain async logic; the subtask runner calls [`run_dump`].
//!
//! # Steps
//!
//! 1. The directory: the files of an earlier dump (`metadata`, `*.sql`, `*.tmp`, the owner
//!    file), finished or not, are removed, and the new dump's owner file ([`owner`]) is
//!    written. Whether a finished dump may be loaded instead of dumping again is the caller's
//!    decision ([`owner::check`]): only the run that made it may.
//! 2. A control connection lists the schemas, base tables and views the block-allow-list
//!    selects ([`catalog`]; system schemas never) and `threads` dump connections are opened
//!    and configured (`utf8mb4`, `time_zone = '+00:00'`, `sql_mode = ''`, REPEATABLE READ).
//! 3. The consistency point ([`consistency`]): every dump connection starts a
//!    `WITH CONSISTENT SNAPSHOT` transaction and the binlog location of that point is read.
//!    - `flush` (and `auto`): under `FLUSH TABLES WITH READ LOCK`, held only for the snapshot
//!      starts and `SHOW MASTER STATUS`: every snapshot is exactly at `location`.
//!    - `lock`: the same under `LOCK TABLES … READ` of the dumped tables.
//!    - `none`: no lock; `location` is read before the snapshots start and `after` once all
//!      have: each snapshot is between the two, so replaying from `location` in safe mode up
//!      to `after` converges.
//!    - `snapshot` is TiDB's and refused (code 32001).
//! 4. `metadata` is written without `Finished dump at` (`DumpMetadata::write`).
//! 5. On the first dump connection, inside its snapshot: columns, split keys and
//!    `SHOW CREATE TABLE` of every table; `<db>-schema-create.sql`, `<db>.<tbl>-schema.sql`
//!    and `<db>.<view>-schema-view.sql` (views: only the `CREATE VIEW`, no placeholder
//!    table) are written; tables with an integer key are cut into key ranges ([`chunk`]).
//! 6. The `threads` connections take chunks from one queue; each chunk becomes data files
//!    `<db>.<tbl>.<NNNNNNNNN>.sql` of multi-row INSERTs ([`writer`], which also describes the
//!    literals, the file headers and the name escaping). Every file is written as `<name>.tmp`
//!    and renamed when complete, so a crash never leaves a partial file under a final name.
//! 7. `metadata` is rewritten with `Finished dump at`: only then is the dump complete.
//!
//! A failure anywhere fails the dump (a lost connection also loses its snapshot, so a chunk
//! cannot be retried on its own); the next run starts over. Only connecting is retried.
//! Of the mydumper `extra-args` only `--consistency` is read.

pub mod catalog;
pub mod chunk;
pub mod consistency;
pub mod metadata;
pub mod owner;
pub mod writer;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use futures_util::future::try_join_all;
use mysql_async::Conn;
use mysql_async::prelude::*;
use serde::Serialize;
use tokio::task::JoinSet;
use tracing::{Instrument, info, info_span};

use self::catalog::{TableDesc, TableRef, describe, list_objects, text, view_sql};
use self::chunk::{Chunk, KeyRange, effective_rows, plan_ranges, where_sql};
use self::consistency::{Consistency, connect, dump_session_sql, establish};
use self::metadata::DumpMetadata;
use self::writer::{
    ChunkWriter, Limits, Written, push_literal, schema_create_file, table_schema_file,
    view_schema_file, write_whole,
};
use crate::binlog::stream::Flavor;
use crate::binlog::value::utc_fields;
use crate::config::SecretKey;
use crate::config::size::parse_size;
use crate::config::subtask::SubTaskConfig;
use crate::config::task::MydumperConfig;
use crate::error::{DmError, codes};
use crate::sql::filter::BaFilter;

/// Statement size when `statement-size` is 0.
pub const DEFAULT_STATEMENT_SIZE: usize = 1 << 20;

/// The dump unit's progress, with DM's `query-status` names.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DumpStatus {
    /// Base tables being dumped.
    pub total_tables: u64,
    /// Tables whose every chunk is written.
    pub completed_tables: u64,
    /// Bytes written to data files.
    pub finished_bytes: u64,
    /// Rows written to data files.
    pub finished_rows: u64,
    /// Sum of `information_schema.TABLES.TABLE_ROWS` of the dumped tables.
    pub estimate_total_rows: u64,
    /// Data bytes per second since the dump started.
    pub bps: u64,
    /// `finished_rows / estimate_total_rows` as `"42.10 %"` (capped at 100 until done).
    pub progress: String,
}

/// `"42.10 %"`.
fn progress_text(rows: u64, estimate: u64) -> String {
    let p = if estimate == 0 {
        0.0
    } else {
        (rows as f64 * 100.0 / estimate as f64).min(100.0)
    };
    format!("{p:.2} %")
}

/// Dumps the upstream of `cfg` into `dir` as the dump `owner` and returns the finished
/// `metadata`; see the module docs. `key` decrypts the upstream password; `status` is updated
/// as chunks finish.
pub async fn run_dump(
    cfg: &SubTaskConfig,
    key: Option<&SecretKey>,
    dir: &Path,
    owner: &owner::DumpOwner,
    status: Arc<Mutex<DumpStatus>>,
) -> Result<DumpMetadata, DmError> {
    let span = info_span!("dump", task = %cfg.name, source = %cfg.source_id, unit = "dump", dump_id = %owner.dump_id);
    dump(cfg, key, dir, owner, status).instrument(span).await
}

fn lock(status: &Mutex<DumpStatus>) -> std::sync::MutexGuard<'_, DumpStatus> {
    status.lock().unwrap_or_else(|p| p.into_inner())
}

/// `YYYY-MM-DD HH:MM:SS` in UTC.
fn now_text() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (y, mo, d, h, mi, s) = utc_fields(secs);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
}

/// The file size limits of `cfg`.
fn limits(cfg: &MydumperConfig) -> Result<Limits, DmError> {
    let file_size = parse_size(&cfg.chunk_filesize, 1 << 20).map_err(|e| {
        DmError::new(
            &codes::DUMP_UNIT_RUNTIME,
            format!("mydumper chunk-filesize: {e}"),
        )
    })?;
    let statement_size = match cfg.statement_size {
        0 => DEFAULT_STATEMENT_SIZE,
        n => usize::try_from(n).unwrap_or(usize::MAX),
    };
    Ok(Limits {
        statement_size,
        file_size,
    })
}

/// Creates `dir` and removes the files of any earlier dump there (finished or not).
fn prepare_dir(dir: &Path) -> Result<(), DmError> {
    let fail = |what: &str, p: &Path, e: std::io::Error| {
        DmError::new(&codes::DUMP_WRITE_FILE, format!("{what} `{}`", p.display())).with_cause(e)
    };
    std::fs::create_dir_all(dir).map_err(|e| fail("creating", dir, e))?;
    let mut removed = 0;
    for entry in std::fs::read_dir(dir).map_err(|e| fail("reading", dir, e))? {
        let entry = entry.map_err(|e| fail("reading", dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = name == "metadata"
            || name == owner::OWNER_FILE
            || name.ends_with(".sql")
            || name.ends_with(".tmp");
        if ours && entry.file_type().is_ok_and(|t| t.is_file()) {
            std::fs::remove_file(entry.path()).map_err(|e| fail("removing", &entry.path(), e))?;
            removed += 1;
        }
    }
    if removed > 0 {
        info!(dir = %dir.display(), files = removed, "removed an earlier dump");
    }
    Ok(())
}

async fn dump(
    cfg: &SubTaskConfig,
    key: Option<&SecretKey>,
    dir: &Path,
    owner: &owner::DumpOwner,
    status: Arc<Mutex<DumpStatus>>,
) -> Result<DumpMetadata, DmError> {
    let from = cfg.from.as_ref().ok_or_else(|| {
        DmError::new(
            &codes::DUMP_UNIT_RUNTIME,
            "the subtask has no upstream (`from`) to dump",
        )
    })?;
    prepare_dir(dir)?;
    owner.write(dir)?;
    let limits = limits(&cfg.mydumper)?;
    let filter = BaFilter::new(cfg.block_allow_list.as_ref(), cfg.case_sensitive)?;
    let started = now_text();
    let clock = Instant::now();
    let opts = from.to_opts(key);
    let mut setup = from.session_sql();
    setup.extend(dump_session_sql());

    let mut ctrl = connect(&opts, &setup).await?;
    let version: String = ctrl
        .query_first("SELECT VERSION()")
        .await
        .map_err(|e| {
            DmError::new(&codes::DUMP_UNIT_RUNTIME, "reading the upstream version").with_cause(e)
        })?
        .unwrap_or_default();
    let mode = Consistency::parse(
        &cfg.mydumper.consistency(),
        version.to_ascii_lowercase().contains("tidb"),
    )?;
    let flavor = Flavor::from_config(&cfg.flavor).unwrap_or(
        if version.to_ascii_lowercase().contains("mariadb") {
            Flavor::MariaDb
        } else {
            Flavor::MySql
        },
    );
    let objects = list_objects(&mut ctrl, &filter).await?;
    let threads = cfg.mydumper.threads.max(1) as usize;
    {
        let mut s = lock(&status);
        *s = DumpStatus {
            total_tables: objects.tables.len() as u64,
            estimate_total_rows: objects.tables.iter().map(|t| t.rows_estimate).sum(),
            progress: progress_text(0, 0),
            ..DumpStatus::default()
        };
    }
    info!(
        consistency = mode.as_str(),
        threads,
        schemas = objects.schemas.len(),
        tables = objects.tables.len(),
        views = objects.views.len(),
        dir = %dir.display(),
        "dump starting"
    );

    let conns = try_join_all((0..threads).map(|_| connect(&opts, &setup))).await?;
    let snap = establish(&mut ctrl, conns, mode, flavor, &objects.tables, &from.user).await?;
    let _ = ctrl.disconnect().await;
    let mut meta = DumpMetadata {
        started,
        location: snap.location.clone(),
        after: snap.after.clone(),
        finished: None,
    };
    meta.write(dir)?;
    let mut conns = snap.conns;

    let descs = describe(&mut conns[0], &objects.tables).await?;
    for s in &objects.schemas {
        write_whole(dir, &schema_create_file(&s.name), &s.create_sql()).await?;
    }
    for (t, d) in objects.tables.iter().zip(&descs) {
        let text = format!("{};\n", d.create_sql);
        write_whole(dir, &table_schema_file(&t.schema, &t.name), &text).await?;
    }
    for (s, v) in &objects.views {
        if let Some(sql) = view_sql(&mut conns[0], s, v).await? {
            write_whole(dir, &view_schema_file(s, v), &format!("{sql};\n")).await?;
        }
    }
    let chunks = plan_chunks(
        &mut conns[0],
        &objects.tables,
        &descs,
        &cfg.mydumper,
        limits,
    )
    .await?;
    let chunk_count = chunks.len();

    let mut left: Vec<AtomicUsize> = objects.tables.iter().map(|_| AtomicUsize::new(0)).collect();
    for c in &chunks {
        *left[c.table].get_mut() += 1;
    }
    let shared = Arc::new(Shared {
        dir: dir.to_path_buf(),
        limits,
        user_where: cfg.mydumper.where_clause.clone(),
        tables: objects.tables.into_iter().zip(descs).collect(),
        queue: Mutex::new(chunks.into()),
        left,
        status: status.clone(),
        clock,
    });
    let mut workers = JoinSet::new();
    for conn in conns {
        workers.spawn(worker(conn, shared.clone()).in_current_span());
    }
    while let Some(res) = workers.join_next().await {
        match res {
            Ok(Ok(())) => {}
            // Dropping `workers` aborts the others (and their connections, snapshots).
            Ok(Err(e)) => return Err(e),
            Err(e) => {
                return Err(
                    DmError::new(&codes::DUMP_UNIT_RUNTIME, "a dump worker failed").with_cause(e),
                );
            }
        }
    }

    meta.finished = Some(now_text());
    meta.write(dir)?;
    let secs = clock.elapsed().as_secs_f64();
    let (rows, bytes) = {
        let mut s = lock(&status);
        s.progress = progress_text(1, 1);
        s.completed_tables = s.total_tables;
        s.bps = (s.finished_bytes as f64 / secs.max(1e-9)) as u64;
        (s.finished_rows, s.finished_bytes)
    };
    info!(
        rows,
        bytes,
        chunks = chunk_count,
        secs,
        rows_per_sec = rows as f64 / secs.max(1e-9),
        mb_per_sec = bytes as f64 / 1e6 / secs.max(1e-9),
        lock_held_ms = snap.lock_held.as_secs_f64() * 1e3,
        location = %meta.location,
        "dump finished"
    );
    Ok(meta)
}

/// Cuts every table into chunks (`MIN`/`MAX` of split keys read on `conn`, in its snapshot),
/// largest tables first.
async fn plan_chunks(
    conn: &mut Conn,
    tables: &[TableRef],
    descs: &[TableDesc],
    cfg: &MydumperConfig,
    limits: Limits,
) -> Result<Vec<Chunk>, DmError> {
    let mut order: Vec<usize> = (0..tables.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(tables[i].rows_estimate));
    let mut chunks = Vec::new();
    for i in order {
        let (t, d) = (&tables[i], &descs[i]);
        let ranges = match &d.split_key {
            Some(k) => {
                let sql = format!(
                    "SELECT MIN({k}), MAX({k}) FROM {}{}",
                    t.qualified(),
                    where_sql(&cfg.where_clause, None, KeyRange::ALL),
                    k = crate::sql::quote_ident(k)
                );
                let row: Option<mysql_async::Row> = conn.query_first(&sql).await.map_err(|e| {
                    DmError::new(&codes::DUMP_TABLE_FAILED, format!("`{sql}`")).with_cause(e)
                })?;
                let bound = |i| {
                    row.as_ref()
                        .and_then(|r| text(r, i))
                        .and_then(|s| s.parse::<i128>().ok())
                };
                match (bound(0), bound(1)) {
                    (Some(min), Some(max)) => plan_ranges(
                        min,
                        max,
                        t.rows_estimate,
                        effective_rows(cfg.rows_per_chunk(), t.avg_row_length, limits.file_size),
                    ),
                    _ => vec![KeyRange::ALL],
                }
            }
            None => vec![KeyRange::ALL],
        };
        let split = ranges.len() > 1;
        chunks.extend(ranges.into_iter().enumerate().map(|(n, range)| Chunk {
            table: i,
            index: n as u64,
            split,
            range,
        }));
    }
    Ok(chunks)
}

/// What the workers share.
struct Shared {
    dir: PathBuf,
    limits: Limits,
    user_where: String,
    tables: Vec<(TableRef, TableDesc)>,
    queue: Mutex<VecDeque<Chunk>>,
    /// Chunks not yet written, per table.
    left: Vec<AtomicUsize>,
    status: Arc<Mutex<DumpStatus>>,
    clock: Instant,
}

impl Shared {
    fn next(&self) -> Option<Chunk> {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
    }

    fn progress(&self, w: Written, table_done: bool) {
        let mut s = lock(&self.status);
        s.finished_bytes += w.bytes;
        s.finished_rows += w.rows;
        if table_done {
            s.completed_tables += 1;
        }
        let secs = self.clock.elapsed().as_secs_f64();
        s.bps = (s.finished_bytes as f64 / secs.max(1e-9)) as u64;
        s.progress = progress_text(s.finished_rows, s.estimate_total_rows);
    }
}

/// One dump connection: takes chunks until none are left, then ends its transaction.
async fn worker(mut conn: Conn, shared: Arc<Shared>) -> Result<(), DmError> {
    while let Some(chunk) = shared.next() {
        let last = dump_chunk(&mut conn, &shared, &chunk).await?;
        let done = shared.left[chunk.table].fetch_sub(1, Ordering::AcqRel) == 1;
        shared.progress(last, done);
    }
    let _ = conn.query_drop("COMMIT").await;
    let _ = conn.disconnect().await;
    Ok(())
}

/// Writes one chunk; returns what its last statement added (earlier ones are reported as
/// they are written).
async fn dump_chunk(conn: &mut Conn, shared: &Shared, chunk: &Chunk) -> Result<Written, DmError> {
    let (t, d) = &shared.tables[chunk.table];
    if d.columns.is_empty() {
        return Ok(Written::default());
    }
    let key = if chunk.split {
        d.split_key.as_deref()
    } else {
        None
    };
    let select: Vec<&str> = d.columns.iter().map(|c| c.select.as_str()).collect();
    let sql = format!(
        "SELECT {} FROM {}{}",
        select.join(","),
        t.qualified(),
        where_sql(&shared.user_where, key, chunk.range)
    );
    let read_err = |e: mysql_async::Error| {
        DmError::new(
            &codes::DUMP_TABLE_FAILED,
            format!("reading chunk {} of {}", chunk.index, t.qualified()),
        )
        .with_cause(e)
    };
    let quoted: Vec<String> = d.columns.iter().map(|c| c.quoted.clone()).collect();
    let mut w = ChunkWriter::new(
        &shared.dir,
        &t.schema,
        &t.name,
        chunk.index,
        chunk.split,
        &quoted,
        shared.limits,
    );
    let mut result = conn.query_iter(sql).await.map_err(read_err)?;
    while let Some(row) = result.next().await.map_err(read_err)? {
        let buf = w.row();
        for (i, c) in d.columns.iter().enumerate() {
            if i > 0 {
                buf.push(',');
            }
            match row.as_ref(i) {
                Some(v) => push_literal(buf, c.kind, v),
                None => buf.push_str("NULL"),
            }
        }
        if let Some(x) = w.push_row().await? {
            shared.progress(x, false);
        }
    }
    drop(result);
    w.finish().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_is_capped_percent() {
        assert_eq!(progress_text(421, 1000), "42.10 %");
        assert_eq!(progress_text(5, 0), "0.00 %");
        assert_eq!(progress_text(2000, 1000), "100.00 %");
    }

    #[test]
    fn limits_from_config() {
        let mut c = MydumperConfig::default();
        assert_eq!(
            limits(&c).unwrap(),
            Limits {
                statement_size: DEFAULT_STATEMENT_SIZE,
                file_size: 64 << 20
            }
        );
        c.chunk_filesize = "100KiB".into();
        c.statement_size = 5000;
        assert_eq!(
            limits(&c).unwrap(),
            Limits {
                statement_size: 5000,
                file_size: 100 << 10
            }
        );
        c.chunk_filesize = "lots".into();
        assert_eq!(limits(&c).unwrap_err().code, 32001);
    }

    #[test]
    fn dir_is_reset_finished_or_not() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("dump");
        prepare_dir(&d).unwrap();
        let left = |d: &Path| {
            let mut v: Vec<String> = std::fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            v.sort();
            v
        };
        let mut m = DumpMetadata {
            started: now_text(),
            location: crate::binlog::location::Location::at(
                crate::binlog::location::Position::new("mysql-bin.000001", 4),
            ),
            after: None,
            finished: None,
        };
        for finished in [None, Some(now_text())] {
            std::fs::write(d.join("a.t.000000000.sql"), "x").unwrap();
            std::fs::write(d.join("a.t.000000001.sql.tmp"), "x").unwrap();
            std::fs::write(d.join("keep.txt"), "x").unwrap();
            owner::DumpOwner::fresh("t", "s", "u".into())
                .write(&d)
                .unwrap();
            m.finished = finished;
            m.write(&d).unwrap();
            prepare_dir(&d).unwrap();
            assert_eq!(left(&d), vec!["keep.txt"]);
        }
        assert_eq!(now_text().len(), 19);
    }
}
