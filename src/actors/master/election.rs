//! The Election actor: every dm-master campaigns on `/dm-master/leader` (etcd's election
//! algorithm, as DM's embedded-etcd election does); the winner runs the [`SchedulerActor`].
//!
//! - **Term:** grant a lease of `ttl`, keep it alive every `ttl/3`, create the candidate key
//!   `/dm-master/leader/<lease hex>` (value DM's `{"id": name, "addr": advertise-addr}`) and
//!   wait until every older candidate is gone. Waiting is a read plus a watch, never a
//!   blocking RPC, so the client's request timeout does not cut it short.
//! - **Won:** the Scheduler is rebuilt from etcd with the election key as its write fence,
//!   then published through [`MasterHandle::set_scheduler`]. A failed rebuild ends the term.
//! - **Term end** (lease expired or not renewed in time, election key deleted, etcd errors,
//!   Scheduler deposed): the Scheduler is stopped at once, the lease revoked, and a new term
//!   starts after [`Backoff::infrastructure`].
//! - **Followers** read the current leader (the oldest candidate) every 500 ms and publish it
//!   with [`MasterHandle::set_leader`].
//! - **Stop** (the actor stops, or [`Resign`]): the Scheduler stops and the lease is revoked,
//!   so a follower wins at once instead of after `ttl`.
//!
//! Children: the Scheduler, the Pessimist and the Optimist (one each per won term; the
//! Election alone holds their addresses).

use std::time::Duration;

use actix::prelude::*;
use etcd_client::Client;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tracing::{info, warn};

use super::optimist::OptimistActor;
use super::pessimist::PessimistActor;
use super::scheduler::SchedulerActor;
use super::{LeaderInfo, MasterHandle};
use crate::backoff::Backoff;
use crate::error::{DmError, codes};
use crate::messages::master::{Resign, SchedulerStopped, StopScheduler};
use crate::store::etcd::ha::{self, Fence};
use crate::store::etcd::keys;

/// How often followers re-read the leader.
const OBSERVE_INTERVAL: Duration = Duration::from_millis(500);
/// Longest a resign waits for etcd.
const RESIGN_TIMEOUT: Duration = Duration::from_secs(2);

/// DM's election value (`pkg/election.CampaignerInfo`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CampaignerInfo {
    id: String,
    addr: String,
}

/// Decodes an election value: DM's `{"id", "addr"}` (or `{"name", "addr"}`).
pub fn decode_leader(value: &[u8]) -> Option<LeaderInfo> {
    if let Ok(c) = serde_json::from_slice::<CampaignerInfo>(value) {
        return Some(LeaderInfo {
            name: c.id,
            addr: c.addr,
        });
    }
    serde_json::from_slice::<LeaderInfo>(value).ok()
}

/// The current leader of the dm-master election, read from etcd.
pub async fn current_leader(client: &mut Client) -> Result<Option<LeaderInfo>, DmError> {
    Ok(ha::election_leader(client, keys::MASTER_LEADER)
        .await?
        .and_then(|(_, _, _, v)| decode_leader(&v)))
}

/// One campaign incarnation.
struct Term {
    generation: u64,
    task: SpawnHandle,
    lease: Option<i64>,
    fence: Option<Fence>,
    scheduler: Option<Addr<SchedulerActor>>,
    pessimist: Option<Addr<PessimistActor>>,
    optimist: Option<Addr<OptimistActor>>,
}

/// Campaigns for leadership and runs the Scheduler while this master leads.
pub struct ElectionActor {
    handle: MasterHandle,
    ttl: Duration,
    backoff: Backoff,
    generation: u64,
    term: Option<Term>,
    /// Set once resigning: no new term starts.
    resigned: bool,
}

impl ElectionActor {
    /// `ttl`: the lease TTL (the config's `election-ttl`; DM uses 60 s).
    pub fn new(handle: MasterHandle, ttl: Duration) -> Self {
        Self {
            handle,
            ttl: ttl.max(Duration::from_secs(1)),
            backoff: Backoff::infrastructure(),
            generation: 0,
            term: None,
            resigned: false,
        }
    }

    fn me(&self) -> LeaderInfo {
        LeaderInfo {
            name: self.handle.name().to_string(),
            addr: self.handle.advertise_addr().to_string(),
        }
    }

    fn campaign(&mut self, ctx: &mut Context<Self>) {
        if self.resigned || self.term.is_some() {
            return;
        }
        self.generation += 1;
        let generation = self.generation;
        let value = serde_json::to_vec(&CampaignerInfo {
            id: self.handle.name().to_string(),
            addr: self.handle.advertise_addr().to_string(),
        })
        .expect("election value serializes");
        let fut = run_term(
            self.handle.etcd(),
            value,
            self.ttl,
            generation,
            ctx.address(),
        );
        let task = ctx.spawn(fut.into_actor(self).map(move |reason, act, ctx| {
            act.end_term(ctx, generation, reason);
        }));
        self.term = Some(Term {
            generation,
            task,
            lease: None,
            fence: None,
            scheduler: None,
            pessimist: None,
            optimist: None,
        });
        info!(name = %self.handle.name(), generation, "campaigning");
    }

    fn current(&mut self, generation: u64) -> Option<&mut Term> {
        self.term.as_mut().filter(|t| t.generation == generation)
    }

    /// Stops the term's Scheduler and returns a future revoking its lease.
    fn close_term(&mut self, ctx: &mut Context<Self>, reason: &str) -> Option<(i64, bool)> {
        let term = self.term.take()?;
        ctx.cancel_future(term.task);
        let was_leader = term.fence.is_some();
        if let Some(s) = term.scheduler {
            s.do_send(StopScheduler {
                reason: reason.to_string(),
            });
        }
        if let Some(p) = term.pessimist {
            p.do_send(StopScheduler {
                reason: reason.to_string(),
            });
        }
        if let Some(o) = term.optimist {
            o.do_send(StopScheduler {
                reason: reason.to_string(),
            });
        }
        self.handle.set_scheduler(None);
        self.handle.set_pessimist(None);
        self.handle.set_optimist(None);
        if self
            .handle
            .leader()
            .is_some_and(|l| l.name == self.handle.name())
        {
            self.handle.set_leader(None);
        }
        term.lease.map(|l| (l, was_leader))
    }

    /// Ends the term `generation` (if current) and schedules the next one.
    fn end_term(&mut self, ctx: &mut Context<Self>, generation: u64, reason: DmError) {
        let Some(term) = self.current(generation) else {
            return;
        };
        let was_leader = term.fence.is_some();
        let closed = self.close_term(ctx, &reason.message);
        if let Some((lease, _)) = closed {
            actix_rt::spawn(revoke(self.handle.etcd(), lease));
        }
        if was_leader {
            warn!(name = %self.handle.name(), code = reason.code, error = %reason.chain(), "leadership lost; scheduler stopped");
        } else {
            warn!(name = %self.handle.name(), code = reason.code, error = %reason.chain(), "campaign failed");
        }
        if !self.resigned {
            let delay = self.backoff.next_delay();
            info!(name = %self.handle.name(), delay_ms = delay.as_millis() as u64, "campaigning again after backoff");
            ctx.run_later(delay, |act, ctx| act.campaign(ctx));
        }
    }

    /// Gives up leadership for good; the returned future revokes the lease.
    fn resign_now(&mut self, ctx: &mut Context<Self>) -> impl Future<Output = ()> + 'static {
        self.resigned = true;
        let closed = self.close_term(ctx, "dm-master shutting down");
        let client = self.handle.etcd();
        let name = self.handle.name().to_string();
        async move {
            if let Some((lease, was_leader)) = closed {
                revoke(client, lease).await;
                info!(name = %name, was_leader, "resigned from the election");
            }
        }
    }
}

/// Revokes `lease` (best effort, bounded): its election key goes with it.
async fn revoke(mut client: Client, lease: i64) {
    match tokio::time::timeout(RESIGN_TIMEOUT, client.lease_revoke(lease)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => warn!(lease, error = %e, "revoking the election lease failed"),
        Err(_) => warn!(lease, "revoking the election lease timed out"),
    }
}

fn lease_err(what: &str) -> DmError {
    DmError::new(&codes::HA_FAIL_LEASE_OPERATION, what.to_string())
}

/// One term: lease, candidate key, wait for the turn, then hold until lost. Returns why it
/// ended.
async fn run_term(
    mut client: Client,
    value: Vec<u8>,
    ttl: Duration,
    generation: u64,
    me: Addr<ElectionActor>,
) -> DmError {
    let lease = match client.lease_grant(ttl.as_secs().max(1) as i64, None).await {
        Ok(r) => r.id(),
        Err(e) => return lease_err("granting the election lease").with_cause(e),
    };
    me.do_send(LeaseGranted { generation, lease });
    let keep = keep_lease(client.clone(), lease, ttl);
    let hold = async {
        let fence = match ha::election_join(&mut client, keys::MASTER_LEADER, lease, &value).await {
            Ok(f) => f,
            Err(e) => return e,
        };
        if let Err(e) = ha::election_wait_turn(&mut client, keys::MASTER_LEADER, &fence).await {
            return e;
        }
        me.do_send(Won {
            generation,
            fence: fence.clone(),
        });
        ha::wait_fence_lost(&mut client, &fence).await
    };
    tokio::select! {
        e = keep => e,
        e = hold => e,
    }
}

/// Renews `lease` every `ttl/3`; returns once it expired or could not be renewed before its
/// deadline.
async fn keep_lease(mut client: Client, lease: i64, ttl: Duration) -> DmError {
    let mut deadline = Instant::now() + ttl;
    let mut stream = None;
    loop {
        tokio::time::sleep(ttl / 3).await;
        let sent = Instant::now();
        if sent >= deadline {
            return lease_err("the election lease was not renewed in time");
        }
        if stream.is_none() {
            stream = tokio::time::timeout(deadline - sent, client.lease_keep_alive(lease))
                .await
                .ok()
                .and_then(Result::ok);
        }
        let Some((keeper, responses)) = stream.as_mut() else {
            continue;
        };
        let renewed =
            tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), async {
                keeper.keep_alive().await?;
                responses.message().await
            })
            .await;
        match renewed {
            Ok(Ok(Some(r))) if r.ttl() <= 0 => return lease_err("the election lease expired"),
            Ok(Ok(Some(r))) => deadline = sent + Duration::from_secs(r.ttl() as u64),
            Ok(Ok(None)) | Ok(Err(_)) | Err(_) => stream = None,
        }
    }
}

/// run_term → actor: the term's lease.
#[derive(Message)]
#[rtype(result = "()")]
struct LeaseGranted {
    generation: u64,
    lease: i64,
}

/// run_term → actor: this term leads.
#[derive(Message)]
#[rtype(result = "()")]
struct Won {
    generation: u64,
    fence: Fence,
}

/// Reads the leader every [`OBSERVE_INTERVAL`] and publishes it.
async fn observe(handle: MasterHandle) {
    let mut client = handle.etcd();
    let mut failing = false;
    loop {
        match current_leader(&mut client).await {
            Ok(leader) => {
                failing = false;
                if handle.leader() != leader {
                    info!(name = %handle.name(), leader = ?leader, "leader changed");
                    handle.set_leader(leader);
                }
            }
            Err(e) if !failing => {
                failing = true;
                warn!(name = %handle.name(), error = %e.chain(), "reading the leader failed");
            }
            Err(_) => {}
        }
        tokio::time::sleep(OBSERVE_INTERVAL).await;
    }
}

impl Actor for ElectionActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        info!(actor = "Election", parent = "dm-master", reason = "etcd ready", name = %self.handle.name(), ttl_s = self.ttl.as_secs(), "actor started");
        ctx.spawn(observe(self.handle.clone()).into_actor(self));
        self.campaign(ctx);
    }

    fn stopping(&mut self, ctx: &mut Context<Self>) -> Running {
        // Dropped with its runtime (no reactor left): nothing can reach etcd any more; the
        // lease then expires after `ttl`. Send [`Resign`] before stopping the System instead.
        if self.resigned || tokio::runtime::Handle::try_current().is_err() {
            return Running::Stop;
        }
        let fut = self.resign_now(ctx);
        ctx.wait(fut.into_actor(self).map(|(), _, ctx| ctx.stop()));
        Running::Continue
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        info!(actor = "Election", parent = "dm-master", reason = "stopped", name = %self.handle.name(), "actor stopped");
    }
}

impl Handler<LeaseGranted> for ElectionActor {
    type Result = ();
    fn handle(&mut self, m: LeaseGranted, _: &mut Context<Self>) {
        match self.current(m.generation) {
            Some(t) => t.lease = Some(m.lease),
            None => {
                actix_rt::spawn(revoke(self.handle.etcd(), m.lease));
            }
        }
    }
}

impl Handler<Won> for ElectionActor {
    type Result = ();
    fn handle(&mut self, m: Won, ctx: &mut Context<Self>) {
        let generation = m.generation;
        let Some(term) = self.current(generation) else {
            return;
        };
        term.fence = Some(m.fence.clone());
        info!(name = %self.handle.name(), generation, "won the election; rebuilding the scheduler");
        let (etcd, parent) = (self.handle.etcd(), ctx.address().recipient());
        let fut = async move {
            let scheduler = SchedulerActor::start_rebuilt(
                etcd.clone(),
                Some(m.fence.clone()),
                Some(parent.clone()),
            )
            .await?;
            let stop_all = |reason: &str, actors: &[Recipient<StopScheduler>]| {
                for a in actors {
                    a.do_send(StopScheduler {
                        reason: reason.to_string(),
                    });
                }
            };
            let pessimist = match PessimistActor::start_rebuilt(
                etcd.clone(),
                Some(m.fence.clone()),
                Some(parent.clone()),
            )
            .await
            {
                Ok(p) => p,
                Err(e) => {
                    stop_all("the pessimist could not start", &[scheduler.recipient()]);
                    return Err(e);
                }
            };
            match OptimistActor::start_rebuilt(etcd, Some(m.fence), Some(parent)).await {
                Ok(o) => Ok((scheduler, pessimist, o)),
                Err(e) => {
                    stop_all(
                        "the optimist could not start",
                        &[scheduler.recipient(), pessimist.recipient()],
                    );
                    Err(e)
                }
            }
        };
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            let me = act.me();
            match (res, act.current(generation)) {
                (Ok((addr, pessimist, optimist)), Some(term)) => {
                    term.scheduler = Some(addr.clone());
                    term.pessimist = Some(pessimist.clone());
                    term.optimist = Some(optimist.clone());
                    act.handle.set_scheduler(Some(addr));
                    act.handle.set_pessimist(Some(pessimist));
                    act.handle.set_optimist(Some(optimist));
                    act.handle.set_leader(Some(me));
                    act.backoff.mark_started();
                    info!(name = %act.handle.name(), generation, "leading; scheduler, pessimist and optimist running");
                }
                (Ok((addr, pessimist, optimist)), None) => {
                    let stop = || StopScheduler {
                        reason: "term already ended".into(),
                    };
                    addr.do_send(stop());
                    pessimist.do_send(stop());
                    optimist.do_send(stop());
                }
                (Err(e), _) => act.end_term(
                    ctx,
                    generation,
                    e.with_cause_text("rebuilding the scheduler failed"),
                ),
            }
        }));
    }
}

impl Handler<SchedulerStopped> for ElectionActor {
    type Result = ();
    fn handle(&mut self, m: SchedulerStopped, ctx: &mut Context<Self>) {
        // Only the current term's Scheduler ends the term (an old one may report late).
        let current = self
            .term
            .as_ref()
            .filter(|t| t.fence.is_some() && t.fence == m.fence)
            .map(|t| t.generation);
        if let Some(generation) = current {
            let e = DmError::new(
                &codes::SCHEDULER_NOT_STARTED,
                format!("scheduler stopped: {}", m.reason),
            );
            self.end_term(ctx, generation, e);
        }
    }
}

impl Handler<Resign> for ElectionActor {
    type Result = ResponseActFuture<Self, ()>;
    fn handle(&mut self, _: Resign, ctx: &mut Context<Self>) -> Self::Result {
        let fut = self.resign_now(ctx);
        Box::pin(fut.into_actor(self).map(|(), _, ctx| ctx.stop()))
    }
}
