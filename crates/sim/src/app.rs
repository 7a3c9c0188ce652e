//! The server's configuration and the state every handler shares.

use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use clap::ValueEnum;

use crate::auth::{Credentials, Tokens};
use crate::data::Store;
use crate::faults::{Dice, FaultKind, FaultPlan, Latency};
use crate::listing::{Listing, ListingPlan};
use crate::microsoft::{Microsoft, MicrosoftConfig};
use crate::reqlog::RequestLog;
use crate::stats::Stats;
use crate::throttle::{Compliance, RetryAfterFormat, Storm, StormPlan, TokenBucket};
use crate::token_faults::{TokenFaultPlan, TokenFaults};

/// `--mode`
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Valid tokens get data.
    Normal,
    /// Valid tokens get 403 `accessDenied` (no MDTI licence / missing permission).
    Forbidden,
    /// Every Graph request gets 401, whatever the token.
    Unauthorized,
}

#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub port: u16,
    /// Base of nextLinks and `@odata.context`; `None` = `http://127.0.0.1:<port>`.
    pub public_url: Option<String>,
    pub credentials: Credentials,
    pub token_ttl: Duration,
    pub page_size: u64,
    pub max_top: u64,
    pub mode: Mode,
    /// Requests per second on Graph routes; `None` = unlimited.
    pub rate: Option<f64>,
    /// Bucket size; `None` = `rate`.
    pub burst: Option<f64>,
    pub retry_after_format: RetryAfterFormat,
    pub throttle_storm: f64,
    /// `--storm-secs`: a long storm of consecutive 429s.
    pub storm: Option<StormPlan>,
    pub faults: FaultPlan,
    /// Probability that a `503` fault carries a `Retry-After`.
    pub fault_retry_after: f64,
    pub slow: Duration,
    /// How long a `stall` fault (and a token `timeout`) holds the rest of the answer back.
    pub stall: Duration,
    pub latency: Latency,
    pub reputation_500_rate: f64,
    /// How collections misbehave: short listings, uneven pages, drift, missing indicators.
    pub listing: ListingPlan,
    pub token_faults: TokenFaultPlan,
    pub seed: u64,
    pub early_tolerance: Duration,
    /// Most entries `GET /_sim/requests` keeps (the oldest are dropped first).
    pub request_log_cap: usize,
    /// Sentinel, Defender and identity stand-ins (docs/standins.md).
    pub microsoft: MicrosoftConfig,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            port: 0,
            public_url: None,
            credentials: Credentials {
                tenant: "sim-tenant".into(),
                client_id: "sim-client".into(),
                client_secret: "sim-secret".into(),
            },
            token_ttl: Duration::from_secs(3599),
            page_size: 100,
            max_top: 1000,
            mode: Mode::Normal,
            rate: None,
            burst: None,
            retry_after_format: RetryAfterFormat::Fractional,
            throttle_storm: 0.0,
            storm: None,
            faults: FaultPlan {
                rate: 0.0,
                kinds: FaultKind::DEFAULT.to_vec(),
                after: 0,
            },
            fault_retry_after: 0.5,
            slow: Duration::from_millis(2000),
            stall: Duration::from_millis(65_000),
            latency: Latency::default(),
            reputation_500_rate: 0.0,
            listing: ListingPlan::default(),
            token_faults: TokenFaultPlan::default(),
            seed: 0,
            early_tolerance: Duration::from_millis(20),
            request_log_cap: 100_000,
            microsoft: MicrosoftConfig::default(),
        }
    }
}

/// Everything the handlers share.
#[derive(Debug)]
pub struct App {
    pub config: ServeConfig,
    pub store: Store,
    pub base_url: String,
    pub tokens: Tokens,
    pub stats: Stats,
    pub log: RequestLog,
    pub bucket: Option<Mutex<TokenBucket>>,
    pub storm: Storm,
    pub compliance: Mutex<Compliance>,
    pub listing: Listing,
    pub token_faults: TokenFaults,
    pub dice: Dice,
    /// Graph requests since start (never reset): drives `--fault-after`, `--storm-after` and
    /// `--token-revoke-every`.
    pub graph_requests: AtomicU64,
    pub microsoft: Microsoft,
}

impl App {
    pub fn new(config: ServeConfig, store: Store, base_url: String, now: Instant) -> App {
        App {
            bucket: config
                .rate
                .map(|rate| Mutex::new(TokenBucket::new(rate, config.burst.unwrap_or(rate), now))),
            storm: Storm::new(config.storm),
            compliance: Mutex::new(Compliance::new(config.early_tolerance)),
            listing: Listing::new(config.listing.clone(), config.seed),
            token_faults: TokenFaults::new(config.token_faults.clone()),
            dice: Dice::new(config.seed),
            tokens: Tokens::new(config.token_ttl),
            stats: Stats::default(),
            log: RequestLog::new(now, config.request_log_cap),
            graph_requests: AtomicU64::new(0),
            microsoft: Microsoft::new(&config.microsoft, config.seed, config.early_tolerance),
            base_url,
            store,
            config,
        }
    }

    /// `GET /_sim/stats`: the counters, the token endpoint's injected faults, how many
    /// collections drifted, and Graph arrivals per second.
    pub fn stats_json(&self) -> serde_json::Value {
        let mut stats = self.stats.to_json();
        if let Some(map) = stats.as_object_mut() {
            map.insert("token_faults".into(), self.token_faults.to_json());
            map.insert("drifted".into(), self.listing.drifted().into());
            map.insert("per_second".into(), self.log.per_second().into());
        }
        stats
    }

    /// `POST /_sim/reset-stats`: zeroes the counters, empties the request log and forgets
    /// pending Retry-After promises. The plans' own counters (`--fault-after`, `--token-fail`,
    /// drifted collections) go on.
    pub fn reset_stats(&self) {
        self.stats.reset();
        self.token_faults.reset_counts();
        self.log.clear();
        crate::lock(&self.compliance).clear();
    }
}
