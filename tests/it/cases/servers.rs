//! The harness's servers: private instances work as configured and leave nothing behind, and
//! the shared instances give each test a database of its own.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mysql_async::prelude::*;

use crate::harness::{
    Etcd, MariaDb, eventually_msg, fresh_db, pid_running, shared_downstream, shared_upstream,
};

/// Multibyte utf8mb4 text, including a 4-byte emoji.
const UTF8MB4_TEXT: &str = "中文😀";

#[tokio::test]
async fn upstream_downstream_and_etcd_start_work_and_clean_up() {
    let upstream = MariaDb::start_upstream();
    let downstream = MariaDb::start_downstream();
    let etcd = Etcd::start();
    assert_ne!(upstream.server_id(), downstream.server_id());

    // Upstream: ROW binlog with GTIDs.
    upstream
        .exec(
            "CREATE DATABASE it_servers; \
             CREATE TABLE it_servers.t (id INT PRIMARY KEY, v VARCHAR(16)); \
             INSERT INTO it_servers.t VALUES (1, 'a'), (2, 'b'), (3, 'c')",
        )
        .await;
    let status = upstream.query_rows("SHOW MASTER STATUS").await;
    let status = status.first().expect("SHOW MASTER STATUS returns a row");
    let file: String = status.get(0).expect("binlog file");
    let position: u64 = status.get(1).expect("binlog position");
    assert!(file.starts_with("mysql-bin."), "binlog file {file}");
    assert!(position > 4, "binlog position {position}");
    let mut conn = upstream.conn().await;
    let (format, row_image, log_bin, gtid): (String, String, i64, String) = conn
        .query_first("SELECT @@binlog_format, @@binlog_row_image, @@log_bin, @@gtid_current_pos")
        .await
        .expect("read binlog variables")
        .expect("one row");
    conn.disconnect().await.expect("disconnect");
    assert_eq!(
        (format.as_str(), row_image.as_str(), log_bin),
        ("ROW", "FULL", 1)
    );
    assert!(
        gtid.starts_with(&format!("0-{}-", upstream.server_id())),
        "gtid_current_pos {gtid:?}"
    );
    assert!(upstream.checksum("it_servers.t").await.is_some());
    assert_eq!(upstream.checksum("it_servers.missing").await, None);

    // Downstream: no binlog; utf8mb4 round-trips through text and binary protocols.
    let rows = downstream.query_rows("SELECT @@log_bin").await;
    assert_eq!(rows[0].get::<i64, _>(0), Some(0));
    downstream
        .exec(
            "CREATE DATABASE it_servers; \
             CREATE TABLE it_servers.t (id INT PRIMARY KEY, s VARCHAR(16)); \
             INSERT INTO it_servers.t VALUES (1, 'plain')",
        )
        .await;
    downstream
        .exec(&format!(
            "INSERT INTO it_servers.t VALUES (2, '{UTF8MB4_TEXT}')"
        ))
        .await;
    let mut conn = downstream.conn().await;
    conn.exec_drop("INSERT INTO it_servers.t VALUES (?, ?)", (3, UTF8MB4_TEXT))
        .await
        .expect("prepared insert");
    let read: Vec<(i32, String, String)> = conn
        .query("SELECT id, s, HEX(s) FROM it_servers.t ORDER BY id")
        .await
        .expect("read back");
    conn.disconnect().await.expect("disconnect");
    let utf8_hex = "E4B8ADE69687F09F9880";
    assert_eq!(
        read,
        [
            (1, "plain".to_owned(), "706C61696E".to_owned()),
            (2, UTF8MB4_TEXT.to_owned(), utf8_hex.to_owned()),
            (3, UTF8MB4_TEXT.to_owned(), utf8_hex.to_owned()),
        ]
    );

    // etcd: put then get.
    let mut client = etcd.client().await;
    client
        .put("dm-it/servers", UTF8MB4_TEXT, None)
        .await
        .expect("etcd put");
    let got = client.get("dm-it/servers", None).await.expect("etcd get");
    assert_eq!(
        got.kvs()
            .first()
            .map(|kv| kv.value_str().expect("utf8 value")),
        Some(UTF8MB4_TEXT)
    );
    drop(client);

    // Drop: every process is killed and reaped, every directory removed.
    let pids = [upstream.pid(), downstream.pid(), etcd.pid()];
    let dirs: Vec<PathBuf> = [upstream.dir(), downstream.dir(), etcd.dir()]
        .into_iter()
        .map(Path::to_path_buf)
        .collect();
    for (pid, dir) in pids.iter().zip(&dirs) {
        assert!(pid_running(*pid), "pid {pid} runs before drop");
        assert!(dir.is_dir(), "{} exists before drop", dir.display());
    }
    drop(upstream);
    drop(downstream);
    drop(etcd);
    for pid in pids {
        assert!(!pid_running(pid), "pid {pid} still runs after drop");
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "pid {pid} was not reaped"
        );
    }
    for dir in dirs {
        assert!(!dir.exists(), "{} still exists after drop", dir.display());
    }
}

#[tokio::test]
async fn shared_servers_give_each_test_its_own_database() {
    let upstream = shared_upstream();
    assert_eq!(
        upstream.pid(),
        shared_upstream().pid(),
        "one shared upstream"
    );
    let first = fresh_db(upstream, "servers");
    let second = fresh_db(upstream, "servers");
    assert_ne!(first.name(), second.name());

    // Same table name, different contents: the databases are independent.
    first
        .exec("CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1)")
        .await;
    second
        .exec("CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1), (2)")
        .await;
    let count = |rows: Vec<mysql_async::Row>| rows[0].get::<i64, _>(0).expect("count");
    assert_eq!(count(first.query_rows("SELECT COUNT(*) FROM t").await), 1);
    assert_eq!(count(second.query_rows("SELECT COUNT(*) FROM t").await), 2);
    assert_ne!(first.checksum("t").await, second.checksum("t").await);

    let downstream = fresh_db(shared_downstream(), "servers");
    downstream
        .exec("CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (7)")
        .await;
    assert_eq!(
        count(downstream.query_rows("SELECT MAX(id) FROM t").await),
        7
    );

    // Dropping a TestDb drops its database.
    let name = first.name().to_owned();
    drop(first);
    let exists = format!("SHOW DATABASES LIKE '{name}'");
    eventually_msg(
        Duration::from_secs(5),
        "the dropped database to vanish",
        || async { upstream.query_rows(&exists).await.is_empty() },
    )
    .await;
}
