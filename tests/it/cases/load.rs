//! The load unit against a real MariaDB target: dump directories written by hand (dumpling's
//! and mydumper's layouts), routed shard merges, odd names, on-duplicate modes, and resuming
//! after a failed file without loading anything twice.

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use dm::binlog::gtid::GtidSet;
use dm::binlog::location::{Location, Position};
use dm::config::{SubTaskConfig, TaskConfig};
use dm::error::{DmError, codes};
use dm::units::dump::metadata::DumpMetadata;
use dm::units::load::{LoadStatus, LoadSummary, clear_checkpoint, load_finished, run_load};
use mysql_async::prelude::*;
use tracing::instrument::WithSubscriber;

use crate::harness::task::quote;
use crate::harness::{
    BlockAllowList, Instance, MariaDb, Section, TaskYaml, TestDb, fresh_db, shared_downstream,
};

/// A database with a name `fresh_db` cannot make (quotes, spaces, unicode); dropped on drop.
struct OddDb {
    server: &'static MariaDb,
    name: String,
}

impl OddDb {
    fn new(server: &'static MariaDb) -> Self {
        let name = format!("ld`b 'q' ü {:06x}", rand::random::<u32>() & 0xff_ffff);
        Self { server, name }
    }
}

impl Drop for OddDb {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS `{}`", self.name.replace('`', "``"));
        crate::harness::process::run_blocking(|| self.server.exec(&sql));
    }
}

pub(crate) fn q(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// Dumpling's escaping of a name in a file name.
fn esc(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if matches!(
            c,
            '\0'..='\x1f' | '%' | '"' | '*' | '.' | '/' | ':' | '<' | '>' | '?' | '\\' | '|'
        ) {
            out.push_str(&format!("%{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

pub(crate) fn write_metadata(dir: &Path, finished: bool) {
    DumpMetadata {
        started: "2026-11-21 20:00:00".into(),
        location: Location {
            position: Position::new("mysql-bin.000003", 1234),
            gtid: Some(GtidSet::parse_any("0-1-42").unwrap()),
        },
        after: None,
        finished: finished.then(|| "2026-11-21 20:00:09".into()),
    }
    .write(dir)
    .unwrap();
}

pub(crate) fn put(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

pub(crate) const HEADER: &str = "/*!40101 SET NAMES binary*/;\n";

fn schema_create(dir: &Path, db: &str) {
    put(
        dir,
        &format!("{}-schema-create.sql", esc(db)),
        &format!(
            "{HEADER}CREATE DATABASE {} /*!40100 DEFAULT CHARACTER SET utf8mb4 */;\n",
            q(db)
        ),
    );
}

fn table_schema(dir: &Path, db: &str, table: &str, body: &str) {
    put(
        dir,
        &format!("{}.{}-schema.sql", esc(db), esc(table)),
        &format!(
            "{HEADER}/*!40014 SET FOREIGN_KEY_CHECKS=0*/;\nCREATE TABLE {} (\n{body}\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;\n",
            q(table)
        ),
    );
}

/// A dumpling data file `<db>.<tbl>.<index>.sql`; returns its name.
pub(crate) fn data_file(dir: &Path, db: &str, table: &str, index: u32, body: &str) -> String {
    let name = format!("{}.{}.{index:09}.sql", esc(db), esc(table));
    put(dir, &name, &format!("{HEADER}{body}"));
    name
}

pub(crate) struct TaskOpts<'a> {
    pub(crate) meta: &'a str,
    pub(crate) do_dbs: Vec<&'a str>,
    pub(crate) ignore_table: Option<(&'a str, &'a str)>,
    /// `(schema, target schema)` of a `shard_*` → `merged` route with `c_table` extracted.
    pub(crate) merge: Option<(&'a str, &'a str)>,
    pub(crate) pool: u32,
    pub(crate) mode: &'a str,
    /// `loaders.data-statement`: `insert` or `load-data`.
    pub(crate) statement: &'a str,
    /// `loaders.defer-secondary-indexes`.
    pub(crate) defer: bool,
}

pub(crate) fn subtask(name: &str, o: &TaskOpts<'_>) -> SubTaskConfig {
    let yaml = task_yaml(name, o);
    let task = TaskConfig::from_yaml(&yaml, "load-test.yaml")
        .unwrap_or_else(|e| panic!("{}\n{yaml}", e.report()));
    task.subtasks().remove(0)
}

/// The `full` task of [`subtask`]: source `src-load`, loader `l`.
fn task_yaml(name: &str, o: &TaskOpts<'_>) -> String {
    let mut ba = BlockAllowList::new().do_dbs(&o.do_dbs);
    if let Some((db, table)) = o.ignore_table {
        ba = ba.ignore_table(db, table);
    }
    let mut instance = Instance::new("src-load").block_allow_list("ba").loader("l");
    let mut task = TaskYaml::new(name, "full")
        .meta_schema(o.meta)
        .target_root(shared_downstream().port())
        .block_allow_list("ba", ba)
        .loader(
            "l",
            Section::new()
                .set("pool-size", o.pool)
                .set("dir", "./unused")
                .set("on-duplicate-logical", o.mode)
                .set("data-statement", o.statement)
                .set("defer-secondary-indexes", o.defer),
        );
    if let Some((schema, target)) = o.merge {
        task = task.raw(&format!(
            r#"routes:
  merge:
    schema-pattern: {}
    table-pattern: "shard_*"
    target-schema: {}
    target-table: "merged"
    extract-table:
      table-regexp: "shard_(.*)"
      target-column: "c_table""#,
            quote(schema),
            quote(target)
        ));
        instance = instance.route_rules(&["merge"]);
    }
    task.instance(instance).render()
}

/// A log sink for one test's load: its lines are asserted on (and shown with --nocapture).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // Through the test harness's capture: shown only for failures or with --nocapture.
        eprint!("{}", String::from_utf8_lossy(buf));
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Runs a load with its logs captured.
pub(crate) async fn load_logged(
    cfg: &SubTaskConfig,
    dir: &Path,
) -> ((Result<LoadSummary, DmError>, LoadStatus), String) {
    let logs = Logs::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_env_filter("dm=info")
        .with_ansi(false)
        .finish();
    let out = load(cfg, dir).with_subscriber(subscriber).await;
    (out, logs.text())
}

async fn load(cfg: &SubTaskConfig, dir: &Path) -> (Result<LoadSummary, DmError>, LoadStatus) {
    let status = Arc::new(Mutex::new(LoadStatus::default()));
    let res = run_load(cfg, None, dir, status.clone()).await;
    let st = status.lock().unwrap().clone();
    (res, st)
}

/// Every row of `sql`, each value as text (`None` for NULL).
pub(crate) async fn rows(sql: &str) -> Vec<Vec<Option<String>>> {
    rows_on(shared_downstream(), sql).await
}

/// [`rows`] on `server`.
async fn rows_on(server: &MariaDb, sql: &str) -> Vec<Vec<Option<String>>> {
    server
        .query_rows(sql)
        .await
        .into_iter()
        .map(|r| {
            (0..r.len())
                .map(|i| r.get::<Option<String>, _>(i).unwrap())
                .collect()
        })
        .collect()
}

/// A downstream of its own for the tests that count the LOAD DATA statements it runs
/// (`Com_load`): on the shared one, other tests' loads would count too. Those tests hold
/// [`COUNTING`] while they load, so their counts do not mix either.
fn counted_downstream() -> &'static MariaDb {
    static DOWNSTREAM: OnceLock<MariaDb> = OnceLock::new();
    DOWNSTREAM.get_or_init(MariaDb::start_downstream)
}

static COUNTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The LOAD DATA statements `server` has run: `SHOW GLOBAL STATUS LIKE 'Com_load'`.
async fn com_load(server: &MariaDb) -> u64 {
    let rows = rows_on(server, "SHOW GLOBAL STATUS LIKE 'Com_load'").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    rows[0][1].as_deref().unwrap().parse().unwrap()
}

fn expect(rows: &[&[Option<&str>]]) -> Vec<Vec<Option<String>>> {
    rows.iter()
        .map(|r| r.iter().map(|v| v.map(String::from)).collect())
        .collect()
}

async fn checkpoint_files(meta: &TestDb, task: &str) -> Vec<(String, String, String, bool)> {
    rows_on(
        meta.server(),
        &format!(
            "SELECT filename, cp_schema, cp_table, `offset` = end_pos FROM {}.{} \
         WHERE id = 'src-load' ORDER BY filename",
            q(meta.name()),
            q(&format!("{task}_loader_checkpoint"))
        ),
    )
    .await
    .into_iter()
    .map(|r| {
        let v: Vec<String> = r.into_iter().map(Option::unwrap).collect();
        (v[0].clone(), v[1].clone(), v[2].clone(), v[3] == "1")
    })
    .collect()
}

#[tokio::test]
async fn load_routes_shards_quotes_names_and_resumes_as_noop_by_insert() {
    routes_shards_quotes_names_and_resumes("insert").await;
}

#[tokio::test]
async fn load_routes_shards_quotes_names_and_resumes_as_noop_by_load_data() {
    routes_shards_quotes_names_and_resumes("load-data").await;
}

async fn routes_shards_quotes_names_and_resumes(statement: &str) {
    let down = shared_downstream();
    let src = fresh_db(down, "load_src");
    let target = fresh_db(down, "load_tgt");
    let meta = fresh_db(down, "load_meta");
    let odd = OddDb::new(down);
    let db = src.name();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_metadata(dir, true);
    schema_create(dir, db);
    schema_create(dir, &odd.name);

    // An integer-PK table in three files, with strings that look like statement ends.
    table_schema(
        dir,
        db,
        "t_pk",
        "  `id` int(11) NOT NULL,\n  `v` varchar(64) DEFAULT NULL,\n  PRIMARY KEY (`id`)",
    );
    let mut expected_pk = Vec::new();
    let mut files = Vec::new();
    for f in 0..3u32 {
        let mut body = String::new();
        for half in 0..2 {
            let ids: Vec<u32> = (1..=10).map(|i| f * 20 + half * 10 + i).collect();
            let vals: Vec<String> = ids
                .iter()
                .map(|id| match id % 5 {
                    0 => format!("({id},'ends;')"),
                    1 => format!("({id},'it''s \\'q\\' ; \\\\ \\n x')"),
                    2 => format!("({id},'raw\nnewline;\n')"),
                    3 => format!("({id},NULL)"),
                    _ => format!("({id},'é \"d\" `b`')"),
                })
                .collect();
            body.push_str(&format!(
                "INSERT INTO `t_pk` (`id`,`v`) VALUES\n{};\n",
                vals.join(",\n")
            ));
            for id in ids {
                let v = match id % 5 {
                    0 => Some("ends;".to_string()),
                    1 => Some("it's 'q' ; \\ \n x".to_string()),
                    2 => Some("raw\nnewline;\n".to_string()),
                    3 => None,
                    _ => Some("é \"d\" `b`".to_string()),
                };
                expected_pk.push(vec![Some(id.to_string()), v]);
            }
        }
        files.push(data_file(dir, db, "t_pk", f, &body));
    }

    // A table without any key, with duplicate rows by design.
    table_schema(
        dir,
        db,
        "t_nokey",
        "  `a` int(11) DEFAULT NULL,\n  `b` varchar(20) DEFAULT NULL",
    );
    files.push(data_file(
        dir,
        db,
        "t_nokey",
        0,
        "INSERT INTO `t_nokey` VALUES (1,'x'),(1,'x'),(2,NULL);\n",
    ));
    files.push(data_file(
        dir,
        db,
        "t_nokey",
        1,
        "INSERT INTO `t_nokey` VALUES (1,'x'),(3,'y');\n",
    ));

    // Schema only.
    table_schema(
        dir,
        db,
        "t_empty",
        "  `id` int(11) NOT NULL,\n  PRIMARY KEY (`id`)",
    );

    // Names needing quoting (backtick, quote, space, unicode, a dot escaped in the file name).
    let odd_table = "t`q'x y.ü";
    table_schema(
        dir,
        db,
        odd_table,
        "  `c``1` int(11) NOT NULL,\n  `c 'two'` varchar(20) DEFAULT NULL,\n  `ü` varchar(20) DEFAULT NULL,\n  PRIMARY KEY (`c``1`)",
    );
    files.push(data_file(
        dir,
        db,
        odd_table,
        0,
        "INSERT INTO `t``q'x y.ü` (`c``1`,`c 'two'`,`ü`) VALUES (1,'a''b','ü1'),(2,'x;y','日本');\n",
    ));
    table_schema(
        dir,
        &odd.name,
        "t odd",
        "  `id` int(11) NOT NULL,\n  PRIMARY KEY (`id`)",
    );
    files.push(data_file(
        dir,
        &odd.name,
        "t odd",
        0,
        "INSERT INTO `t odd` VALUES (7),(8);\n",
    ));

    // mydumper's layout: no chunk index, SET lines, INSERT without a column list.
    table_schema(
        dir,
        db,
        "t_my",
        "  `id` int(11) NOT NULL,\n  `d` datetime DEFAULT NULL,\n  `n` decimal(10,2) DEFAULT NULL,\n  PRIMARY KEY (`id`)",
    );
    let my_name = format!("{db}.t_my.sql");
    put(
        dir,
        &my_name,
        "/*!40101 SET NAMES binary*/;\n/*!40014 SET FOREIGN_KEY_CHECKS=0*/;\n/*!40103 SET TIME_ZONE='+00:00' */;\n\
         INSERT INTO `t_my` VALUES\n(1,'2020-01-02 03:04:05',1.50),\n(2,NULL,-2.00);\n",
    );
    files.push(my_name);

    // Two shards with disjoint ids merged into one routed target with an extract column.
    for (n, with_columns) in [(1, true), (2, false)] {
        let t = format!("shard_{n}");
        table_schema(
            dir,
            db,
            &t,
            "  `id` int(11) NOT NULL,\n  `name` varchar(20) DEFAULT NULL,\n  PRIMARY KEY (`id`)",
        );
        let cols = if with_columns { " (`id`,`name`)" } else { "" };
        let vals: Vec<String> = (1..=3)
            .map(|i| format!("({},'s{n}-{i}')", n * 100 + i))
            .collect();
        files.push(data_file(
            dir,
            db,
            &t,
            0,
            &format!("INSERT INTO `{t}`{cols} VALUES {};\n", vals.join(",")),
        ));
    }

    // A foreign key to a table created after it (by name order) and loaded in parallel.
    table_schema(
        dir,
        db,
        "t_child",
        "  `id` int(11) NOT NULL,\n  `pid` int(11) DEFAULT NULL,\n  PRIMARY KEY (`id`),\n  \
         KEY `fk_p` (`pid`),\n  CONSTRAINT `fk_p` FOREIGN KEY (`pid`) REFERENCES `t_pk` (`id`)",
    );
    files.push(data_file(
        dir,
        db,
        "t_child",
        0,
        "INSERT INTO `t_child` VALUES (1,60),(2,1);\n",
    ));

    // Filtered out by the block-allow-list: neither created nor loaded nor checkpointed.
    table_schema(dir, db, "t_ignored", "  `id` int(11) NOT NULL");
    data_file(
        dir,
        db,
        "t_ignored",
        0,
        "INSERT INTO `t_ignored` VALUES (1);\n",
    );

    let task = format!("lm{:06x}", rand::random::<u32>() & 0xff_ffff);
    let cfg = subtask(
        &task,
        &TaskOpts {
            meta: meta.name(),
            do_dbs: vec![db, &odd.name],
            ignore_table: Some((db, "t_ignored")),
            merge: Some((db, target.name())),
            pool: 3,
            mode: "replace",
            statement,
            defer: true,
        },
    );
    let (res, st) = load(&cfg, dir).await;
    let summary = res.unwrap_or_else(|e| panic!("{}", e.report()));
    assert_eq!(summary.files_loaded, files.len());
    // Every statement of these files has a LOAD DATA form.
    let by_load_data = if statement == "insert" {
        0
    } else {
        summary.rows
    };
    assert_eq!(summary.load_data_rows, by_load_data);
    assert_eq!(summary.files_skipped, 0);
    assert_eq!(summary.rows, 60 + 5 + 2 + 2 + 2 + 6 + 2);
    assert_eq!(st.finished_bytes, st.total_bytes);
    assert!(st.total_bytes > 0);
    assert_eq!(st.progress, "100.00 %");
    assert_eq!(st.meta_binlog, "(mysql-bin.000003, 1234)");
    assert_eq!(st.meta_binlog_gtid, "0-1-42");

    let check = async || {
        let t = |name: &str| format!("{}.{}", q(db), q(name));
        assert_eq!(
            rows(&format!("SELECT id, pid FROM {} ORDER BY id", t("t_child"))).await,
            expect(&[&[Some("1"), Some("60")], &[Some("2"), Some("1")]])
        );
        assert_eq!(
            rows(&format!("SELECT id, v FROM {} ORDER BY id", t("t_pk"))).await,
            expected_pk
        );
        assert_eq!(
            rows(&format!("SELECT a, b FROM {} ORDER BY a, b", t("t_nokey"))).await,
            expect(&[
                &[Some("1"), Some("x")],
                &[Some("1"), Some("x")],
                &[Some("1"), Some("x")],
                &[Some("2"), None],
                &[Some("3"), Some("y")],
            ])
        );
        assert_eq!(
            rows(&format!("SELECT COUNT(*) FROM {}", t("t_empty"))).await,
            expect(&[&[Some("0")]])
        );
        assert_eq!(
            rows(&format!(
                "SELECT `c``1`, `c 'two'`, `ü` FROM {} ORDER BY 1",
                t(odd_table)
            ))
            .await,
            expect(&[
                &[Some("1"), Some("a'b"), Some("ü1")],
                &[Some("2"), Some("x;y"), Some("日本")]
            ])
        );
        assert_eq!(
            rows(&format!(
                "SELECT id FROM {}.{} ORDER BY id",
                q(&odd.name),
                q("t odd")
            ))
            .await,
            expect(&[&[Some("7")], &[Some("8")]])
        );
        assert_eq!(
            rows(&format!("SELECT id, d, n FROM {} ORDER BY id", t("t_my"))).await,
            expect(&[
                &[Some("1"), Some("2020-01-02 03:04:05"), Some("1.50")],
                &[Some("2"), None, Some("-2.00")],
            ])
        );
        assert_eq!(
            rows(&format!(
                "SELECT id, name, c_table FROM {}.`merged` ORDER BY id",
                q(target.name())
            ))
            .await,
            expect(&[
                &[Some("101"), Some("s1-1"), Some("1")],
                &[Some("102"), Some("s1-2"), Some("1")],
                &[Some("103"), Some("s1-3"), Some("1")],
                &[Some("201"), Some("s2-1"), Some("2")],
                &[Some("202"), Some("s2-2"), Some("2")],
                &[Some("203"), Some("s2-3"), Some("2")],
            ])
        );
        let ignored = rows(&format!(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{db}' \
             AND TABLE_NAME IN ('t_ignored', 'shard_1', 'shard_2')"
        ))
        .await;
        assert_eq!(
            ignored,
            expect(&[&[Some("0")]]),
            "filtered and routed tables are not created"
        );
    };
    check().await;

    let mut expected_cp: Vec<String> = files.clone();
    expected_cp.sort();
    let cp = checkpoint_files(&meta, &task).await;
    assert_eq!(
        cp.iter().map(|c| c.0.clone()).collect::<Vec<_>>(),
        expected_cp
    );
    assert!(cp.iter().all(|c| c.3), "every row marks its whole file");
    assert!(cp.contains(&(
        files[5].clone(),
        db.to_string(),
        odd_table.to_string(),
        true
    )));

    // Everything is checkpointed: a second run loads nothing and changes nothing.
    let (res, st) = load(&cfg, dir).await;
    let again = res.unwrap_or_else(|e| panic!("{}", e.report()));
    assert_eq!(
        (again.files_loaded, again.files_skipped, again.rows),
        (0, files.len(), 0)
    );
    assert_eq!(st.progress, "100.00 %");
    check().await;
    assert!(load_finished(&cfg, None, dir).await.unwrap());

    let mut conn = down.conn().await;
    clear_checkpoint(&mut conn, &cfg).await.unwrap();
    assert!(checkpoint_files(&meta, &task).await.is_empty());
    assert!(!load_finished(&cfg, None, dir).await.unwrap());
}

#[tokio::test]
async fn on_duplicate_error_ignore_and_replace_by_insert() {
    on_duplicate_modes("insert").await;
}

#[tokio::test]
async fn on_duplicate_error_ignore_and_replace_by_load_data() {
    on_duplicate_modes("load-data").await;
}

async fn on_duplicate_modes(statement: &str) {
    let down = shared_downstream();
    let src = fresh_db(down, "load_dup");
    let meta = fresh_db(down, "load_dup_meta");
    let db = src.name();
    src.exec(
        "CREATE TABLE dup (id INT PRIMARY KEY, v VARCHAR(10)); INSERT INTO dup VALUES (2, 'old')",
    )
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_metadata(dir, true);
    table_schema(
        dir,
        db,
        "dup",
        "  `id` int NOT NULL,\n  `v` varchar(10),\n  PRIMARY KEY (`id`)",
    );
    let file = data_file(
        dir,
        db,
        "dup",
        0,
        "INSERT INTO `dup` VALUES (1,'new1'),(2,'new2'),(3,'new3');\n",
    );
    let task = format!("ld{:06x}", rand::random::<u32>() & 0xff_ffff);
    let cfg = |mode| {
        subtask(
            &task,
            &TaskOpts {
                meta: meta.name(),
                do_dbs: vec![db],
                ignore_table: None,
                merge: None,
                pool: 2,
                mode,
                statement,
                defer: true,
            },
        )
    };
    let table_sql = format!("SELECT id, v FROM {}.dup ORDER BY id", q(db));
    let table = || rows(&table_sql);

    let (res, _) = load(&cfg("error"), dir).await;
    let e = res.unwrap_err();
    assert_eq!(e.code, codes::LOAD_DUPLICATE_ENTRY.code, "{}", e.report());
    assert!(!e.resumable);
    assert!(
        e.message.contains(&file) && e.message.contains("`dup`"),
        "{}",
        e.message
    );
    assert_eq!(
        table().await,
        expect(&[&[Some("2"), Some("old")]]),
        "the file's transaction rolled back"
    );
    assert!(checkpoint_files(&meta, &task).await.is_empty());

    let (res, _) = load(&cfg("ignore"), dir).await;
    let summary = res.unwrap();
    assert_eq!(summary.files_loaded, 1);
    let by_load_data = if statement == "insert" { 0 } else { 3 };
    assert_eq!(summary.load_data_rows, by_load_data);
    assert_eq!(
        table().await,
        expect(&[
            &[Some("1"), Some("new1")],
            &[Some("2"), Some("old")],
            &[Some("3"), Some("new3")]
        ])
    );

    let mut conn = down.conn().await;
    clear_checkpoint(&mut conn, &cfg("replace")).await.unwrap();
    let (res, _) = load(&cfg("replace"), dir).await;
    assert_eq!(res.unwrap().files_loaded, 1);
    assert_eq!(
        table().await,
        expect(&[
            &[Some("1"), Some("new1")],
            &[Some("2"), Some("new2")],
            &[Some("3"), Some("new3")]
        ])
    );
}

#[tokio::test]
async fn failed_file_resumes_without_reloading_finished_files_by_insert() {
    failed_file_resumes("insert").await;
}

#[tokio::test]
async fn failed_file_resumes_without_reloading_finished_files_by_load_data() {
    failed_file_resumes("load-data").await;
}

async fn failed_file_resumes(statement: &str) {
    let down = shared_downstream();
    let src = fresh_db(down, "load_resume");
    let meta = fresh_db(down, "load_resume_meta");
    let db = src.name();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_metadata(dir, true);
    table_schema(
        dir,
        db,
        "k",
        "  `a` int(11) DEFAULT NULL,\n  `b` varchar(20) DEFAULT NULL",
    );
    let insert = |from: u32, to: u32| {
        let vals: Vec<String> = (from..to).map(|i| format!("({i},'r{i}')")).collect();
        format!("INSERT INTO `k` VALUES {};\n", vals.join(","))
    };
    // Files shrink, so the single connection loads the failing (smallest) file last.
    let mut n = 0;
    let mut names = Vec::new();
    for (f, count) in [400u32, 300, 200].into_iter().enumerate() {
        names.push(data_file(
            dir,
            db,
            "k",
            f as u32,
            &format!(
                "{}{}",
                insert(n, n + count / 2),
                insert(n + count / 2, n + count)
            ),
        ));
        n += count;
    }
    let good_last = format!("{}{}", insert(n, n + 5), insert(n + 5, n + 10));
    // Its first statement succeeds inside the transaction; the second has too many values.
    let bad_last = format!("{}INSERT INTO `k` VALUES (1,'x',3);\n", insert(n, n + 5));
    let last = data_file(dir, db, "k", 3, &bad_last);
    let total = n + 10;

    let task = format!("lr{:06x}", rand::random::<u32>() & 0xff_ffff);
    let cfg = subtask(
        &task,
        &TaskOpts {
            meta: meta.name(),
            do_dbs: vec![db],
            ignore_table: None,
            merge: None,
            pool: 1,
            mode: "replace",
            statement,
            defer: true,
        },
    );
    let (res, st) = load(&cfg, dir).await;
    let e = res.unwrap_err();
    assert_eq!(e.code, codes::LOAD_EXECUTE_FAILED.code, "{}", e.report());
    assert!(e.resumable);
    assert!(e.message.contains(&last), "{}", e.message);
    let done = checkpoint_files(&meta, &task).await;
    assert_eq!(done.iter().map(|c| c.0.clone()).collect::<Vec<_>>(), names);
    assert!(st.finished_bytes < st.total_bytes);
    assert_eq!(
        rows(&format!("SELECT COUNT(*) FROM {}.k", q(db))).await,
        expect(&[&[Some(n.to_string().as_str())]]),
        "the failed file's first statement was rolled back"
    );
    assert!(!load_finished(&cfg, None, dir).await.unwrap());

    put(dir, &last, &format!("{HEADER}{good_last}"));
    let ((res, st), logs) = load_logged(&cfg, dir).await;
    for f in &names {
        assert!(
            logs.lines()
                .any(|l| l.contains("chunk already loaded, skipped") && l.contains(f.as_str())),
            "{f} skipped: {logs}"
        );
    }
    assert!(
        logs.lines()
            .any(|l| l.contains("chunk loaded") && l.contains(last.as_str()))
    );
    let s = res.unwrap_or_else(|e| panic!("{}", e.report()));
    assert_eq!((s.files_skipped, s.files_loaded, s.rows), (3, 1, 10));
    assert_eq!(st.progress, "100.00 %");
    // Each value exactly once: nothing was loaded twice in the keyless table.
    let got = rows(&format!(
        "SELECT a, b, COUNT(*) FROM {}.k GROUP BY a, b ORDER BY a",
        q(db)
    ))
    .await;
    let want: Vec<Vec<Option<String>>> = (0..total)
        .map(|i| vec![Some(i.to_string()), Some(format!("r{i}")), Some("1".into())])
        .collect();
    assert_eq!(got, want);
    assert_eq!(checkpoint_files(&meta, &task).await.len(), 4);
}

/// A row without a value for a generated column in an INSERT without a column list is an
/// error on the SQL path; LOAD DATA (which would fill the last column with its default) must
/// not take it, and a full row loads either way.
#[tokio::test]
async fn generated_columns_without_a_column_list_go_as_sql() {
    let down = shared_downstream();
    let src = fresh_db(down, "load_gen");
    let meta = fresh_db(down, "load_gen_meta");
    let db = src.name();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_metadata(dir, true);
    table_schema(
        dir,
        db,
        "g",
        "  `a` int(11) NOT NULL,\n  `g` int(11) GENERATED ALWAYS AS (`a` + 1) VIRTUAL,\n  `b` int(11) DEFAULT NULL,\n  PRIMARY KEY (`a`)",
    );
    let file = data_file(dir, db, "g", 0, "INSERT INTO `g` VALUES (1,2);\n");
    let cfg = subtask(
        "lgen",
        &TaskOpts {
            meta: meta.name(),
            do_dbs: vec![db],
            ignore_table: None,
            merge: None,
            pool: 1,
            mode: "replace",
            statement: "load-data",
            defer: true,
        },
    );
    let (res, _) = load(&cfg, dir).await;
    let e = res.unwrap_err();
    assert_eq!(e.code, codes::LOAD_EXECUTE_FAILED.code, "{}", e.report());
    assert!(e.message.contains(&file), "{}", e.message);
    assert!(rows(&format!("SELECT * FROM {}.g", q(db))).await.is_empty());

    // With a column list the row goes by LOAD DATA.
    put(
        dir,
        &file,
        &format!("{HEADER}INSERT INTO `g` (`a`,`b`) VALUES (1,2),(5,NULL);\n"),
    );
    let (res, _) = load(&cfg, dir).await;
    let s = res.unwrap_or_else(|e| panic!("{}", e.report()));
    assert_eq!((s.rows, s.load_data_rows), (2, 2));
    assert_eq!(
        rows(&format!("SELECT a, g, b FROM {}.g ORDER BY a", q(db))).await,
        expect(&[
            &[Some("1"), Some("2"), Some("2")],
            &[Some("5"), Some("6"), None]
        ])
    );
}

#[tokio::test]
async fn refuses_missing_or_unfinished_dumps() {
    let meta = fresh_db(shared_downstream(), "load_bad_meta");
    let cfg = subtask(
        "lbad",
        &TaskOpts {
            meta: meta.name(),
            do_dbs: vec!["x"],
            ignore_table: None,
            merge: None,
            pool: 1,
            mode: "replace",
            statement: "insert",
            defer: true,
        },
    );
    let tmp = tempfile::tempdir().unwrap();
    let (res, _) = load(&cfg, &tmp.path().join("nothing")).await;
    assert_eq!(res.unwrap_err().code, codes::LOAD_DUMP_DIR_INVALID.code);
    write_metadata(tmp.path(), false);
    let (res, _) = load(&cfg, tmp.path()).await;
    let e = res.unwrap_err();
    assert_eq!(e.code, codes::LOAD_DUMP_DIR_INVALID.code);
    assert!(e.message.contains("did not finish"), "{}", e.message);
}

/// A sysbench-shaped table (id INT PK, k INT, c CHAR(120), pad CHAR(60)) in eight
/// dumpling-style files of ~1 MB INSERTs, loaded with pool-size 4 and `data-statement: auto`:
/// on MariaDB (local_infile on) every row goes by LOAD DATA — the target counts at least one
/// LOAD DATA statement per file — and the table ends with exactly the dumped rows, in full,
/// its deferred `k_1` added. Prints the rate for information; speed goals live in `bench/`.
#[tokio::test]
async fn sysbench_shaped_load_by_auto_load_data_copies_every_row() {
    const ROWS: u32 = 100_000;
    const FILES: u32 = 8;
    let down = counted_downstream();
    let src = fresh_db(down, "load_sb");
    let meta = fresh_db(down, "load_sb_meta");
    let db = src.name();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_metadata(dir, true);
    table_schema(
        dir,
        db,
        "sbtest1",
        "  `id` int(11) NOT NULL,\n  `k` int(11) NOT NULL DEFAULT 0,\n  `c` char(120) NOT NULL DEFAULT '',\n  `pad` char(60) NOT NULL DEFAULT '',\n  PRIMARY KEY (`id`),\n  KEY `k_1` (`k`)",
    );
    let per_file = ROWS / FILES;
    let mut bytes = 0;
    let mut expected = Vec::with_capacity(ROWS as usize);
    for f in 0..FILES {
        let mut body = String::new();
        let mut stmt = String::new();
        for id in f * per_file + 1..=(f + 1) * per_file {
            if stmt.is_empty() {
                stmt.push_str("INSERT INTO `sbtest1` (`id`,`k`,`c`,`pad`) VALUES\n");
            } else {
                stmt.push_str(",\n");
            }
            let c: String = (0..11)
                .map(|i| format!("{:010}-", (id as u64 * 7919 + i) % 10_000_000_000))
                .collect();
            let (k, c, pad) = (id % 5000, &c[..119], format!("{id:059}"));
            stmt.push_str(&format!("({id},{k},'{c}','{pad}')"));
            expected.push(vec![
                Some(id.to_string()),
                Some(k.to_string()),
                Some(c.to_string()),
                Some(pad),
            ]);
            if stmt.len() > 1_000_000 {
                body.push_str(&stmt);
                body.push_str(";\n");
                stmt.clear();
            }
        }
        if !stmt.is_empty() {
            body.push_str(&stmt);
            body.push_str(";\n");
        }
        let name = data_file(dir, db, "sbtest1", f, &body);
        bytes += std::fs::metadata(dir.join(name)).unwrap().len();
    }
    let mut cfg = subtask(
        "lsb",
        &TaskOpts {
            meta: meta.name(),
            do_dbs: vec![db],
            ignore_table: None,
            merge: None,
            pool: 4,
            mode: "replace",
            statement: "auto",
            defer: true,
        },
    );
    cfg.to.port = down.port();
    let counting = COUNTING.lock().await;
    let com_load_before = com_load(down).await;
    let started = Instant::now();
    let (res, st) = load(&cfg, dir).await;
    let secs = started.elapsed().as_secs_f64();
    let com_load_after = com_load(down).await;
    drop(counting);
    let s = res.unwrap_or_else(|e| panic!("{}", e.report()));
    assert_eq!(
        (s.files_loaded, s.files_skipped, s.rows, s.load_data_rows),
        (FILES as usize, 0, ROWS as u64, ROWS as u64),
        "{s:?}"
    );
    assert_eq!(
        (s.bytes, st.finished_bytes, st.total_bytes),
        (bytes, bytes, bytes)
    );
    assert_eq!(st.progress, "100.00 %");
    assert_eq!(s.indexes_added, 1, "the deferred k_1");
    let load_data = com_load_after - com_load_before;
    assert!(
        load_data >= u64::from(FILES),
        "{load_data} LOAD DATA statements for {FILES} files"
    );
    let table = format!("{}.sbtest1", q(db));
    let got = rows_on(
        down,
        &format!("SELECT id, k, c, pad FROM {table} ORDER BY id"),
    )
    .await;
    let differ = got.iter().zip(&expected).position(|(g, e)| g != e);
    assert_eq!(
        (got.len(), differ),
        (expected.len(), None),
        "every row, in full; first difference: {:?} loaded, {:?} dumped",
        differ.map(|i| &got[i]),
        differ.map(|i| &expected[i])
    );
    assert_eq!(
        rows_on(
            down,
            &format!(
                "SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = '{db}' \
                 AND TABLE_NAME = 'sbtest1' AND INDEX_NAME = 'k_1'"
            )
        )
        .await,
        expect(&[&[Some("1")]]),
        "k_1 is on the table"
    );
    println!(
        "load rate (debug build, pool-size 4; for information): {ROWS} rows, {:.1} MB in {secs:.2} s: {:.0} rows/s, {:.2} MB/s, {load_data} LOAD DATA statements",
        bytes as f64 / 1e6,
        ROWS as f64 / secs,
        bytes as f64 / 1e6 / secs
    );
    down.exec(&format!("DROP TABLE {table}")).await;
}

/// A load connection killed in mid-file reconnects and loads the file again; the killed
/// transaction was rolled back (or, if its COMMIT landed, the checkpoint says so), so a keyless
/// table ends with every row exactly once.
#[tokio::test]
async fn killed_connection_is_retried_without_duplicates_by_insert() {
    killed_connection_is_retried("insert").await;
}

#[tokio::test]
async fn killed_connection_is_retried_without_duplicates_by_load_data() {
    killed_connection_is_retried("load-data").await;
}

async fn killed_connection_is_retried(statement: &str) {
    const FILES: u32 = 4;
    const PER_FILE: u32 = 25_000;
    // Its own target: the LOAD DATA statements it runs are counted.
    let down = counted_downstream();
    let src = fresh_db(down, "load_kill");
    let meta = fresh_db(down, "load_kill_meta");
    let db = src.name();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_metadata(dir, true);
    table_schema(
        dir,
        db,
        "k",
        "  `a` int(11) DEFAULT NULL,\n  `b` varchar(60) DEFAULT NULL",
    );
    for f in 0..FILES {
        let mut body = String::new();
        for chunk in 0..5 {
            let from = f * PER_FILE + chunk * PER_FILE / 5;
            let vals: Vec<String> = (from..from + PER_FILE / 5)
                .map(|i| format!("({i},'{i:058}')"))
                .collect();
            body.push_str(&format!("INSERT INTO `k` VALUES {};\n", vals.join(",")));
        }
        data_file(dir, db, "k", f, &body);
    }
    let mut cfg = subtask(
        "lkill",
        &TaskOpts {
            meta: meta.name(),
            do_dbs: vec![db],
            ignore_table: None,
            merge: None,
            pool: 1,
            mode: "error",
            statement,
            defer: true,
        },
    );
    cfg.to.port = down.port();
    let pattern = if statement == "insert" {
        format!("%INSERT INTO `{db}`.`k`%")
    } else {
        format!("LOAD DATA LOCAL INFILE %INTO TABLE `{db}`.`k`%")
    };
    let killer = async {
        let mut conn = down.conn().await;
        let victim = std::cell::Cell::new(0u64);
        crate::harness::eventually_msg(
            std::time::Duration::from_secs(60),
            "a load connection inserting",
            || async {
                let id: Option<u64> = conn_query_id(down, &pattern).await;
                victim.set(id.unwrap_or(0));
                id.is_some()
            },
        )
        .await;
        conn.query_drop(format!("KILL CONNECTION {}", victim.get()))
            .await
            .unwrap();
    };
    let counting = COUNTING.lock().await;
    let com_load_before = com_load(down).await;
    let ((res, logs), ()) = futures_util::future::join(load_logged(&cfg, dir), killer).await;
    let load_data = com_load(down).await - com_load_before;
    drop(counting);
    let s = res.0.unwrap_or_else(|e| panic!("{}", e.report()));
    assert!(
        logs.contains("target connection failed; retrying"),
        "the kill was seen and retried: {logs}"
    );
    assert_eq!(s.files_loaded, FILES as usize);
    assert_eq!(s.rows, (FILES * PER_FILE) as u64);
    // What the target ran: no LOAD DATA with `insert`; with `load-data`, at least one per
    // file (the killed file's again), and every row counted as sent by it.
    if statement == "insert" {
        assert_eq!(
            load_data, 0,
            "LOAD DATA statements with data-statement insert"
        );
        assert_eq!(s.load_data_rows, 0);
    } else {
        assert!(
            load_data >= u64::from(FILES),
            "{load_data} LOAD DATA statements for {FILES} files"
        );
        assert_eq!(s.load_data_rows, s.rows);
    }
    let got = rows_on(
        down,
        &format!(
            "SELECT COUNT(*), COUNT(DISTINCT a), MIN(a), MAX(a) FROM {}.k",
            q(db)
        ),
    )
    .await;
    let n = FILES * PER_FILE;
    assert_eq!(
        got,
        vec![vec![
            Some(n.to_string()),
            Some(n.to_string()),
            Some("0".to_string()),
            Some((n - 1).to_string())
        ]]
    );
    assert_eq!(checkpoint_files(&meta, "lkill").await.len(), FILES as usize);
}

/// The id of another connection of `server` whose statement matches `pattern`.
async fn conn_query_id(server: &MariaDb, pattern: &str) -> Option<u64> {
    let mut conn = server.conn().await;
    let id = conn
        .exec_first(
            "SELECT ID FROM information_schema.PROCESSLIST \
             WHERE ID <> CONNECTION_ID() AND INFO LIKE ?",
            (pattern,),
        )
        .await
        .unwrap();
    conn.disconnect().await.unwrap();
    id
}
