//! Gate of the API scopes, one wrapper for every handler:
//!
//! - **Rate limit:** a request arriving from a client (not forwarded by another master) takes
//!   a token of its client IP's bucket ([`RateLimiter`], `rpc-rate-limit`/`rpc-rate-burst`);
//!   none left is HTTP 429 `MASTER_RATE_LIMITED` with `Retry-After`. Forwarded requests are
//!   not counted again, so the leader does not throttle all clients of a follower as one.
//! - **Leader forwarding:** the leader serves a request itself; a follower reverse-proxies it
//!   to the leader's advertise-addr (method, path, query, body and content type kept). A
//!   forwarded request carries [`FORWARDED_HEADER`], so it is never forwarded a second time:
//!   a receiver that does not lead either answers 503 with `MASTER_NOT_LEADER_NO_FORWARD`, as
//!   does a follower while no leader is known.
//!
//! [`RateLimiter`]: crate::api::ratelimit::RateLimiter

use std::net::IpAddr;
use std::time::{Duration, Instant};

use actix_web::body::BoxBody;
use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use actix_web::{HttpResponse, web};
use futures_util::StreamExt;
use futures_util::future::LocalBoxFuture;
use tracing::debug;

use super::MasterState;
use crate::actors::master::LeaderInfo;
use crate::error::{DmError, codes};
use crate::messages::rpc;

/// Header naming the master that forwarded a request.
pub const FORWARDED_HEADER: &str = "x-dm-forwarded-by";

/// The longest a forwarded request may take (DM's default dmctl `--rpc-timeout`).
const FORWARD_TIMEOUT: Duration = Duration::from_secs(600);

/// The largest request body forwarded.
const MAX_BODY: usize = 16 << 20;

/// Which API a request belongs to: it decides how an error is rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiKind {
    /// `/internal/v1/`: `{result: false, msg}`.
    Internal,
    /// `/apis/v1alpha1/`: `{result: false, msg}`.
    Gateway,
    /// `/api/v1/`: `{error_msg, error_code}`.
    OpenApi,
}

impl ApiKind {
    /// The error body of this API with `status`.
    pub fn error(self, status: StatusCode, e: &DmError) -> HttpResponse {
        match self {
            ApiKind::Internal | ApiKind::Gateway => {
                HttpResponse::build(status).json(rpc::CommonResponse {
                    result: false,
                    msg: rpc::error_msg(e),
                })
            }
            ApiKind::OpenApi => HttpResponse::build(status).json(serde_json::json!({
                "error_msg": rpc::error_msg(e),
                "error_code": e.code,
            })),
        }
    }
}

/// Paths of the OpenAPI that every master serves itself.
fn served_locally(kind: ApiKind, path: &str) -> bool {
    kind == ApiKind::OpenApi && (path.ends_with("/dm.json") || path.ends_with("/docs"))
}

/// The `wrap_fn` body of an API scope.
pub fn gate<S>(
    kind: ApiKind,
    req: ServiceRequest,
    srv: &S,
) -> LocalBoxFuture<'static, Result<ServiceResponse<BoxBody>, actix_web::Error>>
where
    S: Service<ServiceRequest, Response = ServiceResponse<BoxBody>, Error = actix_web::Error>,
    S::Future: 'static,
{
    let Some(state) = req.app_data::<web::Data<MasterState>>().cloned() else {
        return Box::pin(srv.call(req));
    };
    let forwarded = req.headers().get(FORWARDED_HEADER).cloned();
    if forwarded.is_none()
        && let Some(client) = req.peer_addr().map(|a| a.ip())
        && let Err(wait) = state.limiter.check(client, Instant::now())
    {
        let resp = limited(kind, client, wait);
        return Box::pin(async move { Ok(req.into_response(resp)) });
    }
    if state.handle.is_leader() || served_locally(kind, req.path()) {
        return Box::pin(srv.call(req));
    }
    let me = state.handle.name().to_string();
    if let Some(from) = forwarded {
        let from = String::from_utf8_lossy(from.as_bytes()).into_owned();
        return reject(
            kind,
            req,
            format!(
                "dm-master `{me}` received a request forwarded by `{from}` but is not the leader"
            ),
        );
    }
    match state.handle.leader() {
        None => reject(
            kind,
            req,
            format!("dm-master `{me}` is not the leader and no leader is elected yet"),
        ),
        Some(l) if l.name == me => reject(
            kind,
            req,
            format!("dm-master `{me}` won the election and is still starting its scheduler"),
        ),
        Some(leader) => Box::pin(forward(state, kind, req, leader)),
    }
}

/// HTTP 429 in the API's error shape, with `Retry-After`.
fn limited(kind: ApiKind, client: IpAddr, wait: Duration) -> HttpResponse {
    let e = DmError::new(
        &codes::MASTER_RATE_LIMITED,
        format!(
            "client {client} sent too many requests; retry in {} ms",
            wait.as_millis().max(1)
        ),
    );
    let mut resp = kind.error(StatusCode::TOO_MANY_REQUESTS, &e);
    if let Ok(v) = HeaderValue::from_str(&wait.as_secs_f64().ceil().max(1.0).to_string()) {
        resp.headers_mut().insert(RETRY_AFTER, v);
    }
    resp
}

fn reject(
    kind: ApiKind,
    req: ServiceRequest,
    msg: String,
) -> LocalBoxFuture<'static, Result<ServiceResponse<BoxBody>, actix_web::Error>> {
    let e = DmError::new(&codes::MASTER_NOT_LEADER_NO_FORWARD, msg);
    let resp = kind.error(StatusCode::SERVICE_UNAVAILABLE, &e);
    Box::pin(async move { Ok(req.into_response(resp)) })
}

async fn read_body(mut payload: Payload) -> Result<Vec<u8>, DmError> {
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            DmError::new(
                &codes::MASTER_NOT_LEADER_NO_FORWARD,
                "reading the request body",
            )
            .with_cause(e)
        })?;
        if body.len() + chunk.len() > MAX_BODY {
            return Err(DmError::new(
                &codes::MASTER_NOT_LEADER_NO_FORWARD,
                format!("request body is larger than {MAX_BODY} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

async fn forward(
    state: web::Data<MasterState>,
    kind: ApiKind,
    mut req: ServiceRequest,
    leader: LeaderInfo,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let resp = match relay(&state, &mut req, &leader).await {
        Ok(resp) => resp,
        Err(e) => kind.error(StatusCode::SERVICE_UNAVAILABLE, &e),
    };
    Ok(req.into_response(resp))
}

/// Sends the request to the leader and turns its answer into ours.
async fn relay(
    state: &MasterState,
    req: &mut ServiceRequest,
    leader: &LeaderInfo,
) -> Result<HttpResponse, DmError> {
    let body = read_body(req.parts_mut().1.take()).await?;
    let path = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.path().to_string(), |pq| pq.as_str().to_string());
    let url = format!("http://{}{}", leader.addr, path);
    let fail = |e: reqwest::Error| {
        DmError::new(
            &codes::MASTER_NOT_LEADER_NO_FORWARD,
            format!(
                "forwarding {} {path} to the leader `{}` failed",
                req.method(),
                leader.name
            ),
        )
        .with_cause(e)
    };
    let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes())
        .expect("an HTTP method parsed by actix is valid for reqwest");
    let mut rb = state
        .http
        .request(method, &url)
        .timeout(FORWARD_TIMEOUT)
        .header(FORWARDED_HEADER, state.handle.name())
        .body(body);
    if let Some(ct) = req.headers().get(CONTENT_TYPE) {
        rb = rb.header(reqwest::header::CONTENT_TYPE, ct.as_bytes());
    }
    debug!(leader = %leader.name, url = %url, "forwarding request to the leader");
    let resp = rb.send().await.map_err(fail)?;
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let ct = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .map(|v| v.as_bytes().to_vec());
    let bytes = resp.bytes().await.map_err(fail)?;
    let mut out = HttpResponse::build(status);
    if let Some(ct) = ct {
        out.insert_header((CONTENT_TYPE, ct));
    }
    Ok(out.body(bytes))
}
