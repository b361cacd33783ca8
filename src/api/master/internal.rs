//! Worker → master: `POST /internal/v1/workers/register`. The Scheduler records the worker
//! (`/dm-worker/r/`); the answer tells the worker where the cluster's etcd is, so it can take
//! its keepalive lease and watch its bindings directly.

use actix_web::{HttpResponse, web};
use tracing::{info, warn};

use super::MasterState;
use crate::error::{DmError, codes};
use crate::messages::master::RegisterWorker;
use crate::messages::rpc::{self, RegisterWorkerRequest, RegisterWorkerResponse};

/// The etcd client URLs workers should use: `--etcd-endpoints` when the master uses an
/// external cluster, otherwise the client URLs of every member of the master's etcd.
pub async fn etcd_endpoints(state: &MasterState) -> Result<Vec<String>, DmError> {
    if state.external_etcd {
        return Ok(state.etcd_endpoints.clone());
    }
    let mut etcd = state.handle.etcd();
    let list = etcd.member_list().await.map_err(|e| {
        DmError::new(&codes::HA_FAIL_TXN_OPERATION, "listing the etcd members").with_cause(e)
    })?;
    let mut urls: Vec<String> = list
        .members()
        .iter()
        .flat_map(|m| m.client_urls().iter().cloned())
        .collect();
    urls.sort();
    urls.dedup();
    Ok(urls)
}

async fn register(
    state: web::Data<MasterState>,
    req: web::Json<RegisterWorkerRequest>,
) -> HttpResponse {
    let req = req.into_inner();
    let result = async {
        if req.name.is_empty() || req.address.is_empty() {
            return Err(DmError::new(
                &codes::MASTER_INVALID_OPERATE,
                "a worker registers with a non-empty name and address",
            ));
        }
        state
            .ask(RegisterWorker {
                name: req.name.clone(),
                addr: req.address.clone(),
            })
            .await?;
        etcd_endpoints(&state).await
    }
    .await;
    HttpResponse::Ok().json(match result {
        Ok(etcd_endpoints) => {
            info!(worker = %req.name, addr = %req.address, "worker registered");
            RegisterWorkerResponse {
                result: true,
                msg: String::new(),
                etcd_endpoints,
                secret_key: state.secret_key_hex.expose().to_string(),
            }
        }
        Err(e) => {
            warn!(worker = %req.name, addr = %req.address, code = e.code, error = %e.chain(), "worker registration refused");
            RegisterWorkerResponse {
                result: false,
                msg: rpc::error_msg(&e),
                etcd_endpoints: Vec::new(),
                secret_key: String::new(),
            }
        }
    })
}

/// Mounts the internal routes (inside the `/internal/v1` scope).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/workers/register", web::post().to(register));
}
