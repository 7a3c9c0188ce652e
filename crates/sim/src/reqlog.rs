//! The request log behind `GET /_sim/requests`: one entry per request (arrival time, route,
//! status, the `Retry-After` sent), so a test can check timing itself — no request before a
//! promised wait ran out, requests per second, retries.
//!
//! Memory stays bounded: the log keeps the newest `--request-log-cap` entries and counts the
//! ones it dropped; the per-second arrival counts cover the whole run (one number a second, for
//! at most a day).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;
use serde_json::{Value, json};

use crate::lock;
use crate::stats::Stats;

/// Seconds of per-second counts kept (a day).
const MAX_SECONDS: usize = 86_400;
/// Longest request path (with query) kept in an entry.
const MAX_PATH: usize = 512;

/// One request as the server saw it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Entry {
    /// Arrival, in seconds since the server started (microsecond precision).
    pub t: f64,
    /// When the answer's head was ready (after `--latency-ms`), or when the client left;
    /// same clock. A `Retry-After` was sent at this instant.
    pub answered: f64,
    /// The route template (`intelProfiles/{id}/indicators`, `token`, …).
    pub route: &'static str,
    /// Path and query as received, cut at 512 bytes.
    pub path: String,
    /// HTTP status sent; 0 when the connection was reset without an answer, 499 when the
    /// client went away before the answer was ready (its timeout ran out).
    pub status: u16,
    /// The injected fault, if any (`503`, `reset`, `stall`, … or `timeout` on the token route).
    pub fault: Option<&'static str>,
    /// The `Retry-After` header exactly as sent.
    pub retry_after: Option<String>,
    /// Until when that header told the client to wait, in seconds since the server started.
    pub retry_until: Option<f64>,
    /// Whether the request arrived inside an earlier promised wait (see docs/sim.md).
    pub early: bool,
}

#[derive(Debug)]
pub struct RequestLog {
    start: Instant,
    cap: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: VecDeque<Entry>,
    dropped: u64,
    /// Graph request arrivals per whole second since start (the token route not counted).
    per_second: Vec<u64>,
}

impl RequestLog {
    pub fn new(start: Instant, cap: usize) -> Self {
        RequestLog {
            start,
            cap,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Seconds from the server's start to `at`.
    pub fn seconds(&self, at: Instant) -> f64 {
        let micros = at.saturating_duration_since(self.start).as_micros();
        micros as f64 / 1e6
    }

    /// Cuts a path to the length an entry keeps (on a character boundary).
    pub fn path(path_and_query: &str) -> String {
        let mut end = path_and_query.len().min(MAX_PATH);
        while !path_and_query.is_char_boundary(end) {
            end -= 1;
        }
        path_and_query[..end].to_owned()
    }

    /// Starts the entry of a request arriving `at`; it is recorded when [`Pending::finish`]
    /// is called, or with status 499 if the client leaves first (the handler is dropped).
    /// `stats` also counts the status (Graph requests).
    pub fn begin<'a>(
        &'a self,
        stats: Option<&'a Stats>,
        at: Instant,
        route: &'static str,
        path_and_query: &str,
    ) -> Pending<'a> {
        Pending {
            log: self,
            stats,
            entry: Entry {
                t: self.seconds(at),
                route,
                path: RequestLog::path(path_and_query),
                status: CLIENT_GONE,
                ..Entry::default()
            },
        }
    }

    pub fn record(&self, entry: Entry) {
        let second = entry.t as usize;
        let mut inner = lock(&self.inner);
        if entry.route != "token" && second < MAX_SECONDS {
            if inner.per_second.len() <= second {
                inner.per_second.resize(second + 1, 0);
            }
            inner.per_second[second] += 1;
        }
        if self.cap == 0 {
            inner.dropped += 1;
            return;
        }
        if inner.entries.len() == self.cap {
            inner.entries.pop_front();
            inner.dropped += 1;
        }
        inner.entries.push_back(entry);
    }

    /// Forgets every entry and count (`POST /_sim/reset-stats`); arrival times stay relative
    /// to the server's start.
    pub fn clear(&self) {
        *lock(&self.inner) = Inner::default();
    }

    /// Graph arrivals per second since start; trailing quiet seconds are not listed.
    pub fn per_second(&self) -> Vec<u64> {
        lock(&self.inner).per_second.clone()
    }

    /// `GET /_sim/requests`.
    pub fn to_json(&self) -> Value {
        let inner = lock(&self.inner);
        json!({
            "cap": self.cap,
            "dropped": inner.dropped,
            "requests": inner.entries,
        })
    }
}

/// The status logged for a request whose client left before the answer.
pub const CLIENT_GONE: u16 = 499;

/// A request's entry while it is being answered.
#[derive(Debug)]
pub struct Pending<'a> {
    log: &'a RequestLog,
    stats: Option<&'a Stats>,
    entry: Entry,
}

impl Pending<'_> {
    /// The entry to fill in (route, fault, promise, early).
    pub fn entry(&mut self) -> &mut Entry {
        &mut self.entry
    }

    /// Records the answer.
    pub fn finish(mut self, status: u16, retry_after: Option<String>) {
        self.entry.status = status;
        self.entry.retry_after = retry_after;
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        let mut entry = std::mem::take(&mut self.entry);
        entry.answered = self.log.seconds(Instant::now());
        if let Some(stats) = self.stats {
            stats.status(entry.status);
        }
        self.log.record(entry);
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used)] // a failing test should panic
mod tests {
    use super::*;

    fn entry(t: f64, route: &'static str) -> Entry {
        Entry {
            t,
            route,
            status: 200,
            ..Entry::default()
        }
    }

    #[test]
    fn keeps_the_newest_entries_and_counts_every_second() {
        let log = RequestLog::new(Instant::now(), 2);
        log.record(entry(0.1, "intelProfiles"));
        log.record(entry(0.2, "token"));
        log.record(entry(2.5, "intelProfiles"));
        let v = log.to_json();
        assert_eq!(v["dropped"], 1);
        assert_eq!(v["requests"][0]["t"], 0.2);
        assert_eq!(v["requests"][1]["t"], 2.5);
        assert_eq!(
            log.per_second(),
            [1, 0, 1],
            "the token route is not a Graph request"
        );
        log.clear();
        assert_eq!(log.to_json()["requests"], json!([]));
        assert!(log.per_second().is_empty());
    }

    #[test]
    fn a_request_whose_client_left_is_logged_as_499() {
        let start = Instant::now();
        let log = RequestLog::new(start, 10);
        let stats = Stats::default();
        let mut pending = log.begin(Some(&stats), start, "intelProfiles", "/a?b");
        pending.entry().early = true;
        drop(pending);
        log.begin(Some(&stats), start, "hosts/{id}", "/h")
            .finish(200, Some("1".into()));
        let v = log.to_json();
        assert_eq!(v["requests"][0]["status"], 499);
        assert_eq!(v["requests"][0]["early"], true);
        assert_eq!(v["requests"][0]["path"], "/a?b");
        assert_eq!(v["requests"][1]["status"], 200);
        assert!(v["requests"][1]["answered"].as_f64() >= v["requests"][1]["t"].as_f64());
        assert_eq!(v["requests"][1]["retry_after"], "1");
        assert_eq!(stats.to_json()["by_status"], json!({"200": 1, "499": 1}));
    }

    #[test]
    fn paths_are_cut_on_a_character_boundary() {
        let long = "é".repeat(400);
        let cut = RequestLog::path(&long);
        assert!(cut.len() <= MAX_PATH && cut.chars().all(|c| c == 'é'));
    }
}
