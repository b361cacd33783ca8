//! dm-master and its etcd member, through the binary:
//!
//! - `dm_form_masters_serve_etcd_on_master_addr`: three masters from DM-form configs on one
//!   host (the harness's form) serve etcd's client API on their master-addr and advertise it.
//! - `member_that_cannot_start_is_a_coded_exit`: a peer port in use, a data-dir held by another
//!   master: dm-master exits non-zero with 38038 naming the cause.
//! - `killed_member_is_restarted_and_one_that_keeps_dying_ends_the_master`: kill -9 of the
//!   member is healed by a restart; six deaths in a row make the master exit with 38038.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::harness::cluster::{Cluster, ClusterSpec, eventually_some, serial};
use crate::harness::{BinProcess, DM_MASTER, eventually_msg, free_port, pid_running};

#[tokio::test]
async fn dm_form_masters_serve_etcd_on_master_addr() {
    let _one_cluster_at_a_time = serial().await;
    let cluster = Cluster::start(ClusterSpec {
        masters: 3,
        workers: 0,
        keepalive_ttl: 10,
    })
    .await;
    // Each master-addr alone is a working etcd endpoint (gRPC routed to the member).
    for (i, m) in cluster.masters.iter().enumerate() {
        let mut c = etcd_client::Client::connect([m.etcd_url.clone()], None)
            .await
            .unwrap_or_else(|e| panic!("etcd client to {}: {e}", m.addr));
        let key = format!("/test/mux/{i}");
        c.put(key.as_str(), m.name.as_str(), None)
            .await
            .expect("put through master-addr");
        let got = c.get(key.as_str(), None).await.expect("get");
        assert_eq!(got.kvs()[0].value_str().unwrap(), m.name);
    }
    // The member list advertises the master addresses as client URLs (what workers use).
    let mut c = cluster.etcd().await;
    let members = c.member_list().await.expect("member list");
    let advertised: BTreeSet<String> = members
        .members()
        .iter()
        .flat_map(|m| m.client_urls().iter().cloned())
        .collect();
    let expected: BTreeSet<String> = cluster.masters.iter().map(|m| m.etcd_url.clone()).collect();
    assert_eq!(advertised, expected);
    // HTTP keeps working on the same port.
    for m in &cluster.masters {
        let s = cluster.master_status(&m.name).await.expect("/status");
        assert_eq!(s["etcd"]["healthy"], true, "{s}");
        assert_eq!(s["etcd_member"]["state"], "running", "{s}");
    }
}

fn master_args(
    dir: &std::path::Path,
    name: &str,
    peer: u16,
    data_dir: &std::path::Path,
) -> Vec<String> {
    let addr = format!("127.0.0.1:{}", free_port());
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!(
            "name = \"{name}\"\nmaster-addr = \"{addr}\"\nadvertise-addr = \"{addr}\"\n\
             peer-urls = \"127.0.0.1:{peer}\"\ndata-dir = \"{}\"\n",
            data_dir.display()
        ),
    )
    .unwrap();
    vec!["--config".into(), config.display().to_string()]
}

async fn wait_exit(p: &mut BinProcess, what: &str) -> std::process::ExitStatus {
    let mut status = None;
    eventually_msg(Duration::from_secs(30), what, || {
        status = status.or_else(|| p.try_exit());
        let done = status.is_some();
        async move { done }
    })
    .await;
    status.unwrap()
}

#[tokio::test]
async fn member_that_cannot_start_is_a_coded_exit() {
    let dir = tempfile::tempdir().unwrap();
    // The peer port is held by another process (here: this test).
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let peer = held.local_addr().unwrap().port();
    let args = master_args(dir.path(), "busy", peer, &dir.path().join("busy"));
    let mut p = BinProcess::spawn(DM_MASTER, &args, dir.path().join("busy.log"));
    let status = wait_exit(&mut p, "dm-master with a taken peer port to exit").await;
    assert!(!status.success(), "{status:?}");
    let log = p.log_tail(20);
    assert!(log.contains("code=38038"), "{log}");
    assert!(log.contains("port in use"), "{log}");
    assert!(log.contains(&format!("127.0.0.1:{peer}")), "{log}");
    drop(held);

    // A second master on the first one's data-dir fails at once, naming the holder.
    let data = dir.path().join("shared");
    let first_args = master_args(dir.path(), "first", free_port(), &data);
    let mut first = BinProcess::spawn(DM_MASTER, &first_args, dir.path().join("first.log"));
    eventually_msg(
        Duration::from_secs(30),
        "the first master to lock its data-dir",
        || {
            let lock = data.join("dm-master.lock");
            async move { std::fs::read_to_string(&lock).is_ok_and(|s| !s.trim().is_empty()) }
        },
    )
    .await;
    let second_args = master_args(dir.path(), "second", free_port(), &data);
    let mut second = BinProcess::spawn(DM_MASTER, &second_args, dir.path().join("second.log"));
    let status = wait_exit(
        &mut second,
        "the second master on a locked data-dir to exit",
    )
    .await;
    assert!(!status.success());
    let log = second.log_tail(20);
    assert!(log.contains("code=38038"), "{log}");
    assert!(
        log.contains(&format!(
            "locked by another dm-master (pid {})",
            first.pid()
        )),
        "{log}"
    );
    assert!(first.try_exit().is_none(), "the first master keeps running");
}

#[tokio::test]
async fn killed_member_is_restarted_and_one_that_keeps_dying_ends_the_master() {
    let _one_cluster_at_a_time = serial().await;
    let mut cluster = Cluster::start(ClusterSpec {
        masters: 1,
        workers: 0,
        keepalive_ttl: 10,
    })
    .await;
    let name = cluster.masters[0].name.clone();
    let member = |s: &serde_json::Value| {
        (
            s["etcd_member"]["state"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            s["etcd_member"]["pid"].as_u64().unwrap_or_default() as u32,
            s["etcd_member"]["restarts"].as_u64().unwrap_or_default(),
        )
    };
    let first = member(&cluster.master_status(&name).await.expect("/status"));
    assert_eq!(first.0, "running");
    // Kill the member: the master restarts it and keeps serving (a leader again).
    let mut pid = first.1;
    for round in 1..=5u64 {
        crate::harness::process::kill9(pid);
        let next = eventually_some(
            Duration::from_secs(60),
            &format!("the member restarted ({round}) and the master healthy"),
            || {
                let c = &cluster;
                let name = &name;
                async move {
                    let s = c.master_status(name).await?;
                    let m = member(&s);
                    (m.0 == "running" && m.2 == round && m.1 != pid && s["etcd"]["healthy"] == true)
                        .then_some(m.1)
                }
            },
        )
        .await;
        assert!(!pid_running(pid));
        pid = next;
        if round == 1 {
            let leader = cluster.wait_leader(Duration::from_secs(20)).await;
            assert_eq!(leader, name);
        }
    }
    // The sixth death within the window: the master gives up and exits non-zero.
    crate::harness::process::kill9(pid);
    let mut status = None;
    eventually_msg(Duration::from_secs(30), "the master to exit", || {
        status = status.or_else(|| cluster.master_exit(&name));
        let done = status.is_some();
        async move { done }
    })
    .await;
    assert!(!status.unwrap().success(), "{status:?}");
    let log = cluster.masters[0].log_tail(30);
    assert!(log.contains("code=38038"), "{log}");
    assert!(log.contains("the etcd member died 6 times"), "{log}");
}

/// A `kill -9` of dm-master alone (not of its child) takes the etcd member down with it: the
/// kernel's parent-death signal, as DM's embedded etcd dies with its process.
#[tokio::test]
async fn killed_master_takes_its_member_down() {
    let _one_cluster_at_a_time = serial().await;
    let mut cluster = Cluster::start(ClusterSpec {
        masters: 1,
        workers: 0,
        keepalive_ttl: 10,
    })
    .await;
    let name = cluster.masters[0].name.clone();
    let status = cluster.master_status(&name).await.expect("/status");
    let member = status["etcd_member"]["pid"].as_u64().expect("member pid") as u32;
    assert!(pid_running(member));
    let master = cluster.master_pid(&name).expect("master pid");
    crate::harness::process::kill9(master);
    eventually_msg(
        Duration::from_secs(10),
        "the etcd member to die with its dm-master",
        || async move { !pid_running(member) },
    )
    .await;
    // The kernel signals the member (parent-death signal) while the master's threads are still
    // exiting, so the master may become reapable a moment after the member is gone.
    let exited = crate::harness::eventually::try_eventually(
        Duration::from_secs(2),
        Duration::from_millis(20),
        async || cluster.master_exit(&name),
    )
    .await;
    assert!(
        exited.is_some(),
        "the master is gone within 2 s of its member"
    );
}
