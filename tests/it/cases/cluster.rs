//! End to end through the binaries: dm-master(s) with their etcd members, dm-workers and dmctl,
//! migrating the shared MariaDB upstream into the shared downstream.
//!
//! - `task_lifecycle_through_dmctl`: operate-source, start-task (all), query-status through the
//!   units to Sync, pause (no rows arrive), resume (they arrive), stop (nothing runs any more).
//! - `leader_failover_keeps_replication_and_dmctl_working`: 3 masters, kill -9 the leader.
//! - `worker_failover_rebinds_source_and_resumes_from_checkpoint`: kill -9 the bound worker.
//! - `bad_tasks_are_rejected_with_codes_and_leave_etcd_unchanged`: dmctl and the OpenAPI.
//! - `openapi_source_and_task_lifecycle`: source from a JSON object, task created Stopped,
//!   start, stop, delete, cluster listings, the spec and docs page.
//!
//! Cluster tests run one at a time (`serial`): elections and keepalives on a loaded 2-core
//! machine must not be starved by another cluster.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::cluster::{
    CTL_POLL, Cluster, ClusterSpec, Migration, Writer, all_in, assert_ok, assert_stays, dmctl_at,
    down_count, eventually_ctl, eventually_some, leader_at, serial, subtasks, task_is, wait_task,
};
use crate::harness::{shared_downstream, shared_upstream, try_eventually};

/// Tables with a primary key: `id` auto-increment, `v`, `pad`.
async fn create_keyed(m: &Migration, table: &str, rows: u32) {
    m.up.exec(&format!(
        "CREATE TABLE `{table}` (id INT AUTO_INCREMENT PRIMARY KEY, v INT NOT NULL, pad VARCHAR(40) NOT NULL DEFAULT '');
         INSERT INTO `{table}` (v, pad) SELECT seq, REPEAT(CHAR(97 + seq % 26), 30) FROM seq_1_to_{rows}"
    ))
    .await;
}

/// A table without any key (rows may repeat): replay must neither lose nor double them.
async fn create_keyless(m: &Migration, table: &str, rows: u32) {
    m.up.exec(&format!(
        "CREATE TABLE `{table}` (id INT NULL, v INT NOT NULL);
         INSERT INTO `{table}` (id, v) SELECT seq % 7, seq % 3 FROM seq_1_to_{rows}"
    ))
    .await;
}

/// Creates the migration's source and starts its task; returns after the task is in Sync.
async fn create_source_and_start(cluster: &Cluster, m: &Migration) -> BTreeSet<String> {
    let out = cluster
        .dmctl(&["operate-source", "create", &m.source_file])
        .await;
    assert_ok(&out, "operate-source create");
    assert_eq!(
        out.json["sources"][0]["source"],
        m.source_id.as_str(),
        "{out}"
    );
    let out = cluster.dmctl(&["start-task", &m.task_file]).await;
    assert_ok(&out, "start-task");
    // Record the units query-status reports on the way to Sync.
    let mut units = BTreeSet::new();
    let mut last = None;
    let in_sync = try_eventually(Duration::from_secs(90), CTL_POLL / 2, async || {
        let out = cluster.dmctl(&["query-status", &m.task_name]).await;
        for s in subtasks(&out.json) {
            if let Some(u) = s["unit"].as_str() {
                units.insert(u.to_string());
            }
        }
        if all_in(&out.json, "Running", "Sync") {
            return Some(());
        }
        last = Some(out);
        None
    })
    .await;
    if in_sync.is_none() {
        let out = last.expect("query-status ran");
        panic!("task never reached Sync (units seen {units:?}):\n{out}");
    }
    units
}

#[tokio::test]
async fn task_lifecycle_through_dmctl() {
    let _one_cluster_at_a_time = serial().await;
    let cluster = Cluster::start(ClusterSpec::default()).await;
    let m = Migration::new(&cluster, "cl_life", "all").await;
    // The source logs in with a real password, which must never be shown.
    let user = format!("cl_{:06x}", rand::random::<u32>() & 0xff_ffff);
    let password = format!("Pw-{:016x}", rand::random::<u64>());
    shared_upstream()
        .exec(&format!(
            "CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{password}'; \
             GRANT SELECT, RELOAD, LOCK TABLES, REPLICATION SLAVE, BINLOG MONITOR, SHOW VIEW \
             ON *.* TO '{user}'@'127.0.0.1'"
        ))
        .await;
    let yaml = std::fs::read_to_string(&m.source_file).unwrap();
    let yaml = yaml
        .replace("user: \"root\"", &format!("user: \"{user}\""))
        .replace("password: \"\"", &format!("password: \"{password}\""));
    assert!(yaml.contains(&password));
    std::fs::write(&m.source_file, yaml).unwrap();
    create_keyed(&m, "t1", 20_000).await;
    create_keyed(&m, "t2", 500).await;
    let writer = Writer::start(m.db(), &["t1", "t2"]);
    let units = create_source_and_start(&cluster, &m).await;
    eprintln!("units seen by query-status before Sync: {units:?}");
    assert!(
        units.contains("Load") || units.contains("Dump"),
        "query-status showed the full-migration units before Sync: {units:?}"
    );
    assert_eq!(
        cluster.bound_worker(&m.source_id).await.as_deref(),
        Some("w1")
    );
    // The writes overlapped the full migration and go on into Sync.
    let at_sync = writer.rounds();
    assert!(at_sync > 0, "no write landed during dump and load");
    eventually_ctl(Duration::from_secs(20), "writes during Sync", || async {
        writer.rounds() > at_sync + 5
    })
    .await;
    writer.stop().await;
    m.wait_converged(&cluster, &["t1", "t2"], Duration::from_secs(60))
        .await;

    // The bare query-status is DM's task summary.
    let out = cluster.dmctl(&["query-status"]).await;
    assert_ok(&out, "query-status");
    let task = out.json["tasks"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["taskName"] == m.task_name.as_str()))
        .unwrap_or_else(|| panic!("task listed: {out}"));
    assert_eq!(task["taskStatus"], "Running", "{out}");
    assert_eq!(task["sources"][0], m.source_id.as_str(), "{out}");

    // `-s` limits query-status to a source; `operate-source show` lists the source.
    let out = cluster
        .dmctl(&["query-status", "-s", &m.source_id, &m.task_name])
        .await;
    assert!(all_in(&out.json, "Running", "Sync"), "{out}");
    let out = cluster.dmctl(&["operate-source", "show"]).await;
    assert_ok(&out, "operate-source show");
    assert_eq!(
        out.json["sources"][0]["source"],
        m.source_id.as_str(),
        "{out}"
    );

    // Pause every task of the source (no task name): the stage is Paused and new rows stay
    // upstream.
    let out = cluster.dmctl(&["pause-task", "-s", &m.source_id]).await;
    assert_ok(&out, "pause-task -s");
    assert_eq!(out.json["tasks"][0]["task"], m.task_name.as_str(), "{out}");
    assert_eq!(out.json["tasks"][0]["op"], "Pause", "{out}");
    eventually_ctl(Duration::from_secs(20), "task Paused", || {
        let cluster = &cluster;
        let task = &m.task_name;
        async move {
            let out = cluster.dmctl(&["query-status", task]).await;
            let subs = subtasks(&out.json);
            !subs.is_empty() && subs.iter().all(|s| s["stage"] == "Paused")
        }
    })
    .await;
    let before = down_count(m.db(), "t2").await;
    m.up.exec("INSERT INTO t2 (v) SELECT seq FROM seq_1_to_25")
        .await;
    assert_stays(
        Duration::from_secs(3),
        "no row arrives while paused",
        || async { down_count(m.db(), "t2").await == before },
    )
    .await;

    // Resume (by task file): they arrive.
    assert_ok(
        &cluster.dmctl(&["resume-task", &m.task_file]).await,
        "resume-task",
    );
    wait_task(
        &cluster,
        &m.task_name,
        "Running",
        "Sync",
        Duration::from_secs(30),
    )
    .await;
    m.wait_converged(&cluster, &["t1", "t2"], Duration::from_secs(30))
        .await;

    // The password is in no answer (dmctl, OpenAPI), no log, and in etcd only in the values
    // the worker must read (the source and subtask configs, as in DM; encrypt it with
    // `dmctl encrypt` and `secret-key-path` to keep it out of those too).
    let mut answers = String::new();
    for args in [
        vec!["operate-source", "show"],
        vec!["operate-source", "show", "-s", &m.source_id],
        vec!["query-status", &m.task_name],
        vec!["query-status"],
        vec!["list-member"],
    ] {
        answers.push_str(&cluster.dmctl(&args).await.stdout);
    }
    let api = format!("http://{}/api/v1", cluster.masters[0].addr);
    for path in [
        "/sources?with_status=true".to_string(),
        format!("/sources/{}?with_status=true", m.source_id),
        format!("/tasks/{}?with_status=true", m.task_name),
        "/tasks".to_string(),
    ] {
        answers.push_str(
            &reqwest::get(format!("{api}{path}"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        );
    }
    assert!(answers.contains(&m.source_id), "the answers were read");
    assert!(
        !answers.contains(&password),
        "a password in an answer:\n{answers}"
    );
    assert!(
        !cluster.logs(100_000).contains(&password),
        "a password in a log"
    );
    let mut etcd = cluster.etcd().await;
    let all = etcd
        .get("/", Some(etcd_client::GetOptions::new().with_prefix()))
        .await
        .unwrap();
    let mut in_source_config = false;
    for kv in all.kvs() {
        let (k, v) = (
            kv.key_str().unwrap_or(""),
            String::from_utf8_lossy(kv.value()),
        );
        in_source_config |=
            k.starts_with("/dm-master/v2/upstream/config/") && v.contains(&password);
        if v.contains(&password) {
            assert!(
                k.starts_with("/dm-master/v2/upstream/config/")
                    || k.starts_with("/dm-master/upstream/subtask/"),
                "a password in etcd under {k}"
            );
        }
    }
    assert!(in_source_config, "the etcd scan saw the source config");

    // Stop: the task is gone and no syncer runs. Before, the worker's own status lists it.
    let w1 = cluster.worker("w1");
    let own = w1
        .internal_status()
        .await
        .expect("worker /internal/v1/status");
    assert!(
        own["result"] == true
            && own["subTaskStatus"]
                .as_array()
                .is_some_and(|subs| subs.iter().any(|s| s["name"] == m.task_name.as_str())),
        "the worker runs the subtask before stop-task: {own}"
    );
    assert_ok(
        &cluster.dmctl(&["stop-task", &m.task_name]).await,
        "stop-task",
    );
    eventually_ctl(
        Duration::from_secs(20),
        "query-status says the task does not exist",
        || async {
            let out = cluster.dmctl(&["query-status", &m.task_name]).await;
            !out.ok() && out.code == 1 && subtasks(&out.json).is_empty()
        },
    )
    .await;
    eventually_ctl(
        Duration::from_secs(20),
        "the worker lists no subtask",
        || async {
            w1.internal_status().await.is_some_and(|s| {
                s["result"] == true
                    && s["subTaskStatus"]
                        .as_array()
                        .is_none_or(|subs| subs.is_empty())
            })
        },
    )
    .await;
    let before = down_count(m.db(), "t2").await;
    m.up.exec("INSERT INTO t2 (v) SELECT seq FROM seq_1_to_25")
        .await;
    assert_stays(
        Duration::from_secs(3),
        "no row arrives after stop-task",
        || async { down_count(m.db(), "t2").await == before },
    )
    .await;
}

#[tokio::test]
async fn leader_failover_keeps_replication_and_dmctl_working() {
    let _one_cluster_at_a_time = serial().await;
    let mut cluster = Cluster::start(ClusterSpec {
        masters: 3,
        workers: 2,
        keepalive_ttl: 10,
    })
    .await;
    let m = Migration::new(&cluster, "cl_ha", "all").await;
    create_keyed(&m, "t1", 1000).await;
    create_source_and_start(&cluster, &m).await;
    let writer = Writer::start(m.db(), &["t1"]);

    let old = cluster
        .leader()
        .await
        .expect("list-member --leader names one");
    cluster.kill9_master(&old);
    let killed = Instant::now();
    let live: Vec<String> = cluster
        .live_masters()
        .iter()
        .map(|n| n.addr.clone())
        .collect();
    assert_eq!(live.len(), 2);
    let new_leader = eventually_some(
        Duration::from_secs(10),
        "a new leader named by the surviving masters",
        || {
            let (live, old) = (&live, &old);
            async move {
                for addr in live {
                    if let Some(l) = leader_at(addr).await.filter(|l| l != old) {
                        return Some(l);
                    }
                }
                None
            }
        },
    )
    .await;
    eprintln!(
        "leader {old} killed; {new_leader} elected after {:?}",
        killed.elapsed()
    );

    // dmctl works through each live master alone.
    for addr in &live {
        eventually_ctl(
            Duration::from_secs(20),
            &format!("query-status through {addr}"),
            || {
                let task = &m.task_name;
                async move {
                    let out = dmctl_at(addr, &["query-status", task]).await;
                    out.ok() && !subtasks(&out.json).is_empty()
                }
            },
        )
        .await;
        let leader = leader_at(addr).await;
        assert_eq!(leader.as_deref(), Some(new_leader.as_str()), "via {addr}");
    }
    // Rows written after the kill arrive.
    m.up.exec("INSERT INTO t1 (v) SELECT seq FROM seq_1_to_50")
        .await;
    writer.stop().await;
    m.wait_converged(&cluster, &["t1"], Duration::from_secs(60))
        .await;
    assert!(
        task_is(&cluster, &m.task_name, "Running", "Sync").await,
        "replication still runs"
    );
}

#[tokio::test]
async fn worker_failover_rebinds_source_and_resumes_from_checkpoint() {
    let _one_cluster_at_a_time = serial().await;
    let mut cluster = Cluster::start(ClusterSpec {
        masters: 1,
        workers: 2,
        keepalive_ttl: 10,
    })
    .await;
    let m = Migration::new(&cluster, "cl_wf", "all").await;
    create_keyed(&m, "t1", 1000).await;
    create_keyless(&m, "nokey", 300).await;
    create_source_and_start(&cluster, &m).await;
    let writer = Writer::start(m.db(), &["t1", "nokey"]);
    // Let some rows replicate through the first worker (and its checkpoint advance).
    let first = down_count(m.db(), "t1").await;
    eventually_ctl(Duration::from_secs(20), "rows replicate", || async {
        down_count(m.db(), "t1").await > first + 20
    })
    .await;

    let bound = cluster
        .bound_worker(&m.source_id)
        .await
        .expect("the source is bound");
    let other = if bound == "w1" { "w2" } else { "w1" };
    cluster.kill9_worker(&bound);
    let killed = Instant::now();
    // Where the dead worker's sync had got to: the new worker must start there.
    let at_kill = m.checkpoint().await.expect("a checkpoint before the kill");
    eventually_ctl(
        Duration::from_secs(15),
        &format!("source rebound from {bound} to {other}"),
        || async { cluster.bound_worker(&m.source_id).await.as_deref() == Some(other) },
    )
    .await;
    eprintln!(
        "{bound} killed; source bound to {other} after {:?}",
        killed.elapsed()
    );
    wait_task(
        &cluster,
        &m.task_name,
        "Running",
        "Sync",
        Duration::from_secs(30),
    )
    .await;
    let out = cluster.dmctl(&["query-status", &m.task_name]).await;
    assert_eq!(
        out.json["sources"][0]["sourceStatus"]["worker"], other,
        "{out}"
    );
    // The new worker resumed from the checkpoint: no dump or load again, and its sync unit
    // started exactly at the dead worker's last checkpoint (read after the kill).
    let log = cluster
        .workers
        .iter()
        .find(|w| w.name == other)
        .expect("the other worker")
        .log_tail(2000);
    assert!(
        !log.contains("unit=Dump") && !log.contains("unit=Load"),
        "{other} dumped or loaded again:\n{log}"
    );
    let started = log
        .lines()
        .find(|l| l.contains("sync unit started"))
        .and_then(|l| {
            let name = l.split("name: \"").nth(1)?.split('"').next()?.to_string();
            let pos: u64 = l.split("pos: ").nth(1)?.split(' ').next()?.parse().ok()?;
            Some((name, pos))
        })
        .unwrap_or_else(|| panic!("{other} logged no sync start position:\n{log}"));
    assert_eq!(
        started, at_kill,
        "{other} started elsewhere than the checkpoint"
    );
    // Writes go on across the kill and after the resume, then converge exactly.
    let resumed = down_count(m.db(), "t1").await;
    eventually_ctl(
        Duration::from_secs(20),
        "rows replicate after resume",
        || async { down_count(m.db(), "t1").await > resumed + 20 },
    )
    .await;
    writer.stop().await;
    m.wait_converged(&cluster, &["t1", "nokey"], Duration::from_secs(60))
        .await;

    // The dead worker can be removed; back online it is free, and the source (its task in
    // Sync) can be transferred to it.
    let out = cluster
        .dmctl(&["offline-member", "--worker", "--name", &bound])
        .await;
    assert_ok(&out, "offline-member --worker");
    assert!(
        cluster
            .workers_listed()
            .await
            .iter()
            .all(|(n, _, _)| *n != bound),
        "{bound} is no longer listed"
    );
    cluster.restart_worker(&bound).await;
    let out = cluster
        .dmctl(&["transfer-source", &m.source_id, &bound])
        .await;
    assert_ok(&out, "transfer-source");
    eventually_ctl(
        Duration::from_secs(15),
        &format!("source transferred to {bound}"),
        || async { cluster.bound_worker(&m.source_id).await.as_deref() == Some(bound.as_str()) },
    )
    .await;
    wait_task(
        &cluster,
        &m.task_name,
        "Running",
        "Sync",
        Duration::from_secs(30),
    )
    .await;
    m.up.exec(
        "INSERT INTO t1 (v) SELECT seq FROM seq_1_to_30; INSERT INTO nokey (v) VALUES (1), (1)",
    )
    .await;
    m.wait_converged(&cluster, &["t1", "nokey"], Duration::from_secs(30))
        .await;
}

/// The etcd keys a task creates; a rejected task must leave them as they were.
async fn task_keys(cluster: &Cluster) -> Vec<(String, String)> {
    use dm::store::etcd::keys;
    let mut etcd = cluster.etcd().await;
    let mut all = Vec::new();
    for prefix in [
        keys::SUBTASK_CONFIG,
        keys::SUBTASK_STAGE,
        keys::TASK_CLI_ARGS,
        keys::OPENAPI_TASK_TEMPLATE,
    ] {
        let resp = etcd
            .get(prefix, Some(etcd_client::GetOptions::new().with_prefix()))
            .await
            .unwrap_or_else(|e| panic!("etcd get {prefix}: {e}"));
        for kv in resp.kvs() {
            all.push((
                kv.key_str().unwrap_or_default().to_string(),
                kv.value_str().unwrap_or_default().to_string(),
            ));
        }
    }
    all
}

#[tokio::test]
async fn bad_tasks_are_rejected_with_codes_and_leave_etcd_unchanged() {
    let _one_cluster_at_a_time = serial().await;
    let cluster = Cluster::start(ClusterSpec::default()).await;
    let m = Migration::new(&cluster, "cl_bad", "all").await;
    let out = cluster
        .dmctl(&["operate-source", "create", &m.source_file])
        .await;
    assert_ok(&out, "operate-source create");
    let good = std::fs::read_to_string(&m.task_file).unwrap();
    let before = task_keys(&cluster).await;

    let unknown_key = good.replacen("task-mode:", "task-mdoe-typo: 1\ntask-mode:", 1);
    let unknown_source = good.replace(
        &format!("source-id: \"{}\"", m.source_id),
        "source-id: \"no-such-source\"",
    );
    let missing_route = good.replace(
        "    block-allow-list: \"ba\"",
        "    block-allow-list: \"ba\"\n    route-rules: [\"no-such-route\"]",
    );
    assert_ne!(unknown_source, good);
    assert_ne!(missing_route, good);
    let cases = [
        ("unknown key", unknown_key, "20901", "task-mdoe-typo"),
        ("unknown source", unknown_source, "20031", "no-such-source"),
        (
            "missing route rule",
            missing_route,
            "20023",
            "no-such-route",
        ),
    ];
    // Every mismatch is collected, so one run reports all of them.
    let mut problems = Vec::new();
    for (what, text, code, needle) in &cases {
        let file = cluster.write_file(&format!("bad-{}.yaml", what.replace(' ', "-")), text);
        for cmd in ["start-task", "check-task"] {
            let out = cluster.dmctl(&[cmd, &file]).await;
            let msg = out.json["msg"].as_str().unwrap_or_default();
            if out.ok()
                || out.code != 1
                || !msg.contains(&format!("code={code}"))
                || !msg.contains(needle)
            {
                problems.push(format!(
                    "dmctl {cmd} ({what}): expected result false, exit 1, code {code} naming `{needle}`; got {out}"
                ));
            }
        }
    }

    // The OpenAPI: the task as a YAML string, and as a JSON task object.
    let http = reqwest::Client::new();
    let url = format!("http://{}/api/v1/tasks", cluster.masters[0].addr);
    for (what, text, code, needle) in &cases {
        let resp = http
            .post(&url)
            .json(&serde_json::json!({ "task": text }))
            .send()
            .await
            .expect("POST /api/v1/tasks");
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        let err_msg = body["error_msg"].as_str().unwrap_or_default();
        let coded = body["error_code"]
            .as_u64()
            .map(|c| c.to_string())
            .as_deref()
            == Some(*code)
            || err_msg.contains(&format!("code={code}"));
        if status != 400 || !coded || !err_msg.contains(needle) {
            problems.push(format!(
                "OpenAPI YAML task ({what}): expected 400 with code {code} naming `{needle}`; got {status} {body}"
            ));
        }
    }
    let json_task = serde_json::json!({
        "task": {
            "name": format!("api-{}", m.db()),
            "task_mode": "all",
            "enhance_online_schema_change": true,
            "meta_schema": format!("dm_meta_{}", m.db()),
            "on_duplicate": "replace",
            "target_config": {
                "host": "127.0.0.1",
                "port": shared_downstream().port(),
                "user": "root",
                "password": ""
            },
            "table_migrate_rule": [{
                "source": { "source_name": "no-such-source", "schema": m.db(), "table": "*" }
            }],
            "source_config": {
                "source_conf": [{ "source_name": "no-such-source" }]
            }
        }
    });
    let resp = http.post(&url).json(&json_task).send().await.unwrap();
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    let err_msg = body["error_msg"].as_str().unwrap_or_default();
    let coded = body["error_code"].as_u64() == Some(20031) || err_msg.contains("code=20031");
    if status != 400 || !coded || !err_msg.contains("no-such-source") {
        problems.push(format!(
            "OpenAPI JSON task (unknown source): expected 400 with code 20031 naming `no-such-source`; got {status} {body}"
        ));
    }

    let after = task_keys(&cluster).await;
    if after != before {
        problems.push(format!(
            "rejected tasks changed etcd: before {before:?}, after {after:?}"
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
    // Sanity: the good task is accepted (so the rejections above were about the edits).
    let out = cluster.dmctl(&["check-task", &m.task_file]).await;
    assert_ok(&out, "check-task of the unedited task");
}

/// One OpenAPI request: `(HTTP status, JSON body or Null)`.
async fn api(method: reqwest::Method, url: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .request(method, url)
        .timeout(Duration::from_secs(30));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("the master answers");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The stage of every subtask of `task` through `GET /api/v1/tasks/{t}/status`.
async fn api_stages(base: &str, task: &str) -> Vec<String> {
    let (_, v) = api(
        reqwest::Method::GET,
        &format!("{base}/tasks/{task}/status"),
        None,
    )
    .await;
    v["data"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s["stage"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn openapi_source_and_task_lifecycle() {
    let _one_cluster_at_a_time = serial().await;
    let cluster = Cluster::start(ClusterSpec::default()).await;
    let m = Migration::new(&cluster, "cl_oapi", "all").await;
    create_keyed(&m, "t", 300).await;
    let base = format!("http://{}/api/v1", cluster.masters[0].addr);
    let (db, task) = (m.db().to_string(), m.task_name.clone());

    // The spec and the docs page.
    let (code, spec) = api(reqwest::Method::GET, &format!("{base}/dm.json"), None).await;
    assert_eq!(code, 200);
    assert!(
        spec["paths"]["/api/v1/tasks/{task-name}/start"]["post"].is_object(),
        "{spec}"
    );
    let docs = reqwest::get(format!("{base}/docs")).await.unwrap();
    assert!(
        docs.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );

    // A source from a JSON Source object; answers never show the password.
    let source = serde_json::json!({"source": {
        "source_name": m.source_id, "host": "127.0.0.1", "port": crate::harness::shared_upstream().port(),
        "user": "root", "password": "", "enable_gtid": false, "enable": true}});
    let (code, v) = api(
        reqwest::Method::POST,
        &format!("{base}/sources"),
        Some(source),
    )
    .await;
    assert_eq!(code, 201, "{v}");
    let (code, v) = api(reqwest::Method::GET, &format!("{base}/sources"), None).await;
    assert_eq!((code, v["total"].as_u64()), (200, Some(1)), "{v}");
    assert_eq!(v["data"][0]["source_name"], m.source_id.as_str(), "{v}");

    // POST /tasks creates the task Stopped (after the precheck): nothing runs yet.
    let yaml = std::fs::read_to_string(&m.task_file).unwrap();
    let (code, v) = api(
        reqwest::Method::POST,
        &format!("{base}/tasks"),
        Some(serde_json::json!({ "task": yaml })),
    )
    .await;
    assert_eq!(code, 201, "{v}");
    assert_eq!(v["check_result"], "pre-check is passed. ", "{v}");
    assert_eq!(v["task"]["name"], task.as_str(), "{v}");
    assert_eq!(api_stages(&base, &task).await, ["Stopped"]);
    assert_stays(
        Duration::from_secs(1),
        "nothing is migrated before start",
        || async { down_count(&db, "t").await == 0 },
    )
    .await;

    // start runs it: the rows and later writes arrive.
    let (code, v) = api(
        reqwest::Method::POST,
        &format!("{base}/tasks/{task}/start"),
        Some(serde_json::json!({ "remove_meta": false })),
    )
    .await;
    assert_eq!(code, 200, "{v}");
    m.up.exec("INSERT INTO t (v) SELECT seq FROM seq_1_to_50")
        .await;
    m.wait_converged(&cluster, &["t"], Duration::from_secs(60))
        .await;
    eventually_some(Duration::from_secs(30), "task Running in Sync", || {
        let (base, task) = (base.clone(), task.clone());
        async move {
            let (_, v) = api(
                reqwest::Method::GET,
                &format!("{base}/tasks/{task}/status"),
                None,
            )
            .await;
            (v["data"][0]["stage"] == "Running" && v["data"][0]["unit"] == "Sync").then_some(())
        }
    })
    .await;

    // stop: stage Stopped, new upstream rows stay upstream.
    let (code, v) = api(
        reqwest::Method::POST,
        &format!("{base}/tasks/{task}/stop"),
        Some(serde_json::json!({})),
    )
    .await;
    assert_eq!(code, 200, "{v}");
    eventually_some(Duration::from_secs(30), "task Stopped", || {
        let (base, task) = (base.clone(), task.clone());
        async move { (api_stages(&base, &task).await == ["Stopped"]).then_some(()) }
    })
    .await;
    let before = down_count(&db, "t").await;
    m.up.exec("INSERT INTO t (v) SELECT seq FROM seq_1_to_20")
        .await;
    assert_stays(
        Duration::from_secs(2),
        "a stopped task applies nothing",
        || async { down_count(&db, "t").await == before },
    )
    .await;

    // Delete the task and the source; both are gone.
    let (code, v) = api(
        reqwest::Method::DELETE,
        &format!("{base}/tasks/{task}"),
        None,
    )
    .await;
    assert!(code == 200 || code == 204, "{code} {v}");
    let (code, _) = api(reqwest::Method::GET, &format!("{base}/tasks/{task}"), None).await;
    assert_eq!(code, 404);
    let (code, v) = api(
        reqwest::Method::DELETE,
        &format!("{base}/sources/{}", m.source_id),
        None,
    )
    .await;
    assert!(code == 200 || code == 204, "{code} {v}");
    let (_, v) = api(reqwest::Method::GET, &format!("{base}/sources"), None).await;
    assert_eq!(v["total"].as_u64(), Some(0), "{v}");

    // The cluster listings.
    let (_, v) = api(
        reqwest::Method::GET,
        &format!("{base}/cluster/masters"),
        None,
    )
    .await;
    assert_eq!(v["data"][0]["leader"], true, "{v}");
    let (_, v) = api(
        reqwest::Method::GET,
        &format!("{base}/cluster/workers"),
        None,
    )
    .await;
    assert_eq!(v["total"].as_u64(), Some(1), "{v}");
}
