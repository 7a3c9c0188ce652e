//! Token endpoint failures (`--token-fail`, `--token-fail-with`) and tokens revoked before
//! their lifetime ends (`--token-revoke-every`).
//!
//! The first N token requests fail, cycling through the listed kinds; every later one succeeds.
//! That is the shape a client's retry of the token request has to survive: a few transient
//! failures in a row, then the normal answer.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use crate::auth::json_response;
use crate::faults::parse_kinds;
use crate::json::ObjectWriter;
use crate::rng::guid;

/// The kinds of `--token-fail-with`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenFaultKind {
    /// 500 `server_error`.
    Internal = 0,
    /// 503 `temporarily_unavailable`.
    Unavailable = 1,
    /// 504 `temporarily_unavailable`.
    GatewayTimeout = 2,
    /// No answer for `--stall-ms`, then a 504 (a client with a shorter timeout has gone).
    Timeout = 3,
    /// The connection is reset without an answer.
    Reset = 4,
}

impl TokenFaultKind {
    pub const ALL: [TokenFaultKind; 5] = [
        TokenFaultKind::Internal,
        TokenFaultKind::Unavailable,
        TokenFaultKind::GatewayTimeout,
        TokenFaultKind::Timeout,
        TokenFaultKind::Reset,
    ];

    /// The spelling in `--token-fail-with` and in the stats JSON.
    pub fn name(self) -> &'static str {
        match self {
            TokenFaultKind::Internal => "500",
            TokenFaultKind::Unavailable => "503",
            TokenFaultKind::GatewayTimeout => "504",
            TokenFaultKind::Timeout => "timeout",
            TokenFaultKind::Reset => "reset",
        }
    }

    /// The error answer (for `timeout`, the one sent after the stall).
    pub fn response(self) -> Response {
        let (status, error) = match self {
            TokenFaultKind::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "server_error"),
            TokenFaultKind::Unavailable => {
                (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable")
            }
            _ => (StatusCode::GATEWAY_TIMEOUT, "temporarily_unavailable"),
        };
        let trace_id = guid(&mut rand::rng());
        let body = ObjectWriter::new()
            .str("error", error)
            .str(
                "error_description",
                "ctiport-sim: simulated token endpoint failure; try again later.",
            )
            .raw("error_codes", "[]")
            .str("trace_id", &trace_id)
            .finish();
        json_response(status, body, &trace_id)
    }
}

impl fmt::Display for TokenFaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for TokenFaultKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TokenFaultKind::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                format!("unknown token fault '{s}' (expected 500, 503, 504, timeout or reset)")
            })
    }
}

/// Parses `503,timeout` (clap value parser for `--token-fail-with`).
pub fn parse_token_fault_list(s: &str) -> Result<Vec<TokenFaultKind>, String> {
    parse_kinds(s)
}

/// `--token-fail`, `--token-fail-with`, `--token-revoke-every`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenFaultPlan {
    /// How many token requests fail (the first ones).
    pub count: u64,
    /// Their kinds, in turn.
    pub kinds: Vec<TokenFaultKind>,
    /// Every N-th Graph request finds all issued tokens revoked (0: never).
    pub revoke_every: u64,
}

impl Default for TokenFaultPlan {
    fn default() -> Self {
        TokenFaultPlan {
            count: 0,
            kinds: vec![TokenFaultKind::Unavailable],
            revoke_every: 0,
        }
    }
}

#[derive(Debug)]
pub struct TokenFaults {
    plan: TokenFaultPlan,
    requests: AtomicU64,
    injected: [AtomicU64; TokenFaultKind::ALL.len()],
}

impl TokenFaults {
    pub fn new(plan: TokenFaultPlan) -> Self {
        TokenFaults {
            plan,
            requests: AtomicU64::new(0),
            injected: Default::default(),
        }
    }

    /// The fault for the next token request, if it is one of the first `count`.
    pub fn next(&self) -> Option<TokenFaultKind> {
        let n = self.requests.fetch_add(1, Ordering::SeqCst);
        if n >= self.plan.count || self.plan.kinds.is_empty() {
            return None;
        }
        let len = self.plan.kinds.len() as u64;
        let kind = self.plan.kinds[usize::try_from(n % len).unwrap_or(0)];
        self.injected[kind as usize].fetch_add(1, Ordering::Relaxed);
        Some(kind)
    }

    /// Whether the `number`-th Graph request (1-based) comes right after a revocation.
    // `is_multiple_of` needs Rust 1.87; the workspace supports 1.85.
    #[allow(clippy::manual_is_multiple_of)]
    pub fn revoke_before(&self, number: u64) -> bool {
        self.plan.revoke_every > 0 && number % self.plan.revoke_every == 0
    }

    /// Zeroes the counts in the stats (not the count of requests the plan goes by).
    pub fn reset_counts(&self) {
        for count in &self.injected {
            count.store(0, Ordering::Relaxed);
        }
    }

    /// `{"500": n, "503": n, "504": n, "timeout": n, "reset": n}` for the stats.
    pub fn to_json(&self) -> Value {
        let map: serde_json::Map<String, Value> = TokenFaultKind::ALL
            .iter()
            .map(|k| {
                let n = self.injected[*k as usize].load(Ordering::Relaxed);
                (k.name().to_owned(), json!(n))
            })
            .collect();
        Value::Object(map)
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used)] // a failing test should panic
mod tests {
    use super::*;

    #[test]
    fn the_first_requests_fail_in_turn_then_all_succeed() {
        let faults = TokenFaults::new(TokenFaultPlan {
            count: 3,
            kinds: parse_token_fault_list("503, timeout").unwrap(),
            revoke_every: 0,
        });
        let seen: Vec<Option<TokenFaultKind>> = (0..5).map(|_| faults.next()).collect();
        use TokenFaultKind::*;
        assert_eq!(
            seen,
            [
                Some(Unavailable),
                Some(Timeout),
                Some(Unavailable),
                None,
                None
            ]
        );
        assert_eq!(faults.to_json()["503"], 2);
        assert_eq!(faults.to_json()["timeout"], 1);
        assert!(parse_token_fault_list("").is_err());
        assert!(parse_token_fault_list("418").is_err());
        assert!(!faults.revoke_before(10));
    }

    #[test]
    fn revocations_come_every_n_requests() {
        let faults = TokenFaults::new(TokenFaultPlan {
            revoke_every: 4,
            ..TokenFaultPlan::default()
        });
        let revoked: Vec<u64> = (1..=12).filter(|n| faults.revoke_before(*n)).collect();
        assert_eq!(revoked, [4, 8, 12]);
    }
}
