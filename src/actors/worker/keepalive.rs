//! KeepAliveActor: the dm-worker's keepalive lease (DM's `ha.KeepAlive`).
//!
//! It grants a lease of `keepalive-ttl` seconds, puts `/dm-worker/a/<name>` =
//! `{worker-name, join-time}` under it, and renews it every ttl/3. The lease counts as lost —
//! and the worker is told AT ONCE ([`LeaseLost`]), so that it stops all source work before
//! the master can rebind the source elsewhere — when:
//! - a renewal fails, times out, or answers TTL ≤ 0;
//! - no renewal succeeded for ttl − 1 s (the master rebinds once the lease expires);
//! - the keepalive key is deleted (lease revoked or expired: seen through a watch, so a revoke
//!   is noticed in milliseconds, not at the next renewal), or that watch fails.
//!
//! After the worker confirmed that its work stopped, the old lease is revoked (best effort)
//! and a new one is taken after [`Backoff::infrastructure`]; [`LeaseGranted`] then lets the
//! worker resume watching its binding.
//!
//! Messages out: [`LeaseGranted`], [`LeaseLost`] to the WorkerActor. In: [`ReleaseLease`].
//! Per-lease state lives in `Held`; a generation counter discards answers of older leases.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use etcd_client::{
    Client, EventType, LeaseKeepAliveStream, LeaseKeeper, PutOptions, WatchOptions,
    WatchRequestSender, WatchResponse,
};
use tracing::{info, warn};

use crate::backoff::Backoff;
use crate::error::{DmError, codes};
use crate::messages::worker::{LeaseGranted, LeaseLost, ReleaseLease};
use crate::store::etcd::ha::WorkerEvent;
use crate::store::etcd::keys;

/// How often the deadline is checked.
const WATCHDOG_INTERVAL: Duration = Duration::from_millis(200);
/// Shortest renewal period (for tiny TTLs).
const MIN_RENEW_INTERVAL: Duration = Duration::from_millis(300);
/// Longest wait for the revoke of a lost lease.
const REVOKE_TIMEOUT: Duration = Duration::from_secs(2);

/// Time as RFC 3339 UTC (`2026-11-21T08:00:00Z`), DM's `join-time`.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days to civil date (H. Hinnant's algorithm).
    let z = days + 719_468;
    let (era, doe) = (z.div_euclid(146_097), z.rem_euclid(146_097));
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The renewal deadline for `ttl`: ttl − 1 s, at least half the TTL.
pub fn renewal_deadline(ttl: Duration) -> Duration {
    ttl.saturating_sub(Duration::from_secs(1)).max(ttl / 2)
}

fn lease_err(what: &'static str) -> impl FnOnce(etcd_client::Error) -> DmError {
    move |e| DmError::new(&codes::HA_FAIL_LEASE_OPERATION, what).with_cause(e)
}

type Keeper = (LeaseKeeper, LeaseKeepAliveStream);

/// A held lease.
struct Held {
    id: i64,
    last_ok: Instant,
    /// `None` while a renewal is in flight.
    keeper: Option<Keeper>,
    watch: SpawnHandle,
    _watch_tx: WatchRequestSender,
}

/// The actor.
pub struct KeepAliveActor {
    client: Client,
    name: String,
    ttl: Duration,
    granted: Recipient<LeaseGranted>,
    lost: Recipient<LeaseLost>,
    backoff: Backoff,
    epoch: u64,
    lease: Option<Held>,
    released: bool,
}

impl KeepAliveActor {
    /// Keeps `/dm-worker/a/<name>` alive with a lease of `ttl_secs` on `client`.
    pub fn new(
        client: Client,
        name: String,
        ttl_secs: u64,
        granted: Recipient<LeaseGranted>,
        lost: Recipient<LeaseLost>,
    ) -> Self {
        Self {
            client,
            name,
            ttl: Duration::from_secs(ttl_secs.max(1)),
            granted,
            lost,
            backoff: Backoff::infrastructure(),
            epoch: 0,
            lease: None,
            released: false,
        }
    }

    fn acquire(&mut self, ctx: &mut Context<Self>) {
        if self.released {
            return;
        }
        self.epoch += 1;
        let epoch = self.epoch;
        let (mut client, name, ttl) = (self.client.clone(), self.name.clone(), self.ttl);
        async move {
            let lease = client
                .lease_grant(ttl.as_secs() as i64, None)
                .await
                .map_err(lease_err("granting the keepalive lease"))?
                .id();
            let rest = async {
                let event = WorkerEvent {
                    worker_name: name.clone(),
                    join_time: rfc3339(SystemTime::now()),
                };
                let key = keys::worker_keepalive(&name);
                let put = client
                    .put(
                        key.clone(),
                        serde_json::to_string(&event).expect("keepalive value serializes"),
                        Some(PutOptions::new().with_lease(lease)),
                    )
                    .await
                    .map_err(lease_err("putting the keepalive key"))?;
                let rev = put.header().map_or(0, |h| h.revision());
                let keeper = client
                    .lease_keep_alive(lease)
                    .await
                    .map_err(lease_err("opening the lease keepalive stream"))?;
                let watch = client
                    .watch(key, Some(WatchOptions::new().with_start_revision(rev + 1)))
                    .await
                    .map_err(|e| {
                        DmError::new(&codes::HA_FAIL_WATCH_ETCD, "watching the keepalive key")
                            .with_cause(e)
                    })?;
                Ok::<_, DmError>((keeper, watch))
            }
            .await;
            match rest {
                Ok((keeper, watch)) => Ok((lease, keeper, watch)),
                Err(e) => {
                    let _ = client.lease_revoke(lease).await;
                    Err(e)
                }
            }
        }
        .into_actor(self)
        .map(move |res, act, ctx| match res {
            Ok((id, keeper, watch)) if epoch == act.epoch && !act.released => {
                let (tx, rx) = watch.split();
                let handle = ctx.add_stream(rx);
                act.lease = Some(Held {
                    id,
                    last_ok: Instant::now(),
                    keeper: Some(keeper),
                    watch: handle,
                    _watch_tx: tx,
                });
                act.backoff.mark_started();
                info!(worker = %act.name, lease = %format!("{id:x}"), ttl_s = act.ttl.as_secs(), "keepalive lease granted");
                act.granted.do_send(LeaseGranted { lease: id });
            }
            Ok((id, _, _)) => {
                let mut client = act.client.clone();
                ctx.spawn(
                    async move {
                        let _ = client.lease_revoke(id).await;
                    }
                    .into_actor(act),
                );
            }
            Err(e) => {
                let wait = act.backoff.next_delay();
                warn!(worker = %act.name, code = e.code, error = %e.chain(), wait_ms = wait.as_millis() as u64, "taking the keepalive lease failed; retrying");
                ctx.run_later(wait, |act, ctx| act.acquire(ctx));
            }
        })
        .spawn(ctx);
    }

    fn renew(&mut self, ctx: &mut Context<Self>) {
        let Some(held) = self.lease.as_mut() else {
            return;
        };
        let Some(mut keeper) = held.keeper.take() else {
            return;
        };
        let (epoch, limit) = (self.epoch, renewal_deadline(self.ttl));
        async move {
            let res = tokio::time::timeout(limit, async {
                keeper.0.keep_alive().await?;
                keeper.1.message().await
            })
            .await;
            (keeper, res)
        }
        .into_actor(self)
        .map(move |(keeper, res), act, ctx| {
            if epoch != act.epoch {
                return;
            }
            match res {
                Ok(Ok(Some(r))) if r.ttl() > 0 => {
                    if let Some(h) = act.lease.as_mut() {
                        h.last_ok = Instant::now();
                        h.keeper = Some(keeper);
                    }
                }
                Ok(Ok(Some(_))) => {
                    act.lose("the lease expired (renewal answered TTL 0)".into(), ctx)
                }
                Ok(Ok(None)) => act.lose("the lease keepalive stream ended".into(), ctx),
                Ok(Err(e)) => act.lose(format!("lease renewal failed: {e}"), ctx),
                Err(_) => act.lose("lease renewal timed out".into(), ctx),
            }
        })
        .spawn(ctx);
    }

    fn check_deadline(&mut self, ctx: &mut Context<Self>) {
        let limit = renewal_deadline(self.ttl);
        if self
            .lease
            .as_ref()
            .is_some_and(|h| h.last_ok.elapsed() >= limit)
        {
            self.lose(
                format!("no lease renewal succeeded for {} ms", limit.as_millis()),
                ctx,
            );
        }
    }

    /// Tells the worker now; revokes the old lease once the worker's work stopped; takes a new
    /// lease after the backoff.
    fn lose(&mut self, reason: String, ctx: &mut Context<Self>) {
        let Some(held) = self.lease.take() else {
            return;
        };
        ctx.cancel_future(held.watch);
        self.epoch += 1;
        let id = held.id;
        warn!(actor = "KeepAlive", parent = "Worker", worker = %self.name, lease = %format!("{id:x}"), reason = %reason, "keepalive lease lost");
        let (lost, mut client) = (self.lost.clone(), self.client.clone());
        let wait = self.backoff.next_delay();
        async move {
            let _ = lost.send(LeaseLost { reason }).await;
            let _ = tokio::time::timeout(REVOKE_TIMEOUT, client.lease_revoke(id)).await;
        }
        .into_actor(self)
        .map(move |(), act, ctx| {
            info!(worker = %act.name, wait_ms = wait.as_millis() as u64, "taking a new keepalive lease after the backoff");
            ctx.run_later(wait, |act, ctx| act.acquire(ctx));
        })
        .spawn(ctx);
    }
}

impl Actor for KeepAliveActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        info!(actor = "KeepAlive", parent = "Worker", worker = %self.name, ttl_s = self.ttl.as_secs(), reason = "connected to etcd", "actor started");
        self.acquire(ctx);
        ctx.run_interval((self.ttl / 3).max(MIN_RENEW_INTERVAL), |act, ctx| {
            act.renew(ctx)
        });
        ctx.run_interval(WATCHDOG_INTERVAL, |act, ctx| act.check_deadline(ctx));
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        info!(actor = "KeepAlive", parent = "Worker", worker = %self.name, reason = "stopped", "actor stopped");
    }
}

impl StreamHandler<Result<WatchResponse, etcd_client::Error>> for KeepAliveActor {
    fn handle(&mut self, item: Result<WatchResponse, etcd_client::Error>, ctx: &mut Context<Self>) {
        match item {
            Ok(resp) if resp.canceled() => self.lose(
                format!("the keepalive watch was canceled: {}", resp.cancel_reason()),
                ctx,
            ),
            Ok(resp) => {
                if resp
                    .events()
                    .iter()
                    .any(|e| e.event_type() == EventType::Delete)
                {
                    self.lose(
                        "the keepalive key was deleted (lease revoked or expired)".into(),
                        ctx,
                    );
                }
            }
            Err(e) => self.lose(format!("the keepalive watch failed: {e}"), ctx),
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        self.lose("the keepalive watch ended".into(), ctx);
    }
}

impl Handler<ReleaseLease> for KeepAliveActor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: ReleaseLease, ctx: &mut Context<Self>) -> Self::Result {
        self.released = true;
        self.epoch += 1;
        let held = self.lease.take();
        if let Some(h) = &held {
            ctx.cancel_future(h.watch);
        }
        let mut client = self.client.clone();
        Box::pin(
            async move {
                if let Some(h) = held {
                    let _ = tokio::time::timeout(REVOKE_TIMEOUT, client.lease_revoke(h.id)).await;
                }
            }
            .into_actor(self)
            .map(|(), act, ctx| {
                info!(worker = %act.name, "keepalive lease released");
                ctx.stop();
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_time_is_rfc3339_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
            "2023-11-14T22:13:20Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_825_600)),
            "2000-02-29T12:00:00Z"
        );
    }

    #[test]
    fn deadline_is_ttl_minus_one_second_but_at_least_half() {
        assert_eq!(
            renewal_deadline(Duration::from_secs(60)),
            Duration::from_secs(59)
        );
        assert_eq!(
            renewal_deadline(Duration::from_secs(1)),
            Duration::from_millis(500)
        );
    }
}
