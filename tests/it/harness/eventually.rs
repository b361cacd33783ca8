//! Polling with a deadline, the only way tests wait for something to happen.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// Pause between two evaluations of a condition.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Evaluates `condition` every [`POLL_INTERVAL`] until it returns `true`; panics after `timeout`.
pub async fn eventually<F, Fut>(timeout: Duration, condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    eventually_msg(timeout, "condition", condition).await;
}

/// Like [`eventually`], naming `what` was awaited in the panic message.
pub async fn eventually_msg<F, Fut>(timeout: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if condition().await {
            return;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}
