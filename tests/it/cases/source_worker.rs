//! Integration tests: the dm-worker's cluster side without a master. Each test starts a
//! private etcd (DM's keys are global) and a real `dm-worker` process with `--etcd-endpoints`,
//! and writes what the master's Scheduler would (`ha::apply`): a source config, the binding,
//! subtask configs and expected stages. Data flows from the shared upstream MariaDB into a
//! downstream through the worker; the worker's internal status API and log are checked.

use std::time::{Duration, Instant};

use dm::config::{SourceConfig, SubTaskConfig, TaskConfig};
use dm::store::etcd::ha::{self, Op, SourceBound, Stage, SubTaskStage};
use dm::store::etcd::keys;
use etcd_client::Client;
use mysql_async::prelude::*;
use serde_json::Value;

use super::syncer::{Setup, Sync};
use crate::harness::eventually::POLL_INTERVAL;
use crate::harness::{
    BinProcess, DM_WORKER, Etcd, MariaDb, eventually_msg, free_port, shared_downstream,
    shared_upstream, try_eventually,
};

/// Generous bound for things that normally take well under a second.
const SOON: Duration = Duration::from_secs(30);

/// A private etcd and one dm-worker process using it directly.
struct Worker {
    _etcd: Etcd,
    client: Client,
    proc: BinProcess,
    port: u16,
    name: String,
    _dir: tempfile::TempDir,
}

impl Worker {
    async fn start(name: &str, ttl: u64) -> Self {
        let etcd = Etcd::start();
        let client = etcd.client().await;
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let proc = BinProcess::spawn(
            DM_WORKER,
            &[
                "--name".into(),
                name.into(),
                "--worker-addr".into(),
                format!("127.0.0.1:{port}"),
                "--etcd-endpoints".into(),
                etcd.endpoint(),
                "--keepalive-ttl".into(),
                ttl.to_string(),
                "-L".into(),
                "debug".into(),
            ],
            dir.path().join("worker.log"),
        );
        let w = Worker {
            _etcd: etcd,
            client,
            proc,
            port,
            name: name.into(),
            _dir: dir,
        };
        eventually_msg(SOON, "the worker holds a lease", || async {
            w.cluster().await.is_some_and(|c| c["lease_held"] == true)
        })
        .await;
        w
    }

    fn log(&self) -> String {
        self.proc.log_tail(100_000)
    }

    async fn get(&self, path: &str) -> Option<Value> {
        reqwest::get(format!("http://127.0.0.1:{}{path}", self.port))
            .await
            .ok()?
            .json()
            .await
            .ok()
    }

    /// `/status`'s `cluster` part.
    async fn cluster(&self) -> Option<Value> {
        Some(self.get("/status").await?["cluster"].clone())
    }

    /// GET `/internal/v1/status[?task=]`.
    async fn internal(&self, task: Option<&str>) -> Value {
        let q = task.map(|t| format!("?task={t}")).unwrap_or_default();
        self.get(&format!("/internal/v1/status{q}"))
            .await
            .expect("internal status answers")
    }

    /// The first subtask's status, if any.
    async fn subtask(&self) -> Option<Value> {
        let v = self.internal(None).await;
        v["subTaskStatus"].get(0).cloned()
    }

    async fn apply(&self, ops: Vec<Op>) {
        ha::apply(&mut self.client.clone(), ops)
            .await
            .expect("etcd txn");
    }

    /// Puts the source config and binds it to this worker (what the Scheduler does).
    async fn bind(&self, source: &SourceConfig) {
        self.apply(vec![
            Op::PutSource(source.clone()),
            Op::PutBound(SourceBound {
                source: source.source_id.clone(),
                worker: self.name.clone(),
            }),
        ])
        .await;
    }

    async fn put_stage(&self, sub: &SubTaskConfig, expect: Stage) {
        self.apply(vec![Op::PutStage(SubTaskStage {
            expect,
            source: sub.source_id.clone(),
            task: sub.name.clone(),
        })])
        .await;
    }

    /// start-task: the config and expected stage Running in one transaction.
    async fn start_task(&self, sub: &SubTaskConfig) {
        self.apply(vec![
            Op::PutSubtask(sub.clone()),
            Op::PutStage(SubTaskStage {
                expect: Stage::Running,
                source: sub.source_id.clone(),
                task: sub.name.clone(),
            }),
        ])
        .await;
    }

    /// The lease id of the keepalive key (0 when there is none).
    async fn keepalive_lease(&self) -> i64 {
        let resp = self
            .client
            .clone()
            .get(keys::worker_keepalive(&self.name), None)
            .await
            .unwrap();
        resp.kvs().first().map_or(0, |kv| kv.lease())
    }

    async fn wait_stage(&self, stage: &str) -> Value {
        let mut last = Value::Null;
        let reached = try_eventually(SOON, POLL_INTERVAL, async || {
            let st = self.subtask().await?;
            if st["stage"] == stage {
                return Some(st);
            }
            last = st;
            None
        })
        .await;
        reached.unwrap_or_else(|| {
            panic!(
                "stage {stage} not reached; last status {last}\n{}",
                self.proc.log_tail(60)
            )
        })
    }
}

/// Source and subtask configs of `s` (the files `Sync::new` wrote).
fn configs(s: &Sync) -> (SourceConfig, SubTaskConfig) {
    let source = SourceConfig::load(&s.source).unwrap();
    let sub = TaskConfig::load(&s.task)
        .unwrap()
        .subtasks()
        .into_iter()
        .find(|t| t.source_id == source.source_id)
        .unwrap();
    (source, sub)
}

async fn new_sync(prefix: &str, down: &MariaDb) -> Sync {
    let s = Sync::new(
        prefix,
        down,
        Setup {
            safe_mode_duration: "0s",
            ..Default::default()
        },
    )
    .await;
    s.up.exec("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))")
        .await;
    s
}

async fn insert(s: &Sync, from: u32, to: u32) {
    s.up.exec(&format!(
        "INSERT INTO t SELECT seq, CONCAT('v', seq) FROM seq_{from}_to_{to}"
    ))
    .await;
}

async fn down_count(s: &Sync) -> u64 {
    let mut c = mysql_async::Conn::new(s.down.clone()).await.unwrap();
    c.query_first(format!("SELECT COUNT(*) FROM `{}`.t", s.db()))
        .await
        .unwrap()
        .unwrap_or(0)
}

/// `needle` occurrences in `log` for `actor = name` lines.
fn actor_lines(log: &str, actor: &str, what: &str) -> usize {
    log.lines()
        .filter(|l| l.contains(what) && l.contains(&format!("actor=\"{actor}\"")))
        .count()
}

/// Asserts that no row arrives downstream during `window` (an absence can only be observed
/// over time).
async fn assert_no_rows_arrive(s: &Sync, before: u64, window: Duration) {
    let end = Instant::now() + window;
    while Instant::now() < end {
        assert_eq!(down_count(s).await, before, "rows were applied");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn bound_subtask_follows_expected_stages_and_binding() {
    let w = Worker::start("w-stages", 10).await;

    // The keepalive key lives under a lease of keepalive-ttl seconds; the registration is put.
    let lease = w.keepalive_lease().await;
    assert_ne!(lease, 0, "keepalive key under a lease");
    let ttl = w
        .client
        .clone()
        .lease_time_to_live(lease, None)
        .await
        .unwrap();
    assert!(ttl.ttl() > 0 && ttl.granted_ttl() == 10, "{ttl:?}");
    let v = w
        .client
        .clone()
        .get(keys::worker_keepalive("w-stages"), None)
        .await
        .unwrap();
    let ev: Value = serde_json::from_slice(v.kvs()[0].value()).unwrap();
    assert_eq!(ev["worker-name"], "w-stages");
    assert!(ev["join-time"].as_str().unwrap().ends_with('Z'));
    let state = ha::load_state(&mut w.client.clone()).await.unwrap();
    assert_eq!(
        state.workers["w-stages"].addr,
        format!("127.0.0.1:{}", w.port)
    );

    // Not bound: the internal status says so.
    let st = w.internal(None).await;
    assert_eq!(st["result"], false);
    assert!(st["msg"].as_str().unwrap().contains("code=40070"), "{st}");

    // Bound + Running subtask: rows arrive and the status shows the sync unit's positions.
    let mut s = new_sync("sw_stage", shared_downstream()).await;
    let (source, sub) = configs(&s);
    w.bind(&source).await;
    w.start_task(&sub).await;
    insert(&s, 1, 50).await;
    let tables = s.same(&["t"]);
    s.converge(&tables, SOON).await;
    eventually_msg(SOON, "sync positions in the status", || async {
        let st = w.internal(Some(&sub.name)).await;
        let t = &st["subTaskStatus"][0];
        st["result"] == true
            && st["sourceStatus"]["source"] == source.source_id.as_str()
            && st["sourceStatus"]["worker"] == "w-stages"
            && t["name"] == sub.name.as_str()
            && t["stage"] == "Running"
            && t["unit"] == "Sync"
            && t["sync"]["syncerBinlog"]
                .as_str()
                .is_some_and(|b| b.starts_with("(mysql-bin."))
            && t["sync"]["masterBinlog"]
                .as_str()
                .is_some_and(|b| b.starts_with("(mysql-bin."))
            && t["sync"]["totalEvents"].as_i64().unwrap_or(0) > 0
    })
    .await;
    let cluster = w.cluster().await.unwrap();
    assert_eq!(cluster["bound_source"], source.source_id.as_str());
    assert_eq!(cluster["running_source"], source.source_id.as_str());
    let none = w.internal(Some("no-such-task")).await;
    assert_eq!(none["result"], true);
    assert!(none["subTaskStatus"].as_array().unwrap().is_empty());
    assert!(none["msg"].as_str().unwrap().contains("no-such-task"));

    // Paused: the syncer flushes and stops; nothing more is applied. The flushed checkpoint
    // is at the upstream position the rows were written at (or later).
    let written = crate::harness::cluster::master_status().await;
    w.put_stage(&sub, Stage::Paused).await;
    w.wait_stage("Paused").await;
    let cp = s.checkpoint().await.expect("a checkpoint");
    assert!(
        (cp.0.as_str(), cp.1) >= (written.0.as_str(), written.1),
        "stopped at {cp:?}, before the rows written up to {written:?}"
    );
    let log = w.log();
    assert_eq!(
        actor_lines(&log, "Syncer", "actor started"),
        actor_lines(&log, "Syncer", "actor stopped"),
        "no syncer runs while paused:\n{log}"
    );
    insert(&s, 51, 60).await;
    assert_no_rows_arrive(&s, 50, Duration::from_millis(1500)).await;

    // A config change of a paused subtask replaces it; it stays paused.
    let mut changed = sub.clone();
    changed.syncer.batch = 7;
    w.apply(vec![Op::PutSubtask(changed)]).await;
    eventually_msg(SOON, "the paused subtask replaced", || async {
        actor_lines(&w.log(), "SubTask", "actor started") == 2
    })
    .await;
    w.wait_stage("Paused").await;

    // Running again resumes from the checkpoint.
    w.put_stage(&sub, Stage::Running).await;
    w.wait_stage("Running").await;
    s.converge(&tables, SOON).await;

    // Stage deleted (stop-task): stopped and removed, no syncer left.
    w.apply(vec![
        Op::DeleteStage {
            source: sub.source_id.clone(),
            task: sub.name.clone(),
        },
        Op::DeleteSubtask {
            source: sub.source_id.clone(),
            task: sub.name.clone(),
        },
    ])
    .await;
    eventually_msg(SOON, "subtask removed", || async {
        let st = w.internal(None).await;
        st["result"] == true && st["subTaskStatus"].as_array().is_some_and(|a| a.is_empty())
    })
    .await;
    eventually_msg(SOON, "the removed subtask stopped", || async {
        w.log().contains("reason=\"stage deleted\"")
    })
    .await;
    let log = w.log();
    assert_eq!(
        actor_lines(&log, "Syncer", "actor started"),
        actor_lines(&log, "Syncer", "actor stopped")
    );
    insert(&s, 61, 70).await;
    assert_no_rows_arrive(&s, 60, Duration::from_millis(1000)).await;

    // Started again, then bound to another source: the first one's work stops first.
    w.start_task(&sub).await;
    w.wait_stage("Running").await;
    s.converge(&tables, SOON).await;
    let mut s2 = new_sync("sw_stage2", shared_downstream()).await;
    let (source2, sub2) = configs(&s2);
    w.apply(vec![Op::PutSource(source2.clone())]).await;
    w.start_task(&sub2).await;
    w.bind(&source2).await;
    eventually_msg(SOON, "the second source runs", || async {
        let st = w.internal(None).await;
        st["sourceStatus"]["source"] == source2.source_id.as_str()
            && st["subTaskStatus"][0]["stage"] == "Running"
    })
    .await;
    insert(&s2, 1, 30).await;
    s2.converge(&s2.same(&["t"]), SOON).await;
    let log = w.log();
    assert!(log.contains("reason=\"binding changed\""), "{log}");
    assert!(log.contains("reason=\"source unbound\""), "{log}");
    insert(&s, 71, 80).await;
    assert_no_rows_arrive(&s, 70, Duration::from_millis(1000)).await;

    // Unbound: everything stops.
    w.apply(vec![Op::DeleteBound("w-stages".into())]).await;
    eventually_msg(SOON, "not bound", || async {
        let st = w.internal(None).await;
        st["result"] == false && st["msg"].as_str().is_some_and(|m| m.contains("code=40070"))
    })
    .await;
    eventually_msg(SOON, "the source worker stopped", || async {
        let log = w.log();
        actor_lines(&log, "SourceWorker", "actor started")
            == actor_lines(&log, "SourceWorker", "actor stopped")
    })
    .await;
    let log = w.log();
    assert_eq!(
        actor_lines(&log, "Syncer", "actor started"),
        actor_lines(&log, "Syncer", "actor stopped")
    );
    assert!(w.cluster().await.unwrap()["running_source"].is_null());
}

#[tokio::test]
async fn revoked_lease_stops_all_work_within_a_second_then_resumes() {
    let w = Worker::start("w-lease", 30).await;
    // An upstream account of this test's own, so that its binlog connection can be told apart.
    let user = format!("swl_{:06x}", rand::random::<u32>() & 0xff_ffff);
    shared_upstream()
        .exec(&format!(
            "CREATE USER '{user}'@'127.0.0.1'; \
             GRANT SELECT, RELOAD, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO '{user}'@'127.0.0.1'"
        ))
        .await;
    let dump_threads = || {
        let user = user.clone();
        async move {
            let rows: Vec<u64> = shared_upstream()
                .conn()
                .await
                .exec(
                    "SELECT ID FROM information_schema.PROCESSLIST \
                     WHERE COMMAND = 'Binlog Dump' AND USER = ?",
                    (user,),
                )
                .await
                .unwrap();
            rows
        }
    };
    let mut s = Sync::new(
        "sw_lease",
        shared_downstream(),
        Setup {
            safe_mode_duration: "0s",
            user: &user,
            ..Default::default()
        },
    )
    .await;
    s.up.exec("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))")
        .await;
    let (source, sub) = configs(&s);
    w.bind(&source).await;
    w.start_task(&sub).await;
    insert(&s, 1, 20).await;
    let tables = s.same(&["t"]);
    s.converge(&tables, SOON).await;
    w.wait_stage("Running").await;
    let streaming = dump_threads().await;
    assert_eq!(streaming.len(), 1, "the syncer reads the binlog");

    let lease = w.keepalive_lease().await;
    let revoked = Instant::now();
    w.client.clone().lease_revoke(lease).await.unwrap();
    const STOPPED: &str = "all source work stopped after the lease loss";
    eventually_msg(
        Duration::from_secs(1),
        "all work stopped within a second",
        || async { w.log().contains(STOPPED) },
    )
    .await;
    let took = revoked.elapsed();
    let log = w.log();
    let upto = &log[..log.find(STOPPED).unwrap()];
    assert_eq!(
        actor_lines(upto, "Syncer", "actor started"),
        actor_lines(upto, "Syncer", "actor stopped"),
        "a syncer still ran when the worker reported the stop:\n{log}"
    );
    assert_eq!(
        actor_lines(upto, "Units", "actor started"),
        actor_lines(upto, "Units", "actor stopped")
    );
    assert!(took < Duration::from_secs(1), "{took:?}");
    // The work really stopped: the binlog connection is closed (the server notices at its
    // next heartbeat, 1 s here), and rows written now do not arrive while the worker holds no
    // lease.
    eventually_msg(
        Duration::from_secs(5),
        "the syncer's binlog connection closed",
        || async { !dump_threads().await.contains(&streaming[0]) },
    )
    .await;
    let before = down_count(&s).await;
    insert(&s, 21, 25).await;
    eventually_msg(SOON, "a new lease", || async {
        let l = w.keepalive_lease().await;
        if l == 0 || l == lease {
            assert_eq!(down_count(&s).await, before, "rows arrived without a lease");
            return false;
        }
        true
    })
    .await;
    insert(&s, 26, 40).await;
    s.converge(&tables, SOON).await;
    let cluster = w.cluster().await.unwrap();
    assert_eq!(cluster["leases_lost"], 1);
    assert_eq!(cluster["running_source"], source.source_id.as_str());
}

#[tokio::test]
async fn resumable_failure_is_retried_with_backoff_and_recovers() {
    let mut down = MariaDb::start_downstream();
    let w = Worker::start("w-resume", 10).await;
    let mut s = new_sync("sw_resume", &down).await;
    let (source, sub) = configs(&s);
    w.bind(&source).await;
    w.start_task(&sub).await;
    insert(&s, 1, 20).await;
    let tables = s.same(&["t"]);
    s.converge(&tables, SOON).await;

    // The downstream goes away while the task is paused; resuming fails with a resumable
    // error (bad connection), which is retried with a growing backoff.
    w.put_stage(&sub, Stage::Paused).await;
    w.wait_stage("Paused").await;
    down.stop();
    insert(&s, 21, 30).await;
    w.put_stage(&sub, Stage::Running).await;
    const SCHEDULED: &str = "auto-resume scheduled";
    eventually_msg(SOON, "two auto-resumes scheduled", || async {
        w.log().matches(SCHEDULED).count() >= 2
    })
    .await;
    let st = w.subtask().await.unwrap();
    assert_eq!(st["stage"], "Paused", "{st}");
    assert_eq!(st["result"]["errors"][0]["ErrCode"], 10002, "{st}");
    let waits: Vec<u64> = w
        .log()
        .lines()
        .filter(|l| l.contains(SCHEDULED))
        .filter_map(|l| {
            l.split("retry_in_ms=")
                .nth(1)?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert!(waits.len() >= 2 && waits[1] > waits[0], "{waits:?}");

    // The downstream returns: the next attempt succeeds and the rows written meanwhile arrive.
    down.restart();
    let st = w.wait_stage("Running").await;
    assert!(st["result"].is_null(), "{st}");
    s.converge(&tables, Duration::from_secs(60)).await;
    assert!(w.log().contains("reason=\"auto-resume\""));
    assert!(w.log().contains("actor restarted"));
}

#[tokio::test]
async fn non_resumable_failure_waits_for_a_resume() {
    let w = Worker::start("w-fatal", 10).await;
    let mut s = new_sync("sw_fatal", shared_downstream()).await;
    let (source, sub) = configs(&s);
    w.bind(&source).await;
    w.start_task(&sub).await;
    insert(&s, 1, 10).await;
    let tables = s.same(&["t"]);
    s.converge(&tables, SOON).await;

    // The target table disappears: applying fails with an error that retrying cannot fix.
    let db = s.db().to_string();
    shared_downstream()
        .exec(&format!("RENAME TABLE `{db}`.t TO `{db}`.t_away"))
        .await;
    insert(&s, 11, 20).await;
    let st = w.wait_stage("Paused").await;
    assert_eq!(st["unit"], "Sync");
    let code = st["result"]["errors"][0]["ErrCode"].as_i64().unwrap();
    assert_eq!(code, 10006, "{st}");
    // Not retried: it stays Paused (an auto-resume would show within its first backoff, 1 s).
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        let st = w.subtask().await.expect("subtask status");
        assert_eq!(st["stage"], "Paused", "{st}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(w.log().contains("not resumable"));

    // Fixed, then resume-task (Running put again): the failed changes are applied.
    shared_downstream()
        .exec(&format!("RENAME TABLE `{db}`.t_away TO `{db}`.t"))
        .await;
    w.put_stage(&sub, Stage::Running).await;
    let st = w.wait_stage("Running").await;
    assert!(st["result"].is_null(), "{st}");
    s.converge(&tables, SOON).await;
}

#[tokio::test]
async fn full_mode_subtask_finishes() {
    let w = Worker::start("w-full", 10).await;
    let mut s = Sync::new(
        "sw_full",
        shared_downstream(),
        Setup {
            task_mode: "full",
            ..Default::default()
        },
    )
    .await;
    s.up.exec("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))")
        .await;
    insert(&s, 1, 500).await;
    let (source, sub) = configs(&s);
    w.bind(&source).await;
    w.start_task(&sub).await;
    let st = w.wait_stage("Finished").await;
    assert_eq!(st["unit"], "Load", "{st}");
    assert_eq!(st["load"]["progress"], "100.00 %", "{st}");
    assert!(st["result"].is_null(), "{st}");
    s.converge(&s.same(&["t"]), SOON).await;
    let log = w.log();
    assert!(
        log.lines()
            .any(|l| l.contains("unit started") && l.contains("unit=Dump")),
        "{log}"
    );
    assert!(log.contains("subtask finished"), "{log}");
}

#[tokio::test]
async fn session_variable_the_target_lacks_is_not_auto_resumed() {
    let w = Worker::start("w-session", 10).await;
    let s = new_sync("sw_session", shared_downstream()).await;
    let (source, mut sub) = configs(&s);
    // A TiDB-only variable against MariaDB: every connection fails with 1193, for good.
    sub.to.session.insert(
        "tidb_disable_txn_auto_retry".into(),
        dm::config::db::SessionValue::Bool(false),
    );
    w.bind(&source).await;
    w.start_task(&sub).await;
    let st = w.wait_stage("Paused").await;
    let err = &st["result"]["errors"][0];
    let text = err.to_string();
    assert!(text.contains("tidb_disable_txn_auto_retry"), "{st}");
    assert!(text.contains("1193"), "{st}");
    assert!(text.contains("retrying cannot fix"), "{st}");
    // It stays paused: no auto-resume is scheduled, however long one waits.
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        let st = w.subtask().await.expect("subtask status");
        assert_eq!(st["stage"], "Paused", "{st}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let log = w.log();
    assert!(log.contains("not resumable"), "{log}");
    assert!(!log.contains("auto-resume scheduled"), "{log}");
}
