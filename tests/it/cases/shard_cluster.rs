//! Pessimistic shard DDL across two sources in a cluster: dm-master's Pessimist holds the lock
//! in etcd, two dm-workers (one per source) wait for it, the owner executes, the other skips.
//! Shards: `t1`, `t2` of database `<a>` on source `src-a` and of `<b>` on `src-b`, all routed
//! into `<target>`.`t_target`. Both sources read the shared upstream (their block-allow-lists
//! keep them apart).

use std::time::Duration;

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

use crate::harness::rows::{column_names, query_text as rows_of};

impl Fleet {
    /// Starts 1 master and 2 workers, creates the shards after the position the task starts
    /// from, creates both sources and starts the task (`shard-mode: pessimistic`).
    async fn start(task: &str) -> Self {
        Self::start_mode(task, "shard-mode: \"pessimistic\"").await
    }

    /// Like [`Self::start`] with `mode_yaml` for the shard-mode keys.
    async fn start_mode(task: &str, mode_yaml: &str) -> Self {
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
            .raw(mode_yaml)
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
        column_names(
            shared_downstream().opts(None),
            self.target.name(),
            "t_target",
        )
        .await
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

    // A shard dropped while its group waits for it leaves the group: the others go on. Its
    // rows stay in the merged table.
    f.a.exec("ALTER TABLE t1 ADD COLUMN d INT NOT NULL DEFAULT 0")
        .await;
    f.a.exec("INSERT INTO t1 VALUES (31, 9, 31)").await;
    f.b.exec("ALTER TABLE t1 ADD COLUMN d INT NOT NULL DEFAULT 0; ALTER TABLE t2 ADD COLUMN d INT NOT NULL DEFAULT 0")
        .await;
    f.b.exec("INSERT INTO t2 VALUES (32, 9, 32)").await;
    let lock = f.wait_lock("sources").await;
    assert_eq!(lock["owner"], "src-b", "{lock:#}");
    let t2_rows = rows_of(
        shared_upstream().opts(None),
        &format!("SELECT id, v FROM `{a}`.t2 ORDER BY id"),
    )
    .await
    .unwrap();
    f.a.exec("DROP TABLE t2").await;
    f.wait_no_lock().await;
    let mut want = rows_of(
        shared_upstream().opts(None),
        &format!(
            "SELECT id, v FROM `{a}`.t1 UNION ALL SELECT id, v FROM `{b}`.t1 UNION ALL SELECT id, v FROM `{b}`.t2",
            b = f.b.name()
        ),
    )
    .await
    .unwrap();
    want.extend(t2_rows);
    want.sort_by_key(|r| r[0].parse::<i64>().unwrap());
    let ok = try_eventually(
        Duration::from_secs(60),
        Duration::from_millis(300),
        async || (f.merged("id, v").await.as_ref() == Some(&want)).then_some(()),
    )
    .await;
    assert!(
        ok.is_some(),
        "after a shard left: {:?}\n  want {want:?}",
        f.merged("id, v").await
    );
    assert_eq!(f.columns().await, ["id", "v", "d"]);

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

    // Optimistic-only flags are refused, not ignored.
    let out = f
        .cluster
        .dmctl(&[
            "shard-ddl-lock",
            "unlock",
            &f.lock_id(),
            "-a",
            "exec",
            "-d",
            "x",
            "-t",
            "y",
        ])
        .await;
    assert!(
        !out.ok() && out.stdout.contains("optimistic"),
        "unlock with optimistic flags: {out}"
    );
    assert_eq!(f.wait_lock("conflict").await["ID"], f.lock_id().as_str());
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

/// DM's `sharding` integration case (its task shape and SQL, database names made unique):
/// source `src-a` holds `<p>_1a`.`t1`, `t2`; source `src-b` holds `<p>_1b`.`t2`, `t3`; a full
/// dump and load merges them, then each shard adds columns (generated ones too), unique keys,
/// an index and a zero-date column in turn; new databases and shards appear mid-stream; one
/// shard is dropped, one truncated, one source drops a whole database; finally two shards of
/// one source run different DDLs.
mod dm_sharding {
    pub const PREPARE_A: &str = "
create database `S1`;
use `S1`;
create table t1 (id bigint auto_increment, uid int, name varchar(80), info varchar(100), primary key (`id`), unique key(`uid`)) auto_increment=1;
create table t2 (id bigint auto_increment, uid int, name varchar(80), info varchar(100), primary key (`id`), unique key(`uid`)) auto_increment=1000;
insert into t1 (uid, name) values (10001, 'Gabriel García Márquez'), (10002, 'Cien años de soledad');
insert into t2 (uid, name) values (20001, 'José Arcadio Buendía'), (20002, 'Úrsula Iguarán'), (20003, 'José Arcadio');";
    pub const PREPARE_B: &str = "
create database `S1`;
use `S1`;
create table t2 (id bigint auto_increment, uid int, name varchar(80), info varchar(100), primary key (`id`), unique key(`uid`)) auto_increment=2000;
create table t3 (id bigint auto_increment, uid int, name varchar(80), info varchar(100), primary key (`id`), unique key(`uid`)) auto_increment=3000;
insert into t2 (uid, name, info) values (40000, 'Remedios Moscote', '{}');
insert into t3 (uid, name, info) values (30001, 'Aureliano José', '{}'), (30002, 'Santa Sofía de la Piedad', '{}'), (30003, '17 Aurelianos', NULL);";
    pub const INCREMENT_A: &str = "
use S1;
insert into t1 (uid, name) values (10003, 'Buenos Aires');
update t1 set name = 'Gabriel José de la Concordia García Márquez' where `uid` = 10001;
update t1 set name = 'One Hundred Years of Solitude' where name = 'Cien años de soledad';
insert into t2 (uid, name, info) values (20013, 'Colonel', '{}');
alter table t1 add column age int;
insert into t2 (uid, name, info) values (20023, 'Aureliano', '{}');
insert into t2 (uid, name, info) values (20033, 'Buendía', '{}');
alter table t2 add column age int;
insert into t2 (uid, name, age, info) values (20004, 'Colonel Aureliano Buendía', 301, '{}');
alter table t2 add column info_json json GENERATED ALWAYS AS (`info`) VIRTUAL;
insert into t1 (uid, name, info) values (10004, 'Buenos Aires', '{\"age\": 10}');
insert into t2 (uid, name, info) values (20005, 'Buenos Aires', '{\"age\": 100}');
insert into t2 (uid, name, info) values (20006, 'Buenos Aires', '{\"age\": 1000}');
alter table t1 add column info_json json GENERATED ALWAYS AS (`info`) VIRTUAL;
alter table t1 add column id_gen int as (uid + 1);
alter table t2 add column id_gen int as (uid + 1);
alter table t1 add unique (id_gen);
alter table t2 add unique (id_gen);
insert into t1 (uid, name, info) values (10005, 'Buenos Aires', '{\"age\": 100}');
insert into t2 (uid, name, info) values (20007, 'Buenos Aires', '{\"age\": 200}');
alter table t1 add key multi_col_idx(uid, id_gen);
alter table t2 add key multi_col_idx(uid, id_gen);
insert into t1 (uid, name, info) values (10006, 'Buenos Aires', '{\"age\": 100}');
insert into t2 (uid, name, info) values (20008, 'Buenos Aires', '{\"age\": 200}');
alter table t2 add column create_by DATETIME NOT NULL DEFAULT '0000-00-00 00:00:00';
insert into t2 (uid, name, info, create_by) values (1, 'HaHa', '{\"age\": 300}', now());
insert into t2 (uid, name, info, create_by) values (2, 'HiHi', '{\"age\": 400}', '0000-00-00 00:00:01');
alter table t1 add column create_by DATETIME NOT NULL DEFAULT '0000-00-00 00:00:00';
insert into t1 (uid, name, info, create_by) values (3, 'HaHa', '{\"age\": 300}', now());
insert into t1 (uid, name, info, create_by) values (4, 'HiHi', '{\"age\": 400}', '0000-00-00 00:00:01');";
    pub const INCREMENT_B: &str = "
use S1;
delete from t3 where name = 'Santa Sofía de la Piedad';
insert into t2 (uid, name, info) values (40001, 'Amaranta', '{\"age\": 0}');
alter table t2 add column age int;
update t2 set uid = uid + 10000;
alter table t3 add column age int;
update t3 set age = 1;
alter table t2 add column info_json json GENERATED ALWAYS AS (`info`) VIRTUAL;
update t3 set age = age + 10;
alter table t3 add column info_json json GENERATED ALWAYS AS (`info`) VIRTUAL;
alter table t3 add column id_gen int as (uid + 1);
alter table t2 add column id_gen int as (uid + 1);
alter table t2 add unique (id_gen);
alter table t3 add unique (id_gen);
update t2 set age = age + 10;
alter table t2 add key multi_col_idx(uid, id_gen);
alter table t3 add key multi_col_idx(uid, id_gen);
update t3 set age = age + 10;
alter table t2 add column create_by DATETIME NOT NULL DEFAULT '0000-00-00 00:00:00';
insert into t2 (uid, name, info, create_by) values (5, 'HaHa', '{\"age\": 300}', now());
insert into t2 (uid, name, info, create_by) values (6, 'HiHi', '{\"age\": 400}', '0000-00-00 00:00:01');
alter table t3 add column create_by DATETIME NOT NULL DEFAULT '0000-00-00 00:00:00';
insert into t3 (uid, name, info, create_by) values (7, 'HaHa', '{\"age\": 300}', now());
insert into t3 (uid, name, info, create_by) values (8, 'HiHi', '{\"age\": 400}', '0000-00-00 00:00:01');";
    const COLS: &str = "(`id` bigint(20) AUTO_INCREMENT, `uid` int(11), `name` varchar(80), `info` varchar(100), `age` int(11), `info_json` json GENERATED ALWAYS AS (`info`) VIRTUAL, `id_gen` int(11) GENERATED ALWAYS AS ((`uid` + 1)) VIRTUAL, create_by DATETIME NOT NULL DEFAULT '0000-00-00 00:00:00', PRIMARY KEY (`id`), UNIQUE KEY `uid` (`uid`), UNIQUE KEY `id_gen` (`id_gen`), KEY `multi_col_idx` (`uid`,`id_gen`))";
    pub fn increment2_a() -> String {
        format!(
            "
create database `S2`;
use `S2`;
CREATE TABLE `t1` {COLS} auto_increment=4000;
CREATE TABLE `t2` {COLS} auto_increment=5000;
CREATE TABLE `t3` {COLS} auto_increment=6000;
insert into `S1`.t1 (uid, name, info, age) values (10007, 'bruce wayne', '{{\"wealtch\": \"unknown\"}}', 1000), (10008, 'connelly', '{{\"boolean\": true}}', 1001);
insert into `S1`.t2 (uid, name, info, age) values (20009, 'haxwell', '{{\"key\": \"value000\"}}', 3003);
insert into `S2`.t1 (uid, name, info, age) values (60001, 'hello', '{{\"age\": 201}}', 133), (60002, 'world', '{{\"age\": 202}}', 233), (60003, 'final', '{{\"key\": \"value\", \"age\": 203}}', 333);
insert into `S2`.t2 (uid, name, info, age) values (80001, 'olleh', '{{\"age\": 11}}', 833), (80002, 'dlrod', NULL, 10000000), (80003, 'final***', '{{\"key\": \"value***\", \"age\": false}}', 33300);
insert into `S2`.t3 (uid, name, info, age) values (90001, 'c++', '{{\"age\": \"very old\"}}', -1), (90002, 'python', '{{\"age\": \"not young\"}}', -1), (90003, 'ruby', '{{\"key\": \"value\", \"age\": 0}}', -2);"
        )
    }
    pub fn increment2_b() -> String {
        format!(
            "
create database `S2`;
use `S2`;
CREATE TABLE `t4` {COLS} auto_increment=7000;
insert into `S2`.t4 (uid, name, info) values (70001, 'golang', '{{\"age\": 6}}'), (70002, 'rust con', '{{\"age\": 1}}'), (70003, 'javascript', '{{\"key\": \"value\", \"age\": 20}}');
insert into `S1`.t2 (uid, name, info) values (50002, 'tyuil', '{{\"ghjkl;\": \"as a standby\"}}'), (50003, 'xxxxx', '{{\"boolean\": false, \"k\": \"v\"}}');
insert into `S1`.t3 (uid, name, info) values (30004, 'hhhhhh', '{{\"key1\": \"value000\"}}');"
        )
    }
    pub const INCREMENT3_A: &str = "
drop table S2.t2;
insert into `S1`.t1 (uid, name, info, age) values (10009, 'lkhhgg', '{\"aaa\": \"123\"}', 10001), (10018, '..', '{\"boolean\": true}', 10000001);
insert into `S1`.t2 (uid, name, info, age) values (20010, 'minmax', '{\"key\": \"hash string\"}', 307003);
truncate table S2.t3;
update `S1`.`t2` set age = age + 1;";
    pub const INCREMENT3_B: &str = "
drop database S2;
update S1.t2 set age = 42;
update S1.t2 set age = age * 3;";
}

/// Runs `script` on the shared upstream in one session with a permissive sql_mode (DM's case
/// writes zero dates), its `S1`/`S2` standing for `dbs`.
async fn run_script(script: &str, dbs: (&str, &str)) {
    let sql = format!("SET SESSION sql_mode = '';\n{script}")
        .replace("S1", dbs.0)
        .replace("S2", dbs.1);
    shared_upstream().exec(&sql).await;
}

#[tokio::test]
async fn dm_sharding_case_in_all_mode_keeps_the_union_of_the_shards() {
    let _one_cluster_at_a_time = serial().await;
    let cluster = Cluster::start(ClusterSpec {
        masters: 1,
        workers: 2,
        keepalive_ttl: 10,
    })
    .await;
    let p = format!("dmsh{:06x}", rand::random::<u32>() & 0xff_ffff);
    let (s1a, s2a, s1b, s2b) = (
        format!("{p}_1a"),
        format!("{p}_2a"),
        format!("{p}_1b"),
        format!("{p}_2b"),
    );
    let target = fresh_db(shared_downstream(), &format!("{p}_t"));
    run_script(dm_sharding::PREPARE_A, (&s1a, &s2a)).await;
    run_script(dm_sharding::PREPARE_B, (&s1b, &s2b)).await;

    let dump_dir = cluster.dir().join("dump");
    let mut yaml = TaskYaml::new("dmsh", "all")
        .meta_schema(&format!("{}_meta", target.name()))
        .target_root(shared_downstream().port())
        .raw("is-sharding: true")
        .raw(&format!(
            "routes:\n  sharding-route-rules-table:\n    schema-pattern: {}\n    table-pattern: \"t*\"\n    target-schema: {}\n    target-table: \"t_target\"\n  sharding-route-rules-schema:\n    schema-pattern: {}\n    target-schema: {}",
            quote(&format!("{p}_*")),
            quote(target.name()),
            quote(&format!("{p}_*")),
            quote(target.name())
        ))
        .raw(&format!(
            "block-allow-list:\n  instance-a:\n    do-dbs: [{}]\n    do-tables:\n    - db-name: {}\n      tbl-name: \"~^t[\\\\d]+\"\n  instance-b:\n    do-dbs: [{}]\n    do-tables:\n    - db-name: {}\n      tbl-name: \"~^t[\\\\d]+\"",
            quote(&format!("~^{p}_[12]a$")),
            quote(&format!("~^{p}_[12]a$")),
            quote(&format!("~^{p}_[12]b$")),
            quote(&format!("~^{p}_[12]b$")),
        ))
        .mydumper("global", Section::new().set("threads", 4).set("chunk-filesize", 64))
        .loader(
            "global",
            Section::new()
                .set("pool-size", 4)
                .set("dir", dump_dir.display().to_string()),
        )
        .syncer(
            "global",
            Section::new()
                .set("worker-count", 16)
                .set("batch", 100)
                .set("checkpoint-flush-interval", 1),
        );
    for (source, ba) in [("src-a", "instance-a"), ("src-b", "instance-b")] {
        yaml = yaml.instance(
            Instance::new(source)
                .block_allow_list(ba)
                .route_rules(&["sharding-route-rules-table", "sharding-route-rules-schema"])
                .mydumper("global")
                .loader("global")
                .syncer("global"),
        );
    }
    let task_file = cluster.write_file("dmsh.yaml", &yaml.render());
    for s in ["src-a", "src-b"] {
        let f = cluster.write_file(&format!("{s}.yaml"), &source_yaml(s));
        assert_ok(
            &cluster.dmctl(&["operate-source", "create", &f]).await,
            "operate-source create",
        );
    }
    assert_ok(
        &cluster
            .dmctl(&["start-task", &task_file, "--remove-meta"])
            .await,
        "start-task",
    );
    wait_task(
        &cluster,
        "dmsh",
        "Running",
        "Sync",
        Duration::from_secs(120),
    )
    .await;

    let cols = "id, uid, name, info, age, id_gen, create_by";
    // The shards that exist now, as `db`.`table`.
    let shards = async || -> Vec<String> {
        let rows = shared_upstream()
            .query_rows(&format!(
                "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA LIKE '{p}\\_%' AND TABLE_NAME LIKE 't%' ORDER BY 1, 2"
            ))
            .await;
        rows.into_iter()
            .map(|r| {
                format!(
                    "`{}`.`{}`",
                    r.get::<String, _>(0).unwrap(),
                    r.get::<String, _>(1).unwrap()
                )
            })
            .collect()
    };
    // Rows of every shard (`cols` that the shards have), filtered by `cond`.
    let union = async |cols: &str, cond: &str| -> Vec<Vec<String>> {
        let q: Vec<String> = shards()
            .await
            .iter()
            .map(|t| format!("SELECT {cols} FROM {t} WHERE {cond}"))
            .collect();
        rows_of(
            shared_upstream().opts(None),
            &format!("{} ORDER BY id", q.join(" UNION ALL ")),
        )
        .await
        .unwrap()
    };
    let merged = async |cols: &str, cond: &str| -> Option<Vec<Vec<String>>> {
        rows_of(
            shared_downstream().opts(None),
            &format!(
                "SELECT {cols} FROM `{}`.t_target WHERE {cond} ORDER BY id",
                target.name()
            ),
        )
        .await
    };
    let converge = async |what: &str, cols: &str, cond: &str| {
        let want = union(cols, cond).await;
        let mut last = None;
        let ok = try_eventually(
            Duration::from_secs(90),
            Duration::from_millis(300),
            async || {
                last = merged(cols, cond).await;
                (last.as_ref() == Some(&want)).then_some(())
            },
        )
        .await;
        assert!(
            ok.is_some(),
            "{what}: merged {last:#?}\n  want {want:#?}\n{}",
            cluster.logs(60)
        );
    };
    converge("after dump and load", "id, uid, name, info", "1").await;

    run_script(dm_sharding::INCREMENT_A, (&s1a, &s2a)).await;
    run_script(dm_sharding::INCREMENT_B, (&s1b, &s2b)).await;
    converge("after the first increment", cols, "1").await;
    let columns = column_names(shared_downstream().opts(None), target.name(), "t_target").await;
    assert_eq!(
        columns,
        [
            "id",
            "uid",
            "name",
            "info",
            "age",
            "info_json",
            "id_gen",
            "create_by"
        ]
    );

    run_script(&dm_sharding::increment2_a(), (&s1a, &s2a)).await;
    run_script(&dm_sharding::increment2_b(), (&s1b, &s2b)).await;
    converge("after new databases and shards", cols, "1").await;
    let kept = merged(cols, "uid > 70000").await.unwrap();
    assert_eq!(kept.len(), 9, "{kept:?}");

    // A dropped shard, a truncated one and a dropped database leave their rows in the merged
    // table (DM's behaviour: the merged table is every shard's, not the last one's).
    run_script(dm_sharding::INCREMENT3_A, (&s1a, &s2a)).await;
    run_script(dm_sharding::INCREMENT3_B, (&s1b, &s2b)).await;
    converge(
        "after drop table, truncate and drop database",
        cols,
        "uid < 70000",
    )
    .await;
    assert_eq!(merged(cols, "uid > 70000").await.unwrap(), kept);

    // Two shards of one source run different DDLs: the sharding group stops on a coded error,
    // and resuming does not get past it.
    shared_upstream()
        .exec(&format!(
            "ALTER TABLE `{s1a}`.t1 ADD COLUMN new_col1 INT; ALTER TABLE `{s1a}`.t2 ADD COLUMN new_col2 INT"
        ))
        .await;
    let error = async || -> Option<String> {
        let out = cluster.dmctl(&["query-status", "dmsh"]).await;
        let text = out.stdout.clone();
        text.contains("36008").then_some(text)
    };
    let first = try_eventually(Duration::from_secs(60), CTL_POLL, error).await;
    assert!(first.is_some(), "no 36008:\n{}", cluster.logs(40));
    assert_ok(
        &cluster.dmctl(&["resume-task", "dmsh"]).await,
        "resume-task",
    );
    let again = try_eventually(Duration::from_secs(60), CTL_POLL, error).await;
    assert!(again.is_some(), "resumed past the conflict");
    let columns: Vec<String> = shared_downstream()
        .query_rows(&format!(
            "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '{}' AND TABLE_NAME = 't_target' AND COLUMN_NAME LIKE 'new_col%'",
            target.name()
        ))
        .await
        .into_iter()
        .map(|r| r.get::<String, _>(0).unwrap())
        .collect();
    assert!(columns.is_empty(), "{columns:?}");
    assert_ok(&cluster.dmctl(&["stop-task", "dmsh"]).await, "stop-task");
    for db in [&s1a, &s2a, &s1b, &s2b] {
        shared_upstream()
            .exec(&format!("DROP DATABASE IF EXISTS `{db}`"))
            .await;
    }
}

#[tokio::test]
async fn optimistic_add_first_drop_last_and_a_conflict_resolved_by_every_shard() {
    let _one_cluster_at_a_time = serial().await;
    let mut f = Fleet::start_mode("shop", "shard-mode: \"optimistic\"").await;
    f.a.exec("INSERT INTO t1 VALUES (1, 1); INSERT INTO t2 VALUES (2, 1)")
        .await;
    f.b.exec("INSERT INTO t1 VALUES (3, 1); INSERT INTO t2 VALUES (4, 1)")
        .await;
    f.converge("before any DDL").await;

    // ADD COLUMN runs at the first shard that adds it; rows with and without it flow.
    f.a.exec("ALTER TABLE t1 ADD COLUMN c INT").await;
    let added = try_eventually(Duration::from_secs(60), CTL_POLL, async || {
        f.columns().await.contains(&"c".to_string()).then_some(())
    })
    .await;
    assert!(
        added.is_some(),
        "ADD COLUMN did not run at the first shard:\n{}",
        f.cluster.logs(40)
    );
    f.a.exec("INSERT INTO t1 VALUES (11, 2, 11); INSERT INTO t2 VALUES (12, 2)")
        .await;
    f.b.exec("INSERT INTO t1 VALUES (13, 2); INSERT INTO t2 VALUES (14, 2)")
        .await;
    f.converge("rows with and without c").await;
    let lock = f.wait_lock("tables").await;
    assert_eq!(lock["mode"], "optimistic", "{lock:#}");
    assert_eq!(lock["unsynced"].as_array().unwrap().len(), 3, "{lock:#}");
    f.a.exec("ALTER TABLE t2 ADD COLUMN c INT").await;
    f.b.exec("ALTER TABLE t1 ADD COLUMN c INT; ALTER TABLE t2 ADD COLUMN c INT")
        .await;
    f.b.exec("INSERT INTO t2 VALUES (15, 3, 15)").await;
    f.wait_no_lock().await;
    f.converge("every shard added c").await;
    let c = f.merged("id, c").await.unwrap();
    assert!(
        c.iter().any(|r| r == &["11", "11"]) && c.iter().any(|r| r == &["15", "15"]),
        "{c:?}"
    );

    // DROP COLUMN runs at the last shard only; meanwhile the column stays downstream.
    f.a.exec("ALTER TABLE t1 DROP COLUMN c").await;
    f.a.exec("INSERT INTO t1 VALUES (21, 4)").await;
    f.b.exec("INSERT INTO t1 VALUES (22, 4, 22)").await;
    f.wait_lock("partially-dropped").await;
    f.a.exec("ALTER TABLE t2 DROP COLUMN c").await;
    f.b.exec("ALTER TABLE t1 DROP COLUMN c").await;
    f.converge("c dropped by three shards").await;
    assert!(
        f.columns().await.contains(&"c".to_string()),
        "DROP ran before the last shard"
    );
    f.b.exec("ALTER TABLE t2 DROP COLUMN c").await;
    f.b.exec("INSERT INTO t2 VALUES (23, 5)").await;
    f.wait_no_lock().await;
    f.converge("every shard dropped c").await;
    assert_eq!(f.columns().await, ["id", "v"]);

    // A type change on some shards only is a conflict: those shards' rows wait; when the last
    // shard made the change it runs downstream and the waiting rows are replayed.
    f.a.exec("ALTER TABLE t1 MODIFY v BIGINT NOT NULL").await;
    f.a.exec("INSERT INTO t1 VALUES (31, 3000000000)").await;
    f.b.exec("INSERT INTO t1 VALUES (32, 6)").await;
    let lock = f.wait_lock("conflict").await;
    assert!(
        lock["waiting"]["error"].as_str().unwrap().contains("36062"),
        "{lock:#}"
    );
    f.wait_row(32).await;
    assert!(
        !f.merged_ids().await.contains(&31),
        "a conflicting shard's row was applied"
    );
    // src-a's worker dies while its table skips rows: the checkpoint held before the
    // conflicting DDL, so the new process reads it again and skips again.
    let w = f.worker_of("src-a").await;
    f.cluster.kill9_worker(&w);
    f.cluster.restart_worker(&w).await;
    wait_task(
        &f.cluster,
        &f.task,
        "Running",
        "Sync",
        Duration::from_secs(90),
    )
    .await;
    f.a.exec("INSERT INTO t2 VALUES (35, 7)").await;
    f.wait_row(35).await;
    f.wait_lock("conflict").await;
    assert!(
        !f.merged_ids().await.contains(&31),
        "a conflicting shard's row was applied"
    );
    f.a.exec("ALTER TABLE t2 MODIFY v BIGINT NOT NULL").await;
    f.b.exec("ALTER TABLE t1 MODIFY v BIGINT NOT NULL").await;
    f.a.exec("INSERT INTO t2 VALUES (33, 3000000001)").await;
    f.b.exec("ALTER TABLE t2 MODIFY v BIGINT NOT NULL").await;
    f.b.exec("INSERT INTO t2 VALUES (34, 3000000002)").await;
    f.wait_no_lock().await;
    f.converge("after every shard changed v's type").await;
    let ty = crate::harness::rows::query_text(
        shared_downstream().opts(None),
        &format!(
            "SELECT DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '{}' AND TABLE_NAME = 't_target' AND COLUMN_NAME = 'v'",
            f.target.name()
        ),
    )
    .await
    .unwrap();
    assert_eq!(ty, [["bigint"]]);

    // A shard dropped while the others have not caught up leaves the lock.
    f.a.exec("ALTER TABLE t1 ADD COLUMN e INT").await;
    f.a.exec("ALTER TABLE t2 ADD COLUMN e INT").await;
    f.b.exec("ALTER TABLE t1 ADD COLUMN e INT").await;
    f.wait_lock("tables").await;
    let t2_rows = rows_of(
        shared_upstream().opts(None),
        &format!("SELECT id, v FROM `{}`.t2", f.b.name()),
    )
    .await
    .unwrap();
    f.b.exec("DROP TABLE t2").await;
    f.wait_no_lock().await;
    let mut want = rows_of(
        shared_upstream().opts(None),
        &format!(
            "SELECT id, v FROM `{a}`.t1 UNION ALL SELECT id, v FROM `{a}`.t2 UNION ALL SELECT id, v FROM `{b}`.t1",
            a = f.a.name(),
            b = f.b.name()
        ),
    )
    .await
    .unwrap();
    want.extend(t2_rows);
    want.sort_by_key(|r| r[0].parse::<i64>().unwrap());
    let ok = try_eventually(
        Duration::from_secs(60),
        Duration::from_millis(300),
        async || (f.merged("id, v").await.as_ref() == Some(&want)).then_some(()),
    )
    .await;
    assert!(
        ok.is_some(),
        "after a shard left: {:?}\n  want {want:?}",
        f.merged("id, v").await
    );
}

#[tokio::test]
async fn strict_optimistic_mode_stops_the_task_on_a_conflict() {
    let _one_cluster_at_a_time = serial().await;
    let f = Fleet::start_mode(
        "shst",
        "shard-mode: \"optimistic\"\nstrict-optimistic-shard-mode: true",
    )
    .await;
    f.a.exec("INSERT INTO t1 VALUES (1, 1)").await;
    f.converge("before any DDL").await;
    f.a.exec("ALTER TABLE t1 MODIFY v BIGINT NOT NULL").await;
    let mut last = Value::Null;
    let paused = try_eventually(Duration::from_secs(60), CTL_POLL, async || {
        last = f.subtask("src-a").await;
        (last["stage"] == "Paused" && last.to_string().contains("36062")).then_some(())
    })
    .await;
    assert!(paused.is_some(), "no 36062 pause: {last:#}");
    // The other source goes on.
    f.b.exec("INSERT INTO t1 VALUES (2, 2)").await;
    f.wait_row(2).await;
}

#[tokio::test]
async fn optimistic_conflict_skipped_by_hand_replays_the_tables_rows() {
    let _one_cluster_at_a_time = serial().await;
    let f = Fleet::start_mode("shsk", "shard-mode: \"optimistic\"").await;
    f.a.exec("INSERT INTO t1 VALUES (1, 1)").await;
    f.converge("before any DDL").await;
    f.a.exec("ALTER TABLE t1 MODIFY v BIGINT NOT NULL").await;
    f.a.exec("INSERT INTO t1 VALUES (2, 2)").await;
    f.b.exec("INSERT INTO t1 VALUES (3, 3)").await;
    let lock = f.wait_lock("conflict").await;
    let resolve = lock["waiting"]["resolve"].as_str().unwrap().to_string();
    assert!(resolve.contains("--action skip"), "{lock:#}");
    f.wait_row(3).await;
    assert!(!f.merged_ids().await.contains(&2));
    let a = f.a.name().to_string();
    // exec is not supported for optimistic locks: refused, the lock unchanged.
    let out = f
        .cluster
        .dmctl(&[
            "shard-ddl-lock",
            "unlock",
            &f.lock_id(),
            "-s",
            "src-a",
            "-d",
            &a,
            "-t",
            "t1",
            "-a",
            "exec",
        ])
        .await;
    assert!(!out.ok() && out.stdout.contains("--action skip"), "{out}");
    let out = f
        .cluster
        .dmctl(&[
            "shard-ddl-lock",
            "unlock",
            &f.lock_id(),
            "-s",
            "src-a",
            "-d",
            &a,
            "-t",
            "t1",
            "-a",
            "skip",
        ])
        .await;
    assert_ok(&out, "unlock --action skip");
    // The table's skipped row is replayed; the merged column keeps its type.
    f.wait_row(2).await;
    f.a.exec("INSERT INTO t1 VALUES (4, 4)").await;
    f.converge("after the skip").await;
    f.wait_no_lock().await;
}
