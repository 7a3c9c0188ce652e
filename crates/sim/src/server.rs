//! Server configuration, shared state, and starting/stopping the HTTP server.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::ValueEnum;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::auth::{Credentials, Tokens};
use crate::conn::{ConnInfo, KillableListener};
use crate::data::Store;
use crate::faults::{Dice, FaultKind, FaultPlan};
use crate::microsoft::{Microsoft, MicrosoftConfig};
use crate::stats::Stats;
use crate::throttle::{Compliance, RetryAfterFormat, TokenBucket};

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
    pub faults: FaultPlan,
    pub slow: Duration,
    pub reputation_500_rate: f64,
    pub seed: u64,
    pub early_tolerance: Duration,
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
            faults: FaultPlan {
                rate: 0.0,
                kinds: FaultKind::ALL.to_vec(),
                after: 0,
            },
            slow: Duration::from_millis(2000),
            reputation_500_rate: 0.0,
            seed: 0,
            early_tolerance: Duration::from_millis(20),
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
    pub bucket: Option<Mutex<TokenBucket>>,
    pub compliance: Mutex<Compliance>,
    pub dice: Dice,
    /// Graph requests since start (never reset): drives `--fault-after`.
    pub graph_requests: AtomicU64,
    pub microsoft: Microsoft,
}

/// A running server.
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    /// `http://127.0.0.1:<port>` (the bound address, whatever `--public-url` says).
    pub url: String,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Stops accepting, lets requests in flight finish, and waits for the server to end.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        (&mut self.task).await.context("server task")??;
        Ok(())
    }
}

/// Binds 127.0.0.1 (never another interface) and serves `store` until [`Running::stop`].
pub async fn start(config: ServeConfig, store: Store) -> anyhow::Result<Running> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, config.port))
        .await
        .with_context(|| format!("binding 127.0.0.1:{}", config.port))?;
    let addr = listener.local_addr()?;
    let url = format!("http://{addr}");
    let base_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| url.clone())
        .trim_end_matches('/')
        .to_owned();
    let now = Instant::now();
    let app = App {
        bucket: config
            .rate
            .map(|rate| Mutex::new(TokenBucket::new(rate, config.burst.unwrap_or(rate), now))),
        compliance: Mutex::new(Compliance::new(config.early_tolerance)),
        dice: Dice::new(config.seed),
        tokens: Tokens::new(config.token_ttl),
        stats: Stats::default(),
        graph_requests: AtomicU64::new(0),
        microsoft: Microsoft::new(&config.microsoft, config.seed, config.early_tolerance),
        base_url,
        store,
        config,
    };
    let router = crate::routes::router(std::sync::Arc::new(app));
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(
            KillableListener(listener),
            router.into_make_service_with_connect_info::<ConnInfo>(),
        )
        .with_graceful_shutdown(async {
            let _ = rx.await;
        })
        .await
    });
    Ok(Running {
        addr,
        url,
        shutdown: Some(tx),
        task,
    })
}
