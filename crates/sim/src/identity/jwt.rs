//! Compact JWS (RFC 7515) as the identity stand-ins need it: split and decode a JWT, verify an
//! RS256 or PS256 signature against an RSA public key, and sign RS256 (the federated tokens the
//! sim mints as an OIDC issuer).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::signature::{SignatureEncoding, Signer, Verifier};
use rsa::{PrivateKey, PublicKey, pkcs1v15, pss};
use serde_json::{Map, Value};
use sha2::Sha256;

/// base64url without padding (RFC 7515 §2).
pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A decoded, not yet verified, JWS.
#[derive(Clone, Debug)]
pub struct Jws {
    pub header: Map<String, Value>,
    pub claims: Map<String, Value>,
    signing_input: String,
    signature: Vec<u8>,
}

/// Why a token could not be read as a JWS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    Parts,
    Base64,
    Json,
}

impl Malformed {
    pub fn reason(self) -> &'static str {
        match self {
            Malformed::Parts => "the token does not have three dot-separated parts",
            Malformed::Base64 => "a part of the token is not base64url",
            Malformed::Json => "the header or the payload is not a JSON object",
        }
    }
}

/// Why a signature was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BadSignature {
    /// `alg` is neither RS256 nor PS256 (`none` included).
    Algorithm(String),
    Mismatch,
}

fn decode_object(part: &str) -> Result<Map<String, Value>, Malformed> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| Malformed::Base64)?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(Malformed::Json),
    }
}

/// Splits and decodes `token`; nothing is verified yet.
pub fn parse(token: &str) -> Result<Jws, Malformed> {
    let token = token.trim();
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Malformed::Parts);
    };
    let signature = URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|_| Malformed::Base64)?;
    Ok(Jws {
        header: decode_object(h)?,
        claims: decode_object(p)?,
        signing_input: format!("{h}.{p}"),
        signature,
    })
}

impl Jws {
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header.get(name).and_then(Value::as_str)
    }

    pub fn claim_str(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    /// A NumericDate claim (RFC 7519 §2): seconds since the epoch; a fraction is dropped.
    pub fn claim_time(&self, name: &str) -> Option<i64> {
        let value = self.claims.get(name)?;
        value.as_i64().or_else(|| {
            value
                .as_f64()
                .filter(|f| f.is_finite())
                .map(|f| f.floor() as i64)
        })
    }

    /// `aud` as a list: RFC 7519 allows a string or an array of strings.
    pub fn audiences(&self) -> Vec<&str> {
        match self.claims.get("aud") {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }

    /// Checks the signature with `key`, by the header's `alg` (RS256 or PS256 only).
    pub fn verify(&self, key: &PublicKey) -> Result<(), BadSignature> {
        let message = self.signing_input.as_bytes();
        let verified = match self.header_str("alg") {
            Some("RS256") => pkcs1v15::Signature::try_from(self.signature.as_slice())
                .ok()
                .is_some_and(|sig| {
                    pkcs1v15::VerifyingKey::<Sha256>::new(key.clone())
                        .verify(message, &sig)
                        .is_ok()
                }),
            // RFC 7518 §3.5: PSS with SHA-256, MGF1 with SHA-256, salt as long as the hash.
            Some("PS256") => pss::Signature::try_from(self.signature.as_slice())
                .ok()
                .is_some_and(|sig| {
                    pss::VerifyingKey::<Sha256>::new(key.clone())
                        .verify(message, &sig)
                        .is_ok()
                }),
            other => return Err(BadSignature::Algorithm(other.unwrap_or("").to_owned())),
        };
        if verified {
            Ok(())
        } else {
            Err(BadSignature::Mismatch)
        }
    }
}

/// The signature algorithms Entra takes for a certificate credential.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alg {
    Rs256,
    Ps256,
}

impl Alg {
    pub fn name(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Ps256 => "PS256",
        }
    }
}

/// Signs `claims`; `header` members are added to `{"alg":…,"typ":"JWT"}`.
pub fn sign(
    alg: Alg,
    header: &Map<String, Value>,
    claims: &Map<String, Value>,
    key: &PrivateKey,
) -> Result<String, rsa::signature::Error> {
    let mut full = Map::new();
    full.insert("alg".into(), Value::from(alg.name()));
    full.insert("typ".into(), Value::from("JWT"));
    full.extend(header.clone());
    let input = format!(
        "{}.{}",
        b64url(Value::Object(full).to_string().as_bytes()),
        b64url(Value::Object(claims.clone()).to_string().as_bytes())
    );
    let signature = match alg {
        Alg::Rs256 => pkcs1v15::SigningKey::<Sha256>::new(key.clone())
            .try_sign(input.as_bytes())?
            .to_vec(),
        Alg::Ps256 => pss::SigningKey::<Sha256>::new(key.clone())
            .try_sign(input.as_bytes())?
            .to_vec(),
    };
    Ok(format!("{input}.{}", b64url(&signature)))
}
