//! `client_assertion` at the token endpoint (RFC 7523 client authentication): a JWT signed with
//! a certificate registered on the app, or a token from a trusted external issuer (workload
//! identity federation). Checked the way Entra's certificate-credentials page describes, with
//! the AADSTS codes Entra answers (docs/standins.md lists which are documented and which seen).

use std::fmt::Write;

use serde_json::Value;

use super::IdentityConfig;
use super::cert::RegisteredCert;
use super::federation::Federation;
use super::jwt::{self, BadSignature, Jws};
use crate::auth::{AadError, CredentialKind};
use crate::timefmt::{Fraction, rfc3339};

/// The only `client_assertion_type` (RFC 7523 §2.2).
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

const CERT_DOCS: &str = "Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .";

/// What the token request says about the client, and where it was sent.
pub struct AssertionContext<'a> {
    pub identity: &'a IdentityConfig,
    pub client_id: &'a str,
    pub tenant: &'a str,
    /// `http://127.0.0.1:<port>` or `--public-url`: the sim's stand-in for the authority host.
    pub base_url: &'a str,
    /// Seconds since the epoch.
    pub now: i64,
}

impl AssertionContext<'_> {
    /// The `aud` values Entra takes: this tenant's token endpoint, v2 or v1.
    fn accepts_audience(&self, aud: &str) -> bool {
        let base = self.base_url.trim_end_matches('/');
        ["oauth2/v2.0/token", "oauth2/token"]
            .iter()
            .any(|path| aud.eq_ignore_ascii_case(&format!("{base}/{}/{path}", self.tenant)))
    }
}

fn invalid_jwt(detail: &str) -> AadError {
    AadError::invalid_client(50_027, format!("Invalid JWT token. {detail}"))
}

fn stamp(secs: Option<i64>) -> String {
    rfc3339(secs.unwrap_or(0), Fraction::Ticks(0))
}

/// AADSTS700024, with the times Entra prints.
fn out_of_time(jws: &Jws, now: i64) -> Option<AadError> {
    let (nbf, exp) = (jws.claim_time("nbf"), jws.claim_time("exp"));
    let valid = exp.is_some_and(|exp| now < exp) && nbf.is_none_or(|nbf| nbf <= now);
    (!valid).then(|| {
        AadError::invalid_client(
            700_024,
            format!(
                "Client assertion is not within its valid time range. Current time: {}, assertion valid from {}, expiry time of assertion {}. {CERT_DOCS}",
                stamp(Some(now)),
                stamp(nbf),
                stamp(exp)
            ),
        )
    })
}

/// Authenticates the client by its assertion; says which kind of credential it was.
pub(crate) fn authenticate(
    assertion_type: Option<&str>,
    assertion: &str,
    ctx: &AssertionContext<'_>,
) -> Result<CredentialKind, AadError> {
    match assertion_type {
        None => return Err(AadError::missing("client_assertion_type")),
        Some(JWT_BEARER) => {}
        Some(other) => {
            return Err(AadError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "invalid_request",
                50_027,
                format!(
                    "Invalid JWT token. The client_assertion_type '{other}' is not supported; use '{JWT_BEARER}'."
                ),
            ));
        }
    }
    let jws =
        jwt::parse(assertion).map_err(|m| invalid_jwt(&format!("{}.", capitalise(m.reason()))))?;
    // A certificate assertion is issued by the app itself; anything else must be a token from
    // a federated issuer.
    if jws.claim_str("iss") == Some(ctx.client_id) {
        certificate(&jws, ctx).map(|()| CredentialKind::ClientCertificate)
    } else {
        federated(&jws, ctx).map(|()| CredentialKind::FederatedToken)
    }
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map_or_else(String::new, |c| c.to_uppercase().chain(chars).collect())
}

/// The registered certificate the header's `x5t` / `x5t#S256` name (both must match when both
/// are given), and the thumbprint to print.
fn find_certificate<'a>(
    jws: &Jws,
    certificates: &'a [RegisteredCert],
) -> Result<(&'a RegisteredCert, String), Option<String>> {
    let x5t = jws.header_str("x5t");
    let x5t_s256 = jws.header_str("x5t#S256");
    let printed = match (x5t, x5t_s256) {
        (None, None) => return Err(None),
        (Some(x5t), _) => hex_of_b64url(x5t).unwrap_or_else(|| x5t.to_owned()),
        (None, Some(s256)) => s256.to_owned(),
    };
    certificates
        .iter()
        .find(|c| x5t.is_none_or(|t| t == c.x5t) && x5t_s256.is_none_or(|t| t == c.x5t_s256))
        .map(|c| (c, printed.clone()))
        .ok_or(Some(printed))
}

fn hex_of_b64url(text: &str) -> Option<String> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .ok()?;
    let mut hex = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(hex, "{b:02X}");
    }
    Some(hex)
}

fn certificate(jws: &Jws, ctx: &AssertionContext<'_>) -> Result<(), AadError> {
    let alg = jws.header_str("alg").unwrap_or_default();
    if alg != "RS256" && alg != "PS256" {
        return Err(invalid_jwt(&format!(
            "The signing algorithm '{alg}' is not supported; use PS256 or RS256."
        )));
    }
    let (cert, thumbprint) = match find_certificate(jws, &ctx.identity.certificates) {
        Ok(found) => found,
        Err(None) => {
            return Err(invalid_jwt(
                "No certificate thumbprint specified in token header.",
            ));
        }
        Err(Some(thumbprint)) => {
            return Err(AadError::invalid_client(
                700_027,
                format!(
                    "The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '{thumbprint}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{}'. {CERT_DOCS}]",
                    ctx.client_id
                ),
            ));
        }
    };
    let invalid_signature = |reason: &str| {
        AadError::invalid_client(
            700_027,
            format!(
                "Client assertion contains an invalid signature. [Reason - {reason}, Thumbprint of key used by client: '{thumbprint}', Found key 'Start={}, End={}'. {CERT_DOCS}]",
                stamp(Some(cert.not_before)),
                stamp(Some(cert.not_after))
            ),
        )
    };
    if ctx.now < cert.not_before || ctx.now >= cert.not_after {
        return Err(invalid_signature("The key used is expired."));
    }
    if jws.verify(&cert.key).is_err() {
        return Err(invalid_signature(
            "The provided signature value did not match the expected signature value.",
        ));
    }
    // The claims Entra's page lists; a token without them is refused by name.
    for claim in ["aud", "exp", "nbf", "jti", "sub"] {
        if !jws.claims.contains_key(claim) {
            return Err(invalid_jwt(&format!("The token has no '{claim}' claim.")));
        }
    }
    if let Some(error) = out_of_time(jws, ctx.now) {
        return Err(error);
    }
    if !jws.audiences().iter().any(|aud| ctx.accepts_audience(aud)) {
        return Err(AadError::invalid_client(
            700_023,
            format!("Client assertion audience claim does not match Realm issuer. {CERT_DOCS}"),
        ));
    }
    if jws.claim_str("sub") != jws.claim_str("iss") {
        return Err(AadError::invalid_client(
            50_048,
            "Subject mismatches Issuer claim in the client assertion.".into(),
        ));
    }
    match jws.claims.get("jti") {
        Some(Value::String(jti)) if !jti.is_empty() => Ok(()),
        _ => Err(invalid_jwt("The 'jti' claim must be a non-empty string.")),
    }
}

fn federated(jws: &Jws, ctx: &AssertionContext<'_>) -> Result<(), AadError> {
    let claim = |name| jws.claim_str(name).unwrap_or_default();
    let audiences = jws.audiences();
    let no_record = || {
        AadError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "invalid_request",
            70_021,
            format!(
                "No matching federated identity record found for presented assertion. Assertion Issuer: '{}'. Assertion Subject: '{}'. Assertion Audience: '{}'.",
                claim("iss"),
                claim("sub"),
                audiences.join(",")
            ),
        )
    };
    let Some(federation): Option<&Federation> = ctx.identity.federation.as_deref() else {
        return Err(no_record());
    };
    if claim("iss") != federation.issuer
        || claim("sub") != federation.subject
        || !audiences.contains(&federation.audience.as_str())
    {
        return Err(no_record());
    }
    let signature_failed = || {
        AadError::invalid_client(
            700_027,
            "Client assertion failed signature validation.".into(),
        )
    };
    match federation.verifying_key() {
        None => return Err(signature_failed()),
        Some(key) => match jws.verify(&key) {
            Ok(()) => {}
            Err(BadSignature::Algorithm(alg)) => {
                return Err(invalid_jwt(&format!(
                    "The signing algorithm '{alg}' is not supported."
                )));
            }
            Err(BadSignature::Mismatch) => return Err(signature_failed()),
        },
    }
    match out_of_time(jws, ctx.now) {
        Some(error) => Err(error),
        None => Ok(()),
    }
}
