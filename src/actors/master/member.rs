//! The EtcdMember actor: supervises the etcd member a dm-master runs as a child process.
//!
//! - **Start-up** is not the actor's: the binary starts the member with
//!   [`EtcdMember::start`], and a member that exits or never answers is a coded error
//!   (`MASTER_START_EMBED_ETCD`, naming the cause) and a non-zero exit of dm-master. The actor
//!   takes over a member that answers.
//! - **A member that dies later** is restarted on the same data-dir and ports after
//!   [`Backoff::infrastructure`] (500 ms doubling to 30 s); while it is down, this master's
//!   etcd calls fail, so it loses leadership if it had it and campaigns again once the member
//!   is back. The data is the member's WAL, so a restart loses nothing.
//! - **Giving up:** more than [`RESTART_BUDGET`] restarts within [`RESTART_WINDOW`] (a member
//!   that keeps dying: a peer mismatch, a full disk) turns into [`MemberState::Failed`]; the
//!   binary then resigns leadership, stops serving and exits non-zero with that error.
//!
//! The state is published on a `watch` channel ([`MemberState`]): the binary waits on it for
//! `Failed`, and `/status` shows it. No other actor talks to this one; stopping it (dropping
//! its address) kills the member.

use std::time::{Duration, Instant};

use actix::prelude::*;
use serde::Serialize;
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::backoff::{Backoff, RestartBudget};
use crate::error::DmError;
use crate::store::etcd::member::{EtcdMember, MemberConfig};

/// Restarts allowed within [`RESTART_WINDOW`] before the master gives up.
pub const RESTART_BUDGET: usize = 5;
/// The window of [`RESTART_BUDGET`].
pub const RESTART_WINDOW: Duration = Duration::from_secs(600);
/// Longest a restarted member may take to answer.
const RESTART_READY: Duration = Duration::from_secs(30);

/// What the member is doing, as published to the binary and `/status`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum MemberState {
    /// Answering; `restarts` counts restarts since dm-master started.
    Running { pid: u32, restarts: u32 },
    /// Died; restarting after a backoff.
    Restarting { restarts: u32, cause: String },
    /// Died too often: dm-master must exit with this error.
    Failed { error: DmError },
    /// Not run by this dm-master (`etcd-endpoints`).
    External,
}

/// Supervises one etcd member (see the module doc).
pub struct EtcdMemberActor {
    cfg: MemberConfig,
    /// The member handed over at start; moved into the exit watcher in `started()`.
    initial: Option<EtcdMember>,
    backoff: Backoff,
    budget: RestartBudget,
    restarts: u32,
    state: watch::Sender<MemberState>,
}

impl EtcdMemberActor {
    /// Takes over `member` (started from `cfg` and answering); returns the actor and the
    /// receiver of its state.
    pub fn new(cfg: MemberConfig, member: EtcdMember) -> (Self, watch::Receiver<MemberState>) {
        let pid = member.pid().unwrap_or_default();
        let (tx, rx) = watch::channel(MemberState::Running { pid, restarts: 0 });
        let mut backoff = Backoff::infrastructure();
        backoff.mark_started();
        (
            Self {
                cfg,
                initial: Some(member),
                backoff,
                budget: RestartBudget::new(RESTART_BUDGET, RESTART_WINDOW),
                restarts: 0,
                state: tx,
            },
            rx,
        )
    }

    fn watch_exit(&mut self, mut member: EtcdMember, ctx: &mut Context<Self>) {
        let name = self.cfg.name.clone();
        let fut = async move {
            let status = member.wait().await;
            member.exit_error(&name, status)
        };
        ctx.spawn(
            fut.into_actor(self)
                .map(|err, act, ctx| act.on_exit(err, ctx)),
        );
    }

    fn on_exit(&mut self, err: DmError, ctx: &mut Context<Self>) {
        if !self.budget.take(Instant::now()) {
            error!(name = %self.cfg.name, restarts = self.restarts, error = %err.chain(), "etcd member keeps dying; dm-master gives up");
            let err = err.with_cause_text(format!(
                "the etcd member died {} times within {:?}",
                RESTART_BUDGET + 1,
                RESTART_WINDOW
            ));
            self.state.send_replace(MemberState::Failed { error: err });
            ctx.stop();
            return;
        }
        let delay = self.backoff.next_delay();
        warn!(name = %self.cfg.name, error = %err.chain(), delay_ms = delay.as_millis() as u64, "etcd member died; restarting");
        self.state.send_replace(MemberState::Restarting {
            restarts: self.restarts,
            cause: err.message.clone(),
        });
        ctx.run_later(delay, |act, ctx| act.restart(ctx));
    }

    fn restart(&mut self, ctx: &mut Context<Self>) {
        self.restarts += 1;
        let cfg = self.cfg.clone();
        let fut = async move { EtcdMember::start(&cfg, RESTART_READY).await };
        ctx.spawn(fut.into_actor(self).map(|res, act, ctx| match res {
            Ok((member, _client)) => {
                let pid = member.pid().unwrap_or_default();
                info!(name = %act.cfg.name, pid, restarts = act.restarts, "etcd member restarted");
                act.backoff.mark_started();
                act.state.send_replace(MemberState::Running {
                    pid,
                    restarts: act.restarts,
                });
                act.watch_exit(member, ctx);
            }
            Err(e) => act.on_exit(e, ctx),
        }));
    }
}

impl Actor for EtcdMemberActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if let Some(member) = self.initial.take() {
            self.watch_exit(member, ctx);
        }
    }
}
