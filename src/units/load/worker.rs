//! Target connections of the load unit: [`Downstream`] (one connection that reconnects, for
//! the schema phase and the checkpoint) and [`load_files`] (the parallel data phase).
//!
//! A data file is one transaction: `BEGIN`, its statements in requests of about
//! [`REQUEST_BYTES`], then its checkpoint row and `COMMIT` in the last query. A reader thread
//! (`spawn_blocking`) splits and rewrites the file while the connection executes, at most two
//! requests ahead, so memory stays bounded whatever the file's size.
//!
//! Failures: connection errors ([`is_connection_error`]) reconnect with backoff for up to
//! [`crate::db::RETRY_WINDOW`] and load the file again: the dead connection's transaction is rolled back
//! by the server, unless the connection died while the final `...; COMMIT` was in flight. Then
//! the old connection is killed and a locking read of the file's checkpoint row tells whether
//! the commit landed. Deadlocks and lock wait timeouts retry the file the same way. Other
//! server errors stop the unit with `LOAD_EXECUTE_FAILED` (or `LOAD_DUPLICATE_ENTRY` for 1062
//! under `on-duplicate-logical: error`); workers finish the file in hand and take no new one.

use std::collections::VecDeque;
use std::io::BufRead;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use mysql_async::prelude::*;
use mysql_async::{Conn, Opts};
use tracing::{info, warn};

use super::checkpoint::LoaderCheckpoint;
use super::downstream::{Downstream, Retry, connect};
use super::files::DataFile;
use super::insert::{InsertPlan, LoadScratch, OnDuplicate, REQUEST_BYTES, Request, RequestWriter};
use super::split::{Splitter, StatementKind, classify};
use super::status::{LoadStatus, progress_text};
use crate::db::errno::{ER_DUP_ENTRY, ER_LOCK_DEADLOCK, ER_LOCK_WAIT_TIMEOUT};
use crate::db::{self, is_connection_error};
use crate::error::{DmError, codes};

/// One data file to load.
#[derive(Debug, Clone)]
pub struct Job {
    pub file: DataFile,
    /// Upstream schema and table, for the checkpoint row.
    pub schema: String,
    pub table: String,
    /// Target `schema`.`table`, for messages.
    pub target: String,
    pub plan: Arc<InsertPlan>,
}

/// The fixed settings of one load's data phase. (No `Debug`: the options hold the password.)
pub struct Settings {
    pub task: String,
    pub source: String,
    /// Target connection options.
    pub opts: Opts,
    /// Statements every connection runs first (and again after a file with SETs).
    pub session: Vec<String>,
    pub checkpoint: LoaderCheckpoint,
    pub mode: OnDuplicate,
    pub status: Arc<Mutex<LoadStatus>>,
    /// Rows go as `LOAD DATA LOCAL INFILE` where the dump's values allow it (else INSERT).
    pub load_data: bool,
}

/// What every worker of one load shares: the settings, the queue of files and the counts.
pub struct Shared {
    pub settings: Settings,
    started: Instant,
    queue: Mutex<VecDeque<Job>>,
    stop: AtomicBool,
    loaded: Mutex<Loaded>,
}

/// What one run has loaded so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Loaded {
    pub bytes: u64,
    pub rows: u64,
    /// Of `rows`, those sent by LOAD DATA.
    pub load_data_rows: u64,
    pub files: usize,
}

impl Shared {
    /// Shared state for loading `jobs` in order.
    pub fn new(settings: Settings, jobs: Vec<Job>) -> Self {
        Self {
            settings,
            started: Instant::now(),
            queue: Mutex::new(jobs.into()),
            stop: AtomicBool::new(false),
            loaded: Mutex::new(Loaded::default()),
        }
    }

    /// What this run has loaded so far.
    pub fn loaded(&self) -> Loaded {
        *self.loaded.lock().expect("not poisoned")
    }

    fn next_job(&self) -> Option<Job> {
        if self.stop.load(Ordering::Relaxed) {
            return None;
        }
        self.queue.lock().expect("not poisoned").pop_front()
    }

    fn file_done(&self, job: &Job, rows: u64, load_data_rows: u64) {
        let bytes = {
            let mut l = self.loaded.lock().expect("not poisoned");
            l.bytes += job.file.size;
            l.rows += rows;
            l.load_data_rows += load_data_rows;
            l.files += 1;
            l.bytes
        };
        let secs = self.started.elapsed().as_secs_f64();
        let mut st = self.settings.status.lock().expect("not poisoned");
        st.finished_bytes += job.file.size;
        st.progress = progress_text(st.finished_bytes, st.total_bytes);
        st.bps = if secs > 0.0 {
            (bytes as f64 / secs) as u64
        } else {
            0
        };
    }
}

/// Runs `workers` connections over the shared queue until it is empty or a file fails; the
/// first error is returned after every worker has stopped.
pub async fn load_files(shared: &Shared, workers: usize) -> Result<(), DmError> {
    let results = futures_util::future::join_all((0..workers).map(|i| worker(shared, i))).await;
    results.into_iter().collect()
}

async fn worker(shared: &Shared, index: usize) -> Result<(), DmError> {
    let mut conn: Option<Conn> = None;
    let mut result = Ok(());
    while let Some(job) = shared.next_job() {
        match load_with_retry(shared, &mut conn, &job).await {
            Ok((rows, load_data_rows)) => {
                info!(task = %shared.settings.task, source = %shared.settings.source, worker = index, file = %job.file.name, rows, load_data_rows, bytes = job.file.size, "chunk loaded");
                shared.file_done(&job, rows, load_data_rows);
            }
            Err(e) => {
                shared.stop.store(true, Ordering::Relaxed);
                warn!(task = %shared.settings.task, source = %shared.settings.source, worker = index, file = %job.file.name, error = %e.chain(), "loading a chunk failed");
                result = Err(e);
                break;
            }
        }
    }
    if let Some(c) = conn {
        let _ = c.disconnect().await;
    }
    result
}

/// How one attempt at a file failed.
enum Failure {
    Connection(mysql_async::Error),
    Retry(mysql_async::Error),
    Fatal(DmError),
}

/// Progress of one attempt.
#[derive(Default)]
struct Attempt {
    rows: u64,
    /// Of `rows`, those sent by LOAD DATA.
    load_data_rows: u64,
    commit_sent: bool,
    session_changed: bool,
}

fn classify_error(e: mysql_async::Error, job: &Job, mode: OnDuplicate) -> Failure {
    if is_connection_error(&e) {
        return Failure::Connection(e);
    }
    match &e {
        mysql_async::Error::Server(s)
            if matches!(s.code, ER_LOCK_DEADLOCK | ER_LOCK_WAIT_TIMEOUT) =>
        {
            Failure::Retry(e)
        }
        mysql_async::Error::Server(s) if s.code == ER_DUP_ENTRY && mode == OnDuplicate::Error => {
            Failure::Fatal(
                DmError::new(
                    &codes::LOAD_DUPLICATE_ENTRY,
                    format!(
                        "duplicate entry loading `{}` into {}",
                        job.file.name, job.target
                    ),
                )
                .with_cause(e),
            )
        }
        _ => Failure::Fatal(db::error(
            &codes::LOAD_EXECUTE_FAILED,
            format!("loading `{}` into {} failed", job.file.name, job.target),
            e,
        )),
    }
}

/// Loads one file, retrying connection failures; returns its row count and how many of those
/// went by LOAD DATA.
async fn load_with_retry(
    shared: &Shared,
    conn: &mut Option<Conn>,
    job: &Job,
) -> Result<(u64, u64), DmError> {
    let mut retry = Retry::new();
    // Set when a connection died with the file's COMMIT in flight: (old connection id, rows,
    // rows by LOAD DATA).
    let mut verify: Option<(u32, u64, u64)> = None;
    let what = format!("loading `{}`", job.file.name);
    loop {
        let c = match conn {
            Some(c) => c,
            None => match connect(&shared.settings.opts, &shared.settings.session).await {
                Ok(c) => conn.insert(c),
                Err(e) if is_connection_error(&e) => {
                    retry.wait(&e, &what).await?;
                    continue;
                }
                Err(e) => {
                    return Err(db::error(
                        &codes::LOAD_EXECUTE_FAILED,
                        format!("{what}: cannot open a target session"),
                        e,
                    ));
                }
            },
        };
        if let Some((old, rows, by_load)) = verify {
            // Make sure the old session is gone, then read the row it may have committed.
            let _ = c.query_drop(format!("KILL CONNECTION {old}")).await;
            match shared
                .settings
                .checkpoint
                .committed(c, &job.file.name, job.file.size)
                .await
            {
                Ok(true) => return Ok((rows, by_load)),
                Ok(false) => verify = None,
                Err(e) => {
                    if let Some(c) = conn.take() {
                        let _ = c.disconnect().await;
                    }
                    if is_connection_error(&e) {
                        retry.wait(&e, &what).await?;
                        continue;
                    }
                    return Err(DmError::new(
                        &codes::LOAD_EXECUTE_FAILED,
                        format!("{what}: cannot read its checkpoint row"),
                    )
                    .with_cause(e));
                }
            }
        }
        let mut att = Attempt::default();
        let res = load_once(c, job, shared, &mut att).await;
        let id = c.id();
        match res {
            Ok(()) => {
                if att.session_changed {
                    // The dump's SETs (SET NAMES binary, ...) must not leak into the next file.
                    for s in &shared.settings.session {
                        if c.query_drop(s).await.is_err() {
                            if let Some(c) = conn.take() {
                                let _ = c.disconnect().await;
                            }
                            break;
                        }
                    }
                }
                retry.succeeded();
                return Ok((att.rows, att.load_data_rows));
            }
            Err(failure) => {
                // A fresh session for the next attempt: the server rolls the transaction back.
                if let Some(c) = conn.take() {
                    let _ = c.disconnect().await;
                }
                match failure {
                    Failure::Fatal(e) => return Err(e),
                    Failure::Connection(e) => {
                        if att.commit_sent {
                            verify = Some((id, att.rows, att.load_data_rows));
                        }
                        retry.wait(&e, &what).await?;
                    }
                    Failure::Retry(e) => {
                        retry.wait(&e, &what).await?;
                    }
                }
            }
        }
    }
}

/// One attempt: the file's statements and its checkpoint row in one transaction.
async fn load_once(
    conn: &mut Conn,
    job: &Job,
    shared: &Shared,
    att: &mut Attempt,
) -> Result<(), Failure> {
    let fail = |e| classify_error(e, job, shared.settings.mode);
    conn.query_drop("BEGIN").await.map_err(fail)?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Request>(2);
    let path = job.file.path.clone();
    let plan = job.plan.clone();
    let load_data = shared.settings.load_data;
    let reader = tokio::task::spawn_blocking(move || {
        let mut sink = |r: Request| tx.blocking_send(r).is_ok();
        read_data_file(&path, &plan, REQUEST_BYTES, load_data, &mut sink)
    });
    while let Some(req) = rx.recv().await {
        att.session_changed |= req.sets_session;
        match req.data {
            Some(data) => {
                conn.set_infile_handler(infile(data));
                conn.query_drop(&req.sql).await.map_err(fail)?;
                if shared.settings.mode == OnDuplicate::Error && conn.affected_rows() < req.rows {
                    return Err(skipped_rows(conn, job, req.rows).await);
                }
                att.load_data_rows += req.rows;
            }
            None => conn.query_drop(&req.sql).await.map_err(fail)?,
        }
        att.rows += req.rows;
    }
    reader
        .await
        .map_err(|e| {
            Failure::Fatal(
                DmError::new(&codes::LOAD_UNIT_READ_SCHEMA_FILE, "the file reader failed")
                    .with_cause(e),
            )
        })?
        .map_err(Failure::Fatal)?;
    att.commit_sent = true;
    let finish = shared.settings.checkpoint.finish_sql(
        &job.file.name,
        &job.schema,
        &job.table,
        job.file.size,
    );
    conn.query_drop(format!("{finish};\nCOMMIT"))
        .await
        .map_err(fail)?;
    Ok(())
}

/// The text a `LOAD DATA LOCAL INFILE` request reads, in packets of at most 1 MiB.
fn infile(
    data: Vec<u8>,
) -> impl Future<Output = mysql_async::Result<mysql_async::InfileData>> + Send + Sync + 'static {
    const PACKET: usize = 1 << 20;
    async move {
        let data = bytes::Bytes::from(data);
        let chunks: Vec<std::io::Result<bytes::Bytes>> = (0..data.len())
            .step_by(PACKET)
            .map(|i| Ok(data.slice(i..(i + PACKET).min(data.len()))))
            .collect();
        Ok(Box::pin(futures_util::stream::iter(chunks)) as mysql_async::InfileData)
    }
}

/// Whether the data phase uses `LOAD DATA LOCAL INFILE` (`loader.data-statement`): `insert`
/// never, `load-data` always, `auto` (or empty) when the target is not TiDB (whose LOAD DATA
/// may commit in batches of its own) and has `local_infile` on.
pub async fn choose_load_data(down: &mut Downstream, setting: &str) -> Result<bool, DmError> {
    match setting {
        "insert" => return Ok(false),
        "load-data" => return Ok(true),
        _ => {}
    }
    let probe = down
        .call(
            "reading the target's version and local_infile",
            async |c: &mut Conn| {
                match c
                    .query_first::<(String, Option<String>), _>(
                        "SELECT VERSION(), CAST(@@GLOBAL.local_infile AS CHAR)",
                    )
                    .await
                {
                    Ok(r) => Ok(r),
                    // No such variable (TiDB, other servers): INSERT.
                    Err(mysql_async::Error::Server(_)) => Ok(None),
                    Err(e) => Err(e),
                }
            },
        )
        .await?;
    Ok(match probe {
        Some((version, Some(on))) => {
            !version.to_ascii_lowercase().contains("tidb")
                && (on == "1" || on.eq_ignore_ascii_case("on"))
        }
        _ => false,
    })
}

/// The target tables among `tables` whose text columns are all utf8mb4, by their names in
/// information_schema (one query per target schema). A name the server spells otherwise
/// (`lower_case_table_names`) is simply not in the set: such a table is not treated as utf8mb4.
pub async fn utf8mb4_tables(
    down: &mut Downstream,
    tables: &[super::schema::TableLoad],
) -> Result<std::collections::HashSet<(String, String)>, DmError> {
    let schemas: std::collections::BTreeSet<&str> =
        tables.iter().map(|t| t.target.0.as_str()).collect();
    let mut out = std::collections::HashSet::new();
    for schema in schemas {
        let names: Vec<String> = down
            .call(
                "reading the target tables' character sets",
                async |c: &mut Conn| {
                    c.exec(
                        "SELECT TABLE_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? \
                     GROUP BY TABLE_NAME HAVING SUM(CHARACTER_SET_NAME IS NOT NULL \
                     AND CHARACTER_SET_NAME <> 'utf8mb4') = 0",
                        (schema,),
                    )
                    .await
                },
            )
            .await?;
        out.extend(names.into_iter().map(|t| (schema.to_string(), t)));
    }
    Ok(out)
}

/// The failure of a LOAD DATA under `on-duplicate-logical: error` that inserted fewer rows
/// than it read (LOAD DATA LOCAL skips a duplicate with a warning instead of failing): the
/// server's warnings say why.
async fn skipped_rows(conn: &mut Conn, job: &Job, sent: u64) -> Failure {
    let inserted = conn.affected_rows();
    let warnings: Vec<(String, u16, String)> = match conn.query("SHOW WARNINGS LIMIT 3").await {
        Ok(w) => w,
        Err(e) => return classify_error(e, job, OnDuplicate::Error),
    };
    let text = warnings
        .iter()
        .map(|(level, code, msg)| format!("{level} {code}: {msg}"))
        .collect::<Vec<_>>()
        .join("; ");
    let code = if warnings.iter().any(|w| w.1 == ER_DUP_ENTRY) {
        &codes::LOAD_DUPLICATE_ENTRY
    } else {
        &codes::LOAD_EXECUTE_FAILED
    };
    Failure::Fatal(DmError::new(
        code,
        format!(
            "loading `{}` into {}: {} of {sent} rows inserted ({text})",
            job.file.name, job.target, inserted
        ),
    ))
}

/// Reads a data file statement by statement and hands rewritten requests to `sink`; returns
/// the row count. With `load_data`, INSERTs become LOAD DATA requests where their values
/// allow it ([`InsertPlan::render_load`]). Stops early (without error) when `sink` returns
/// `false`.
pub fn read_data_file(
    path: &Path,
    plan: &InsertPlan,
    limit: usize,
    load_data: bool,
    sink: &mut dyn FnMut(Request) -> bool,
) -> Result<u64, DmError> {
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let read_err = |e: std::io::Error| {
        DmError::new(
            &codes::LOAD_UNIT_READ_SCHEMA_FILE,
            format!("reading `{}`", path.display()),
        )
        .with_cause(e)
    };
    let parse_err = |offset: u64, msg: String| {
        DmError::new(
            &codes::LOAD_UNIT_PARSE_STATEMENT,
            format!("`{name}`, statement at byte {offset}: {msg}"),
        )
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut reader = std::io::BufReader::with_capacity(256 << 10, file);
    let mut splitter = Splitter::new();
    let mut writer = RequestWriter::new(limit, sink);
    let mut stmts = Vec::new();
    let mut rows = 0u64;
    let mut done = false;
    // The load session's `SET NAMES utf8mb4` until the file sets another.
    let mut charset = String::from("utf8mb4");
    let mut scratch = LoadScratch::default();
    while !done && writer.is_open() {
        let block = reader.fill_buf().map_err(read_err)?;
        if block.is_empty() {
            done = true;
            stmts.extend(
                std::mem::take(&mut splitter)
                    .finish()
                    .map_err(|m| parse_err(0, m))?,
            );
        } else {
            splitter.feed(block, &mut stmts);
            let n = block.len();
            reader.consume(n);
        }
        for st in stmts.drain(..) {
            match classify(&st.text) {
                StatementKind::Insert => {
                    let loaded = if load_data {
                        plan.render_load(&st.text, &charset, &mut scratch, &mut writer)
                            .map_err(|m| parse_err(st.offset, m))?
                    } else {
                        None
                    };
                    rows += match loaded {
                        Some(n) => n,
                        None => plan
                            .render(&st.text, &mut writer)
                            .map_err(|m| parse_err(st.offset, m))?,
                    };
                }
                StatementKind::Set => {
                    if let Some(cs) = super::tsv::set_names(&st.text) {
                        charset = cs;
                    }
                    writer.session(&st.text);
                }
                StatementKind::Skip => {}
                StatementKind::Other => {
                    let head: String =
                        String::from_utf8_lossy(&st.text[..st.text.len().min(60)]).into_owned();
                    return Err(parse_err(
                        st.offset,
                        format!("`{head}` is not an INSERT or SET statement"),
                    ));
                }
            }
        }
    }
    writer.flush();
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_data_file_into_requests() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.t.000000001.sql");
        let mut text = String::from("/*!40101 SET NAMES binary*/;\n");
        for chunk in 0..3 {
            text.push_str("INSERT INTO `t` (`a`,`b`) VALUES\n");
            let rows: Vec<String> = (0..50)
                .map(|i| format!("({},'semi;\nline {chunk}')", chunk * 50 + i))
                .collect();
            text.push_str(&rows.join(",\n"));
            text.push_str(";\n");
        }
        std::fs::write(&path, &text).unwrap();
        let plan = InsertPlan::new(OnDuplicate::Ignore, "x", "y", &[], None);
        let mut reqs = Vec::new();
        let mut sink = |r: Request| {
            reqs.push(r);
            true
        };
        let rows = read_data_file(&path, &plan, 500, false, &mut sink).unwrap();
        assert_eq!(rows, 150);
        assert_eq!(reqs.iter().map(|r| r.rows).sum::<u64>(), 150);
        assert!(reqs.len() > 3);
        assert!(reqs[0].sets_session);
        assert!(reqs.iter().all(|r| r.sql.len() <= 500));
        let all: String = reqs
            .iter()
            .map(|r| String::from_utf8(r.sql.clone()).unwrap())
            .collect();
        assert_eq!(all.matches("'semi;\nline ").count(), 150);
        assert!(all.starts_with("/*!40101 SET NAMES binary*/"));
        assert!(
            reqs[1]
                .sql
                .starts_with(b"INSERT IGNORE INTO `x`.`y` (`a`,`b`) VALUES (0,")
        );

        // A sink that hangs up stops the reader without an error.
        let mut calls = 0;
        let mut hang_up = |_: Request| {
            calls += 1;
            false
        };
        read_data_file(&path, &plan, 500, false, &mut hang_up).unwrap();
        assert_eq!(calls, 1);
    }

    fn server(code: u16) -> mysql_async::Error {
        mysql_async::Error::Server(mysql_async::ServerError {
            code,
            message: "m".into(),
            state: "HY000".into(),
        })
    }

    #[test]
    fn classifies_errors_by_number() {
        let job = Job {
            file: DataFile {
                path: "db.t.1.sql".into(),
                name: "db.t.1.sql".into(),
                size: 1,
            },
            schema: "db".into(),
            table: "t".into(),
            target: "`x`.`t`".into(),
            plan: Arc::new(InsertPlan::new(OnDuplicate::Error, "x", "t", &[], None)),
        };
        let code = |f: Failure| match f {
            Failure::Fatal(e) => {
                assert!(e.message.contains("db.t.1.sql") && e.message.contains("`x`.`t`"));
                e.code
            }
            Failure::Retry(_) => 1,
            Failure::Connection(_) => 2,
        };
        assert_eq!(
            code(classify_error(
                server(ER_DUP_ENTRY),
                &job,
                OnDuplicate::Error
            )),
            codes::LOAD_DUPLICATE_ENTRY.code
        );
        assert_eq!(
            code(classify_error(
                server(ER_DUP_ENTRY),
                &job,
                OnDuplicate::Ignore
            )),
            codes::LOAD_EXECUTE_FAILED.code
        );
        assert_eq!(
            code(classify_error(
                server(crate::db::errno::ER_NO_SUCH_TABLE),
                &job,
                OnDuplicate::Replace
            )),
            codes::LOAD_EXECUTE_FAILED.code
        );
        assert_eq!(
            code(classify_error(
                server(ER_LOCK_DEADLOCK),
                &job,
                OnDuplicate::Error
            )),
            1
        );
        assert_eq!(
            code(classify_error(
                server(crate::db::errno::ER_CONNECTION_KILLED),
                &job,
                OnDuplicate::Error
            )),
            2
        );
        let io = mysql_async::Error::Io(mysql_async::IoError::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset,
        )));
        assert_eq!(code(classify_error(io, &job, OnDuplicate::Error)), 2);
    }

    #[test]
    fn bad_statements_name_file_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.t.1.sql");
        std::fs::write(&path, "INSERT INTO t VALUES (1);\nDELETE FROM t;\n").unwrap();
        let plan = InsertPlan::new(OnDuplicate::Replace, "x", "y", &[], None);
        let mut sink = |_: Request| true;
        let e = read_data_file(&path, &plan, 2000, false, &mut sink).unwrap_err();
        assert_eq!(e.code, codes::LOAD_UNIT_PARSE_STATEMENT.code);
        assert!(
            e.message.contains("`db.t.1.sql`, statement at byte 26"),
            "{}",
            e.message
        );
        std::fs::write(&path, "INSERT INTO t VALUES (1,'x);\n").unwrap();
        let e = read_data_file(&path, &plan, 2000, false, &mut sink).unwrap_err();
        assert_eq!(e.code, codes::LOAD_UNIT_PARSE_STATEMENT.code);
    }
}
