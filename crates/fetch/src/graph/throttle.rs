//! One pace for the whole process: a token-bucket rate limiter shared by every worker, a pause
//! gate that holds every worker back after a `Retry-After`, backoff with full jitter, and a
//! circuit breaker for a run that only fails.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::time::Instant;

use super::error::GraphError;

pub struct Throttle {
    limiter: DefaultDirectRateLimiter,
    paused_until: Mutex<Option<Instant>>,
    consecutive_failures: AtomicU32,
    breaker_threshold: u32,
    last_failure: Mutex<String>,
}

impl Throttle {
    /// `rate` requests per second with a burst of one second's worth (at least 1).
    pub fn new(rate: f64, breaker_threshold: u32) -> Self {
        let rate = if rate.is_finite() && rate > 0.0 {
            rate
        } else {
            1.0
        };
        let burst =
            NonZeroU32::new(rate.floor().clamp(1.0, 10_000.0) as u32).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(Duration::from_secs_f64(1.0 / rate))
            .map_or_else(|| Quota::per_second(burst), |q| q.allow_burst(burst));
        Throttle {
            limiter: RateLimiter::direct(quota),
            paused_until: Mutex::new(None),
            consecutive_failures: AtomicU32::new(0),
            breaker_threshold: breaker_threshold.max(1),
            last_failure: Mutex::new(String::new()),
        }
    }

    /// Waits until this worker may send: the pause gate first, then the rate limiter, then the
    /// gate again (a 429 may have arrived meanwhile). Fails fast once the breaker is open.
    pub async fn admit(&self) -> Result<(), GraphError> {
        loop {
            self.check_breaker()?;
            self.wait_for_gate().await;
            self.limiter.until_ready().await;
            if self
                .gate_deadline()
                .is_none_or(|until| until <= Instant::now())
            {
                return Ok(());
            }
        }
    }

    fn gate_deadline(&self) -> Option<Instant> {
        *self.paused_until.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn wait_for_gate(&self) {
        while let Some(until) = self.gate_deadline().filter(|until| *until > Instant::now()) {
            tokio::time::sleep_until(until).await;
        }
    }

    /// A server said `Retry-After`: every worker waits until then.
    pub fn pause_for(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut paused = self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
        if paused.is_none_or(|current| current < until) {
            *paused = Some(until);
        }
    }

    pub fn succeeded(&self) {
        self.consecutive_failures.store(0, Ordering::Relaxed);
    }

    pub fn failed(&self, what: &str) {
        self.consecutive_failures.fetch_add(1, Ordering::Relaxed);
        *self.last_failure.lock().unwrap_or_else(|e| e.into_inner()) = what.to_owned();
    }

    fn check_breaker(&self) -> Result<(), GraphError> {
        let failures = self.consecutive_failures.load(Ordering::Relaxed);
        if failures >= self.breaker_threshold {
            let last = self
                .last_failure
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            return Err(GraphError::CircuitOpen { failures, last });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_every_worker_back() {
        let throttle = std::sync::Arc::new(Throttle::new(1000.0, 10));
        throttle.pause_for(Duration::from_millis(2128));
        let started = Instant::now();
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let throttle = throttle.clone();
                tokio::spawn(async move {
                    throttle.admit().await.unwrap();
                    Instant::now()
                })
            })
            .collect();
        for worker in workers {
            assert!(worker.await.unwrap() - started >= Duration::from_millis(2128));
        }
    }

    #[tokio::test]
    async fn the_breaker_opens_after_consecutive_failures_and_a_success_closes_it() {
        let throttle = Throttle::new(1000.0, 3);
        throttle.failed("a");
        throttle.failed("b");
        throttle.succeeded();
        throttle.failed("c");
        throttle.failed("d");
        assert!(throttle.admit().await.is_ok());
        throttle.failed("e");
        assert!(
            matches!(throttle.admit().await, Err(GraphError::CircuitOpen { failures: 3, last }) if last == "e")
        );
    }
}
