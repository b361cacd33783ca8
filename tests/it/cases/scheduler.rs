//! Integration tests: the dm-master Scheduler on a private etcd (DM's keys are fixed, so each
//! test starts its own). Workers are simulated by what a dm-worker writes: a keepalive key
//! under a lease of the test's own, revoked to "kill" the worker.

use std::time::Duration;

use actix::Addr;
use dm::actors::master::scheduler::SchedulerActor;
use dm::config::{SourceConfig, SubTaskConfig, TaskConfig};
use dm::error::DmError;
use dm::messages::master::*;
use dm::store::etcd::ha::{self, Fence, Stage, WorkerEvent};
use dm::store::etcd::keys;
use etcd_client::{Client, GetOptions};

use crate::harness::{Etcd, Instance, TaskYaml, eventually_msg};

/// A private etcd, a client and a Scheduler over it.
struct Env {
    _etcd: Etcd,
    client: Client,
    sched: Addr<SchedulerActor>,
}

impl Env {
    async fn start() -> Self {
        let etcd = Etcd::start();
        let client = etcd.client().await;
        let sched = start_scheduler(&client).await;
        Env {
            _etcd: etcd,
            client,
            sched,
        }
    }

    async fn view(&self) -> ClusterView {
        self.sched
            .send(GetClusterView)
            .await
            .expect("scheduler alive")
    }

    /// The source bound to `worker` according to etcd.
    async fn bound(&self, worker: &str) -> Option<String> {
        let mut c = self.client.clone();
        ha::get_bound(&mut c, worker)
            .await
            .expect("read binding")
            .1
            .map(|b| b.source)
    }

    async fn wait_bound(&self, worker: &str, source: Option<&str>, within: Duration) {
        let what = format!("etcd binding of `{worker}` to be {source:?}");
        eventually_msg(within, &what, || async {
            self.bound(worker).await.as_deref() == source
        })
        .await;
    }

    /// The store's current revision.
    async fn revision(&self) -> i64 {
        let mut c = self.client.clone();
        ha::get_prefix(&mut c, "/dm-", 0).await.expect("read").0
    }

    async fn register(&self, worker: &str) {
        self.sched
            .send(RegisterWorker {
                name: worker.into(),
                addr: addr_of(worker),
            })
            .await
            .unwrap()
            .expect("register worker");
    }

    /// Puts `worker`'s keepalive under a fresh lease; returns the lease.
    async fn alive(&self, worker: &str) -> i64 {
        let mut c = self.client.clone();
        let lease = c.lease_grant(30, None).await.expect("lease").id();
        let ev = WorkerEvent {
            worker_name: worker.into(),
            join_time: "2026-01-01T00:00:00Z".into(),
        };
        ha::put_keepalive(&mut c, &ev, lease)
            .await
            .expect("keepalive");
        lease
    }

    async fn kill(&self, lease: i64) {
        let mut c = self.client.clone();
        c.lease_revoke(lease).await.expect("revoke");
    }

    async fn wait_stage(&self, worker: &str, stage: WorkerStage) {
        eventually_msg(
            Duration::from_secs(5),
            &format!("`{worker}` to be {}", stage.as_str()),
            || async { self.view().await.workers.get(worker).map(|w| w.stage) == Some(stage) },
        )
        .await;
    }
}

async fn start_scheduler(client: &Client) -> Addr<SchedulerActor> {
    SchedulerActor::start_rebuilt(client.clone(), None, None)
        .await
        .expect("scheduler rebuilds")
}

fn addr_of(worker: &str) -> String {
    format!("127.0.0.1:{}", 10000 + worker.len())
}

fn source(id: &str) -> SourceConfig {
    SourceConfig::from_yaml(
        &format!(
            "source-id: {id}\nfrom:\n  host: 127.0.0.1\n  port: 3306\n  user: root\n  password: pw\n"
        ),
        "test",
    )
    .expect("source config")
}

fn subtasks(task: &str, sources: &[&str]) -> Vec<SubTaskConfig> {
    let cfg = TaskConfig::from_yaml(&task_yaml(task, sources), "task.yaml").expect("task config");
    cfg.subtasks()
}

/// An `all` task with one bare instance per source.
fn task_yaml(task: &str, sources: &[&str]) -> String {
    let mut yaml = TaskYaml::new(task, "all").target("127.0.0.1", 4000, "root", "");
    for s in sources {
        yaml = yaml.instance(Instance::new(s));
    }
    yaml.render()
}

fn code_of<T: std::fmt::Debug>(r: Result<T, DmError>) -> u32 {
    r.expect_err("expected an error").code
}

async fn add_source(env: &Env, id: &str) {
    env.sched
        .send(AddSource {
            cfg: source(id),
            worker: None,
        })
        .await
        .unwrap()
        .expect("add source");
}

#[actix::test]
async fn sources_bind_to_free_workers_and_move_when_a_lease_dies() {
    let env = Env::start().await;
    add_source(&env, "s1").await;
    let v = env.view().await;
    assert!(v.sources.contains_key("s1"));
    assert!(v.bound.is_empty(), "no worker: unbound");

    // `z` registers (offline), then keeps alive: it takes s1.
    env.register("z").await;
    assert_eq!(env.view().await.workers["z"].stage, WorkerStage::Offline);
    let z1 = env.alive("z").await;
    env.wait_bound("z", Some("s1"), Duration::from_secs(5))
        .await;
    assert_eq!(env.view().await.bound["s1"], "z");
    env.wait_stage("z", WorkerStage::Bound).await;

    // `a` comes up free; z dies: s1 moves to a at once.
    env.register("a").await;
    let a1 = env.alive("a").await;
    env.wait_stage("a", WorkerStage::Free).await;
    env.kill(z1).await;
    env.wait_bound("a", Some("s1"), Duration::from_secs(1))
        .await;
    env.wait_bound("z", None, Duration::from_secs(1)).await;
    env.wait_stage("z", WorkerStage::Offline).await;

    // z (last bound to s1) and b are free; a dies: s1 prefers z over b (b sorts first).
    let _z2 = env.alive("z").await;
    env.register("b").await;
    let _b1 = env.alive("b").await;
    env.wait_stage("z", WorkerStage::Free).await;
    env.wait_stage("b", WorkerStage::Free).await;
    env.kill(a1).await;
    env.wait_bound("z", Some("s1"), Duration::from_secs(1))
        .await;
    assert_eq!(env.bound("b").await, None);
    assert_eq!(env.bound("a").await, None);

    // A new source goes to the remaining free worker; with `worker` it must be free.
    let busy = env
        .sched
        .send(AddSource {
            cfg: source("s3"),
            worker: Some("z".into()),
        })
        .await
        .unwrap();
    assert_eq!(code_of(busy), 46033, "z is bound: not free");
    let unknown = env
        .sched
        .send(AddSource {
            cfg: source("s3"),
            worker: Some("nobody".into()),
        })
        .await
        .unwrap();
    assert_eq!(code_of(unknown), 46004);
    env.sched
        .send(AddSource {
            cfg: source("s2"),
            worker: Some("b".into()),
        })
        .await
        .unwrap()
        .expect("add s2 on b");
    assert_eq!(env.bound("b").await.as_deref(), Some("s2"));
}

#[actix::test]
async fn start_task_is_one_transaction_and_errors_change_nothing() {
    let env = Env::start().await;
    add_source(&env, "s1").await;
    add_source(&env, "s2").await;
    env.sched
        .send(StartTask {
            subtasks: subtasks("t1", &["s1", "s2"]),
            stage: Stage::Running,
        })
        .await
        .unwrap()
        .expect("start t1");

    // Configs and Running stages, all written at one revision.
    let mut c = env.client.clone();
    let mut revs = Vec::new();
    for prefix in [keys::SUBTASK_CONFIG, keys::SUBTASK_STAGE] {
        let r = c
            .get(prefix, Some(GetOptions::new().with_prefix()))
            .await
            .unwrap();
        assert_eq!(r.kvs().len(), 2, "{prefix}");
        revs.extend(r.kvs().iter().map(|kv| kv.mod_revision()));
    }
    revs.dedup();
    assert_eq!(revs.len(), 1, "one transaction: {revs:?}");
    let (_, cfgs, stages) = ha::get_source_subtasks(&mut c, "s2").await.unwrap();
    assert_eq!(cfgs["t1"].source_id, "s2");
    assert_eq!(stages["t1"].expect, Stage::Running);

    // Every rejected request leaves etcd untouched.
    let before = env.revision().await;
    let s = &env.sched;
    let r = s
        .send(StartTask {
            subtasks: subtasks("t2", &["s1", "s9"]),
            stage: Stage::Running,
        })
        .await
        .unwrap();
    let e = r.expect_err("unknown source");
    assert_eq!(e.code, 46008);
    assert!(e.message.contains("s9"), "{}", e.message);
    let r = s
        .send(StartTask {
            subtasks: subtasks("t1", &["s1"]),
            stage: Stage::Running,
        })
        .await
        .unwrap();
    assert_eq!(code_of(r), 46014);
    let mut two = subtasks("t2", &["s1"]);
    two.extend(subtasks("t3", &["s2"]));
    assert_eq!(
        code_of(
            s.send(StartTask {
                subtasks: two,
                stage: Stage::Running,
            })
            .await
            .unwrap()
        ),
        46013
    );
    let r = s
        .send(RemoveSource {
            source: "s1".into(),
            force: false,
        })
        .await
        .unwrap();
    assert_eq!(code_of(r), 46901);
    let r = s.send(UpdateSource { cfg: source("s1") }).await.unwrap();
    assert_eq!(code_of(r), 46025);
    let r = s
        .send(AddSource {
            cfg: source("s1"),
            worker: None,
        })
        .await
        .unwrap();
    assert_eq!(code_of(r), 46007);
    let r = s
        .send(SetStage {
            task: Some("nope".into()),
            sources: vec![],
            stage: Stage::Paused,
        })
        .await
        .unwrap();
    assert_eq!(code_of(r), 46018);
    let r = s
        .send(SetStage {
            task: Some("t1".into()),
            sources: vec!["s9".into()],
            stage: Stage::Paused,
        })
        .await
        .unwrap();
    assert_eq!(code_of(r), 46034);
    let r = s
        .send(UpdateSubtasks {
            subtasks: subtasks("t1", &["s1"]),
        })
        .await
        .unwrap();
    assert_eq!(code_of(r), 46035, "running subtasks cannot be updated");
    let r = s
        .send(DeleteTask {
            task: "nope".into(),
            sources: vec![],
        })
        .await
        .unwrap();
    assert_eq!(code_of(r), 46018);
    let r = s
        .send(OfflineWorker {
            name: "nobody".into(),
        })
        .await
        .unwrap();
    assert_eq!(code_of(r), 46004);
    let r = s
        .send(TransferSource {
            source: "s1".into(),
            worker: "nobody".into(),
        })
        .await
        .unwrap();
    assert_eq!(code_of(r), 46004);
    assert_eq!(env.revision().await, before, "errors wrote nothing");

    // Pause (all sources), update while paused, stop one source, force-remove the other.
    let changed = s
        .send(SetStage {
            task: Some("t1".into()),
            sources: vec![],
            stage: Stage::Paused,
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(changed, ["s1", "s2"]);
    let (_, _, stages) = ha::get_source_subtasks(&mut c, "s1").await.unwrap();
    assert_eq!(stages["t1"].expect, Stage::Paused);
    s.send(UpdateSubtasks {
        subtasks: subtasks("t1", &["s1"]),
    })
    .await
    .unwrap()
    .expect("update paused subtask");
    let removed = s
        .send(DeleteTask {
            task: "t1".into(),
            sources: vec!["s1".into()],
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(removed, ["s1"]);
    let (_, cfgs, stages) = ha::get_source_subtasks(&mut c, "s1").await.unwrap();
    assert!(cfgs.is_empty() && stages.is_empty());
    // Every task on s2 resumes (task None).
    let changed = s
        .send(SetStage {
            task: None,
            sources: vec!["s2".into()],
            stage: Stage::Running,
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(changed, ["s2"]);
    s.send(RemoveSource {
        source: "s2".into(),
        force: true,
    })
    .await
    .unwrap()
    .expect("force remove");
    let (_, cfgs, stages) = ha::get_source_subtasks(&mut c, "s2").await.unwrap();
    assert!(cfgs.is_empty() && stages.is_empty());
    assert!(ha::get_source(&mut c, "s2").await.unwrap().is_none());
    let v = env.view().await;
    assert!(v.subtasks.is_empty());
    assert_eq!(v.sources.keys().collect::<Vec<_>>(), ["s1"]);
}

#[actix::test]
async fn transfer_source_pauses_moves_and_resumes() {
    let env = Env::start().await;
    env.register("a").await;
    let _a = env.alive("a").await;
    add_source(&env, "s1").await;
    env.wait_bound("a", Some("s1"), Duration::from_secs(5))
        .await;
    env.sched
        .send(StartTask {
            subtasks: subtasks("t1", &["s1"]),
            stage: Stage::Running,
        })
        .await
        .unwrap()
        .unwrap();

    // Target offline: not free.
    env.register("b").await;
    let r = env
        .sched
        .send(TransferSource {
            source: "s1".into(),
            worker: "b".into(),
        })
        .await
        .unwrap();
    assert_eq!(code_of(r), 46033);
    let _b = env.alive("b").await;
    env.wait_stage("b", WorkerStage::Free).await;
    let watch_from = env.revision().await + 1;
    env.sched
        .send(TransferSource {
            source: "s1".into(),
            worker: "b".into(),
        })
        .await
        .unwrap()
        .expect("transfer");
    assert_eq!(env.bound("b").await.as_deref(), Some("s1"));
    assert_eq!(env.bound("a").await, None);
    // The stage went Paused, then Running again.
    let mut c = env.client.clone();
    let hist = c
        .get(
            keys::subtask_stage("s1", "t1"),
            Some(GetOptions::new().with_revision(watch_from)),
        )
        .await
        .unwrap();
    assert_eq!(
        ha::decode_stage("k", hist.kvs()[0].value()).unwrap().expect,
        Stage::Paused
    );
    let (_, _, stages) = ha::get_source_subtasks(&mut c, "s1").await.unwrap();
    assert_eq!(stages["t1"].expect, Stage::Running);
    // Same worker: nothing to do.
    let before = env.revision().await;
    env.sched
        .send(TransferSource {
            source: "s1".into(),
            worker: "b".into(),
        })
        .await
        .unwrap()
        .expect("no-op");
    assert_eq!(env.revision().await, before);
}

#[actix::test]
async fn workers_register_once_and_go_offline_only_when_down() {
    let env = Env::start().await;
    env.register("w").await;
    env.register("w").await; // same address: fine
    let lease = env.alive("w").await;
    env.wait_stage("w", WorkerStage::Free).await;
    let other = env
        .sched
        .send(RegisterWorker {
            name: "w".into(),
            addr: "127.0.0.1:1".into(),
        })
        .await
        .unwrap();
    assert_eq!(code_of(other), 46003, "another address while online");
    let online = env
        .sched
        .send(OfflineWorker { name: "w".into() })
        .await
        .unwrap();
    assert_eq!(code_of(online), 46005);

    env.kill(lease).await;
    env.wait_stage("w", WorkerStage::Offline).await;
    // Offline: another address replaces it.
    env.sched
        .send(RegisterWorker {
            name: "w".into(),
            addr: "127.0.0.1:2".into(),
        })
        .await
        .unwrap()
        .expect("replace offline worker");
    assert_eq!(env.view().await.workers["w"].addr, "127.0.0.1:2");
    env.sched
        .send(OfflineWorker { name: "w".into() })
        .await
        .unwrap()
        .expect("offline");
    assert!(env.view().await.workers.is_empty());
    let mut c = env.client.clone();
    let (_, regs) = ha::get_prefix(&mut c, keys::WORKER_REGISTER, 0)
        .await
        .unwrap();
    assert!(regs.is_empty(), "registration deleted");

    // A worker that registered straight in etcd (no master) is picked up on its keepalive.
    ha::apply(
        &mut c,
        vec![ha::Op::PutWorker(ha::WorkerInfo {
            name: "direct".into(),
            addr: addr_of("direct"),
        })],
    )
    .await
    .unwrap();
    let _d = env.alive("direct").await;
    env.wait_stage("direct", WorkerStage::Free).await;
}

#[actix::test]
async fn a_new_scheduler_rebuilds_the_same_view_and_drops_dead_bindings() {
    let env = Env::start().await;
    for w in ["a", "b"] {
        env.register(w).await;
    }
    let la = env.alive("a").await;
    add_source(&env, "s1").await;
    add_source(&env, "s2").await;
    env.wait_bound("a", Some("s1"), Duration::from_secs(5))
        .await;
    env.sched
        .send(StartTask {
            subtasks: subtasks("t1", &["s1", "s2"]),
            stage: Stage::Running,
        })
        .await
        .unwrap()
        .unwrap();
    env.sched
        .send(SetStage {
            task: Some("t1".into()),
            sources: vec!["s2".into()],
            stage: Stage::Paused,
        })
        .await
        .unwrap()
        .unwrap();
    let old = env.view().await;
    env.sched
        .send(StopScheduler {
            reason: "test".into(),
        })
        .await
        .unwrap();

    let again = start_scheduler(&env.client).await;
    let new = again.send(GetClusterView).await.unwrap();
    assert_eq!(summary(&new), summary(&old));

    // While no scheduler runs, a dies and b comes up: the next one moves s1 to b on start
    // and binds s2 (unbound) nowhere else (b took s1 by name order).
    again
        .send(StopScheduler {
            reason: "test".into(),
        })
        .await
        .unwrap();
    env.kill(la).await;
    let _lb = env.alive("b").await;
    assert_eq!(
        env.bound("a").await.as_deref(),
        Some("s1"),
        "nobody cleaned up yet"
    );
    let third = start_scheduler(&env.client).await;
    assert_eq!(
        env.bound("a").await,
        None,
        "dead binding deleted on rebuild"
    );
    assert_eq!(env.bound("b").await.as_deref(), Some("s1"));
    let v = third.send(GetClusterView).await.unwrap();
    assert_eq!(v.workers["a"].stage, WorkerStage::Offline);
    assert_eq!(v.bound.get("s1").map(String::as_str), Some("b"));
    assert!(!v.bound.contains_key("s2"));
}

#[actix::test]
async fn a_deposed_scheduler_writes_nothing_and_stops() {
    let env = Env::start().await;
    let mut c = env.client.clone();
    let put = c.put("/test/fence", "x", None).await.unwrap();
    let fence = Fence {
        key: b"/test/fence".to_vec(),
        create_revision: put.header().unwrap().revision(),
    };
    let sched = SchedulerActor::start_rebuilt(c.clone(), Some(fence), None)
        .await
        .unwrap();
    sched
        .send(AddSource {
            cfg: source("s1"),
            worker: None,
        })
        .await
        .unwrap()
        .expect("fence holds");
    c.delete("/test/fence", None).await.unwrap();
    let before = env.revision().await;
    let r = sched
        .send(AddSource {
            cfg: source("s2"),
            worker: None,
        })
        .await
        .unwrap();
    assert_eq!(code_of(r), 46001);
    assert_eq!(env.revision().await, before);
    eventually_msg(
        Duration::from_secs(5),
        "the deposed scheduler to stop",
        || async { !sched.connected() },
    )
    .await;
}

/// What must survive a rebuild: sources, bindings, worker stages, subtask stages.
fn summary(v: &ClusterView) -> String {
    let workers: Vec<String> = v
        .workers
        .values()
        .map(|w| format!("{}@{}:{}:{:?}", w.name, w.addr, w.stage.as_str(), w.source))
        .collect();
    let subtasks: Vec<String> = v
        .subtasks
        .iter()
        .map(|(k, st)| {
            format!(
                "{}/{}:{}:{}",
                k.task,
                k.source,
                st.expect.as_str(),
                st.cfg.source_id
            )
        })
        .collect();
    format!(
        "sources={:?} bound={:?} workers={workers:?} subtasks={subtasks:?}",
        v.sources.keys().collect::<Vec<_>>(),
        v.bound
    )
}
