//! dm-master's actors: [`election::ElectionActor`] (campaigns on `/dm-master/leader`) and, on
//! the leader only, its children [`scheduler::SchedulerActor`] and
//! [`pessimist::PessimistActor`] (shard DDL locks). [`MasterHandle`] is what the HTTP
//! handlers hold: who leads, and the Scheduler's address while this master leads.
//!
//! Tree: dm-master binary → EtcdMember (supervises the etcd child, when the master runs one)
//! and Election (one per process, started once etcd answers) → Scheduler and Pessimist (one
//! each per won term; stopped the moment the term ends).

pub mod election;
pub mod member;
pub mod optimist;
pub mod pessimist;
pub mod scheduler;
mod watch;

use std::sync::{Arc, RwLock};

use actix::Addr;
use etcd_client::Client;

use crate::config::SecretKey;
use crate::error::{DmError, codes};
use optimist::OptimistActor;
use pessimist::PessimistActor;
use scheduler::SchedulerActor;

/// The current leader as published under the election key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LeaderInfo {
    pub name: String,
    /// The leader's advertise-addr (host:port of its HTTP API).
    pub addr: String,
}

#[derive(Default)]
struct LeaderState {
    leader: Option<LeaderInfo>,
    scheduler: Option<Addr<SchedulerActor>>,
    pessimist: Option<Addr<PessimistActor>>,
    optimist: Option<Addr<OptimistActor>>,
}

struct Inner {
    name: String,
    advertise_addr: String,
    etcd: Client,
    key: Option<SecretKey>,
    state: RwLock<LeaderState>,
}

/// Shared view of this master: identity, etcd client, leadership and (on the leader) the
/// Scheduler.
#[derive(Clone)]
pub struct MasterHandle {
    inner: Arc<Inner>,
}

impl MasterHandle {
    pub fn new(name: String, advertise_addr: String, etcd: Client, key: Option<SecretKey>) -> Self {
        Self {
            inner: Arc::new(Inner {
                name,
                advertise_addr,
                etcd,
                key,
                state: RwLock::default(),
            }),
        }
    }

    /// This master's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// This master's advertise-addr.
    pub fn advertise_addr(&self) -> &str {
        &self.inner.advertise_addr
    }

    /// A client of the cluster's etcd (cheap to clone).
    pub fn etcd(&self) -> Client {
        self.inner.etcd.clone()
    }

    /// The key that decrypts DM-encrypted passwords (`secret-key-path`), if configured.
    pub fn secret_key(&self) -> Option<&SecretKey> {
        self.inner.key.as_ref()
    }

    /// The leader as last observed (None while an election is under way).
    pub fn leader(&self) -> Option<LeaderInfo> {
        self.inner.state.read().expect("leader lock").leader.clone()
    }

    /// True while this master leads and its Scheduler runs.
    pub fn is_leader(&self) -> bool {
        let st = self.inner.state.read().expect("leader lock");
        st.scheduler.is_some()
            && st
                .leader
                .as_ref()
                .is_some_and(|l| l.name == self.inner.name)
    }

    /// The Scheduler, on the leader; `SCHEDULER_NOT_STARTED` elsewhere.
    pub fn scheduler(&self) -> Result<Addr<SchedulerActor>, DmError> {
        self.inner
            .state
            .read()
            .expect("leader lock")
            .scheduler
            .clone()
            .ok_or_else(|| {
                DmError::new(
                    &codes::SCHEDULER_NOT_STARTED,
                    format!("dm-master `{}` is not the leader", self.inner.name),
                )
            })
    }

    /// The Pessimist, on the leader; `SCHEDULER_NOT_STARTED` elsewhere.
    pub fn pessimist(&self) -> Result<Addr<PessimistActor>, DmError> {
        self.inner
            .state
            .read()
            .expect("leader lock")
            .pessimist
            .clone()
            .ok_or_else(|| {
                DmError::new(
                    &codes::SCHEDULER_NOT_STARTED,
                    format!("dm-master `{}` is not the leader", self.inner.name),
                )
            })
    }

    /// Election: records the Pessimist started (or stopped) with the Scheduler.
    pub fn set_pessimist(&self, pessimist: Option<Addr<PessimistActor>>) {
        self.inner.state.write().expect("leader lock").pessimist = pessimist;
    }

    /// The Optimist, on the leader; `SCHEDULER_NOT_STARTED` elsewhere.
    pub fn optimist(&self) -> Result<Addr<OptimistActor>, DmError> {
        self.inner
            .state
            .read()
            .expect("leader lock")
            .optimist
            .clone()
            .ok_or_else(|| {
                DmError::new(
                    &codes::SCHEDULER_NOT_STARTED,
                    format!("dm-master `{}` is not the leader", self.inner.name),
                )
            })
    }

    /// Election: records the Optimist started (or stopped) with the Scheduler.
    pub fn set_optimist(&self, optimist: Option<Addr<OptimistActor>>) {
        self.inner.state.write().expect("leader lock").optimist = optimist;
    }

    /// Election: records the observed leader.
    pub fn set_leader(&self, leader: Option<LeaderInfo>) {
        self.inner.state.write().expect("leader lock").leader = leader;
    }

    /// Election: records the Scheduler started (or stopped) on winning (or losing).
    pub fn set_scheduler(&self, scheduler: Option<Addr<SchedulerActor>>) {
        self.inner.state.write().expect("leader lock").scheduler = scheduler;
    }
}
