//! Identity stand-ins: what Microsoft Entra and the managed-identity endpoints do for the
//! credential chain (client secret, certificate assertion, federated token, managed identity),
//! and the tokens they issue per resource. See docs/standins.md.

pub mod assertion;
pub mod cert;
pub mod federation;
pub mod gencert;
pub mod jwt;
pub mod managed;
pub mod resource;

use std::sync::Arc;

use cert::RegisteredCert;
use federation::Federation;
use managed::ManagedIdentities;
use resource::Roles;

/// The sim's app registration beyond its secret (`auth::Credentials`), and its managed
/// identities.
#[derive(Clone, Debug, Default)]
pub struct IdentityConfig {
    /// Certificates registered on the app (`--client-certificate`, repeatable).
    pub certificates: Vec<RegisteredCert>,
    /// The app's federated identity credential (`--federated-subject`), if any.
    pub federation: Option<Arc<Federation>>,
    /// App roles in issued tokens, per API.
    pub roles: Roles,
    pub managed: ManagedIdentities,
}
