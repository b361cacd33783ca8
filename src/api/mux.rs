//! One port for HTTP and etcd's gRPC, as DM's dm-master serves both on `master-addr`.
//!
//! Each accepted connection's first bytes are peeked: an HTTP/2 client preface (`PRI * HTTP/2.0`,
//! which is how gRPC clients such as etcdctl, etcd-client and dm-worker open a connection) is
//! spliced byte for byte to the etcd member's private client port; anything else is HTTP/1.x
//! and goes to the actix-web application on the same socket, so handlers still see the real
//! peer address (the per-client rate limit depends on it).
//!
//! The HTTP side is actix-web's own service stack (`HttpService` over the `App`), mounted on an
//! actix-server listener instead of `HttpServer`, whose listeners cannot route a connection
//! elsewhere.

use std::fmt;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use actix_http::{HttpService, Request, Response, body::MessageBody, error::DispatchError};
use actix_rt::net::TcpStream;
use actix_service::{
    IntoServiceFactory, Service, ServiceFactory, ServiceFactoryExt, fn_factory, fn_service,
    map_config,
};
use actix_web::dev::AppConfig;
use tracing::debug;

/// The start of the HTTP/2 connection preface (RFC 9113 §3.4). No HTTP/1 method starts with
/// `PRI`, so three bytes decide.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Bytes needed to tell HTTP/2 from HTTP/1.
const SNIFF_LEN: usize = 3;
/// Longest a client may take to send its first bytes before it is treated as HTTP/1 (whose
/// own timeouts then apply).
const SNIFF_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a stopping server waits for open connections (etcd watches stay open for good).
const SHUTDOWN_TIMEOUT: u64 = 2;

/// What a connection speaks, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.x: the actix-web application.
    Http1,
    /// HTTP/2 with prior knowledge: gRPC for the etcd member.
    Grpc,
}

/// Classifies a connection by its first bytes; `None` while more bytes are needed.
pub fn classify(first: &[u8]) -> Option<Protocol> {
    let n = first.len().min(SNIFF_LEN);
    if first.is_empty() {
        return None;
    }
    if !H2_PREFACE.starts_with(&first[..n]) {
        return Some(Protocol::Http1);
    }
    (n >= SNIFF_LEN).then_some(Protocol::Grpc)
}

async fn sniff(io: &TcpStream) -> Protocol {
    let deadline = tokio::time::Instant::now() + SNIFF_TIMEOUT;
    let mut buf = [0u8; SNIFF_LEN];
    loop {
        let n = match tokio::time::timeout_at(deadline, io.peek(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => n,
            // Closed, failed or silent: let the HTTP/1 dispatcher deal with it.
            _ => return Protocol::Http1,
        };
        if let Some(p) = classify(&buf[..n]) {
            return p;
        }
        // A preface split across segments: peek returns at once while bytes are buffered, so
        // wait a moment for the rest instead of spinning.
        if tokio::time::Instant::now() >= deadline {
            return Protocol::Http1;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn splice(mut io: TcpStream, target: Option<SocketAddr>) -> Result<(), DispatchError> {
    let Some(target) = target else {
        debug!("gRPC connection refused: this dm-master runs no etcd member");
        return Ok(());
    };
    let mut up = TcpStream::connect(target)
        .await
        .map_err(DispatchError::Io)?;
    let _ = io.set_nodelay(true);
    let _ = up.set_nodelay(true);
    // Either side closing ends the splice; errors are connection-level and end it too.
    if let Err(e) = tokio::io::copy_bidirectional(&mut io, &mut up).await {
        debug!(error = %e, "etcd client connection ended");
    }
    Ok(())
}

/// Serves the actix-web application `factory` on `listener`, routing gRPC connections to
/// `grpc_target` (the etcd member's private client address; `None` closes them). Runs
/// `workers` threads, stops on SIGINT/SIGTERM like `HttpServer`.
pub fn serve<F, I, S, B>(
    listener: std::net::TcpListener,
    workers: usize,
    grpc_target: Option<SocketAddr>,
    factory: F,
) -> std::io::Result<actix_server::Server>
where
    F: Fn() -> I + Send + Clone + 'static,
    I: IntoServiceFactory<S, Request>,
    S: ServiceFactory<Request, Config = AppConfig> + 'static,
    S::Error: Into<actix_web::Error> + 'static,
    S::InitError: fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    <S::Service as Service<Request>>::Future: 'static,
    S::Service: 'static,
    B: MessageBody + 'static,
{
    let local = listener.local_addr()?;
    let server = actix_server::Server::build()
        .workers(workers)
        .shutdown_timeout(SHUTDOWN_TIMEOUT)
        .listen("dm-master", listener, move || {
            let app = factory()
                .into_factory()
                .map_err(|err: S::Error| err.into().error_response());
            let http = HttpService::build()
                .local_addr(local)
                .finish(map_config(app, |_| AppConfig::default()))
                .tcp();
            fn_factory(move || {
                let make = http.new_service(());
                async move {
                    let svc = Rc::new(make.await?);
                    Ok::<_, ()>(fn_service(move |io: TcpStream| {
                        let svc = Rc::clone(&svc);
                        async move {
                            match sniff(&io).await {
                                Protocol::Grpc => splice(io, grpc_target).await,
                                Protocol::Http1 => svc.call(io).await,
                            }
                        }
                    }))
                }
            })
        })?
        .run();
    Ok(server)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_bytes_pick_the_protocol() {
        assert_eq!(classify(b""), None);
        assert_eq!(classify(b"P"), None);
        assert_eq!(classify(b"PR"), None);
        assert_eq!(classify(b"PRI"), Some(Protocol::Grpc));
        assert_eq!(classify(H2_PREFACE), Some(Protocol::Grpc));
        assert_eq!(classify(b"POST /api"), Some(Protocol::Http1));
        assert_eq!(classify(b"PUT /x"), Some(Protocol::Http1));
        assert_eq!(classify(b"PATCH /x"), Some(Protocol::Http1));
        assert_eq!(classify(b"GET / HTTP/1.1"), Some(Protocol::Http1));
        assert_eq!(classify(b"\x16\x03\x01"), Some(Protocol::Http1));
    }
}
