//! The load unit's deferred secondary indexes (`loader.defer-secondary-indexes`) against a real
//! MariaDB target: the end state equals a table created with its keys, the meta row protocol
//! resumes exactly, and tables that exist already or have foreign keys are left alone.

use std::path::Path;

use dm::config::SubTaskConfig;
use dm::error::{DmError, codes};
use dm::units::load::indexes::IndexMeta;
use dm::units::load::{LoadSummary, load_finished};
use mysql_async::prelude::*;

use super::load::{HEADER, data_file, put, q, rows};
use crate::harness::{TestDb, fresh_db, shared_downstream};

/// The source id of `super::load::subtask`.
const SOURCE: &str = "src-load";

fn write_metadata(dir: &Path) {
    super::load::write_metadata(dir, true);
}

/// The CREATE TABLE dumpling writes for `body` (names in the tests need no file escaping).
fn create_text(table: &str, body: &str) -> String {
    format!(
        "CREATE TABLE {} (\n{body}\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci",
        q(table)
    )
}

fn table_schema(dir: &Path, db: &str, table: &str, body: &str) {
    put(
        dir,
        &format!("{db}.{table}-schema.sql"),
        &format!(
            "{HEADER}/*!40014 SET FOREIGN_KEY_CHECKS=0*/;\n{};\n",
            create_text(table, body)
        ),
    );
}

struct Opts<'a> {
    meta: &'a str,
    db: &'a str,
    /// Target schema of a `shard_*` → `merged` route with `c_table` extracted.
    merge_into: Option<&'a str>,
    pool: u32,
    defer: bool,
}

fn subtask(name: &str, o: &Opts<'_>) -> SubTaskConfig {
    super::load::subtask(
        name,
        &super::load::TaskOpts {
            meta: o.meta,
            do_dbs: vec![o.db],
            ignore_table: None,
            merge: o.merge_into.map(|t| (o.db, t)),
            pool: o.pool,
            mode: "replace",
            statement: "auto",
            defer: o.defer,
        },
    )
}

fn task_name(prefix: &str) -> String {
    format!("{prefix}{:06x}", rand::random::<u32>() & 0xff_ffff)
}

/// Runs a load with its logs captured.
async fn load(cfg: &SubTaskConfig, dir: &Path) -> (Result<LoadSummary, DmError>, String) {
    let ((res, _), logs) = super::load::load_logged(cfg, dir).await;
    (res, logs)
}

/// The index definitions of a table, as information_schema.STATISTICS has them.
async fn index_defs(db: &str, table: &str) -> Vec<Vec<Option<String>>> {
    rows(&format!(
        "SELECT INDEX_NAME, SEQ_IN_INDEX, COLUMN_NAME, SUB_PART, NON_UNIQUE, INDEX_TYPE, \
         INDEX_COMMENT, IGNORED FROM information_schema.STATISTICS \
         WHERE TABLE_SCHEMA = '{db}' AND TABLE_NAME = '{table}' \
         ORDER BY INDEX_NAME, SEQ_IN_INDEX"
    ))
    .await
}

async fn index_names(db: &str, table: &str) -> Vec<String> {
    rows(&format!(
        "SELECT DISTINCT INDEX_NAME FROM information_schema.STATISTICS \
         WHERE TABLE_SCHEMA = '{db}' AND TABLE_NAME = '{table}' ORDER BY INDEX_NAME"
    ))
    .await
    .into_iter()
    .map(|r| r[0].clone().unwrap())
    .collect()
}

/// SHOW CREATE TABLE's text, under a neutral table name.
async fn show_create(db: &str, table: &str) -> String {
    let r = rows(&format!("SHOW CREATE TABLE {}.{}", q(db), q(table))).await;
    r[0][1]
        .clone()
        .unwrap()
        .replacen(&format!("CREATE TABLE {}", q(table)), "CREATE TABLE `x`", 1)
}

/// `(target schema, target table, indexes)` rows of the task's meta table; `None` when the
/// table does not exist.
async fn meta_rows(meta: &TestDb, task: &str) -> Option<Vec<(String, String, String)>> {
    let exists = rows(&format!(
        "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{}' \
         AND TABLE_NAME = '{task}_loader_index'",
        meta.name()
    ))
    .await;
    if exists[0][0].as_deref() == Some("0") {
        return None;
    }
    Some(
        rows(&format!(
            "SELECT target_schema, target_table, indexes FROM {}.{} WHERE id = '{SOURCE}' \
             ORDER BY 1, 2",
            q(meta.name()),
            q(&format!("{task}_loader_index"))
        ))
        .await
        .into_iter()
        .map(|r| {
            let v: Vec<String> = r.into_iter().map(Option::unwrap).collect();
            (v[0].clone(), v[1].clone(), v[2].clone())
        })
        .collect(),
    )
}

const WIDE: &str = "  `id` int(11) NOT NULL,\n  `k` int(11) NOT NULL DEFAULT 0,\n  `c` varchar(120) NOT NULL DEFAULT '',\n  `body` text DEFAULT NULL,\n  PRIMARY KEY (`id`),\n  UNIQUE KEY `uc` (`c`),\n  KEY `k_1` (`k`),\n  KEY `c_pre` (`c`(10),`k`) COMMENT 'prefix, with ) and ,',\n  KEY `ign` (`k`,`id`) IGNORED,\n  FULLTEXT KEY `ft` (`body`)";

const SHARD: &str = "  `id` int(11) NOT NULL,\n  `k` int(11) NOT NULL DEFAULT 0,\n  `name` varchar(20) DEFAULT NULL,\n  PRIMARY KEY (`id`),\n  KEY `k_s` (`k`) USING BTREE";

fn wide_rows(from: u32, to: u32) -> String {
    let vals: Vec<String> = (from..to)
        .map(|i| format!("({i},{},'c-{i}','body {i} words')", i % 7))
        .collect();
    format!("INSERT INTO `wide` VALUES {};\n", vals.join(","))
}

/// A dump with `wide` (all kinds of keys) and two shards merged into `merged`.
fn write_dump(dir: &Path, db: &str) {
    write_metadata(dir);
    table_schema(dir, db, "wide", WIDE);
    data_file(dir, db, "wide", 0, &wide_rows(1, 200));
    data_file(dir, db, "wide", 1, &wide_rows(200, 300));
    for n in 1..=2u32 {
        let t = format!("shard_{n}");
        table_schema(dir, db, &t, SHARD);
        let vals: Vec<String> = (1..=3)
            .map(|i| format!("({},{i},'s{n}-{i}')", n * 100 + i))
            .collect();
        data_file(
            dir,
            db,
            &t,
            0,
            &format!("INSERT INTO `{t}` VALUES {};\n", vals.join(",")),
        );
    }
}

/// Creates the reference tables (keys in the CREATE) in `reference` and checks the loaded
/// tables in `db`/`merged_db` have the same definitions and the expected rows.
async fn assert_like_upstream(reference: &TestDb, db: &str, merged_db: &str) {
    reference
        .exec(&format!(
            "{}; {}; ALTER TABLE `merged` ADD COLUMN `c_table` VARCHAR(64)",
            create_text("wide", WIDE),
            create_text("merged", SHARD)
        ))
        .await;
    let r = reference.name();
    for (got_db, table) in [(db, "wide"), (merged_db, "merged")] {
        assert_eq!(
            index_defs(got_db, table).await,
            index_defs(r, table).await,
            "{table}"
        );
        assert_eq!(
            show_create(got_db, table).await,
            show_create(r, table).await
        );
    }
    assert_eq!(
        rows(&format!(
            "SELECT COUNT(*), SUM(id), SUM(k), MAX(c), COUNT(DISTINCT body) FROM {}.wide",
            q(db)
        ))
        .await,
        vec![vec![
            Some("299".into()),
            Some("44850".into()),
            Some((1..300u32).map(|i| i % 7).sum::<u32>().to_string()),
            Some("c-99".into()),
            Some("299".into())
        ]]
    );
    assert_eq!(
        rows(&format!(
            "SELECT id, k, name, c_table FROM {}.merged ORDER BY id",
            q(merged_db)
        ))
        .await
        .len(),
        6
    );
}

#[tokio::test]
async fn deferred_indexes_end_like_the_upstream_table() {
    let down = shared_downstream();
    let src = fresh_db(down, "lidx_src");
    let merged = fresh_db(down, "lidx_merged");
    let meta = fresh_db(down, "lidx_meta");
    let reference = fresh_db(down, "lidx_ref");
    let db = src.name();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_dump(dir, db);
    let task = task_name("li");
    let cfg = subtask(
        &task,
        &Opts {
            meta: meta.name(),
            db,
            merge_into: Some(merged.name()),
            pool: 3,
            defer: true,
        },
    );
    let (res, logs) = load(&cfg, dir).await;
    let s = res.unwrap_or_else(|e| panic!("{}", e.report()));
    assert_eq!(s.indexes_added, 4, "3 of wide, 1 of merged");
    let deferred: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("secondary indexes deferred"))
        .collect();
    assert_eq!(deferred.len(), 2, "once per target table: {logs}");
    assert!(
        deferred
            .iter()
            .any(|l| l.contains("`wide`") && l.contains("indexes=k_1,c_pre,ign")),
        "{logs}"
    );
    assert!(
        deferred
            .iter()
            .any(|l| l.contains("`merged`") && l.contains("indexes=k_s")),
        "{logs}"
    );
    let added: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("deferred indexes added"))
        .collect();
    assert_eq!(added.len(), 2, "{logs}");
    assert!(added.iter().all(|l| l.contains("seconds=")), "{logs}");
    assert_eq!(meta_rows(&meta, &task).await, Some(Vec::new()));
    assert_like_upstream(&reference, db, merged.name()).await;
    assert!(load_finished(&cfg, None, dir).await.unwrap());

    // Everything done: a second run loads nothing and adds nothing.
    let (res, logs) = load(&cfg, dir).await;
    let s = res.unwrap_or_else(|e| panic!("{}", e.report()));
    assert_eq!((s.files_loaded, s.indexes_added), (0, 0));
    assert!(!logs.contains("deferred"), "{logs}");
}

#[tokio::test]
async fn defer_off_creates_the_keys_up_front() {
    let down = shared_downstream();
    let src = fresh_db(down, "lidx_off");
    let merged = fresh_db(down, "lidx_off_merged");
    let meta = fresh_db(down, "lidx_off_meta");
    let reference = fresh_db(down, "lidx_off_ref");
    let db = src.name();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_dump(dir, db);
    let task = task_name("lo");
    let cfg = subtask(
        &task,
        &Opts {
            meta: meta.name(),
            db,
            merge_into: Some(merged.name()),
            pool: 2,
            defer: false,
        },
    );
    let (res, logs) = load(&cfg, dir).await;
    let s = res.unwrap_or_else(|e| panic!("{}", e.report()));
    assert_eq!(s.indexes_added, 0);
    assert!(!logs.contains("deferred"), "{logs}");
    assert_eq!(meta_rows(&meta, &task).await, None, "no meta table");
    assert_like_upstream(&reference, db, merged.name()).await;
    assert!(load_finished(&cfg, None, dir).await.unwrap());
}

const SB: &str = "  `id` int(11) NOT NULL AUTO_INCREMENT,\n  `k` int(11) NOT NULL DEFAULT 0,\n  `c` char(20) NOT NULL DEFAULT '',\n  PRIMARY KEY (`id`),\n  KEY `k_1` (`k`),\n  KEY `c_1` (`c`(4))";

fn sb_rows(from: u32, to: u32) -> String {
    let vals: Vec<String> = (from..to)
        .map(|i| format!("({i},{},'c{i}')", i % 10))
        .collect();
    format!("INSERT INTO `sb` VALUES {};\n", vals.join(","))
}

#[tokio::test]
async fn failed_data_leaves_the_row_and_the_next_run_adds_the_indexes() {
    let down = shared_downstream();
    let src = fresh_db(down, "lidx_resume");
    let meta = fresh_db(down, "lidx_resume_meta");
    let db = src.name();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_metadata(dir);
    table_schema(dir, db, "sb", SB);
    data_file(
        dir,
        db,
        "sb",
        0,
        &format!("{}{}", sb_rows(1, 200), sb_rows(200, 400)),
    );
    // The smallest file (loaded last by the one connection): its second statement has too
    // many values.
    let bad = format!(
        "{}INSERT INTO `sb` VALUES (1,2,'x',4);\n",
        sb_rows(400, 405)
    );
    let last = data_file(dir, db, "sb", 1, &bad);
    let task = task_name("lr");
    let cfg = subtask(
        &task,
        &Opts {
            meta: meta.name(),
            db,
            merge_into: None,
            pool: 1,
            defer: true,
        },
    );
    let (res, _) = load(&cfg, dir).await;
    let e = res.unwrap_err();
    assert_eq!(e.code, codes::LOAD_EXECUTE_FAILED.code, "{}", e.report());
    assert!(e.message.contains(&last), "{}", e.message);
    let pending = meta_rows(&meta, &task).await.unwrap();
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!((pending[0].0.as_str(), pending[0].1.as_str()), (db, "sb"));
    let items: Vec<String> = serde_json::from_str(&pending[0].2).unwrap();
    assert_eq!(items, vec!["KEY `k_1` (`k`)", "KEY `c_1` (`c`(4))"]);
    assert_eq!(index_names(db, "sb").await, vec!["PRIMARY"]);
    assert!(!load_finished(&cfg, None, dir).await.unwrap());

    put(dir, &last, &format!("{HEADER}{}", sb_rows(400, 410)));
    let (res, logs) = load(&cfg, dir).await;
    let s = res.unwrap_or_else(|e| panic!("{}", e.report()));
    assert_eq!(
        (s.files_skipped, s.files_loaded, s.indexes_added),
        (1, 1, 2)
    );
    assert!(
        logs.lines().any(|l| l.contains("deferred indexes added")
            && l.contains("`sb`")
            && l.contains("indexes=k_1,c_1")),
        "{logs}"
    );
    assert!(!logs.contains("secondary indexes deferred"), "{logs}");
    assert_eq!(index_names(db, "sb").await, vec!["c_1", "k_1", "PRIMARY"]);
    assert_eq!(meta_rows(&meta, &task).await, Some(Vec::new()));
    assert_eq!(
        rows(&format!(
            "SELECT COUNT(*), COUNT(DISTINCT id), SUM(k) FROM {}.sb",
            q(db)
        ))
        .await,
        vec![vec![
            Some("409".into()),
            Some("409".into()),
            Some((1..410u32).map(|i| i % 10).sum::<u32>().to_string())
        ]]
    );
    assert!(load_finished(&cfg, None, dir).await.unwrap());
}

#[tokio::test]
async fn pending_row_after_the_alter_is_only_deleted() {
    let down = shared_downstream();
    let src = fresh_db(down, "lidx_crash");
    let meta = fresh_db(down, "lidx_crash_meta");
    let db = src.name();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_metadata(dir);
    table_schema(dir, db, "sb", SB);
    data_file(dir, db, "sb", 0, &sb_rows(1, 50));
    let task = task_name("lc");
    let cfg = subtask(
        &task,
        &Opts {
            meta: meta.name(),
            db,
            merge_into: None,
            pool: 2,
            defer: true,
        },
    );
    let (res, _) = load(&cfg, dir).await;
    assert_eq!(res.unwrap().indexes_added, 2);
    let complete = show_create(db, "sb").await;
    let complete_defs = index_defs(db, "sb").await;

    // A crash after the ALTER, before the row's DELETE: the row is back, the indexes are in.
    let im = IndexMeta::new(meta.name(), &task, SOURCE);
    let items = [
        "KEY `k_1` (`k`)".to_string(),
        "KEY `c_1` (`c`(4))".to_string(),
    ];
    let mut conn = down.conn().await;
    im.record(&mut conn, db, "sb", &items).await.unwrap();
    assert!(!load_finished(&cfg, None, dir).await.unwrap());
    let (res, logs) = load(&cfg, dir).await;
    let s = res.unwrap_or_else(|e| panic!("{}", e.report()));
    assert_eq!((s.files_loaded, s.indexes_added), (0, 0));
    assert!(
        logs.lines()
            .any(|l| l.contains("deferred indexes added") && l.contains("already_present=2")),
        "{logs}"
    );
    assert_eq!(meta_rows(&meta, &task).await, Some(Vec::new()));
    assert_eq!(show_create(db, "sb").await, complete);
    assert!(load_finished(&cfg, None, dir).await.unwrap());

    // A crash in between: one index there, one not (and every file loaded).
    conn.query_drop(format!("ALTER TABLE {}.sb DROP INDEX k_1", q(db)))
        .await
        .unwrap();
    im.record(&mut conn, db, "sb", &items).await.unwrap();
    let (res, logs) = load(&cfg, dir).await;
    let s = res.unwrap_or_else(|e| panic!("{}", e.report()));
    assert_eq!((s.files_loaded, s.indexes_added), (0, 1));
    assert!(
        logs.lines().any(|l| l.contains("deferred indexes added")
            && l.contains("indexes=k_1")
            && l.contains("already_present=1")),
        "{logs}"
    );
    assert_eq!(index_defs(db, "sb").await, complete_defs);
    assert_eq!(meta_rows(&meta, &task).await, Some(Vec::new()));

    // A row whose index cannot be added names the table and the index; the row stays.
    let bad = ["KEY `k_bad` (`no_such_column`)".to_string()];
    im.record(&mut conn, db, "sb", &bad).await.unwrap();
    let (res, _) = load(&cfg, dir).await;
    let e = res.unwrap_err();
    assert_eq!(e.code, codes::LOAD_ADD_INDEX_FAILED.code, "{}", e.report());
    assert!(
        e.message.contains("`k_bad`") && e.message.contains(&format!("`{db}`.`sb`")),
        "{}",
        e.message
    );
    assert_eq!(meta_rows(&meta, &task).await.unwrap().len(), 1);
    assert!(!load_finished(&cfg, None, dir).await.unwrap());
    // clear_checkpoint (the sync unit took over) deletes it.
    dm::units::load::clear_checkpoint(&mut conn, &cfg)
        .await
        .unwrap();
    assert_eq!(meta_rows(&meta, &task).await, Some(Vec::new()));
}

#[tokio::test]
async fn existing_target_table_is_never_altered() {
    let down = shared_downstream();
    let src = fresh_db(down, "lidx_exist");
    let meta = fresh_db(down, "lidx_exist_meta");
    let db = src.name();
    src.exec(
        "CREATE TABLE sb (`id` int NOT NULL AUTO_INCREMENT, `k` int NOT NULL DEFAULT 0, \
         `c` char(20) NOT NULL DEFAULT '', PRIMARY KEY (`id`), KEY `c_1` (`c`(4)))",
    )
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_metadata(dir);
    table_schema(dir, db, "sb", SB);
    data_file(dir, db, "sb", 0, &sb_rows(1, 50));
    let task = task_name("le");
    let cfg = subtask(
        &task,
        &Opts {
            meta: meta.name(),
            db,
            merge_into: None,
            pool: 2,
            defer: true,
        },
    );
    let (res, logs) = load(&cfg, dir).await;
    let s = res.unwrap_or_else(|e| panic!("{}", e.report()));
    assert_eq!((s.files_loaded, s.indexes_added), (1, 0));
    assert!(!logs.contains("deferred"), "{logs}");
    assert_eq!(index_names(db, "sb").await, vec!["c_1", "PRIMARY"]);
    assert_eq!(meta_rows(&meta, &task).await, Some(Vec::new()));
    assert_eq!(
        rows(&format!("SELECT COUNT(*) FROM {}.sb", q(db))).await,
        vec![vec![Some("49".into())]]
    );
}

#[tokio::test]
async fn foreign_keys_keep_their_tables_whole() {
    let down = shared_downstream();
    let src = fresh_db(down, "lidx_fk");
    let meta = fresh_db(down, "lidx_fk_meta");
    let db = src.name();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_metadata(dir);
    // `a_child` sorts (and is created) first; it references `p`'s non-unique key `k_p`, which
    // InnoDB needs when `p` is created, and has a key of its own.
    table_schema(
        dir,
        db,
        "a_child",
        "  `id` int(11) NOT NULL,\n  `pk` int(11) DEFAULT NULL,\n  `o` int(11) DEFAULT NULL,\n  PRIMARY KEY (`id`),\n  KEY `fk_p` (`pk`),\n  KEY `o_1` (`o`),\n  CONSTRAINT `fk_p` FOREIGN KEY (`pk`) REFERENCES `p` (`k`)",
    );
    table_schema(
        dir,
        db,
        "p",
        "  `id` int(11) NOT NULL,\n  `k` int(11) DEFAULT NULL,\n  PRIMARY KEY (`id`),\n  KEY `k_p` (`k`)",
    );
    table_schema(dir, db, "sb", SB);
    data_file(dir, db, "p", 0, "INSERT INTO `p` VALUES (1,10),(2,20);\n");
    data_file(
        dir,
        db,
        "a_child",
        0,
        "INSERT INTO `a_child` VALUES (1,10,5),(2,20,6);\n",
    );
    data_file(dir, db, "sb", 0, &sb_rows(1, 20));
    let task = task_name("lf");
    let cfg = subtask(
        &task,
        &Opts {
            meta: meta.name(),
            db,
            merge_into: None,
            pool: 2,
            defer: true,
        },
    );
    let (res, logs) = load(&cfg, dir).await;
    let s = res.unwrap_or_else(|e| panic!("{}", e.report()));
    assert_eq!((s.files_loaded, s.indexes_added), (3, 2), "only sb's keys");
    let deferred: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("secondary indexes deferred"))
        .collect();
    assert_eq!(deferred.len(), 1, "{logs}");
    assert!(deferred[0].contains("`sb`"), "{logs}");
    assert_eq!(
        index_names(db, "a_child").await,
        vec!["fk_p", "o_1", "PRIMARY"]
    );
    assert_eq!(index_names(db, "p").await, vec!["k_p", "PRIMARY"]);
    assert_eq!(
        rows(&format!(
            "SELECT COUNT(*) FROM information_schema.REFERENTIAL_CONSTRAINTS \
             WHERE CONSTRAINT_SCHEMA = '{db}' AND REFERENCED_TABLE_NAME = 'p'"
        ))
        .await,
        vec![vec![Some("1".into())]]
    );
    assert_eq!(meta_rows(&meta, &task).await, Some(Vec::new()));
}

/// Two sources' subtasks that both recorded the same shard-merged target add its indexes at the
/// same time: both succeed (a lost race on a name is planned again), each index exists once.
#[tokio::test]
async fn two_sources_adding_the_same_indexes_both_succeed() {
    use dm::units::load::indexes::{AddContext, PendingTable, add_deferred};
    let down = shared_downstream();
    let db = fresh_db(down, "lidx_race");
    let meta = fresh_db(down, "lidx_race_meta");
    db.exec("CREATE TABLE t (a int NOT NULL, b int, c varchar(20), PRIMARY KEY (a))")
        .await;
    let values: Vec<String> = (0..2000)
        .map(|i| format!("({i},{},'v{i}')", i % 13))
        .collect();
    db.exec(&format!("INSERT INTO t VALUES {}", values.join(",")))
        .await;
    let items = vec![
        "KEY `kb` (`b`)".to_string(),
        "KEY `kc` (`c`(5),`b`)".to_string(),
        "KEY `kbc` (`b`,`c`)".to_string(),
    ];
    let pending = [PendingTable {
        schema: db.name().to_string(),
        table: "t".into(),
        items: items.clone(),
    }];
    let opts = down.opts(None);
    let metas = ["s1", "s2"].map(|s| IndexMeta::new(meta.name(), "race", s));
    let mut conn = down.conn().await;
    for m in &metas {
        m.ensure(&mut conn).await.unwrap();
        m.record(&mut conn, db.name(), "t", &items).await.unwrap();
    }
    let ctx = |m| AddContext {
        task: "race",
        source: "s",
        opts: &opts,
        session: &[],
        meta: m,
        concurrency: 2,
    };
    let (c1, c2) = (ctx(&metas[0]), ctx(&metas[1]));
    let (r1, r2) =
        futures_util::future::join(add_deferred(&c1, &pending), add_deferred(&c2, &pending)).await;
    let (n1, n2) = (
        r1.unwrap_or_else(|e| panic!("{}", e.report())),
        r2.unwrap_or_else(|e| panic!("{}", e.report())),
    );
    assert_eq!(n1 + n2, 3, "each index added once: {n1} + {n2}");
    assert_eq!(
        index_names(db.name(), "t").await,
        vec!["kb", "kbc", "kc", "PRIMARY"]
    );
    for m in &metas {
        assert!(!m.has_pending(&mut conn).await.unwrap());
    }
}
