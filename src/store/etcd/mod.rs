//! etcd access: connecting with a deadline, health, DM's key catalogue ([`keys`]) and the
//! etcd member a dm-master runs as a child process ([`member`]).

pub mod ha;
pub mod keys;
pub mod member;
pub mod optimism;
pub mod shardddl;

use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions};

use crate::error::{DmError, codes};

/// Connects to `endpoints` and checks the cluster answers, retrying until `deadline` passes.
pub async fn connect(endpoints: &[String], deadline: Duration) -> Result<Client, DmError> {
    let start = Instant::now();
    let opts = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_timeout(Duration::from_secs(5));
    let mut pause = Duration::from_millis(50);
    loop {
        let attempt = async {
            let mut c = Client::connect(endpoints, Some(opts.clone())).await?;
            c.status().await?;
            Ok::<_, etcd_client::Error>(c)
        };
        match attempt.await {
            Ok(c) => return Ok(c),
            Err(e) if start.elapsed() >= deadline => {
                return Err(DmError::new(
                    &codes::HA_FAIL_TXN_OPERATION,
                    format!(
                        "etcd at {} did not answer within {:?}",
                        endpoints.join(","),
                        deadline
                    ),
                )
                .with_cause(e));
            }
            Err(e) => {
                tracing::debug!(error = %e, "etcd not ready yet");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// Health of the etcd cluster as seen by one client: the answering member's id, the leader's
/// id and the store's revision.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EtcdHealth {
    pub healthy: bool,
    pub member_id: u64,
    pub leader_id: u64,
    pub db_size: i64,
    pub error: Option<String>,
}

/// Asks the cluster for its status.
pub async fn health(client: &mut Client) -> EtcdHealth {
    match client.status().await {
        Ok(s) => EtcdHealth {
            healthy: s.leader() != 0,
            member_id: s.header().map_or(0, |h| h.member_id()),
            leader_id: s.leader(),
            db_size: s.db_size(),
            error: None,
        },
        Err(e) => EtcdHealth {
            healthy: false,
            member_id: 0,
            leader_id: 0,
            db_size: 0,
            error: Some(e.to_string()),
        },
    }
}
