//! WorkerActor: the dm-worker's cluster side (DM's worker `Server`).
//!
//! 1. Registration: with the `join` masters ([`super::register`]), which answer the etcd
//!    endpoints; or, with `etcd-endpoints` given (tests, single-master setups), directly —
//!    then the worker writes its own `/dm-worker/r/<name>`. The etcd client is connected with
//!    `store::etcd::connect`, retried with [`Backoff::infrastructure`].
//! 2. A [`KeepAliveActor`] holds the lease. Only while it is held does this actor watch
//!    `/dm-master/bound-worker/<name>` (initial read + watch from its revision + 1).
//! 3. Bound to source S ⇒ S's config is read and a [`SourceWorkerActor`] runs it. Binding
//!    deleted or changed ⇒ the running one is stopped gracefully and waited for, then the new
//!    one starts: one source at a time, never two.
//! 4. [`LeaseLost`] ⇒ every source work is stopped at once (units dropped, no checkpoint
//!    flush: the master may already have rebound the source) before the reply, which lets the
//!    KeepAlive revoke the old lease; with the next [`LeaseGranted`] the binding is read again.
//!
//! Messages in: [`LeaseGranted`], [`LeaseLost`], [`QueryWorkerStatus`], [`QueryWorkerInfo`],
//! [`ShutdownWorker`]. A generation counter (bumped per lease) discards answers that belong
//! to an older lease.

use std::time::{Duration, Instant};

use actix::prelude::*;
use etcd_client::{Client, EventType, WatchOptions, WatchRequestSender, WatchResponse};
use tokio::sync::oneshot;
use tracing::{error, info, warn};

use super::keepalive::KeepAliveActor;
use super::register::register;
use super::source_worker::SourceWorkerActor;
use super::subtask::GRACEFUL_STOP_TIMEOUT;
use crate::backoff::Backoff;
use crate::config::SecretKey;
use crate::error::{DmError, codes};
use crate::messages::rpc::RegisterWorkerRequest;
use crate::messages::worker::{
    LeaseGranted, LeaseLost, QuerySourceStatus, QueryWorkerInfo, QueryWorkerStatus, ReleaseLease,
    ShutdownWorker, SourceStatusReport, StopSourceWorker, WorkerInfo,
};
use crate::store::etcd::ha::{self, SourceBound, WorkerInfo as RegisteredWorker};
use crate::store::etcd::keys;

/// Longest wait for etcd to answer one connection attempt.
const CONNECT_DEADLINE: Duration = Duration::from_secs(10);

/// How the worker finds etcd.
#[derive(Debug, Clone)]
pub enum EtcdAccess {
    /// Register with these masters (host:port); they answer the etcd endpoints.
    Join(Vec<String>),
    /// Use these etcd client URLs directly (no master involved).
    Endpoints(Vec<String>),
}

/// What the worker needs to start.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    pub name: String,
    /// host:port the master uses to reach this worker.
    pub advertise_addr: String,
    pub access: EtcdAccess,
    /// Seconds of the keepalive lease.
    pub keepalive_ttl: u64,
    /// Key for encrypted passwords (else the one the master answers, if any).
    pub key: Option<SecretKey>,
}

/// A running SourceWorker.
struct Current {
    source: String,
    addr: Addr<SourceWorkerActor>,
}

/// The actor.
pub struct WorkerActor {
    opts: WorkerOptions,
    client: Option<Client>,
    endpoints: Vec<String>,
    key: Option<SecretKey>,
    keepalive: Option<Addr<KeepAliveActor>>,
    lease: Option<i64>,
    epoch: u64,
    /// The binding in etcd (while the lease is held).
    desired: Option<SourceBound>,
    current: Option<Current>,
    /// A SourceWorker being stopped gracefully (an immediate stop must still reach it).
    retiring: Option<Addr<SourceWorkerActor>>,
    /// The generation of the bind step in flight.
    busy: Option<u64>,
    watch: Option<(SpawnHandle, WatchRequestSender)>,
    backoff: Backoff,
    leases_lost: u64,
    fatal: Option<oneshot::Sender<DmError>>,
    shutting_down: bool,
}

impl WorkerActor {
    /// A worker; `fatal` learns of an error that ends the process (registration refused).
    pub fn new(opts: WorkerOptions, fatal: oneshot::Sender<DmError>) -> Self {
        let key = opts.key.clone();
        Self {
            opts,
            client: None,
            endpoints: Vec::new(),
            key,
            keepalive: None,
            lease: None,
            epoch: 0,
            desired: None,
            current: None,
            retiring: None,
            busy: None,
            watch: None,
            backoff: Backoff::infrastructure(),
            leases_lost: 0,
            fatal: Some(fatal),
            shutting_down: false,
        }
    }

    fn name(&self) -> &str {
        &self.opts.name
    }

    /// Registers (or takes the given endpoints), then connects to etcd.
    fn connect(&mut self, ctx: &mut Context<Self>) {
        let access = self.opts.access.clone();
        let me = RegisteredWorker {
            name: self.opts.name.clone(),
            addr: self.opts.advertise_addr.clone(),
        };
        async move {
            let direct = matches!(access, EtcdAccess::Endpoints(_));
            let (endpoints, key) = match access {
                EtcdAccess::Join(masters) => {
                    let req = RegisterWorkerRequest {
                        name: me.name.clone(),
                        address: me.addr.clone(),
                    };
                    let r = register(&masters, &req).await?;
                    (r.etcd_endpoints, r.secret_key)
                }
                EtcdAccess::Endpoints(e) => (e, None),
            };
            let mut backoff = Backoff::infrastructure();
            loop {
                let attempt = async {
                    let mut c = crate::store::etcd::connect(&endpoints, CONNECT_DEADLINE).await?;
                    if direct {
                        // No master registers this worker: write what it would.
                        ha::apply(&mut c, vec![ha::Op::PutWorker(me.clone())]).await?;
                    }
                    Ok::<_, DmError>(c)
                };
                match attempt.await {
                    Ok(c) => return Ok((endpoints, key, c)),
                    Err(e) => {
                        let wait = backoff.next_delay();
                        warn!(worker = %me.name, etcd = %endpoints.join(","), code = e.code, error = %e.chain(), wait_ms = wait.as_millis() as u64, "connecting to etcd failed; retrying");
                        tokio::time::sleep(wait).await;
                    }
                }
            }
        }
        .into_actor(self)
        .map(|res: Result<_, DmError>, act, ctx| match res {
            Ok((endpoints, key, client)) => act.connected(endpoints, key, client, ctx),
            Err(e) => {
                error!(worker = %act.name(), code = e.code, error = %e.chain(), "dm-worker cannot join the cluster");
                if let Some(tx) = act.fatal.take() {
                    let _ = tx.send(e);
                }
            }
        })
        .spawn(ctx);
    }

    fn connected(
        &mut self,
        endpoints: Vec<String>,
        key: Option<SecretKey>,
        client: Client,
        ctx: &mut Context<Self>,
    ) {
        info!(worker = %self.name(), etcd = %endpoints.join(","), "connected to etcd");
        self.endpoints = endpoints;
        if self.key.is_none() {
            self.key = key;
        }
        let me = ctx.address();
        let ka = KeepAliveActor::new(
            client.clone(),
            self.opts.name.clone(),
            self.opts.keepalive_ttl,
            me.clone().recipient(),
            me.recipient(),
        );
        self.client = Some(client);
        self.keepalive = Some(ka.start());
    }

    fn cancel_watch(&mut self, ctx: &mut Context<Self>) {
        if let Some((h, _)) = self.watch.take() {
            ctx.cancel_future(h);
        }
    }

    /// Reads the binding and watches it from the read's revision + 1 (while the lease of
    /// generation `epoch` is held).
    fn watch_binding(&mut self, ctx: &mut Context<Self>) {
        let epoch = self.epoch;
        if self.lease.is_none() || self.shutting_down {
            return;
        }
        self.cancel_watch(ctx);
        let Some(mut client) = self.client.clone() else {
            return;
        };
        let name = self.opts.name.clone();
        async move {
            let (rev, bound) = ha::get_bound(&mut client, &name).await?;
            let ws = client
                .watch(
                    keys::key(keys::BOUND_WORKER, &[&name]),
                    Some(WatchOptions::new().with_start_revision(rev + 1)),
                )
                .await
                .map_err(|e| {
                    DmError::new(&codes::HA_FAIL_WATCH_ETCD, "watching the binding").with_cause(e)
                })?;
            Ok::<_, DmError>((bound, ws))
        }
        .into_actor(self)
        .map(move |res, act, ctx| {
            if epoch != act.epoch || act.lease.is_none() {
                return;
            }
            match res {
                Ok((bound, ws)) => {
                    let (tx, rx) = ws.split();
                    act.watch = Some((ctx.add_stream(rx), tx));
                    act.backoff.mark_started();
                    info!(worker = %act.name(), source = ?bound.as_ref().map(|b| &b.source), "binding read; watching changes");
                    act.desired = bound;
                    act.drive(ctx);
                }
                Err(e) => act.retry_watch(e, ctx),
            }
        })
        .spawn(ctx);
    }

    fn retry_watch(&mut self, e: DmError, ctx: &mut Context<Self>) {
        self.cancel_watch(ctx);
        let (epoch, wait) = (self.epoch, self.backoff.next_delay());
        warn!(worker = %self.name(), code = e.code, error = %e.chain(), wait_ms = wait.as_millis() as u64, "watching the binding failed; retrying");
        ctx.run_later(wait, move |act, ctx| {
            if epoch == act.epoch {
                act.watch_binding(ctx);
            }
        });
    }

    /// Moves the running SourceWorker towards the binding, one step at a time.
    fn drive(&mut self, ctx: &mut Context<Self>) {
        if self.busy.is_some() || self.lease.is_none() || self.shutting_down {
            return;
        }
        let want = self.desired.as_ref().map(|b| b.source.clone());
        let have = self.current.as_ref().map(|c| c.source.clone());
        if want == have {
            return;
        }
        let epoch = self.epoch;
        self.busy = Some(epoch);
        if let Some(cur) = self.current.take() {
            let reason = if want.is_some() {
                "binding changed"
            } else {
                "binding deleted"
            };
            info!(worker = %self.name(), source = %cur.source, reason, "stopping the source worker");
            self.retiring = Some(cur.addr.clone());
            async move {
                let _ = cur.addr.send(StopSourceWorker { graceful: true }).await;
            }
            .into_actor(self)
            .map(move |(), act, ctx| {
                if act.busy == Some(epoch) {
                    act.retiring = None;
                }
                act.step_done(epoch, ctx);
            })
            .spawn(ctx);
            return;
        }
        let source = want.expect("want differs from have, which is None");
        let mut client = self.client.clone().expect("a lease implies a client");
        async move {
            ha::get_source(&mut client, &source)
                .await
                .map(|c| (source, c))
        }
        .into_actor(self)
        .map(move |res, act, ctx| {
            if act.busy != Some(epoch) {
                return;
            }
            match res {
                Ok((source, Some(cfg))) => {
                    if act.desired.as_ref().is_some_and(|b| b.source == source) {
                        let client = act.client.clone().expect("a lease implies a client");
                        let sw = SourceWorkerActor::new(
                            act.opts.name.clone(),
                            cfg,
                            client,
                            act.key.clone(),
                        );
                        act.current = Some(Current {
                            source,
                            addr: sw.start(),
                        });
                    }
                    act.step_done(epoch, ctx);
                }
                Ok((source, None)) => act.retry_bind(
                    DmError::new(
                        &codes::WORKER_SOURCE_CONFIG_NOT_FOUND,
                        format!("source `{source}` is bound to this worker but has no config"),
                    ),
                    ctx,
                ),
                Err(e) => act.retry_bind(e, ctx),
            }
        })
        .spawn(ctx);
    }

    fn step_done(&mut self, epoch: u64, ctx: &mut Context<Self>) {
        if self.busy == Some(epoch) {
            self.busy = None;
            self.drive(ctx);
        }
    }

    fn retry_bind(&mut self, e: DmError, ctx: &mut Context<Self>) {
        self.busy = None;
        let (epoch, wait) = (self.epoch, self.backoff.next_delay());
        warn!(worker = %self.name(), code = e.code, error = %e.chain(), wait_ms = wait.as_millis() as u64, "starting the bound source failed; retrying");
        ctx.run_later(wait, move |act, ctx| {
            if epoch == act.epoch {
                act.drive(ctx);
            }
        });
    }

    fn info(&self) -> WorkerInfo {
        WorkerInfo {
            registered: self.client.is_some(),
            etcd_endpoints: self.endpoints.clone(),
            lease_held: self.lease.is_some(),
            lease: self.lease.map(|l| format!("{l:x}")),
            bound_source: self.desired.as_ref().map(|b| b.source.clone()),
            running_source: self.current.as_ref().map(|c| c.source.clone()),
            leases_lost: self.leases_lost,
        }
    }
}

impl Actor for WorkerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        info!(actor = "Worker", parent = "dm-worker", worker = %self.name(), reason = "process start", "actor started");
        self.connect(ctx);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        info!(actor = "Worker", parent = "dm-worker", worker = %self.name(), reason = "stopped", "actor stopped");
    }
}

impl Handler<LeaseGranted> for WorkerActor {
    type Result = ();

    fn handle(&mut self, msg: LeaseGranted, ctx: &mut Context<Self>) {
        if self.shutting_down {
            return;
        }
        self.epoch += 1;
        self.lease = Some(msg.lease);
        self.watch_binding(ctx);
    }
}

impl Handler<LeaseLost> for WorkerActor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, msg: LeaseLost, ctx: &mut Context<Self>) -> Self::Result {
        let t0 = Instant::now();
        self.epoch += 1;
        self.lease = None;
        self.busy = None;
        self.desired = None;
        self.leases_lost += 1;
        self.cancel_watch(ctx);
        let targets: Vec<_> = self
            .current
            .take()
            .map(|c| c.addr)
            .into_iter()
            .chain(self.retiring.take())
            .collect();
        warn!(worker = %self.name(), reason = %msg.reason, source_workers = targets.len(), "keepalive lease lost; stopping all source work now");
        let stops: Vec<_> = targets
            .iter()
            .map(|a| a.send(StopSourceWorker { graceful: false }))
            .collect();
        Box::pin(
            async move {
                futures_util::future::join_all(stops).await;
            }
            .into_actor(self)
            .map(move |(), act, _| {
                warn!(worker = %act.name(), elapsed_ms = t0.elapsed().as_millis() as u64, "all source work stopped after the lease loss");
            }),
        )
    }
}

impl StreamHandler<Result<WatchResponse, etcd_client::Error>> for WorkerActor {
    fn handle(&mut self, item: Result<WatchResponse, etcd_client::Error>, ctx: &mut Context<Self>) {
        if self.watch.is_none() {
            // Items of a watch already given up (a failure is reported once).
            return;
        }
        match item {
            Ok(resp) if resp.canceled() || resp.compact_revision() > 0 => self.retry_watch(
                DmError::new(&codes::HA_FAIL_WATCH_ETCD, "the binding watch was canceled")
                    .with_cause_text(resp.cancel_reason().to_string()),
                ctx,
            ),
            Ok(resp) => {
                for ev in resp.events() {
                    let Some(kv) = ev.kv() else { continue };
                    match ev.event_type() {
                        EventType::Put => {
                            let k = String::from_utf8_lossy(kv.key()).into_owned();
                            match ha::decode_bound(&k, kv.value()) {
                                Ok(b) => {
                                    info!(worker = %self.name(), source = %b.source, "bound to a source");
                                    self.desired = Some(b);
                                }
                                Err(e) => {
                                    warn!(worker = %self.name(), code = e.code, error = %e.chain(), "binding in etcd is not valid; ignored")
                                }
                            }
                        }
                        EventType::Delete => {
                            info!(worker = %self.name(), "binding deleted");
                            self.desired = None;
                        }
                    }
                }
                self.drive(ctx);
            }
            Err(e) => self.retry_watch(
                DmError::new(&codes::HA_FAIL_WATCH_ETCD, "the binding watch failed").with_cause(e),
                ctx,
            ),
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        if self.lease.is_some() && !self.shutting_down && self.watch.take().is_some() {
            self.retry_watch(
                DmError::new(&codes::HA_FAIL_WATCH_ETCD, "the binding watch ended"),
                ctx,
            );
        }
    }
}

impl Handler<QueryWorkerStatus> for WorkerActor {
    type Result = ResponseFuture<Result<SourceStatusReport, DmError>>;

    fn handle(&mut self, msg: QueryWorkerStatus, _: &mut Context<Self>) -> Self::Result {
        let worker = self.opts.name.clone();
        if self.lease.is_none() {
            let e = DmError::new(
                &codes::WORKER_NO_LEASE,
                format!("dm-worker `{worker}` holds no keepalive lease, so it runs no source"),
            );
            return Box::pin(async move { Err(e) });
        }
        let Some(cur) = &self.current else {
            let e = DmError::bare(&codes::WORKER_NO_START);
            return Box::pin(async move { Err(e) });
        };
        let (source, addr) = (cur.source.clone(), cur.addr.clone());
        Box::pin(async move {
            let subtasks = addr
                .send(QuerySourceStatus { task: msg.task })
                .await
                .map_err(|_| DmError::bare(&codes::WORKER_NO_START))?;
            Ok(SourceStatusReport {
                source,
                worker,
                subtasks,
            })
        })
    }
}

impl Handler<QueryWorkerInfo> for WorkerActor {
    type Result = MessageResult<QueryWorkerInfo>;

    fn handle(&mut self, _: QueryWorkerInfo, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.info())
    }
}

impl Handler<ShutdownWorker> for WorkerActor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: ShutdownWorker, ctx: &mut Context<Self>) -> Self::Result {
        self.shutting_down = true;
        self.epoch += 1;
        self.busy = None;
        self.cancel_watch(ctx);
        let current = self.current.take().map(|c| c.addr);
        let retiring = self.retiring.take();
        let keepalive = self.keepalive.take();
        info!(worker = %self.name(), "shutting down: stopping source work, releasing the lease");
        Box::pin(
            async move {
                for sw in current.into_iter().chain(retiring) {
                    let stop = sw.send(StopSourceWorker { graceful: true });
                    if tokio::time::timeout(GRACEFUL_STOP_TIMEOUT + Duration::from_secs(5), stop)
                        .await
                        .is_err()
                    {
                        let _ = sw.send(StopSourceWorker { graceful: false }).await;
                    }
                }
                if let Some(ka) = keepalive {
                    let _ = ka.send(ReleaseLease).await;
                }
            }
            .into_actor(self)
            .map(|(), act, _| {
                act.lease = None;
            }),
        )
    }
}
