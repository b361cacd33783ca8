//! Polling with a deadline, the only way tests wait for something to happen.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// Pause between two evaluations of a condition.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// The one polling loop: evaluates `probe` every `interval` until it returns `Some`, and returns
/// that value; returns `None` once `timeout` has passed without one (the probe is evaluated at
/// least once, and once more at the deadline).
///
/// For waits whose failure report needs what the probe saw or borrows what it borrows: the
/// caller builds its panic message after a `None`. `probe` may be an async closure that
/// mutates captured state (`async || { last = Some(x); None }`).
pub async fn try_eventually<T, F>(timeout: Duration, interval: Duration, mut probe: F) -> Option<T>
where
    F: AsyncFnMut() -> Option<T>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(interval).await;
    }
}

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
    if try_eventually(timeout, POLL_INTERVAL, async || {
        condition().await.then_some(())
    })
    .await
    .is_none()
    {
        panic!("timed out after {timeout:?} waiting for {what}");
    }
}
