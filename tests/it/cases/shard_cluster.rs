//! Pessimistic shard DDL across two sources in a cluster: dm-master's Pessimist holds the lock
//! in etcd, two dm-workers (one per source) wait for it, the owner executes, the other skips.
//! Shards: `t1`, `t2` of database `<a>` on source `src-a` and of `<b>` on `src-b`, all routed
//! into `<target>`.`t_target`. Both sources read the shared upstream (their block-allow-lists
//! keep them apart).

use std::time::Duration;

use mysql_async::prelude::*;
use serde_json::Value;

use crate::harness::cluster::{
    CTL_POLL, Cluster, ClusterSpec, assert_ok, master_status, serial, source_yaml, subtasks,
    wait_task,
};
use crate::harness::task::quote;
use crate::harness::{
    BlockAllowList, Instance, Section, TaskYaml, TestDb, fresh_db, shared_downstream,
    shared_upstream, try_eventually,
};

/// The two-source fleet and its task.
struct Fleet {
    cluster: Cluster,
    task: String,
    a: TestDb,
    b: TestDb,
    target: TestDb,
}

/// Every row of `sql` as text (`NULL` for null); `None` when the query fails.
async fn rows_of(opts: mysql_async::Opts, sql: &str) -> Option<Vec<Vec<String>>> {
    let mut conn = mysql_async::Conn::new(opts).await.unwrap();
    let rows: Result<Vec<mysql_async::Row>, _> = conn.query(sql).await;
    rows.ok().map(|rows| {
        rows.into_iter()
            .map(|r| {
                r.unwrap()
                    .into_iter()
                    .map(|v| match v {
                        mysql_async::Value::NULL => "NULL".to_string(),
                        mysql_async::Value::Bytes(b) => String::from_utf8_lossy(&b).into_owned(),
                        other => other.as_sql(false),
                    })
                    .collect()
            })
            .collect()
    })
}

impl Fleet {
    /// Starts 1 master and 2 workers, creates the shards after the position the task starts
    /// from, creates both sources and starts the task (`shard-mode: pessimistic`).
    async fn start(task: &str) -> Self {
        let cluster = Cluster::start(ClusterSpec {
            masters: 1,
            workers: 2,
            keepalive_ttl: 10,
        })
        .await;
        let a = fresh_db(shared_upstream(), &format!("{task}_a"));
        let b = fresh_db(shared_upstream(), &format!("{task}_b"));
        let target = fresh_db(shared_downstream(), &format!("{task}_t"));
        let (file, pos) = master_status().await;
        for db in [&a, &b] {
            db.exec(
                "CREATE TABLE t1 (id INT PRIMARY KEY, v INT NOT NULL); CREATE TABLE t2 (id INT PRIMARY KEY, v INT NOT NULL)",
            )
            .await;
        }
        let mut routes = String::from("routes:\n");
        for (name, db) in [("a", a.name()), ("b", b.name())] {
            routes += &format!(
                "  tbl_{name}:\n    schema-pattern: {}\n    table-pattern: \"t*\"\n    target-schema: {}\n    target-table: \"t_target\"\n  sch_{name}:\n    schema-pattern: {}\n    target-schema: {}\n",
                quote(db),
                quote(target.name()),
                quote(db),
                quote(target.name())
            );
        }
        let mut yaml = TaskYaml::new(task, "incremental")
            .meta_schema(&format!("{}_meta", target.name()))
            .target_root(shared_downstream().port())
            .raw("shard-mode: \"pessimistic\"")
            .raw(routes.trim_end())
            .syncer(
                "s",
                Section::new()
                    .set("worker-count", 4)
                    .set("batch", 10)
                    .set("checkpoint-flush-interval", 1),
            );
        for (name, db) in [("a", a.name()), ("b", b.name())] {
            yaml = yaml
                .block_allow_list(&format!("ba_{name}"), BlockAllowList::new().do_db(db))
                .instance(
                    Instance::new(&format!("src-{name}"))
                        .block_allow_list(&format!("ba_{name}"))
                        .route_rules(&[format!("tbl_{name}"), format!("sch_{name}")])
                        .syncer("s")
                        .meta_pos(&file, pos),
                );
        }
        let task_file = cluster.write_file(&format!("{task}.yaml"), &yaml.render());
        for s in ["src-a", "src-b"] {
            let f = cluster.write_file(&format!("{s}.yaml"), &source_yaml(s));
            assert_ok(
                &cluster.dmctl(&["operate-source", "create", &f]).await,
                "operate-source create",
            );
        }
        assert_ok(
            &cluster.dmctl(&["start-task", &task_file]).await,
            "start-task",
        );
        wait_task(&cluster, task, "Running", "Sync", Duration::from_secs(90)).await;
        Self {
            cluster,
            task: task.to_string(),
            a,
            b,
            target,
        }
    }

    fn lock_id(&self) -> String {
        format!("{}-`{}`.`t_target`", self.task, self.target.name())
    }

    /// `SELECT id, v` of every shard, ordered.
    async fn union(&self) -> Vec<Vec<String>> {
        rows_of(
            shared_upstream().opts(None),
            &format!(
                "SELECT id, v FROM `{a}`.t1 UNION ALL SELECT id, v FROM `{a}`.t2 UNION ALL SELECT id, v FROM `{b}`.t1 UNION ALL SELECT id, v FROM `{b}`.t2 ORDER BY id",
                a = self.a.name(),
                b = self.b.name()
            ),
        )
        .await
        .expect("the shards exist")
    }

    async fn merged(&self, cols: &str) -> Option<Vec<Vec<String>>> {
        rows_of(
            shared_downstream().opts(None),
            &format!(
                "SELECT {cols} FROM `{}`.t_target ORDER BY id",
                self.target.name()
            ),
        )
        .await
    }

    async fn merged_ids(&self) -> Vec<i64> {
        self.merged("id")
            .await
            .unwrap_or_default()
            .iter()
            .map(|r| r[0].parse().unwrap())
            .collect()
    }

    async fn columns(&self) -> Vec<String> {
        shared_downstream()
            .query_rows(&format!(
                "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '{}' AND TABLE_NAME = 't_target' ORDER BY ORDINAL_POSITION",
                self.target.name()
            ))
            .await
            .into_iter()
            .map(|r| r.get::<String, _>(0).unwrap())
            .collect()
    }

    /// Waits until the merged table holds exactly the shards' union, and still does a moment
    /// later.
    async fn converge(&self, what: &str) {
        let want = self.union().await;
        let mut last = None;
        let ok = try_eventually(
            Duration::from_secs(90),
            Duration::from_millis(300),
            async || {
                last = self.merged("id, v").await;
                (last.as_ref() == Some(&want)).then_some(())
            },
        )
        .await;
        assert!(
            ok.is_some(),
            "{what}: merged {last:?}\n  want {want:?}\n{}",
            self.cluster.logs(40)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            self.merged("id, v").await.as_ref(),
            Some(&want),
            "{what}: changed after converging"
        );
    }

    async fn wait_row(&self, id: i64) {
        let ok = try_eventually(
            Duration::from_secs(60),
            Duration::from_millis(200),
            async || self.merged_ids().await.contains(&id).then_some(()),
        )
        .await;
        assert!(
            ok.is_some(),
            "row {id} never arrived:\n{}",
            self.cluster.logs(40)
        );
    }

    /// `shard-ddl-lock <task>`'s locks (`None` while the master cannot answer, e.g. a new
    /// leader still starting).
    async fn try_locks(&self) -> Option<Vec<Value>> {
        let out = self.cluster.dmctl(&["shard-ddl-lock", &self.task]).await;
        out.ok()
            .then(|| out.json["locks"].as_array().cloned().unwrap_or_default())
    }

    async fn locks(&self) -> Vec<Value> {
        let out = self.cluster.dmctl(&["shard-ddl-lock", &self.task]).await;
        assert_ok(&out, "shard-ddl-lock");
        out.json["locks"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until `shard-ddl-lock` shows the lock in `state` and returns it.
    async fn wait_lock(&self, state: &str) -> Value {
        let mut last = Vec::new();
        let found = try_eventually(Duration::from_secs(60), CTL_POLL, async || {
            last = self.try_locks().await.unwrap_or_default();
            last.iter()
                .find(|l| l["ID"] == self.lock_id().as_str() && l["waiting"]["state"] == state)
                .cloned()
        })
        .await;
        found.unwrap_or_else(|| {
            panic!(
                "no lock {} waiting for {state}: {last:#?}\n{}",
                self.lock_id(),
                self.cluster.logs(40)
            )
        })
    }

    async fn wait_no_lock(&self) {
        let mut last = Vec::new();
        let gone = try_eventually(Duration::from_secs(60), CTL_POLL, async || {
            last = self.try_locks().await?;
            last.is_empty().then_some(())
        })
        .await;
        assert!(
            gone.is_some(),
            "the lock stayed: {last:#?}\n{}",
            self.cluster.logs(40)
        );
    }

    /// query-status's subtask of `source`.
    async fn subtask(&self, source: &str) -> Value {
        let out = self.cluster.dmctl(&["query-status", &self.task]).await;
        let json = out.json.clone();
        let i = json["sources"]
            .as_array()
            .and_then(|s| s.iter().position(|s| s["sourceStatus"]["source"] == source))
            .unwrap_or_else(|| panic!("no source {source}: {out}"));
        subtasks(&serde_json::json!({ "sources": [json["sources"][i].clone()] }))
            .pop()
            .unwrap_or_else(|| panic!("no subtask on {source}: {out}"))
    }

    /// The worker bound to `source`.
    async fn worker_of(&self, source: &str) -> String {
        self.cluster
            .bound_worker(source)
            .await
            .unwrap_or_else(|| panic!("{source} is not bound"))
    }
}

#[tokio::test]
async fn pessimistic_lock_across_two_sources_in_a_cluster() {
    let _one_cluster_at_a_time = serial().await;
    let f = Fleet::start("shcl").await;
    let a = f.a.name().to_string();
    f.a.exec("INSERT INTO t1 VALUES (1, 1); INSERT INTO t2 VALUES (2, 1)")
        .await;
    f.b.exec("INSERT INTO t1 VALUES (3, 1); INSERT INTO t2 VALUES (4, 1)")
        .await;
    f.converge("before any DDL").await;

    // One shard of src-a adds a column: src-a's group is not synced, nothing goes to the
    // master; query-status shows the group. That shard's later rows wait, the others flow.
    f.a.exec("ALTER TABLE t1 ADD COLUMN c INT NOT NULL DEFAULT 7")
        .await;
    f.a.exec("INSERT INTO t1 VALUES (11, 2, 11); INSERT INTO t2 VALUES (12, 2)")
        .await;
    f.b.exec("INSERT INTO t1 VALUES (13, 2); INSERT INTO t2 VALUES (14, 2)")
        .await;
    let st = {
        let mut last = Value::Null;
        let found = try_eventually(Duration::from_secs(30), CTL_POLL, async || {
            last = f.subtask("src-a").await;
            let groups = last["sync"]["unresolvedGroups"].as_array().cloned()?;
            (!groups.is_empty()).then_some(last.clone())
        })
        .await;
        found.unwrap_or_else(|| panic!("src-a never showed its unresolved group: {last:#}"))
    };
    let g = &st["sync"]["unresolvedGroups"][0];
    assert_eq!(
        g["unsynced"],
        serde_json::json!([format!("`{a}`.`t2`")]),
        "{st:#}"
    );
    f.wait_row(12).await;
    f.wait_row(14).await;
    assert!(
        f.locks().await.is_empty(),
        "a lock before src-a's group synced"
    );
    assert!(!f.merged_ids().await.contains(&11));

    // src-a's second shard: the group is synced, src-a reports and owns the lock; src-b has
    // not reached the DDL and keeps flowing.
    f.a.exec("ALTER TABLE t2 ADD COLUMN c INT NOT NULL DEFAULT 7")
        .await;
    f.a.exec("INSERT INTO t2 VALUES (15, 3, 15)").await;
    f.b.exec("INSERT INTO t1 VALUES (16, 3)").await;
    let lock = f.wait_lock("sources").await;
    assert_eq!(lock["owner"], "src-a", "{lock:#}");
    assert_eq!(lock["synced"], serde_json::json!(["src-a"]), "{lock:#}");
    assert_eq!(lock["unsynced"], serde_json::json!(["src-b"]), "{lock:#}");
    assert_eq!(lock["mode"], "pessimistic", "{lock:#}");
    let ddls = lock["DDLs"].as_array().unwrap();
    assert!(
        ddls.len() == 1 && ddls[0].as_str().unwrap().contains("ADD COLUMN"),
        "{lock:#}"
    );
    let st = f.subtask("src-a").await;
    assert_eq!(st["unresolvedDDLLockID"], f.lock_id().as_str(), "{st:#}");
    assert!(
        !st["sync"]["blockingDDLs"].as_array().unwrap().is_empty(),
        "{st:#}"
    );
    f.wait_row(16).await;
    assert_eq!(f.columns().await, ["id", "v"]);
    let ids = f.merged_ids().await;
    assert!(
        !ids.contains(&11) && !ids.contains(&15),
        "src-a's rows after its DDL were applied before the DDL: {ids:?}"
    );

    // src-b reaches it on both shards, with rows between: the owner executes once, src-b
    // skips, the lock is gone, every withheld row arrives.
    f.b.exec("ALTER TABLE t1 ADD COLUMN c INT NOT NULL DEFAULT 7")
        .await;
    f.b.exec("INSERT INTO t1 VALUES (17, 4, 17); INSERT INTO t2 VALUES (18, 4)")
        .await;
    f.b.exec("ALTER TABLE t2 ADD COLUMN c INT NOT NULL DEFAULT 7")
        .await;
    f.b.exec("INSERT INTO t2 VALUES (19, 5, 19)").await;
    f.wait_no_lock().await;
    f.converge("after every shard added c").await;
    assert_eq!(f.columns().await, ["id", "v", "c"]);
    let c = f.merged("id, c").await.unwrap();
    for want in [
        ["1", "7"],
        ["11", "11"],
        ["15", "15"],
        ["17", "17"],
        ["19", "19"],
    ] {
        assert!(c.iter().any(|r| r == &want), "{want:?} missing: {c:?}");
    }
    let st = f.subtask("src-a").await;
    assert_eq!(st["unresolvedDDLLockID"], "", "{st:#}");
    assert!(
        st["sync"]["unresolvedGroups"]
            .as_array()
            .is_none_or(|g| g.is_empty()),
        "{st:#}"
    );

    // DROP in turn, src-b first this time: src-b owns the lock; the column stays downstream
    // (src-a still writes it) until every shard dropped it.
    f.b.exec("ALTER TABLE t1 DROP COLUMN c; ALTER TABLE t2 DROP COLUMN c")
        .await;
    f.b.exec("INSERT INTO t1 VALUES (21, 6)").await;
    f.a.exec("INSERT INTO t1 VALUES (22, 6, 22)").await;
    let lock = f.wait_lock("sources").await;
    assert_eq!(lock["owner"], "src-b", "{lock:#}");
    f.wait_row(22).await;
    assert!(!f.merged_ids().await.contains(&21));
    assert_eq!(f.columns().await, ["id", "v", "c"]);
    f.a.exec("ALTER TABLE t1 DROP COLUMN c").await;
    f.a.exec("INSERT INTO t1 VALUES (23, 7); INSERT INTO t2 VALUES (24, 7, 24)")
        .await;
    f.a.exec("ALTER TABLE t2 DROP COLUMN c").await;
    f.a.exec("INSERT INTO t2 VALUES (25, 8)").await;
    f.wait_no_lock().await;
    f.converge("after every shard dropped c").await;
    assert_eq!(f.columns().await, ["id", "v"]);

    // The locks went through etcd: nothing of them is left there.
    let mut etcd = f.cluster.etcd().await;
    let left = etcd
        .get(
            "/dm-master/shardddl-pessimism/",
            Some(etcd_client::GetOptions::new().with_prefix()),
        )
        .await
        .unwrap();
    assert!(
        left.kvs().is_empty(),
        "{:?}",
        left.kvs()
            .iter()
            .map(|kv| kv.key_str().unwrap().to_string())
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn owner_crashes_and_master_restarts_while_a_lock_is_pending() {
    let _one_cluster_at_a_time = serial().await;
    let mut f = Fleet::start("shcr").await;
    f.a.exec("INSERT INTO t1 VALUES (1, 1); INSERT INTO t2 VALUES (2, 1)")
        .await;
    f.b.exec("INSERT INTO t1 VALUES (3, 1); INSERT INTO t2 VALUES (4, 1)")
        .await;
    f.converge("before any DDL").await;
    let mut next = 10;
    // Rows into all four shards.
    async fn rows(f: &Fleet, next: &mut i64) {
        for db in [&f.a, &f.b] {
            for t in ["t1", "t2"] {
                *next += 1;
                db.exec(&format!("INSERT INTO {t} (id, v) VALUES ({next}, {next})"))
                    .await;
            }
        }
    }
    // The owner (src-a: its DDLs come first) is killed at each stage of the lock: right after
    // its Info is in etcd, after executing the DDL downstream before anything recorded it,
    // after recording it, and in the middle of re-syncing its withheld rows.
    for (i, stage) in [
        "shard-after-info",
        "shard-after-exec",
        "shard-after-record",
        "shard-resync",
    ]
    .iter()
    .enumerate()
    {
        let col = format!("c{i}");
        let w = f.worker_of("src-a").await;
        f.cluster.stop_worker(&w);
        f.cluster
            .restart_worker_env(&w, &[("DM_RS_FAILPOINTS", &format!("{stage}=1"))])
            .await;
        wait_task(
            &f.cluster,
            &f.task,
            "Running",
            "Sync",
            Duration::from_secs(90),
        )
        .await;
        let add = format!("ADD COLUMN {col} INT NOT NULL DEFAULT 0");
        f.a.exec(&format!("ALTER TABLE t1 {add}")).await;
        // Withheld rows of src-a's t1 (re-synced later), several events.
        for _ in 0..3 {
            rows(&f, &mut next).await;
        }
        f.a.exec(&format!("ALTER TABLE t2 {add}")).await;
        rows(&f, &mut next).await;
        if *stage != "shard-after-info" {
            f.wait_lock("sources").await;
        }
        f.b.exec(&format!("ALTER TABLE t1 {add}; ALTER TABLE t2 {add}"))
            .await;
        rows(&f, &mut next).await;
        let crashed = try_eventually(Duration::from_secs(60), CTL_POLL, async || {
            f.cluster.worker_exited(&w).then_some(())
        })
        .await;
        assert!(
            crashed.is_some(),
            "{stage} never fired:\n{}",
            f.cluster.logs(40)
        );
        let log = f.cluster.worker(&w).log_tail(20);
        assert!(
            log.contains("failpoint") && log.contains(stage),
            "the worker exited, not at {stage}:\n{log}"
        );
        f.cluster.restart_worker(&w).await;
        f.wait_no_lock().await;
        f.converge(&format!("after the owner was killed at {stage}"))
            .await;
        assert!(
            f.columns().await.contains(&col),
            "{stage}: the DDL never reached the merged table"
        );
    }

    // The leader master dies while src-a waits for src-b: the new incarnation rebuilds the
    // lock from etcd and the DDL runs once src-b reaches it.
    f.a.exec("ALTER TABLE t1 ADD COLUMN m INT NOT NULL DEFAULT 0; ALTER TABLE t2 ADD COLUMN m INT NOT NULL DEFAULT 0")
        .await;
    rows(&f, &mut next).await;
    let before = f.wait_lock("sources").await;
    let master = f.cluster.masters[0].name.clone();
    f.cluster.kill9_master(&master);
    f.cluster.restart_master(&master).await;
    f.cluster.wait_leader(Duration::from_secs(60)).await;
    let after = f.wait_lock("sources").await;
    assert_eq!(before["owner"], after["owner"]);
    assert_eq!(before["DDLs"], after["DDLs"]);
    f.b.exec("ALTER TABLE t1 ADD COLUMN m INT NOT NULL DEFAULT 0; ALTER TABLE t2 ADD COLUMN m INT NOT NULL DEFAULT 0")
        .await;
    rows(&f, &mut next).await;
    f.wait_no_lock().await;
    f.converge("after the master restarted").await;
    assert!(f.columns().await.contains(&"m".to_string()));
}

#[tokio::test]
async fn differing_ddls_are_a_coded_conflict_and_unlock_force_remove_gets_going() {
    let _one_cluster_at_a_time = serial().await;
    let f = Fleet::start("shdf").await;
    f.a.exec("INSERT INTO t1 VALUES (1, 1); INSERT INTO t2 VALUES (2, 1)")
        .await;
    f.b.exec("INSERT INTO t1 VALUES (3, 1); INSERT INTO t2 VALUES (4, 1)")
        .await;
    f.converge("before any DDL").await;
    let add = "ADD COLUMN c INT NOT NULL DEFAULT 1";
    f.a.exec(&format!("ALTER TABLE t1 {add}; ALTER TABLE t2 {add}"))
        .await;
    f.wait_lock("sources").await;
    // src-b runs a different DDL: the lock shows the conflict, its code, both DDLs and a way out.
    let other = "ADD COLUMN c BIGINT NOT NULL DEFAULT 2";
    f.b.exec(&format!("ALTER TABLE t1 {other}; ALTER TABLE t2 {other}"))
        .await;
    let lock = f.wait_lock("conflict").await;
    let w = &lock["waiting"];
    let error = w["error"].as_str().unwrap();
    assert!(error.contains("38016"), "{lock:#}");
    assert!(
        error.contains("BIGINT") && error.contains(" INT "),
        "the error names both DDLs: {lock:#}"
    );
    assert!(w["detail"].as_str().unwrap().contains("src-b"), "{lock:#}");
    assert!(
        w["resolve"].as_str().unwrap().contains("--force-remove"),
        "{lock:#}"
    );
    assert_eq!(
        f.columns().await,
        ["id", "v"],
        "a DDL ran during the conflict"
    );

    // Unlock by hand: the owner executes the lock's DDLs, src-b is told to skip its own.
    let out = f
        .cluster
        .dmctl(&["shard-ddl-lock", "unlock", &f.lock_id(), "--force-remove"])
        .await;
    assert_ok(&out, "shard-ddl-lock unlock --force-remove");
    f.wait_no_lock().await;
    assert_eq!(f.columns().await, ["id", "v", "c"]);
    f.a.exec("INSERT INTO t1 VALUES (5, 2, 5)").await;
    f.b.exec("INSERT INTO t2 VALUES (6, 2, 6)").await;
    f.converge("after the forced unlock").await;
    let c = f.merged("id, c").await.unwrap();
    assert!(c.iter().any(|r| r == &["5", "5"]), "{c:?}");
    assert!(c.iter().any(|r| r == &["6", "6"]), "{c:?}");
    let out = f
        .cluster
        .dmctl(&["shard-ddl-lock", "unlock", &f.lock_id()])
        .await;
    assert!(
        !out.ok() && (out.stdout.contains("38019") || out.stderr.contains("38019")),
        "unlocking a lock that is gone: {out}"
    );
}
