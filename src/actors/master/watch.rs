//! The leader's etcd watch loop, shared by the Scheduler (worker keepalives) and the Pessimist
//! (shard DDL Infos and Operations): watch from a revision, hand every event to the core under
//! its lock, and on any failure (watch closed, canceled or compacted, an event the core could
//! not apply) re-read the whole state after a backoff and watch again from the revision it was
//! read at. Ends when the core is deposed (its fenced writes failed: another leader is in
//! charge).

use std::cell::Cell;
use std::future::Future;
use std::rc::Rc;

use actix::prelude::*;

use etcd_client::{Client, WatchResponse, WatchStream};
use tokio::sync::Mutex;
use tracing::{info, warn};

use crate::backoff::Backoff;
use crate::error::{DmError, codes};
use crate::messages::master::SchedulerStopped;
use crate::store::etcd::ha::Fence;

/// A leader-side core fed by one etcd watch.
pub(crate) trait Watched {
    type Event: std::fmt::Debug;
    /// What is watched, for logs: "keepalive", "pessimistic shard DDL".
    const WHAT: &'static str;

    fn is_deposed(&self) -> bool;
    /// Starts the watch at `from`.
    fn start(client: &mut Client, from: i64) -> impl Future<Output = Result<WatchStream, DmError>>;
    /// The events of one answer; `Err` for a canceled or compacted watch.
    fn events(resp: &WatchResponse) -> Result<Vec<Self::Event>, DmError>;
    fn on_event(&mut self, ev: Self::Event) -> impl Future<Output = Result<(), DmError>>;
    /// Re-reads everything; the revision it was read at.
    fn rebuild(&mut self) -> impl Future<Output = Result<i64, DmError>>;
}

/// Runs `core`'s watch from `from` until the core is deposed.
pub(crate) async fn watch_loop<C: Watched>(core: Rc<Mutex<C>>, mut client: Client, mut from: i64) {
    let mut backoff = Backoff::infrastructure();
    loop {
        let err = match C::start(&mut client, from).await {
            Ok(mut stream) => {
                backoff.mark_started();
                loop {
                    let resp = match stream.message().await {
                        Ok(Some(r)) => r,
                        Ok(None) => {
                            break DmError::new(
                                &codes::HA_FAIL_WATCH_ETCD,
                                format!("{} watch closed", C::WHAT),
                            );
                        }
                        Err(e) => {
                            break DmError::new(
                                &codes::HA_FAIL_WATCH_ETCD,
                                format!("{} watch failed", C::WHAT),
                            )
                            .with_cause(e);
                        }
                    };
                    let events = match C::events(&resp) {
                        Ok(v) => v,
                        Err(e) => break e,
                    };
                    let mut guard = core.lock().await;
                    let mut failed = None;
                    for ev in events {
                        let what = format!("handling {ev:?}");
                        if let Err(e) = guard.on_event(ev).await {
                            failed = Some(e.with_cause_text(what));
                            break;
                        }
                    }
                    if let Some(e) = failed {
                        break e;
                    }
                }
            }
            Err(e) => e,
        };
        if core.lock().await.is_deposed() {
            return;
        }
        warn!(error = %err.chain(), "{} watch interrupted; re-reading the state", C::WHAT);
        loop {
            tokio::time::sleep(backoff.next_delay()).await;
            let mut guard = core.lock().await;
            match guard.rebuild().await {
                Ok(rev) => {
                    from = rev + 1;
                    info!(revision = rev, "{} state re-read", C::WHAT);
                    break;
                }
                Err(e) if guard.is_deposed() => {
                    warn!(error = %e.chain(), "{} re-read stopped: deposed", C::WHAT);
                    return;
                }
                Err(e) => warn!(error = %e.chain(), "re-reading the {} state failed", C::WHAT),
            }
        }
    }
}

/// What a leader-only actor (Scheduler, Pessimist, Optimist) keeps of its term: the etcd
/// client, whether its core found itself deposed, where its watch starts, its fence, the
/// Election to tell when it stops deposed, and why it stopped.
pub(crate) struct LeaderTerm {
    pub client: Client,
    pub deposed: Rc<Cell<bool>>,
    pub watch_from: i64,
    pub fence: Option<Fence>,
    pub parent: Option<Recipient<SchedulerStopped>>,
    pub stop_reason: String,
}

impl LeaderTerm {
    /// A term whose state was read at `revision`.
    pub fn new(
        client: Client,
        deposed: Rc<Cell<bool>>,
        revision: i64,
        fence: Option<Fence>,
        parent: Option<Recipient<SchedulerStopped>>,
    ) -> Self {
        Self {
            client,
            deposed,
            watch_from: revision + 1,
            fence,
            parent,
            stop_reason: "dropped".into(),
        }
    }

    /// `core`'s watch loop from the term's revision (see [`watch_loop`]).
    pub fn watch<C: Watched>(&self, core: &Rc<Mutex<C>>) -> impl Future<Output = ()> + use<C> {
        watch_loop(core.clone(), self.client.clone(), self.watch_from)
    }

    /// Stops the actor once its core found itself deposed.
    pub fn check_deposed<A: Actor<Context = Context<A>>>(&mut self, ctx: &mut Context<A>) {
        if self.deposed.get() {
            self.stop_reason = "election key lost (deposed)".into();
            ctx.stop();
        }
    }

    /// Logs the stop of `actor`; a deposed one tells the Election.
    pub fn stopped(&self, actor: &str) {
        info!(actor, parent = "Election", reason = %self.stop_reason, "actor stopped");
        if self.deposed.get()
            && let Some(p) = &self.parent
        {
            p.do_send(SchedulerStopped {
                reason: self.stop_reason.clone(),
                fence: self.fence.clone(),
            });
        }
    }
}
