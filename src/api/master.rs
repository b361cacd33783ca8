//! dm-master's HTTP routes.

use std::time::Instant;

use actix_web::{HttpResponse, web};
use serde::Serialize;

use crate::store::etcd::{EtcdHealth, health};

/// Shared state of the master's handlers.
pub struct MasterState {
    pub name: String,
    pub advertise_addr: String,
    pub etcd_endpoints: Vec<String>,
    pub etcd: etcd_client::Client,
    pub started: Instant,
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
}

async fn status(state: web::Data<MasterState>) -> HttpResponse {
    let mut etcd = state.etcd.clone();
    let body = MasterStatus {
        name: state.name.clone(),
        version: super::VERSION,
        role: "master",
        advertise_addr: state.advertise_addr.clone(),
        uptime_seconds: state.started.elapsed().as_secs(),
        etcd_endpoints: state.etcd_endpoints.clone(),
        etcd: health(&mut etcd).await,
    };
    if body.etcd.healthy {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Mounts the master's routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/status", web::get().to(status))
        .route("/metrics", web::get().to(super::metrics));
}
