//! Reading `tls.crt` / `tls.key` from a certificate directory into a validated [`CertifiedKey`].

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::TlsError;

/// Certificate chain file name inside the certificate directory (leaf first, intermediates after).
pub const CERT_FILE: &str = "tls.crt";
/// Private key file name (PKCS#8, PKCS#1 or SEC1 PEM).
pub const KEY_FILE: &str = "tls.key";

/// Facts about the leaf that operators and metrics care about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The leaf's `notAfter`, in unix seconds (for the expiry metric).
    pub not_after: i64,
    /// The leaf's subject, for logs.
    pub subject: String,
    /// Number of certificates in the chain (leaf included).
    pub chain_len: usize,
}

/// A key and chain that have been checked to belong together, ready to serve.
#[derive(Debug, Clone)]
pub struct LoadedCert {
    pub key: Arc<CertifiedKey>,
    pub info: CertInfo,
}

/// Reads and validates the certificate directory. The files are opened by path every time, so
/// symlinks (a Secret volume's `..data`) are resolved afresh on each call.
pub fn load_dir(dir: &Path, provider: &CryptoProvider) -> Result<LoadedCert, TlsError> {
    let (cert_pem, key_pem) = read_pair(dir)?;
    parse_pair(dir, &cert_pem, &key_pem, provider)
}

/// Raw bytes of the two files, for change detection without parsing.
pub(crate) fn read_pair(dir: &Path) -> Result<(Vec<u8>, Vec<u8>), TlsError> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read(&path).map_err(|source| TlsError::Read { path, source })
    };
    Ok((read(CERT_FILE)?, read(KEY_FILE)?))
}

/// Parses and cross-checks already-read PEM bytes; `dir` only names files in errors.
pub(crate) fn parse_pair(
    dir: &Path,
    cert_pem: &[u8],
    key_pem: &[u8],
    provider: &CryptoProvider,
) -> Result<LoadedCert, TlsError> {
    let cert_path = dir.join(CERT_FILE);
    let key_path = dir.join(KEY_FILE);
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            path: cert_path.clone(),
            source,
        })?;
    let Some(leaf) = chain.first() else {
        return Err(TlsError::NoCertificate { path: cert_path });
    };
    let info = leaf_info(leaf, chain.len()).map_err(|message| TlsError::Leaf {
        path: cert_path.clone(),
        message,
    })?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|source| TlsError::Pem {
        path: key_path.clone(),
        source,
    })?;
    // `from_der` compares the key's public half with the leaf's SubjectPublicKeyInfo, so a
    // half-written rotation (new cert, old key) is refused instead of breaking every handshake.
    let certified =
        CertifiedKey::from_der(chain, key, provider).map_err(|source| TlsError::KeyMismatch {
            cert: cert_path,
            key: key_path,
            source,
        })?;
    Ok(LoadedCert {
        key: Arc::new(certified),
        info,
    })
}

fn leaf_info(leaf: &CertificateDer<'_>, chain_len: usize) -> Result<CertInfo, String> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(leaf.as_ref()).map_err(|e| e.to_string())?;
    Ok(CertInfo {
        not_after: cert.validity().not_after.timestamp(),
        subject: cert.subject().to_string(),
        chain_len,
    })
}
