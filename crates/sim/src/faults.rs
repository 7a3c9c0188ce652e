//! Fault injection: which Graph requests fail, and how; and the latency every answer pays.
//!
//! Every random decision (faults, throttle storms, reputation 500s) draws from one seeded
//! generator, so a single-worker client sees the same sequence for the same `--seed`. With
//! several workers the *sequence* is the same but which request gets which draw depends on
//! arrival order.

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use axum::body::{Body, Bytes};
use rand::Rng;

use crate::lock;
use crate::rng::SplitMix64;

/// The kinds of `--faults`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// 503 `serviceNotAvailable`, with or without `Retry-After`.
    Unavailable = 0,
    /// 504 `gatewayTimeout`.
    GatewayTimeout = 1,
    /// 500 `generalException`.
    Internal = 2,
    /// The TCP connection is dropped (RST) without any response.
    Reset = 3,
    /// Status 200, then half the body, then the connection closes.
    Truncate = 4,
    /// The normal answer, after `--slow-ms`.
    Slow = 5,
    /// Status 200 and part of the body at once, the rest after `--stall-ms` (a body slower
    /// than the client's timeout).
    Stall = 6,
    /// A complete HTTP answer (status 200, matching `Content-Length`) whose JSON stops halfway,
    /// as from a proxy that cut the body but framed it properly.
    TruncatedJson = 7,
}

impl FaultKind {
    /// Every kind; the `--faults` default ones first.
    pub const ALL: [FaultKind; 8] = [
        FaultKind::Unavailable,
        FaultKind::GatewayTimeout,
        FaultKind::Internal,
        FaultKind::Reset,
        FaultKind::Truncate,
        FaultKind::Slow,
        FaultKind::Stall,
        FaultKind::TruncatedJson,
    ];

    /// The `--faults` default: the kinds a run survives within a short client timeout.
    pub const DEFAULT: &'static [FaultKind] = FaultKind::ALL.split_at(6).0;

    /// The spelling in `--faults` and in the stats JSON.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Unavailable => "503",
            FaultKind::GatewayTimeout => "504",
            FaultKind::Internal => "500",
            FaultKind::Reset => "reset",
            FaultKind::Truncate => "truncate",
            FaultKind::Slow => "slow",
            FaultKind::Stall => "stall",
            FaultKind::TruncatedJson => "truncated-json",
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FaultKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FaultKind::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                format!(
                    "unknown fault '{s}' (expected 503, 504, 500, reset, truncate, slow, stall or truncated-json)"
                )
            })
    }
}

/// Parses `503,504,reset` (clap value parser for `--faults`).
pub fn parse_fault_list(s: &str) -> Result<Vec<FaultKind>, String> {
    parse_kinds(s)
}

/// A comma-separated list of at least one kind.
pub fn parse_kinds<K: FromStr<Err = String>>(s: &str) -> Result<Vec<K>, String> {
    let kinds = s
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(str::parse)
        .collect::<Result<Vec<K>, String>>()?;
    if kinds.is_empty() {
        Err("at least one kind is needed".into())
    } else {
        Ok(kinds)
    }
}

/// Parses a probability in [0, 1] (clap value parser).
pub fn parse_probability(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(format!("'{s}' is not a probability between 0 and 1")),
    }
}

/// The seeded source of every random decision.
#[derive(Debug)]
pub struct Dice(Mutex<SplitMix64>);

impl Dice {
    pub fn new(seed: u64) -> Self {
        Dice(Mutex::new(SplitMix64::new(seed)))
    }

    /// True with probability `p`; draws nothing when `p` is 0, so a feature that is off does not
    /// shift the sequence of the others.
    pub fn chance(&self, p: f64) -> bool {
        p > 0.0 && lock(&self.0).random_bool(p.min(1.0))
    }

    pub fn pick<T: Copy>(&self, items: &[T]) -> Option<T> {
        if items.is_empty() {
            return None;
        }
        let i = lock(&self.0).random_range(0..items.len());
        items.get(i).copied()
    }

    /// A duration uniformly in `[lo, hi]` milliseconds.
    pub fn millis(&self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lock(&self.0).random_range(lo..=hi.max(lo)))
    }

    /// A number uniformly in `[0, n]`.
    pub fn up_to(&self, n: u64) -> u64 {
        lock(&self.0).random_range(0..=n)
    }
}

/// `--latency-ms` and `--latency-jitter-ms`: how long every Graph answer takes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Latency {
    pub base: Duration,
    /// The delay is drawn uniformly from `base ± jitter` (never below zero).
    pub jitter: Duration,
}

impl Latency {
    /// This answer's delay; draws only when there is jitter.
    pub fn draw(&self, dice: &Dice) -> Duration {
        if self.jitter.is_zero() {
            return self.base;
        }
        let jitter = u64::try_from(self.jitter.as_millis()).unwrap_or(u64::MAX);
        let base = u64::try_from(self.base.as_millis()).unwrap_or(u64::MAX);
        let offset = dice.up_to(jitter.saturating_mul(2));
        Duration::from_millis((base + offset).saturating_sub(jitter))
    }
}

/// `--fault-rate`, `--faults`, `--fault-after`.
#[derive(Clone, Debug)]
pub struct FaultPlan {
    pub rate: f64,
    pub kinds: Vec<FaultKind>,
    /// The first `after` Graph requests never fail.
    pub after: u64,
}

impl FaultPlan {
    /// The fault for the `number`-th Graph request (1-based), if any.
    pub fn roll(&self, dice: &Dice, number: u64) -> Option<FaultKind> {
        if number <= self.after || !dice.chance(self.rate) {
            return None;
        }
        dice.pick(&self.kinds)
    }
}

/// A body that sends the first half of `full` at once and the rest after `stall`. A client
/// whose timeout is shorter gives up with the status and headers long received.
pub fn stalled_body(full: Bytes, stall: Duration) -> Body {
    let half = full.len() / 2;
    let (first, rest) = (full.slice(..half), full.slice(half..));
    let stream = futures::stream::unfold(0u8, move |step| {
        let (first, rest) = (first.clone(), rest.clone());
        async move {
            match step {
                0 => Some((Ok::<Bytes, std::io::Error>(first), 1)),
                1 => {
                    tokio::time::sleep(stall).await;
                    Some((Ok(rest), 2))
                }
                _ => None,
            }
        }
    });
    Body::from_stream(stream)
}

/// A body that sends the first half of `full`, pauses so the server flushes it, then fails.
/// A failing body makes hyper abort the connection, so with the full `Content-Length` already
/// announced the client sees an incomplete body (reqwest: "error decoding response body").
pub fn truncated_body(full: Bytes) -> Body {
    let half = full.slice(..full.len() / 2);
    let stream = futures::stream::unfold(0u8, move |step| {
        let half = half.clone();
        async move {
            match step {
                0 => Some((Ok::<Bytes, std::io::Error>(half), 1)),
                1 => {
                    // Pending here lets hyper flush the half already written.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Some((
                        Err(std::io::Error::new(
                            std::io::ErrorKind::ConnectionAborted,
                            "ctiport-sim: simulated truncated response",
                        )),
                        2,
                    ))
                }
                _ => None,
            }
        }
    });
    Body::from_stream(stream)
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used)] // a failing test should panic
mod tests {
    use super::*;

    #[test]
    fn parses_fault_lists() {
        assert_eq!(
            parse_fault_list("503, reset,TRUNCATE"),
            Ok(vec![
                FaultKind::Unavailable,
                FaultKind::Reset,
                FaultKind::Truncate
            ])
        );
        assert!(parse_fault_list("").is_err());
        assert!(parse_fault_list("503,boom").is_err());
        assert!(parse_probability("1.5").is_err());
        assert_eq!(parse_probability("0.25"), Ok(0.25));
    }

    #[test]
    fn faults_are_reproducible_and_respect_fault_after() {
        let plan = FaultPlan {
            rate: 0.5,
            kinds: FaultKind::ALL.to_vec(),
            after: 3,
        };
        let run = |seed| {
            let dice = Dice::new(seed);
            (1..=200).map(|n| plan.roll(&dice, n)).collect::<Vec<_>>()
        };
        let a = run(9);
        assert_eq!(a, run(9));
        assert_ne!(a, run(10));
        assert!(a[..3].iter().all(Option::is_none));
        let hits = a.iter().filter(|f| f.is_some()).count();
        assert!((60..140).contains(&hits), "about half fail: {hits}");
        for kind in FaultKind::ALL {
            assert!(a.contains(&Some(kind)), "{kind} drawn at least once");
        }
    }

    #[test]
    fn zero_probability_draws_nothing() {
        let dice = Dice::new(1);
        assert!(!dice.chance(0.0));
        let untouched = Dice::new(1);
        assert_eq!(dice.millis(0, 1000), untouched.millis(0, 1000));
    }
}
