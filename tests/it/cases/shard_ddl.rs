//! Pessimistic shard DDL coordination of one source run by `dm-syncer` (no master: the source
//! is the task's only one): two shard tables routed into one merged table. A shard's DDL waits
//! for the other shard, its later rows are withheld and re-synced once the DDL ran; crashes at
//! each stage (failpoints) converge with nothing lost or doubled.

use std::time::Duration;

use mysql_async::prelude::*;
use tempfile::TempDir;

use crate::harness::task::quote;
use crate::harness::{
    BinProcess, BlockAllowList, DM_SYNCER, Instance, Section, TaskYaml, TestDb, fresh_db,
    shared_downstream, shared_upstream, try_eventually,
};

use crate::harness::rows::query_text;

/// Every row of `sql` as text.
async fn rows_of(opts: mysql_async::Opts, sql: &str) -> Vec<Vec<String>> {
    query_text(opts, sql).await.expect("the query runs")
}

/// The columns of `db`.`table`.
async fn columns(server: &'static crate::harness::MariaDb, db: &str, table: &str) -> Vec<String> {
    crate::harness::rows::column_names(server.opts(None), db, table).await
}

/// One upstream database with shard tables `t1`, `t2` merged by a `dm-syncer` into
/// `<target>`.`t_target`.
struct Shards {
    up: TestDb,
    target: TestDb,
    dir: TempDir,
    syncer: Option<BinProcess>,
    runs: u32,
}

impl Shards {
    /// Creates `t1`, `t2` (`id` primary key, `v`) after the position the task starts from.
    async fn new() -> Self {
        let up = fresh_db(shared_upstream(), "shardp");
        let target = fresh_db(shared_downstream(), "shardp_target");
        let (file, pos) = crate::harness::cluster::master_status().await;
        for t in ["t1", "t2"] {
            up.exec(&format!(
                "CREATE TABLE {t} (id INT PRIMARY KEY, v INT NOT NULL)"
            ))
            .await;
        }
        let dir = tempfile::tempdir().unwrap();
        let routes = format!(
            "routes:\n  tbl:\n    schema-pattern: {}\n    table-pattern: \"t*\"\n    target-schema: {}\n    target-table: \"t_target\"\n  sch:\n    schema-pattern: {}\n    target-schema: {}",
            quote(up.name()),
            quote(target.name()),
            quote(up.name()),
            quote(target.name())
        );
        let task = TaskYaml::new("shardp", "incremental")
            .meta_schema(&format!("{}_meta", target.name()))
            .target_root(shared_downstream().port())
            .raw("shard-mode: \"pessimistic\"")
            .raw(&routes)
            .block_allow_list("ba", BlockAllowList::new().do_db(up.name()))
            .syncer(
                "s",
                Section::new()
                    .set("worker-count", 4)
                    .set("batch", 10)
                    .set("checkpoint-flush-interval", 1),
            )
            .instance(
                Instance::new("src-a")
                    .block_allow_list("ba")
                    .route_rules(&["tbl", "sch"])
                    .syncer("s")
                    .meta_pos(&file, pos),
            )
            .render();
        std::fs::write(dir.path().join("task.yaml"), task).unwrap();
        std::fs::write(
            dir.path().join("source.yaml"),
            format!(
                "source-id: \"src-a\"\nflavor: mariadb\nfrom:\n  host: \"127.0.0.1\"\n  port: {}\n  user: \"root\"\n  password: \"\"\n",
                shared_upstream().port()
            ),
        )
        .unwrap();
        Self {
            up,
            target,
            dir,
            syncer: None,
            runs: 0,
        }
    }

    /// Starts dm-syncer with `failpoints` armed (empty: none).
    fn start(&mut self, failpoints: &str) {
        self.runs += 1;
        let d = self.dir.path();
        let args: Vec<String> = vec![
            "--task".into(),
            d.join("task.yaml").display().to_string(),
            "--source".into(),
            d.join("source.yaml").display().to_string(),
            "--status-interval".into(),
            "1".into(),
        ];
        let log = d.join(format!("syncer-{}.log", self.runs));
        self.syncer = Some(BinProcess::spawn_with_env(
            DM_SYNCER,
            &args,
            &[("DM_RS_FAILPOINTS", failpoints)],
            log,
        ));
    }

    fn log(&self) -> String {
        self.syncer
            .as_ref()
            .map(|s| s.log_tail(60))
            .unwrap_or_default()
    }

    /// Waits until the armed failpoint aborted the syncer.
    async fn wait_crash(&mut self) {
        let mut p = self.syncer.take().expect("running");
        let exited = try_eventually(
            Duration::from_secs(30),
            Duration::from_millis(50),
            async || p.try_exit(),
        )
        .await;
        let log = p.log_tail(40);
        assert!(
            exited.is_some_and(|s| !s.success()),
            "the failpoint did not abort dm-syncer:\n{log}"
        );
        assert!(log.contains("failpoint"), "{log}");
    }

    fn merged(&self) -> String {
        format!("`{}`.`t_target`", self.target.name())
    }

    /// `SELECT id, v` of both shards, ordered.
    async fn union(&self) -> Vec<Vec<String>> {
        rows_of(
            self.up.opts(),
            "SELECT id, v FROM t1 UNION ALL SELECT id, v FROM t2 ORDER BY id",
        )
        .await
    }

    async fn merged_rows(&self, cols: &str) -> Option<Vec<Vec<String>>> {
        query_text(
            shared_downstream().opts(None),
            &format!("SELECT {cols} FROM {} ORDER BY id", self.merged()),
        )
        .await
    }

    /// Waits until the merged table holds exactly the shards' union (ids and `v`).
    async fn converge(&self, what: &str) {
        let want = self.union().await;
        let mut last = None;
        let ok = try_eventually(
            Duration::from_secs(60),
            Duration::from_millis(200),
            async || {
                last = self.merged_rows("id, v").await;
                (last.as_ref() == Some(&want)).then_some(())
            },
        )
        .await;
        assert!(
            ok.is_some(),
            "{what}: merged {:?}\n  want {want:?}\n{}",
            last,
            self.log()
        );
    }

    /// Waits until the merged table has the row `id`.
    async fn wait_row(&self, id: i64) {
        let ok = try_eventually(
            Duration::from_secs(30),
            Duration::from_millis(100),
            async || self.merged_ids().await.contains(&id).then_some(()),
        )
        .await;
        assert!(ok.is_some(), "row {id} never arrived:\n{}", self.log());
    }

    async fn merged_ids(&self) -> Vec<i64> {
        let mut conn = mysql_async::Conn::new(shared_downstream().opts(None))
            .await
            .unwrap();
        conn.query(format!("SELECT id FROM {}", self.merged()))
            .await
            .unwrap_or_default()
    }

    async fn stop(&mut self) {
        if let Some(mut p) = self.syncer.take() {
            assert!(
                p.try_exit().is_none(),
                "dm-syncer exited:\n{}",
                p.log_tail(40)
            );
            p.terminate();
        }
        shared_downstream()
            .exec(&format!(
                "DROP DATABASE IF EXISTS `{}_meta`",
                self.target.name()
            ))
            .await;
    }
}

#[tokio::test]
async fn pessimistic_ddl_waits_for_every_shard_and_withheld_rows_follow() {
    let mut s = Shards::new().await;
    s.start("");
    s.up.exec("INSERT INTO t1 VALUES (1, 1); INSERT INTO t2 VALUES (101, 1)")
        .await;
    s.converge("before any DDL").await;

    // t1 adds a column: the merged table does not get it, t1's later rows wait, t2's flow.
    s.up.exec("ALTER TABLE t1 ADD COLUMN c INT NOT NULL DEFAULT 7")
        .await;
    s.up.exec("INSERT INTO t1 VALUES (2, 2, 2); INSERT INTO t2 VALUES (102, 2)")
        .await;
    s.wait_row(102).await;
    let target = s.target.name().to_string();
    assert_eq!(
        columns(shared_downstream(), &target, "t_target").await,
        ["id", "v"]
    );
    assert!(
        !s.merged_ids().await.contains(&2),
        "t1's row after its DDL was applied before the DDL"
    );

    // t2 adds it too: the DDL runs once, t1's withheld row arrives.
    s.up.exec("ALTER TABLE t2 ADD COLUMN c INT NOT NULL DEFAULT 7")
        .await;
    s.up.exec("INSERT INTO t2 VALUES (103, 3, 3)").await;
    s.converge("after both shards added c").await;
    assert_eq!(
        columns(shared_downstream(), &target, "t_target").await,
        ["id", "v", "c"]
    );
    let mut conn = mysql_async::Conn::new(shared_downstream().opts(None))
        .await
        .unwrap();
    let c: Vec<(i64, i64)> = conn
        .query(format!("SELECT id, c FROM {} ORDER BY id", s.merged()))
        .await
        .unwrap();
    assert!(
        c.contains(&(2, 2)) && c.contains(&(103, 3)) && c.contains(&(1, 7)),
        "{c:?}"
    );

    // DROP in turn: t2 first. Its rows without c wait; t1 still writes c and is applied.
    s.up.exec("ALTER TABLE t2 DROP COLUMN c").await;
    s.up.exec("INSERT INTO t2 VALUES (104, 4); INSERT INTO t1 VALUES (5, 5, 55)")
        .await;
    s.wait_row(5).await;
    assert_eq!(
        columns(shared_downstream(), &target, "t_target").await,
        ["id", "v", "c"]
    );
    assert!(!s.merged_ids().await.contains(&104));
    s.up.exec("ALTER TABLE t1 DROP COLUMN c").await;
    s.up.exec("INSERT INTO t1 VALUES (6, 6)").await;
    s.converge("after both shards dropped c").await;
    assert_eq!(
        columns(shared_downstream(), &target, "t_target").await,
        ["id", "v"]
    );

    // The sharding meta kept the membership with the checkpoint, DM's columns.
    let meta = shared_downstream()
        .query_rows(&format!(
            "SELECT target_table_id, source_table_id, is_global FROM `{target}_meta`.`shardp_syncer_sharding_meta` WHERE source_id = 'src-a' ORDER BY source_table_id"
        ))
        .await;
    let members: Vec<String> = meta
        .iter()
        .map(|r| r.get::<String, _>(1).unwrap())
        .collect();
    let up = s.up.name().to_string();
    assert!(
        members.contains(&format!("`{up}`.`t1`")) && members.contains(&format!("`{up}`.`t2`")),
        "{members:?}"
    );
    s.stop().await;
}

/// Crashes (failpoint aborts) at each stage of one lock, then a plain restart: the merged table
/// converges to the union, nothing lost or doubled (a doubled row would be a key error or an
/// extra row; `id` is the key).
#[tokio::test]
async fn crashes_at_each_lock_stage_converge() {
    let mut s = Shards::new().await;
    s.start("");
    s.up.exec("INSERT INTO t1 VALUES (1, 1); INSERT INTO t2 VALUES (101, 1)")
        .await;
    s.converge("before any DDL").await;
    let stages = [
        "shard-before-decide",
        "shard-after-exec",
        "shard-after-record",
        "shard-resync",
    ];
    let mut next = 10;
    for (i, stage) in stages.iter().enumerate() {
        let col = format!("c{i}");
        s.stop_running().await;
        s.start(&format!("{stage}=1"));
        // Rows between the two shards' DDLs, several per table so that the re-sync has work.
        s.up.exec(&format!(
            "ALTER TABLE t1 ADD COLUMN {col} INT NOT NULL DEFAULT 0"
        ))
        .await;
        for _ in 0..3 {
            next += 1;
            s.up.exec(&format!("INSERT INTO t1 (id, v) VALUES ({next}, {next})"))
                .await;
            s.up.exec(&format!(
                "INSERT INTO t2 (id, v) VALUES ({}, {next})",
                next + 1000
            ))
            .await;
        }
        s.up.exec(&format!(
            "ALTER TABLE t2 ADD COLUMN {col} INT NOT NULL DEFAULT 0"
        ))
        .await;
        next += 1;
        s.up.exec(&format!("INSERT INTO t1 (id, v) VALUES ({next}, {next})"))
            .await;
        s.wait_crash().await;
        s.start("");
        s.converge(&format!("after a crash at {stage}")).await;
        let target = s.target.name().to_string();
        assert!(
            columns(shared_downstream(), &target, "t_target")
                .await
                .contains(&col),
            "{stage}: the DDL never reached the merged table"
        );
    }
    s.stop().await;
}

impl Shards {
    /// Stops the running syncer gracefully (keeps the meta).
    async fn stop_running(&mut self) {
        if let Some(mut p) = self.syncer.take() {
            assert!(
                p.try_exit().is_none(),
                "dm-syncer exited:\n{}",
                p.log_tail(40)
            );
            p.terminate();
        }
    }
}
