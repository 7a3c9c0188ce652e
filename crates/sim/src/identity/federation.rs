//! Workload identity federation: the sim plays both sides. As the external OIDC issuer (the
//! Kubernetes service-account issuer that the AKS webhook's token file comes from) it mints
//! RS256 tokens at `POST /_sim/federated-token`; as Entra it accepts such a token as a
//! `client_assertion` when issuer, subject and audience match the app's federated identity
//! credential and the signature is the issuer's.

use std::sync::OnceLock;

use rsa::{Generate, PrivateKey, PublicKey};
use serde_json::{Map, Value};

use super::jwt::{self, Alg};

/// The only audience a federated identity credential takes (Entra's federated-credential
/// considerations page: "Federated identity credentials must have exactly one audience").
pub const TOKEN_EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";

/// One federated identity credential on the sim's app, and the key of its issuer.
#[derive(Debug)]
pub struct Federation {
    pub issuer: String,
    pub subject: String,
    pub audience: String,
    /// Generated on first use when not given: a 2048-bit key takes a moment.
    key: OnceLock<PrivateKey>,
}

/// What `POST /_sim/federated-token` may change, to mint a token that must be refused.
#[derive(Clone, Debug, Default)]
pub struct MintRequest {
    pub issuer: Option<String>,
    pub subject: Option<String>,
    pub audience: Option<String>,
    /// Lifetime in seconds from now; negative for an already expired token (default 3600).
    pub ttl: Option<i64>,
}

impl Federation {
    pub fn new(issuer: String, subject: String, audience: String, key: Option<PrivateKey>) -> Self {
        let cell = OnceLock::new();
        if let Some(key) = key {
            let _ = cell.set(key);
        }
        Federation {
            issuer,
            subject,
            audience,
            key: cell,
        }
    }

    /// The issuer's signing key, generated on first need (call from a blocking context).
    pub fn signing_key(&self) -> &PrivateKey {
        self.key.get_or_init(PrivateKey::generate)
    }

    /// The key tokens are checked with; none before any token could have been minted.
    pub fn verifying_key(&self) -> Option<PublicKey> {
        self.key.get().map(PrivateKey::to_public_key)
    }

    /// A service-account-style token: `iss`, `sub`, `aud` (an array, as Kubernetes writes it),
    /// `iat`, `nbf`, `exp`, signed RS256 with a `kid`.
    pub fn mint(&self, request: &MintRequest, now: i64) -> Result<String, String> {
        let ttl = request.ttl.unwrap_or(3600);
        let mut claims = Map::new();
        let text = |v: &Option<String>, default: &str| {
            Value::from(v.clone().unwrap_or_else(|| default.to_owned()))
        };
        claims.insert("iss".into(), text(&request.issuer, &self.issuer));
        claims.insert("sub".into(), text(&request.subject, &self.subject));
        claims.insert(
            "aud".into(),
            Value::Array(vec![text(&request.audience, &self.audience)]),
        );
        let start = now.min(now + ttl) - 60;
        claims.insert("iat".into(), Value::from(start));
        claims.insert("nbf".into(), Value::from(start));
        claims.insert("exp".into(), Value::from(now + ttl));
        let mut header = Map::new();
        header.insert("kid".into(), Value::from("ctiport-sim-issuer"));
        jwt::sign(Alg::Rs256, &header, &claims, self.signing_key()).map_err(|e| e.to_string())
    }
}
