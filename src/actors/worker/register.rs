//! Registration of a dm-worker with the masters in `join` (DM's `JoinMaster`): POST
//! `/internal/v1/workers/register` `{name, address}` to each master in turn until one answers
//! `result: true` (a follower forwards to the leader); the answer says where etcd is.
//!
//! While no master accepts, rounds repeat with [`Backoff::infrastructure`]; each master's
//! failure is logged once per round. A refusal because the name belongs to another worker
//! (code 46003) cannot heal by waiting and ends the registration with that error.

use std::time::Duration;

use tracing::{info, warn};

use crate::backoff::Backoff;
use crate::config::SecretKey;
use crate::error::{DmError, codes};
use crate::messages::rpc::{RegisterWorkerRequest, RegisterWorkerResponse};

/// Timeout of one registration request.
pub const REGISTER_TIMEOUT: Duration = Duration::from_secs(3);

/// What a successful registration gives the worker.
#[derive(Debug, Clone)]
pub struct Registration {
    /// The master that accepted.
    pub master: String,
    pub etcd_endpoints: Vec<String>,
    pub secret_key: Option<SecretKey>,
}

/// The DM error code at the start of a `msg` (`[code=46003:class=…`), if any.
pub fn msg_code(msg: &str) -> Option<u32> {
    let rest = msg.trim_start().strip_prefix("[code=")?;
    let end = rest.find(|c: char| !c.is_ascii_digit())?;
    rest[..end].parse().ok()
}

/// `http://host:port/internal/v1/workers/register` for a `join` entry (with or without
/// scheme).
pub fn register_url(master: &str) -> String {
    let base = master.trim().trim_end_matches('/');
    if base.starts_with("http://") || base.starts_with("https://") {
        format!("{base}/internal/v1/workers/register")
    } else {
        format!("http://{base}/internal/v1/workers/register")
    }
}

/// Why one master did not accept.
enum Refusal {
    /// Unreachable, bad answer, or a refusal that may heal (no leader yet).
    Retry(String),
    /// A refusal that waiting cannot fix.
    Fatal(DmError),
}

async fn try_master(
    http: &reqwest::Client,
    master: &str,
    req: &RegisterWorkerRequest,
) -> Result<RegisterWorkerResponse, Refusal> {
    let resp = http
        .post(register_url(master))
        .json(req)
        .send()
        .await
        .map_err(|e| Refusal::Retry(e.to_string()))?;
    let status = resp.status();
    let body: RegisterWorkerResponse = resp
        .json()
        .await
        .map_err(|e| Refusal::Retry(format!("HTTP {status}: {e}")))?;
    if body.result && !body.etcd_endpoints.is_empty() {
        return Ok(body);
    }
    if msg_code(&body.msg) == Some(codes::SCHEDULER_WORKER_EXIST.code) {
        return Err(Refusal::Fatal(
            DmError::new(
                &codes::WORKER_FAIL_CONNECT_MASTER,
                format!("master {master} refused the registration of `{}`", req.name),
            )
            .with_cause_text(body.msg),
        ));
    }
    Err(Refusal::Retry(if body.msg.is_empty() {
        format!("HTTP {status}: no etcd endpoints in the answer")
    } else {
        body.msg
    }))
}

/// Registers `req` with the first master of `masters` that accepts, retrying rounds forever
/// while none does. Errors only for a refusal that waiting cannot fix.
pub async fn register(
    masters: &[String],
    req: &RegisterWorkerRequest,
) -> Result<Registration, DmError> {
    let http = reqwest::Client::builder()
        .timeout(REGISTER_TIMEOUT)
        .no_proxy()
        .build()
        .expect("a plain HTTP client builds");
    let mut backoff = Backoff::infrastructure();
    let mut round = 0u64;
    loop {
        round += 1;
        for master in masters {
            match try_master(&http, master, req).await {
                Ok(body) => {
                    info!(worker = %req.name, master = %master, etcd = %body.etcd_endpoints.join(","), round, "registered with the master");
                    let secret_key = if body.secret_key.is_empty() {
                        None
                    } else {
                        match SecretKey::from_hex(&body.secret_key) {
                            Ok(k) => Some(k),
                            Err(e) => {
                                warn!(worker = %req.name, master = %master, error = %e, "the master's secret key is not valid; encrypted passwords stay undecrypted");
                                None
                            }
                        }
                    };
                    return Ok(Registration {
                        master: master.clone(),
                        etcd_endpoints: body.etcd_endpoints,
                        secret_key,
                    });
                }
                Err(Refusal::Fatal(e)) => return Err(e),
                Err(Refusal::Retry(e)) => {
                    warn!(worker = %req.name, master = %master, round, error = %e, "registration with the master failed")
                }
            }
        }
        let wait = backoff.next_delay();
        warn!(worker = %req.name, round, wait_ms = wait.as_millis() as u64, "no master accepted the registration; retrying");
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_read_from_dm_messages() {
        assert_eq!(
            msg_code("[code=46003:class=scheduler:scope=internal:level=high], Message: x"),
            Some(46003)
        );
        assert_eq!(msg_code("no leader"), None);
        assert_eq!(msg_code("[code=]"), None);
    }

    #[test]
    fn urls_accept_both_join_forms() {
        assert_eq!(
            register_url("127.0.0.1:8261"),
            "http://127.0.0.1:8261/internal/v1/workers/register"
        );
        assert_eq!(
            register_url("http://h:1/"),
            "http://h:1/internal/v1/workers/register"
        );
    }
}
