//! A shard's DROP TABLE, TRUNCATE TABLE and DROP DATABASE never reach the table every shard
//! merges into: two sources (two `dm-syncer` processes) route `shguard_*`.`t*` into one
//! `t_target`, as DM's `sharding` integration case does; one shard is dropped, another
//! truncated, then one source's whole database is dropped. The merged table keeps every
//! shard's rows and goes on receiving the remaining shards' changes; each syncer counts what it
//! kept back.

use std::time::Duration;

use crate::harness::task::quote;
use crate::harness::{
    BinProcess, BlockAllowList, DM_SYNCER, Instance, Section, TaskYaml, eventually_msg, fresh_db,
    shared_downstream, shared_upstream, try_eventually,
};

async fn master_status() -> (String, u64) {
    let r: mysql_async::Row = shared_upstream()
        .query_rows("SHOW MASTER STATUS")
        .await
        .into_iter()
        .next()
        .expect("binlog on");
    (r.get(0).unwrap(), r.get(1).unwrap())
}

/// `(id, shard, v)` rows of the merged table, sorted; empty while it does not exist.
async fn merged_rows(table: &str) -> Vec<(i64, String, i64)> {
    use mysql_async::prelude::Queryable;
    let mut conn = shared_downstream().conn().await;
    let mut rows: Vec<(i64, String, i64)> = conn
        .query(format!("SELECT id, shard, v FROM {table}"))
        .await
        .unwrap_or_default();
    rows.sort();
    rows
}

/// Two sources `src-a` and `src-b` (databases `a` and `b`) starting at `start`, their tables
/// `t*` routed into `target`.`t_target`.
fn task_yaml(meta: &str, target: &str, a: &str, b: &str, start: (&str, u64)) -> String {
    let routes = format!(
        r#"routes:
  tbl:
    schema-pattern: "shguard_*"
    table-pattern: "t*"
    target-schema: {target}
    target-table: "t_target"
  sch:
    schema-pattern: "shguard_*"
    target-schema: {target}"#,
        target = quote(target)
    );
    let instance = |source: &str, ba: &str| {
        Instance::new(source)
            .block_allow_list(ba)
            .route_rules(&["tbl", "sch"])
            .syncer("s")
            .meta_pos(start.0, start.1)
    };
    TaskYaml::new("shguard", "incremental")
        .meta_schema(meta)
        .target_root(shared_downstream().port())
        .raw(&routes)
        .block_allow_list("ba-a", BlockAllowList::new().do_db(a))
        .block_allow_list("ba-b", BlockAllowList::new().do_db(b))
        .syncer(
            "s",
            Section::new()
                .set("worker-count", 2)
                .set("batch", 20)
                .set("checkpoint-flush-interval", 1),
        )
        .instance(instance("src-a", "ba-a"))
        .instance(instance("src-b", "ba-b"))
        .render()
}

#[tokio::test]
async fn shard_drop_and_truncate_keep_the_merged_table() {
    let a = fresh_db(shared_upstream(), "shguard");
    let b = fresh_db(shared_upstream(), "shguard");
    let target = fresh_db(shared_downstream(), "shguard_target");
    let meta = format!("{}_meta", target.name());
    let (file, pos) = master_status().await;
    let dir = tempfile::tempdir().unwrap();
    let task = task_yaml(&meta, target.name(), a.name(), b.name(), (&file, pos));
    let task_path = dir.path().join("task.yaml");
    std::fs::write(&task_path, task).unwrap();
    let mut syncers = Vec::new();
    for src in ["src-a", "src-b"] {
        let source = dir.path().join(format!("{src}.yaml"));
        std::fs::write(
            &source,
            format!(
                "source-id: \"{src}\"\nflavor: mariadb\nfrom:\n  host: \"127.0.0.1\"\n  port: {}\n  user: \"root\"\n  password: \"\"\n",
                shared_upstream().port()
            ),
        )
        .unwrap();
        let args: Vec<String> = vec![
            "--task".into(),
            task_path.display().to_string(),
            "--source".into(),
            source.display().to_string(),
            "--status-interval".into(),
            "1".into(),
        ];
        syncers.push(BinProcess::spawn(
            DM_SYNCER,
            &args,
            dir.path().join(format!("{src}.log")),
        ));
    }

    // Four shards (two per source), 20 rows each.
    let shards = [(&a, "t1", 1), (&a, "t2", 2), (&b, "t1", 3), (&b, "t2", 4)];
    for (db, t, k) in shards {
        db.exec(&format!(
            "CREATE TABLE {t} (id INT PRIMARY KEY, shard VARCHAR(8) NOT NULL, v INT NOT NULL);
             INSERT INTO {t} SELECT {k} * 1000 + seq, 's{k}', seq FROM seq_1_to_20"
        ))
        .await;
    }
    let merged = format!("`{}`.`t_target`", target.name());
    let mut expected: Vec<(i64, String, i64)> = (1..=4)
        .flat_map(|k| (1..=20).map(move |i| (k * 1000 + i, format!("s{k}"), i)))
        .collect();
    expected.sort();
    let converge = |want: Vec<(i64, String, i64)>, what: &'static str| {
        let merged = merged.clone();
        async move {
            let mut last = Vec::new();
            let found = try_eventually(
                Duration::from_secs(60),
                Duration::from_millis(200),
                async || {
                    last = merged_rows(&merged).await;
                    (last == want).then_some(())
                },
            )
            .await;
            assert!(
                found.is_some(),
                "{what}: merged table has {} rows, expected {}",
                last.len(),
                want.len()
            );
        }
    };
    converge(expected.clone(), "the union of four shards").await;

    // One shard dropped, another truncated: neither reaches the merged table.
    b.exec("DROP TABLE t2").await;
    a.exec("TRUNCATE TABLE t1").await;
    a.exec("INSERT INTO t2 VALUES (2100, 's2', 100)").await;
    b.exec("INSERT INTO t1 VALUES (3100, 's3', 100)").await;
    expected.push((2100, "s2".into(), 100));
    expected.push((3100, "s3".into(), 100));
    expected.sort();
    converge(expected.clone(), "shards after DROP TABLE and TRUNCATE").await;

    // A source's whole database dropped: the target database and table stay.
    b.exec(&format!("DROP DATABASE `{}`", b.name())).await;
    a.exec("INSERT INTO t2 VALUES (2101, 's2', 101)").await;
    expected.push((2101, "s2".into(), 101));
    expected.sort();
    converge(expected.clone(), "shards after DROP DATABASE").await;

    // Each syncer counted what it kept back (status lines) and says why (log).
    for (i, want) in [(0usize, 1u64), (1, 2)] {
        let p = &syncers[i];
        eventually_msg(
            Duration::from_secs(10),
            &format!("syncer {i} to report {want} skipped shard DDLs"),
            || {
                let log = p.log_tail(400);
                async move { log.contains(&format!("\"skipped_shard_ddls\":{want}")) }
            },
        )
        .await;
        let log = p.log_tail(2000);
        assert_eq!(
            log.matches("shard DDL not applied to its merge target")
                .count() as u64,
            want,
            "{log}"
        );
    }
    for mut p in syncers {
        assert!(
            p.try_exit().is_none(),
            "syncer still running:\n{}",
            p.log_tail(40)
        );
        p.terminate();
    }
    shared_downstream()
        .exec(&format!("DROP DATABASE IF EXISTS `{meta}`"))
        .await;
}
