//! A real dm-rs cluster of binaries for end-to-end tests: N dm-masters (each running its own
//! etcd member as a child process), M dm-workers, all on free 127.0.0.1 ports under one
//! temporary directory, driven through the `dmctl` binary.
//!
//! - Readiness is polled (`/status` of each process, the leader seen by every master, each
//!   worker listed by `list-member --worker`), never slept for.
//! - `kill9_*` is a crash: SIGKILL to the master *and* its etcd child (as when DM's embedded
//!   etcd dies with its process), or to the worker. `restart_*` starts the same command line on
//!   the same ports and data.
//! - Every process logs to a file in the cluster directory; on a panic the logs' tails are
//!   printed (see `BinProcess`), and `Drop` kills everything this cluster started, including
//!   orphaned etcd children of killed masters (found by their data directory).
//! - [`Migration`] writes the source and task files for a fresh upstream database on the shared
//!   MariaDB upstream, migrated to a database of the same name on the shared downstream.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use mysql_async::prelude::*;
use serde_json::Value;

use super::bin::{BinProcess, DM_MASTER, DM_WORKER, DMCTL};
use super::eventually::{POLL_INTERVAL, try_eventually};
use super::mariadb::{TestDb, fresh_db, shared_downstream, shared_upstream};
use super::ports::free_port;
use super::process::{pid_running, tail_file};
use super::rows::{difference, same_rows, table_rows};
use super::task::{BlockAllowList, Instance, Section, TaskYaml};

/// Longest a master may take to serve `/status` with a healthy etcd.
const MASTER_READY: Duration = Duration::from_secs(60);
/// Longest the cluster may take to elect its first leader.
const LEADER_READY: Duration = Duration::from_secs(30);
/// Longest a worker may take to register and keep alive.
const WORKER_READY: Duration = Duration::from_secs(30);
/// Pause between two polls that run dmctl: a few requests per second, well inside dm-master's
/// request rate limit, and cheap on 2 cores.
pub const CTL_POLL: Duration = Duration::from_millis(200);
/// Cluster tests share 2 cores with everything else: one cluster at a time keeps elections
/// and keepalives from timing out under load.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// Shape of a cluster.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    pub masters: usize,
    pub workers: usize,
    /// Worker `--keepalive-ttl` in seconds.
    pub keepalive_ttl: u64,
}

impl Default for ClusterSpec {
    fn default() -> Self {
        Self {
            masters: 1,
            workers: 1,
            keepalive_ttl: 10,
        }
    }
}

/// One dm-master process and its etcd member.
pub struct MasterNode {
    pub name: String,
    /// `127.0.0.1:PORT` of the HTTP API.
    pub addr: String,
    /// `http://127.0.0.1:PORT` of its etcd member's client endpoint: the master-addr, where
    /// dm-master routes gRPC to its member.
    pub etcd_url: String,
    pub data_dir: PathBuf,
    args: Vec<String>,
    log: PathBuf,
    process: Option<BinProcess>,
}

/// One dm-worker process.
pub struct WorkerNode {
    pub name: String,
    /// `127.0.0.1:PORT` of its HTTP server.
    pub addr: String,
    args: Vec<String>,
    log: PathBuf,
    process: Option<BinProcess>,
    /// Processes started so far (each after the first logs to its own file).
    runs: u32,
    /// The log of the current process.
    current: PathBuf,
}

/// A running cluster; everything is killed on drop.
pub struct Cluster {
    pub masters: Vec<MasterNode>,
    pub workers: Vec<WorkerNode>,
    dir: tempfile::TempDir,
    spec: ClusterSpec,
}

/// What one dmctl run printed.
#[derive(Debug, Clone)]
pub struct CtlOut {
    pub code: i32,
    /// stdout parsed as JSON (`Value::Null` when it is not JSON).
    pub json: Value,
    pub stdout: String,
    pub stderr: String,
}

impl CtlOut {
    /// `result` of the answer.
    pub fn ok(&self) -> bool {
        self.json["result"] == true
    }
}

impl std::fmt::Display for CtlOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl Cluster {
    /// Starts `spec.masters` masters, waits for a leader, then `spec.workers` workers, and waits
    /// until every worker is listed as online.
    pub async fn start(spec: ClusterSpec) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("dm-cluster-")
            .tempdir()
            .expect("create the cluster directory");
        let masters = plan_masters(dir.path(), spec.masters);
        let mut cluster = Cluster {
            masters,
            workers: Vec::new(),
            dir,
            spec: spec.clone(),
        };
        for i in 0..cluster.masters.len() {
            cluster.spawn_master(i);
        }
        for i in 0..cluster.masters.len() {
            cluster.wait_master_ready(i).await;
        }
        cluster.wait_leader(LEADER_READY).await;
        let join = cluster.master_addrs();
        for i in 0..spec.workers {
            let name = format!("w{}", i + 1);
            let addr = format!("127.0.0.1:{}", free_port());
            let args = vec![
                "--name".into(),
                name.clone(),
                "--worker-addr".into(),
                addr.clone(),
                "--advertise-addr".into(),
                addr.clone(),
                "--join".into(),
                join.clone(),
                "--keepalive-ttl".into(),
                spec.keepalive_ttl.to_string(),
            ];
            let log = cluster.dir.path().join(format!("{name}.log"));
            cluster.workers.push(WorkerNode {
                name,
                addr,
                args,
                log,
                process: None,
                runs: 0,
                current: PathBuf::new(),
            });
            cluster.spawn_worker(i);
        }
        for i in 0..cluster.workers.len() {
            cluster.wait_worker_online(i).await;
        }
        cluster
    }

    /// The cluster's directory (logs, data, written configs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The spec the cluster was started with.
    pub fn spec(&self) -> &ClusterSpec {
        &self.spec
    }

    /// Every master's address, comma-separated (DM's `--master-addr` / `--join` list).
    pub fn master_addrs(&self) -> String {
        self.masters
            .iter()
            .map(|m| m.addr.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The master named `name`.
    pub fn master(&self, name: &str) -> &MasterNode {
        self.masters
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("no master {name}"))
    }

    /// The worker named `name`.
    pub fn worker(&self, name: &str) -> &WorkerNode {
        self.workers
            .iter()
            .find(|w| w.name == name)
            .unwrap_or_else(|| panic!("no worker {name}"))
    }

    /// Masters whose process runs.
    pub fn live_masters(&self) -> Vec<&MasterNode> {
        self.masters.iter().filter(|m| m.is_running()).collect()
    }

    /// `GET /status` of master `name` (None when it does not answer).
    pub async fn master_status(&self, name: &str) -> Option<Value> {
        let m = &self.masters[self.master_index(name)];
        get_json(&format!("http://{}/status", m.addr)).await
    }

    /// The pid of master `name`'s process, while it runs.
    pub fn master_pid(&self, name: &str) -> Option<u32> {
        let m = &self.masters[self.master_index(name)];
        m.process.as_ref().map(BinProcess::pid)
    }

    /// The exit status of master `name`'s process, once it has exited.
    pub fn master_exit(&mut self, name: &str) -> Option<std::process::ExitStatus> {
        self.master_mut(name)
            .process
            .as_mut()
            .and_then(BinProcess::try_exit)
    }

    /// Runs dmctl against every master (in order) with `args`.
    pub async fn dmctl(&self, args: &[&str]) -> CtlOut {
        dmctl_at(&self.master_addrs(), args).await
    }

    /// The leader's name per `list-member --leader` (asked of every master in order).
    pub async fn leader(&self) -> Option<String> {
        leader_at(&self.master_addrs()).await
    }

    /// Polls until some master names a leader; returns it.
    pub async fn wait_leader(&self, timeout: Duration) -> String {
        let what = "a leader elected (GET /status `leader` of a live master)";
        eventually_some(timeout, what, || {
            let masters = self.live_masters();
            async move {
                for m in masters {
                    if let Some(s) = get_json(&format!("http://{}/status", m.addr)).await
                        && let Some(l) = s["leader"].as_str().filter(|l| !l.is_empty())
                    {
                        return Some(l.to_string());
                    }
                }
                None
            }
        })
        .await
    }

    /// `list-member --worker` as `(name, stage, source)` triples.
    pub async fn workers_listed(&self) -> Vec<(String, String, String)> {
        let out = self.dmctl(&["list-member", "--worker"]).await;
        listed_workers(&out.json)
    }

    /// The worker the source is bound to, per `list-member --worker`.
    pub async fn bound_worker(&self, source: &str) -> Option<String> {
        self.workers_listed()
            .await
            .into_iter()
            .find(|(_, stage, src)| stage == "bound" && src == source)
            .map(|(name, _, _)| name)
    }

    /// SIGKILL to master `name` and its etcd child, as a machine crash.
    pub fn kill9_master(&mut self, name: &str) {
        let m = self.master_mut(name);
        let etcd = m
            .process
            .as_ref()
            .map(|p| children_named(p.pid(), "etcd"))
            .unwrap_or_default();
        if let Some(p) = m.process.as_mut() {
            p.kill9();
        }
        for pid in etcd {
            kill9_pid(pid);
        }
    }

    /// Starts master `name` again with the same flags, ports and data; waits for `/status`.
    pub async fn restart_master(&mut self, name: &str) {
        let i = self.master_index(name);
        self.spawn_master(i);
        self.wait_master_ready(i).await;
    }

    /// SIGKILL to worker `name`.
    pub fn kill9_worker(&mut self, name: &str) {
        let w = self
            .workers
            .iter_mut()
            .find(|w| w.name == name)
            .unwrap_or_else(|| panic!("no worker {name}"));
        if let Some(p) = w.process.as_mut() {
            p.kill9();
        }
    }

    /// Starts worker `name` again with the same flags; waits until it is listed online.
    pub async fn restart_worker(&mut self, name: &str) {
        self.restart_worker_env(name, &[]).await;
    }

    /// Like [`Self::restart_worker`], with extra environment (`DM_RS_FAILPOINTS`); each run
    /// logs to its own file.
    pub async fn restart_worker_env(&mut self, name: &str, env: &[(&str, &str)]) {
        let i = self
            .workers
            .iter()
            .position(|w| w.name == name)
            .unwrap_or_else(|| panic!("no worker {name}"));
        self.spawn_worker_env(i, env);
        self.wait_worker_online(i).await;
    }

    /// Stops worker `name` (SIGTERM) and waits for it to exit.
    pub fn stop_worker(&mut self, name: &str) {
        let w = self
            .workers
            .iter_mut()
            .find(|w| w.name == name)
            .unwrap_or_else(|| panic!("no worker {name}"));
        if let Some(p) = w.process.as_mut() {
            p.terminate();
        }
    }

    /// Whether worker `name`'s process has exited (a failpoint aborted it).
    pub fn worker_exited(&mut self, name: &str) -> bool {
        self.workers
            .iter_mut()
            .find(|w| w.name == name)
            .and_then(|w| w.process.as_mut())
            .is_none_or(|p| p.try_exit().is_some())
    }

    /// The last `lines` lines of every process's log, for failure reports.
    pub fn logs(&self, lines: usize) -> String {
        let mut s = String::new();
        for (name, log) in self
            .masters
            .iter()
            .map(|m| (&m.name, &m.log))
            .chain(self.workers.iter().map(|w| (&w.name, &w.current)))
        {
            s.push_str(&format!(
                "--- {name} ({}) ---\n{}\n",
                log.display(),
                tail_file(log, lines)
            ));
        }
        s
    }

    /// Writes `text` to `name` in the cluster directory and returns the path as a string.
    pub fn write_file(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path.display().to_string()
    }

    /// A client of the etcd member of the first live master.
    pub async fn etcd(&self) -> etcd_client::Client {
        let urls: Vec<String> = self
            .live_masters()
            .iter()
            .map(|m| m.etcd_url.clone())
            .collect();
        etcd_client::Client::connect(urls.clone(), None)
            .await
            .unwrap_or_else(|e| panic!("connect to etcd {urls:?}: {e}"))
    }

    fn master_index(&self, name: &str) -> usize {
        self.masters
            .iter()
            .position(|m| m.name == name)
            .unwrap_or_else(|| panic!("no master {name}"))
    }

    fn master_mut(&mut self, name: &str) -> &mut MasterNode {
        let i = self.master_index(name);
        &mut self.masters[i]
    }

    fn spawn_master(&mut self, i: usize) {
        let m = &mut self.masters[i];
        m.process = Some(BinProcess::spawn(DM_MASTER, &m.args, m.log.clone()));
    }

    fn spawn_worker(&mut self, i: usize) {
        self.spawn_worker_env(i, &[]);
    }

    fn spawn_worker_env(&mut self, i: usize, env: &[(&str, &str)]) {
        let w = &mut self.workers[i];
        w.runs += 1;
        let log = if w.runs == 1 {
            w.log.clone()
        } else {
            w.log.with_extension(format!("{}.log", w.runs))
        };
        w.current = log.clone();
        w.process = Some(BinProcess::spawn_with_env(DM_WORKER, &w.args, env, log));
    }

    async fn wait_master_ready(&mut self, i: usize) {
        let url = format!("http://{}/status", self.masters[i].addr);
        let what = format!(
            "{} serving /status with a healthy etcd",
            self.masters[i].name
        );
        let m = &mut self.masters[i];
        let ready = try_eventually(MASTER_READY, POLL_INTERVAL, async || {
            if get_json(&url)
                .await
                .is_some_and(|s| s["etcd"]["healthy"] == true)
            {
                return Some(());
            }
            let exited = m.process.as_mut().and_then(BinProcess::try_exit);
            assert!(
                exited.is_none(),
                "{} exited with {exited:?} during start-up:\n{}",
                m.name,
                tail_file(&m.log, 60)
            );
            None
        })
        .await;
        assert!(
            ready.is_some(),
            "timed out after {MASTER_READY:?} waiting for {what}:\n{}",
            tail_file(&m.log, 60)
        );
    }

    async fn wait_worker_online(&mut self, i: usize) {
        let name = self.workers[i].name.clone();
        let what = format!("{name} listed online by `list-member --worker`");
        let addrs = self.master_addrs();
        eventually_ctl(WORKER_READY, &what, || {
            let (addrs, name) = (addrs.clone(), name.clone());
            async move {
                let out = dmctl_at(&addrs, &["list-member", "--worker"]).await;
                listed_workers(&out.json)
                    .iter()
                    .any(|(n, stage, _)| *n == name && stage != "offline")
            }
        })
        .await;
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Each process's log tail is printed by its `BinProcess`.
            eprintln!("--- cluster directory {} ---", self.dir.path().display());
        }
        for w in &mut self.workers {
            if let Some(p) = w.process.as_mut() {
                p.kill9();
            }
        }
        for m in &mut self.masters {
            let etcd = m
                .process
                .as_ref()
                .map(|p| children_named(p.pid(), "etcd"))
                .unwrap_or_default();
            if let Some(p) = m.process.as_mut() {
                p.kill9();
            }
            for pid in etcd {
                kill9_pid(pid);
            }
        }
        // etcd children orphaned by an earlier kill9_master: they run on our data dirs.
        for pid in pids_with_arg("etcd", self.dir.path()) {
            kill9_pid(pid);
        }
    }
}

impl MasterNode {
    /// Whether the master's process runs.
    pub fn is_running(&self) -> bool {
        self.process.as_ref().is_some_and(|p| pid_running(p.pid()))
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        tail_file(&self.log, lines)
    }
}

impl WorkerNode {
    /// Whether the worker's process runs.
    pub fn is_running(&self) -> bool {
        self.process.as_ref().is_some_and(|p| pid_running(p.pid()))
    }

    /// The last `lines` lines of the current process's log.
    pub fn log_tail(&self, lines: usize) -> String {
        tail_file(&self.current, lines)
    }

    /// The worker's own view of its subtasks (`GET /internal/v1/status`).
    pub async fn internal_status(&self) -> Option<Value> {
        get_json(&format!("http://{}/internal/v1/status", self.addr)).await
    }
}

/// Names, ports and command lines of `n` masters whose etcd members form one cluster.
/// Plans `n` masters in DM's own configuration form: one `dm-master.toml` each with only
/// DM's keys (name, master-addr, advertise-addr, peer-urls without a scheme, initial-cluster,
/// data-dir), started with `--config` alone. etcd's client API is then served on each
/// master-addr, as DM does, so there is no etcd port to configure.
fn plan_masters(dir: &Path, n: usize) -> Vec<MasterNode> {
    let plans: Vec<(String, u16, u16)> = (1..=n)
        .map(|i| (format!("m{i}"), free_port(), free_port()))
        .collect();
    let initial_cluster = plans
        .iter()
        .map(|(name, _, peer)| format!("{name}=http://127.0.0.1:{peer}"))
        .collect::<Vec<_>>()
        .join(",");
    plans
        .into_iter()
        .map(|(name, api, peer)| {
            let addr = format!("127.0.0.1:{api}");
            let data_dir = dir.join(&name);
            let config = dir.join(format!("{name}.toml"));
            let text = format!(
                "name = \"{name}\"\nmaster-addr = \"{addr}\"\nadvertise-addr = \"{addr}\"\n\
                 peer-urls = \"127.0.0.1:{peer}\"\ninitial-cluster = \"{initial_cluster}\"\n\
                 data-dir = \"{}\"\n",
                data_dir.display()
            );
            std::fs::write(&config, text)
                .unwrap_or_else(|e| panic!("write {}: {e}", config.display()));
            MasterNode {
                log: dir.join(format!("{name}.log")),
                etcd_url: format!("http://{addr}"),
                args: vec!["--config".into(), config.display().to_string()],
                name,
                addr,
                data_dir,
                process: None,
            }
        })
        .collect()
}

/// Runs `dmctl --master-addr <addrs> <args…>`.
pub async fn dmctl_at(addrs: &str, args: &[&str]) -> CtlOut {
    let out = tokio::process::Command::new(DMCTL)
        .arg("--master-addr")
        .arg(addrs)
        .args(args)
        .env_remove("DM_MASTER_ADDR")
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap_or_else(|e| panic!("run dmctl {args:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    CtlOut {
        code: out.status.code().unwrap_or(-1),
        json: serde_json::from_str(&stdout).unwrap_or(Value::Null),
        stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The leader's name per `dmctl list-member --leader` sent to `addrs`.
pub async fn leader_at(addrs: &str) -> Option<String> {
    let out = dmctl_at(addrs, &["list-member", "--leader"]).await;
    out.json["members"]
        .as_array()?
        .iter()
        .find_map(|m| m["leader"]["name"].as_str())
        .filter(|n| !n.is_empty())
        .map(str::to_string)
}

/// `(name, stage, source)` of every worker in a `list-member` answer.
pub fn listed_workers(json: &Value) -> Vec<(String, String, String)> {
    let Some(members) = json["members"].as_array() else {
        return Vec::new();
    };
    members
        .iter()
        .filter_map(|m| m["worker"]["workers"].as_array())
        .flatten()
        .map(|w| {
            let s = |k: &str| w[k].as_str().unwrap_or_default().to_string();
            (s("name"), s("stage"), s("source"))
        })
        .collect()
}

/// GET `url` as JSON (2 s timeout), `None` on any failure.
pub async fn get_json(url: &str) -> Option<Value> {
    let resp = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    resp.json().await.ok()
}

fn kill9_pid(pid: u32) {
    // Only pids this cluster started (children of our masters, or on our data dirs).
    super::process::kill9(pid);
}

/// Running children of `parent` whose executable name is `name`.
fn children_named(parent: u32, name: &str) -> Vec<u32> {
    all_pids()
        .into_iter()
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let ppid = stat
                .rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            ppid == Some(parent) && exe_name(*pid).as_deref() == Some(name)
        })
        .collect()
}

/// Running `name` processes with an argument under `dir`.
fn pids_with_arg(name: &str, dir: &Path) -> Vec<u32> {
    let needle = dir.display().to_string();
    all_pids()
        .into_iter()
        .filter(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            exe_name(*pid).as_deref() == Some(name)
                && String::from_utf8_lossy(&cmd).contains(&needle)
                && pid_running(*pid)
        })
        .collect()
}

fn exe_name(pid: u32) -> Option<String> {
    let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let first = cmd.split(|b| *b == 0).next()?;
    let exe = String::from_utf8_lossy(first);
    Some(exe.rsplit('/').next()?.to_string())
}

fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// One source on the shared upstream (a fresh database) and one task migrating it to a
/// database of the same name on the shared downstream.
pub struct Migration {
    pub up: TestDb,
    pub source_id: String,
    pub task_name: String,
    /// Written source.yaml and task.yaml.
    pub source_file: String,
    pub task_file: String,
}

impl Migration {
    /// A fresh upstream database named after `prefix`; source and task files written in the
    /// cluster directory (`task_mode` `all` or `incremental`; incremental starts at the
    /// upstream's current binlog position).
    pub async fn new(cluster: &Cluster, prefix: &str, task_mode: &str) -> Self {
        let up = fresh_db(shared_upstream(), prefix);
        let db = up.name().to_string();
        let source_id = format!("src-{db}");
        let task_name = format!("task-{db}");
        let source_file =
            cluster.write_file(&format!("source-{db}.yaml"), &source_yaml(&source_id));
        let start = if task_mode == "incremental" {
            Some(master_status().await)
        } else {
            None
        };
        let dump_dir = cluster.dir().join(format!("dump-{db}"));
        let task = migration_task(
            &task_name,
            task_mode,
            &db,
            &source_id,
            &dump_dir,
            start.as_ref().map(|(file, pos)| (file.as_str(), *pos)),
        );
        let task_file = cluster.write_file(&format!("task-{db}.yaml"), &task);
        Self {
            up,
            source_id,
            task_name,
            source_file,
            task_file,
        }
    }

    /// The upstream (and downstream) database name.
    pub fn db(&self) -> &str {
        self.up.name()
    }

    /// `CHECKSUM TABLE` and `COUNT(*)` of `table` on both sides: `(upstream, downstream)`.
    pub async fn compare(&self, table: &str) -> ((Option<i64>, u64), (Option<i64>, u64)) {
        let q = format!("`{}`.`{table}`", self.db());
        let up = shared_upstream();
        let down = shared_downstream();
        let count = |server: &'static super::mariadb::MariaDb| {
            let q = q.clone();
            async move {
                let rows = server
                    .query_rows(&format!(
                        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '{}' AND table_name = '{table}'",
                        self.db()
                    ))
                    .await;
                let exists: u64 = rows.first().and_then(|r| r.get(0)).unwrap_or(0);
                if exists == 0 {
                    return (None, 0);
                }
                let n: u64 = server
                    .query_rows(&format!("SELECT COUNT(*) FROM {q}"))
                    .await
                    .first()
                    .and_then(|r| r.get(0))
                    .unwrap_or(0);
                (server.checksum(&q).await, n)
            }
        };
        (count(up).await, count(down).await)
    }

    /// The task's global syncer checkpoint `(file, pos)` downstream, once one is saved.
    pub async fn checkpoint(&self) -> Option<(String, u64)> {
        let rows = shared_downstream()
            .query_rows(&format!(
                "SELECT binlog_name, binlog_pos FROM information_schema.tables t \
                 JOIN `dm_meta_{db}`.`{task}_syncer_checkpoint` c ON c.is_global \
                 WHERE t.table_schema = 'dm_meta_{db}' AND t.table_name = '{task}_syncer_checkpoint'",
                db = self.db(),
                task = self.task_name
            ))
            .await;
        let r = rows.first()?;
        Some((r.get(0)?, r.get(1)?))
    }

    /// Whether every table exists on both sides with exactly the same rows (and checksum).
    pub async fn converged(&self, tables: &[&str]) -> bool {
        for t in tables {
            let q = format!("`{}`.`{t}`", self.db());
            let u = table_rows(&shared_upstream().opts(None), &q).await;
            if !same_rows(&u, &table_rows(&shared_downstream().opts(None), &q).await) {
                return false;
            }
            let (u, d) = self.compare(t).await;
            if u.0.is_none() || u != d {
                return false;
            }
        }
        true
    }

    /// Waits until [`Self::converged`]; panics with the differences and the cluster's logs.
    pub async fn wait_converged(&self, cluster: &Cluster, tables: &[&str], timeout: Duration) {
        let converged = try_eventually(timeout, CTL_POLL, async || {
            self.converged(tables).await.then_some(())
        })
        .await;
        if converged.is_some() {
            return;
        }
        let mut report = String::new();
        for t in tables {
            let (u, d) = self.compare(t).await;
            report.push_str(&format!(
                "{t}: upstream (checksum, rows) {u:?}, downstream {d:?}\n"
            ));
            let q = format!("`{}`.`{t}`", self.db());
            let u = table_rows(&shared_upstream().opts(None), &q).await;
            let d = table_rows(&shared_downstream().opts(None), &q).await;
            report.push_str(&difference(&q, &u, &d));
        }
        let status = cluster.dmctl(&["query-status", &self.task_name]).await;
        panic!(
            "no convergence after {timeout:?}:\n{report}--- query-status ---\n{}\n{}",
            status.stdout,
            cluster.logs(40)
        );
    }
}

impl Drop for Migration {
    fn drop(&mut self) {
        let db = self.up.name().to_string();
        let sql = format!("DROP DATABASE IF EXISTS `{db}`; DROP DATABASE IF EXISTS `dm_meta_{db}`");
        super::process::run_blocking(|| shared_downstream().exec(&sql));
    }
}

/// A source.yaml for the shared upstream, user root without password, position-based.
pub fn source_yaml(source_id: &str) -> String {
    format!(
        "source-id: \"{source_id}\"\nflavor: mariadb\nenable-gtid: false\nfrom:\n  host: \"127.0.0.1\"\n  port: {}\n  user: \"root\"\n  password: \"\"\n",
        shared_upstream().port()
    )
}

/// A task.yaml migrating `db` from `source_id` into the shared downstream, meta tables in
/// `dm_meta_<db>`, small dump/load/sync settings; `start` is the binlog position `(file, pos)`
/// an incremental task starts from.
pub fn migration_task(
    name: &str,
    mode: &str,
    db: &str,
    source_id: &str,
    dump_dir: &Path,
    start: Option<(&str, u64)>,
) -> String {
    let mut instance = Instance::new(source_id)
        .block_allow_list("ba")
        .mydumper("d")
        .loader("l")
        .syncer("s");
    if let Some((file, pos)) = start {
        instance = instance.meta_pos(file, pos);
    }
    TaskYaml::new(name, mode)
        .meta_schema(&format!("dm_meta_{db}"))
        .target_root(shared_downstream().port())
        .block_allow_list("ba", BlockAllowList::new().do_db(db))
        .mydumper("d", Section::new().set("threads", 2).set("rows", 1000))
        .loader(
            "l",
            Section::new()
                .set("pool-size", 2)
                .set("dir", dump_dir.display().to_string()),
        )
        .syncer(
            "s",
            Section::new()
                .set("worker-count", 4)
                .set("batch", 50)
                .set("checkpoint-flush-interval", 1),
        )
        .instance(instance)
        .render()
}

/// `SHOW MASTER STATUS` of the shared upstream: `(file, position)`.
pub async fn master_status() -> (String, u64) {
    let mut conn = shared_upstream().conn().await;
    let row: mysql_async::Row = conn
        .query_first("SHOW MASTER STATUS")
        .await
        .expect("SHOW MASTER STATUS")
        .expect("binlog is on");
    (row.get(0).expect("file"), row.get(1).expect("position"))
}

/// Upstream writes running in the background until [`Writer::stop`]: one row per round into
/// each table of `tables` (`id` auto-increment, `v` the round), plus an update of an earlier
/// row of the first table every few rounds.
pub struct Writer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    done: std::sync::Arc<std::sync::atomic::AtomicU64>,
    handle: tokio::task::JoinHandle<u64>,
}

impl Writer {
    /// Starts writing into `db`'s `tables` (each `(id AUTO_INCREMENT …, v INT, …)`).
    pub fn start(db: &str, tables: &[&str]) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = done.clone();
        let db = db.to_string();
        let tables: Vec<String> = tables.iter().map(|t| t.to_string()).collect();
        let handle = tokio::spawn(async move {
            let mut conn = shared_upstream().conn().await;
            let mut round = 0u64;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                round += 1;
                for t in &tables {
                    conn.query_drop(format!("INSERT INTO `{db}`.`{t}` (v) VALUES ({round})"))
                        .await
                        .unwrap_or_else(|e| panic!("writer insert into {db}.{t}: {e}"));
                }
                if round.is_multiple_of(5) {
                    conn.query_drop(format!(
                        "UPDATE `{db}`.`{}` SET v = v + 1000 WHERE id = {}",
                        tables[0],
                        round / 2
                    ))
                    .await
                    .unwrap_or_else(|e| panic!("writer update: {e}"));
                }
                counter.store(round, std::sync::atomic::Ordering::Relaxed);
                // Pacing, not waiting: a few dozen rounds per second.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            round
        });
        Self { stop, done, handle }
    }

    /// Rounds written so far.
    pub fn rounds(&self) -> u64 {
        self.done.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Stops writing; returns the number of rounds written.
    pub async fn stop(self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.handle.await.expect("writer task")
    }
}

/// Asserts that `condition` stays true for the whole of `period` (polled): the only way to
/// check that something does *not* happen.
pub async fn assert_stays<F, Fut>(period: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + period;
    while tokio::time::Instant::now() < end {
        assert!(condition().await, "{what} stopped holding");
        tokio::time::sleep(POLL_INTERVAL * 4).await;
    }
}

/// Polls `probe` every [`CTL_POLL`] until it returns `Some`; panics naming `what` after
/// `timeout`.
pub async fn eventually_some<T, F, Fut>(timeout: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    try_eventually(timeout, CTL_POLL, async || probe().await)
        .await
        .unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}"))
}

/// Polls `condition` every [`CTL_POLL`] until it is true; panics naming `what` after
/// `timeout`.
pub async fn eventually_ctl<F, Fut>(timeout: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    eventually_some(timeout, what, || {
        let fut = condition();
        async move { fut.await.then_some(()) }
    })
    .await
}

// ---- query-status helpers -------------------------------------------------------------

/// The subtask statuses of `task` in a query-status answer.
pub fn subtasks(json: &Value) -> Vec<Value> {
    json["sources"]
        .as_array()
        .map(|sources| {
            sources
                .iter()
                .filter_map(|s| s["subTaskStatus"].as_array())
                .flatten()
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a query-status answer has subtasks, all in `stage` and `unit`, with binlog positions
/// when in Sync.
pub fn all_in(json: &Value, stage: &str, unit: &str) -> bool {
    let subs = subtasks(json);
    json["result"] == true
        && !subs.is_empty()
        && subs.iter().all(|s| {
            s["stage"] == stage
                && s["unit"] == unit
                && (unit != "Sync"
                    || (s["sync"]["masterBinlog"]
                        .as_str()
                        .is_some_and(|b| !b.is_empty())
                        && s["sync"]["syncerBinlog"]
                            .as_str()
                            .is_some_and(|b| !b.is_empty())))
        })
}

pub async fn task_is(cluster: &Cluster, task: &str, stage: &str, unit: &str) -> bool {
    all_in(
        &cluster.dmctl(&["query-status", task]).await.json,
        stage,
        unit,
    )
}

pub async fn wait_task(cluster: &Cluster, task: &str, stage: &str, unit: &str, timeout: Duration) {
    let what = format!("task {task} {stage} in unit {unit}");
    let mut last = None;
    let reached = try_eventually(timeout, CTL_POLL, async || {
        let out = cluster.dmctl(&["query-status", task]).await;
        if all_in(&out.json, stage, unit) {
            return Some(());
        }
        last = Some(out);
        None
    })
    .await;
    if reached.is_none() {
        let out = last.expect("query-status ran");
        panic!("timed out after {timeout:?} waiting for {what}:\n{out}");
    }
}

pub fn assert_ok(out: &CtlOut, what: &str) {
    assert!(out.ok() && out.code == 0, "{what}: {out}");
}

/// `COUNT(*)` of `db.table` on the downstream (0 when the table does not exist yet).
pub async fn down_count(db: &str, table: &str) -> u64 {
    let rows = shared_downstream()
        .query_rows(&format!(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '{db}' AND table_name = '{table}'"
        ))
        .await;
    if rows.first().and_then(|r| r.get::<u64, _>(0)).unwrap_or(0) == 0 {
        return 0;
    }
    shared_downstream()
        .query_rows(&format!("SELECT COUNT(*) FROM `{db}`.`{table}`"))
        .await
        .first()
        .and_then(|r| r.get(0))
        .unwrap_or(0)
}
