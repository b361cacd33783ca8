//! dm-master's Optimist driven through etcd as workers would drive it (the workers' side of
//! optimistic mode is not built yet): source tables and Infos put under DM's keys, the
//! Operations it answers read back. Three upstream tables on two sources merge into
//! `db`.`tb`.

use std::time::Duration;

use dm::shardddl::optimism::{ConflictStage, UpTable};
use dm::sql::schema_tracker::TableSchema;
use dm::store::etcd::optimism::{
    OptimisticInfo, OptimisticOp, SourceTables, done_optimistic, get_optimistic_op,
    put_optimistic_info, put_source_tables,
};
use serde_json::Value;

use crate::harness::cluster::{CTL_POLL, Cluster, ClusterSpec, assert_ok, serial};
use crate::harness::try_eventually;

const TASK: &str = "opt";

fn up(source: &str, table: &str) -> UpTable {
    UpTable {
        source: source.into(),
        schema: "shard".into(),
        table: table.into(),
    }
}

fn schema(sql: &str) -> TableSchema {
    TableSchema::from_create_table(sql).unwrap()
}

const BASE: &str = "CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL)";
const WITH_C: &str = "CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL, c INT)";
const WITH_BIG_C: &str = "CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL, c BIGINT)";
const ADD: &str = "ALTER TABLE `db`.`tb` ADD COLUMN `c` INT";
const MODIFY: &str = "ALTER TABLE `db`.`tb` MODIFY COLUMN `c` BIGINT";

struct Workers {
    etcd: etcd_client::Client,
}

impl Workers {
    /// Puts the Info of `t` (one DDL, schemas before and after) and waits for the
    /// Operation written after it.
    async fn report(&mut self, t: &UpTable, ddl: &str, before: &str, after: &str) -> OptimisticOp {
        let info = OptimisticInfo {
            task: TASK.into(),
            source: t.source.clone(),
            up_schema: t.schema.clone(),
            up_table: t.table.clone(),
            down_schema: "db".into(),
            down_table: "tb".into(),
            ddls: vec![ddl.into()],
            table_info_before: schema(before),
            table_infos_after: vec![schema(after)],
            ignore_conflict: false,
        };
        let rev = put_optimistic_info(&mut self.etcd, &info).await.unwrap();
        self.op_after(t, rev).await
    }

    /// The Operation of `t` written after revision `rev`.
    async fn op_after(&mut self, t: &UpTable, rev: i64) -> OptimisticOp {
        let etcd = &mut self.etcd;
        try_eventually(
            Duration::from_secs(30),
            Duration::from_millis(50),
            async || match get_optimistic_op(etcd, t, TASK).await.unwrap() {
                Some((op, mod_rev)) if mod_rev > rev => Some(op),
                _ => None,
            },
        )
        .await
        .unwrap_or_else(|| panic!("no operation for {t} after revision {rev}"))
    }

    async fn done(&mut self, op: &OptimisticOp) {
        done_optimistic(&mut self.etcd, op).await.unwrap();
    }
}

async fn locks(cluster: &Cluster) -> Option<Vec<Value>> {
    let out = cluster.dmctl(&["shard-ddl-lock", TASK]).await;
    out.ok()
        .then(|| out.json["locks"].as_array().cloned().unwrap_or_default())
}

async fn wait_locks(cluster: &Cluster, what: &str, ok: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let mut last = Vec::new();
    let found = try_eventually(Duration::from_secs(60), CTL_POLL, async || {
        last = locks(cluster).await?;
        ok(&last).then(|| last.clone())
    })
    .await;
    found.unwrap_or_else(|| panic!("{what}: {last:#?}\n{}", cluster.logs(40)))
}

#[tokio::test]
async fn optimist_runs_a_ddl_once_per_join_change_and_settles_a_conflict_across_a_restart() {
    let _one_cluster_at_a_time = serial().await;
    let mut cluster = Cluster::start(ClusterSpec {
        masters: 1,
        workers: 0,
        keepalive_ttl: 10,
    })
    .await;
    let mut w = Workers {
        etcd: cluster.etcd().await,
    };
    let (a1, a2, b1) = (up("s1", "t1"), up("s1", "t2"), up("s2", "t1"));
    for (source, tables) in [("s1", vec!["t1", "t2"]), ("s2", vec!["t1"])] {
        let mut st = SourceTables {
            task: TASK.into(),
            source: source.into(),
            ..Default::default()
        };
        for t in tables {
            st.add(("db", "tb"), ("shard", t));
        }
        put_source_tables(&mut w.etcd, &st).await.unwrap();
    }

    // ADD COLUMN: runs at the first table only.
    let op = w.report(&a1, ADD, BASE, WITH_C).await;
    assert_eq!(
        (op.ddls.as_slice(), op.conflict_stage),
        ([ADD.to_string()].as_slice(), ConflictStage::None),
        "{op:?}"
    );
    assert_eq!(op.id, "opt-`db`.`tb`");
    w.done(&op).await;
    let l = wait_locks(&cluster, "an optimistic lock", |l| l.len() == 1).await;
    assert_eq!(l[0]["mode"], "optimistic", "{l:#?}");
    assert_eq!(l[0]["waiting"]["state"], "tables", "{l:#?}");
    assert_eq!(l[0]["unsynced"].as_array().unwrap().len(), 2, "{l:#?}");
    for t in [&a2, &b1] {
        let op = w.report(t, ADD, BASE, WITH_C).await;
        assert!(
            op.ddls.is_empty() && op.conflict_stage == ConflictStage::None,
            "{op:?}"
        );
        w.done(&op).await;
    }
    // Every table has the join and every Operation is done: the lock and its keys are gone.
    wait_locks(&cluster, "the lock resolved", |l| l.is_empty()).await;
    let left = w
        .etcd
        .get(
            "/dm-master/shardddl-optimism/info/",
            Some(etcd_client::GetOptions::new().with_prefix()),
        )
        .await
        .unwrap();
    assert!(left.kvs().is_empty());

    // DROP COLUMN: partially dropped (DM's dropped-columns key) until the last table.
    const DROP: &str = "ALTER TABLE `db`.`tb` DROP COLUMN `c`";
    let dropped = |etcd: &mut etcd_client::Client| {
        let mut etcd = etcd.clone();
        async move {
            etcd.get(
                "/dm-master/shardddl-optimism/dropped-columns/",
                Some(etcd_client::GetOptions::new().with_prefix()),
            )
            .await
            .unwrap()
            .kvs()
            .len()
        }
    };
    for (i, t) in [&a1, &a2, &b1].into_iter().enumerate() {
        let op = w.report(t, DROP, WITH_C, BASE).await;
        if i < 2 {
            assert!(op.ddls.is_empty(), "{t}: {op:?}");
            assert_eq!(op.cols, ["c"], "{op:?}");
            assert_eq!(dropped(&mut w.etcd).await, i + 1);
        } else {
            assert_eq!(op.ddls, [DROP], "{op:?}");
            assert_eq!(dropped(&mut w.etcd).await, 0);
        }
        w.done(&op).await;
    }
    wait_locks(&cluster, "the drop settled", |l| l.is_empty()).await;
    for t in [&a1, &a2, &b1] {
        let op = w.report(t, ADD, BASE, WITH_C).await;
        w.done(&op).await;
    }
    wait_locks(&cluster, "c added again", |l| l.is_empty()).await;

    // A type change on two tables of three conflicts; they wait for a redirect.
    for t in [&a1, &a2] {
        let op = w.report(t, MODIFY, WITH_C, WITH_BIG_C).await;
        assert_eq!(op.conflict_stage, ConflictStage::SkipWaitRedirect, "{op:?}");
        assert!(op.ddls.is_empty());
        assert!(op.conflict_message.contains("36062"), "{op:?}");
        w.done(&op).await;
    }
    let l = wait_locks(&cluster, "a conflict", |l| {
        l.first()
            .is_some_and(|l| l["waiting"]["state"] == "conflict")
    })
    .await;
    assert!(
        l[0]["waiting"]["error"]
            .as_str()
            .unwrap()
            .contains("bigint"),
        "{l:#?}"
    );

    // The master dies and comes back: the conflict is rebuilt from etcd.
    let m = cluster.masters[0].name.clone();
    cluster.kill9_master(&m);
    cluster.restart_master(&m).await;
    cluster.wait_leader(Duration::from_secs(60)).await;
    wait_locks(&cluster, "the conflict after a restart", |l| {
        l.first()
            .is_some_and(|l| l["waiting"]["state"] == "conflict")
    })
    .await;
    let mut w = Workers {
        etcd: cluster.etcd().await,
    };

    // The last table makes the same change: its DDL runs, the others are told to replay.
    let rev = w
        .etcd
        .get("/", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    let op = w.report(&b1, MODIFY, WITH_C, WITH_BIG_C).await;
    assert_eq!(
        (op.ddls.as_slice(), op.conflict_stage),
        ([MODIFY.to_string()].as_slice(), ConflictStage::None),
        "{op:?}"
    );
    w.done(&op).await;
    for t in [&a1, &a2] {
        let op = w.op_after(t, rev).await;
        assert_eq!(op.conflict_stage, ConflictStage::Resolved, "{t}: {op:?}");
        w.done(&op).await;
    }
    wait_locks(&cluster, "the lock resolved after the conflict", |l| {
        l.is_empty()
    })
    .await;
    let out = cluster.dmctl(&["shard-ddl-lock"]).await;
    assert_ok(&out, "shard-ddl-lock");

    // Removing a task's shard DDL meta takes its dropped-columns keys (keyed by lock ID)
    // and leaves another task's, even one whose name starts the same.
    let dropped_key = |task: &str| {
        format!(
            "/dm-master/shardddl-optimism/dropped-columns/{}/{}/{}/{}/{}",
            hex::encode(format!("{task}-`db`.`tb`")),
            hex::encode("c"),
            hex::encode("s1"),
            hex::encode("shard"),
            hex::encode("t1")
        )
    };
    for task in [TASK, "opt2"] {
        w.etcd.put(dropped_key(task), "0", None).await.unwrap();
    }
    dm::store::etcd::shardddl::delete_task(&mut w.etcd, TASK)
        .await
        .unwrap();
    let left: Vec<String> = w
        .etcd
        .get(
            "/dm-master/shardddl-optimism/dropped-columns/",
            Some(etcd_client::GetOptions::new().with_prefix()),
        )
        .await
        .unwrap()
        .kvs()
        .iter()
        .map(|kv| kv.key_str().unwrap().to_string())
        .collect();
    assert_eq!(left, [dropped_key("opt2")]);
}
