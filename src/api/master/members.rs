//! Cluster membership: masters are the members of the etcd cluster (alive = the member's
//! client URL answers `/health` within a second, as DM checks), the leader is the election's
//! current holder, workers come from the Scheduler. Offlining a master removes its etcd member
//! (only when it no longer answers); offlining a worker is the Scheduler's `OfflineWorker`.

use std::time::Duration;

use futures_util::future::join_all;
use tracing::info;

use super::MasterState;
use crate::error::{DmError, codes};
use crate::messages::master::OfflineWorker;
use crate::messages::rpc::{ListedWorker, MasterInfo};

/// How long a member's `/health` may take before it counts as not alive.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);

fn wanted(names: &[String], name: &str) -> bool {
    names.is_empty() || names.iter().any(|n| n == name)
}

async fn alive(state: &MasterState, client_urls: &[String]) -> bool {
    let Some(url) = client_urls.first() else {
        return false;
    };
    state
        .http
        .get(format!("{}/health", url.trim_end_matches('/')))
        .timeout(HEALTH_TIMEOUT)
        .send()
        .await
        .is_ok()
}

/// Every master (etcd member) named in `names` (empty = all), sorted by name.
pub async fn masters(state: &MasterState, names: &[String]) -> Result<Vec<MasterInfo>, DmError> {
    let mut etcd = state.handle.etcd();
    let list = etcd.member_list().await.map_err(|e| {
        DmError::new(&codes::HA_FAIL_TXN_OPERATION, "listing the etcd members").with_cause(e)
    })?;
    let members: Vec<_> = list
        .members()
        .iter()
        .filter(|m| wanted(names, m.name()))
        .cloned()
        .collect();
    let checks = members
        .iter()
        .map(|m| alive(state, m.client_urls()))
        .collect::<Vec<_>>();
    let alive = join_all(checks).await;
    let mut out: Vec<MasterInfo> = members
        .iter()
        .zip(alive)
        .map(|(m, alive)| MasterInfo {
            name: m.name().to_string(),
            member_id: m.id(),
            alive,
            peer_urls: m.peer_urls().to_vec(),
            client_urls: m.client_urls().to_vec(),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Every worker named in `names` (empty = all), sorted by name, with stage
/// `offline`/`free`/`bound` and its bound source.
pub async fn workers(state: &MasterState, names: &[String]) -> Result<Vec<ListedWorker>, DmError> {
    let view = state.view().await?;
    Ok(view
        .workers
        .values()
        .filter(|w| wanted(names, &w.name))
        .map(|w| ListedWorker {
            name: w.name.clone(),
            addr: w.addr.clone(),
            stage: w.stage.as_str().to_string(),
            source: w.source.clone().unwrap_or_default(),
        })
        .collect())
}

/// Removes the etcd member of master `name`, which must not answer any more.
pub async fn offline_master(state: &MasterState, name: &str) -> Result<(), DmError> {
    let all = masters(state, &[name.to_string()]).await?;
    let Some(m) = all.first() else {
        return Err(DmError::new(
            &codes::MASTER_NOT_EXIST,
            format!("dm-master with name `{name}` does not exist"),
        ));
    };
    if m.alive {
        return Err(DmError::new(
            &codes::MASTER_MEMBER_ALIVE,
            format!(
                "dm-master `{name}` still answers at {}",
                m.client_urls.join(",")
            ),
        ));
    }
    let mut etcd = state.handle.etcd();
    etcd.member_remove(m.member_id).await.map_err(|e| {
        DmError::new(
            &codes::HA_FAIL_TXN_OPERATION,
            format!("removing the etcd member of dm-master `{name}`"),
        )
        .with_cause(e)
    })?;
    info!(master = %name, member_id = m.member_id, "dm-master offlined");
    Ok(())
}

/// Removes worker `name`, which must be offline.
pub async fn offline_worker(state: &MasterState, name: &str) -> Result<(), DmError> {
    state
        .ask(OfflineWorker {
            name: name.to_string(),
        })
        .await?;
    info!(worker = %name, "dm-worker offlined");
    Ok(())
}
