//! Per-client request rate limiting of dm-master's HTTP API (DM's `rpc-rate-limit` /
//! `rpc-rate-burst`, which DM applies to the master's calls through its `AgentPool`).
//!
//! Each client IP gets a token bucket holding up to `burst` tokens, refilled at `rate`
//! tokens per second; a request takes one token. A request finding the bucket empty is
//! answered HTTP 429 with `{"error_msg", "error_code": 38901}` and a `Retry-After` header,
//! and never reaches the handler. `rate <= 0` turns limiting off. Buckets of clients idle
//! long enough to be full again are dropped, so memory stays bounded by the active clients.

use std::collections::HashMap;
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::body::EitherBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::{Error, HttpResponse};
use futures_util::future::{LocalBoxFuture, Ready, ready};

use crate::api::openapi::convert::error_body;
use crate::error::{DmError, codes};

/// Buckets kept before idle (full) ones are swept.
const SWEEP_ABOVE: usize = 1024;

/// One client's bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenBucket {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn full(burst: u32, now: Instant) -> Self {
        Self {
            tokens: f64::from(burst.max(1)),
            last: now,
        }
    }

    fn refill(&mut self, now: Instant, rate: f64, burst: u32) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(f64::from(burst.max(1)));
        self.last = self.last.max(now);
    }

    /// Takes a token at `now`; otherwise says how long until one is available.
    pub fn try_take(&mut self, now: Instant, rate: f64, burst: u32) -> Result<(), Duration> {
        self.refill(now, rate, burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / rate))
        }
    }

    /// Whether the bucket would be full at `now` (its client can be forgotten).
    fn is_full_at(&self, now: Instant, rate: f64, burst: u32) -> bool {
        let mut b = *self;
        b.refill(now, rate, burst);
        b.tokens >= f64::from(burst.max(1))
    }
}

/// The buckets of every client.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: u32,
    buckets: Mutex<HashMap<IpAddr, TokenBucket>>,
}

impl RateLimiter {
    /// `rate` tokens per second, buckets of `burst` (at least 1) tokens.
    pub fn new(rate: f64, burst: u32) -> Self {
        Self {
            rate,
            burst,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Whether limiting is on.
    pub fn enabled(&self) -> bool {
        self.rate > 0.0
    }

    /// Takes a token of `client` at `now`; `Err` holds the wait until the next token.
    pub fn check(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        if !self.enabled() {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() > SWEEP_ABOVE {
            buckets.retain(|_, b| !b.is_full_at(now, self.rate, self.burst));
        }
        buckets
            .entry(client)
            .or_insert_with(|| TokenBucket::full(self.burst, now))
            .try_take(now, self.rate, self.burst)
    }

    /// Clients with a bucket.
    pub fn clients(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// actix-web middleware: `.wrap(RateLimit::new(cfg.rpc_rate_limit, cfg.rpc_rate_burst))`.
/// Requests without a peer address (unix sockets, tests) are not limited.
#[derive(Debug, Clone)]
pub struct RateLimit {
    limiter: Arc<RateLimiter>,
}

impl RateLimit {
    /// `rate` requests per second per client IP, bursts of `burst`; `rate <= 0` disables.
    pub fn new(rate: f64, burst: u32) -> Self {
        Self {
            limiter: Arc::new(RateLimiter::new(rate, burst)),
        }
    }
}

impl<S, B> Transform<S, ServiceRequest> for RateLimit
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = RateLimitMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RateLimitMiddleware {
            service: Rc::new(service),
            limiter: self.limiter.clone(),
        }))
    }
}

/// The service [`RateLimit`] wraps around the app.
pub struct RateLimitMiddleware<S> {
    service: Rc<S>,
    limiter: Arc<RateLimiter>,
}

fn rejection(limiter: &RateLimiter, client: IpAddr, wait: Duration) -> HttpResponse {
    let err = DmError::new(
        &codes::MASTER_RATE_LIMITED,
        format!(
            "client {client} sent more than {} requests/s (burst {}); retry in {} ms",
            limiter.rate,
            limiter.burst.max(1),
            wait.as_millis().max(1)
        ),
    );
    HttpResponse::TooManyRequests()
        .insert_header((
            "Retry-After",
            wait.as_secs_f64().ceil().max(1.0).to_string(),
        ))
        .json(error_body(&err))
}

impl<S, B> Service<ServiceRequest> for RateLimitMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        if let Some(client) = req.peer_addr().map(|a| a.ip())
            && let Err(wait) = self.limiter.check(client, Instant::now())
        {
            let resp = rejection(&self.limiter, client, wait);
            return Box::pin(ready(Ok(req.into_response(resp).map_into_right_body())));
        }
        let fut = self.service.call(req);
        Box::pin(async move { fut.await.map(ServiceResponse::map_into_left_body) })
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddr};

    use actix_web::test as atest;
    use actix_web::{App, HttpResponse, web};

    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
    }

    #[test]
    fn bucket_allows_a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::full(3, t0);
        for _ in 0..3 {
            assert_eq!(b.try_take(t0, 10.0, 3), Ok(()));
        }
        let wait = b.try_take(t0, 10.0, 3).unwrap_err();
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-9, "{wait:?}");
        // 50 ms later: half a token, still refused, and the wait shrank.
        let wait2 = b
            .try_take(t0 + Duration::from_millis(50), 10.0, 3)
            .unwrap_err();
        assert!((wait2.as_secs_f64() - 0.05).abs() < 1e-9, "{wait2:?}");
        assert_eq!(b.try_take(t0 + Duration::from_millis(100), 10.0, 3), Ok(()));
        // A long pause refills only up to the burst.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(b.try_take(later, 10.0, 3), Ok(()));
        }
        assert!(b.try_take(later, 10.0, 3).is_err());
    }

    #[test]
    fn clock_going_backwards_does_not_mint_tokens() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut b = TokenBucket::full(1, t0);
        assert!(b.try_take(t0, 1.0, 1).is_ok());
        assert!(b.try_take(t0 - Duration::from_secs(5), 1.0, 1).is_err());
        assert!(b.try_take(t0 + Duration::from_millis(999), 1.0, 1).is_err());
        assert!(b.try_take(t0 + Duration::from_secs(1), 1.0, 1).is_ok());
    }

    #[test]
    fn clients_have_their_own_buckets_and_idle_ones_are_swept() {
        let l = RateLimiter::new(1.0, 2);
        let t0 = Instant::now();
        assert!(l.check(ip(1), t0).is_ok());
        assert!(l.check(ip(1), t0).is_ok());
        assert!(l.check(ip(1), t0).is_err());
        assert!(l.check(ip(2), t0).is_ok(), "another client is not affected");
        for i in 0..=SWEEP_ABOVE {
            let a = IpAddr::V6(std::net::Ipv6Addr::from(i as u128 + 1));
            l.check(a, t0).unwrap();
        }
        assert!(l.clients() > SWEEP_ABOVE);
        // Ten seconds on, every bucket is full again and the next check sweeps them.
        assert!(l.check(ip(3), t0 + Duration::from_secs(10)).is_ok());
        assert_eq!(l.clients(), 1);
    }

    #[test]
    fn zero_rate_disables_and_zero_burst_means_one() {
        let off = RateLimiter::new(0.0, 0);
        let t0 = Instant::now();
        for _ in 0..100 {
            assert!(off.check(ip(1), t0).is_ok());
        }
        let one = RateLimiter::new(1.0, 0);
        assert!(one.check(ip(1), t0).is_ok());
        assert!(one.check(ip(1), t0).is_err());
    }

    #[actix_rt::test]
    async fn middleware_answers_429_with_dm_error_body() {
        let app = atest::init_service(App::new().wrap(RateLimit::new(0.001, 2)).route(
            "/x",
            web::get().to(|| async { HttpResponse::Ok().body("ok") }),
        ))
        .await;
        let req = |last: u8| {
            atest::TestRequest::get()
                .uri("/x")
                .peer_addr(SocketAddr::new(ip(last), 40000))
                .to_request()
        };
        for _ in 0..2 {
            let resp = atest::call_service(&app, req(1)).await;
            assert_eq!(resp.status(), 200);
        }
        let resp = atest::call_service(&app, req(1)).await;
        assert_eq!(resp.status(), 429);
        assert!(resp.headers().contains_key("retry-after"));
        let body: serde_json::Value = atest::read_body_json(resp).await;
        assert_eq!(body["error_code"], 38901);
        assert!(
            body["error_msg"]
                .as_str()
                .unwrap()
                .contains("client 127.0.0.1")
        );
        let resp = atest::call_service(&app, req(2)).await;
        assert_eq!(resp.status(), 200, "another client still passes");
    }
}
