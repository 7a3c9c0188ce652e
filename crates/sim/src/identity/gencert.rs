//! `ctiport-sim gen-cert`: a fresh self-signed RSA certificate for the certificate-credential
//! tests, so that no private key is ever committed.
//!
//! Writes `key.pem` (PKCS#8), `cert.pem`, `combined.pem` (key then certificate: the one-file
//! form `AZURE_CLIENT_CERTIFICATE_PATH` takes) and `cert.pfx` (PKCS#12 with a password,
//! PBES2/AES-256 and an HMAC-SHA256 MAC).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use p12_keystore::{KeyStore, KeyStoreEntry, PrivateKeyChain};
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::{Generate, PrivateKey};
use serde::Serialize;
use sha2::Sha256;
use x509_cert::builder::{Builder, CertificateBuilder, profile};
use x509_cert::der::{Decode, Encode, EncodePem};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::SubjectPublicKeyInfoOwned;
use x509_cert::time::{Time, Validity};

use super::cert::RegisteredCert;

/// What to generate.
#[derive(Clone, Debug)]
pub struct CertSpec {
    pub common_name: String,
    /// Validity from now; with `expired`, the certificate ended a day ago instead.
    pub days: u32,
    pub expired: bool,
    pub pfx_password: String,
}

/// A generated key and certificate, in every form the credential chain reads.
pub struct Generated {
    pub key_pem: String,
    pub cert_pem: String,
    pub pfx: Vec<u8>,
    pub cert: RegisteredCert,
}

/// The JSON line `gen-cert` prints: where the files are and the thumbprints to expect.
#[derive(Debug, Serialize)]
pub struct Written {
    pub key: PathBuf,
    pub cert: PathBuf,
    pub pem: PathBuf,
    pub pfx: PathBuf,
    pub x5t: String,
    #[serde(rename = "x5t#S256")]
    pub x5t_s256: String,
    pub thumbprint: String,
    pub not_after: i64,
}

fn fail(what: &str, e: impl std::fmt::Display) -> String {
    format!("{what}: {e}")
}

/// Generates a 2048-bit RSA key (the smallest Entra accepts) and a self-signed certificate.
pub fn generate(spec: &CertSpec) -> Result<Generated, String> {
    let key = PrivateKey::generate();
    let spki_der = key
        .to_public_key()
        .to_public_key_der()
        .map_err(|e| fail("encoding the public key", e))?;
    let spki = SubjectPublicKeyInfoOwned::from_der(spki_der.as_bytes())
        .map_err(|e| fail("reading the public key", e))?;
    let subject: Name = format!("CN={},O=ctiport-sim test only,C=US", spec.common_name)
        .parse()
        .map_err(|e| fail("the subject name", e))?;
    let now = SystemTime::now();
    let day = Duration::from_secs(86_400);
    let (start, end) = if spec.expired {
        (now - day * 30, now - day)
    } else {
        (now - Duration::from_secs(60), now + day * spec.days.max(1))
    };
    let validity = Validity::new(
        Time::try_from(start).map_err(|e| fail("not-before", e))?,
        Time::try_from(end).map_err(|e| fail("not-after", e))?,
    );
    let serial = SerialNumber::from(
        u32::try_from(
            now.duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs(),
        )
        .unwrap_or(1),
    );
    let profile =
        profile::cabf::Root::new(false, subject).map_err(|e| fail("the certificate profile", e))?;
    let builder = CertificateBuilder::new(profile, serial, validity, spki)
        .map_err(|e| fail("building the certificate", e))?;
    let signer = SigningKey::<Sha256>::new(key.clone());
    let certificate = builder
        .build::<_, rsa::pkcs1v15::Signature>(&signer)
        .map_err(|e| fail("signing the certificate", e))?;
    let cert_der = certificate
        .to_der()
        .map_err(|e| fail("encoding the certificate", e))?;
    let cert_pem = certificate
        .to_pem(LineEnding::LF)
        .map_err(|e| fail("encoding the certificate", e))?;
    let key_der = key
        .to_pkcs8_der()
        .map_err(|e| fail("encoding the private key", e))?;
    let key_pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| fail("encoding the private key", e))?
        .to_string();

    let mut store = KeyStore::new();
    let chain = PrivateKeyChain::new(
        vec![1u8; 20],
        p12_keystore::PrivateKey::from_der(key_der.as_bytes())
            .map_err(|e| fail("the PFX key", e))?,
        [p12_keystore::Certificate::from_der(&cert_der)
            .map_err(|e| fail("the PFX certificate", e))?],
    );
    store.add_entry("ctiport-sim", KeyStoreEntry::PrivateKeyChain(chain));
    let pfx = store
        .writer(&spec.pfx_password)
        .write()
        .map_err(|e| fail("writing the PFX", e))?;

    Ok(Generated {
        key_pem,
        cert_pem,
        pfx,
        cert: RegisteredCert::from_der(&cert_der)?,
    })
}

/// Creates `path` with `bytes`, owner-only on Unix; refuses to replace a file unless `force`.
fn write_new(path: &Path, bytes: &[u8], force: bool) -> Result<(), String> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Generates and writes the four files into `dir` (created if needed).
pub fn write_to_dir(spec: &CertSpec, dir: &Path, force: bool) -> Result<Written, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let generated = generate(spec)?;
    let written = Written {
        key: dir.join("key.pem"),
        cert: dir.join("cert.pem"),
        pem: dir.join("combined.pem"),
        pfx: dir.join("cert.pfx"),
        x5t: generated.cert.x5t.clone(),
        x5t_s256: generated.cert.x5t_s256.clone(),
        thumbprint: generated.cert.thumbprint_hex.clone(),
        not_after: generated.cert.not_after,
    };
    let combined = format!("{}{}", generated.key_pem, generated.cert_pem);
    write_new(&written.key, generated.key_pem.as_bytes(), force)?;
    write_new(&written.cert, generated.cert_pem.as_bytes(), force)?;
    write_new(&written.pem, combined.as_bytes(), force)?;
    write_new(&written.pfx, &generated.pfx, force)?;
    Ok(written)
}
