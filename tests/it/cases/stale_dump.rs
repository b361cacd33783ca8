//! A finished dump left by an earlier run is not trusted by a new one: the task `full`-migrates
//! upstream A (its dump stays on disk), then the same task name and source-id are pointed at
//! upstream B and started again with `--remove-meta`. The new run must dump B again, load B's
//! rows and sync from B's binlog — not load A's files and ask B for A's position.

use std::time::Duration;

use crate::harness::cluster::{
    Cluster, ClusterSpec, Migration, assert_ok, migration_task, serial, wait_task,
};
use crate::harness::{MariaDb, eventually_msg, shared_downstream};

#[tokio::test]
async fn remove_meta_on_another_upstream_dumps_again() {
    let _one_cluster_at_a_time = serial().await;
    let cluster = Cluster::start(ClusterSpec::default()).await;
    let m = Migration::new(&cluster, "stale", "full").await;
    let db = m.db().to_string();
    m.up.exec(
        "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(8) NOT NULL);
         INSERT INTO t SELECT seq, 'a' FROM seq_1_to_100",
    )
    .await;
    assert_ok(
        &cluster
            .dmctl(&["operate-source", "create", &m.source_file])
            .await,
        "operate-source create (A)",
    );
    assert_ok(
        &cluster.dmctl(&["start-task", &m.task_file]).await,
        "start-task full",
    );
    wait_task(
        &cluster,
        &m.task_name,
        "Finished",
        "Load",
        Duration::from_secs(90),
    )
    .await;
    // DM appends the task name to `loader.dir`.
    let dump_dir = cluster
        .dir()
        .join(format!("dump-{db}.{}", m.task_name))
        .join(&m.source_id);
    assert!(
        dump_dir.join("metadata").exists() && dump_dir.join("dm-dump-owner.json").exists(),
        "a full-mode run leaves its finished dump and its owner file"
    );
    assert_ok(
        &cluster.dmctl(&["stop-task", &m.task_name]).await,
        "stop-task",
    );
    assert_ok(
        &cluster
            .dmctl(&["operate-source", "stop", &m.source_id])
            .await,
        "operate-source stop",
    );

    // Upstream B: another server, the same database with other rows.
    let b = MariaDb::start_upstream();
    b.exec(&format!(
        "CREATE DATABASE `{db}`; CREATE TABLE `{db}`.t (id INT PRIMARY KEY, v VARCHAR(8) NOT NULL);
         INSERT INTO `{db}`.t SELECT seq, 'b' FROM `{db}`.seq_1_to_60"
    ))
    .await;
    let source_b = cluster.write_file(
        "source-b.yaml",
        &format!(
            "source-id: \"{}\"\nflavor: mariadb\nenable-gtid: false\nfrom:\n  host: \"127.0.0.1\"\n  port: {}\n  user: \"root\"\n  password: \"\"\n",
            m.source_id,
            b.port()
        ),
    );
    assert_ok(
        &cluster
            .dmctl(&["operate-source", "create", &source_b])
            .await,
        "operate-source create (B)",
    );
    let task_all = cluster.write_file(
        "task-all.yaml",
        &migration_task(
            &m.task_name,
            "all",
            &db,
            &m.source_id,
            &cluster.dir().join(format!("dump-{db}")),
            None,
        ),
    );
    // The user empties the target before migrating again.
    shared_downstream()
        .exec(&format!("DROP DATABASE IF EXISTS `{db}`"))
        .await;
    assert_ok(
        &cluster
            .dmctl(&["start-task", &task_all, "--remove-meta"])
            .await,
        "start-task all --remove-meta",
    );
    wait_task(
        &cluster,
        &m.task_name,
        "Running",
        "Sync",
        Duration::from_secs(90),
    )
    .await;
    let log = cluster.workers[0].log_tail(400);
    assert!(
        log.contains("finished dump not reused; dumping again"),
        "the stale dump was judged:\n{log}"
    );
    let rows = |sql: String| async move {
        shared_downstream()
            .query_rows(&sql)
            .await
            .into_iter()
            .map(|r| (r.get::<i64, _>(0).unwrap(), r.get::<String, _>(1).unwrap()))
            .collect::<Vec<_>>()
    };
    let got = rows(format!(
        "SELECT COUNT(*), GROUP_CONCAT(DISTINCT v) FROM `{db}`.t"
    ))
    .await;
    assert_eq!(
        got,
        vec![(60, "b".to_string())],
        "the target holds B's snapshot"
    );
    // And sync follows B.
    b.exec(&format!("INSERT INTO `{db}`.t VALUES (61, 'b2')"))
        .await;
    eventually_msg(Duration::from_secs(30), "B's new row downstream", || {
        let db = db.clone();
        async move {
            rows(format!(
                "SELECT COUNT(*), GROUP_CONCAT(DISTINCT v ORDER BY v) FROM `{db}`.t"
            ))
            .await
                == vec![(61, "b,b2".to_string())]
        }
    })
    .await;
    assert_ok(
        &cluster.dmctl(&["stop-task", &m.task_name]).await,
        "stop-task",
    );
}
