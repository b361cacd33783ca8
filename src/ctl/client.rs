//! dmctl's HTTP client of dm-master's gateway (`/apis/v1alpha1/`).
//!
//! Addresses are tried in the order given: one that cannot be connected to (refused, no route,
//! connect timeout) is skipped and the next one tried, as DM's dmctl does on `Unavailable`. Once
//! a master has accepted the connection its answer is final (a request is never sent twice, so
//! `start-task` cannot run twice), except an HTTP 429 of the master's request rate limit,
//! which is answered before the request is handled: it is retried after `Retry-After` (at most
//! [`RATE_LIMIT_RETRY_MAX`]) while `--rpc-timeout` allows, since DM's master queues such
//! requests rather than refusing them. Any master works: followers forward to the leader.

use std::time::Duration;

use reqwest::{Method, Url};
use serde::Serialize;

use crate::error::{DmError, codes};

/// Longest a TCP connect to one master may take before the next address is tried.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Longest pause before retrying a request the master turned away as over its rate limit.
pub const RATE_LIMIT_RETRY_MAX: Duration = Duration::from_secs(1);

/// Gateway path prefix.
pub const GATEWAY: &str = "/apis/v1alpha1";

/// A master's answer: the body text as received and its parsed JSON.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The address that answered.
    pub addr: String,
    /// HTTP status code.
    pub status: u16,
    /// The body as received.
    pub text: String,
    /// The body parsed.
    pub json: serde_json::Value,
}

impl Answer {
    /// DM's `result` field (absent = false).
    pub fn result(&self) -> bool {
        self.json.get("result").and_then(|v| v.as_bool()) == Some(true)
    }
}

/// Client of a list of masters.
#[derive(Debug, Clone)]
pub struct MasterClient {
    addrs: Vec<String>,
    http: reqwest::Client,
    timeout: Duration,
}

impl MasterClient {
    /// `master_addr` is DM's comma-separated `host:port` list (an `http://` prefix is
    /// accepted); `timeout` bounds each request.
    pub fn new(master_addr: &str, timeout: Duration) -> Result<Self, DmError> {
        let addrs: Vec<String> = master_addr
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .collect();
        if addrs.is_empty() {
            return Err(DmError::new(
                &codes::CTL_INVALID_ARGS,
                "--master-addr not provided, this parameter is required when interacting with the dm-master, you can also use environment variable 'DM_MASTER_ADDR' to specify the value",
            ));
        }
        for a in &addrs {
            base_url(a)?;
        }
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(timeout)
            .no_proxy()
            .build()
            .map_err(|e| {
                DmError::new(&codes::CTL_CONNECT_MASTER, "cannot build the HTTP client")
                    .with_cause(e)
            })?;
        Ok(Self {
            addrs,
            http,
            timeout,
        })
    }

    /// The addresses in the order they are tried.
    pub fn addrs(&self) -> &[String] {
        &self.addrs
    }

    /// Sends `method` to `path` (segments already encoded) with `query` pairs and a JSON
    /// `body`, trying each master until one accepts the connection.
    pub async fn call<B: Serialize>(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&B>,
    ) -> Result<Answer, DmError> {
        let mut failures = Vec::new();
        let deadline = tokio::time::Instant::now() + self.timeout;
        for addr in &self.addrs {
            let url = endpoint(addr, segments, query)?;
            let sent = loop {
                let mut req = self.http.request(method.clone(), url.clone());
                if let Some(b) = body {
                    req = req.json(b);
                }
                let sent = req.send().await;
                match sent.as_ref().ok().and_then(rate_limited) {
                    Some(wait) if tokio::time::Instant::now() + wait < deadline => {
                        tokio::time::sleep(wait).await;
                    }
                    _ => break sent,
                }
            };
            match sent {
                Ok(resp) => return read_answer(addr, &url, resp).await,
                Err(e) if e.is_connect() => failures.push(format!("{addr}: {}", error_text(&e))),
                Err(e) => {
                    return Err(DmError::new(
                        &codes::CTL_CONNECT_MASTER,
                        format!("request {method} {url} failed"),
                    )
                    .with_cause_text(error_text(&e)));
                }
            }
        }
        let mut err = DmError::new(
            &codes::CTL_CONNECT_MASTER,
            format!("can't connect to {}", self.addrs.join(",")),
        );
        for f in failures {
            err = err.with_cause_text(f);
        }
        Err(err)
    }
}

/// The pause before a retry when `resp` is a rate-limit refusal (HTTP 429).
fn rate_limited(resp: &reqwest::Response) -> Option<Duration> {
    if resp.status() != reqwest::StatusCode::TOO_MANY_REQUESTS {
        return None;
    }
    let after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
        .unwrap_or(Duration::from_millis(250));
    Some(after.min(RATE_LIMIT_RETRY_MAX))
}

async fn read_answer(addr: &str, url: &Url, resp: reqwest::Response) -> Result<Answer, DmError> {
    let status = resp.status().as_u16();
    let text = resp.text().await.map_err(|e| {
        DmError::new(
            &codes::CTL_CONNECT_MASTER,
            format!("reading the answer of {url} failed"),
        )
        .with_cause_text(error_text(&e))
    })?;
    match serde_json::from_str(&text) {
        Ok(json) => Ok(Answer {
            addr: addr.to_string(),
            status,
            text,
            json,
        }),
        Err(e) => Err(DmError::new(
            &codes::CTL_INVALID_RESPONSE,
            format!("{url} answered HTTP {status} without a JSON body"),
        )
        .with_cause(e)
        .with_cause_text(format!(
            "body: {}",
            text.chars().take(300).collect::<String>()
        ))),
    }
}

/// The error and its sources (reqwest's Display hides the reason, e.g. "connection refused").
fn error_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn base_url(addr: &str) -> Result<Url, DmError> {
    let text = if addr.contains("://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    };
    Url::parse(&text).map_err(|e| {
        DmError::new(
            &codes::CTL_INVALID_ARGS,
            format!("--master-addr `{addr}` is not host:port"),
        )
        .with_cause(e)
    })
}

/// `http://addr/apis/v1alpha1/<segments…>?query`, each segment percent-encoded.
fn endpoint(addr: &str, segments: &[&str], query: &[(&str, String)]) -> Result<Url, DmError> {
    let mut url = base_url(addr)?;
    {
        let mut path = url.path_segments_mut().map_err(|()| {
            DmError::new(
                &codes::CTL_INVALID_ARGS,
                format!("--master-addr `{addr}` cannot be a base URL"),
            )
        })?;
        path.clear();
        path.extend(GATEWAY.trim_start_matches('/').split('/'));
        path.extend(segments);
    }
    if !query.is_empty() {
        let mut pairs = url.query_pairs_mut();
        for (k, v) in query {
            pairs.append_pair(k, v);
        }
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_encode_segments_and_query() {
        let u = endpoint(
            "127.0.0.1:8261",
            &["status", "my task/x"],
            &[("sources", "a b".into()), ("sources", "c".into())],
        )
        .unwrap();
        assert_eq!(
            u.as_str(),
            "http://127.0.0.1:8261/apis/v1alpha1/status/my%20task%2Fx?sources=a+b&sources=c"
        );
        let u = endpoint("http://h:1", &["members"], &[]).unwrap();
        assert_eq!(u.as_str(), "http://h:1/apis/v1alpha1/members");
    }

    #[test]
    fn empty_or_bad_master_addr_is_invalid_args() {
        let e = MasterClient::new(" , ", Duration::from_secs(1)).unwrap_err();
        assert_eq!(e.code, codes::CTL_INVALID_ARGS.code);
        let c = MasterClient::new("a:1, b:2", Duration::from_secs(1)).unwrap();
        assert_eq!(c.addrs(), ["a:1", "b:2"]);
    }

    #[test]
    fn unreachable_masters_are_all_tried() {
        // Bind and drop: nothing listens on these ports any more.
        let ports: Vec<u16> = (0..2)
            .map(|_| {
                std::net::TcpListener::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
                    .port()
            })
            .collect();
        let addrs = format!("127.0.0.1:{},127.0.0.1:{}", ports[0], ports[1]);
        let client = MasterClient::new(&addrs, Duration::from_secs(2)).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let err = rt
            .block_on(client.call::<()>(Method::GET, &["members"], &[], None))
            .unwrap_err();
        assert_eq!(err.code, codes::CTL_CONNECT_MASTER.code);
        assert_eq!(err.causes.len(), 2, "{err:?}");
        assert!(err.to_string().contains(&addrs), "{err}");
    }

    /// An HTTP/1.1 answer with `status`, extra `headers` and `body`.
    fn http(status: &str, headers: &str, body: &str) -> String {
        format!(
            "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    }

    /// A one-connection-per-answer HTTP server giving `answers` in order.
    async fn serve(answers: Vec<String>) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            for answer in answers {
                let (mut sock, _) = listener.accept().await.unwrap();
                let mut buf = vec![0u8; 4096];
                let _ = sock.read(&mut buf).await;
                sock.write_all(answer.as_bytes()).await.unwrap();
                sock.shutdown().await.unwrap();
            }
        });
        addr
    }

    #[test]
    fn rate_limited_requests_are_retried_and_answers_kept_verbatim() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let addr = serve(vec![
                http("429 Too Many Requests", "Retry-After: 0\r\n", "{}"),
                http("200 OK", "", r#"{"result":true,"msg":"ok"}"#),
            ])
            .await;
            let client = MasterClient::new(&addr, Duration::from_secs(5)).unwrap();
            let a = client
                .call::<()>(Method::GET, &["members"], &[], None)
                .await
                .unwrap();
            assert_eq!(a.status, 200);
            assert!(a.result());
            assert_eq!(a.text, r#"{"result":true,"msg":"ok"}"#);

            let addr = serve(vec![http("404 Not Found", "", "not found")]).await;
            let client = MasterClient::new(&addr, Duration::from_secs(5)).unwrap();
            let e = client
                .call::<()>(Method::GET, &["members"], &[], None)
                .await
                .unwrap_err();
            assert_eq!(e.code, codes::CTL_INVALID_RESPONSE.code, "{e}");
        });
    }
}
