//! The sync unit end to end: `dm-syncer` as a process between a real upstream MariaDB (ROW
//! binlog) and a real downstream, checked by CHECKSUM TABLE and ordered row dumps.

use std::path::PathBuf;
use std::time::Duration;

use mysql_async::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::harness::eventually::POLL_INTERVAL;
use crate::harness::rows::{difference, same_rows, table_rows};
use crate::harness::{
    BinProcess, BlockAllowList, DM_MIGRATE, DM_SYNCER, Instance, MariaDb, Section, TaskYaml,
    TestDb, eventually_msg, fresh_db, shared_downstream, shared_upstream, try_eventually,
};

/// Knobs of one replication set-up.
pub(crate) struct Setup<'a> {
    /// `incremental` runs `dm-syncer`; other modes run `dm-migrate`.
    pub task_mode: &'a str,
    /// mydumper `threads` and `rows`, loader `pool-size` (dumping modes).
    pub dump_threads: u32,
    pub dump_rows: u64,
    pub pool_size: u32,
    /// mydumper `extra-args`.
    pub dump_args: &'a str,
    /// The upstream account (`root` unless a test makes a restricted one).
    pub user: &'a str,
    pub worker_count: u32,
    pub batch: u32,
    pub safe_mode_duration: &'a str,
    /// Extra top-level task YAML (routes, filters, expression-filter).
    pub task_extra: &'a str,
    /// The instance's `route-rules`, `filter-rules` and `expression-filters`.
    pub route_rules: &'a [&'a str],
    pub filter_rules: &'a [&'a str],
    pub expression_filters: &'a [&'a str],
    /// Block-allow-list do-dbs (defaults to the test database and its `_x` siblings).
    pub do_dbs: Option<Vec<String>>,
    /// Block-allow-list ignore-tables, `(db-name, tbl-name)`.
    pub ignore_tables: &'a [(&'a str, &'a str)],
    /// The syncer config's `compact` and `multiple-rows` (absent when `None`).
    pub compact: Option<bool>,
    pub multiple_rows: Option<bool>,
    /// Start from the upstream's GTID position (`meta.binlog-gtid`) with `enable-gtid`.
    pub gtid: bool,
}

impl Default for Setup<'_> {
    fn default() -> Self {
        Self {
            task_mode: "incremental",
            dump_threads: 4,
            dump_rows: 0,
            pool_size: 4,
            dump_args: "",
            user: "root",
            worker_count: 4,
            batch: 50,
            safe_mode_duration: "",
            task_extra: "",
            route_rules: &[],
            filter_rules: &[],
            expression_filters: &[],
            do_dbs: None,
            ignore_tables: &[],
            compact: None,
            multiple_rows: None,
            gtid: false,
        }
    }
}

/// Where a [`Sync`]'s task starts reading the binlog.
enum Start {
    Pos(String, u64),
    Gtid(String),
}

/// The task.yaml of a [`Sync`] on test database `db`: task `t-<db>` of source `src-<db>`,
/// meta tables in `<db>_meta`, migrating into the downstream on `port`.
fn task_yaml(
    setup: &Setup<'_>,
    db: &str,
    port: u16,
    dump_dir: &std::path::Path,
    start: &Start,
) -> String {
    let do_dbs = setup
        .do_dbs
        .clone()
        .unwrap_or_else(|| vec![db.to_string(), format!("~^{db}_x")]);
    let mut ba = BlockAllowList::new();
    for (db, table) in setup.ignore_tables {
        ba = ba.ignore_table(db, table);
    }
    let mut syncer = Section::new()
        .set("worker-count", setup.worker_count)
        .set("batch", setup.batch)
        .set("checkpoint-flush-interval", 1);
    if !setup.safe_mode_duration.is_empty() {
        syncer = syncer.set("safe-mode-duration", setup.safe_mode_duration);
    }
    if let Some(compact) = setup.compact {
        syncer = syncer.set("compact", compact);
    }
    if let Some(multiple_rows) = setup.multiple_rows {
        syncer = syncer.set("multiple-rows", multiple_rows);
    }
    let instance = Instance::new(&format!("src-{db}"))
        .block_allow_list("ba")
        .syncer("s")
        .mydumper("d")
        .loader("l")
        .route_rules(setup.route_rules)
        .filter_rules(setup.filter_rules)
        .expression_filters(setup.expression_filters);
    let instance = match start {
        Start::Pos(file, pos) => instance.meta_pos(file, *pos),
        Start::Gtid(gtid) => instance.meta_gtid(gtid),
    };
    TaskYaml::new(&format!("t-{db}"), setup.task_mode)
        .meta_schema(&format!("{db}_meta"))
        .target_root(port)
        .block_allow_list("ba", ba.do_dbs(&do_dbs))
        .mydumper(
            "d",
            Section::new()
                .set("threads", setup.dump_threads)
                .set("rows", setup.dump_rows)
                .set("extra-args", setup.dump_args),
        )
        .loader(
            "l",
            Section::new()
                .set("pool-size", setup.pool_size)
                .set("dir", dump_dir.display().to_string()),
        )
        .syncer("s", syncer)
        .raw(setup.task_extra)
        .instance(instance)
        .render()
}

/// An upstream test database migrated by a `dm-syncer` (or `dm-migrate`) process into a
/// database of the same name on a downstream server.
pub(crate) struct Sync {
    pub up: TestDb,
    pub down: mysql_async::Opts,
    pub dir: tempfile::TempDir,
    pub task: PathBuf,
    pub source: PathBuf,
    pub syncer: Option<BinProcess>,
    pub starts: usize,
    bin: &'static str,
    /// The task-mode syncs (a checkpoint is expected).
    syncs: bool,
}

impl Sync {
    pub async fn new(prefix: &str, down: &MariaDb, setup: Setup<'_>) -> Self {
        let up = fresh_db(shared_upstream(), prefix);
        let db = up.name().to_string();
        down.exec(&format!("CREATE DATABASE IF NOT EXISTS `{db}`"))
            .await;
        let row: (String, u64) = shared_upstream()
            .conn()
            .await
            .query_first("SHOW MASTER STATUS")
            .await
            .unwrap()
            .map(|r: mysql_async::Row| (r.get(0).unwrap(), r.get(1).unwrap()))
            .unwrap();
        let gtid_pos: String = shared_upstream()
            .conn()
            .await
            .query_first("SELECT @@GLOBAL.gtid_binlog_pos")
            .await
            .unwrap()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let start = if setup.gtid {
            Start::Gtid(gtid_pos)
        } else {
            Start::Pos(row.0, row.1)
        };
        let task_yaml = task_yaml(&setup, &db, down.port(), &dir.path().join("dump"), &start);
        let source_yaml = format!(
            "source-id: \"src-{db}\"\nflavor: mariadb\nenable-gtid: {}\nfrom:\n  host: \"127.0.0.1\"\n  port: {}\n  user: \"{}\"\n  password: \"\"\n",
            setup.gtid,
            shared_upstream().port(),
            setup.user
        );
        let task = dir.path().join("task.yaml");
        let source = dir.path().join("source.yaml");
        std::fs::write(&task, task_yaml).unwrap();
        std::fs::write(&source, source_yaml).unwrap();
        let bin = if setup.task_mode == "incremental" {
            DM_SYNCER
        } else {
            DM_MIGRATE
        };
        Self {
            up,
            down: down.opts(None),
            dir,
            task,
            source,
            syncer: None,
            starts: 0,
            bin,
            syncs: matches!(setup.task_mode, "all" | "incremental" | "load&sync"),
        }
    }

    pub fn db(&self) -> &str {
        self.up.name()
    }

    pub fn start(&mut self) {
        self.start_with_env(&[]);
    }

    /// Starts the process with extra environment variables (`DM_RS_FAILPOINTS`).
    pub fn start_with_env(&mut self, env: &[(&str, &str)]) {
        self.starts += 1;
        let log = self.dir.path().join(format!("syncer-{}.log", self.starts));
        let args = vec![
            "--task".to_string(),
            self.task.display().to_string(),
            "--source".to_string(),
            self.source.display().to_string(),
            "--status-interval".to_string(),
            "1".to_string(),
        ];
        self.syncer = Some(BinProcess::spawn_with_env(self.bin, &args, env, log));
    }

    /// The last status line the process logged (`status={...}`), as JSON.
    pub fn last_status(&self) -> Option<serde_json::Value> {
        let log = self.syncer.as_ref()?.log_tail(200);
        let line = log.lines().rev().find(|l| l.contains(" status status="))?;
        let json = &line[line.find("status={")? + "status=".len()..];
        serde_json::from_str(json).ok()
    }

    /// Changes the DML workers committed since the last checkpoint (sum of the progress rows):
    /// after a crash, what the next incarnation must skip.
    pub async fn uncheckpointed_changes(&self) -> u64 {
        let db = self.db();
        let mut c = mysql_async::Conn::new(self.down.clone()).await.unwrap();
        c.query_first::<Option<u64>, _>(format!(
            "SELECT CAST(SUM(applied) AS UNSIGNED) FROM `{db}_meta`.`t-{db}_syncer_worker`"
        ))
        .await
        .ok()
        .flatten()
        .flatten()
        .unwrap_or(0)
    }

    /// Waits up to `timeout` for the process to exit by itself; true when it did.
    pub async fn exits_within(&mut self, timeout: Duration) -> bool {
        let p = self.syncer.as_mut().expect("started");
        try_eventually(timeout, POLL_INTERVAL, async || p.try_exit())
            .await
            .is_some()
    }

    pub fn kill9(&mut self) {
        if let Some(p) = self.syncer.as_mut() {
            p.kill9();
        }
    }

    /// Panics with the syncer's log if it has exited.
    /// Panics with the process's log if it has exited with an error (a `full` migration
    /// exits with success when done).
    pub fn assert_running(&mut self) {
        if let Some(p) = self.syncer.as_mut()
            && let Some(status) = p.try_exit().filter(|s| !s.success())
        {
            panic!("{} exited with {status}:\n{}", self.bin, p.log_tail(60));
        }
    }

    /// Waits for the process to exit (modes without a sync unit end by themselves).
    pub async fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let p = self.syncer.as_mut().expect("started");
        let status =
            try_eventually(timeout, Duration::from_millis(100), async || p.try_exit()).await;
        status.unwrap_or_else(|| {
            panic!(
                "{} still running after {timeout:?}:\n{}",
                self.bin,
                p.log_tail(60)
            )
        })
    }

    /// The current process's output.
    pub fn log(&self) -> String {
        self.syncer
            .as_ref()
            .map(|p| p.log_tail(100_000))
            .unwrap_or_default()
    }

    /// Waits until the sync is done and exact: the syncer's checkpoint has reached the
    /// upstream's position as of this call (every change the test wrote is behind it), every
    /// listed table exists on both sides with exactly the same rows, and it stays so for a
    /// second (a late double-apply by a previous incarnation would show).
    pub async fn converge(&mut self, tables: &[(String, String)], timeout: Duration) {
        let target = crate::harness::cluster::master_status().await;
        let converged = try_eventually(timeout, Duration::from_millis(200), async || {
            self.assert_running();
            let caught_up = !self.syncs || self.checkpoint_at_least(&target).await;
            (caught_up && self.tables_equal(tables).await).then_some(())
        })
        .await;
        if converged.is_none() {
            let mut report = format!(
                "checkpoint {:?}, upstream position at the call {target:?}\n",
                self.checkpoint().await
            );
            for (up_t, down_t) in tables {
                let u = table_rows(&shared_upstream().opts(None), up_t).await;
                let d = table_rows(&self.down, down_t).await;
                if !same_rows(&u, &d) {
                    report.push_str(&difference(up_t, &u, &d));
                }
            }
            let log = self
                .syncer
                .as_ref()
                .map(|p| p.log_tail(40))
                .unwrap_or_default();
            panic!("no convergence after {timeout:?}:\n{report}--- syncer log ---\n{log}");
        }
        // Still equal a moment later, row for row and by CHECKSUM TABLE.
        let until = std::time::Instant::now() + Duration::from_secs(1);
        while std::time::Instant::now() < until {
            assert!(
                self.tables_equal(tables).await,
                "the tables diverged again after converging"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        for (up_t, down_t) in tables {
            assert_eq!(
                checksum(&shared_upstream().opts(None), up_t).await,
                checksum(&self.down, down_t).await,
                "CHECKSUM TABLE of {up_t} vs {down_t}"
            );
        }
    }

    async fn tables_equal(&self, tables: &[(String, String)]) -> bool {
        for (up_t, down_t) in tables {
            let u = table_rows(&shared_upstream().opts(None), up_t).await;
            if !same_rows(&u, &table_rows(&self.down, down_t).await) {
                return false;
            }
        }
        true
    }

    /// The global checkpoint position `(file, pos)` of the task, if one was saved.
    pub async fn checkpoint(&self) -> Option<(String, u64)> {
        let db = self.db();
        let mut c = mysql_async::Conn::new(self.down.clone()).await.ok()?;
        c.query_first(format!(
            "SELECT binlog_name, binlog_pos FROM `{db}_meta`.`t-{db}_syncer_checkpoint` WHERE is_global"
        ))
        .await
        .ok()
        .flatten()
    }

    async fn checkpoint_at_least(&self, target: &(String, u64)) -> bool {
        self.checkpoint()
            .await
            .is_some_and(|(f, p)| (f.as_str(), p) >= (target.0.as_str(), target.1))
    }

    /// `db.table` pairs with the same name on both sides.
    pub fn same(&self, tables: &[&str]) -> Vec<(String, String)> {
        tables
            .iter()
            .map(|t| {
                (
                    format!("`{}`.`{t}`", self.db()),
                    format!("`{}`.`{t}`", self.db()),
                )
            })
            .collect()
    }
}

impl Drop for Sync {
    fn drop(&mut self) {
        self.kill9();
        let db = self.up.name().to_string();
        let down = self.down.clone();
        crate::harness::process::run_blocking(|| async move {
            if let Ok(mut c) = mysql_async::Conn::new(down).await {
                let _ = c
                    .query_drop(format!("DROP DATABASE IF EXISTS `{db}`"))
                    .await;
                let _ = c
                    .query_drop(format!("DROP DATABASE IF EXISTS `{db}_meta`"))
                    .await;
            }
        });
    }
}

pub(crate) async fn checksum(server: &mysql_async::Opts, table: &str) -> Option<i64> {
    let mut conn = mysql_async::Conn::new(server.clone())
        .await
        .expect("connect for a checksum");
    let row: Option<(String, Option<i64>)> = conn
        .query_first(format!("CHECKSUM TABLE {table}"))
        .await
        .unwrap();
    row.and_then(|r| r.1)
}

/// Edge-value rows for [`ALL_TYPES`] (needs the session's permissive sql_mode it sets).
pub(crate) const ALL_TYPES_ROWS: &str = "SET SESSION sql_mode = '';
         INSERT INTO all_types VALUES
         (1, -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295, -9223372036854775808, 18446744073709551615,
          -12345678.99, -12345678901234567890123456789012345.123456789012345678901234567890, 99999,
          -3.40282e38, -1.7976931348623157e308, b'1', b'1111111111111111111111111111111111111111111111111111111111111111', 2155, '9999-12-31',
          '-838:59:59', '838:59:58.999999', '1000-01-01 00:00:00', '2024-02-29 12:34:56.789', '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.999',
          'abc', '中文😀', REPEAT('ü', 1000), REPEAT('x', 70000),
          'café', X'00FF0001', X'00FFFE', X'000102', REPEAT(X'AB', 1048576),
          'c d', 'x,z', '{\"k\": [1, 2.5, \"s\", null, true], \"u\": \"é\"}', ST_GeomFromText('POINT(1 2)')),
         (2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, b'0', b'0', 0, '0000-00-00',
          '00:00:00', '-00:00:00.000001', '0000-00-00 00:00:00', '1970-01-01 00:00:01.000', '2000-01-01 00:00:00.000001', '1970-01-01 00:00:01.000',
          '', '', '', '', '', X'00000000', X'', X'', X'', '', '', '[]', ST_GeomFromText('LINESTRING(0 0,1 1)')),
         (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
          NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
         (4, 127, 1, 32767, 1, 8388607, 1, 2147483647, 1, 9223372036854775807, 1,
          12345678.99, 0.000000000000000000000000000001, 1, 1.5, 2.5e-300, b'1', b'1010', 1901, '1000-01-01',
          '-00:00:01', '24:00:00.5', '2020-01-01 00:00:00', '2020-01-01 00:00:00.001', '2020-01-01 00:00:00.000100', '2020-06-01 12:00:00.123',
          'z', 'a\\'b\\\\c\\n', 'tab\\there', 'x', 'ñ', X'FFFFFFFF', X'5C27', X'00', X'FF', 'a', '', '\"just a string\"', NULL)";

pub(crate) const ALL_TYPES: &str = "CREATE TABLE all_types (
    id INT PRIMARY KEY,
    ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED,
    mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED,
    d1 DECIMAL(10,2), d2 DECIMAL(65,30), d3 DECIMAL(5,0) UNSIGNED,
    f FLOAT, db DOUBLE,
    b1 BIT(1), b64 BIT(64), y YEAR, dt DATE,
    t0 TIME, t6 TIME(6), dt0 DATETIME, dt3 DATETIME(3), dt6 DATETIME(6), ts3 TIMESTAMP(3) NULL DEFAULT NULL,
    c CHAR(10), vc VARCHAR(200), tx TEXT, mt MEDIUMTEXT,
    l1 VARCHAR(50) CHARACTER SET latin1,
    bn BINARY(4), vb VARBINARY(100), bl BLOB, lb LONGBLOB,
    e ENUM('a','b','c d'), s SET('x','y','z'),
    j JSON, g GEOMETRY
) DEFAULT CHARSET=utf8mb4";

#[tokio::test]
async fn every_column_type_round_trips() {
    let mut s = Sync::new("sync_types", shared_downstream(), Setup::default()).await;
    s.start();
    s.up.exec(ALL_TYPES).await;
    s.up.exec(ALL_TYPES_ROWS).await;
    s.up.exec("UPDATE all_types SET vc = 'updated ✓', biu = biu - 1, j = JSON_ARRAY(1) WHERE id IN (1, 4); DELETE FROM all_types WHERE id = 2").await;
    let tables = s.same(&["all_types"]);
    s.converge(&tables, Duration::from_secs(60)).await;
}

/// A seeded random workload over `tables` tables: some with a primary key, some with only a
/// nullable unique key, some with no key; inserts, key-changing updates, deletes, multi-
/// statement transactions.
pub(crate) async fn workload(db: &str, tables: usize, ops: usize, seed: u64) {
    let mut conn = shared_upstream().conn().await;
    let mut rng = StdRng::seed_from_u64(seed);
    for _ in 0..ops {
        let stmts = rng.random_range(1..=4);
        let mut sql = String::from("BEGIN;");
        for _ in 0..stmts {
            let t = rng.random_range(0..tables);
            let table = format!("`{db}`.`w{t}`");
            let id = rng.random_range(0..200);
            let k = rng.random_range(0..1000);
            let roll = rng.random_range(0..10);
            let stmt = match t % 3 {
                // PK tables: upserts, key moves, deletes.
                0 => match roll {
                    0..=4 => format!(
                        "INSERT INTO {table} (id, k, c) VALUES ({id}, {k}, 'v{k}') ON DUPLICATE KEY UPDATE k = k + 1, c = CONCAT(c, 'x')"
                    ),
                    5..=6 => format!(
                        "UPDATE IGNORE {table} SET id = {} WHERE id = {id}",
                        id + 1000 + rng.random_range(0..1000)
                    ),
                    7 => format!("UPDATE {table} SET k = (k % 1000) * 2, c = NULL WHERE k > {k}"),
                    _ => format!("DELETE FROM {table} WHERE id = {id}"),
                },
                // Unique-key-only tables (the key may be NULL).
                1 => match roll {
                    0..=4 => format!(
                        "INSERT IGNORE INTO {table} (u, k, c) VALUES ({}, {k}, 'u{k}')",
                        if rng.random_bool(0.2) {
                            "NULL".to_string()
                        } else {
                            id.to_string()
                        }
                    ),
                    5..=7 => format!(
                        "UPDATE {table} SET k = k + 1, c = 'w' WHERE u = {id} OR (u IS NULL AND k = {k})"
                    ),
                    _ => format!("DELETE FROM {table} WHERE u = {id}"),
                },
                // Keyless tables: duplicates allowed.
                _ => match roll {
                    0..=5 => format!(
                        "INSERT INTO {table} (k, c) VALUES ({}, 'n{}')",
                        k % 50,
                        k % 7
                    ),
                    6..=7 => format!("UPDATE {table} SET c = 'm' WHERE k = {} LIMIT 1", k % 50),
                    _ => format!("DELETE FROM {table} WHERE k = {} LIMIT 1", k % 50),
                },
            };
            sql.push_str(&stmt);
            sql.push(';');
        }
        sql.push_str("COMMIT");
        conn.query_drop(&sql)
            .await
            .unwrap_or_else(|e| panic!("workload statement failed: {e}\n{sql}"));
    }
}

/// A [`workload`] running in rounds until stopped: a steady stream for crashes and cuts to
/// land in, however fast the machine is.
pub(crate) struct PacedWorkload {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: tokio::task::JoinHandle<u64>,
}

impl PacedWorkload {
    /// Rounds of `per_round` transactions over `tables` tables of `db`, seeds from `seed`.
    pub(crate) fn start(db: &str, tables: usize, per_round: usize, seed: u64) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let db = db.to_string();
        let handle = tokio::spawn(async move {
            let mut round = 0u64;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) && round < 5000 {
                workload(&db, tables, per_round, seed + round).await;
                round += 1;
                // Pacing, not waiting.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            round
        });
        Self { stop, handle }
    }

    /// Stops after the current round; returns the rounds written.
    pub(crate) async fn stop(self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.handle.await.expect("workload task")
    }
}

pub(crate) async fn create_workload_tables(up: &TestDb, tables: usize) -> Vec<String> {
    let mut names = Vec::new();
    for t in 0..tables {
        let ddl = match t % 3 {
            0 => {
                format!("CREATE TABLE w{t} (id INT PRIMARY KEY, k INT, c VARCHAR(64), KEY ik (k))")
            }
            1 => format!("CREATE TABLE w{t} (u INT NULL, k INT, c VARCHAR(64), UNIQUE KEY uu (u))"),
            _ => format!("CREATE TABLE w{t} (k INT, c VARCHAR(64))"),
        };
        up.exec(&ddl).await;
        names.push(format!("w{t}"));
    }
    names
}

/// The binlog dump threads of `user` on the shared upstream.
async fn dump_threads(user: &str) -> Vec<u64> {
    let mut up = shared_upstream().conn().await;
    up.exec(
        "SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND = 'Binlog Dump' AND USER = ?",
        (user,),
    )
    .await
    .unwrap()
}

/// A seeded random workload over 21 tables with 20 DML workers (3 causality buckets, the
/// benchmark's shape), while the syncer's binlog stream is cut again and again: each cut must
/// really kill this syncer's dump thread (its own upstream account names it), and the stream
/// must come back (a new dump thread) without re-delivering or losing events.
#[tokio::test]
async fn random_workload_converges() {
    let user = format!("sr_{:06x}", rand::random::<u32>() & 0xff_ffff);
    shared_upstream()
        .exec(&format!(
            "CREATE USER '{user}'@'127.0.0.1'; \
             GRANT SELECT, RELOAD, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO '{user}'@'127.0.0.1'"
        ))
        .await;
    let mut s = Sync::new(
        "sync_random",
        shared_downstream(),
        Setup {
            worker_count: 20,
            batch: 20,
            user: &user,
            ..Default::default()
        },
    )
    .await;
    s.start();
    let names = create_workload_tables(&s.up, 21).await;
    let writer = PacedWorkload::start(s.db(), 21, 40, 7);
    let mut cuts = 0;
    while cuts < 5 {
        s.assert_running();
        let threads = dump_threads(&user).await;
        let Some(&id) = threads.first() else {
            // Not streaming yet (starting, or reconnecting after the last cut).
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let mut up = shared_upstream().conn().await;
        if up.query_drop(format!("KILL {id}")).await.is_err() {
            continue;
        }
        cuts += 1;
        // The stream comes back: a new dump thread of this syncer.
        eventually_msg(
            Duration::from_secs(30),
            "the binlog stream to reconnect after a cut",
            || {
                let user = user.clone();
                async move { dump_threads(&user).await.iter().any(|&t| t != id) }
            },
        )
        .await;
        // Pacing between cuts, so that events flow in between.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let rounds = writer.stop().await;
    assert!(
        rounds > 5,
        "the workload ran through the cuts ({rounds} rounds)"
    );
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let tables = s.same(&refs);
    s.converge(&tables, Duration::from_secs(90)).await;
    drop(s);
    shared_upstream()
        .exec(&format!("DROP USER '{user}'@'127.0.0.1'"))
        .await;
}

/// Rows the server's storage engines wrote, updated or deleted so far.
async fn rows_touched(server: &MariaDb) -> u64 {
    let rows = server
        .query_rows(
            "SELECT CAST(SUM(VARIABLE_VALUE) AS UNSIGNED) FROM information_schema.GLOBAL_STATUS \
             WHERE VARIABLE_NAME IN ('HANDLER_WRITE', 'HANDLER_UPDATE', 'HANDLER_DELETE')",
        )
        .await;
    rows.first().and_then(|r| r.get::<u64, _>(0)).unwrap_or(0)
}

/// `compact: true` merges a batch's changes to one row: the same stream (every row inserted
/// then updated four times in its transaction) converges with and without it, and with it
/// the target touches far fewer rows. A private target, so its counters are this test's.
/// The random workload then converges with compact on (keyless and unique-key tables pass
/// through unmerged).
#[tokio::test]
async fn compact_merges_changes_to_a_row_and_converges() {
    let target = MariaDb::start_downstream();
    let mut touched = Vec::new();
    for compact in [true, false] {
        let setup = Setup {
            worker_count: 2,
            batch: 256,
            compact: Some(compact),
            multiple_rows: compact.then_some(true),
            ..Default::default()
        };
        let mut s = Sync::new("sync_compact", &target, setup).await;
        s.up.exec("CREATE TABLE t (id INT PRIMARY KEY, v INT)")
            .await;
        let mut sql = String::new();
        for i in 0..300 {
            sql.push_str(&format!(
                "BEGIN; INSERT INTO t VALUES ({i}, 0); UPDATE t SET v = 1 WHERE id = {i}; \
                 UPDATE t SET v = 2 WHERE id = {i}; UPDATE t SET v = 3 WHERE id = {i}; \
                 UPDATE t SET v = 4 WHERE id = {i}; COMMIT;"
            ));
        }
        s.up.exec(&sql).await;
        let before = rows_touched(&target).await;
        s.start();
        let tables = s.same(&["t"]);
        s.converge(&tables, Duration::from_secs(60)).await;
        touched.push(rows_touched(&target).await - before);
    }
    eprintln!(
        "rows touched downstream: compact {}, plain {}",
        touched[0], touched[1]
    );
    // 1500 changes: 300 inserts merged with their updates vs. 300 inserts + 1200 updates
    // (checkpoint and progress rows add a little to both).
    assert!(
        touched[0] * 2 < touched[1],
        "compact touched {} rows, plain {}",
        touched[0],
        touched[1]
    );

    let mut s = Sync::new(
        "sync_compact_wl",
        shared_downstream(),
        Setup {
            worker_count: 4,
            batch: 64,
            compact: Some(true),
            multiple_rows: Some(true),
            ..Default::default()
        },
    )
    .await;
    s.start();
    let names = create_workload_tables(&s.up, 9).await;
    workload(s.db(), 9, 800, 31).await;
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let tables = s.same(&refs);
    s.converge(&tables, Duration::from_secs(90)).await;
}

#[tokio::test]
async fn ddl_during_workload_is_applied_in_order() {
    let mut s = Sync::new("sync_ddl", shared_downstream(), Setup::default()).await;
    s.start();
    let db = s.db().to_string();
    let names = create_workload_tables(&s.up, 6).await;
    workload(&db, 6, 200, 11).await;
    s.up.exec("ALTER TABLE w0 ADD COLUMN extra VARCHAR(20) DEFAULT 'd' AFTER k")
        .await;
    s.up.exec("INSERT INTO w0 (id, k, extra, c) VALUES (5000, 1, 'new col', 'c')")
        .await;
    workload(&db, 6, 100, 12).await;
    s.up.exec("ALTER TABLE w0 MODIFY COLUMN c VARCHAR(200); ALTER TABLE w3 ADD INDEX kc (k, c); ALTER TABLE w3 DROP INDEX kc").await;
    s.up.exec("CREATE TABLE dd (id INT PRIMARY KEY, a INT, b VARCHAR(10)); INSERT INTO dd VALUES (1, 1, 'x')").await;
    s.up.exec("ALTER TABLE dd DROP COLUMN a").await;
    s.up.exec("INSERT INTO dd (id, b) VALUES (2, 'y'); UPDATE dd SET b = 'z' WHERE id = 1")
        .await;
    s.up.exec("CREATE TABLE fresh (id BIGINT PRIMARY KEY AUTO_INCREMENT, v TEXT); INSERT INTO fresh (v) VALUES ('a'), ('b')").await;
    s.up.exec("RENAME TABLE fresh TO renamed; INSERT INTO renamed (v) VALUES ('c')")
        .await;
    s.up.exec(
        "CREATE TABLE gone (id INT PRIMARY KEY); INSERT INTO gone VALUES (1); DROP TABLE gone",
    )
    .await;
    s.up.exec("TRUNCATE TABLE w1; INSERT INTO w1 (u, k, c) VALUES (1, 1, 'after truncate')")
        .await;
    s.up.exec(&format!("CREATE DATABASE `{db}_x1`; CREATE TABLE `{db}_x1`.t (id INT PRIMARY KEY); INSERT INTO `{db}_x1`.t VALUES (1), (2)")).await;
    s.up.exec(&format!(
        "CREATE DATABASE `{db}_x2`; CREATE TABLE `{db}_x2`.t (id INT); DROP DATABASE `{db}_x2`"
    ))
    .await;
    workload(&db, 6, 100, 13).await;
    let mut refs: Vec<&str> = names.iter().map(String::as_str).collect();
    refs.push("renamed");
    refs.push("dd");
    let mut tables = s.same(&refs);
    tables.push((format!("`{db}_x1`.t"), format!("`{db}_x1`.t")));
    s.converge(&tables, Duration::from_secs(90)).await;
    let mut down = shared_downstream().conn().await;
    let gone: Option<String> = down
        .query_first(format!("SHOW TABLES FROM `{db}` LIKE 'gone'"))
        .await
        .unwrap();
    assert_eq!(gone, None, "dropped table is gone downstream");
    let x2: Option<String> = down
        .query_first(format!("SHOW DATABASES LIKE '{db}_x2'"))
        .await
        .unwrap();
    assert_eq!(x2, None, "dropped database is gone downstream");
    down.query_drop(format!("DROP DATABASE IF EXISTS `{db}_x1`"))
        .await
        .unwrap();
    shared_upstream()
        .exec(&format!("DROP DATABASE IF EXISTS `{db}_x1`"))
        .await;
}

/// Crashes at chosen points and at random moments while a workload runs; the merged result
/// must equal the upstream exactly (keyless tables included), with no safe mode.
///
/// Half of the incarnations are ended by the `dml-after-commit` failpoint: the process aborts
/// right after a DML worker's batch committed and before any checkpoint can cover it, so the
/// next incarnation must skip that batch (exact replay). After each crash the test reads the
/// workers' progress rows and counts the crashes that left committed, un-checkpointed changes
/// behind; several must have, or the test proved nothing about exact replay.
#[tokio::test]
async fn killed_syncer_resumes_without_loss_or_duplicates() {
    // No safe mode after restarts: exactness comes from the checkpoint's worker progress.
    let setup = Setup {
        worker_count: 4,
        batch: 10,
        safe_mode_duration: "0s",
        ..Default::default()
    };
    let mut s = Sync::new("sync_kill", shared_downstream(), setup).await;
    s.start();
    let db = s.db().to_string();
    let names = create_workload_tables(&s.up, 9).await;
    // The workload runs until the crashes are done (so every crash lands mid-stream).
    let writer = PacedWorkload::start(&db, 9, 20, 100);
    let mut rng = StdRng::seed_from_u64(42);
    let (mut crashes, mut mid_batch) = (0, 0);
    while (crashes < 10 || mid_batch < 4) && crashes < 30 {
        if crashes % 2 == 0 {
            // Deterministic: abort after the k-th batch commit of this incarnation.
            let k = rng.random_range(2..30).to_string();
            s.kill9();
            s.start_with_env(&[("DM_RS_FAILPOINTS", &format!("dml-after-commit={k}"))]);
            if !s.exits_within(Duration::from_secs(20)).await {
                s.kill9();
            }
        } else {
            tokio::time::sleep(Duration::from_millis(rng.random_range(300..1200))).await;
            s.assert_running();
            s.kill9();
        }
        crashes += 1;
        if s.uncheckpointed_changes().await > 0 {
            mid_batch += 1;
        }
        s.start();
    }
    writer.stop().await;
    eprintln!("{mid_batch} of {crashes} crashes left committed, un-checkpointed changes");
    assert!(
        crashes >= 10 && mid_batch >= 4,
        "only {mid_batch} of {crashes} crashes left committed, un-checkpointed changes"
    );
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let tables = s.same(&refs);
    s.converge(&tables, Duration::from_secs(120)).await;
}

/// A DML worker whose connection dies after its COMMIT reached the server but before the
/// answer came back (the `dml-lose-commit-reply` failpoint makes exactly that happen, on
/// chosen batches) reconnects and reads its progress row: the batch committed, so it is not
/// applied again. Keyless tables show any double apply as extra rows.
#[tokio::test]
async fn lost_commit_reply_is_resolved_by_the_progress_row() {
    let setup = Setup {
        worker_count: 2,
        batch: 5,
        safe_mode_duration: "0s",
        ..Default::default()
    };
    let mut s = Sync::new("sync_lost_reply", shared_downstream(), setup).await;
    s.up.exec("CREATE TABLE bag (k INT, c VARCHAR(10))").await;
    for hit in [2, 5, 9] {
        s.kill9();
        s.start_with_env(&[("DM_RS_FAILPOINTS", &format!("dml-lose-commit-reply={hit}"))]);
        for i in 0..40 {
            s.up.exec(&format!(
                "INSERT INTO bag VALUES ({}, 'x'), ({}, 'x')",
                i % 3,
                i % 3
            ))
            .await;
        }
        let tables = s.same(&["bag"]);
        s.converge(&tables, Duration::from_secs(60)).await;
        assert!(
            s.log()
                .contains("failpoint: behaving as if the connection were lost"),
            "the failpoint fired on batch {hit}:\n{}",
            s.log()
        );
    }
}

#[tokio::test]
async fn gtid_start_and_resume() {
    let setup = Setup {
        gtid: true,
        safe_mode_duration: "0s",
        ..Default::default()
    };
    let mut s = Sync::new("sync_gtid", shared_downstream(), setup).await;
    s.start();
    let names = create_workload_tables(&s.up, 6).await;
    for round in 0..4u64 {
        workload(s.db(), 6, 150, 300 + round).await;
        s.kill9();
        s.start();
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let tables = s.same(&refs);
    s.converge(&tables, Duration::from_secs(90)).await;
}

/// The target goes away while writes continue: the syncer waits it out (its lag grows, the
/// process stays up, nothing is restarted) and, once the target is back, applies everything
/// exactly.
#[tokio::test]
async fn downstream_outage_is_retried_then_converges() {
    let mut down = MariaDb::start_downstream();
    let mut s = Sync::new("sync_outage", &down, Setup::default()).await;
    s.start();
    let db = s.db().to_string();
    let names = create_workload_tables(&s.up, 6).await;
    workload(&db, 6, 150, 21).await;
    down.stop();
    assert!(
        mysql_async::Conn::new(down.opts(None)).await.is_err(),
        "the target is really down"
    );
    workload(&db, 6, 150, 22).await;
    // The syncer is blocked on the target, retrying: the changes it holds age (status lag
    // grows) while the process stays up.
    let mut lag = 0;
    eventually_msg(
        Duration::from_secs(60),
        "the syncer's lag to grow while the target is down",
        || {
            s.assert_running();
            lag = s
                .last_status()
                .and_then(|st| st["seconds_behind_master"].as_u64())
                .unwrap_or(0);
            let grown = lag >= 3;
            async move { grown }
        },
    )
    .await;
    s.assert_running();
    down.restart();
    workload(&db, 6, 150, 23).await;
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let tables = s.same(&refs);
    s.converge(&tables, Duration::from_secs(120)).await;
    assert_eq!(s.starts, 1, "the syncer process was never restarted");
}

#[tokio::test]
async fn routes_merge_shards_and_filters_hold() {
    let task_extra = r#"routes:
  merge:
    schema-pattern: "__DB__"
    table-pattern: "shard_*"
    target-schema: "__DB__"
    target-table: "merged"
expression-filter:
  no-r3:
    schema: "__DB__"
    table: "shard_2"
    insert-value-expr: "v = 'r3' AND shard = 2"
filters:
  keep-deletes:
    schema-pattern: "__DB__"
    table-pattern: "shard_1"
    events: ["delete"]
    action: Ignore"#;
    // The database name is only known after creation: write the rules with a placeholder,
    // then fill it in.
    let mut s = Sync::new(
        "sync_route",
        shared_downstream(),
        Setup {
            task_extra,
            route_rules: &["merge"],
            filter_rules: &["keep-deletes"],
            expression_filters: &["no-r3"],
            ignore_tables: &[("__DB__", "skipme")],
            ..Default::default()
        },
    )
    .await;
    let db = s.db().to_string();
    let text = std::fs::read_to_string(&s.task)
        .unwrap()
        .replace("__DB__", &db);
    std::fs::write(&s.task, text).unwrap();
    shared_downstream()
        .exec(&format!(
            "CREATE TABLE `{db}`.merged (id INT PRIMARY KEY, shard INT, v VARCHAR(20))"
        ))
        .await;
    s.start();
    for n in 1..=4 {
        s.up.exec(&format!(
            "CREATE TABLE shard_{n} (id INT PRIMARY KEY, shard INT, v VARCHAR(20))"
        ))
        .await;
        let rows: Vec<String> = (0..50)
            .map(|i| format!("({}, {n}, 'r{i}')", n * 1000 + i))
            .collect();
        s.up.exec(&format!("INSERT INTO shard_{n} VALUES {}", rows.join(",")))
            .await;
        s.up.exec(&format!("UPDATE shard_{n} SET v = 'upd' WHERE id % 5 = 0; DELETE FROM shard_{n} WHERE id % 7 = 0")).await;
    }
    s.up.exec("CREATE TABLE skipme (id INT PRIMARY KEY); INSERT INTO skipme VALUES (1)")
        .await;
    // Expected downstream: the union of the shards, plus shard_1's deleted rows (its deletes
    // are ignored) with their updated values, minus the row the expression filter drops.
    let expected_deleted_1: Vec<i64> = (1000..1050).filter(|i| i % 7 == 0).collect();
    let merged = format!("`{db}`.merged");
    // `(rows merged, rows expected)` at the last look.
    let mut last = (0, 0);
    let merged_ok = try_eventually(
        Duration::from_secs(60),
        Duration::from_millis(200),
        async || {
            s.assert_running();
            let mut down = shared_downstream().conn().await;
            let mut up = shared_upstream().conn().await;
            let mut up_union: Vec<(i64, i64, String)> = Vec::new();
            for n in 1..=4 {
                let rows: Vec<(i64, i64, String)> = up
                    .query(format!("SELECT id, shard, v FROM `{db}`.shard_{n}"))
                    .await
                    .unwrap();
                up_union.extend(rows);
            }
            for id in &expected_deleted_1 {
                up_union.push((
                    *id,
                    1,
                    if id % 5 == 0 {
                        "upd".into()
                    } else {
                        format!("r{}", id - 1000)
                    },
                ));
            }
            up_union.retain(|r| *r != (2003, 2, "r3".to_string()));
            up_union.sort();
            let got: Vec<(i64, i64, String)> = down
                .query(format!(
                    "SELECT id, shard, v FROM {merged} ORDER BY id, shard, v"
                ))
                .await
                .unwrap();
            last = (got.len(), up_union.len());
            (got == up_union).then_some(())
        },
    )
    .await;
    assert!(
        merged_ok.is_some(),
        "merged table differs: {} rows vs {} expected",
        last.0,
        last.1
    );
    let mut down = shared_downstream().conn().await;
    let skipped: Option<String> = down
        .query_first(format!("SHOW TABLES FROM `{db}` LIKE 'skipme'"))
        .await
        .unwrap();
    assert_eq!(skipped, None, "block-allow-list keeps skipme out");
    for n in 1..=4 {
        let t: Option<String> = down
            .query_first(format!("SHOW TABLES FROM `{db}` LIKE 'shard_{n}'"))
            .await
            .unwrap();
        assert_eq!(t, None, "shard tables are routed, not created");
    }
}
