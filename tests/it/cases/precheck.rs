//! The start-task precheck (`dm::checker::check_task`) against the shared MariaDB
//! upstream and downstream: a good task passes; an account without replication privileges
//! fails that item with an instruction; an unknown source fails with the scheduler's code;
//! `ignore-checking-items` removes an item; a table without a key is a warning, not a failure.

use std::collections::BTreeMap;

use dm::checker::{CheckReport, CheckState, check_task};
use dm::config::checking::CheckingItem;
use dm::config::{SourceConfig, TaskConfig};
use dm::error::codes;

use crate::harness::{
    BlockAllowList, Instance, MariaDb, TaskYaml, TestDb, fresh_db, shared_downstream,
    shared_upstream,
};

/// A source on `server` logging in as `user` (no password) over TCP.
fn source(id: &str, server: &MariaDb, user: &str) -> SourceConfig {
    let yaml = format!(
        "source-id: {id}\nfrom:\n  host: 127.0.0.1\n  port: {}\n  user: {user}\n  password: \"\"\n",
        server.port()
    );
    SourceConfig::from_yaml(&yaml, "source.yaml").expect("source config")
}

/// A task of `mode` on source `source_id`, selecting database `db`, with the
/// `ignore-checking-items` `ignore` (none when empty).
fn task(mode: &str, source_id: &str, db: &str, ignore: &[&str]) -> TaskConfig {
    let yaml = task_yaml(mode, source_id, db, ignore);
    TaskConfig::from_yaml(&yaml, "task.yaml").expect("task config")
}

fn task_yaml(mode: &str, source_id: &str, db: &str, ignore: &[&str]) -> String {
    TaskYaml::new("precheck_it", mode)
        .ignore_checking_items(ignore)
        .target_root(shared_downstream().port())
        .block_allow_list("ba", BlockAllowList::new().do_db(db))
        .instance(Instance::new(source_id).block_allow_list("ba"))
        .render()
}

fn sources(list: Vec<SourceConfig>) -> BTreeMap<String, SourceConfig> {
    list.into_iter().map(|s| (s.source_id.clone(), s)).collect()
}

fn item<'a>(report: &'a CheckReport, name: &str) -> Option<&'a dm::checker::CheckItem> {
    report.items.iter().find(|i| i.name == name)
}

/// A database with one keyed table.
async fn keyed_db(prefix: &str) -> TestDb {
    let db = fresh_db(shared_upstream(), prefix);
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10)); INSERT INTO t VALUES (1, 'a')")
        .await;
    db
}

/// Creates `user`@`127.0.0.1` without a password, with `grants` (`SELECT, RELOAD ON *.*`).
async fn create_user(user: &str, grants: &str) {
    shared_upstream()
        .exec(&format!(
            "DROP USER IF EXISTS '{user}'@'127.0.0.1'; CREATE USER '{user}'@'127.0.0.1'; \
             GRANT {grants} TO '{user}'@'127.0.0.1'"
        ))
        .await;
}

fn unique_user(prefix: &str) -> String {
    format!("{prefix}_{:06x}", rand::random::<u32>() & 0xff_ffff)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_task_passes_every_item() {
    let db = keyed_db("pc_good").await;
    let up = source("up1", shared_upstream(), "root");
    let t = task("all", "up1", db.name(), &[]);
    let report = check_task(&t, &sources(vec![up]), None).await;
    eprintln!("{}", report.to_json());
    assert!(report.passed, "{}", report.to_json());
    for name in [
        "upstream_connection",
        "version",
        "dump_privilege",
        "server_id",
        "binlog_enable",
        "binlog_format",
        "binlog_row_image",
        "replication_privilege",
        "table_schema",
        "downstream_connection",
        "target_privilege",
    ] {
        let i = item(&report, name).unwrap_or_else(|| panic!("item {name} missing"));
        assert_eq!(i.state, CheckState::Success, "{name}: {}", i.message);
    }
    assert_eq!(report.check_result(), "pre-check is passed. ");
    assert!(report.into_result().is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_replication_privileges_fail_with_an_instruction() {
    let db = keyed_db("pc_norepl").await;
    let user = unique_user("pc_norepl");
    create_user(&user, "SELECT, RELOAD ON *.*").await;
    let t = task("all", "up1", db.name(), &[]);
    let report = check_task(
        &t,
        &sources(vec![source("up1", shared_upstream(), &user)]),
        None,
    )
    .await;
    assert!(!report.passed, "{}", report.to_json());
    let repl = item(&report, "replication_privilege").expect("item");
    assert_eq!(repl.state, CheckState::Fail);
    assert_eq!(repl.source, "up1");
    assert!(
        repl.message.contains("REPLICATION SLAVE"),
        "{}",
        repl.message
    );
    assert!(
        repl.message.contains("REPLICATION CLIENT"),
        "{}",
        repl.message
    );
    assert!(
        repl.instruction.contains("GRANT REPLICATION SLAVE"),
        "{}",
        repl.instruction
    );
    // SELECT and RELOAD are enough for the dump.
    assert_eq!(
        item(&report, "dump_privilege").unwrap().state,
        CheckState::Success
    );
    // Such an account still sees the table's primary key (MariaDB hides TABLE_CONSTRAINTS rows
    // from it, not index rows).
    let keys = item(&report, "table_schema").expect("item");
    assert_eq!(keys.state, CheckState::Success, "{}", keys.message);
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["passed"], false);
    assert!(json["summary"]["failed"].as_u64().unwrap() >= 1);
    let err = report.into_result().unwrap_err();
    assert_eq!(err.code, codes::MASTER_PRECHECK_FAILED.code);
    assert!(
        err.message.contains("[source up1] replication_privilege"),
        "{}",
        err.message
    );

    // Granting the privileges makes it pass.
    shared_upstream()
        .exec(&format!(
            "GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '{user}'@'127.0.0.1'"
        ))
        .await;
    let report = check_task(
        &t,
        &sources(vec![source("up1", shared_upstream(), &user)]),
        None,
    )
    .await;
    assert!(report.passed, "{}", report.to_json());
    shared_upstream()
        .exec(&format!("DROP USER '{user}'@'127.0.0.1'"))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_dump_privileges_name_the_tables() {
    let db = keyed_db("pc_nosel").await;
    let user = unique_user("pc_nosel");
    create_user(&user, "REPLICATION SLAVE, REPLICATION CLIENT ON *.*").await;
    let t = task("full", "up1", db.name(), &[]);
    let report = check_task(
        &t,
        &sources(vec![source("up1", shared_upstream(), &user)]),
        None,
    )
    .await;
    let dump = item(&report, "dump_privilege").expect("item");
    assert_eq!(dump.state, CheckState::Fail, "{}", report.to_json());
    assert!(dump.message.contains("RELOAD"), "{}", dump.message);
    // Without SELECT the account cannot see the tables: the schema the block-allow-list
    // names is reported instead. A full task does not check replication.
    assert!(
        dump.message.contains(&format!("schema `{}`", db.name())),
        "{}",
        dump.message
    );
    assert!(item(&report, "replication_privilege").is_none());
    shared_upstream()
        .exec(&format!("DROP USER '{user}'@'127.0.0.1'"))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_source_fails_with_the_scheduler_code() {
    let db = keyed_db("pc_nosrc").await;
    let t = task("all", "ghost", db.name(), &[]);
    let report = check_task(
        &t,
        &sources(vec![source("up1", shared_upstream(), "root")]),
        None,
    )
    .await;
    assert!(!report.passed);
    let missing = item(&report, CheckingItem::SourceExist.name()).expect("item");
    assert_eq!(missing.state, CheckState::Fail);
    assert_eq!(missing.source, "ghost");
    assert!(missing.message.contains("`ghost`"));
    assert_eq!(
        report.into_result().unwrap_err().code,
        codes::SCHEDULER_SOURCE_CFG_NOT_EXIST.code
    );

    // `all` skips every server check but never the source's existence.
    let t = task("all", "ghost", db.name(), &["all"]);
    let report = check_task(&t, &BTreeMap::new(), None).await;
    assert!(!report.passed);
    assert_eq!(report.items.len(), 1, "{}", report.to_json());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignore_checking_items_suppress_an_item() {
    let db = keyed_db("pc_ignore").await;
    let user = unique_user("pc_ignore");
    create_user(&user, "SELECT, RELOAD ON *.*").await;
    let t = task("all", "up1", db.name(), &["replication_privilege"]);
    let report = check_task(
        &t,
        &sources(vec![source("up1", shared_upstream(), &user)]),
        None,
    )
    .await;
    assert!(report.passed, "{}", report.to_json());
    assert!(item(&report, "replication_privilege").is_none());
    assert_eq!(
        item(&report, "binlog_format").unwrap().state,
        CheckState::Success
    );

    let t = task("all", "up1", db.name(), &["all"]);
    let report = check_task(
        &t,
        &sources(vec![source("up1", shared_upstream(), &user)]),
        None,
    )
    .await;
    assert!(report.passed);
    assert!(report.items.is_empty(), "{}", report.to_json());
    shared_upstream()
        .exec(&format!("DROP USER '{user}'@'127.0.0.1'"))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_without_a_key_is_a_warning_and_unreachable_servers_fail() {
    let db = keyed_db("pc_nokey").await;
    db.exec("CREATE TABLE loose (a INT, b TEXT)").await;
    let t = task("incremental", "up1", db.name(), &[]);
    let report = check_task(
        &t,
        &sources(vec![source("up1", shared_upstream(), "root")]),
        None,
    )
    .await;
    assert!(report.passed, "{}", report.to_json());
    let keys = item(&report, "table_schema").unwrap();
    assert_eq!(keys.state, CheckState::Warning);
    assert!(
        keys.message.contains("`loose`") && !keys.message.contains("`t`"),
        "{}",
        keys.message
    );
    assert!(
        item(&report, "dump_privilege").is_none(),
        "incremental does not dump"
    );
    assert_ne!(report.check_result(), "pre-check is passed. ");

    // A port nobody listens on: the source fails fast with upstream_connection.
    let mut dead = source("up1", shared_upstream(), "root");
    dead.from.port = crate::harness::free_port();
    let started = std::time::Instant::now();
    let report = check_task(&t, &sources(vec![dead]), None).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let conn = item(&report, "upstream_connection").unwrap();
    assert_eq!(conn.state, CheckState::Fail);
    assert!(conn.message.contains("cannot connect"), "{}", conn.message);
    assert_eq!(
        item(&report, "downstream_connection").unwrap().state,
        CheckState::Success
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_settings_the_servers_refuse_fail_the_connection_items() {
    let db = keyed_db("pc_session").await;
    let up = source("up1", shared_upstream(), "root");
    let mut t = task("all", "up1", db.name(), &[]);
    t.target_database.as_mut().unwrap().session.insert(
        "tidb_disable_txn_auto_retry".into(),
        dm::config::db::SessionValue::Bool(false),
    );
    let report = check_task(&t, &sources(vec![up.clone()]), None).await;
    assert!(!report.passed);
    let i = item(&report, "downstream_connection").expect("downstream_connection");
    assert_eq!(i.state, CheckState::Fail);
    assert!(
        i.message.contains("tidb_disable_txn_auto_retry"),
        "{}",
        i.message
    );
    assert!(
        i.message.contains("target-database.session"),
        "{}",
        i.message
    );

    // The same for the upstream's `from.session`.
    let mut up = up;
    up.from.session.insert(
        "no_such_variable_here".into(),
        dm::config::db::SessionValue::Int(1),
    );
    let t = task("all", "up1", db.name(), &[]);
    let report = check_task(&t, &sources(vec![up]), None).await;
    let i = item(&report, "upstream_connection").expect("upstream_connection");
    assert_eq!(i.state, CheckState::Fail, "{}", report.to_json());
    assert!(i.message.contains("no_such_variable_here"), "{}", i.message);
}
