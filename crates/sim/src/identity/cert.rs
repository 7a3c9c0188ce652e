//! Certificates registered on the sim's app (its `keyCredentials`), and PEM private keys.
//!
//! A client assertion names its certificate by thumbprint in the JWT header: `x5t` is the
//! base64url SHA-1 of the certificate's DER, `x5t#S256` the base64url SHA-256 (Entra's
//! certificate-credentials page, old and current versions).

use std::path::Path;

use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::{PrivateKey, PublicKey};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use x509_cert::Certificate;
use x509_cert::der::{Decode, DecodePem, Encode};

use super::jwt::b64url;

/// A certificate the token endpoint accepts assertions from.
#[derive(Clone, Debug)]
pub struct RegisteredCert {
    /// `x5t`: base64url SHA-1 of the DER.
    pub x5t: String,
    /// `x5t#S256`: base64url SHA-256 of the DER.
    pub x5t_s256: String,
    /// The SHA-1 thumbprint in upper-case hex, as Entra's error messages print it.
    pub thumbprint_hex: String,
    pub key: PublicKey,
    /// Validity, in seconds since the epoch.
    pub not_before: i64,
    pub not_after: i64,
}

/// The text between `-----BEGIN {label}-----` and its END line, both included.
pub fn pem_block<'a>(text: &'a str, label: &str) -> Option<&'a str> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)?;
    let stop = text[start..].find(&end)? + start + end.len();
    Some(&text[start..stop])
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

impl RegisteredCert {
    /// Reads the first `CERTIFICATE` block of a PEM file (which may also hold a key).
    pub fn load(path: &Path) -> Result<RegisteredCert, String> {
        let text = read(path)?;
        let block = pem_block(&text, "CERTIFICATE")
            .ok_or_else(|| format!("{}: no CERTIFICATE block", path.display()))?;
        let cert = Certificate::from_pem(block.as_bytes())
            .map_err(|e| format!("{}: not an X.509 certificate: {e}", path.display()))?;
        Self::from_certificate(&cert).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn from_der(der: &[u8]) -> Result<RegisteredCert, String> {
        let cert = Certificate::from_der(der).map_err(|e| format!("not a certificate: {e}"))?;
        Self::from_certificate(&cert)
    }

    fn from_certificate(cert: &Certificate) -> Result<RegisteredCert, String> {
        let der = cert.to_der().map_err(|e| e.to_string())?;
        let spki = cert
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .map_err(|e| e.to_string())?;
        let key = PublicKey::from_public_key_der(&spki)
            .map_err(|e| format!("the certificate's key is not an RSA key: {e}"))?;
        let validity = cert.tbs_certificate().validity();
        let unix = |t: &x509_cert::time::Time| {
            i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
        };
        let sha1 = Sha1::digest(&der);
        Ok(RegisteredCert {
            x5t: b64url(&sha1),
            x5t_s256: b64url(&Sha256::digest(&der)),
            thumbprint_hex: sha1.iter().map(|b| format!("{b:02X}")).collect(),
            key,
            not_before: unix(&validity.not_before),
            not_after: unix(&validity.not_after),
        })
    }
}

/// Reads an RSA private key from a PEM file: PKCS#8 (`PRIVATE KEY`) or PKCS#1
/// (`RSA PRIVATE KEY`); the file may also hold certificates.
pub fn load_private_key(path: &Path) -> Result<PrivateKey, String> {
    let text = read(path)?;
    if let Some(block) = pem_block(&text, "PRIVATE KEY") {
        return PrivateKey::from_pkcs8_pem(block)
            .map_err(|e| format!("{}: not a PKCS#8 RSA key: {e}", path.display()));
    }
    if let Some(block) = pem_block(&text, "RSA PRIVATE KEY") {
        return PrivateKey::from_pkcs1_pem(block)
            .map_err(|e| format!("{}: not a PKCS#1 RSA key: {e}", path.display()));
    }
    Err(format!(
        "{}: no unencrypted RSA private key (PRIVATE KEY or RSA PRIVATE KEY block)",
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_blocks_among_others() {
        let text = "junk\n-----BEGIN PRIVATE KEY-----\nAAA\n-----END PRIVATE KEY-----\n\
                    -----BEGIN CERTIFICATE-----\nBBB\n-----END CERTIFICATE-----\n";
        assert_eq!(
            pem_block(text, "CERTIFICATE"),
            Some("-----BEGIN CERTIFICATE-----\nBBB\n-----END CERTIFICATE-----")
        );
        assert!(pem_block(text, "PRIVATE KEY").is_some_and(|b| b.contains("AAA")));
        assert_eq!(pem_block(text, "RSA PRIVATE KEY"), None);
    }
}
