//! Supervision pacing shared by actors and units: [`Backoff`] (bounded, jittered, reset after
//! stable running) paces restarts of infrastructure actors, reconnects and DM's auto-resume of
//! failed units; [`RestartBudget`] gives up on a child that keeps failing. Plain data.

use std::time::{Duration, Instant};

/// Exponential backoff with ±`jitter` and a reset after `stable` of uninterrupted running.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    factor: f64,
    jitter: f64,
    stable: Duration,
    current: Duration,
    started: Option<Instant>,
}

impl Backoff {
    /// `min` doubling (×`factor`) up to `max`, with ±`jitter` (0.0–1.0) randomisation.
    pub fn new(min: Duration, max: Duration, factor: f64, jitter: f64, stable: Duration) -> Self {
        Self {
            min,
            max,
            factor: factor.max(1.0),
            jitter: jitter.clamp(0.0, 1.0),
            stable,
            current: min,
            started: None,
        }
    }

    /// Infrastructure actors: 500 ms doubling to 30 s, ±20 %, reset after 60 s running.
    pub fn infrastructure() -> Self {
        Self::new(
            Duration::from_millis(500),
            Duration::from_secs(30),
            2.0,
            0.2,
            Duration::from_secs(60),
        )
    }

    /// DM's auto-resume of failed units: 1 s doubling to 5 min, ±20 %, reset after 5 min.
    pub fn auto_resume() -> Self {
        Self::new(
            Duration::from_secs(1),
            Duration::from_secs(300),
            2.0,
            0.2,
            Duration::from_secs(300),
        )
    }

    /// Call when the guarded thing (re)started successfully.
    pub fn mark_started(&mut self) {
        self.started = Some(Instant::now());
    }

    /// The wait before the next attempt; grows with each call unless the last run was stable.
    pub fn next_delay(&mut self) -> Duration {
        if self
            .started
            .take()
            .is_some_and(|s| s.elapsed() >= self.stable)
        {
            self.current = self.min;
        }
        let base = self.current;
        self.current = base.mul_f64(self.factor).min(self.max);
        let spread = 1.0 + self.jitter * (rand::random::<f64>() * 2.0 - 1.0);
        base.mul_f64(spread).min(self.max)
    }
}

/// At most `limit` restarts within a sliding `window`: a child that keeps failing is given up
/// on instead of being restarted forever.
#[derive(Debug, Clone)]
pub struct RestartBudget {
    limit: usize,
    window: Duration,
    taken: std::collections::VecDeque<Instant>,
}

impl RestartBudget {
    pub fn new(limit: usize, window: Duration) -> Self {
        Self {
            limit,
            window,
            taken: std::collections::VecDeque::new(),
        }
    }

    /// Takes one restart at `now`; false when `limit` were already taken within `window`.
    pub fn take(&mut self, now: Instant) -> bool {
        while self
            .taken
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            self.taken.pop_front();
        }
        if self.taken.len() >= self.limit {
            return false;
        }
        self.taken.push_back(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_budget_refuses_past_its_limit_within_the_window() {
        let mut b = RestartBudget::new(2, Duration::from_secs(10));
        let t0 = Instant::now();
        assert!(b.take(t0));
        assert!(b.take(t0 + Duration::from_secs(1)));
        assert!(!b.take(t0 + Duration::from_secs(2)));
        // The first restart leaves the window: one more is allowed.
        assert!(b.take(t0 + Duration::from_secs(10)));
        assert!(!b.take(t0 + Duration::from_secs(10)));
    }

    #[test]
    fn backoff_grows_to_max_and_stays_within_jitter() {
        let mut b = Backoff::new(
            Duration::from_millis(100),
            Duration::from_secs(1),
            2.0,
            0.2,
            Duration::from_secs(60),
        );
        let expected = [100u64, 200, 400, 800, 1000, 1000];
        for e in expected {
            let d = b.next_delay().as_millis() as u64;
            assert!(
                d >= e * 8 / 10 && d <= (e * 12 / 10).min(1000),
                "{d} not near {e}"
            );
        }
    }

    #[test]
    fn backoff_resets_after_stable_run() {
        let mut b = Backoff::new(
            Duration::from_millis(100),
            Duration::from_secs(10),
            2.0,
            0.0,
            Duration::ZERO,
        );
        b.next_delay();
        b.next_delay();
        b.mark_started();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
    }
}
