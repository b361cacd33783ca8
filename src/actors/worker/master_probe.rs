//! Polls each `join` master's `/status` and remembers whether it answered.
//!
//! Messages in: [`QueryMasters`]. Out: none (it logs reachability changes). It holds only a
//! snapshot of what it saw, so a restart loses nothing.

use std::time::Duration;

use actix::prelude::*;
use tracing::{info, warn};

use crate::messages::worker::{MasterReachability, QueryMasters};

/// How often each master is probed.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(2);

/// The actor.
pub struct MasterProbeActor {
    worker: String,
    masters: Vec<MasterReachability>,
    http: reqwest::Client,
}

impl MasterProbeActor {
    /// Probes `masters` (host:port) on behalf of worker `worker`.
    pub fn new(worker: String, masters: Vec<String>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .no_proxy()
            .build()
            .expect("a plain HTTP client builds");
        let masters = masters
            .into_iter()
            .map(|addr| MasterReachability {
                addr,
                ..Default::default()
            })
            .collect();
        Self {
            worker,
            masters,
            http,
        }
    }

    fn probe_all(&mut self, ctx: &mut Context<Self>) {
        for (i, m) in self.masters.iter().enumerate() {
            let url = format!("http://{}/status", m.addr);
            let http = self.http.clone();
            async move {
                let resp = http.get(&url).send().await.map_err(|e| e.to_string())?;
                let body: serde_json::Value = resp.json().await.map_err(|e| e.to_string())?;
                Ok::<_, String>(body["name"].as_str().map(String::from))
            }
            .into_actor(self)
            .map(move |res, act, _| act.record(i, res))
            .spawn(ctx);
        }
    }

    fn record(&mut self, i: usize, res: Result<Option<String>, String>) {
        let m = &mut self.masters[i];
        let was = m.reachable;
        match res {
            Ok(name) => {
                if !was {
                    info!(worker = %self.worker, master = %m.addr, "master reachable");
                }
                *m = MasterReachability {
                    addr: m.addr.clone(),
                    reachable: true,
                    name,
                    last_error: None,
                };
            }
            Err(e) => {
                if was || m.last_error.is_none() {
                    warn!(worker = %self.worker, master = %m.addr, error = %e, "master unreachable");
                }
                m.reachable = false;
                m.last_error = Some(e);
            }
        }
    }
}

impl Actor for MasterProbeActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        info!(actor = "MasterProbe", parent = "dm-worker", worker = %self.worker, "actor started");
        self.probe_all(ctx);
        ctx.run_interval(PROBE_INTERVAL, |act, ctx| act.probe_all(ctx));
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        info!(actor = "MasterProbe", parent = "dm-worker", worker = %self.worker, reason = "stopped", "actor stopped");
    }
}

impl Handler<QueryMasters> for MasterProbeActor {
    type Result = MessageResult<QueryMasters>;

    fn handle(&mut self, _: QueryMasters, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.masters.clone())
    }
}
