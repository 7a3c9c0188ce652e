//! Command line: `ctiport-sim serve`, `ctiport-sim generate` and `ctiport-sim gen-cert`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{ArgGroup, Args, Parser, Subcommand};

use crate::app::{Mode, ServeConfig};
use crate::auth::Credentials;
use crate::faults::{FaultKind, FaultPlan, Latency, parse_fault_list, parse_probability};
use crate::generate::{self, Spec};
use crate::identity::gencert::{self, CertSpec};
use crate::listing::{Drift, ListingPlan};
use crate::microsoft::args::MicrosoftArgs;
use crate::server;
use crate::throttle::{RetryAfterFormat, StormPlan};
use crate::token_faults::{TokenFaultKind, TokenFaultPlan, parse_token_fault_list};

#[derive(Debug, Parser)]
#[command(
    name = "ctiport-sim",
    version,
    about = "Local stand-in for the Microsoft Graph Threat Intelligence API, and a synthetic MDTI dump generator"
)]
pub struct Cli {
    /// Log filter for stderr (tracing `EnvFilter` syntax, e.g. `debug` or `ctiport_sim=trace`).
    #[arg(long, global = true, default_value = "info", value_name = "FILTER")]
    pub log_level: String,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve a dump (or generated data) over a Graph-like HTTP API on 127.0.0.1.
    Serve(Box<ServeArgs>),
    /// Write a synthetic dump directory.
    Generate(GenerateArgs),
    /// Write a fresh self-signed test certificate: key.pem, cert.pem, combined.pem, cert.pfx.
    GenCert(GenCertArgs),
}

/// A `--faults` list, kept as one value.
#[derive(Clone, Debug)]
pub struct FaultList(pub Vec<FaultKind>);

fn fault_list(s: &str) -> Result<FaultList, String> {
    parse_fault_list(s).map(FaultList)
}

/// A `--token-fail-with` list, kept as one value.
#[derive(Clone, Debug)]
pub struct TokenFaultList(pub Vec<TokenFaultKind>);

fn token_fault_list(s: &str) -> Result<TokenFaultList, String> {
    parse_token_fault_list(s).map(TokenFaultList)
}

fn positive(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(x) if x > 0.0 && x.is_finite() => Ok(x),
        _ => Err(format!("'{s}' is not a positive number")),
    }
}

fn public_url(s: &str) -> Result<String, String> {
    let url = url::Url::parse(s).map_err(|e| format!("'{s}' is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.query().is_some() {
        return Err(format!("'{s}' must be an http(s) URL without a query"));
    }
    Ok(s.trim_end_matches('/').to_owned())
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("source").required(true).args(["dump", "generate_profiles"])))]
pub struct ServeArgs {
    /// Dump directory to serve (layout of docs/contracts.md).
    #[arg(long, value_name = "DIR")]
    pub dump: Option<PathBuf>,
    /// Serve N generated profiles instead of a dump.
    #[arg(long, value_name = "N", conflicts_with = "dump")]
    pub generate_profiles: Option<u64>,
    /// Generated indicators, spread over the generated profiles.
    #[arg(
        long,
        value_name = "M",
        default_value_t = 0,
        requires = "generate_profiles"
    )]
    pub generate_indicators: u64,
    /// Seed of the generated data and of every random fault decision.
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// Generated indicators spread evenly over the profiles (default: heavy-tailed).
    #[arg(long, conflicts_with = "dump")]
    pub even: bool,
    /// Generated profiles with indicators get the ids `.`, `..`, `a+b/c==`, `x/../<next id>`.
    #[arg(long, conflicts_with = "dump")]
    pub awkward_ids: bool,

    /// TCP port on 127.0.0.1; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Base URL for @odata.nextLink and @odata.context (default http://127.0.0.1:<port>).
    #[arg(long, value_name = "URL", value_parser = public_url)]
    pub public_url: Option<String>,

    /// Tenant accepted in the token URL.
    #[arg(long, default_value = "sim-tenant")]
    pub tenant: String,
    /// client_id the token endpoint accepts.
    #[arg(long, default_value = "sim-client")]
    pub client_id: String,
    /// client_secret the token endpoint accepts.
    #[arg(
        long,
        env = "CTIPORT_SIM_CLIENT_SECRET",
        default_value = "sim-secret",
        hide_env_values = true
    )]
    pub client_secret: String,
    /// Token lifetime in seconds (expires_in); tokens die server-side after it.
    #[arg(long, value_name = "SECS", default_value_t = 3599, value_parser = clap::value_parser!(u64).range(1..))]
    pub token_ttl: u64,

    /// Page size when the request has no $top.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub page_size: u64,
    /// Largest $top honoured; larger values are clamped.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_top: u64,

    /// normal | forbidden (403 accessDenied) | unauthorized (401 for every Graph request).
    #[arg(long, value_enum, default_value_t = Mode::Normal)]
    pub mode: Mode,

    /// Graph requests per second (token bucket); unlimited when absent.
    #[arg(long, value_name = "RPS", value_parser = positive)]
    pub rate: Option<f64>,
    /// Bucket size for --rate (default: the rate, at least 1).
    #[arg(long, value_name = "N", value_parser = positive, requires = "rate")]
    pub burst: Option<f64>,
    /// Retry-After spelling on 429 and 503.
    #[arg(long, value_enum, default_value_t = RetryAfterFormat::Fractional)]
    pub retry_after_format: RetryAfterFormat,
    /// Extra random 429s with this probability per Graph request (Retry-After 0.05–0.3 s).
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = parse_probability)]
    pub throttle_storm: f64,
    /// A long storm: every Graph request gets 429 for this many seconds.
    #[arg(long, value_name = "SECS", value_parser = positive)]
    pub storm_secs: Option<f64>,
    /// The storm begins after this many Graph requests.
    #[arg(long, value_name = "N", default_value_t = 0, requires = "storm_secs")]
    pub storm_after: u64,
    /// The wait each 429 of the storm announces, in milliseconds.
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 500,
        requires = "storm_secs"
    )]
    pub storm_wait_ms: u64,

    /// Probability that a Graph request gets a fault.
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = parse_probability)]
    pub fault_rate: f64,
    /// Fault kinds to choose from, uniformly: 503,504,500,reset,truncate,slow,stall,truncated-json.
    #[arg(long, value_name = "LIST", default_value = "503,504,500,reset,truncate,slow", value_parser = fault_list)]
    pub faults: FaultList,
    /// Probability that a 503 fault carries a Retry-After.
    #[arg(long, value_name = "P", default_value_t = 0.5, value_parser = parse_probability)]
    pub fault_retry_after: f64,
    /// No faults for the first N Graph requests.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub fault_after: u64,
    /// Delay of the `slow` fault, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    pub slow_ms: u64,
    /// How long the `stall` fault holds back the second half of a body, and a token `timeout`
    /// its answer, in milliseconds (default: longer than ctiport's 60 s request timeout).
    #[arg(long, value_name = "MS", default_value_t = 65_000)]
    pub stall_ms: u64,
    /// Delay before every Graph answer, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub latency_ms: u64,
    /// The delay varies uniformly by up to this much either way, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub latency_jitter_ms: u64,
    /// Probability of a 500 on hosts/{id}/reputation (on top of --fault-rate).
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = parse_probability)]
    pub reputation_500_rate: f64,
    /// Slack, in milliseconds, of the early-request check (see docs/sim.md).
    #[arg(long, value_name = "MS", default_value_t = 20)]
    pub early_tolerance_ms: u64,

    /// The profile listing shows at most the first N profiles (0: `{"value": []}`).
    #[arg(long, value_name = "N")]
    pub list_limit: Option<usize>,
    /// Pages hold a random number of records between 0 and $top.
    #[arg(long)]
    pub uneven_pages: bool,
    /// Once a collection's first page is served, its first record moves to the end (move) or
    /// its last record changes (change).
    #[arg(long, value_enum, value_name = "KIND")]
    pub drift: Option<Drift>,
    /// The indicators of this listed profile answer 404 (repeatable).
    #[arg(long = "indicators-404", value_name = "ID")]
    pub indicators_404: Vec<String>,
    /// Share of profiles (a fixed set per --seed) whose indicators answer 404.
    #[arg(long = "indicators-404-rate", value_name = "P", default_value_t = 0.0, value_parser = parse_probability)]
    pub indicators_404_rate: f64,

    /// The first N token requests fail.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub token_fail: u64,
    /// How they fail, in turn: 500,503,504,timeout,reset.
    #[arg(long, value_name = "LIST", default_value = "503", value_parser = token_fault_list)]
    pub token_fail_with: TokenFaultList,
    /// Every N-th Graph request finds all issued tokens revoked (401 until renewed).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub token_revoke_every: u64,

    /// Most entries GET /_sim/requests keeps (the oldest are dropped first).
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    pub request_log_cap: usize,

    #[command(flatten)]
    pub microsoft: MicrosoftArgs,
}

#[derive(Debug, Args)]
pub struct GenCertArgs {
    /// Output directory (created).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Common name of the certificate's subject.
    #[arg(long, value_name = "CN", default_value = "ctiport-sim test client")]
    pub common_name: String,
    /// Days of validity from now.
    #[arg(long, value_name = "N", default_value_t = 365)]
    pub days: u32,
    /// Write a certificate that expired yesterday (to test Entra's "key used is expired").
    #[arg(long)]
    pub expired: bool,
    /// Password of cert.pfx.
    #[arg(
        long,
        env = "CTIPORT_SIM_PFX_PASSWORD",
        default_value = "ctiport-sim",
        hide_env_values = true
    )]
    pub pfx_password: String,
    /// Replace files already in --out.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Number of intel profiles (actors and tools).
    #[arg(long, value_name = "N")]
    pub profiles: u64,
    /// Number of indicators, spread unevenly over the profiles (streamed: millions are fine).
    #[arg(long, value_name = "M")]
    pub indicators: u64,
    /// Seed: the same seed writes the same dump, byte for byte.
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// Output directory (created; must be empty unless --force).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Replace a previous dump in --out.
    #[arg(long)]
    pub force: bool,
    /// Spread the indicators evenly over the profiles (default: heavy-tailed).
    #[arg(long)]
    pub even: bool,
    /// Profiles with indicators get the ids `.`, `..`, `a+b/c==`, `x/../<next id>`.
    #[arg(long)]
    pub awkward_ids: bool,
}

impl ServeArgs {
    pub fn config(&self) -> ServeConfig {
        ServeConfig {
            port: self.port,
            public_url: self.public_url.clone(),
            credentials: Credentials {
                tenant: self.tenant.clone(),
                client_id: self.client_id.clone(),
                client_secret: self.client_secret.clone(),
            },
            token_ttl: Duration::from_secs(self.token_ttl),
            page_size: self.page_size,
            max_top: self.max_top,
            mode: self.mode,
            rate: self.rate,
            burst: self.burst,
            retry_after_format: self.retry_after_format,
            throttle_storm: self.throttle_storm,
            storm: self.storm_secs.map(|secs| StormPlan {
                after: self.storm_after,
                duration: Duration::from_secs_f64(secs),
                wait: Duration::from_millis(self.storm_wait_ms),
            }),
            faults: FaultPlan {
                rate: self.fault_rate,
                kinds: self.faults.0.clone(),
                after: self.fault_after,
            },
            fault_retry_after: self.fault_retry_after,
            slow: Duration::from_millis(self.slow_ms),
            stall: Duration::from_millis(self.stall_ms),
            latency: Latency {
                base: Duration::from_millis(self.latency_ms),
                jitter: Duration::from_millis(self.latency_jitter_ms),
            },
            reputation_500_rate: self.reputation_500_rate,
            listing: ListingPlan {
                limit: self.list_limit,
                uneven: self.uneven_pages,
                drift: self.drift,
                missing_indicators: self.indicators_404.clone(),
                missing_indicators_rate: self.indicators_404_rate,
            },
            token_faults: TokenFaultPlan {
                count: self.token_fail,
                kinds: self.token_fail_with.0.clone(),
                revoke_every: self.token_revoke_every,
            },
            seed: self.seed,
            early_tolerance: Duration::from_millis(self.early_tolerance_ms),
            request_log_cap: self.request_log_cap,
            microsoft: self.microsoft.config(),
        }
    }

    /// The generator's spec for `--generate-profiles`, if that is the source.
    pub fn spec(&self) -> Option<Spec> {
        Some(Spec {
            profiles: self.generate_profiles?,
            indicators: self.generate_indicators,
            seed: self.seed,
            even: self.even,
            awkward_ids: self.awkward_ids,
        })
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log_level);
    let result = match cli.command {
        Command::Serve(args) => serve(*args),
        Command::Generate(args) => generate(&args),
        Command::GenCert(args) => gen_cert(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // stdout carries the machine-readable lines (`listening on …`, the generate summary).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .try_init();
}

fn generate(args: &GenerateArgs) -> anyhow::Result<()> {
    let spec = Spec {
        profiles: args.profiles,
        indicators: args.indicators,
        seed: args.seed,
        even: args.even,
        awkward_ids: args.awkward_ids,
    };
    let summary = generate::generate_to_dir(spec, &args.out, args.force)?;
    let line = serde_json::to_string(&summary)?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()?;
    Ok(())
}

fn gen_cert(args: &GenCertArgs) -> anyhow::Result<()> {
    let spec = CertSpec {
        common_name: args.common_name.clone(),
        days: args.days,
        expired: args.expired,
        pfx_password: args.pfx_password.clone(),
    };
    let written =
        gencert::write_to_dir(&spec, &args.out, args.force).map_err(anyhow::Error::msg)?;
    let line = serde_json::to_string(&written)?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()?;
    Ok(())
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let store = match (&args.dump, args.spec()) {
            (Some(dir), _) => crate::data::load_dump(dir)?,
            (None, Some(spec)) => generate::generate_store(spec)?,
            (None, None) => anyhow::bail!("either --dump or --generate-profiles is needed"),
        };
        tracing::info!("serving {store}");
        let stop = shutdown_signal();
        let running = server::start(args.config(), store).await?;
        {
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "listening on {}", running.url)?;
            stdout.flush()?;
        }
        stop.await;
        tracing::info!("shutting down");
        running.stop().await
    })
}

/// Ctrl-C or SIGTERM. The handlers are installed before this returns, so a signal sent as soon
/// as the port is announced stops the server gracefully instead of killing it.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt()).ok();
        let terminate = signal(SignalKind::terminate()).ok();
        async move {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(interrupt) => {},
                () = wait(terminate) => {},
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used)] // a failing test should panic
mod tests {
    use super::*;

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_needs_a_source() {
        assert!(Cli::try_parse_from(["ctiport-sim", "serve"]).is_err());
        assert!(
            Cli::try_parse_from([
                "ctiport-sim",
                "serve",
                "--dump",
                "d",
                "--generate-profiles",
                "3"
            ])
            .is_err()
        );
        let cli = Cli::try_parse_from([
            "ctiport-sim",
            "serve",
            "--generate-profiles",
            "3",
            "--generate-indicators",
            "30",
            "--faults",
            "reset,truncate",
            "--fault-rate",
            "0.5",
            "--rate",
            "2.5",
            "--retry-after-format",
            "http-date",
        ])
        .expect("valid");
        let Command::Serve(args) = cli.command else {
            panic!("serve expected");
        };
        let config = args.config();
        assert_eq!(config.faults.kinds, [FaultKind::Reset, FaultKind::Truncate]);
        assert_eq!(config.rate, Some(2.5));
        assert_eq!(config.retry_after_format, RetryAfterFormat::HttpDate);
        assert_eq!(config.storm, None);
        assert_eq!(config.listing, ListingPlan::default());
        assert_eq!(config.token_faults, TokenFaultPlan::default());
        assert_eq!(config.fault_retry_after, 0.5);
        assert!(
            Cli::try_parse_from(["ctiport-sim", "serve", "--dump", "d", "--fault-rate", "2"])
                .is_err()
        );
    }

    #[test]
    fn the_fault_and_latency_options_reach_the_config() {
        let cli = Cli::try_parse_from([
            "ctiport-sim",
            "serve",
            "--generate-profiles",
            "40",
            "--generate-indicators",
            "40000",
            "--even",
            "--awkward-ids",
            "--storm-secs",
            "2.5",
            "--storm-after",
            "10",
            "--storm-wait-ms",
            "250",
            "--faults",
            "stall,truncated-json",
            "--fault-retry-after",
            "0",
            "--stall-ms",
            "9000",
            "--latency-ms",
            "100",
            "--latency-jitter-ms",
            "20",
            "--list-limit",
            "0",
            "--uneven-pages",
            "--drift",
            "move",
            "--indicators-404",
            "a",
            "--indicators-404",
            "..",
            "--indicators-404-rate",
            "0.1",
            "--token-fail",
            "3",
            "--token-fail-with",
            "503,timeout",
            "--token-revoke-every",
            "40",
            "--request-log-cap",
            "10",
        ])
        .expect("valid");
        let Command::Serve(args) = cli.command else {
            panic!("serve expected");
        };
        let config = args.config();
        assert_eq!(
            config.storm,
            Some(StormPlan {
                after: 10,
                duration: Duration::from_millis(2500),
                wait: Duration::from_millis(250),
            })
        );
        assert_eq!(
            config.faults.kinds,
            [FaultKind::Stall, FaultKind::TruncatedJson]
        );
        assert_eq!(config.fault_retry_after, 0.0);
        assert_eq!(config.stall, Duration::from_secs(9));
        assert_eq!(config.latency.base, Duration::from_millis(100));
        assert_eq!(config.latency.jitter, Duration::from_millis(20));
        assert_eq!(
            config.listing,
            ListingPlan {
                limit: Some(0),
                uneven: true,
                drift: Some(Drift::Move),
                missing_indicators: vec!["a".into(), "..".into()],
                missing_indicators_rate: 0.1,
            }
        );
        assert_eq!(
            config.token_faults,
            TokenFaultPlan {
                count: 3,
                kinds: vec![TokenFaultKind::Unavailable, TokenFaultKind::Timeout],
                revoke_every: 40,
            }
        );
        assert_eq!(config.request_log_cap, 10);
        let spec = args.spec().expect("generated");
        assert!(spec.even && spec.awkward_ids);
        let Ok(Cli {
            command: Command::Serve(plain),
            ..
        }) = Cli::try_parse_from(["ctiport-sim", "serve", "--dump", "d"])
        else {
            panic!("serve expected");
        };
        assert_eq!(plain.config().faults.kinds, FaultKind::DEFAULT);
        assert_eq!(plain.config().stall, ServeConfig::default().stall);
        assert!(
            Cli::try_parse_from(["ctiport-sim", "serve", "--dump", "d", "--storm-after", "3"])
                .is_err(),
            "--storm-after needs --storm-secs"
        );
        assert!(
            Cli::try_parse_from(["ctiport-sim", "serve", "--dump", "d", "--even"]).is_err(),
            "--even shapes generated data only"
        );
    }
}
