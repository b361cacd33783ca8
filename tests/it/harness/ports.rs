//! Free TCP ports on 127.0.0.1.
//!
//! A port is found by binding `127.0.0.1:0` and dropping the listener. Every port handed out is
//! remembered for the life of the test process and never handed out twice, so two servers of the
//! same process cannot race for one port; a clash with another process is still possible, which
//! is why server start-up retries on "address already in use" (see `process::start_with_retry`).

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::{Mutex, OnceLock};

/// Returns a port on 127.0.0.1 that was free a moment ago and was never returned before by this
/// process.
pub fn free_port() -> u16 {
    static HANDED_OUT: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let handed_out = HANDED_OUT.get_or_init(Default::default);
    for _ in 0..1000 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("bind 127.0.0.1:0 to find a free port")
            .port();
        if handed_out.lock().expect("port set poisoned").insert(port) {
            return port;
        }
    }
    panic!("no new free port on 127.0.0.1 after 1000 attempts");
}
