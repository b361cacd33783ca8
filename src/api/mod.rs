//! HTTP servers on actix-web: dm-master's API (`/status`, `/metrics`; the OpenAPI grows here)
//! and dm-worker's (`/status`, `/metrics`, the internal API the master calls).

pub mod extract;
pub mod master;
pub mod mux;
pub mod openapi;
pub mod ratelimit;
pub mod worker;

use actix_web::{HttpResponse, web};
use prometheus::Registry;

/// Version string shown by `--version` and `/status`.
pub const VERSION: &str = concat!(env!("CARGO_PKG_NAME"), " ", env!("CARGO_PKG_VERSION"));

/// `GET /metrics`: the process's registry in the Prometheus text format.
pub async fn metrics(registry: web::Data<Registry>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(crate::metrics::render(&registry))
}

/// `:8261` (DM's "every interface") becomes a bindable `0.0.0.0:8261`.
pub fn bind_addr(addr: &str) -> String {
    if addr.starts_with(':') {
        format!("0.0.0.0{addr}")
    } else {
        addr.to_string()
    }
}
