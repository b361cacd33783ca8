//! Integration tests: dm-master Election actors over a private etcd (in-process, distinct
//! names and handles): one leader, followers see it, and leadership moves on resign or when
//! the leader's lease dies.

use std::time::Duration;

use actix::{Actor, Addr};
use dm::actors::master::election::{ElectionActor, current_leader};
use dm::actors::master::{LeaderInfo, MasterHandle};
use dm::messages::master::{GetClusterView, Resign};
use dm::store::etcd::{ha, keys};

use crate::harness::{Etcd, eventually_msg};

const TTL: Duration = Duration::from_secs(2);

struct Master {
    handle: MasterHandle,
    election: Addr<ElectionActor>,
}

async fn masters(etcd: &Etcd, n: usize) -> Vec<Master> {
    let mut out = Vec::new();
    for i in 1..=n {
        let handle = MasterHandle::new(
            format!("master-{i}"),
            format!("127.0.0.1:{}", crate::harness::free_port()),
            etcd.client().await,
            None,
        );
        let election = ElectionActor::new(handle.clone(), TTL).start();
        out.push(Master { handle, election });
    }
    out
}

fn info(m: &Master) -> LeaderInfo {
    LeaderInfo {
        name: m.handle.name().into(),
        addr: m.handle.advertise_addr().into(),
    }
}

/// Waits until exactly one of `ms` leads and every one of them sees it; returns its index.
async fn one_leader(ms: &[Master], within: Duration) -> usize {
    eventually_msg(within, "exactly one leader, seen by all", || async {
        let leaders: Vec<usize> = (0..ms.len())
            .filter(|i| ms[*i].handle.is_leader())
            .collect();
        leaders.len() == 1
            && ms
                .iter()
                .all(|m| m.handle.leader() == Some(info(&ms[leaders[0]])))
    })
    .await;
    (0..ms.len())
        .find(|i| ms[*i].handle.is_leader())
        .expect("a leader")
}

#[actix::test]
async fn one_leader_and_failover_on_resign_and_on_lease_loss() {
    let etcd = Etcd::start();
    let mut client = etcd.client().await;
    let mut ms = masters(&etcd, 3).await;

    let first = one_leader(&ms, Duration::from_secs(10)).await;
    // The election key carries DM's value and names the leader.
    assert_eq!(
        current_leader(&mut client).await.unwrap(),
        Some(info(&ms[first]))
    );
    let (key, _, _, value) = ha::election_leader(&mut client, keys::MASTER_LEADER)
        .await
        .unwrap()
        .unwrap();
    assert!(key.starts_with(b"/dm-master/leader/"));
    let v: serde_json::Value = serde_json::from_slice(&value).unwrap();
    assert_eq!(v["id"], ms[first].handle.name());
    assert_eq!(v["addr"], ms[first].handle.advertise_addr());
    // Only the leader runs a Scheduler.
    let sched = ms[first].handle.scheduler().expect("leader's scheduler");
    sched.send(GetClusterView).await.expect("scheduler answers");
    for (i, m) in ms.iter().enumerate() {
        if i != first {
            assert!(
                m.handle.scheduler().is_err(),
                "follower {i} has no scheduler"
            );
        }
    }

    // The leader resigns (process shutdown): another leads within ttl + 2 s.
    let resigned = ms.remove(first);
    resigned
        .election
        .send(Resign)
        .await
        .expect("resign answered");
    assert!(resigned.handle.scheduler().is_err());
    let second = one_leader(&ms, TTL + Duration::from_secs(2)).await;
    eventually_msg(
        Duration::from_secs(5),
        "the resigned election actor to stop",
        || async { !resigned.election.connected() },
    )
    .await;

    // The new leader's lease dies (as after kill -9, without waiting for the ttl): the other
    // one leads within ttl + 2 s, and the old leader's Scheduler is gone.
    let (_, _, lease, _) = ha::election_leader(&mut client, keys::MASTER_LEADER)
        .await
        .unwrap()
        .unwrap();
    client
        .lease_revoke(lease)
        .await
        .expect("revoke the leader's lease");
    let old = &ms[second];
    eventually_msg(
        TTL + Duration::from_secs(2),
        "a new leader after the lease loss",
        || async {
            ms.iter()
                .enumerate()
                .any(|(i, m)| i != second && m.handle.is_leader())
        },
    )
    .await;
    let third = one_leader(&ms, Duration::from_secs(5)).await;
    assert_ne!(third, second);
    assert!(
        old.handle.scheduler().is_err(),
        "deposed leader stopped its scheduler"
    );
    // The deposed master campaigns again and follows.
    assert_eq!(old.handle.leader(), Some(info(&ms[third])));
}

/// The etcd member a dm-master runs dies with it: here the spawning thread exits while the
/// handle is leaked (no kill-on-drop), and the kernel's parent-death signal kills the child.
#[tokio::test]
async fn etcd_member_dies_with_the_thread_that_spawned_it() {
    use dm::store::etcd::member::{EtcdMember, MemberConfig};

    let dir = tempfile::tempdir().unwrap();
    let peer = format!("http://127.0.0.1:{}", crate::harness::free_port());
    let client = format!("http://127.0.0.1:{}", crate::harness::free_port());
    let cfg = MemberConfig {
        binary: crate::harness::process::find_binary("etcd", "etcd-server")
            .display()
            .to_string(),
        name: "pdeathsig".into(),
        data_dir: dir.path().to_path_buf(),
        listen_client_urls: client.clone(),
        advertise_client_urls: client,
        peer_urls: peer.clone(),
        advertise_peer_urls: peer.clone(),
        initial_cluster: format!("pdeathsig={peer}"),
        initial_cluster_state: "new".into(),
        quota_backend_bytes: 1 << 30,
        max_txn_ops: 2048,
        max_request_bytes: 1_572_864,
        auto_compaction_mode: "periodic".into(),
        auto_compaction_retention: "1h".into(),
    };
    let pid = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let m = EtcdMember::spawn(&cfg).expect("spawn etcd");
            let pid = m.pid().expect("child pid");
            std::mem::forget(m);
            pid
        })
    })
    .join()
    .unwrap();
    eventually_msg(
        Duration::from_secs(5),
        "etcd to die with the thread that spawned it",
        || async move { !crate::harness::pid_running(pid) },
    )
    .await;
    // Reap the zombie.
    unsafe { libc::waitpid(pid as libc::pid_t, std::ptr::null_mut(), 0) };
}
