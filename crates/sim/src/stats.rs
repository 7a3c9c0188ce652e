//! Counters behind `GET /_sim/stats`: what the client did to the server, so tests can assert on
//! behaviour the client's own output cannot show (retries, concurrency, early requests).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde_json::{Value, json};

use crate::faults::FaultKind;
use crate::lock;

#[derive(Debug, Default)]
pub struct Stats {
    requests: AtomicU64,
    token_requests: AtomicU64,
    throttled: AtomicU64,
    unauthorized: AtomicU64,
    faults: [AtomicU64; FaultKind::ALL.len()],
    early_requests: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
    served_pages: AtomicU64,
    by_route: Mutex<BTreeMap<&'static str, u64>>,
    /// Graph answers by HTTP status (0: connection reset without an answer).
    by_status: Mutex<BTreeMap<u16, u64>>,
}

/// Decrements `in_flight` when the request's handler is done.
#[derive(Debug)]
pub struct InFlight<'a>(&'a Stats);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}

impl Stats {
    /// Counts one Graph request on `route` and marks it in flight until the guard drops.
    pub fn graph_request(&self, route: &'static str) -> InFlight<'_> {
        self.requests.fetch_add(1, Relaxed);
        *lock(&self.by_route).entry(route).or_default() += 1;
        let now = self.in_flight.fetch_add(1, Relaxed) + 1;
        self.max_in_flight.fetch_max(now, Relaxed);
        InFlight(self)
    }

    pub fn token_request(&self) {
        self.token_requests.fetch_add(1, Relaxed);
    }

    pub fn throttled(&self) {
        self.throttled.fetch_add(1, Relaxed);
    }

    pub fn unauthorized(&self) {
        self.unauthorized.fetch_add(1, Relaxed);
    }

    pub fn fault(&self, kind: FaultKind) {
        self.faults[kind as usize].fetch_add(1, Relaxed);
    }

    pub fn early_request(&self) {
        self.early_requests.fetch_add(1, Relaxed);
    }

    pub fn status(&self, status: u16) {
        *lock(&self.by_status).entry(status).or_default() += 1;
    }

    pub fn served_page(&self) {
        self.served_pages.fetch_add(1, Relaxed);
    }

    /// Zeroes every counter. Requests still running stay counted in `in_flight`, which is a
    /// gauge, not a counter; `max_in_flight` restarts from it.
    pub fn reset(&self) {
        for counter in [
            &self.requests,
            &self.token_requests,
            &self.throttled,
            &self.unauthorized,
            &self.early_requests,
            &self.served_pages,
        ] {
            counter.store(0, Relaxed);
        }
        for counter in &self.faults {
            counter.store(0, Relaxed);
        }
        self.max_in_flight
            .store(self.in_flight.load(Relaxed), Relaxed);
        lock(&self.by_route).clear();
        lock(&self.by_status).clear();
    }

    pub fn to_json(&self) -> Value {
        let faults: serde_json::Map<String, Value> = FaultKind::ALL
            .iter()
            .map(|k| {
                (
                    k.name().to_owned(),
                    json!(self.faults[*k as usize].load(Relaxed)),
                )
            })
            .collect();
        json!({
            "requests": self.requests.load(Relaxed),
            "token_requests": self.token_requests.load(Relaxed),
            "throttled": self.throttled.load(Relaxed),
            "unauthorized": self.unauthorized.load(Relaxed),
            "faults": faults,
            "early_requests": self.early_requests.load(Relaxed),
            "max_in_flight": self.max_in_flight.load(Relaxed),
            "in_flight": self.in_flight.load(Relaxed),
            "served_pages": self.served_pages.load(Relaxed),
            "by_route": *lock(&self.by_route),
            "by_status": *lock(&self.by_status),
        })
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used)] // a failing test should panic
mod tests {
    use super::*;

    #[test]
    fn counts_and_resets() {
        let stats = Stats::default();
        {
            let _a = stats.graph_request("intelProfiles");
            let _b = stats.graph_request("intelProfiles");
            stats.fault(FaultKind::Reset);
            stats.throttled();
            stats.status(429);
            stats.status(0);
            stats.status(429);
        }
        let _c = stats.graph_request("hosts/{id}");
        let v = stats.to_json();
        assert_eq!(v["requests"], 3);
        assert_eq!(v["max_in_flight"], 2);
        assert_eq!(v["in_flight"], 1);
        assert_eq!(v["faults"]["reset"], 1);
        assert_eq!(v["faults"]["503"], 0);
        assert_eq!(v["by_route"]["intelProfiles"], 2);
        assert_eq!(v["by_status"], json!({"0": 1, "429": 2}));
        stats.reset();
        let v = stats.to_json();
        assert_eq!(v["requests"], 0);
        assert_eq!(v["in_flight"], 1);
        assert_eq!(v["max_in_flight"], 1);
        assert_eq!(v["by_route"], json!({}));
        assert_eq!(v["by_status"], json!({}));
    }
}
