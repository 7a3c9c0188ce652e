//! `ctiport-sim serve` flags of the Microsoft stand-ins (flattened into `ServeArgs`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::MicrosoftConfig;
use super::faults::Faults;
use crate::defender::DefenderConfig;
use crate::faults::parse_probability;
use crate::identity::IdentityConfig;
use crate::identity::cert::{RegisteredCert, load_private_key};
use crate::identity::federation::{Federation, TOKEN_EXCHANGE_AUDIENCE};
use crate::identity::managed::ManagedIdentities;
use crate::identity::resource::Roles;
use crate::sentinel::SentinelConfig;

fn certificate(s: &str) -> Result<RegisteredCert, String> {
    RegisteredCert::load(&PathBuf::from(s))
}

fn private_key(s: &str) -> Result<rsa::PrivateKey, String> {
    load_private_key(&PathBuf::from(s))
}

/// A comma-separated list; empty items dropped.
fn list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_owned)
        .collect()
}

#[derive(Clone, Debug, Args)]
pub struct MicrosoftArgs {
    /// A certificate (PEM) registered on the app; client assertions signed with its key are
    /// accepted. Repeatable (key rotation).
    #[arg(long, value_name = "PEM", value_parser = certificate, help_heading = "Identity")]
    pub client_certificate: Vec<RegisteredCert>,
    /// Enables the app's federated identity credential for this subject (e.g.
    /// `system:serviceaccount:ctiport:ctiport`).
    #[arg(long, value_name = "SUBJECT", help_heading = "Identity")]
    pub federated_subject: Option<String>,
    /// Issuer of the federated credential (the sim mints its tokens at /_sim/federated-token).
    #[arg(
        long,
        value_name = "URL",
        default_value = "https://oidc.ctiport-sim.test/",
        help_heading = "Identity"
    )]
    pub federated_issuer: String,
    /// Audience of the federated credential.
    #[arg(long, value_name = "AUD", default_value = TOKEN_EXCHANGE_AUDIENCE, help_heading = "Identity")]
    pub federated_audience: String,
    /// RSA key (PEM) the federated issuer signs with; generated on first use when absent.
    #[arg(long, value_name = "PEM", value_parser = private_key, help_heading = "Identity")]
    pub federated_issuer_key: Option<rsa::PrivateKey>,
    /// App roles in Graph tokens (comma-separated; empty for none).
    #[arg(
        long,
        value_name = "LIST",
        default_value = "ThreatIntelligence.Read.All",
        help_heading = "Identity"
    )]
    pub graph_roles: String,
    /// App roles in Defender tokens (comma-separated; empty for none).
    #[arg(
        long,
        value_name = "LIST",
        default_value = "Ti.ReadWrite.All",
        help_heading = "Identity"
    )]
    pub defender_roles: String,
    /// Client id of the system-assigned managed identity.
    #[arg(
        long,
        value_name = "ID",
        default_value = "sim-managed-identity",
        help_heading = "Identity"
    )]
    pub managed_identity_client_id: String,
    /// No system-assigned managed identity (a request without client_id is refused).
    #[arg(long, help_heading = "Identity")]
    pub no_system_identity: bool,
    /// Client id of a user-assigned managed identity. Repeatable.
    #[arg(long, value_name = "ID", help_heading = "Identity")]
    pub user_assigned_client_id: Vec<String>,
    /// The App Service / Container Apps `IDENTITY_HEADER` value.
    #[arg(
        long,
        value_name = "VALUE",
        env = "CTIPORT_SIM_IDENTITY_HEADER",
        default_value = "sim-identity-header",
        hide_env_values = true,
        help_heading = "Identity"
    )]
    pub identity_header: String,

    /// Window of the per-minute call limits of Sentinel and Defender (shorten it in tests).
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..), help_heading = "Sentinel and Defender")]
    pub rate_window_secs: u64,

    /// A workspace id that exists. Repeatable.
    #[arg(
        long,
        value_name = "ID",
        default_value = "sim-workspace",
        help_heading = "Sentinel"
    )]
    pub sentinel_workspace: Vec<String>,
    /// STIX objects per upload request.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 100,
        help_heading = "Sentinel"
    )]
    pub sentinel_max_objects: usize,
    /// Upload requests per window per user.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 100,
        help_heading = "Sentinel"
    )]
    pub sentinel_requests_per_minute: usize,
    /// Also send `Retry-After` (whole seconds) on 429; the docs show the wait only in the body.
    #[arg(long, help_heading = "Sentinel")]
    pub sentinel_retry_after_header: bool,
    /// The app lacks the Microsoft Sentinel Contributor role: uploads get 403.
    #[arg(long, help_heading = "Sentinel")]
    pub sentinel_no_contributor: bool,
    /// Probability that an upload fails with a 500 (nothing stored).
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = parse_probability, help_heading = "Sentinel")]
    pub sentinel_fail_rate: f64,
    /// STIX ids rejected in the 200's `errors` (comma-separated).
    #[arg(
        long,
        value_name = "IDS",
        default_value = "",
        help_heading = "Sentinel"
    )]
    pub sentinel_reject_ids: String,
    /// Probability that a valid object is rejected in the 200's `errors`.
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = parse_probability, help_heading = "Sentinel")]
    pub sentinel_reject_rate: f64,

    /// Active indicators per tenant.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 15_000,
        help_heading = "Defender"
    )]
    pub defender_cap: usize,
    /// Indicators per import, ids per BatchDelete.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 500,
        help_heading = "Defender"
    )]
    pub defender_max_batch: usize,
    /// Import calls per window per app.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 30,
        help_heading = "Defender"
    )]
    pub defender_import_per_minute: usize,
    /// BatchDelete calls per window per app.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 30,
        help_heading = "Defender"
    )]
    pub defender_delete_per_minute: usize,
    /// List calls per window per app.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 100,
        help_heading = "Defender"
    )]
    pub defender_list_per_minute: usize,
    /// Request bodies above this many bytes get 413.
    #[arg(long, value_name = "BYTES", default_value_t = 4 * 1024 * 1024, help_heading = "Defender")]
    pub defender_max_body_bytes: usize,
    /// A device group that exists; when any is given, unknown `rbacGroupNames` fail. Repeatable.
    #[arg(long, value_name = "NAME", help_heading = "Defender")]
    pub defender_rbac_group: Vec<String>,
    /// Indicators of another tool ("Contoso SOC") present at start; they count towards the cap.
    #[arg(long, value_name = "N", default_value_t = 0, help_heading = "Defender")]
    pub defender_foreign: usize,
    /// Probability that an import or BatchDelete fails with a 500 (nothing written).
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = parse_probability, help_heading = "Defender")]
    pub defender_fail_rate: f64,
    /// Indicator values failed in the import results (comma-separated).
    #[arg(
        long,
        value_name = "VALUES",
        default_value = "",
        help_heading = "Defender"
    )]
    pub defender_reject_values: String,
    /// Probability that a valid indicator fails in the import results.
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = parse_probability, help_heading = "Defender")]
    pub defender_reject_rate: f64,
}

impl MicrosoftArgs {
    pub fn config(&self) -> MicrosoftConfig {
        let window = Duration::from_secs(self.rate_window_secs);
        let faults = |rate: f64, reject: &str, reject_rate: f64| Faults {
            fail_next: 0,
            fail_rate: rate,
            reject: list(reject).into_iter().collect(),
            reject_rate,
        };
        MicrosoftConfig {
            identity: IdentityConfig {
                certificates: self.client_certificate.clone(),
                federation: self.federated_subject.as_ref().map(|subject| {
                    Arc::new(Federation::new(
                        self.federated_issuer.clone(),
                        subject.clone(),
                        self.federated_audience.clone(),
                        self.federated_issuer_key.clone(),
                    ))
                }),
                roles: Roles {
                    graph: list(&self.graph_roles),
                    defender: list(&self.defender_roles),
                },
                managed: ManagedIdentities {
                    system: (!self.no_system_identity)
                        .then(|| self.managed_identity_client_id.clone()),
                    user_assigned: self.user_assigned_client_id.clone(),
                    identity_header: self.identity_header.clone(),
                },
            },
            sentinel: SentinelConfig {
                workspaces: self.sentinel_workspace.clone(),
                max_objects: self.sentinel_max_objects,
                requests_per_window: self.sentinel_requests_per_minute,
                window,
                retry_after_header: self.sentinel_retry_after_header,
                contributor: !self.sentinel_no_contributor,
                faults: faults(
                    self.sentinel_fail_rate,
                    &self.sentinel_reject_ids,
                    self.sentinel_reject_rate,
                ),
            },
            defender: DefenderConfig {
                cap: self.defender_cap,
                max_batch: self.defender_max_batch,
                import_per_window: self.defender_import_per_minute,
                delete_per_window: self.defender_delete_per_minute,
                list_per_window: self.defender_list_per_minute,
                window,
                max_top: 10_000,
                max_body_bytes: self.defender_max_body_bytes,
                rbac_groups: self.defender_rbac_group.clone(),
                foreign: self.defender_foreign,
                faults: faults(
                    self.defender_fail_rate,
                    &self.defender_reject_values,
                    self.defender_reject_rate,
                ),
            },
        }
    }
}
