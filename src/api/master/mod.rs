//! dm-master's HTTP API.
//!
//! - `/status`, `/metrics`: this process (served by every master).
//! - `/internal/v1/`: worker → master ([`internal`]).
//! - `/apis/v1alpha1/`: DM's grpc-gateway paths that dmctl uses ([`gateway`]).
//! - `/api/v1/`: DM's OpenAPI ([`openapi`]). DM serves it only with `openapi = true`; dm-rs
//!   always serves it.
//!
//! Everything under the three API prefixes (except the OpenAPI document and docs page) needs
//! the leader's Scheduler: on a follower the request is reverse-proxied to the leader
//! ([`proxy`]). The operations themselves live in [`service`] and [`status`], shared by the
//! gateway and the OpenAPI.

pub mod gateway;
pub mod internal;
pub mod members;
pub mod openapi;
pub mod proxy;
pub mod service;
pub mod shardddl;
pub mod status;

use std::time::{Duration, Instant};

use actix::{Handler, Message};
use actix_web::{HttpResponse, web};
use serde::Serialize;

use crate::actors::master::MasterHandle;
use crate::actors::master::scheduler::SchedulerActor;
use crate::api::ratelimit::RateLimiter;
use crate::config::Secret;
use crate::error::{DmError, codes};
use crate::messages::master::{ClusterView, GetClusterView};
use crate::store::etcd::{EtcdHealth, health};

/// How long the master waits for a worker's answer (query-status, operation checks).
pub const WORKER_TIMEOUT: Duration = Duration::from_secs(5);

/// Shared state of the master's handlers.
pub struct MasterState {
    /// Identity, etcd client, leadership and (on the leader) the Scheduler.
    pub handle: MasterHandle,
    /// The etcd client URLs this master was started with (its own member's, or
    /// `--etcd-endpoints`).
    pub etcd_endpoints: Vec<String>,
    /// True when `--etcd-endpoints` named an external etcd cluster: workers are then given
    /// those endpoints rather than the member list's client URLs.
    pub external_etcd: bool,
    pub started: Instant,
    /// Client for worker calls and leader forwarding.
    pub http: reqwest::Client,
    /// The hex text of `secret-key-path` (empty without one), handed to registering workers
    /// so they can decrypt source passwords, as DM does.
    pub secret_key_hex: Secret,
    /// Per-client request limit of the API scopes (`rpc-rate-limit` / `rpc-rate-burst`),
    /// applied by the leader gate where a request first arrives ([`proxy::gate`]).
    pub limiter: RateLimiter,
    /// The state of this master's etcd member (None with an external etcd).
    pub member: Option<tokio::sync::watch::Receiver<crate::actors::master::member::MemberState>>,
}

impl MasterState {
    /// State for `handle`; `external_etcd` as in [`MasterState::external_etcd`].
    pub fn new(handle: MasterHandle, etcd_endpoints: Vec<String>, external_etcd: bool) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .build()
            .expect("reqwest client builds with default TLS-less settings");
        Self {
            handle,
            etcd_endpoints,
            external_etcd,
            started: Instant::now(),
            http,
            secret_key_hex: Secret::default(),
            limiter: RateLimiter::new(0.0, 1),
            member: None,
        }
    }

    /// Sends `msg` to the leader's Scheduler and returns its reply.
    pub async fn ask<M, R>(&self, msg: M) -> Result<R, DmError>
    where
        M: Message<Result = Result<R, DmError>> + Send + 'static,
        R: Send + 'static,
        SchedulerActor: Handler<M>,
    {
        let scheduler = self.handle.scheduler()?;
        scheduler.send(msg).await.map_err(|e| {
            DmError::new(&codes::SCHEDULER_NOT_STARTED, "the scheduler stopped").with_cause(e)
        })?
    }

    /// The Scheduler's snapshot of sources, workers, bindings and subtasks.
    pub async fn view(&self) -> Result<ClusterView, DmError> {
        let scheduler = self.handle.scheduler()?;
        scheduler.send(GetClusterView).await.map_err(|e| {
            DmError::new(&codes::SCHEDULER_NOT_STARTED, "the scheduler stopped").with_cause(e)
        })
    }
}

/// Body of `GET /status`.
#[derive(Debug, Serialize)]
pub struct MasterStatus {
    pub name: String,
    pub version: &'static str,
    pub role: &'static str,
    pub advertise_addr: String,
    pub uptime_seconds: u64,
    pub etcd_endpoints: Vec<String>,
    pub etcd: EtcdHealth,
    /// The leader's name as this master last observed it (empty while unknown).
    pub leader: String,
    /// True while this master leads and its Scheduler runs.
    pub is_leader: bool,
    /// The etcd member this master runs (`state`: running, restarting, failed, external).
    pub etcd_member: crate::actors::master::member::MemberState,
}

async fn status(state: web::Data<MasterState>) -> HttpResponse {
    let mut etcd = state.handle.etcd();
    let body = MasterStatus {
        name: state.handle.name().to_string(),
        version: super::VERSION,
        role: "master",
        advertise_addr: state.handle.advertise_addr().to_string(),
        uptime_seconds: state.started.elapsed().as_secs(),
        etcd_endpoints: state.etcd_endpoints.clone(),
        etcd: health(&mut etcd).await,
        leader: state.handle.leader().map(|l| l.name).unwrap_or_default(),
        is_leader: state.handle.is_leader(),
        etcd_member: state
            .member
            .as_ref()
            .map_or(crate::actors::master::member::MemberState::External, |rx| {
                rx.borrow().clone()
            }),
    };
    if body.etcd.healthy {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Mounts every route of the master: `/status`, `/metrics` and the three APIs, each API
/// scope behind the leader gate.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/status", web::get().to(status))
        .route("/metrics", web::get().to(super::metrics))
        .service(
            web::scope("/internal/v1")
                .app_data(json_config(proxy::ApiKind::Internal))
                .wrap_fn(|req, srv| proxy::gate(proxy::ApiKind::Internal, req, srv))
                .configure(internal::routes),
        )
        .service(
            web::scope("/apis/v1alpha1")
                .app_data(json_config(proxy::ApiKind::Gateway))
                .wrap_fn(|req, srv| proxy::gate(proxy::ApiKind::Gateway, req, srv))
                .configure(gateway::routes)
                .configure(shardddl::routes),
        )
        .service(
            web::scope("/api/v1")
                .app_data(web::PayloadConfig::new(MAX_BODY))
                .wrap_fn(|req, srv| proxy::gate(proxy::ApiKind::OpenApi, req, srv))
                .configure(openapi::routes),
        );
}

/// The largest request body the APIs accept (task YAML included).
const MAX_BODY: usize = 8 << 20;

/// JSON bodies up to [`MAX_BODY`]; a body that does not parse is answered in the API's own
/// error shape (HTTP 400).
fn json_config(kind: proxy::ApiKind) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(MAX_BODY)
        .error_handler(move |err, _req| {
            let e = DmError::new(
                &codes::MASTER_INVALID_OPERATE,
                "the request body is not valid",
            )
            .with_cause_text(err.to_string());
            let resp = kind.error(actix_web::http::StatusCode::BAD_REQUEST, &e);
            actix_web::error::InternalError::from_response(err, resp).into()
        })
}
