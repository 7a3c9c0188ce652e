//! "N calls per minute" as the Microsoft APIs state their limits: a sliding window per caller.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct SlidingWindow {
    limit: usize,
    window: Duration,
    calls: HashMap<String, VecDeque<Instant>>,
}

impl SlidingWindow {
    pub fn new(limit: usize, window: Duration) -> Self {
        SlidingWindow {
            limit: limit.max(1),
            window,
            calls: HashMap::new(),
        }
    }

    /// Counts a call by `caller` at `now`, or says how long until one more would be allowed
    /// (a refused call is not counted).
    pub fn try_call(&mut self, caller: &str, now: Instant) -> Result<(), Duration> {
        let calls = self.calls.entry(caller.to_owned()).or_default();
        while calls
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= self.window)
        {
            calls.pop_front();
        }
        if calls.len() < self.limit {
            calls.push_back(now);
            return Ok(());
        }
        let oldest = calls.front().copied().unwrap_or(now);
        Err((oldest + self.window).saturating_duration_since(now))
    }

    pub fn clear(&mut self) {
        self.calls.clear();
    }
}

/// A wait as the whole seconds a 429 names: rounded up, at least 1, so a client that obeys
/// it to the letter is never early.
pub fn whole_seconds(wait: Duration) -> u64 {
    u64::try_from(wait.as_millis().div_ceil(1000).max(1)).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_per_caller_and_window() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut w = SlidingWindow::new(2, s(60));
        assert!(w.try_call("a", t0).is_ok());
        assert!(w.try_call("a", t0 + s(10)).is_ok());
        assert_eq!(w.try_call("a", t0 + s(20)), Err(s(40)));
        assert!(
            w.try_call("b", t0 + s(20)).is_ok(),
            "another caller has its own budget"
        );
        // The refused call was not counted: the first call leaves the window at 60 s.
        assert!(w.try_call("a", t0 + s(60)).is_ok());
        assert_eq!(w.try_call("a", t0 + s(61)), Err(s(9)));
    }

    #[test]
    fn waits_round_up_to_whole_seconds() {
        assert_eq!(whole_seconds(Duration::ZERO), 1);
        assert_eq!(whole_seconds(Duration::from_millis(1001)), 2);
        assert_eq!(whole_seconds(Duration::from_secs(40)), 40);
    }
}
