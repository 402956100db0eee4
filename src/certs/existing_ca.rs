//! `certs --ca-cert FILE --ca-key FILE`: an existing CA signs the new serving certificate, so renewing
//! it does not change the CA the API server trusts (no `caBundle` update, no CA rotation).
//!
//! Everything is checked before anything is written: one PEM certificate that is a CA allowed to sign
//! certificates and valid now, a PKCS#8 key that is that certificate's key.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::KeyPair;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use super::generate::SigningCa;
use super::plan::pem;

/// Why the given CA cannot sign; each names the flag and the file.
#[derive(Debug, thiserror::Error)]
pub enum ExistingCaError {
    #[error("--ca-cert {}: {reason}", path.display())]
    Cert { path: PathBuf, reason: String },
    #[error("--ca-key {}: {reason}", path.display())]
    Key { path: PathBuf, reason: String },
    #[error("--ca-key {} is not the private key of the certificate in --ca-cert {}", key.display(), cert.display())]
    Mismatch { cert: PathBuf, key: PathBuf },
}

/// A checked CA, ready to sign.
pub struct ExistingCa {
    pub signer: SigningCa,
    /// The CA certificate alone, PEM: what clients must trust.
    pub cert_pem: String,
    /// The CA's DER subject name, which the issued certificate must repeat byte for byte.
    pub subject: Vec<u8>,
    /// A serving certificate must not outlive its CA.
    pub not_after: SystemTime,
    pub cert_path: PathBuf,
}

/// Reads and checks `--ca-cert` and `--ca-key` at `now`.
pub fn load(
    cert_path: &Path,
    key_path: &Path,
    now: SystemTime,
) -> Result<ExistingCa, ExistingCaError> {
    let cert_error = |reason: String| ExistingCaError::Cert {
        path: cert_path.to_path_buf(),
        reason,
    };
    let key_error = |reason: String| ExistingCaError::Key {
        path: key_path.to_path_buf(),
        reason,
    };

    let cert_text = std::fs::read(cert_path).map_err(|e| cert_error(e.to_string()))?;
    let ders = CertificateDer::pem_slice_iter(&cert_text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_error(format!("not PEM: {e:?}")))?;
    let der = match ders.as_slice() {
        [one] => one,
        [] => return Err(cert_error("holds no PEM certificate".to_owned())),
        many => {
            return Err(cert_error(format!(
                "holds {} certificates; give the signing CA's certificate alone",
                many.len()
            )))
        }
    };
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| cert_error(format!("not an X.509 certificate: {e}")))?;
    let is_ca = cert
        .basic_constraints()
        .ok()
        .flatten()
        .is_some_and(|bc| bc.value.ca);
    if !is_ca {
        return Err(cert_error(
            "not a CA certificate (its BasicConstraints do not say cA TRUE)".to_owned(),
        ));
    }
    if let Ok(Some(usage)) = cert.key_usage() {
        if !usage.value.key_cert_sign() {
            return Err(cert_error(
                "its KeyUsage does not allow signing certificates (keyCertSign)".to_owned(),
            ));
        }
    }
    let validity = cert.validity();
    let not_after = at(validity.not_after.timestamp());
    if not_after <= now {
        return Err(cert_error(format!(
            "the CA expired on {}",
            validity.not_after
        )));
    }
    if at(validity.not_before.timestamp()) > now {
        return Err(cert_error(format!(
            "the CA is not valid before {}",
            validity.not_before
        )));
    }

    let key_text = std::fs::read_to_string(key_path).map_err(|e| key_error(e.to_string()))?;
    let key = KeyPair::from_pem(&key_text).map_err(|_| key_error(key_format_hint(&key_text)))?;
    if key.public_key_der() != cert.tbs_certificate.subject_pki.raw {
        return Err(ExistingCaError::Mismatch {
            cert: cert_path.to_path_buf(),
            key: key_path.to_path_buf(),
        });
    }
    let subject = cert.tbs_certificate.subject.as_raw().to_vec();
    let signer = SigningCa::from_certificate(der.as_ref(), key)
        .map_err(|e| cert_error(format!("cannot sign with this CA: {e}")))?;
    Ok(ExistingCa {
        signer,
        cert_pem: pem("CERTIFICATE", der.as_ref()),
        subject,
        not_after,
        cert_path: cert_path.to_path_buf(),
    })
}

/// Says how to fix a key rcgen cannot load (with the ring backend it reads PKCS#8 only).
fn key_format_hint(text: &str) -> String {
    const CONVERT: &str = "convert it with `openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.pk8`";
    if text.contains("-----BEGIN RSA PRIVATE KEY-----") {
        format!("a PKCS#1 RSA key; a PKCS#8 key (BEGIN PRIVATE KEY) is needed: {CONVERT}")
    } else if text.contains("-----BEGIN EC PRIVATE KEY-----") {
        format!("a SEC1 EC key; a PKCS#8 key (BEGIN PRIVATE KEY) is needed: {CONVERT}")
    } else if text.contains("ENCRYPTED") {
        "an encrypted key; give the key unencrypted, in PKCS#8 (BEGIN PRIVATE KEY)".to_owned()
    } else {
        "not a PKCS#8 private key (BEGIN PRIVATE KEY) of type ECDSA P-256/P-384, Ed25519 or RSA"
            .to_owned()
    }
}

/// Before 1970 reads as 1970: such a CA has long expired.
fn at(unix: i64) -> SystemTime {
    u64::try_from(unix)
        .map(|secs| UNIX_EPOCH + Duration::from_secs(secs))
        .unwrap_or(UNIX_EPOCH)
}
