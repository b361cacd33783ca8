//! The sync unit end to end: `dm-syncer` as a process between a real upstream MariaDB (ROW
//! binlog) and a real downstream, checked by CHECKSUM TABLE and ordered row dumps.

use std::path::PathBuf;
use std::time::Duration;

use mysql_async::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::harness::{
    BinProcess, DM_MIGRATE, DM_SYNCER, MariaDb, TestDb, fresh_db, shared_downstream,
    shared_upstream,
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
    /// Extra top-level task YAML (routes, filters) and extra instance keys.
    pub task_extra: &'a str,
    pub instance_extra: &'a str,
    /// Block-allow-list do-dbs (defaults to the test database and its `_x` siblings).
    pub do_dbs: Option<String>,
    /// Extra keys of the syncer config (one per line, no indentation).
    pub syncer_extra: &'a str,
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
            instance_extra: "",
            do_dbs: None,
            syncer_extra: "",
            gtid: false,
        }
    }
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
}

impl Sync {
    pub async fn new(prefix: &str, down: &MariaDb, setup: Setup<'_>) -> Self {
        let up = fresh_db(shared_upstream(), prefix);
        let db = up.name().to_string();
        down.exec(&format!("CREATE DATABASE IF NOT EXISTS `{db}`"))
            .await;
        let meta = format!("{db}_meta");
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
        let meta_yaml = if setup.gtid {
            format!("binlog-gtid: \"{gtid_pos}\"")
        } else {
            format!("binlog-name: \"{}\"\n      binlog-pos: {}", row.0, row.1)
        };
        let dir = tempfile::tempdir().unwrap();
        let do_dbs = setup
            .do_dbs
            .clone()
            .unwrap_or_else(|| format!("\"{db}\", \"~^{db}_x\""));
        let syncer_extra: String = setup
            .syncer_extra
            .lines()
            .map(|l| format!("\n    {l}"))
            .collect();
        let safe = if setup.safe_mode_duration.is_empty() {
            String::new()
        } else {
            format!("\n    safe-mode-duration: \"{}\"", setup.safe_mode_duration)
        };
        let task_yaml = format!(
            r#"name: "t-{db}"
task-mode: {mode}
meta-schema: "{meta}"
target-database:
  host: "127.0.0.1"
  port: {port}
  user: "root"
  password: ""
block-allow-list:
  ba:
    do-dbs: [{do_dbs}]
mydumpers:
  d:
    threads: {threads}
    rows: {rows}
    extra-args: "{dump_args}"
loaders:
  l:
    pool-size: {pool}
    dir: "{dump_dir}"
syncers:
  s:
    worker-count: {wc}
    batch: {batch}
    checkpoint-flush-interval: 1{safe}{syncer_extra}
{task_extra}
mysql-instances:
  - source-id: "src-{db}"
    block-allow-list: "ba"
    syncer-config-name: "s"
    mydumper-config-name: "d"
    loader-config-name: "l"
    meta:
      {meta_yaml}
{instance_extra}
"#,
            meta = meta,
            mode = setup.task_mode,
            threads = setup.dump_threads,
            rows = setup.dump_rows,
            dump_args = setup.dump_args,
            pool = setup.pool_size,
            dump_dir = dir.path().join("dump").display(),
            port = down.port(),
            wc = setup.worker_count,
            batch = setup.batch,
            task_extra = setup.task_extra,
            instance_extra = setup.instance_extra,
        );
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
        }
    }

    pub fn db(&self) -> &str {
        self.up.name()
    }

    pub fn start(&mut self) {
        self.starts += 1;
        let log = self.dir.path().join(format!("syncer-{}.log", self.starts));
        let args = vec![
            "--task".to_string(),
            self.task.display().to_string(),
            "--source".to_string(),
            self.source.display().to_string(),
            "--status-interval".to_string(),
            "5".to_string(),
        ];
        self.syncer = Some(BinProcess::spawn(self.bin, &args, log));
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
        let deadline = std::time::Instant::now() + timeout;
        let p = self.syncer.as_mut().expect("started");
        loop {
            if let Some(status) = p.try_exit() {
                return status;
            }
            if std::time::Instant::now() > deadline {
                panic!(
                    "{} still running after {timeout:?}:\n{}",
                    self.bin,
                    p.log_tail(60)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The current process's output.
    pub fn log(&self) -> String {
        self.syncer
            .as_ref()
            .map(|p| p.log_tail(100_000))
            .unwrap_or_default()
    }

    /// Waits until every listed table (in `db` on both sides) has the same rows.
    pub async fn converge(&mut self, tables: &[(String, String)], timeout: Duration) {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            self.assert_running();
            let mut all = true;
            for (up_t, down_t) in tables {
                if dump(&shared_upstream().opts(None), up_t).await != dump(&self.down, down_t).await
                {
                    all = false;
                    break;
                }
            }
            if all {
                for (up_t, down_t) in tables {
                    assert_eq!(
                        checksum(&shared_upstream().opts(None), up_t).await,
                        checksum(&self.down, down_t).await,
                        "CHECKSUM TABLE of {up_t} vs {down_t}"
                    );
                }
                return;
            }
            if std::time::Instant::now() > deadline {
                let mut report = String::new();
                for (up_t, down_t) in tables {
                    let (u, d) = (
                        dump(&shared_upstream().opts(None), up_t).await,
                        dump(&self.down, down_t).await,
                    );
                    if u != d {
                        report.push_str(&format!(
                            "{up_t}: upstream {} rows, downstream {} rows\n",
                            u.len(),
                            d.len()
                        ));
                        let only_up: Vec<_> = u.iter().filter(|r| !d.contains(r)).take(3).collect();
                        let only_down: Vec<_> =
                            d.iter().filter(|r| !u.contains(r)).take(3).collect();
                        report.push_str(&format!(
                            "  only upstream: {only_up:?}\n  only downstream: {only_down:?}\n"
                        ));
                    }
                }
                let log = self
                    .syncer
                    .as_ref()
                    .map(|p| p.log_tail(40))
                    .unwrap_or_default();
                panic!("no convergence after {timeout:?}:\n{report}--- syncer log ---\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
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

/// Every row of `table`, ordered by all columns, as SQL literals.
pub(crate) async fn dump(server: &mysql_async::Opts, table: &str) -> Vec<Vec<String>> {
    let mut conn = mysql_async::Conn::new(server.clone())
        .await
        .expect("connect for a dump");
    conn.query_drop("SET SESSION time_zone = '+00:00'")
        .await
        .unwrap();
    let cols: usize = match conn
        .query_first::<mysql_async::Row, _>(format!("SELECT * FROM {table} LIMIT 1"))
        .await
    {
        Ok(Some(r)) => r.len(),
        Ok(None) => return Vec::new(),
        Err(_) => return vec![vec!["<missing table>".into()]],
    };
    let order: Vec<String> = (1..=cols).map(|i| i.to_string()).collect();
    let rows: Vec<mysql_async::Row> = conn
        .query(format!(
            "SELECT * FROM {table} ORDER BY {}",
            order.join(",")
        ))
        .await
        .unwrap();
    rows.into_iter()
        .map(|r| r.unwrap().into_iter().map(|v| v.as_sql(false)).collect())
        .collect()
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

#[tokio::test]
async fn random_workload_converges() {
    let mut s = Sync::new(
        "sync_random",
        shared_downstream(),
        Setup {
            worker_count: 8,
            batch: 20,
            ..Default::default()
        },
    )
    .await;
    s.start();
    let names = create_workload_tables(&s.up, 21).await;
    let db = s.db().to_string();
    let writer = tokio::spawn(async move { workload(&db, 21, 1500, 7).await });
    // Cut the binlog stream a few times: the stream controller reconnects and resumes
    // without re-delivering events. (This also cuts concurrent tests' streams, which must
    // survive it too.)
    let mut cuts = 0;
    while !writer.is_finished() && cuts < 5 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let mut up = shared_upstream().conn().await;
        let ids: Vec<u64> = up
            .query("SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND = 'Binlog Dump'")
            .await
            .unwrap();
        for id in ids {
            let _ = up.query_drop(format!("KILL {id}")).await;
        }
        cuts += 1;
        s.assert_running();
    }
    writer.await.unwrap();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let tables = s.same(&refs);
    s.converge(&tables, Duration::from_secs(90)).await;
}

#[tokio::test]
async fn compact_and_multiple_rows_converge() {
    let setup = Setup {
        worker_count: 4,
        batch: 64,
        syncer_extra: "compact: true\nmultiple-rows: true",
        ..Default::default()
    };
    let mut s = Sync::new("sync_compact", shared_downstream(), setup).await;
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
    let writer = tokio::spawn(async move {
        for round in 0..12u64 {
            workload(&db, 9, 120, 100 + round).await;
        }
    });
    let mut rng = StdRng::seed_from_u64(42);
    let mut kills = 0;
    while !writer.is_finished() || kills < 10 {
        tokio::time::sleep(Duration::from_millis(rng.random_range(300..1200))).await;
        s.assert_running();
        s.kill9();
        kills += 1;
        s.start();
    }
    writer.await.unwrap();
    assert!(kills >= 10);
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let tables = s.same(&refs);
    s.converge(&tables, Duration::from_secs(120)).await;
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

#[tokio::test]
async fn downstream_outage_is_retried_then_converges() {
    let mut down = MariaDb::start_downstream();
    let mut s = Sync::new("sync_outage", &down, Setup::default()).await;
    s.start();
    let db = s.db().to_string();
    let names = create_workload_tables(&s.up, 6).await;
    workload(&db, 6, 150, 21).await;
    down.stop();
    workload(&db, 6, 150, 22).await;
    // The scenario: the target is down for 20 s while writes continue.
    tokio::time::sleep(Duration::from_secs(20)).await;
    s.assert_running();
    down.restart();
    workload(&db, 6, 150, 23).await;
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let tables = s.same(&refs);
    s.converge(&tables, Duration::from_secs(120)).await;
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
    let instance_extra = "    route-rules: [\"merge\"]\n    filter-rules: [\"keep-deletes\"]\n    expression-filters: [\"no-r3\"]";
    // The database name is only known after creation: write the rules with a placeholder,
    // then fill it in.
    let mut s = Sync::new(
        "sync_route",
        shared_downstream(),
        Setup {
            task_extra,
            instance_extra,
            ..Default::default()
        },
    )
    .await;
    let db = s.db().to_string();
    let text = std::fs::read_to_string(&s.task)
        .unwrap()
        .replace("__DB__", &db)
        .replace(
            "do-dbs: [",
            "ignore-tables: [{db-name: \"__X__\", tbl-name: \"skipme\"}]\n    do-dbs: [",
        );
    std::fs::write(&s.task, text.replace("__X__", &db)).unwrap();
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
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
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
        if got == up_union {
            break;
        }
        if std::time::Instant::now() > deadline {
            panic!(
                "merged table differs: {} rows vs {} expected",
                got.len(),
                up_union.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
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
