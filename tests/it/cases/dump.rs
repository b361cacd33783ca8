//! The dump unit against a real MariaDB: files and names, an exact replay of every type, the
//! consistency modes and their privileges, and a flush dump taken during continuous writes
//! whose recorded position matches its snapshot.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dm::binlog::decode::{DecodePlan, decode_rows, rows_table_id};
use dm::binlog::event::{BinlogEvent, types};
use dm::binlog::location::Position;
use dm::binlog::stream::{Flavor, StartPoint, StreamRequest, master_status, open_stream};
use dm::binlog::value::{ColumnInfo, SqlType, Value as BinValue};
use dm::config::subtask::SubTaskConfig;
use dm::config::{SourceConfig, TaskConfig};
use dm::error::DmError;
use dm::units::dump::metadata::DumpMetadata;
use dm::units::dump::writer::escape_name;
use dm::units::dump::{DumpStatus, run_dump};
use futures_util::StreamExt;
use mysql_async::binlog::events::TableMapEvent;
use mysql_async::prelude::*;
use tracing::instrument::WithSubscriber;

use crate::harness::{
    BlockAllowList, Instance, MariaDb, Section, TaskYaml, TestDb, eventually, fresh_db,
    shared_downstream, shared_upstream,
};

/// A subtask of `server` selecting database `db`, dumping as `user` (no password) with the
/// `mydumpers` entry `mydumper`.
fn subtask(server: &MariaDb, db: &str, user: &str, mydumper: Section) -> SubTaskConfig {
    subtask_with(server, db, user, mydumper, "")
}

/// The task of [`subtask`]: a `full` task of source `up` selecting `db`.
fn task_yaml(db: &str, mydumper: Section) -> String {
    TaskYaml::new("dump_it", "full")
        .target_root(3306)
        .block_allow_list("ba", BlockAllowList::new().do_db(db))
        .mydumper("m", mydumper)
        .instance(Instance::new("up").block_allow_list("ba").mydumper("m"))
        .render()
}

/// [`subtask`] with extra YAML lines (at 2 spaces) in the source's `from`.
fn subtask_with(
    server: &MariaDb,
    db: &str,
    user: &str,
    mydumper: Section,
    from_extra: &str,
) -> SubTaskConfig {
    let task = task_yaml(db, mydumper);
    let source = format!(
        r#"source-id: "up"
flavor: "mariadb"
from:
  host: "127.0.0.1"
  port: {}
  user: "{user}"
  password: ""
{from_extra}
"#,
        server.port()
    );
    let task = TaskConfig::from_yaml(&task, "dump-test-task").expect("task config");
    let mut sub = task.subtasks().remove(0);
    sub.apply_source(&SourceConfig::from_yaml(&source, "dump-test-source").expect("source"));
    sub
}

async fn dump(
    cfg: &SubTaskConfig,
    dir: &Path,
) -> (Result<DumpMetadata, DmError>, DumpStatus, Duration) {
    let status = Arc::new(Mutex::new(DumpStatus::default()));
    let t0 = Instant::now();
    let owner = dm::units::dump::owner::DumpOwner::fresh(&cfg.name, &cfg.source_id, "test".into());
    let res = run_dump(cfg, None, dir, &owner, status.clone()).await;
    let took = t0.elapsed();
    let s = status.lock().unwrap().clone();
    (res, s, took)
}

/// The file names in `dir`, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("dump dir")
        .map(|e| e.unwrap().file_name().into_string().expect("UTF-8 name"))
        .collect();
    v.sort();
    v
}

/// Data files of `db`.`table` (escaped names).
fn data_files(all: &[String], db: &str, table: &str) -> Vec<String> {
    let prefix = format!("{}.{}.", escape_name(db), escape_name(table));
    all.iter()
        .filter(|n| {
            n.strip_prefix(&prefix).is_some_and(|rest| {
                rest.len() == 13
                    && rest.ends_with(".sql")
                    && rest[..9].bytes().all(|b| b.is_ascii_digit())
            })
        })
        .cloned()
        .collect()
}

/// A minimal loader: runs every `<db>.*-schema.sql`, then every data file of `db`, on `dst`.
async fn replay(dir: &Path, db: &str, dst: &TestDb) {
    let all = files(dir);
    let prefix = format!("{}.", escape_name(db));
    let mut conn = dst.conn().await;
    conn.query_drop("SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO', time_zone = '-03:00'")
        .await
        .unwrap();
    let ours = all.iter().filter(|n| n.starts_with(&prefix));
    let (schemas, data): (Vec<&String>, Vec<&String>) = ours.partition(|n| n.contains("-schema"));
    for n in schemas
        .iter()
        .filter(|n| n.ends_with("-schema.sql"))
        .chain(&data)
    {
        let sql = std::fs::read_to_string(dir.join(n)).expect("dump file");
        conn.query_drop(&sql)
            .await
            .unwrap_or_else(|e| panic!("replaying {n}: {e}"));
    }
}

/// Base tables of `db` on `server`.
async fn tables(server: &MariaDb, db: &str) -> Vec<String> {
    let rows = server
        .query_rows(&format!(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{db}' \
             AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME"
        ))
        .await;
    rows.into_iter()
        .map(|r| r.get::<String, _>(0).unwrap())
        .collect()
}

fn q(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// All rows of `db`.`table`, ordered by every column.
async fn ordered_rows(server: &MariaDb, db: &str, table: &str) -> Vec<Vec<mysql_async::Value>> {
    let n: usize = server
        .query_rows(&format!(
            "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '{db}' \
             AND TABLE_NAME = '{}'",
            table.replace('\\', "\\\\").replace('\'', "\\'")
        ))
        .await[0]
        .get(0)
        .unwrap();
    let order: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
    server
        .query_rows(&format!(
            "SELECT * FROM {}.{} ORDER BY {}",
            q(db),
            q(table),
            order.join(",")
        ))
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect()
}

/// Compares every base table of `src` with the same table in `dst`: CHECKSUM TABLE and rows.
async fn assert_same_tables(src: &TestDb, dst: &TestDb) {
    let names = tables(src.server(), src.name()).await;
    assert_eq!(names, tables(dst.server(), dst.name()).await);
    for t in &names {
        let a = src
            .server()
            .checksum(&format!("{}.{}", q(src.name()), q(t)))
            .await;
        let b = dst
            .server()
            .checksum(&format!("{}.{}", q(dst.name()), q(t)))
            .await;
        assert_eq!(a, b, "CHECKSUM TABLE of {t}");
        assert_eq!(
            ordered_rows(src.server(), src.name(), t).await,
            ordered_rows(dst.server(), dst.name(), t).await,
            "rows of {t}"
        );
    }
}

const BIG_ROWS: u64 = 30_000;

async fn create_big(db: &TestDb) {
    db.exec(&format!(
        "SET SESSION max_recursive_iterations = 1000000;
         CREATE TABLE big (id INT PRIMARY KEY, k INT NOT NULL, c VARCHAR(60), pad CHAR(30), KEY (k));
         INSERT INTO big WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < {BIG_ROWS})
           SELECT n, n * 7 % 1000, CONCAT('row-', n, '-', MD5(n)), 'pad' FROM seq;
         ANALYZE TABLE big"
    ))
    .await;
}

const TYPES_TABLE: &str = "CREATE TABLE types (
  id INT PRIMARY KEY,
  ti TINYINT, tu TINYINT UNSIGNED, si SMALLINT, mi MEDIUMINT UNSIGNED, i INT, bi BIGINT,
  bu BIGINT UNSIGNED,
  de DECIMAL(30,10), f FLOAT, fu FLOAT(10,3), d DOUBLE,
  b1 BIT(1), b13 BIT(13), b64 BIT(64),
  dt DATE, tm TIME(2), dt6 DATETIME(6), ts3 TIMESTAMP(3) NULL DEFAULT NULL, yr YEAR,
  ch CHAR(10), vc VARCHAR(100), tx TEXT, l1 VARCHAR(50) CHARACTER SET latin1,
  bn BINARY(8), vb VARBINARY(20), bl BLOB,
  en ENUM('a','b','c d'), st SET('x','y','z'),
  js JSON, g GEOMETRY, pt POINT,
  zd DATE, zdt DATETIME
) DEFAULT CHARSET = utf8mb4";

const TYPES_ROWS: &str = r#"SET SESSION sql_mode = '';
INSERT INTO types VALUES
 (1, -128, 255, -32768, 16777215, -2147483648, -9223372036854775808, 18446744073709551615,
  -12345678901234567890.0123456789, 1.2345678, 12.3456, 2.718281828459045,
  b'1', b'1010101010101', b'1111111111111111111111111111111111111111111111111111111111111111',
  '2024-02-29', '-838:59:59.99', '2024-02-29 23:59:59.123456', '2024-02-29 12:34:56.789', 2024,
  'chär', 'emoji 😀 \' " \\ \n \t \0 end', REPEAT('long text ', 50), 'latin1 é ñ ß ÿ',
  X'0001020300', X'00FF00', X'000102FEFF00',
  'c d', 'x,z', '{"a": [1, 2.5, "ü"], "b": null}',
  ST_GeomFromText('LINESTRING(0 0, 1 1.5)', 4326), ST_GeomFromText('POINT(3.5 -4)'),
  '0000-00-00', '0000-00-00 00:00:00'),
 (3, 0, 0, 0, 0, 0, 0, 0, 0, 3.4028234e38, 0, 1e-300, b'0', b'0', b'0',
  '1000-01-01', '00:00:00', '1000-01-01 00:00:00', '2000-01-01 00:00:00.001', 1901,
  '', '', '', '', X'', X'', X'', '', '', '[]',
  ST_GeomFromText('POINT(0 0)'), ST_GeomFromText('POINT(0 0)'), '2024-00-00', '2024-01-00 10:00:00')"#;

const WEIRD: &str = "we`ird 'name ü";
const SLASHED: &str = "sl/ash.dot";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dump_writes_dumpling_files_that_replay_exactly() {
    let src = fresh_db(shared_upstream(), "dump_src");
    create_big(&src).await;
    src.exec(
        "CREATE TABLE comp (a INT, b VARCHAR(10), v INT, PRIMARY KEY (a, b));
         INSERT INTO comp WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 300)
           SELECT n % 17, CONCAT('b', n), n FROM s;
         CREATE TABLE nokey (a INT, b TEXT);
         INSERT INTO nokey WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 100)
           SELECT n % 10, IF(n % 3 = 0, NULL, 'dup') FROM s;
         CREATE TABLE empty (id INT PRIMARY KEY);
         CREATE TABLE gen (id INT PRIMARY KEY, a INT, b INT AS (a * 2) VIRTUAL, c INT AS (a + 1) STORED);
         INSERT INTO gen (id, a) VALUES (1, 10), (2, NULL), (3, -4);
         CREATE VIEW v AS SELECT id, k FROM big WHERE id < 10",
    )
    .await;
    src.exec(TYPES_TABLE).await;
    src.exec(TYPES_ROWS).await;
    src.exec(&format!(
        "INSERT INTO types (id) VALUES (2); UPDATE types SET ts3 = NULL WHERE id = 2;
         CREATE TABLE {w} (id INT PRIMARY KEY, `col with space` VARCHAR(20), `ü` INT);
         INSERT INTO {w} VALUES (1, 'a b', 1), (2, 'it''s', NULL), (3, '`tick`', 3);
         CREATE TABLE {s} (id BIGINT UNSIGNED NOT NULL, UNIQUE KEY (id));
         INSERT INTO {s} VALUES (0), (18446744073709551615)",
        w = q(WEIRD),
        s = q(SLASHED)
    ))
    .await;

    // The source's own session time zone is overridden by the dump's UTC sessions, and the
    // replay's by the files' header: TIMESTAMPs keep their instant.
    let cfg = subtask_with(
        shared_upstream(),
        src.name(),
        "root",
        Section::new()
            .set("threads", 4)
            .set("rows", 5000)
            .set("chunk-filesize", "100KiB")
            .set("statement-size", 20000)
            .set("extra-args", "--consistency flush"),
        "  session:\n    time_zone: \"+05:00\"",
    );
    let dir = tempfile::tempdir().unwrap();
    let (res, status, took) = dump(&cfg, dir.path()).await;
    let meta = res.expect("dump");
    eprintln!("dump of all tables: {took:?}, {status:?}");

    // metadata: finished, with a position and the upstream's GTID.
    assert!(meta.finished.is_some());
    assert!(meta.location.position.name.starts_with("mysql-bin."));
    assert!(meta.location.position.pos > 4);
    assert!(meta.location.gtid.is_some());
    assert_eq!(meta.after, None);
    assert_eq!(DumpMetadata::read(dir.path()).unwrap(), meta);

    let all = files(dir.path());
    let db = escape_name(src.name());
    assert!(!all.iter().any(|n| n.ends_with(".tmp")), "{all:?}");
    let create = std::fs::read_to_string(dir.path().join(format!("{db}-schema-create.sql")))
        .expect("schema-create file");
    assert!(
        create.starts_with(&format!("CREATE DATABASE IF NOT EXISTS `{}`", src.name()))
            && create.contains("utf8mb4"),
        "{create}"
    );
    for t in [
        "big", "comp", "nokey", "empty", "gen", "types", WEIRD, SLASHED,
    ] {
        let f = format!("{db}.{}-schema.sql", escape_name(t));
        assert!(all.contains(&f), "{f} in {all:?}");
    }
    assert!(
        all.contains(&format!("{db}.{WEIRD}-schema.sql")),
        "raw name"
    );
    assert!(all.contains(&format!("{db}.sl%2Fash%2Edot-schema.sql")));
    let view = std::fs::read_to_string(dir.path().join(format!("{db}.v-schema-view.sql")))
        .expect("view file");
    assert!(
        view.contains("VIEW `v` AS select") && !view.contains(src.name()),
        "{view}"
    );
    assert!(data_files(&all, src.name(), "empty").is_empty());
    assert_eq!(data_files(&all, src.name(), "nokey").len(), 1);
    let big = data_files(&all, src.name(), "big");
    let chunks: std::collections::BTreeSet<u64> = big
        .iter()
        .map(|n| n[n.len() - 13..n.len() - 4].parse::<u64>().unwrap() / 1000)
        .collect();
    assert!(chunks.len() >= 5, "several chunks: {big:?}");
    assert!(
        big.len() > chunks.len(),
        "chunks spill over 100 KiB files: {big:?}"
    );
    for f in &big {
        let len = std::fs::metadata(dir.path().join(f)).unwrap().len();
        assert!(len <= 100 << 10, "{f} is {len} bytes");
        let text = std::fs::read_to_string(dir.path().join(f)).unwrap();
        for stmt in text
            .split_terminator(";\n")
            .filter(|s| s.starts_with("INSERT"))
        {
            assert!(
                stmt.len() + 2 <= 20_000,
                "statement of {} bytes",
                stmt.len()
            );
            assert!(stmt.starts_with("INSERT INTO `big` (`id`,`k`,`c`,`pad`) VALUES\n("));
        }
    }
    let expect_rows = BIG_ROWS + 300 + 100 + 3 + 3 + 3 + 2;
    assert_eq!(status.finished_rows, expect_rows);
    assert_eq!(status.total_tables, 8);
    assert_eq!(status.completed_tables, 8);
    assert_eq!(status.progress, "100.00 %");
    assert!(status.estimate_total_rows >= BIG_ROWS / 2);
    let data_bytes: u64 = all
        .iter()
        .filter(|n| !n.contains("-schema") && n.ends_with(".sql"))
        .map(|n| std::fs::metadata(dir.path().join(n)).unwrap().len())
        .sum();
    assert_eq!(status.finished_bytes, data_bytes);

    let dst = fresh_db(shared_downstream(), "dump_dst");
    replay(dir.path(), src.name(), &dst).await;
    assert_same_tables(&src, &dst).await;
}

/// The `id`s of the rows of a dumped `big` data file, in file order.
fn big_ids(text: &str) -> Vec<u64> {
    text.split_terminator(";\n")
        .filter(|s| s.starts_with("INSERT"))
        .flat_map(|stmt| {
            let (_, rows) = stmt.split_once(" VALUES\n").expect("multi-row INSERT");
            rows.split(",\n")
                .map(|row| {
                    let id = row.strip_prefix('(').expect("a row tuple");
                    id[..id.find(',').expect("more columns")].parse().unwrap()
                })
                .collect::<Vec<u64>>()
        })
        .collect()
}

/// 30k rows dumped by 4 threads in key ranges of 5000 rows: one file per range, the ranges
/// in order and disjoint, every row exactly once, counts and bytes as the status says, and a
/// replay equal to the source (CHECKSUM TABLE and every row). Prints the rate; speed goals
/// live in `bench/`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dump_in_4_threads_splits_30k_rows_into_key_ranges_each_row_once() {
    let src = fresh_db(shared_upstream(), "dump_ranges");
    create_big(&src).await;
    let cfg = subtask(
        shared_upstream(),
        src.name(),
        "root",
        Section::new()
            .set("threads", 4)
            .set("rows", 5000)
            .set("extra-args", "--consistency flush"),
    );
    let dir = tempfile::tempdir().unwrap();
    // The dump's own summary (lock held, rows/s, MB/s) shows with --nocapture.
    let logs = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("dm=info")
        .with_ansi(false)
        .finish();
    let (res, status, took) = dump(&cfg, dir.path()).with_subscriber(logs).await;
    let meta = res.expect("dump");
    assert!(meta.finished.is_some());
    assert_eq!(status.finished_rows, BIG_ROWS);
    assert_eq!(
        (status.total_tables, status.completed_tables),
        (1, 1),
        "{status:?}"
    );
    assert_eq!(status.progress, "100.00 %");

    // The key span 1..=30000 in ranges of about 5000 rows (fewer when the statistics
    // under-estimate the table), one file each (no chunk-filesize): file numbers are
    // chunk * 1000, chunks 0, 1, 2, ...
    let all = files(dir.path());
    assert!(!all.iter().any(|n| n.ends_with(".tmp")), "{all:?}");
    let big = data_files(&all, src.name(), "big");
    let numbers: Vec<u64> = big
        .iter()
        .map(|n| n[n.len() - 13..n.len() - 4].parse().unwrap())
        .collect();
    let expected: Vec<u64> = (0..big.len() as u64).map(|c| c * 1000).collect();
    assert_eq!(numbers, expected, "one file per key range: {big:?}");
    assert!(
        (2..=6).contains(&big.len()),
        "30k rows in ranges of 5000 rows: {big:?}"
    );
    let mut bytes = 0;
    let mut ids = Vec::new();
    let mut previous_max = 0;
    for f in &big {
        let text = std::fs::read_to_string(dir.path().join(f)).unwrap();
        bytes += text.len() as u64;
        let in_file = big_ids(&text);
        let (min, max) = (in_file.iter().min(), in_file.iter().max());
        let (Some(&min), Some(&max)) = (min, max) else {
            panic!("{f} has no rows");
        };
        assert!(
            previous_max < min,
            "{f} ({min}..={max}) starts after the previous range ends ({previous_max})"
        );
        previous_max = max;
        ids.extend(in_file);
    }
    ids.sort_unstable();
    let differ = ids.iter().zip(1..=BIG_ROWS).position(|(a, b)| *a != b);
    assert_eq!(
        (ids.len() as u64, differ),
        (BIG_ROWS, None),
        "every id 1..={BIG_ROWS} exactly once; first wrong one: {:?}",
        differ.map(|i| (i, ids[i]))
    );
    assert_eq!(status.finished_bytes, bytes);

    let dst = fresh_db(shared_downstream(), "dump_ranges_dst");
    replay(dir.path(), src.name(), &dst).await;
    assert_same_tables(&src, &dst).await;

    let secs = took.as_secs_f64();
    eprintln!(
        "dump rate (debug build, threads 4; for information): {} rows, {} bytes in {:.3} s = {:.0} rows/s, {:.2} MB/s",
        status.finished_rows,
        status.finished_bytes,
        secs,
        status.finished_rows as f64 / secs,
        status.finished_bytes as f64 / 1e6 / secs
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_without_reload_names_the_privilege_and_lock_needs_lock_tables() {
    let up = shared_upstream();
    let src = fresh_db(up, "dump_priv");
    src.exec("CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1), (2)")
        .await;
    up.exec(
        "CREATE USER IF NOT EXISTS 'norel'@'127.0.0.1';
         GRANT SELECT, REPLICATION CLIENT ON *.* TO 'norel'@'127.0.0.1'",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();

    let flush = subtask(
        up,
        src.name(),
        "norel",
        Section::new()
            .set("threads", 2)
            .set("extra-args", "--consistency flush"),
    );
    let err = dump(&flush, dir.path()).await.0.expect_err("no RELOAD");
    assert_eq!(err.code, 32901, "{}", err.report());
    assert!(err.message.contains("RELOAD"), "{}", err.message);
    assert!(
        err.message.contains("--consistency lock") && err.message.contains("--consistency none"),
        "{}",
        err.message
    );
    assert!(!dir.path().join("metadata").exists());

    let lock = subtask(
        up,
        src.name(),
        "norel",
        Section::new()
            .set("threads", 2)
            .set("extra-args", "--consistency lock"),
    );
    let err = dump(&lock, dir.path()).await.0.expect_err("no LOCK TABLES");
    assert_eq!(err.code, 32901, "{}", err.report());
    assert!(err.message.contains("LOCK TABLES"), "{}", err.message);
    assert!(
        err.message.contains("--consistency none"),
        "{}",
        err.message
    );

    up.exec(&format!(
        "GRANT LOCK TABLES ON {}.* TO 'norel'@'127.0.0.1'",
        q(src.name())
    ))
    .await;
    let (res, status, _) = dump(&lock, dir.path()).await;
    let meta = res.expect("lock dump with LOCK TABLES");
    assert!(meta.finished.is_some());
    assert_eq!(meta.after, None);
    assert_eq!(status.finished_rows, 2);
    let dst = fresh_db(shared_downstream(), "dump_priv_dst");
    replay(dir.path(), src.name(), &dst).await;
    assert_same_tables(&src, &dst).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn none_records_the_after_location_and_reruns_are_idempotent() {
    let up = shared_upstream();
    let src = fresh_db(up, "dump_none");
    src.exec(
        "CREATE TABLE t (id INT PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'a'), (2, NULL)",
    )
    .await;
    let cfg = subtask(
        up,
        src.name(),
        "root",
        Section::new()
            .set("threads", 3)
            .set("extra-args", "--consistency none"),
    );
    let dir = tempfile::tempdir().unwrap();

    // An unfinished earlier dump is removed first.
    let stale = format!("{}.old.000000000.sql", escape_name(src.name()));
    std::fs::write(dir.path().join(&stale), "garbage").unwrap();
    std::fs::write(dir.path().join("x.sql.tmp"), "garbage").unwrap();
    std::fs::write(
        dir.path().join("metadata"),
        "Started dump at: 2020-01-01 00:00:00\nSHOW MASTER STATUS:\n\tLog: mysql-bin.000001\n\tPos: 4\n\tGTID:\n\n",
    )
    .unwrap();

    let (res, _, _) = dump(&cfg, dir.path()).await;
    let meta = res.expect("none dump");
    let after = meta.after.clone().expect("after block");
    assert!(after.position >= meta.location.position);
    assert!(after.gtid.is_some());
    let text = std::fs::read_to_string(dir.path().join("metadata")).unwrap();
    assert!(
        text.contains("SHOW MASTER STATUS: /* AFTER CONNECTION POOL ESTABLISHED */"),
        "{text}"
    );
    assert!(text.contains("Finished dump at: "), "{text}");
    let all = files(dir.path());
    assert!(
        !all.contains(&stale) && !all.contains(&"x.sql.tmp".to_string()),
        "{all:?}"
    );
    assert_eq!(data_files(&all, src.name(), "t").len(), 1);

    // A finished dump is not trusted by the dump unit: whether it may be reused is the
    // caller's decision (`owner::check`); asked to dump, it dumps again from scratch.
    let data = dir.path().join(&data_files(&all, src.name(), "t")[0]);
    std::fs::remove_file(&data).unwrap();
    let (again, status, _) = dump(&cfg, dir.path()).await;
    let again = again.expect("second dump");
    assert!(again.finished.is_some());
    assert!(again.location.position >= meta.location.position);
    assert_eq!(status.finished_rows, 2);
    assert!(data.exists(), "the data file is written again");
}

/// Replica server ids for this module's binlog readers.
fn server_id() -> u32 {
    200_000 + rand::random::<u32>() % 1_000_000
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_dump_during_writes_matches_its_binlog_position() {
    let up = shared_upstream();
    let src = fresh_db(up, "dump_live");
    src.exec("CREATE TABLE live (id BIGINT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(32))")
        .await;

    // One writer, one autocommit insert at a time: ids commit in order.
    let stop = Arc::new(AtomicBool::new(false));
    let inserted = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, inserted) = (stop.clone(), inserted.clone());
        let mut conn = src.conn().await;
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                conn.query_drop("INSERT INTO live (v) VALUES ('x')")
                    .await
                    .expect("insert");
                inserted.fetch_add(1, Ordering::Relaxed);
            }
            conn.disconnect().await.unwrap();
        })
    };
    let at_least = |n: u64| {
        let inserted = inserted.clone();
        move || {
            let inserted = inserted.clone();
            async move { inserted.load(Ordering::Relaxed) >= n }
        }
    };
    eventually(Duration::from_secs(30), at_least(300)).await;

    let cfg = subtask(
        up,
        src.name(),
        "root",
        Section::new()
            .set("threads", 2)
            .set("rows", 100)
            .set("extra-args", "--consistency flush"),
    );
    let dir = tempfile::tempdir().unwrap();
    let (res, _, _) = dump(&cfg, dir.path()).await;
    let meta = res.expect("dump during writes");
    let after_dump = inserted.load(Ordering::Relaxed);
    eventually(Duration::from_secs(30), at_least(after_dump + 50)).await;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    let total = inserted.load(Ordering::Relaxed);

    // The dump holds exactly ids 1..=D.
    let dst = fresh_db(shared_downstream(), "dump_live_dst");
    replay(dir.path(), src.name(), &dst).await;
    let row = &dst
        .query_rows("SELECT COUNT(*), MIN(id), MAX(id) FROM live")
        .await[0];
    let (d, min, max): (u64, u64, u64) = (
        row.get(0).unwrap(),
        row.get(1).unwrap(),
        row.get(2).unwrap(),
    );
    assert_eq!((min, max), (1, d), "no dumped row missing below the max id");
    assert!(d >= 300 && d < total, "dumped {d} of {total}");

    // The binlog from the recorded location holds exactly ids D+1..=total, in order.
    let mut conn = up.conn().await;
    let (end, _) = master_status(&mut conn, Flavor::MariaDb).await.unwrap();
    let end = end.unwrap();
    let req = StreamRequest {
        server_id: server_id(),
        flavor: Flavor::MariaDb,
        start: StartPoint::Position(meta.location.position.clone()),
        heartbeat: Duration::from_secs(1),
    };
    let mut stream = open_stream(up.opts(None), &req).await.unwrap();
    let columns = [
        ColumnInfo::new("id", SqlType::BigInt),
        ColumnInfo::new("v", SqlType::VarChar),
    ];
    let mut plan: Option<DecodePlan> = None;
    let mut file = meta.location.position.name.clone();
    let mut ids = Vec::new();
    let read = async {
        while let Some(ev) = stream.next().await {
            let ev = ev.expect("binlog event");
            let t = ev.header().event_type_raw();
            match BinlogEvent::classify(&ev).unwrap() {
                BinlogEvent::Rotate { next, .. } => file = next,
                BinlogEvent::TableMap => {
                    let tm: TableMapEvent = ev.read_event().unwrap();
                    if tm.database_name() == src.name() && tm.table_name() == "live" {
                        plan = Some(DecodePlan::from_table_map_body(ev.data(), &columns).unwrap());
                    }
                }
                BinlogEvent::Rows { .. } if t == types::WRITE_ROWS_V1 => {
                    if let Some(p) = plan
                        .as_ref()
                        .filter(|p| rows_table_id(ev.data()).unwrap() == p.table_id())
                    {
                        for r in decode_rows(p, t, ev.data()).unwrap().rows {
                            match r.after.unwrap()[0] {
                                BinValue::Int(id) => ids.push(id as u64),
                                ref other => panic!("id {other:?}"),
                            }
                        }
                    }
                }
                _ => {}
            }
            if ev.header().log_pos() != 0
                && Position::new(file.clone(), ev.header().log_pos()) >= end
            {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("binlog read to the end position");
    let expected: Vec<u64> = (d + 1..=total).collect();
    assert_eq!(
        ids.first(),
        Some(&(d + 1)),
        "the first insert after the dump's position"
    );
    assert_eq!(ids, expected);
}
