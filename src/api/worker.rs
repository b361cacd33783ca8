//! dm-worker's HTTP routes.

use std::time::Instant;

use actix::Addr;
use actix_web::{HttpResponse, web};
use serde::Serialize;

use crate::actors::worker::master_probe::MasterProbeActor;
use crate::messages::worker::{MasterReachability, QueryMasters};

/// Shared state of the worker's handlers.
pub struct WorkerState {
    pub name: String,
    pub advertise_addr: String,
    pub probe: Addr<MasterProbeActor>,
    pub started: Instant,
}

/// Body of `GET /status`.
#[derive(Debug, Serialize)]
pub struct WorkerStatus {
    pub name: String,
    pub version: &'static str,
    pub role: &'static str,
    pub advertise_addr: String,
    pub uptime_seconds: u64,
    pub masters: Vec<MasterReachability>,
}

async fn status(state: web::Data<WorkerState>) -> HttpResponse {
    let masters = state.probe.send(QueryMasters).await.unwrap_or_default();
    HttpResponse::Ok().json(WorkerStatus {
        name: state.name.clone(),
        version: super::VERSION,
        role: "worker",
        advertise_addr: state.advertise_addr.clone(),
        uptime_seconds: state.started.elapsed().as_secs(),
        masters,
    })
}

/// Mounts the worker's routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/status", web::get().to(status))
        .route("/metrics", web::get().to(super::metrics));
}
